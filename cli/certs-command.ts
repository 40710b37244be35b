import { Command } from 'commander';
import { makeDevCertificates } from '../common';
import { collect, parsePositiveInt } from './options';

const CERTS_HELP = `
Files in --out (PEM; keys mode 0600):
  ca.crt, ca.key                   the development CA every process trusts
  coordinator.crt/.key             the coordinator (server and client), valid for each --host
  workers/<id>.crt/.key            one per worker id: its id is in the certificate, so a registration
                                   under another id is refused
  operators/<name>.crt/.key        may call Scale (\`shardwise scale\`); a worker's certificate may not
  join-token                       the secret a worker presents when it registers
Run it again on the same folder to add workers: the CA and every existing file are kept.
In production, use your own CA (e.g. cert-manager) with the same subjectAltName URIs:
spiffe://shardwise/coordinator, spiffe://shardwise/worker/<id>, spiffe://shardwise/operator/<name>.`;

/** `shardwise certs`: a development CA, certificates for one job, and a join token. */
export function certsCommand(): Command {
  return new Command('certs')
    .description('make a development CA, coordinator, worker and operator certificates, and a join token')
    .requiredOption('--out <dir>', 'folder for the files (created; existing files are kept)')
    .option('--workers <n>', 'issue worker-1 ... worker-N, the ids `shardwise cluster` gives its workers', parsePositiveInt)
    .option('--worker-id <id>', 'issue a certificate for this worker id, e.g. a pod name (repeatable)', collect, [])
    .option('--operator <name>', 'issue an operator certificate (repeatable; default: admin)', collect, [])
    .option('--host <name>', 'a name or address the coordinator is reached at (repeatable; default: localhost, 127.0.0.1)', collect, [])
    .option('--days <n>', 'validity in days', parsePositiveInt, 365)
    .addHelpText('after', CERTS_HELP)
    .action(async (opts) => {
      const numbered = Array.from({ length: opts.workers ?? 0 }, (_, i) => `worker-${i + 1}`);
      const made = await makeDevCertificates({
        outDir: opts.out,
        workerIds: [...new Set([...numbered, ...opts.workerId])],
        operators: opts.operator.length > 0 ? opts.operator : undefined,
        coordinatorHosts: opts.host.length > 0 ? opts.host : undefined,
        days: opts.days,
      });
      process.stdout.write(`certificates in ${made.dir}: ${made.written.length} files written, ${made.kept.length} kept\n`);
      for (const file of made.written) process.stdout.write(`  wrote ${file}\n`);
    });
}
