import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { bytesToFloats, firstNonFinite, floatsToBytes, floatsView } from '../core/codec.js';
import type { Layout } from '../core/params.js';
import { learnerKind } from '../learners/create-learner.js';
import { validateInnerOptions, type InnerOptions, type InnerStatePolicy, type Learner, type OptimizerState } from '../learners/learner.js';
import type { TaskSource } from '../tasks/task.js';
import { describeValue } from '../_utils/checks.js';
import { DataError, InvalidOptionsError, UnsupportedModelError } from '../_utils/errors.js';

/**
 * A model's non-trainable weights (frozen layers' weights, batch normalisation's moving
 * statistics), which are not in φ and which a model rebuilt from its topology would get freshly
 * initialised: in `model.nonTrainableWeights` order, their names and shapes, their float32 bytes
 * one after another in base64, and the SHA-256 (hex) of those bytes.
 */
export interface FixedWeights {
  readonly names: readonly string[];
  readonly shapes: readonly (readonly number[])[];
  readonly data: string;
  readonly digest: string;
}

/** Bytes of fixed weights a run spec carries at most (64 MiB); a larger model trains with the inline executor. */
export const MAX_FIXED_WEIGHT_BYTES = 64 << 20;

/**
 * How to rebuild the learner on a worker: the tfjs model's topology (JSON, never code), which
 * engine runs it and its options, the layout its parameters must have, and the model's
 * non-trainable weights when it has any. The worker's trainable weights come from each job's φ.
 */
export interface LearnerSpec {
  readonly kind: 'native' | 'wasm' | 'tfjs';
  readonly modelTopology: unknown;
  /** The model's non-trainable weights; absent when it has none. */
  readonly fixedWeights?: FixedWeights;
  readonly innerState: InnerStatePolicy;
  readonly batchStatsAtTest: boolean;
  readonly layout: { readonly hash: string; readonly size: number };
  /** The tfjs backend the tfjs learner computes on (workers use the same one, for the same bits). */
  readonly backend: string;
}

/**
 * A run as workers see it: its id, the learner and the task source (what `source.describe()`
 * returns; `sourceFromSpec` reverses it over a local copy of the data, whose fingerprint it checks).
 */
export interface RunSpec {
  readonly runId: string;
  readonly learner: LearnerSpec;
  readonly source: Record<string, unknown>;
}

/** The inner optimizer's state in its binary wire form. */
export interface WireState {
  readonly kind: 'sgd' | 'adam';
  readonly step: number;
  readonly m?: Uint8Array;
  readonly v?: Uint8Array;
}

/**
 * A piece of a meta-batch (`adapt`) or of an evaluation (`eval`), as plain data that crosses a
 * thread or the network: task `t` of it is drawn from (seed, iteration, t) — `taskStreams` for
 * training, `evalTaskStreams` for evaluation — so no image ever travels. φ and the optimizer state
 * are float32 bytes; `digest` names them, so a result can be matched to the very φ it started from.
 */
export interface TaskJob {
  readonly runId: string;
  readonly kind: 'adapt' | 'eval';
  readonly iteration: number;
  readonly seed: number;
  readonly taskIndices: readonly number[];
  readonly inner: InnerOptions;
  readonly transductive: boolean;
  /** Whether to send back each task's last inner step (FOMAML needs it, Reptile does not). */
  readonly wantLastStep: boolean;
  readonly phi: Uint8Array;
  readonly state?: WireState;
  readonly digest: string;
}

/** What one task of a job gave back: the adapted weights (adapt) or the score (eval). */
export interface TaskOutcome {
  readonly taskIndex: number;
  readonly loss?: number;
  readonly score?: number;
  readonly params?: Uint8Array;
  readonly lastStep?: Uint8Array;
  readonly state?: WireState;
}

/** A job's answer, addressed by (run, kind, iteration, digest) so a stale or foreign one is told apart. */
export interface JobResult {
  readonly runId: string;
  readonly kind: 'adapt' | 'eval';
  readonly iteration: number;
  readonly digest: string;
  readonly layoutHash: string;
  readonly outcomes: readonly TaskOutcome[];
}

/** Largest number of tasks one job may name; an evaluation is cut into jobs well below it. */
export const MAX_TASKS_PER_JOB = 10_000;

