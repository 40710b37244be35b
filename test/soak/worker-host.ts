/**
 * One process hosting a share of the soak's workers: `node --import tsx test/soak/worker-host.ts <coordinator>
 * <first> <count>` runs Workers `soak-<first>` .. `soak-<first+count-1>` to the end of the job. Their step lines
 * go to stdout (the soak times the first worker's), the rest to stderr; it exits 1 when a worker failed.
 * Each computes its shares with the synthetic gradient (synthetic-share.ts) in place of the model's passes.
 * Spreading the workers over a few processes keeps each event loop's share of 64 allreduces small, as on
 * separate machines, while 64 full processes would not fit beside the other jobs of a 2-core machine.
 */
import { initBackend } from '../../common';
import { Worker } from '../../worker';
import { syntheticShare } from './synthetic-share';

async function main(): Promise<void> {
  const [coordinator, firstText, countText] = process.argv.slice(2);
  const first = Number(firstText);
  const count = Number(countText);
  if (!coordinator || !Number.isInteger(first) || !Number.isInteger(count) || count < 1) {
    throw new Error(`usage: worker-host.ts <coordinator host:port> <first id> <count>, got ${process.argv.slice(2).join(' ')}`);
  }
  await initBackend({ prefer: 'wasm', log: () => undefined });
  const runs = Array.from({ length: count }, (_, k) => {
    const id = `soak-${first + k}`;
    return new Worker({
      coordinator, id, backend: 'wasm', threads: 1, retryLimitMs: 600_000, idInUseWaitMs: 600_000, computeShare: syntheticShare,
      // The soak times steps by soak-1's line per accepted share (run-soak.ts).
      logSteps: true,
      log: (line) => (/(^|: )step \d+ \(epoch \d+\): /.test(line) ? process.stdout : process.stderr).write(`${id}: ${line}\n`),
    }).run();
  });
  await Promise.all(runs);
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`worker host: ${(err as Error).message}\n`);
  process.exit(1);
});
