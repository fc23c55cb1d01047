import type * as tf from '@tensorflow/tfjs';
import { InvalidOptionsError, UnsupportedModelError, UsageError } from '../_utils/errors.js';
import { checkChoice } from '../_utils/checks.js';
import { miniBatches } from '../core/batches.js';
import { Params, sizeOf, type Layout } from '../core/params.js';
import type { Rng } from '../core/rng.js';
import type { NativeAdaptArgs, NativeAdaptResult, NativeEngine, NativeIsa, NativeLoss, NativePlan } from '../engine/native-plan.js';
import { anyOverlap } from '../engine/wasm-checks.js';
import type { Examples, Task } from '../tasks/task.js';
import { checkNoRegularizers, modelLayout, modelWeights, writeModelWeights } from './weights.js';
import { INNER_STATE_POLICIES, validateInnerOptions, type AdaptCallOptions, type AdaptResult, type InnerOptions, type InnerStatePolicy, type Learner, type OptimizerState, type TaskScoring } from './learner.js';
import { compileModel } from './compile-model.js';
import { lossTargets, taskLoss } from './loss.js';

/** Where an engine learner's engines come from: the addon, or the module compiled to WebAssembly. */
export interface EngineSource {
  /** The learner's class name, for messages. */
  readonly className: string;
  /** The engine as messages name it ("native engine", "WebAssembly engine"). */
  readonly engineName: string;
  /** The learner choice that insists on this engine, for messages (`native`, `wasm`). */
  readonly choice: string;
  /** A new engine for a plan; throws when it rejects the plan. */
  create(plan: NativePlan): NativeEngine;
}

/** Options common to the learners on the engine (see `NativeLearnerOptions`). */
export interface EngineLearnerOptions {
  model: tf.LayersModel;
  innerState?: InnerStatePolicy;
  batchStatsAtTest?: boolean;
  isa?: NativeIsa;
  threads?: 1 | 2;
}

/**
 * A `Learner` on the C++ engine, through the addon (`NativeLearner`) or its WebAssembly build
 * (`WasmLearner`): a tfjs model is compiled into a plan of the engine's layers, and `adapt` runs a
 * task's whole inner loop (paper §3: all minibatches, forward, backward and the fused SGD/Adam
 * step) in one engine call, with buffers kept between calls. Minibatches are drawn with
 * `core/miniBatches` from the same rng as `TfjsLearner`, and the optimizers follow it operation for
 * operation, so both give the same weights within float32 rounding (docs/architecture.md,
 * invariant 3). `writeToModel` puts the weights back into the tfjs model for export.
 */
export class EngineLearner implements Learner {
  readonly model: tf.LayersModel;
  readonly layout: Layout;
  readonly innerState: InnerStatePolicy;
  /** The kernel variant in use (avx512, avx2 or generic; simd128 in WebAssembly). */
  readonly isa: string;
  /** Threads per inner loop (1 or 2). */
  readonly threads: number;
  private readonly source: EngineSource;
  private readonly engine: NativeEngine;
  private readonly plan: NativePlan;
  /** Batch normalisation uses the current batch's statistics also when predicting. */
  readonly batchStatsAtTest: boolean;
  private queue: Promise<unknown> = Promise.resolve();
  private running = 0;
  private disposed = false;

  /** Checked by the subclass first: `options` is an object, and the engine is available. */
  protected constructor(options: EngineLearnerOptions, source: EngineSource, isa: NativeIsa, threads: 1 | 2) {
    if (options.innerState !== undefined) checkChoice('innerState', options.innerState, INNER_STATE_POLICIES);
    if (options.threads !== undefined && options.threads !== 1 && options.threads !== 2) throw new InvalidOptionsError(`\`threads\` must be 1 or 2, got ${String(options.threads)}`, { option: 'threads' });
    checkNoRegularizers(options.model);
    this.model = options.model;
    this.innerState = options.innerState ?? 'carry';
    this.batchStatsAtTest = options.batchStatsAtTest ?? true;
    this.layout = modelLayout(this.model);
    this.source = source;
    this.plan = { ...compileModel(this.model, isa), threads };
    try {
      this.engine = source.create(this.plan);
    } catch (e) {
      throw new UnsupportedModelError(`the ${source.engineName} rejected the model: ${String((e as Error).message).split('\n')[0]}; set \`learner\` to 'tfjs' or 'auto'`, { cause: e });
    }
    this.isa = this.engine.isa();
    this.threads = this.engine.threads();
    this.engine.setParams(modelWeights(this.model));
  }