/** The spec of a learner, for workers to rebuild it; throws when the learner has no tfjs model to describe. */
export function describeLearner(learner: Learner): LearnerSpec {
  const model = (learner as { model?: tf.LayersModel }).model;
  if (model === undefined) throw new InvalidOptionsError('this `learner` has no tfjs model to send to workers: use the inline executor, or a TfjsLearner or NativeLearner', { option: 'learner' });
  const fixedWeights = fixedWeightsOf(model);
  return {
    kind: learnerKind(learner),
    modelTopology: patchTopology(model, model.toJSON(null, false)),
    ...(fixedWeights ? { fixedWeights } : {}),
    innerState: learner.innerState,
    batchStatsAtTest: (learner as { batchStatsAtTest?: boolean }).batchStatsAtTest ?? true,
    layout: { hash: learner.layout.hash, size: learner.layout.size },
    backend: tf.getBackend(),
  };
}

/**
 * The run spec of a learner and a task source, with an id that is a hash of both unless one is
 * given (of the fixed weights, their names, shapes and digest, not their bytes).
 */
export function runSpecOf(learner: Learner, source: TaskSource, runId?: string): RunSpec {
  const spec = { learner: describeLearner(learner), source: source.describe() };
  const fixed = spec.learner.fixedWeights;
  const hashed = fixed ? { ...spec, learner: { ...spec.learner, fixedWeights: { ...fixed, data: undefined } } } : spec;
  return { runId: runId ?? `r${createHash('sha256').update(JSON.stringify(hashed)).digest('hex').slice(0, 12)}`, ...spec };
}

/** A model's non-trainable weights (see {@link FixedWeights}), or undefined when it has none. */
export function fixedWeightsOf(model: tf.LayersModel): FixedWeights | undefined {
  const vars = model.nonTrainableWeights;
  if (vars.length === 0) return undefined;
  const shapes = vars.map((v) => v.shape as number[]);
  const bytes = shapes.reduce((n, s) => n + 4 * s.reduce((a, b) => a * b, 1), 0);
  if (bytes > MAX_FIXED_WEIGHT_BYTES) {
    throw new UnsupportedModelError(
      `the model's non-trainable weights (frozen layers, batch normalisation statistics) take ${mib(bytes)}, more than the ${mib(MAX_FIXED_WEIGHT_BYTES)} a parallel executor sends to its workers: use the inline executor`,
    );
  }
  const data = Buffer.alloc(bytes);
  let at = 0;
  for (const v of vars) {
    const values = v.read().dataSync() as Float32Array;
    data.set(floatsToBytes(values), at);
    at += values.byteLength;
  }
  return { names: vars.map((v, i) => v.originalName ?? v.name ?? `f${i}`), shapes, data: data.toString('base64'), digest: createHash('sha256').update(data).digest('hex') };
}

/**
 * Puts a run's fixed weights into a model rebuilt from its topology, after checking that they
 * are the model's (names, shapes) and that their bytes are the ones the digest names; throws a
 * one-line reason otherwise.
 */
export function setFixedWeights(model: tf.LayersModel, fixed: FixedWeights | undefined): void {
  const vars = model.nonTrainableWeights;
  if (fixed === undefined) {
    if (vars.length > 0) throw new DataError(`the run's model rebuilt here has ${vars.length} non-trainable weights, but the run's spec carries none: coordinator and worker run different versions`);
    return;
  }
  if (typeof fixed !== 'object' || fixed === null || !Array.isArray(fixed.names) || !Array.isArray(fixed.shapes) || typeof fixed.data !== 'string' || typeof fixed.digest !== 'string') {
    throw new DataError("the run's fixed weights are malformed");
  }
  const names = vars.map((v, i) => v.originalName ?? v.name ?? `f${i}`);
  if (JSON.stringify(names) !== JSON.stringify(fixed.names) || JSON.stringify(vars.map((v) => v.shape)) !== JSON.stringify(fixed.shapes)) {
    throw new DataError(`the run's fixed weights (${fixed.names.map((n) => (typeof n === 'string' ? n : describeValue(n))).join(', ')}) are not those of its model rebuilt here (${names.join(', ')})`);
  }
  const bytes = Buffer.from(fixed.data, 'base64');
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (digest !== fixed.digest) throw new DataError(`the run's fixed weights do not match their digest (${digest.slice(0, 16)}…, the spec says ${fixed.digest.slice(0, 16)}…): corrupted or forged`);
  const values = bytesToFloats(bytes, vars.reduce((n, v) => n + (v.shape as number[]).reduce((a, b) => a * b, 1), 0));
  let at = 0;
  for (const v of vars) {
    const n = (v.shape as number[]).reduce((a, b) => a * b, 1);
    const t = tf.tensor(values.subarray(at, at + n), v.shape as number[], 'float32');
    v.write(t);
    t.dispose();
    at += n;
  }
}

