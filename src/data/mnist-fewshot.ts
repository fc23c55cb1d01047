import { Rng } from '../core/rng.js';
import { ArrayDataset, type LabeledDataset } from '../tasks/labeled.js';
import { findMnistFile, readMnistSplitSync } from './mnist.js';
import { requireDataFolder } from './data-dir.js';

/** Options of `loadMnistFewShot`. */
export interface MnistFewShotOptions {
  /** Directory with `train-images-idx3-ubyte` and `train-labels-idx1-ubyte` (optionally `.gz`). */
  dir: string;
  /** Seeds which digits are training classes. */
  seed: number;
  /** Digits used for meta-training (default 5; the rest are test classes). */
  numTrain?: number;
}

/**
 * MNIST as a few-shot problem: the 60,000 training digits grouped by label, and the ten digit
 * classes split by the seed into `numTrain` meta-training classes and the rest for testing
 * (28×28×1, pixel / 255).
 */
export function loadMnistFewShot(options: MnistFewShotOptions): { train: LabeledDataset; test: LabeledDataset; trainDigits: number[]; testDigits: number[] } {
  requireDataFolder(options.dir, 'MNIST directory', 'a folder with the four MNIST IDX files (train-images, train-labels, t10k-images, t10k-labels)');
  const split = readMnistSplitSync({ imagesFile: findMnistFile(options.dir, 'trainImages'), labelsFile: findMnistFile(options.dir, 'trainLabels') });
  const { count, rows: h, cols: w } = split;
  const numTrain = options.numTrain ?? 5;
  const byDigit: number[][] = Array.from({ length: 10 }, () => []);
  for (let i = 0; i < count; i++) {
    byDigit[split.labels[i]!]!.push(i);
  }
  const order = Rng.derive(options.seed, 0xd161).shuffle(Array.from({ length: 10 }, (_, i) => i));
  const build = (digits: number[]) => {
    const size = h * w;
    const total = digits.reduce((s, d) => s + byDigit[d]!.length, 0);
    const pixels = new Uint8Array(total * size);
    let o = 0;
    for (const d of digits) for (const i of byDigit[d]!) pixels.set(split.images.subarray(i * size, (i + 1) * size), (o++) * size);
    return new ArrayDataset({ inputShape: [h, w, 1], pixels, counts: digits.map((d) => byDigit[d]!.length), scale: 1 / 255, names: digits.map(String) });
  };
  const trainDigits = order.slice(0, numTrain).sort((a, b) => a - b);
  const testDigits = order.slice(numTrain).sort((a, b) => a - b);
  return { train: build(trainDigits), test: build(testDigits), trainDigits, testDigits };
}
