import { DataError, ReptileError } from '../_utils/errors.js';

/**
 * The one binary form of a float32 vector, used by checkpoints, worker threads and Redis alike
 * (docs/architecture.md, invariant 2): its IEEE-754 bytes, little-endian. Decoding copies into a fresh,
 * aligned `Float32Array`, so a payload sliced out of a larger buffer is safe to use.
 */
export function floatsToBytes(values: Float32Array): Uint8Array {
  assertLittleEndian();
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/**
 * The float32 vector held by `bytes` (see {@link floatsToBytes}); throws when the byte count is
 * not a whole number of floats or, with `expected`, not exactly that many floats.
 */
export function bytesToFloats(bytes: Uint8Array, expected?: number): Float32Array {
  assertLittleEndian();
  if (bytes.byteLength % 4 !== 0) throw new DataError(`a float32 payload of ${bytes.byteLength} bytes is not a whole number of floats: the bytes were truncated or are not reptile-ml's`);
  const count = bytes.byteLength / 4;
  if (expected !== undefined && count !== expected) throw new DataError(`a float32 payload of ${count} values, expected ${expected}: the bytes belong to another model or were truncated`);
  const out = new Float32Array(count);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/**
 * The float32 values of `bytes` without copying them when the bytes are 4-byte aligned (as
 * transferred and freshly read buffers are), else a copy. The view shares memory with `bytes`:
 * use it only for bytes nobody else will change.
 */
export function floatsView(bytes: Uint8Array, expected?: number): Float32Array {
  if (bytes.byteOffset % 4 !== 0 || bytes.byteLength % 4 !== 0) return bytesToFloats(bytes, expected);
  const view = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  if (expected !== undefined && view.length !== expected) throw new DataError(`a float32 payload of ${view.length} values, expected ${expected}: the bytes belong to another model or were truncated`);
  return view;
}

/** The index of the first value that is NaN or ±Infinity, or -1. */
export function firstNonFinite(values: Float32Array): number {
  // x·0 is 0 for every finite x and NaN for NaN and ±Infinity: one cheap pass, then the index only if needed.
  let probe = 0;
  for (let i = 0; i < values.length; i++) probe += values[i]! * 0;
  if (probe === 0) return -1;
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return i;
  return -1;
}

let endianChecked = false;
function assertLittleEndian(): void {
  if (endianChecked) return;
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new ReptileError('reptile-ml payloads are little-endian and this machine is big-endian: run reptile-ml on a little-endian machine');
  endianChecked = true;
}
