import * as path from 'node:path';
import { renderPlots, type PlotSpec } from '../_utils/plot.js';
import { writeFileAtomicSync } from '../_utils/atomic-write.js';
import { ReptileError } from '../_utils/errors.js';
import { makeDirectory } from '../_utils/make-dir.js';
import type { InnerOptions, Learner } from '../learners/learner.js';
import { createLearner, learnerKind, type LearnerChoice } from '../learners/create-learner.js';
import { createSineModel } from '../learners/models.js';
import { TfjsLearner } from '../learners/tfjs.js';
import { SineTaskSource } from '../tasks/sine.js';
import { evalTaskStreams, evaluate, mse } from '../train/evaluate.js';
import { metaTrain, type MetaCallbacks } from '../train/meta-train.js';
import { exportLayersModel } from './few-shot/export.js';
import type { MetaConfig } from '../train/config.js';

/** The files {@link runSineDemo} writes into `outDir`. */
export const SINE_DEMO_FILES: readonly string[] = ['sine-adaptation.svg', 'sine-learning-curve.svg', 'result.json'];
/** The files {@link runSineDemo} writes into `exportDir`. */
export const SINE_DEMO_EXPORT_FILES: readonly string[] = ['model.json', 'weights.bin', 'sine-demo.json'];

/** Held-out tasks behind each point of the learning curve: enough to show the trend, cheap enough for the minute budget. */
const CURVE_TASKS = 10;

/** Options of the sine-wave demo; the defaults fit in well under a minute on two cores. */
export interface SineDemoOptions {
  metaIters?: number;
  seed?: number;
  /** Held-out tasks evaluated for each start. Default 100. */
  evalTasks?: number;
  /** Inner steps on each held-out task. Default 32, as in the authors' demo. */
  evalSteps?: number;
  /** Directory for the plots and result.json; nothing is written when undefined. */
  outDir?: string;
  /** Points of the learning curve. Default 10. */
  curvePoints?: number;
  callbacks?: MetaCallbacks[];
  /** Where progress and fallback notices go, one line at a time (default: nowhere). */
  log?: (line: string) => void;
  /** Which learner runs the inner loops: `auto` (default) takes the native engine when it is built, else its WebAssembly build. */
  learner?: LearnerChoice;
  /**
   * Also write the meta-learned initialisation here as a TF.js LayersModel (`model.json`,
   * `weights.bin`) with `sine-demo.json` (the seed of the random start, the adaptation settings and
   * the measured MSEs), as the web demo loads it.
   */
  exportDir?: string;
}

/** Mean MSE (with 95% interval) on the held-out tasks after adaptation, for each start. */
export interface SineDemoResult {
  mse: { metaLearned: number; random: number; joint: number };
  ci95: { metaLearned: number; random: number; joint: number };
  /** MSE of each start before any adaptation step. */
  mseBeforeAdaptation: { metaLearned: number; random: number; joint: number };
  metaIters: number;
  evalTasks: number;
  evalSteps: number;
  /** The learner that ran: `native`, `wasm` or `tfjs`. */
  learner: string;
  learningCurve: { iteration: number; mse: number }[];
  seconds: number;
  files: string[];
}

/**
 * The paper's sine-wave experiment (§5.1) end to end: meta-train the 1→64→64→1 tanh network with
 * Reptile (SGD inner loop, 5 steps of lr 0.03 on 10 points, ε annealed 1 → 0: the authors' demo
 * anneals 0.1 → 0 over 30,000 iterations, a larger outer step reaches the same regime in the few
 * thousand iterations that fit in a minute), then on held-out tasks adapt for `evalSteps` steps of
 * lr 0.02 (as the authors' demo) on 10 points and measure the MSE on a grid
 * over [−5, 5], for three starts: the meta-learned init, a random init, and joint training
 * (ordinary SGD on all tasks pooled — Reptile with ε = 1 — which collapses towards f(x) ≈ 0).
 */
