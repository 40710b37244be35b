/**
 * glibc malloc settings for the shardwise processes the launcher starts. A step moves several buffers the
 * size of the model's gradient (2.16 M floats, 8.6 MB: the share's sums, the held copy, the allreduce's
 * input and result). By default glibc serves a block that large with mmap and unmaps it when freed, so each
 * new one is fresh pages, zeroed by the kernel on first touch; on a VM every such fault also goes through
 * the hypervisor. bench/fresh-memory.ts measured it on the 2-core development VM: 34 ms for a fresh 8.6 MB
 * buffer, against 1.05 ms under these settings (0.3 ms to refill one held). With them, blocks below 32 MiB
 * come from the heap and up to 128 MiB of freed heap is kept for the next step instead of being returned.
 * bin/shardwise and deploy/Dockerfile set the same values for processes started without the launcher.
 */
export const MALLOC_SETTINGS: Readonly<Record<string, string>> = Object.freeze({
  // glibc's ceiling for this setting on 64-bit; larger values are ignored.
  MALLOC_MMAP_THRESHOLD_: String(32 * 1024 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(128 * 1024 * 1024),
});

/** `env` with {@link MALLOC_SETTINGS} for each one it does not set itself (the caller's values win). */
export function withMallocSettings(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...MALLOC_SETTINGS, ...env };
}
