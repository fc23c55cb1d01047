import type { Rng } from '../core/rng.js';
import type { Examples, Task, TaskSource } from './task.js';
import { checkHasMethods, checkInteger, checkOptionsObject, describeValue } from '../_utils/checks.js';
import { InvalidOptionsError } from '../_utils/errors.js';

/**
 * A classification dataset seen as classes of examples: class `c` has `countOf(c)` examples, and
 * `load` writes one of them (an image of `inputShape`, as floats) into a buffer. Loaders in
 * `data/` produce it; `FewShotTaskSource` samples N-way K-shot tasks from it (paper §5).
 */
export interface LabeledDataset {
  readonly inputShape: readonly number[];
  readonly numClasses: number;
  /** Number of examples of class `cls`. */
  countOf(cls: number): number;
  /** Writes example `index` of class `cls` into `out` starting at `offset`. */
  load(cls: number, index: number, out: Float32Array, offset: number): void;
  /** A readable name of class `cls` (e.g. `Latin/character03`). */
  className(cls: number): string;
}

/** One drawn example: which class of the dataset, which example of it, and its task label. */
export interface Pick {
  readonly cls: number;
  readonly index: number;
  readonly label: number;
}

/** Step 1 of a task: `n` distinct classes of the dataset, in random order. */
export function chooseClasses(rng: Rng, dataset: LabeledDataset, n: number): number[] {
  if (!Number.isInteger(n) || n < 1 || n > dataset.numClasses) throw new InvalidOptionsError(`cannot draw ${n} classes from a dataset of ${dataset.numClasses}: \`classes\` must be a whole number from 1 to ${dataset.numClasses}`, { option: 'classes' });
  return rng.sample(dataset.numClasses, n);
}

/**
 * Step 2: `k` distinct examples of each class (without replacement, as supervised-reptile's
 * `Character.sample`), as picks labelled by the class's dataset index.
 */
export function chooseShots(rng: Rng, dataset: LabeledDataset, classes: readonly number[], k: number): Pick[][] {
  return classes.map((cls) => {
    const count = dataset.countOf(cls);
    if (k > count) throw new InvalidOptionsError(`class '${dataset.className(cls)}' has ${count} examples, fewer than the ${k} a task needs: lower \`shots\` or remove that class`, { option: 'shots' });
    return rng.sample(count, k).map((index) => ({ cls, index, label: cls }));
  });
}

/** Step 3: relabels the i-th class group as i, so a task's labels are 0..N−1. */
export function remapLabels(groups: readonly (readonly Pick[])[]): Pick[][] {
  return groups.map((group, label) => group.map((p) => ({ ...p, label })));
}

/** Step 4: decodes the picks into one flat set of examples (targets are the task labels). */
export function loadExamples(dataset: LabeledDataset, picks: readonly Pick[]): Examples {
  const size = dataset.inputShape.reduce((a, b) => a * b, 1);
  const inputs = new Float32Array(picks.length * size);
  const targets = new Float32Array(picks.length);
  picks.forEach((p, i) => {
    dataset.load(p.cls, p.index, inputs, i * size);
    targets[i] = p.label;
  });
  return { count: picks.length, inputs, inputShape: dataset.inputShape, targets, targetShape: [] };
}

/** Options of `FewShotTaskSource`. */
export interface FewShotOptions {
  dataset: LabeledDataset;
  /** N: classes per task. */
  classes: number;
  /** K: support examples per class at evaluation. */
  shots: number;
  /**
   * Support examples per class when sampling training tasks (supervised-reptile's
   * `--train-shots`); when set, tasks have this many support shots and no query.
   */
  trainShots?: number;
  /** Held-out query examples per class (default 1, as in the paper's evaluation). */
  queries?: number;
  /**
   * Where `dataset` came from, as plain JSON (e.g. `{ dataset: 'omniglot', split: 'train',
   * splitSeed, fingerprint }`): `describe()` includes it, so a worker elsewhere can open the same
   * classes from its own copy of the data and check that they are the same.
   */
  origin?: Record<string, unknown>;
}

/**
 * N-way K-shot classification tasks over a `LabeledDataset` (paper §5, supervised-reptile
 * `_sample_mini_dataset` / `_split_train_test`), built from the small steps above: choose N
 * classes, choose shots + queries distinct examples per class, remap labels to 0..N−1, load.
 * The first shots of each class form the support set, the rest the query set. `sample` draws
 * only from the generator it is handed.
 */
export class FewShotTaskSource implements TaskSource {
  readonly kind = 'classification' as const;
  readonly inputShape: readonly number[];
  readonly outputSize: number;
  readonly dataset: LabeledDataset;
  readonly classes: number;
  readonly shots: number;
  readonly trainShots: number | undefined;
  readonly queries: number;
  readonly origin: Record<string, unknown> | undefined;