export async function runSineDemo(options: SineDemoOptions = {}): Promise<SineDemoResult> {
  const began = performance.now();
  const seed = options.seed ?? 0;
  const metaIters = options.metaIters ?? 4000;
  const evalTasks = options.evalTasks ?? 100;
  const evalSteps = options.evalSteps ?? 32;
  const log = options.log ?? (() => {});
  const source = new SineTaskSource({ shots: 10, gridPoints: 50 });
  const base: Partial<MetaConfig> = {
    metaIters,
    metaBatch: 1,
    innerIters: 5,
    innerBatch: 10,
    learningRate: 0.03,
    optimizer: 'sgd',
    seed,
  };
  const evalInner: InnerOptions = { optimizer: 'sgd', learningRate: 0.02, innerIters: evalSteps, innerBatch: 10 };
  const evalSeed = seed + 1_000_000;
  const evaluateStart = async (learner: Learner, inner: InnerOptions, samples = evalTasks) =>
    evaluate({ learner, source, inner, samples, seed: evalSeed });

  const models = [createSineModel({ seed }), createSineModel({ seed }), createSineModel({ seed })];
  const [meta, random, joint] = models.map((model) => createLearner({ model, learner: options.learner ?? 'auto', log })) as [Learner, Learner, Learner];
  try {
    const curve: { iteration: number; mse: number }[] = [];
    const every = Math.max(1, Math.floor(metaIters / (options.curvePoints ?? 10)));
    const curveCallback: MetaCallbacks = {
      onMetaIterEnd: async (iteration) => {
        if ((iteration + 1) % every === 0) {
          const r = await evaluateStart(meta, evalInner, CURVE_TASKS);
          curve.push({ iteration: iteration + 1, mse: r.mean });
        }
      },
    };
    log(`meta-training (Reptile, ${metaIters} meta-iterations)`);
    await metaTrain({ learner: meta, source, config: { ...base, metaStep: 1, metaStepFinal: 0 }, callbacks: [curveCallback, ...(options.callbacks ?? [])] });
    log(`joint training (ordinary SGD on pooled tasks, ${metaIters} iterations)`);
    await metaTrain({ learner: joint, source, config: { ...base, metaStep: 1, metaStepFinal: 1 } });

    log(`evaluating on ${evalTasks} held-out tasks (${evalSteps} SGD steps on 10 points each)`);
    const after = { meta: await evaluateStart(meta, evalInner), random: await evaluateStart(random, evalInner), joint: await evaluateStart(joint, evalInner) };
    const unadapted = (learner: Learner) => meanUnadaptedMse(learner, source, evalTasks, evalSeed);
    const before = { meta: unadapted(meta), random: unadapted(random), joint: unadapted(joint) };

    const files: string[] = [];
    if (options.outDir !== undefined) {
      makeOutDir(options.outDir);
      const adaptation = await adaptationPanels(source, { 'meta-learned': meta, random, joint }, evalInner, evalSeed);
      files.push(writeFile(options.outDir, 'sine-adaptation.svg', await renderPlots(adaptation, 3)));
      const curvePlot: PlotSpec = {
        title: `Held-out MSE after ${evalSteps} steps (${CURVE_TASKS} tasks)`,
        xLabel: 'meta-iteration',
        yLabel: 'MSE',
        logY: true,
        series: [{ name: 'meta-learned init', x: curve.map((c) => c.iteration), y: curve.map((c) => c.mse), color: '#1f77b4' }],
      };
      files.push(writeFile(options.outDir, 'sine-learning-curve.svg', await renderPlots([curvePlot], 1)));
    }
    const result: SineDemoResult = {
      mse: { metaLearned: after.meta.mean, random: after.random.mean, joint: after.joint.mean },
      ci95: { metaLearned: after.meta.ci95, random: after.random.ci95, joint: after.joint.ci95 },
      mseBeforeAdaptation: { metaLearned: before.meta, random: before.random, joint: before.joint },
      metaIters,
      evalTasks,
      evalSteps,
      learner: learnerKind(meta),
      learningCurve: curve,
      seconds: (performance.now() - began) / 1000,
      files,
    };
    if (options.exportDir !== undefined) {
      // φ goes into a tfjs model of its own: the native engine keeps its weights outside the model.
      const holder = createSineModel({ seed });
      const writer = new TfjsLearner({ model: holder });
      writer.setParams(meta.getParams());
      try {
        result.files.push(...(await exportLayersModel(holder, options.exportDir)));
      } finally {
        writer.dispose();
        holder.dispose();
      }
      const settings = {
        model: 'createSineModel',
        randomInitSeed: seed,
        metaIters,
        train: { optimizer: 'sgd', learningRate: base.learningRate, innerIters: base.innerIters, innerBatch: base.innerBatch, metaStep: 1, metaStepFinal: 0 },
        adapt: { optimizer: 'sgd', learningRate: evalInner.learningRate, innerIters: evalSteps, shots: 10 },
        mse: result.mse,
      };
      result.files.push(writeFile(options.exportDir, 'sine-demo.json', `${JSON.stringify(settings, null, 2)}\n`));
    }
    if (options.outDir !== undefined) {
      result.files.push(path.join(options.outDir, 'result.json'));
      writeFile(options.outDir, 'result.json', `${JSON.stringify(result, null, 2)}\n`);
    }
    return result;
  } finally {
    for (const l of [meta, random, joint]) l.dispose();
    for (const m of models) m.dispose();
  }
}

