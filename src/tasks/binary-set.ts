import { DataError, InvalidOptionsError } from '../_utils/errors.js';
import { ArrayDataset, type LabeledDataset } from './labeled.js';

// A few hundred Omniglot characters in one small file, for a page that cannot read the archives:
// `reptile serve --omniglot DIR` packs them from the user's own copy, and the Omniglot page reads
// them back. No Node built-ins here: the universal entry exports the reader.
//
// Layout: the 8 bytes `RPTLBIN1`, a little-endian u32 header length, that many bytes of UTF-8
// JSON ({ side, names, counts, train }), then every image, class by class, as side×side bits
// (1 = paper, most significant bit first), each image padded to whole bytes.

const MAGIC = 'RPTLBIN1';
/** The largest header the reader accepts (the names of a few thousand classes fit well inside). */
const MAX_HEADER = 1 << 20;
/** The largest image side the reader accepts. */
const MAX_SIDE = 512;

/** What a packed binary set holds: its classes split into meta-training and held-out ones. */
export interface BinarySet {
  /** The first `train` classes of the file. */
  train: ArrayDataset;
  /** The remaining classes, never seen in meta-training. */
  test: ArrayDataset;
  /** Every class's name, training classes first. */
  names: string[];
  /** Images per class, in the same order. */
  counts: number[];
  side: number;
}

/**
 * Packs classes of a dataset of square single-channel binary images (every value 0 or 1) into
 * the compact format `readBinarySet` reads: `trainClasses` first, then `testClasses`.
 */
export function packBinarySet(dataset: LabeledDataset, trainClasses: readonly number[], testClasses: readonly number[]): Uint8Array {
  const [h, w, ch] = dataset.inputShape;
  if (dataset.inputShape.length !== 3 || h !== w || ch !== 1) throw new InvalidOptionsError(`packBinarySet packs square single-channel images, got shape [${dataset.inputShape.join(', ')}]`, { option: 'dataset' });
  const side = h!;
  const classes = [...trainClasses, ...testClasses];
  if (new Set(classes).size !== classes.length) throw new InvalidOptionsError('a class is listed twice in `trainClasses` and `testClasses`: list each once', { option: 'testClasses' });
  const names = classes.map((c) => dataset.className(c));
  const counts = classes.map((c) => dataset.countOf(c));
  const header = new TextEncoder().encode(JSON.stringify({ side, names, counts, train: trainClasses.length }));
  const perImage = Math.ceil((side * side) / 8);
  const total = counts.reduce((a, b) => a + b, 0);
  const out = new Uint8Array(12 + header.length + total * perImage);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(8, header.length, true);
  out.set(header, 12);
  const pixels = new Float32Array(side * side);
  let at = 12 + header.length;
  for (const c of classes) {
    for (let i = 0; i < dataset.countOf(c); i++) {
      dataset.load(c, i, pixels, 0);
      for (let p = 0; p < pixels.length; p++) {
        const v = pixels[p]!;
        if (v !== 0 && v !== 1) throw new InvalidOptionsError(`image ${i} of class '${dataset.className(c)}' has the value ${v}: packBinarySet packs binary images (0 or 1) only`, { option: 'dataset' });
        if (v === 1) out[at + (p >> 3)]! |= 0x80 >> (p & 7);
      }
      at += perImage;
    }
  }
  return out;
}

/**
 * Reads a file written by `packBinarySet`, checking every field, so that a truncated, foreign or
 * hostile file is one `DataError` saying what is wrong, never a crash or a silent misread.
 */
export function readBinarySet(bytes: Uint8Array): BinarySet {
  const bad = (what: string): never => {
    throw new DataError(`not a packed image set: ${what}; make it again with 'reptile serve --omniglot DIR'`);
  };
  if (!(bytes instanceof Uint8Array)) bad('expected bytes');
  if (bytes.length < 12 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) bad('it does not start with RPTLBIN1');
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(8, true);
  if (headerLength > MAX_HEADER || 12 + headerLength > bytes.length) bad(`its header claims ${headerLength} bytes, more than the file holds`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(12, 12 + headerLength)));
  } catch {
    bad('its header is not JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) bad('its header is not an object');
  const h = header as Record<string, unknown>;
  const side = h['side'];
  const names = h['names'];
  const counts = h['counts'];
  const train = h['train'];
  if (typeof side !== 'number' || !Number.isInteger(side) || side < 1 || side > MAX_SIDE) bad(`its image side is ${JSON.stringify(side)}, not a whole number from 1 to ${MAX_SIDE}`);
  if (!Array.isArray(counts) || counts.length === 0 || !counts.every((c) => typeof c === 'number' && Number.isInteger(c) && c >= 1 && c <= 100_000)) bad('its counts are not a list of whole numbers ≥ 1');
  if (!Array.isArray(names) || names.length !== (counts as number[]).length || !names.every((n) => typeof n === 'string')) bad('its names do not match its counts');
  const classes = (counts as number[]).length;
  if (typeof train !== 'number' || !Number.isInteger(train) || train < 1 || train >= classes) bad(`its training split (${JSON.stringify(train)}) leaves no classes on one side of ${classes}`);
  const perImage = Math.ceil(((side as number) * (side as number)) / 8);
  const total = (counts as number[]).reduce((a, b) => a + b, 0);
  const expected = 12 + headerLength + total * perImage;
  if (bytes.length !== expected) bad(`it holds ${bytes.length} bytes where its header needs ${expected} (truncated or padded)`);
  const size = (side as number) * (side as number);
  const pixels = new Uint8Array(total * size);
  let at = 12 + headerLength;
  for (let img = 0; img < total; img++, at += perImage) {
    const o = img * size;
    for (let p = 0; p < size; p++) pixels[o + p] = (bytes[at + (p >> 3)]! >> (7 - (p & 7))) & 1;
  }
  const t = train as number;
  const c = counts as number[];
  const n = names as string[];
  const split = c.slice(0, t).reduce((a, b) => a + b, 0) * size;
  const shape = [side as number, side as number, 1];
  return {
    train: new ArrayDataset({ inputShape: shape, pixels: pixels.subarray(0, split), counts: c.slice(0, t), names: n.slice(0, t) }),
    test: new ArrayDataset({ inputShape: shape, pixels: pixels.subarray(split), counts: c.slice(t), names: n.slice(t) }),
    names: n,
    counts: c,
    side: side as number,
  };
}