  getParams(): Params {
    this.assertIdle();
    return new Params(this.layout, this.engine.getParams());
  }

  setParams(params: Params): void {
    this.assertIdle();
    this.assertFits(params, 'parameters');
    this.engine.setParams(params.data);
  }

  applyReptileUpdate(adapted: readonly Params[], epsilon: number): string | undefined {
    this.assertIdle();
    if (adapted.length === 0) throw new InvalidOptionsError('the Reptile update needs at least one adapted parameter vector in `adapted`', { option: 'adapted' });
    for (const p of adapted) this.assertFits(p, 'adapted weights');
    const bad = this.engine.reptileUpdate(adapted.map((p) => p.data), epsilon);
    return bad === undefined ? undefined : `value ${bad.index} is ${bad.value} (not finite)`;
  }

  adapt(task: Task, inner: InnerOptions, rng: Rng, options?: AdaptCallOptions): Promise<AdaptResult> {
    let args: NativeAdaptArgs;
    try {
      const [into] = this.intoOf([options?.into]);
      args = { ...this.prepare(task, inner, rng), ...(into ? { into } : {}) };
    } catch (e) {
      // Bad input rejects, as the async tfjs learner's adapt does, rather than throwing.
      return Promise.reject(e);
    }
    return this.enqueue(async () => this.toResult(await this.engine.adapt(args)));
  }

  /**
   * Adapts to several tasks in order — exactly what awaiting `adapt` for each in turn gives,
   * optimizer state carried from one to the next under `carry` — in a single worker job, which
   * saves a thread hand-off per task (it matters on a busy machine). Each task draws its
   * minibatches from its own rng.
   */
  async adaptTasks(items: readonly { task: Task; rng: Rng; into?: AdaptResult }[], inner: InnerOptions): Promise<AdaptResult[]> {
    if (items.length === 0) return [];
    // Prepared before the first await, so in call order; bad input rejects.
    const into = this.intoOf(items.map((item) => item.into));
    const args = items.map(({ task, rng }, i) => ({ ...this.prepare(task, inner, rng), ...(into[i] ? { into: into[i] } : {}) }));
    return this.enqueue(async () => (await this.engine.adapt(args)).map((r) => this.toResult(r)));
  }

  /**
   * Evaluation's independent test tasks (see `Learner.scoreTasks`), one per core: on a two-thread
   * learner, two single-thread engines each take the next task and, in one worker job, adapt from
   * φ and the optimizer state and predict the scoring batches with the adapted weights. Each task
   * runs whole on one engine, and an engine's results do not depend on its thread count, so every
   * score equals the one-task-at-a-time score bit for bit. With one thread, or when predictions use
   * moving batch-norm statistics (which each adaptation moves, so a task's score depends on the
   * tasks before it), the tasks run in order on this learner's engine.
   */
  async scoreTasks(items: readonly { task: Task; rng: Rng }[], inner: InnerOptions, scoring: TaskScoring): Promise<number[]> {
    if (items.length === 0) return [];
    const args = items.map(({ task, rng }): NativeAdaptArgs => {
      const predict = scoring.batches(task).map((b) => {
        this.checkInputs(b);
        return { inputs: b.inputs, count: b.count };
      });
      return { ...this.prepare(task, inner, rng), predict, batchStats: this.batchStatsAtTest };
    });
    return this.enqueue(async () => {
      const state = this.engine.getOptimizerState();
      const parallel = this.threads > 1 && this.batchStatsAtTest;
      const lanes = parallel ? this.evaluationLanes() : [this.engine];
      if (parallel) {
        const phi = this.engine.getParams();
        for (const lane of lanes) lane.setParams(phi);
      }
      const scores = new Array<number>(items.length);
      let next = 0;
      const lane = async (engine: NativeEngine): Promise<void> => {
        for (let i = next++; i < items.length; i = next++) {
          setEngineState(engine, state);
          const adapted = await engine.adapt(args[i]!);
          scores[i] = scoring.score(items[i]!.task, adapted.outputs!);
        }
      };
      const settled = await Promise.allSettled(lanes.map(lane));
      setEngineState(this.engine, state);
      const failed = settled.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      return scores;
    });
  }