/**
 * The model's topology with what tfjs leaves out of it put back: `SeparableConv2D.getConfig()`
 * drops `depth_multiplier`, which is read here from the layer's depthwise kernel
 * ([kh, kw, in, multiplier]), so a worker rebuilds the very same shapes.
 */
function patchTopology(model: tf.LayersModel, topology: unknown): unknown {
  const layers = new Map<string, tf.layers.Layer>();
  const collect = (m: { layers: tf.layers.Layer[] }): void => {
    for (const l of m.layers) {
      layers.set(l.name, l);
      if ((l as unknown as { layers?: unknown }).layers !== undefined) collect(l as unknown as { layers: tf.layers.Layer[] });
    }
  };
  collect(model);
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const n of node) walk(n);
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    const o = node as Record<string, unknown>;
    const config = o['config'] as Record<string, unknown> | undefined;
    if (o['class_name'] === 'SeparableConv2D' && typeof config === 'object' && config !== null && config['depth_multiplier'] === undefined) {
      const kernel = layers.get(String(config['name']))?.weights.find((w) => /depthwise_kernel/.test(w.originalName ?? w.name));
      if (kernel !== undefined && kernel.shape.length === 4) config['depth_multiplier'] = kernel.shape[3];
    }
    for (const v of Object.values(o)) walk(v);
  };
  walk(topology);
  return topology;
}

function mib(bytes: number): string {
  const m = bytes / (1 << 20);
  return `${Number.isInteger(m) ? m : m.toFixed(1)} MiB`;
}

/** The wire form of an optimizer state. */
export function stateToWire(state: OptimizerState | undefined): WireState | undefined {
  if (state === undefined) return undefined;
  return { kind: state.kind, step: state.step, ...(state.m ? { m: floatsToBytes(state.m) } : {}), ...(state.v ? { v: floatsToBytes(state.v) } : {}) };
}

/** An optimizer state back from its wire form; sizes are checked against `size` floats. */
export function stateFromWire(state: WireState | undefined, size: number): OptimizerState | undefined {
  if (state === undefined) return undefined;
  return { kind: state.kind, step: state.step, ...(state.m ? { m: floatsView(state.m, size) } : {}), ...(state.v ? { v: floatsView(state.v, size) } : {}) };
}

/**
 * The digest a job's results are matched by (16 hex digits of SHA-256): of φ and the optimizer
 * state's kind and step count, which together tell one meta-iteration of a run from any other.
 * The moments' bytes are checked for size and values (finite; the second moment not negative),
 * not hashed (they are 2/3 of the bytes).
 */
export function jobDigest(phi: Uint8Array, state: WireState | undefined): string {
  const h = createHash('sha256').update(phi);
  if (state) h.update(`${state.kind}:${state.step}:${state.m ? 'm' : ''}${state.v ? 'v' : ''}`);
  return h.digest('hex').slice(0, 16);
}

/** What a worker knows before it trusts a job. */
export interface JobExpectations {
  readonly spec: RunSpec;
  /** Upper bound on a task index (tasks per meta-batch or per evaluation). */
  readonly maxTasks?: number;
  /** Reuse the verdict on φ and the state when a job brings the same objects as the last one. */
  readonly verdicts?: BlobVerdicts;
}

/**
 * Why a job must not run, or undefined when it may: every field a worker relies on is checked
 * (known run, kind, whole numbers in range, inner options, φ's size and finiteness, the
 * optimizer state's sizes, the digest). Nothing in a job is ever executed; this is what stands
 * between a forged payload and the engine.
 */
