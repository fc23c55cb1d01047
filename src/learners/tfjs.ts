import * as tf from '@tensorflow/tfjs';
import { miniBatches } from '../core/batches.js';
import { Params, sizeOf, sub, type Layout } from '../core/params.js';
import type { Rng } from '../core/rng.js';
import type { Examples, Task } from '../tasks/task.js';
import { checkNoRegularizers, flattenTensors, modelLayout } from './weights.js';
import { lossTargetTensor, lossValue, outputSize, taskLoss } from './loss.js';
import { validateInnerOptions, type AdaptResult, type InnerOptions, type InnerStatePolicy, type Learner, type OptimizerState } from './learner.js';

/** Options of `TfjsLearner`. */
export interface TfjsLearnerOptions {
  /** Any tfjs LayersModel; its trainable weights are the meta-learned parameters. */
  model: tf.LayersModel;
  /** Inner-optimizer state between tasks; default `carry` (supervised-reptile). */
  innerState?: InnerStatePolicy;
  /**
   * Run the model in training mode also when predicting, so that batch normalisation uses the
   * current batch's statistics, as the paper's models do at test time. Default true.
   */
  batchStatsAtTest?: boolean;
}

/**
 * The reference `Learner` over any TensorFlow.js `LayersModel` on any backend: tfjs autograd
 * computes the gradients and the inner optimizers (SGD, Adam) are written out here with flat,
 * checkpointable state, so that the native engine can be checked against it step by step
 * (docs/architecture.md, invariant 3).
 *
 * Adam follows Kingma & Ba with bias correction, θ ← θ − α·m̂/(√v̂ + ε); its moments persist
 * across tasks under `innerState: 'carry'`, as in supervised-reptile, and are zeroed before each
 * task under `'reset'`.
 */
export class TfjsLearner implements Learner {
  readonly model: tf.LayersModel;
  readonly layout: Layout;
  readonly innerState: InnerStatePolicy;
  private readonly vars: tf.Variable[];
  /** Batch normalisation uses the current batch's statistics also when predicting. */
  readonly batchStatsAtTest: boolean;
  private opt: { kind: 'sgd' | 'adam'; step: number; m?: tf.Variable[]; v?: tf.Variable[] } | undefined;

  constructor(options: TfjsLearnerOptions) {
    checkNoRegularizers(options.model);
    this.model = options.model;
    this.innerState = options.innerState ?? 'carry';
    this.batchStatsAtTest = options.batchStatsAtTest ?? true;
    this.vars = this.model.trainableWeights.map((w) => w.read() as tf.Variable);
    this.layout = modelLayout(this.model);
  }

  getParams(): Params {
    return new Params(this.layout, flattenTensors(this.vars));
  }

  setParams(params: Params): void {
    if (params.layout.hash !== this.layout.hash || params.data.length !== this.layout.size) {
      throw new Error(`parameters of layout ${params.layout.hash} (${params.data.length} values) do not fit this model (${this.layout.hash}, ${this.layout.size} values)`);
    }
    let offset = 0;
    tf.tidy(() => {
      this.layout.specs.forEach((spec, i) => {
        const n = sizeOf(spec.shape);
        this.vars[i]!.assign(tf.tensor(params.data.slice(offset, offset + n), spec.shape as number[], 'float32'));
        offset += n;
      });
    });
  }

  async adapt(task: Task, inner: InnerOptions, rng: Rng): Promise<AdaptResult> {
    validateInnerOptions(inner);
    const phi = this.getParams();
    if (this.innerState === 'reset' || this.opt?.kind !== inner.optimizer) this.resetOptimizer(inner.optimizer);
    const batches = miniBatches(task.support.count, inner.innerBatch, inner.innerIters, rng);
    const { x, y } = this.toTensors(task, task.support);
    let before = phi;
    let lossSum = 0;
    try {
      for (let k = 0; k < batches.length; k++) {
        if (k === batches.length - 1) before = k === 0 ? phi : this.getParams();
        lossSum += this.step(task, x, y, batches[k]!, inner);
      }
    } finally {
      x.dispose();
      y.dispose();
    }
    const adapted = this.getParams();
    this.setParams(phi);
    return { params: adapted, lastStep: sub(adapted, before), loss: lossSum / batches.length };
  }

  predict(examples: Examples): Float32Array {
    return tf.tidy(() => {
      const x = tf.tensor(examples.inputs, [examples.count, ...examples.inputShape], 'float32');
      const out = this.model.apply(x, { training: this.batchStatsAtTest }) as tf.Tensor;
      return out.dataSync() as Float32Array;
    });
  }

