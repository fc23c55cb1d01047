import * as tf from '@tensorflow/tfjs';
import { CheckpointError, InvalidOptionsError } from '../_utils/errors.js';

/** A tensor with its name, as optimizers exchange gradients and weights (tfjs-core's NamedTensor). */
type NamedTensor = { name: string; tensor: tf.Tensor };

/** Inner optimizers that {@link Reptile} can build by name (with `learningRate`). */
export type InnerOptimizerName = 'sgd' | 'adam';

/** Options of {@link Reptile}. */
export interface ReptileOptions {
  /**
   * Learning rate of the inner optimizer when it is given by name (default 0.01). Not allowed
   * together with an optimizer instance, whose own learning rate counts.
   */
  learningRate?: number;
  /** The fast optimizer: `'adam'` (default; tfjs's Adam, β1 = 0.9, β2 = 0.999), `'sgd'`, or any `tf.Optimizer`. */
  innerOptimizer?: InnerOptimizerName | tf.Optimizer;
  /** k: fast steps between two synchronisations of the slow weights (default 5). */
  syncPeriod?: number;
  /** ε in [0, 1]: how far the slow weights move toward the fast weights at a synchronisation (default 0.5). */
  metaStepSize?: number;
}

/** Defaults; see the class documentation and docs/optimizer-study.md for why. */
export const REPTILE_DEFAULTS = { learningRate: 0.01, innerOptimizer: 'adam', syncPeriod: 5, metaStepSize: 0.5 } as const;

const SLOW = 'reptile/slow/';
const INNER = 'reptile/inner/';
const INNER_ACC = 'reptile/inner-acc/';

/**
 * Reptile used as an ordinary optimizer (paper §3, Algorithm 1, with the training set as the only
 * task; the Lookahead form of Zhang et al. 2019): the inner optimizer takes `syncPeriod` = k steps
 * on the model's (fast) weights θ; then the slow weights φ move ε of the way toward them,
 * φ ← (1 − ε)·φ + ε·θ, and the fast weights restart from φ. It plugs into
 * `model.compile({ optimizer: new Reptile(...) })`, is registered for serialisation as
 * `'Reptile'`, and its `getWeights`/`setWeights` carry the slow weights and the inner optimizer's
 * state, so `model.save(..., { includeOptimizer: true })` and `tf.loadLayersModel` resume training
 * exactly. Defaults: k = 5 and ε = 0.5 are Lookahead's published settings (a k × ε grid in
 * docs/optimizer-study.md could not separate alternatives from seed noise); the inner optimizer
 * is Adam because there, at the documented learning rate 0.01, Reptile over SGD trains markedly
 * slower than plain SGD (the slow weights keep about half of each period's progress), while
 * Reptile over Adam reaches 90–93% between 0.001 and 0.01. After a sync step (every k-th step)
 * the model holds φ; in between it holds the fast weights.
 */
export class Reptile extends tf.Optimizer {
  /** Name under which the class is registered with `tf.serialization`. */
  static readonly className = 'Reptile';

  readonly learningRate: number;
  readonly syncPeriod: number;
  readonly metaStepSize: number;
  readonly inner: tf.Optimizer;
  private readonly innerName: InnerOptimizerName | undefined;
  private ownsInner: boolean;
  // Slow weights by position in the gradient list, as tfjs's own optimizers keep their state:
  // variable names change when a saved model is loaded again, positions do not.
  private slow: (tf.Variable | undefined)[] = [];
  private readonly epsScalar: tf.Scalar;
  private readonly oneMinusEpsScalar: tf.Scalar;

