import * as path from 'node:path';
import { openRecordedFewShotData } from '../data/open.js';
import type { LearnerChoice } from '../learners/create-learner.js';
import { createLearner } from '../learners/create-learner.js';
import type { Learner } from '../learners/learner.js';
import { FewShotTaskSource } from '../tasks/labeled.js';
import type { Task } from '../tasks/task.js';
import { concatExamples, evalTaskStreams } from '../train/evaluate.js';
import { selectExamples } from '../tasks/task.js';
import { InvalidOptionsError, ReptileError } from '../_utils/errors.js';
import { writeFileAtomicSync } from '../_utils/atomic-write.js';
import { makeDirectory } from '../_utils/make-dir.js';
import { createFewShotModel } from './few-shot/model.js';
import { evalInnerOptions } from './few-shot/settings.js';
import { loadFewShotCheckpoint } from './few-shot/checkpoint.js';

/** Options of {@link writeFewShotDemoTasks}. */
export interface FewShotDemoTasksOptions {
  checkpointDir: string;
  /** The dataset's directory; default the one the checkpoint was trained on. */
  dataDir?: string;
  outDir: string;
  /** Held-out tasks to write. */
  tasks: number;
  /** Seed of the held-out task stream. Default 1,000,000 (never a training stream). */
  seed?: number;
  learner?: LearnerChoice;
  log?: (line: string) => void;
}

/** One network's result on a task, as Node computed it. */
export interface DemoTaskResult {
  predicted: number[];
  /** Softmax probabilities per query, classes in order. */
  probabilities: number[][];
  correct: number;
}

/** The file the few-shot drawing page reads: held-out 1-shot tasks and the adaptation protocol. */
export interface FewShotDemoTasks {
  classes: number;
  shots: 1;
  size: number;
  /** How the page adapts: the checkpoint's evaluation settings, from a fresh Adam state on every task. */
  inner: ReturnType<typeof evalInnerOptions>;
  /** The network before meta-training, as the run started (createOmniglotModel with this seed and init). */
  randomInit: { seed: number; init: string };
  tasks: {
    index: number;
    /** Support drawings (one per class, class c at position c) and queries (one per class), each size² characters, '1' paper and '0' ink. */
    support: string[];
    query: string[];
    queryLabels: number[];
    node: { metaLearned: DemoTaskResult; random: DemoTaskResult };
  }[];
}

/**
 * Writes `tasks.json` for the few-shot drawing page: `tasks` held-out 1-shot N-way tasks drawn
 * from the test characters of the checkpoint's dataset, with what the meta-learned network and
 * the same network before meta-training predict for each query after adapting in Node. Both adapt
 * from a fresh Adam state on every task (as the page does) with the checkpoint's evaluation
 * settings, and classify each query in one batch with the support set (not transductive).
 */
export async function writeFewShotDemoTasks(options: FewShotDemoTasksOptions): Promise<string> {
  const out = await fewShotDemoTasks(options);
  try {
    makeDirectory(options.outDir);
    const file = path.join(options.outDir, 'tasks.json');
    writeFileAtomicSync(file, `${JSON.stringify(out)}\n`);
    return file;
  } catch (e) {
    throw new ReptileError(`cannot write tasks.json into '${options.outDir}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): choose a writable output folder`);
  }
}

/**
 * What {@link writeFewShotDemoTasks} writes, computed without writing anything, so that a caller
 * can check the checkpoint and the data before the first byte of its output exists.
 */
