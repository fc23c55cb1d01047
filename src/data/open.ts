import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { InvalidOptionsError } from '../_utils/errors.js';
import type { LabeledDataset } from '../tasks/labeled.js';
import { loadImageFolder, loadMiniImageNet, splitFolder } from './folder.js';
import { loadMnistFewShot } from './mnist-fewshot.js';
import { loadOmniglot, OMNIGLOT_CLASS_SPLITS, splitOmniglot, type OmniglotClassSplit } from './omniglot.js';

/** The few-shot datasets the library can open by name. */
export type FewShotDatasetName = 'omniglot' | 'miniimagenet' | 'mnist' | 'folder';

/** Options of `openFewShotData`. */
export interface OpenFewShotOptions {
  dataset: FewShotDatasetName;
  dataDir: string;
  /** Seeds the class split where the dataset has no fixed one (Omniglot, MNIST, folder). */
  seed: number;
  /** Omniglot only: how the seed picks the characters (default `seeded`). */
  classSplit?: OmniglotClassSplit;
  cacheDir?: string | false;
  /** Where progress and fallback notices go, one line at a time (default: nowhere). */
  log?: (line: string) => void;
}

/** Meta-training and test classes of a few-shot dataset, with a JSON description for checkpoints. */
export interface FewShotData {
  train: LabeledDataset;
  test: LabeledDataset;
  /** Mini-ImageNet's validation classes, when the dataset has them. */
  val?: LabeledDataset;
  /** JSON description for checkpoints: dataset name, directory, class counts, split seed, and a `fingerprint` of the data. */
  describe: Record<string, unknown> & { fingerprint: string };
  /** Seconds spent loading. */
  seconds: number;
  fromCache?: boolean;
}

/**
 * Opens a few-shot dataset by name and splits its classes as the paper does: Omniglot 1,200
 * training characters (rotation-augmented) and 423 test characters; Mini-ImageNet its
 * train/val/test folders (64/16/20 classes); MNIST a seeded split of the digits into 5 and 5;
 * a class-per-folder directory a seeded split of its classes (about 70% for training).
 */
export function openFewShotData(options: OpenFewShotOptions): FewShotData {
  if (options.classSplit !== undefined && !OMNIGLOT_CLASS_SPLITS.includes(options.classSplit)) {
    throw new InvalidOptionsError(`unknown class split '${String(options.classSplit)}': \`classSplit\` must be ${OMNIGLOT_CLASS_SPLITS.map((s) => `'${s}'`).join(' or ')}`, { option: 'classSplit' });
  }
  if (options.classSplit === 'supervised-reptile' && options.dataset !== 'omniglot') {
    throw new InvalidOptionsError(`the supervised-reptile class split is Omniglot's, not ${options.dataset}'s: drop \`classSplit\``, { option: 'classSplit' });
  }
  const data = openUnfingerprinted(options);
  return { ...data, describe: { ...data.describe, fingerprint: datasetFingerprint([data.train, data.test, ...(data.val ? [data.val] : [])]) } };
}

/**
 * Opens the data a run recorded (a checkpoint's data description, or a task source's origin):
 * its dataset, split seed and class split, from `dataDir` when given, else from where the run
 * read it. `seed` stands in for a split seed that older records lack.
 */
export function openRecordedFewShotData(recorded: Record<string, unknown>, options: { seed: number; dataDir?: string; cacheDir?: string | false; log?: (line: string) => void }): FewShotData {
  const splitSeed = typeof recorded['splitSeed'] === 'number' ? recorded['splitSeed'] : options.seed;
  const classSplit = recorded['classSplit'];
  return openFewShotData({
    dataset: recorded['dataset'] as FewShotDatasetName,
    dataDir: options.dataDir ?? (recorded['dataDir'] as string),
    seed: splitSeed,
    ...(classSplit !== undefined ? { classSplit: classSplit as OmniglotClassSplit } : {}),
    ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}),
    ...(options.log ? { log: options.log } : {}),
  });
}

/**
 * A short hash that tells two copies of a dataset apart: every split's shape, class names and
 * counts, and the first example of every class. Checkpoints record it, so that resuming or
 * evaluating on other data is caught; it is not a checksum of every pixel (Mini-ImageNet holds
 * over a billion values), but a different version, split or preprocessing changes it.
 */
export function datasetFingerprint(splits: readonly LabeledDataset[]): string {
  const hash = createHash('sha256');
  for (const d of splits) {
    const size = d.inputShape.reduce((a, b) => a * b, 1);
    const example = new Float32Array(size);
    hash.update(`${d.inputShape.join('x')}|${d.numClasses}|`);
    for (let c = 0; c < d.numClasses; c++) {
      hash.update(`${d.className(c)}:${d.countOf(c)}|`);
      if (d.countOf(c) === 0) continue;
      d.load(c, 0, example, 0);
      hash.update(new Uint8Array(example.buffer));
    }
  }
  return hash.digest('hex').slice(0, 16);
}

function openUnfingerprinted(options: OpenFewShotOptions): Omit<FewShotData, 'describe'> & { describe: Record<string, unknown> } {
  const began = performance.now();
  const dataDir = path.resolve(options.dataDir);
  const seconds = () => (performance.now() - began) / 1000;
  switch (options.dataset) {
    case 'omniglot': {
      const all = loadOmniglot({ dir: dataDir, ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}), ...(options.log ? { log: options.log } : {}) });
      const classSplit = options.classSplit ?? 'seeded';
      const split = splitOmniglot({ dataset: all.dataset, seed: options.seed, classSplit });
      return {
        train: split.train,
        test: split.test,
        // The default split is not recorded, so that the descriptions of earlier runs stay as they were.
        describe: { dataset: 'omniglot', dataDir, characters: all.dataset.numClasses, trainClasses: split.train.numClasses, testClasses: split.test.numClasses, splitSeed: options.seed, ...(classSplit !== 'seeded' ? { classSplit } : {}) },
        seconds: seconds(),
        fromCache: all.fromCache,
      };
    }
    case 'miniimagenet': {
      const mi = loadMiniImageNet({ dir: dataDir });
      return {
        train: mi.train,
        test: mi.test,
        val: mi.val,
        describe: { dataset: 'miniimagenet', dataDir, splitSeed: options.seed, trainClasses: mi.train.numClasses, valClasses: mi.val.numClasses, testClasses: mi.test.numClasses },
        seconds: seconds(),
      };
    }
    case 'mnist': {
      const m = loadMnistFewShot({ dir: dataDir, seed: options.seed });
      return { train: m.train, test: m.test, describe: { dataset: 'mnist', dataDir, splitSeed: options.seed, trainDigits: m.trainDigits, testDigits: m.testDigits }, seconds: seconds() };
    }
    case 'folder': {
      const all = loadImageFolder({ dir: dataDir });
      const split = splitFolder({ dataset: all, seed: options.seed });
      return { train: split.train, test: split.test, describe: { dataset: 'folder', dataDir, trainClasses: split.train.numClasses, testClasses: split.test.numClasses, splitSeed: options.seed }, seconds: seconds() };
    }
    default:
      throw new InvalidOptionsError(`unknown dataset '${String(options.dataset)}': \`dataset\` must be 'omniglot', 'miniimagenet', 'mnist' or 'folder'`, { option: 'dataset' });
  }
}
