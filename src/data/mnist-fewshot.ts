import * as fs from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Rng } from '../core/rng.js';
import { ReptileError } from '../_utils/errors.js';
import { ArrayDataset, type LabeledDataset } from '../tasks/labeled.js';

/** Options of `loadMnistFewShot`. */
export interface MnistFewShotOptions {
  /** Directory with `train-images-idx3-ubyte` and `train-labels-idx1-ubyte` (optionally `.gz`). */
  dir: string;
  /** Seeds which digits are training classes. */
  seed: number;
  /** Digits used for meta-training (default 5; the rest are test classes). */
  numTrain?: number;
}

// A minimal IDX reader (LeCun's format: magic 0x0000 08 <rank>, big-endian dims, unsigned bytes).
function readIdx(dir: string, base: string, rank: number): { dims: number[]; data: Uint8Array } {
  const plain = path.join(dir, base);
  const file = fs.existsSync(plain) ? plain : fs.existsSync(`${plain}.gz`) ? `${plain}.gz` : undefined;
  if (file === undefined) throw new ReptileError(`MNIST file '${plain}' (or .gz) is missing: pass --data-dir pointing at the folder with the four MNIST IDX files`);
  let bytes: Uint8Array = fs.readFileSync(file);
  if (file.endsWith('.gz')) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new ReptileError(`cannot decompress '${file}' (${(e as Error).message}): the file is damaged; download it again`);
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4 + 4 * rank || view.getUint16(0) !== 0 || bytes[2] !== 0x08 || bytes[3] !== rank) {
    throw new ReptileError(`'${file}' is not an IDX file of unsigned bytes with ${rank} dimension(s): the file is damaged or not MNIST; download it again`);
  }
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i));
  const size = dims.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * rank;
  if (bytes.length !== start + size) throw new ReptileError(`'${file}' holds ${bytes.length - start} values, not the ${size} its header announces: the file is truncated; download it again`);
  return { dims, data: bytes.subarray(start) };
}

/**
 * MNIST as a few-shot problem: the 60,000 training digits grouped by label, and the ten digit
 * classes split by the seed into `numTrain` meta-training classes and the rest for testing
 * (28×28×1, pixel / 255).
 */
export function loadMnistFewShot(options: MnistFewShotOptions): { train: LabeledDataset; test: LabeledDataset; trainDigits: number[]; testDigits: number[] } {
  if (!fs.existsSync(options.dir) || !fs.statSync(options.dir).isDirectory()) {
    throw new ReptileError(`MNIST directory '${options.dir}' does not exist: pass --data-dir pointing at the folder with the MNIST IDX files`);
  }
  const images = readIdx(options.dir, 'train-images-idx3-ubyte', 3);
  const labels = readIdx(options.dir, 'train-labels-idx1-ubyte', 1);
  const [count, h, w] = images.dims as [number, number, number];
  if (labels.dims[0] !== count) throw new ReptileError(`MNIST has ${count} images but ${labels.dims[0]} labels: the files do not belong together; download them again`);
  const numTrain = options.numTrain ?? 5;
  const byDigit: number[][] = Array.from({ length: 10 }, () => []);
  for (let i = 0; i < count; i++) {
    const label = labels.data[i]!;
    if (label > 9) throw new ReptileError(`MNIST label ${label} at index ${i} is not a digit: the labels file is damaged; download it again`);
    byDigit[label]!.push(i);
  }
  const order = Rng.derive(options.seed, 0xd161).shuffle(Array.from({ length: 10 }, (_, i) => i));
  const build = (digits: number[]) => {
    const size = h * w;
    const total = digits.reduce((s, d) => s + byDigit[d]!.length, 0);
    const pixels = new Uint8Array(total * size);
    let o = 0;
    for (const d of digits) for (const i of byDigit[d]!) pixels.set(images.data.subarray(i * size, (i + 1) * size), (o++) * size);
    return new ArrayDataset({ inputShape: [h, w, 1], pixels, counts: digits.map((d) => byDigit[d]!.length), scale: 1 / 255, names: digits.map(String) });
  };
  const trainDigits = order.slice(0, numTrain).sort((a, b) => a - b);
  const testDigits = order.slice(numTrain).sort((a, b) => a - b);
  return { train: build(trainDigits), test: build(testDigits), trainDigits, testDigits };
}