  /** Mean loss of the current parameters on `examples` (the task's loss for this model, see `taskLoss`). */
  evaluateLoss(task: Task, examples: Examples): number {
    return tf.tidy(() => {
      const { x, y } = this.toTensors(task, examples);
      const out = this.model.apply(x, { training: this.batchStatsAtTest }) as tf.Tensor;
      return lossValue(taskLoss(this.model, task), y, out).dataSync()[0]!;
    });
  }

  getOptimizerState(): OptimizerState | undefined {
    if (!this.opt) return undefined;
    if (this.opt.kind === 'sgd') return { kind: 'sgd', step: this.opt.step };
    return { kind: 'adam', step: this.opt.step, m: flattenTensors(this.opt.m!), v: flattenTensors(this.opt.v!) };
  }

  setOptimizerState(state: OptimizerState | undefined): void {
    this.disposeOptimizer();
    if (!state) return;
    if (state.kind === 'sgd') {
      this.opt = { kind: 'sgd', step: state.step };
      return;
    }
    if (!state.m || !state.v || state.m.length !== this.layout.size || state.v.length !== this.layout.size) {
      throw new Error(`Adam state does not fit this model (expected ${this.layout.size} values per moment)`);
    }
    this.opt = { kind: 'adam', step: state.step, m: this.unflattenToVariables(state.m), v: this.unflattenToVariables(state.v) };
  }

  dispose(): void {
    this.disposeOptimizer();
  }

  private step(task: Task, x: tf.Tensor, y: tf.Tensor, batch: readonly number[], inner: InnerOptions): number {
    const opt = this.opt!;
    opt.step += 1;
    const t = opt.step;
    const loss = taskLoss(this.model, task);
    return tf.tidy(() => {
      const idx = tf.tensor1d(Int32Array.from(batch), 'int32');
      const xb = tf.gather(x, idx);
      const yb = tf.gather(y, idx);
      // The mean, or the sum divided by inner.lossDivisor (the mean times batch / divisor).
      const scale = inner.lossDivisor === undefined ? 1 : batch.length / inner.lossDivisor;
      const { value, grads } = tf.variableGrads(() => {
        const mean = lossValue(loss, yb, this.model.apply(xb, { training: true }) as tf.Tensor);
        return scale === 1 ? mean : tf.mul(mean, scale);
      }, this.vars);
      const lr = inner.learningRate;
      if (opt.kind === 'sgd') {
        for (const v of this.vars) v.assign(tf.sub(v, tf.mul(grads[v.name]!, lr)));
      } else {
        const b1 = inner.beta1 ?? 0;
        const b2 = inner.beta2 ?? 0.999;
        const eps = inner.epsilon ?? 1e-8;
        const c1 = 1 - Math.pow(b1, t);
        const c2 = 1 - Math.pow(b2, t);
        this.vars.forEach((v, i) => {
          const g = grads[v.name]!;
          const m = opt.m![i]!;
          const s = opt.v![i]!;
          m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)));
          s.assign(tf.add(tf.mul(s, b2), tf.mul(tf.square(g), 1 - b2)));
          const update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(s, c2)), eps));
          v.assign(tf.sub(v, tf.mul(update, lr)));
        });
      }
      return value.dataSync()[0]! / scale;
    });
  }

  private toTensors(task: Task, examples: Examples): { x: tf.Tensor; y: tf.Tensor } {
    return tf.tidy(() => {
      const x = tf.tensor(examples.inputs, [examples.count, ...examples.inputShape], 'float32');
      return { x, y: lossTargetTensor(taskLoss(this.model, task), task, examples, outputSize(this.model)) };
    });
  }

  private resetOptimizer(kind: 'sgd' | 'adam'): void {
    this.disposeOptimizer();
    if (kind === 'sgd') {
      this.opt = { kind, step: 0 };
      return;
    }
    const zeros = () => this.vars.map((v) => tf.variable(tf.zerosLike(v), false));
    this.opt = { kind, step: 0, m: zeros(), v: zeros() };
  }

  private unflattenToVariables(flat: Float32Array): tf.Variable[] {
    let offset = 0;
    return this.layout.specs.map((spec) => {
      const n = sizeOf(spec.shape);
      const values = flat.slice(offset, offset + n);
      offset += n;
      return tf.tidy(() => tf.variable(tf.tensor(values, spec.shape as number[], 'float32'), false));
    });
  }

  private disposeOptimizer(): void {
    this.opt?.m?.forEach((t) => t.dispose());
    this.opt?.v?.forEach((t) => t.dispose());
    this.opt = undefined;
  }
}