  constructor(options: FewShotOptions) {
    checkOptionsObject(options, 'FewShotTaskSource', '{ dataset, classes: 5, shots: 1 }');
    const { dataset, classes, shots } = options;
    checkDataset('dataset', dataset);
    const queries = options.trainShots !== undefined ? 0 : (options.queries ?? 1);
    checkInteger('classes', classes, 1);
    checkInteger('shots', shots, 1);
    if (options.trainShots !== undefined) checkInteger('trainShots', options.trainShots, 1);
    checkInteger('queries', queries, 0);
    if (classes > dataset.numClasses) {
      throw new InvalidOptionsError(`\`classes\` is ${classes} but the dataset has ${dataset.numClasses} classes: lower \`classes\` or add classes to the dataset`, { option: 'classes' });
    }
    this.dataset = dataset;
    this.classes = classes;
    this.shots = shots;
    this.trainShots = options.trainShots;
    this.queries = queries;
    this.origin = options.origin;
    this.inputShape = dataset.inputShape;
    this.outputSize = classes;
  }

  /** Support examples per class of the tasks this source samples. */
  get supportShots(): number {
    return this.trainShots ?? this.shots;
  }

  sample(rng: Rng): Task {
    const perClass = this.supportShots + this.queries;
    const groups = remapLabels(chooseShots(rng, this.dataset, chooseClasses(rng, this.dataset, this.classes), perClass));
    const support = groups.flatMap((g) => g.slice(0, this.supportShots));
    const query = groups.flatMap((g) => g.slice(this.supportShots));
    return { kind: 'classification', numClasses: this.classes, support: loadExamples(this.dataset, support), query: loadExamples(this.dataset, query) };
  }

  describe(): Record<string, unknown> {
    return { task: 'few-shot', classes: this.classes, shots: this.shots, trainShots: this.trainShots ?? null, queries: this.queries, datasetClasses: this.dataset.numClasses, ...(this.origin ? { data: this.origin } : {}) };
  }
}

// What the few-shot source needs of its dataset, checked once when it is built (a JS caller may pass anything).
function checkDataset(option: string, dataset: unknown): asserts dataset is LabeledDataset {
  checkHasMethods(option, dataset, ['countOf', 'load', 'className'], 'a LabeledDataset (countOf, load, className, numClasses, inputShape)');
  const d = dataset as { numClasses?: unknown; inputShape?: unknown };
  if (typeof d.numClasses !== 'number' || !Number.isInteger(d.numClasses) || d.numClasses < 0 || !Array.isArray(d.inputShape)) {
    throw new InvalidOptionsError(`\`${option}\` must be a LabeledDataset with a whole \`numClasses\` and an \`inputShape\` list`, { option });
  }
}

/** Options of `ArrayDataset`. */
export interface ArrayDatasetOptions {
  inputShape: readonly number[];
  /** All examples, class after class, each `prod(inputShape)` values. */
  pixels: Uint8Array | Float32Array;
  /** Examples per class (sums to the number of examples in `pixels`). */
  counts: readonly number[];
  /** Multiplies each stored value when loading (e.g. 1/255 for 8-bit images). Default 1. */
  scale?: number;
  names?: readonly string[];
}

/** A `LabeledDataset` held in memory: one typed array, classes stored one after another. */
export class ArrayDataset implements LabeledDataset {
  readonly inputShape: readonly number[];
  readonly numClasses: number;
  private readonly pixels: Uint8Array | Float32Array;
  private readonly counts: readonly number[];
  private readonly starts: number[];
  private readonly scale: number;
  private readonly size: number;
  private readonly names: readonly string[] | undefined;

