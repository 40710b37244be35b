import { exitCodeOf, ManagedChild } from '../../launcher';
import { compiledShardwise } from './compiled-shardwise';

/** Runs one `shardwise` command (`args` after the program) to completion: its exit status and output tail. */
export async function runShardwise(args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number; output: string }> {
  const { command, args: base } = compiledShardwise();
  const child = ManagedChild.spawn({ name: args[0] ?? 'shardwise', command, args: [...base, ...args], ...(env ? { env } : {}) });
  return { code: exitCodeOf(await child.exited), output: child.tail() };
}

/** `shardwise scale --coordinator ADDR [--tls-dir DIR] --workers N`: the local path, through the coordinator. */
export function shardwiseScale(coordinator: string, tlsDir: string | undefined, workers: number): Promise<{ code: number; output: string }> {
  return runShardwise(['scale', '--coordinator', coordinator, ...(tlsDir ? ['--tls-dir', tlsDir] : []), '--workers', String(workers)]);
}