// The paper's Figure: for a few held-out tasks, the truth, the 10 support points, and each start's
// prediction before and after adaptation.
async function adaptationPanels(source: SineTaskSource, learners: Record<string, Learner>, inner: InnerOptions, seed: number): Promise<PlotSpec[]> {
  const colors: Record<string, string> = { 'meta-learned': '#1f77b4', random: '#ff7f0e', joint: '#2ca02c' };
  const panels: PlotSpec[] = [];
  for (let i = 0; i < 3; i++) {
    const task = source.sample(evalTaskStreams(seed, i).task);
    const gx = Array.from(task.query.inputs);
    const series: PlotSpec['series'][number][] = [
      { name: 'truth', x: gx, y: Array.from(task.query.targets), color: '#000000' },
      { name: 'support points', x: Array.from(task.support.inputs), y: Array.from(task.support.targets), color: '#d62728', markersOnly: true },
    ];
    for (const [name, learner] of Object.entries(learners)) {
      const phi = learner.getParams();
      const pre = learner.predict(task.query);
      const adapted = await learner.adapt(task, inner, evalTaskStreams(seed, i).batches);
      learner.setParams(adapted.params);
      const post = learner.predict(task.query);
      learner.setParams(phi);
      if (name === 'meta-learned') series.push({ name: `${name}, before`, x: gx, y: Array.from(pre), color: colors[name]!, dashed: true });
      series.push({ name: `${name}, after ${inner.innerIters} steps`, x: gx, y: Array.from(post), color: colors[name] ?? '#999' });
    }
    const w = task.wave;
    panels.push({ title: `a = ${w.amplitude.toFixed(2)}, b = ${w.phase.toFixed(2)}`, xLabel: 'x', yLabel: 'y', series });
  }
  return panels;
}

// The same held-out tasks as `evaluate` draws (same seed and streams), scored with no adaptation.
function meanUnadaptedMse(learner: Learner, source: SineTaskSource, tasks: number, seed: number): number {
  let sum = 0;
  for (let i = 0; i < tasks; i++) {
    const task = source.sample(evalTaskStreams(seed, i).task);
    sum += mse(learner.predict(task.query), task.query.targets);
  }
  return sum / tasks;
}

function makeOutDir(dir: string): void {
  try {
    makeDirectory(dir);
  } catch (e) {
    throw new ReptileError(`cannot create the output folder '${dir}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): choose a writable folder`);
  }
}

// Whole or not at all: a reader never sees half a plot or half of result.json.
function writeFile(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  try {
    writeFileAtomicSync(file, text);
  } catch (e) {
    throw new ReptileError(`cannot write '${file}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): choose a writable folder`);
  }
  return file;
}