  private lanes: NativeEngine[] | undefined;

  /** The single-thread engines that evaluate tasks side by side, made on first use. */
  private evaluationLanes(): NativeEngine[] {
    this.lanes ??= Array.from({ length: this.threads }, () => this.source.create({ ...this.plan, threads: 1 }));
    return this.lanes;
  }

  private prepare(task: Task, inner: InnerOptions, rng: Rng): NativeAdaptArgs {
    validateInnerOptions(inner);
    // Draw the minibatches now, in call order, so the rng is consumed as TfjsLearner consumes it.
    const batches = miniBatches(task.support.count, inner.innerBatch, inner.innerIters, rng);
    const flat = new Int32Array(batches.length * inner.innerBatch);
    batches.forEach((b, k) => flat.set(b, k * inner.innerBatch));
    const { loss, targets } = this.targetsOf(task, task.support);
    this.checkInputs(task.support);
    // Dropout masks from the same rng, after the minibatches: a pure function of the task.
    const dropout = this.plan.ops.some((op) => op.kind === 'dropout') ? { dropoutSeed: rng.nextUint32() } : {};
    return {
      ...dropout,
      inputs: task.support.inputs,
      targets,
      count: task.support.count,
      batches: flat,
      batchSize: inner.innerBatch,
      optimizer: inner.optimizer,
      learningRate: inner.learningRate,
      beta1: inner.beta1 ?? 0,
      beta2: inner.beta2 ?? 0.999,
      epsilon: inner.epsilon ?? 1e-8,
      reset: this.innerState === 'reset',
      loss,
      ...(inner.lossDivisor !== undefined ? { lossDivisor: inner.lossDivisor } : {}),
    };
  }

  private toResult(r: NativeAdaptResult): AdaptResult {
    return { params: new Params(this.layout, r.params), lastStep: new Params(this.layout, r.lastStep), loss: r.loss };
  }