  constructor(options: ReptileOptions = {}) {
    super();
    const opts = validateOptions(options);
    this.syncPeriod = opts.syncPeriod;
    this.metaStepSize = opts.metaStepSize;
    if (typeof opts.innerOptimizer === 'string') {
      this.innerName = opts.innerOptimizer;
      this.learningRate = opts.learningRate;
      this.inner = opts.innerOptimizer === 'sgd' ? tf.train.sgd(opts.learningRate) : tf.train.adam(opts.learningRate);
      this.ownsInner = true;
    } else {
      this.innerName = undefined;
      this.inner = opts.innerOptimizer;
      const lr = (this.inner as unknown as { learningRate?: unknown }).learningRate;
      this.learningRate = typeof lr === 'number' ? lr : Number.NaN;
      this.ownsInner = false;
    }
    this.epsScalar = tf.keep(tf.scalar(this.metaStepSize));
    this.oneMinusEpsScalar = tf.keep(tf.scalar(1 - this.metaStepSize));
  }

  /** Applies one inner step, and on every `syncPeriod`-th step the slow-weight update (the Reptile step). */
  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const entries: [string, tf.Tensor | undefined][] = Array.isArray(variableGradients)
      ? variableGradients.map((g) => [g.name, g.tensor])
      : Object.keys(variableGradients).map((name) => [name, variableGradients[name]]);
    const registered = tf.engine().registeredVariables;
    const vars = entries.map(([name]) => {
      const v = registered[name];
      if (v === undefined) throw new InvalidOptionsError(`Reptile: no variable named '${name}' is registered: pass gradients of the model's trainable variables`, { option: 'variableGradients' });
      return v;
    });
    // φ starts at the weights as they are before the first inner step.
    vars.forEach((v, i) => {
      const s = this.slow[i];
      if (s === undefined) this.slow[i] = tf.tidy(() => tf.variable(v.clone(), false));
      else if (!tf.util.arraysEqual(s.shape, v.shape)) {
        throw new CheckpointError(`Reptile: slow weight ${i} has shape [${s.shape.join(', ')}] but variable '${v.name}' has [${v.shape.join(', ')}]: the optimizer state belongs to another model; load the state saved with this model`);
      }
    });
    this.inner.applyGradients(variableGradients);
    this.incrementIterations();
    if (this.iterations % this.syncPeriod !== 0) return;
    tf.tidy(() => {
      vars.forEach((v, i) => {
        if (entries[i]![1] === undefined) return;
        const s = this.slow[i]!;
        // (1 − ε)·φ + ε·θ rather than φ + ε(θ − φ): exact at ε = 0 (φ stays) and ε = 1 (φ = θ).
        s.assign(tf.add(tf.mul(this.oneMinusEpsScalar, s), tf.mul(this.epsScalar, v)));
        v.assign(s);
      });
    });
  }

  /** Weights for `model.save(..., { includeOptimizer: true })`: iterations, slow weights, then the inner optimizer's. */
  override async getWeights(): Promise<NamedTensor[]> {
    const out: NamedTensor[] = [await this.saveIterations()];
    this.slow.forEach((s, i) => {
      if (s !== undefined) out.push({ name: `${SLOW}${i}`, tensor: s });
    });
    let innerWeights: NamedTensor[];
    try {
      innerWeights = await this.inner.getWeights();
    } catch (e) {
      // Saving the slow weights alone would load back as a different optimizer: refuse instead.
      throw new InvalidOptionsError(
        `Reptile: the inner optimizer ${this.inner.getClassName()} cannot save its state (${String((e as Error).message).split('\n')[0]}): save the model without includeOptimizer, or use an \`innerOptimizer\` that implements getWeights (e.g. 'sgd' or 'adam')`,
        { option: 'innerOptimizer', cause: e },
      );
    }
    for (const w of innerWeights) out.push({ name: `${INNER}${w.name}`, tensor: w.tensor });
    // tfjs's Adam restores its bias-correction powers as β^(t+1) with pow(), which differs from the
    // running product in the last bits; saving the running values keeps a resumed run exact.
    const acc = adamAccumulators(this.inner);
    if (acc) out.push({ name: `${INNER_ACC}beta1`, tensor: acc.accBeta1 }, { name: `${INNER_ACC}beta2`, tensor: acc.accBeta2 });
    return out;
  }

  /** Restores the state written by {@link Reptile.getWeights}. */
  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const rest = await this.extractIterations(weightValues);
    const slow = rest.filter((w) => w.name.startsWith(SLOW));
    const inner = rest.filter((w) => w.name.startsWith(INNER)).map((w) => ({ name: w.name.slice(INNER.length), tensor: w.tensor }));
    const acc = rest.filter((w) => w.name.startsWith(INNER_ACC));
    const unknown = rest.find((w) => !w.name.startsWith(SLOW) && !w.name.startsWith(INNER) && !w.name.startsWith(INNER_ACC));
    if (unknown) throw new CheckpointError(`Reptile: unexpected optimizer weight '${unknown.name}': the saved state was not written by Reptile; load a model saved with the Reptile optimizer`);
    tf.dispose(this.slow.filter((s): s is tf.Variable => s !== undefined));
    this.slow = [];
    for (const w of slow) {
      const i = Number(w.name.slice(SLOW.length));
      if (!Number.isInteger(i) || i < 0) throw new CheckpointError(`Reptile: bad slow-weight name '${w.name}': the saved optimizer state is damaged; save the model again`);
      this.slow[i] = tf.variable(w.tensor.clone(), false);
    }
    if (inner.length > 0) await this.inner.setWeights(inner);
    const target = adamAccumulators(this.inner);
    if (target) {
      for (const w of acc) {
        const key = w.name.slice(INNER_ACC.length) === 'beta1' ? 'accBeta1' : 'accBeta2';
        target[key].assign(w.tensor);
      }
    }
  }

  /** Serialisable configuration; the inner optimizer is stored as `{ className, config }`. */
  override getConfig(): tf.serialization.ConfigDict {
    return {
      learningRate: this.learningRate,
      innerOptimizer: { className: this.inner.getClassName(), config: this.inner.getConfig() },
      syncPeriod: this.syncPeriod,
      metaStepSize: this.metaStepSize,
    };
  }

  /** Rebuilds a Reptile from {@link Reptile.getConfig} (also after tfjs-layers' snake_case round trip). */
  static override fromConfig<T extends tf.serialization.Serializable>(cls: tf.serialization.SerializableConstructor<T>, config: tf.serialization.ConfigDict): T {
    const innerCfg = config['innerOptimizer'] as { className?: unknown; config?: unknown } | string | undefined;
    const common = { syncPeriod: config['syncPeriod'] as number | undefined, metaStepSize: config['metaStepSize'] as number | undefined };
    const make = (o: ReptileOptions) => new (cls as unknown as new (o: ReptileOptions) => T)(o);
    if (innerCfg === undefined || typeof innerCfg === 'string') {
      return make({ ...common, innerOptimizer: innerCfg as InnerOptimizerName | undefined, learningRate: config['learningRate'] as number | undefined });
    }
    const name = innerCfg.className;
    const entry = typeof name === 'string' ? tf.serialization.SerializationMap.getMap().classNameMap[name] : undefined;
    if (entry === undefined) throw new CheckpointError(`Reptile: unknown inner optimizer class '${String(name)}' in the saved configuration: register it with tf.serialization.registerClass before loading`);
    const [innerCls, innerFromConfig] = entry;
    const inner = innerFromConfig(innerCls, (innerCfg.config ?? {}) as tf.serialization.ConfigDict) as unknown as tf.Optimizer;
    const made = make({ ...common, innerOptimizer: inner });
    // The inner optimizer was built here, so the Reptile instance owns it and disposes it.
    (made as unknown as { ownsInner: boolean }).ownsInner = true;
    return made;
  }

  /** Frees the slow weights, the cached scalars and the inner optimizer when this instance built it. */
  override dispose(): void {
    tf.dispose(this.slow.filter((s): s is tf.Variable => s !== undefined));
    this.slow = [];
    this.epsScalar.dispose();
    this.oneMinusEpsScalar.dispose();
    if (this.ownsInner) this.inner.dispose();
    super.dispose();
  }

  /** The slow weights φ in gradient-list order (undefined before the first step); for inspection and tests. */
  getSlowWeights(): (tf.Tensor | undefined)[] {
    return [...this.slow];
  }

  /** The name of the inner optimizer when it was given by name. */
  get innerOptimizerName(): InnerOptimizerName | undefined {
    return this.innerName;
  }
}

