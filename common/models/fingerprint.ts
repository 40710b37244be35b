import { createHash } from 'node:crypto';
import { floatsView } from '../compute';
import { type ModelParts, namedVariables } from './parts';

/**
 * Digest of the model's structure: every variable's `originalName`, shape and dtype, in model order.
 * Two processes that built the same architecture from the same spec get the same fingerprint; a worker
 * whose fingerprint differs from the coordinator's has an incompatible model and is refused.
 */
export function modelFingerprint(parts: ModelParts): string {
  const hash = createHash('sha256');
  for (const v of allVariables(parts)) hash.update(`${v.originalName}:${v.shape.join('x')}:${v.dtype};`);
  return `sha256:${hash.digest('hex').slice(0, 32)}`;
}

/**
 * Digest of the model's values: every variable's bytes (BatchNorm statistics included) in model order.
 * Equal hashes prove two replicas hold bit-identical weights. Read in place (no model-sized copy, which
 * would bring the next full garbage collection closer: docs/compute-in-situ.md).
 */
export function weightsHash(parts: ModelParts): string {
  const hash = createHash('sha256');
  for (const v of allVariables(parts)) {
    const values = floatsView(v.read());
    hash.update(v.originalName);
    hash.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }
  return `sha256:${hash.digest('hex').slice(0, 32)}`;
}

function allVariables(parts: ModelParts) {
  const named = namedVariables(parts);
  return [...named.backbone, ...named.head];
}