export function checkJob(job: unknown, expect: JobExpectations): string | undefined {
  if (typeof job !== 'object' || job === null) return 'the job is not an object';
  const j = job as Partial<TaskJob>;
  const { spec } = expect;
  if (j.runId !== spec.runId) return `the job is for run ${describeValue(j.runId)}, not '${spec.runId}'`;
  if (j.kind !== 'adapt' && j.kind !== 'eval') return `unknown job kind ${describeValue(j.kind)}`;
  if (!isWhole(j.iteration)) return `iteration ${describeValue(j.iteration)} is not a whole number`;
  if (!isWhole(j.seed) || j.seed > 0xffffffff) return `seed ${describeValue(j.seed)} is not a 32-bit whole number`;
  if (!Array.isArray(j.taskIndices) || j.taskIndices.length === 0) return 'the job names no tasks';
  if (j.taskIndices.length > MAX_TASKS_PER_JOB) return `the job names ${j.taskIndices.length} tasks, more than ${MAX_TASKS_PER_JOB}`;
  const limit = expect.maxTasks ?? Number.MAX_SAFE_INTEGER;
  for (const t of j.taskIndices) if (!isWhole(t) || t >= limit) return `task index ${describeValue(t)} is not a whole number below ${limit}`;
  if (typeof j.transductive !== 'boolean') return 'transductive is not a boolean';
  if (typeof j.wantLastStep !== 'boolean') return 'wantLastStep is not a boolean';
  try {
    validateInnerOptions(j.inner as InnerOptions);
  } catch (e) {
    return `bad inner options: ${(e as Error).message}`;
  }
  if (!(j.inner!.innerIters <= 100_000 && j.inner!.innerBatch <= 100_000)) return 'inner iterations or batch above 100000';
  const s = j.state;
  if (s !== undefined && (typeof s !== 'object' || s === null || (s.kind !== 'sgd' && s.kind !== 'adam') || !isWhole(s.step))) return 'the optimizer state is malformed';
  if (typeof j.digest !== 'string') return 'the digest does not match φ and the optimizer state';
  const blobs = () => blobsProblem(j, spec.learner.layout.size);
  return expect.verdicts ? expect.verdicts.verdict(j as Pick<TaskJob, 'phi' | 'state' | 'digest'>, blobs) : blobs();
}

// φ's and the optimizer state's sizes and values, and the digest over them.
function blobsProblem(j: Partial<TaskJob>, size: number): string | undefined {
  const phiProblem = floatsProblem('φ', j.phi, size);
  if (phiProblem) return phiProblem;
  for (const [name, a] of [['m', j.state?.m], ['v', j.state?.v]] as const) {
    if (a === undefined) continue;
    const p = floatsProblem(`optimizer state ${name}`, a, size, true, name === 'v');
    if (p) return p;
  }
  if (j.digest !== jobDigest(j.phi!, j.state)) return 'the digest does not match φ and the optimizer state';
  return undefined;
}

/**
 * The verdict on the last φ and optimizer state a worker checked. The tasks of one meta-iteration
 * share the very same bytes (a worker reads them once), so scanning and hashing 3 × 4 bytes per
 * parameter again for each task would be wasted: the verdict is reused while φ, m and v are the
 * same objects and the digest and state header are the same strings.
 */
export class BlobVerdicts {
  private last: { phi: unknown; m: unknown; v: unknown; tag: string; problem: string | undefined } | undefined;

  verdict(job: Pick<TaskJob, 'phi' | 'state' | 'digest'>, compute: () => string | undefined): string | undefined {
    const tag = `${job.digest}|${job.state ? `${job.state.kind}:${job.state.step}` : ''}`;
    const l = this.last;
    if (l !== undefined && l.phi === job.phi && l.m === job.state?.m && l.v === job.state?.v && l.tag === tag) return l.problem;
    const problem = compute();
    this.last = { phi: job.phi, m: job.state?.m, v: job.state?.v, tag, problem };
    return problem;
  }
}