tf.serialization.registerClass(Reptile);

function adamAccumulators(opt: tf.Optimizer): { accBeta1: tf.Variable; accBeta2: tf.Variable } | undefined {
  if (!(opt instanceof tf.AdamOptimizer)) return undefined;
  const o = opt as unknown as { accBeta1?: tf.Variable; accBeta2?: tf.Variable };
  return o.accBeta1 && o.accBeta2 ? { accBeta1: o.accBeta1, accBeta2: o.accBeta2 } : undefined;
}

type ValidOptions = Required<Omit<ReptileOptions, 'innerOptimizer'>> & { innerOptimizer: InnerOptimizerName | tf.Optimizer };

/** Checks every option, throwing one {@link InvalidOptionsError} line that names the option and the fix. */
function validateOptions(options: ReptileOptions): ValidOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidOptionsError(`Reptile options must be an object such as { learningRate: 0.01 }, got ${describe(options)}`);
  }
  const known = new Set(['learningRate', 'innerOptimizer', 'syncPeriod', 'metaStepSize']);
  const extra = Object.keys(options).find((k) => !known.has(k));
  if (extra !== undefined) throw new InvalidOptionsError(`unknown Reptile option '${extra}': use learningRate, innerOptimizer, syncPeriod or metaStepSize`, { option: extra });
  const inner = options.innerOptimizer ?? REPTILE_DEFAULTS.innerOptimizer;
  const isInstance = typeof inner === 'object' && inner !== null && typeof (inner as tf.Optimizer).applyGradients === 'function';
  if (!isInstance && inner !== 'sgd' && inner !== 'adam') {
    throw new InvalidOptionsError(`Reptile \`innerOptimizer\` must be 'sgd', 'adam' or a tf.Optimizer instance, got ${describe(inner)}`, { option: 'innerOptimizer' });
  }
  if (isInstance && options.learningRate !== undefined) {
    throw new InvalidOptionsError('Reptile `learningRate` applies only to a named `innerOptimizer`: set the learning rate on the optimizer instance instead', { option: 'learningRate' });
  }
  const learningRate = options.learningRate ?? REPTILE_DEFAULTS.learningRate;
  if (typeof learningRate !== 'number' || !Number.isFinite(learningRate) || learningRate <= 0) {
    throw new InvalidOptionsError(`Reptile \`learningRate\` must be a positive finite number, got ${describe(learningRate)}`, { option: 'learningRate' });
  }
  const syncPeriod = options.syncPeriod ?? REPTILE_DEFAULTS.syncPeriod;
  if (typeof syncPeriod !== 'number' || !Number.isInteger(syncPeriod) || syncPeriod < 1) {
    throw new InvalidOptionsError(`Reptile \`syncPeriod\` must be a whole number ≥ 1 (fast steps between syncs), got ${describe(syncPeriod)}`, { option: 'syncPeriod' });
  }
  const metaStepSize = options.metaStepSize ?? REPTILE_DEFAULTS.metaStepSize;
  if (typeof metaStepSize !== 'number' || !Number.isFinite(metaStepSize) || metaStepSize < 0 || metaStepSize > 1) {
    throw new InvalidOptionsError(`Reptile \`metaStepSize\` (ε) must be a number in [0, 1], got ${describe(metaStepSize)}`, { option: 'metaStepSize' });
  }
  return { learningRate, innerOptimizer: inner as InnerOptimizerName | tf.Optimizer, syncPeriod, metaStepSize };
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : typeof v;
}