  constructor(options: ArrayDatasetOptions) {
    checkOptionsObject(options, 'ArrayDataset', '{ inputShape, pixels, counts }');
    if (!Array.isArray(options.inputShape) || !options.inputShape.every((d) => Number.isInteger(d) && d >= 1)) {
      throw new InvalidOptionsError(`\`inputShape\` must be a list of whole numbers ≥ 1, got ${describeValue(options.inputShape)}`, { option: 'inputShape' });
    }
    if (!(options.pixels instanceof Uint8Array || options.pixels instanceof Float32Array)) {
      throw new InvalidOptionsError(`\`pixels\` must be a Uint8Array or Float32Array, got ${describeValue(options.pixels)}`, { option: 'pixels' });
    }
    if (!Array.isArray(options.counts) || !options.counts.every((c) => Number.isInteger(c) && c >= 0)) {
      throw new InvalidOptionsError(`\`counts\` must be a list of whole numbers ≥ 0 (examples per class), got ${describeValue(options.counts)}`, { option: 'counts' });
    }
    if (options.scale !== undefined && !Number.isFinite(options.scale)) throw new InvalidOptionsError(`\`scale\` must be a finite number, got ${describeValue(options.scale)}`, { option: 'scale' });
    this.inputShape = options.inputShape;
    this.size = options.inputShape.reduce((a, b) => a * b, 1);
    this.counts = options.counts;
    this.numClasses = options.counts.length;
    this.starts = [];
    let total = 0;
    for (const c of options.counts) {
      this.starts.push(total);
      total += c;
    }
    if (options.pixels.length !== total * this.size) {
      throw new InvalidOptionsError(`\`pixels\` holds ${options.pixels.length} values, but \`counts\` and \`inputShape\` need ${total} examples × ${this.size}: make them agree`, { option: 'pixels' });
    }
    this.pixels = options.pixels;
    this.scale = options.scale ?? 1;
    this.names = options.names;
  }

  countOf(cls: number): number {
    return this.counts[cls] ?? 0;
  }

  load(cls: number, index: number, out: Float32Array, offset: number): void {
    if (!(cls >= 0 && cls < this.numClasses && index >= 0 && index < this.countOf(cls))) throw new InvalidOptionsError(`no example ${index} of class ${cls}: the dataset has ${this.numClasses} classes, class ${cls} has ${this.countOf(cls)} examples`, { option: 'index' });
    const start = (this.starts[cls]! + index) * this.size;
    const src = this.pixels;
    const s = this.scale;
    for (let i = 0; i < this.size; i++) out[offset + i] = src[start + i]! * s;
  }

  className(cls: number): string {
    return this.names?.[cls] ?? `class${cls}`;
  }
}

/** The classes `indices` of `dataset`, renumbered 0..indices.length−1 (a train or test split). */
export function subsetClasses(dataset: LabeledDataset, indices: readonly number[]): LabeledDataset {
  for (const i of indices) if (!Number.isInteger(i) || i < 0 || i >= dataset.numClasses) throw new InvalidOptionsError(`class ${i} of \`indices\` is not in the dataset (0..${dataset.numClasses - 1})`, { option: 'indices' });
  return {
    inputShape: dataset.inputShape,
    numClasses: indices.length,
    countOf: (cls) => dataset.countOf(indices[cls]!),
    load: (cls, index, out, offset) => dataset.load(indices[cls]!, index, out, offset),
    className: (cls) => dataset.className(indices[cls]!),
  };
}

/**
 * Rotates a square single-channel image counter-clockwise by `quarterTurns` × 90° (PIL's
 * `Image.rotate` direction), exactly: every pixel moves, none is interpolated.
 */
export function rotateSquare(src: Float32Array, srcOffset: number, side: number, quarterTurns: number, out: Float32Array, outOffset: number): void {
  const q = ((quarterTurns % 4) + 4) % 4;
  for (let r = 0; r < side; r++) {
    for (let c = 0; c < side; c++) {
      let sr: number;
      let sc: number;
      if (q === 0) [sr, sc] = [r, c];
      else if (q === 1) [sr, sc] = [c, side - 1 - r];
      else if (q === 2) [sr, sc] = [side - 1 - r, side - 1 - c];
      else [sr, sc] = [side - 1 - c, r];
      out[outOffset + r * side + c] = src[srcOffset + sr * side + sc]!;
    }
  }
}

/**
 * Omniglot's training augmentation (supervised-reptile `augment_dataset`): every class of a
 * square single-channel dataset becomes four classes, rotated by 0°, 90°, 180° and 270°; class
 * 4·c + q is class c turned q quarter turns counter-clockwise.
 */
export function withRotations(dataset: LabeledDataset): LabeledDataset {
  const [h, w, ch] = dataset.inputShape;
  if (h === undefined || h !== w || (ch ?? 1) !== 1) throw new InvalidOptionsError(`rotation augmentation needs square single-channel images, got shape [${dataset.inputShape.join(', ')}]: augment only such a \`dataset\``, { option: 'dataset' });
  const scratch = new Float32Array(h * h);
  return {
    inputShape: dataset.inputShape,
    numClasses: dataset.numClasses * 4,
    countOf: (cls) => dataset.countOf(Math.floor(cls / 4)),
    load: (cls, index, out, offset) => {
      dataset.load(Math.floor(cls / 4), index, scratch, 0);
      rotateSquare(scratch, 0, h, cls % 4, out, offset);
    },
    className: (cls) => `${dataset.className(Math.floor(cls / 4))}@${(cls % 4) * 90}`,
  };
}
