import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { DataError } from '../_utils/errors.js';

/** Element types of the IDX format, by the type byte of the magic number. */
export type IdxType = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

/** A decoded IDX array: its element type, its dimensions and its values in row-major order. */
export interface IdxArray {
  readonly type: IdxType;
  readonly dims: readonly number[];
  readonly data: Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
}

/**
 * Largest IDX array the loader reads (1 GiB of values): a gzip stream is inflated at most this far
 * and a header that declares more is refused before anything is allocated.
 */
export const MAX_IDX_BYTES = 1 << 30;

const TYPES: ReadonlyMap<number, { type: IdxType; bytes: number }> = new Map([
  [0x08, { type: 'uint8', bytes: 1 }],
  [0x09, { type: 'int8', bytes: 1 }],
  [0x0b, { type: 'int16', bytes: 2 }],
  [0x0c, { type: 'int32', bytes: 4 }],
  [0x0d, { type: 'float32', bytes: 4 }],
  [0x0e, { type: 'float64', bytes: 8 }],
]);

/**
 * Decodes the IDX format (LeCun's MNIST file format): a magic number `00 00 <type> <ndims>`,
 * `ndims` big-endian uint32 dimensions, then the values, big-endian. A gzip stream (magic
 * `1f 8b`) is inflated first, so `.gz` files read as they come. `source` names the file in the
 * one-line errors thrown for a bad magic number, a truncated file or trailing bytes.
 */
export function parseIdx(bytes: Uint8Array, source = 'IDX data'): IdxArray {
  let buf = bytes;
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf, { maxOutputLength: MAX_IDX_BYTES + 4 + 4 * 255 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw new DataError(`${source} inflates to more than ${MAX_IDX_BYTES >> 20} MiB, the most an IDX file may hold: it is not an MNIST-style file`);
      throw new DataError(`${source} is a corrupt gzip file (${(e as Error).message}): download it again`);
    }
  }
  if (buf.length < 4) throw new DataError(`${source} is truncated (${buf.length} bytes, no IDX header): download it again`);
  const kind = TYPES.get(buf[2]!);
  if (buf[0] !== 0 || buf[1] !== 0 || kind === undefined) {
    const magic = Array.from(buf.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new DataError(`${source} is not an IDX file (magic number ${magic}): pass an MNIST-style IDX file, gzipped or not`);
  }
  const ndims = buf[3]!;
  const headerLen = 4 + 4 * ndims;
  if (buf.length < headerLen) throw new DataError(`${source} is truncated inside its header: download it again`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let d = 0; d < ndims; d++) dims.push(view.getUint32(4 + 4 * d, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const expected = headerLen + count * kind.bytes;
  if (count * kind.bytes > MAX_IDX_BYTES) throw new DataError(`${source} declares ${count} values [${dims.join(', ')}], more than the ${MAX_IDX_BYTES >> 20} MiB an IDX file may hold: the file is corrupt, download it again`);
  if (buf.length < expected) {
    throw new DataError(`${source} is truncated: ${buf.length} bytes, its header [${dims.join(', ')}] needs ${expected}: download it again`);
  }
  if (buf.length > expected) {
    throw new DataError(`${source} has ${buf.length - expected} bytes after its data [${dims.join(', ')}]: the file is corrupt, download it again`);
  }
  return { type: kind.type, dims, data: decodeValues(view, headerLen, count, kind.type) };
}

function decodeValues(view: DataView, offset: number, count: number, type: IdxType): IdxArray['data'] {
  if (type === 'uint8') return new Uint8Array(view.buffer.slice(view.byteOffset + offset, view.byteOffset + offset + count));
  if (type === 'int8') return new Int8Array(view.buffer.slice(view.byteOffset + offset, view.byteOffset + offset + count));
  const out =
    type === 'int16' ? new Int16Array(count) : type === 'int32' ? new Int32Array(count) : type === 'float32' ? new Float32Array(count) : new Float64Array(count);
  for (let i = 0; i < count; i++) {
    if (type === 'int16') out[i] = view.getInt16(offset + 2 * i, false);
    else if (type === 'int32') out[i] = view.getInt32(offset + 4 * i, false);
    else if (type === 'float32') out[i] = view.getFloat32(offset + 4 * i, false);
    else out[i] = view.getFloat64(offset + 8 * i, false);
  }
  return out;
}

/** Reads and decodes one IDX file (gzipped or not); a missing or unreadable file is a one-line {@link DataError}. */
export async function readIdxFile(file: string): Promise<IdxArray> {
  return readIdxFileSync(file);
}

/** {@link readIdxFile}, synchronously (for loaders that are synchronous themselves). */
export function readIdxFileSync(file: string): IdxArray {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a directory' : `cannot be read (${code ?? (e as Error).message})`;
    throw new DataError(`IDX file ${file} ${why}: check the path`);
  }
  return parseIdx(bytes, file);
}

/** Encodes `data` as an IDX file (uint8 only): used to write small fixtures and subsets. */
export function encodeIdxUint8(dims: readonly number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}