/** What the sender of a job expects of its answer. */
export interface ResultExpectations {
  readonly job: Pick<TaskJob, 'runId' | 'kind' | 'iteration' | 'digest' | 'taskIndices'> & { readonly wantLastStep?: boolean };
  readonly layout: Pick<Layout, 'hash' | 'size'>;
  /** Whether each adapt outcome must carry the optimizer's final state (the `shared` policy). */
  readonly wantState: boolean;
  /** Scan every value for NaN and ±Infinity (off for results from this process's own threads). Default true. */
  readonly scanValues?: boolean;
}

/**
 * Why a result must be thrown away, or undefined when it answers the job: run id, kind,
 * iteration, digest (a late answer to an earlier φ fails here), layout hash, one outcome per
 * task of the job, sizes and finite values.
 */
export function checkResult(result: unknown, expect: ResultExpectations): string | undefined {
  if (typeof result !== 'object' || result === null) return 'the result is not an object';
  const r = result as Partial<JobResult>;
  const { job, layout } = expect;
  const scan = expect.scanValues ?? true;
  if (r.runId !== job.runId) return `the result is for run ${describeValue(r.runId)}, not '${job.runId}'`;
  if (r.kind !== job.kind) return `the result is of kind ${describeValue(r.kind)}, not '${job.kind}'`;
  if (r.iteration !== job.iteration) return `the result is for iteration ${describeValue(r.iteration)}, not ${job.iteration}`;
  if (r.digest !== job.digest) return 'the result was computed from another φ (digest mismatch): stale or forged';
  if (r.layoutHash !== layout.hash) return `the result has layout ${typeof r.layoutHash === 'string' ? r.layoutHash : describeValue(r.layoutHash)}, not ${layout.hash}`;
  if (!Array.isArray(r.outcomes) || r.outcomes.length !== job.taskIndices.length) return `the result holds ${Array.isArray(r.outcomes) ? r.outcomes.length : 'no'} outcomes for a job of ${job.taskIndices.length} tasks`;
  for (let i = 0; i < job.taskIndices.length; i++) {
    const o = r.outcomes[i] as Partial<TaskOutcome> | undefined;
    if (typeof o !== 'object' || o === null || o.taskIndex !== job.taskIndices[i]) return `outcome ${i} is not for task ${job.taskIndices[i]}`;
    if (job.kind === 'eval') {
      if (typeof o.score !== 'number' || !Number.isFinite(o.score)) return `task ${o.taskIndex}: the score is not a finite number`;
      continue;
    }
    if (typeof o.loss !== 'number' || Number.isNaN(o.loss)) return `task ${o.taskIndex}: the loss is not a number`;
    for (const [name, a] of [['adapted weights', o.params], ...((job as Partial<TaskJob>).wantLastStep === false ? [] : [['last step', o.lastStep] as const])] as const) {
      const p = floatsProblem(`task ${o.taskIndex}: ${name}`, a, layout.size, scan);
      if (p) return p;
    }
    if (expect.wantState) {
      const s = o.state;
      if (typeof s !== 'object' || s === null || (s.kind !== 'sgd' && s.kind !== 'adam') || !isWhole(s.step)) return `task ${o.taskIndex}: the optimizer state is missing or malformed`;
      for (const [name, a] of [['m', s.m], ['v', s.v]] as const) {
        if (a === undefined) continue;
        const p = floatsProblem(`task ${o.taskIndex}: optimizer state ${name}`, a, layout.size, scan, name === 'v');
        if (p) return p;
      }
    }
  }
  return undefined;
}

function isWhole(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function floatsProblem(name: string, bytes: unknown, size: number, scan = true, nonNegative = false): string | undefined {
  if (!(bytes instanceof Uint8Array)) return `${name} is not binary`;
  if (bytes.byteLength !== size * 4) return `${name} has ${bytes.byteLength} bytes, not ${size * 4} (${size} float32 values)`;
  if (!scan) return undefined;
  const values = floatsView(bytes);
  const at = firstNonFinite(values);
  if (at >= 0) return `${name} holds a non-finite value at ${at}`;
  if (nonNegative) {
    // Adam's second moment is a mean of squares: a negative one would put a NaN in the step.
    for (let i = 0; i < values.length; i++) if (values[i]! < 0) return `${name} holds a negative value at ${i} (a second moment is never negative)`;
  }
  return undefined;
}
