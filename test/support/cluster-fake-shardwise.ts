/**
 * A stand-in for the `shardwise` command in the launcher's own tests: it speaks only the process-level
 * contract the launcher depends on (argv, ready lines on stdout, SIGTERM, exit status), so those tests
 * check the launcher's process handling in a second instead of training a model.
 *
 * `coordinator ...`: listens on a real loopback TCP port (its "gRPC" address), prints the coordinator
 * ready line; on SIGTERM exits with FAKE_TERM_EXIT (default 0); on SIGUSR2 ("job finished") closes its
 * connections and exits 0. FAKE_CRASH=1 makes it exit 3 before the ready line; FAKE_HOLD_READY=1 holds
 * the ready line back (a slow start).
 * `worker --coordinator HOST:PORT --id ID`: connects to the coordinator's port, prints the worker ready
 * line and one routine per-share line; leaves (exit 0) when that connection closes, as a real worker leaves
 * on STOP, or on SIGUSR1 (the coordinator drained it); on SIGTERM exits 0.
 * Every process appends `<name> <event>` lines to FAKE_LOG, the order the tests assert.
 */
import { appendFileSync } from 'node:fs';
import * as net from 'node:net';

const [role, ...args] = process.argv.slice(2);
const logFile = process.env.FAKE_LOG;

function flag(name: string): string | undefined {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
}

function record(name: string, event: string): void {
  if (logFile) appendFileSync(logFile, `${name} ${event}\n`);
}

if (role === 'coordinator') {
  record('coordinator', `started ${args.join(' ')}`);
  if (process.env.FAKE_CRASH === '1') {
    process.stderr.write('fake coordinator: cannot read the job spec\n');
    process.exit(3);
  }
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as net.AddressInfo;
    const ready = (): void => {
      process.stdout.write(`shardwise coordinator ready grpc=127.0.0.1:${port} metrics=http://127.0.0.1:9/metrics run=/tmp/fake run\n`);
    };
    if (process.env.FAKE_HOLD_READY === '1') {
      process.stderr.write('fake coordinator: still loading\n');
      process.on('SIGUSR1', ready);
    } else {
      ready();
    }
  });
  process.on('SIGTERM', () => {
    record('coordinator', 'SIGTERM');
    process.exit(Number(process.env.FAKE_TERM_EXIT ?? '0'));
  });
  process.on('SIGUSR2', () => {
    record('coordinator', 'finished');
    for (const socket of sockets) socket.destroy();
    server.close(() => process.exit(0));
  });
} else if (role === 'worker') {
  const id = flag('--id') ?? `worker-${process.pid}`;
  const [host, port] = (flag('--coordinator') ?? '').split(':');
  record(id, `started ${args.join(' ')}`);
  const socket = net.connect(Number(port), host, () => {
    process.stdout.write(`shardwise worker ready id=${id} coordinator=${host}:${port} metrics=http://127.0.0.1:9/metrics\n`);
    process.stderr.write(`fake worker ${id}: registered\n`);
    process.stderr.write(`worker ${id}: step 0 (epoch 0): 1/2 micro-batches, 8 samples\n`);
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    record(id, 'left');
    process.exit(0);
  });
  process.on('SIGTERM', () => {
    record(id, 'SIGTERM');
    process.exit(0);
  });
  process.on('SIGUSR1', () => {
    record(id, 'drained by the coordinator');
    process.exit(0);
  });
} else {
  process.stderr.write(`fake shardwise: unknown subcommand '${role}'\n`);
  process.exit(2);
}