export async function fewShotDemoTasks(options: Omit<FewShotDemoTasksOptions, 'outDir'>): Promise<FewShotDemoTasks> {
  const log = options.log ?? (() => {});
  const { info, learner: meta, model: metaModel } = loadFewShotCheckpoint(options.checkpointDir, { learner: options.learner ?? 'auto', log });
  const randomModel = createFewShotModel({ kind: info.kind, inputShape: info.inputShape, classes: info.settings.classes, seed: info.config.seed, ...(info.settings.init !== undefined ? { init: info.settings.init } : {}) });
  const random = createLearner({ model: randomModel, learner: options.learner ?? 'auto', innerState: info.config.innerState, log });
  try {
    if (info.kind !== 'omniglot') throw new InvalidOptionsError(`the drawing page takes an Omniglot network, and the checkpoint in '${options.checkpointDir}' holds a ${info.kind} one: point \`checkpointDir\` at an Omniglot run`, { option: 'checkpointDir' });
    const data = openRecordedFewShotData(info.data, { seed: info.config.seed, ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}), log });
    const classes = info.settings.classes;
    const source = new FewShotTaskSource({ dataset: data.test, classes, shots: 1 });
    const inner = evalInnerOptions(info.settings, info.config);
    const seed = options.seed ?? 1_000_000;
    const size = info.inputShape[0] ?? 28;
    const out: FewShotDemoTasks = { classes, shots: 1, size, inner, randomInit: { seed: info.config.seed, init: info.settings.init ?? 'fan-in' }, tasks: [] };
    for (let i = 0; i < options.tasks; i++) {
      const streams = evalTaskStreams(seed, i);
      const task = source.sample(streams.task);
      const bySupportLabel = order(task.support.targets);
      const byQueryLabel = order(task.query.targets);
      out.tasks.push({
        index: i,
        support: bySupportLabel.map((k) => bits(task.support.inputs, k, size)),
        query: byQueryLabel.map((k) => bits(task.query.inputs, k, size)),
        queryLabels: byQueryLabel.map((k) => task.query.targets[k]!),
        node: {
          metaLearned: await adaptAndClassify(meta, task, inner, evalTaskStreams(seed, i).batches, byQueryLabel),
          random: await adaptAndClassify(random, task, inner, evalTaskStreams(seed, i).batches, byQueryLabel),
        },
      });
      log(`task ${i}: meta-learned ${out.tasks[i]!.node.metaLearned.correct}/${classes}, random ${out.tasks[i]!.node.random.correct}/${classes}`);
    }
    return out;
  } finally {
    for (const l of [meta, random]) l.dispose();
    for (const m of [metaModel, randomModel]) m.dispose();
  }
}

// Positions of the examples sorted by label, so that support drawing c is class c.
function order(labels: Float32Array): number[] {
  return Array.from(labels.keys()).sort((a, b) => labels[a]! - labels[b]!);
}

function bits(inputs: Float32Array, k: number, size: number): string {
  let s = '';
  for (let p = 0; p < size * size; p++) s += inputs[k * size * size + p]! >= 0.5 ? '1' : '0';
  return s;
}

async function adaptAndClassify(learner: Learner, task: Task, inner: ReturnType<typeof evalInnerOptions>, rng: ReturnType<typeof evalTaskStreams>['batches'], queries: number[]): Promise<DemoTaskResult> {
  const phi = learner.getParams();
  learner.setOptimizerState(undefined);
  const adapted = await learner.adapt(task, inner, rng);
  learner.setParams(adapted.params);
  const classes = task.numClasses ?? 0;
  const predicted: number[] = [];
  const probabilities: number[][] = [];
  let correct = 0;
  for (const q of queries) {
    const batch = concatExamples(task.support, selectExamples(task.query, [q]));
    const logits = Array.from(learner.predict(batch).subarray((batch.count - 1) * classes, batch.count * classes));
    const top = Math.max(...logits);
    const e = logits.map((v) => Math.exp(v - top));
    const sum = e.reduce((a, b) => a + b, 0);
    const p = e.map((v) => v / sum);
    const best = p.indexOf(Math.max(...p));
    predicted.push(best);
    probabilities.push(p.map((v) => Number(v.toFixed(4))));
    if (best === task.query.targets[q]) correct++;
  }
  learner.setParams(phi);
  learner.setOptimizerState(undefined);
  return { predicted, probabilities, correct };
}
