import { Option } from 'commander';
import { ConfigError, type Identity, identityUri, ReloadingTlsCredentials, TLS_RELOAD_INTERVAL_MS } from '../common';
import { log } from './options';

/**
 * `--tls-dir DIR`, the one way a process is given its credentials: a folder in the layout `shardwise certs`
 * writes (or a mounted Secret with the same file names). From it each process takes the CA, its own pair
 * (`coordinator.crt`, `workers/<id>.crt`, `operators/<name>.crt`) and, coordinator and workers, `join-token`.
 */
export function tlsDirOption(): Option {
  return new Option('--tls-dir <dir>', 'credentials folder made by `shardwise certs` (or a mounted Secret): mutual TLS with its CA, ' +
    "this process's certificate and the job's join token (default: plaintext, with a warning)");
}

/**
 * The credentials of `identity` from `--tls-dir`, or, without the flag, none and a warning that says what
 * that exposes. A missing or mismatched file fails the start, naming it. The files are watched while in
 * use: a rotated set is taken without a restart, an invalid one refused and logged (the old one stays).
 */
export function tlsFromFlag(dir: string | undefined, identity: Identity): ReloadingTlsCredentials | undefined {
  if (dir === undefined) {
    log(`warning: no --tls-dir: ${identity.role === 'coordinator'
      ? 'gRPC and the data plane are plaintext and any process that reaches them can register, read the weights and join an allreduce'
      : 'plaintext connections, and a coordinator that requires TLS refuses this process'}; make credentials with \`shardwise certs\``);
    return undefined;
  }
  const tls = ReloadingTlsCredentials.load(dir, identity, { log });
  log(`security: mutual TLS as ${identityUri(identity)} (CA ${tls.files.ca}; files checked for a rotation every ${TLS_RELOAD_INTERVAL_MS / 1000} s)`);
  return tls;
}

/** A worker's credentials are issued for one id, so `--tls-dir` needs `--id`. */
export function workerIdentity(id: string | undefined, dir: string | undefined): Identity | undefined {
  if (dir === undefined) return undefined;
  if (id === undefined) throw new ConfigError('--id', 'expected the worker id its certificate names: --tls-dir needs --id');
  return { role: 'worker', name: id };
}
