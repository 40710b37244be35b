// What a fresh gradient-sized buffer costs on this machine against refilling one already held: the price
// of every `new Float32Array(2.16M)` (dataSync, a copy, a received message) on the step's path. glibc hands
// a block that large out with mmap and unmaps it when freed, so each one is new pages from the kernel,
// zeroed on first touch; on a VM each page fault goes through the hypervisor too. Run it as is and under
// the launcher's malloc settings (launcher/malloc-env.ts) to see what keeping freed memory saves:
//   node --import tsx bench/fresh-memory.ts
//   MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456 node --import tsx bench/fresh-memory.ts
// Prints `fresh-memory floats=.. fresh_ms=.. reused_ms=.. malloc_env=..` (medians over --reps).
import { Command } from 'commander';

/** MobileNet's trainable floats (bench-exchange's gradient). */
const GRADIENT_FLOATS = 2_160_000;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function main(): void {
  const opts = new Command()
    .option('--reps <n>', 'buffers allocated and filled', (v) => Number.parseInt(v, 10), 21)
    .option('--floats <n>', 'floats per buffer', (v) => Number.parseInt(v, 10), GRADIENT_FLOATS)
    .parse()
    .opts<{ reps: number; floats: number }>();
  const held = new Float32Array(opts.floats);
  const fresh: number[] = [];
  const reused: number[] = [];
  let keep: Float32Array | undefined;
  for (let r = 0; r < opts.reps; r++) {
    let t0 = performance.now();
    // Touched as a gradient is: written once, whole. Kept until the next one, as a step keeps its sums.
    keep = new Float32Array(opts.floats).fill(r);
    fresh.push(performance.now() - t0);
    t0 = performance.now();
    held.fill(r);
    reused.push(performance.now() - t0);
  }
  const env = ['MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_'].map((k) => process.env[k] ?? '-').join(',');
  console.log(`fresh-memory floats=${opts.floats} fresh_ms=${median(fresh).toFixed(2)} reused_ms=${median(reused).toFixed(2)} ` +
    `malloc_env=${env} checksum=${(keep?.[0] ?? 0) + held[0]}`);
}

main();