  // Calls run one at a time in call order; reads and writes of the learner wait for them (assertIdle).
  private enqueue<T>(run: () => Promise<T>): Promise<T> {
    if (this.disposed) return Promise.reject(new UsageError(`this ${this.source.className} has been disposed: create a new one`));
    this.running += 1;
    const result = this.queue.then(run, run).finally(() => {
      this.running -= 1;
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  predict(examples: Examples): Float32Array {
    this.assertIdle();
    this.checkInputs(examples);
    return this.engine.predict(examples.inputs, examples.count, this.batchStatsAtTest);
  }

  /**
   * Loss, parameter gradient, input gradient and output on `examples` (training mode); for gradient
   * checks. Dropout layers apply the masks of `dropoutSeed` when it is given, else none.
   */
  gradients(task: Task, examples: Examples, options: { dropoutSeed?: number } = {}): { loss: number; grad: Params; inputGrad: Float32Array; output: Float32Array } {
    this.assertIdle();
    this.checkInputs(examples);
    const { loss, targets } = this.targetsOf(task, examples);
    const seed = options.dropoutSeed;
    if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32)) throw new InvalidOptionsError(`\`dropoutSeed\` ${seed} is not an integer in [0, 2^32)`);
    const r = this.engine.gradients(examples.inputs, targets, examples.count, loss, seed);
    return { loss: r.loss, grad: new Params(this.layout, r.grad), inputGrad: r.inputGrad, output: r.output };
  }

  getOptimizerState(): OptimizerState | undefined {
    this.assertIdle();
    const s = this.engine.getOptimizerState();
    if (!s) return undefined;
    return s.kind === 'sgd' ? { kind: 'sgd', step: s.step } : { kind: 'adam', step: s.step, m: s.m!, v: s.v! };
  }

  setOptimizerState(state: OptimizerState | undefined): void {
    this.assertIdle();
    if (state?.kind === 'adam' && (!state.m || !state.v || state.m.length !== this.layout.size || state.v.length !== this.layout.size)) {
      throw new InvalidOptionsError(`the Adam state does not fit this model (expected ${this.layout.size} values per moment): pass the state of this model's optimizer`, { option: 'state' });
    }
    setEngineState(this.engine, state);
  }

  /**
   * Writes the current parameters (and the batch-norm moving statistics the native forward passes
   * have tracked) into the tfjs model, e.g. before `model.save`.
   */
  writeToModel(): void {
    this.assertIdle();
    writeModelWeights(this.model, this.engine.getParams(), this.engine.getMovingStats());
  }

  /** Frees the engine's memory (after any adapt still running); the learner cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    void this.queue.then(() => {
      this.engine.release();
      for (const lane of this.lanes ?? []) lane.release();
    });
  }

  // The arrays of the results given as `into` (see AdaptCallOptions), one entry (or undefined) per
  // task, checked: this model's, and no two sharing memory.
  private intoOf(results: readonly (AdaptResult | undefined)[]): (NativeAdaptArgs['into'] | undefined)[] {
    const out = results.map((r) => {
      if (r === undefined) return undefined;
      if (typeof r !== 'object' || r === null) throw new InvalidOptionsError('`into` must be an earlier result of this learner\'s adapt', { option: 'into' });
      this.assertFits(r.params, '`into.params`');
      this.assertFits(r.lastStep, '`into.lastStep`');
      return { params: r.params.data, lastStep: r.lastStep.data };
    });
    if (anyOverlap(out.flatMap((a) => (a ? [a.params, a.lastStep] : [])))) {
      throw new InvalidOptionsError('the results given as `into` share arrays: give each task a result of its own, or none', { option: 'into' });
    }
    return out;
  }

  private assertFits(params: Params, what: string): void {
    if (params?.layout?.hash !== this.layout.hash || params.data?.length !== this.layout.size) {
      throw new InvalidOptionsError(`${what} of layout ${params?.layout?.hash} (${params?.data?.length} values) do not fit this model (${this.layout.hash}, ${this.layout.size} values): pass the parameters of this model`, { option: 'params' });
    }
  }

  private assertIdle(): void {
    if (this.disposed) throw new UsageError(`this ${this.source.className} has been disposed: create a new one`);
    if (this.running > 0) throw new UsageError(`the ${this.source.choice} learner is adapting: await adapt() before reading or changing it`);
  }

  private checkInputs(examples: Examples): void {
    const size = sizeOf(examples.inputShape);
    if (size !== this.plan.inputSize || examples.inputs.length !== examples.count * size) {
      throw new InvalidOptionsError(`examples of shape [${examples.inputShape.join(', ')}] do not fit the model's input (${this.plan.inputSize} values per example): give the model the task source's input shape`);
    }
  }

  // The loss follows the model's output (see taskLoss); the engine fuses a last softmax with the
  // cross-entropy and a last sigmoid with the binary cross-entropy, as the plan ends with that op.
  private targetsOf(task: Task, examples: Examples): { loss: NativeLoss; targets: Float32Array } {
    const loss = taskLoss(this.model, task);
    const targets = lossTargets(loss, task, examples, this.plan.outputSize);
    return { loss: loss === 'mse' ? 'mse' : loss === 'binary-xent' ? 'sigmoid-bce' : 'softmax-xent', targets };
  }
}

/** Puts an optimizer state (or none) into an engine. */
function setEngineState(engine: NativeEngine, state: OptimizerState | undefined): void {
  if (!state) engine.setOptimizerState('none');
  else if (state.kind === 'sgd') engine.setOptimizerState('sgd', state.step);
  else engine.setOptimizerState('adam', state.step, state.m, state.v);
}
