import type { NativeAdaptArgs, NativeAdaptResult, NativeEngine, NativeFitArgs, NativeLoss, NativePlan } from './native-plan.js';
import { anyOverlap, checkAdaptArgs, checkF32, checkFitArgs, checkLabels, checkLoss, targetSize, type EngineSizes } from './wasm-checks.js';
import { type WasmExports } from './wasm-module.js';
import { batchNormOps, encodePlan, LOSS_CODES, OPT_CODES } from './wasm-plan.js';

/** Memory taken in the module for one call, freed when the call ends. */
class Scratch {
  private readonly taken: number[] = [];
  constructor(private readonly ex: WasmExports) {}

  alloc(bytes: number): number {
    const p = this.ex.rp_alloc(Math.max(bytes, 4));
    if (p === 0) throw new Error('the WebAssembly engine is out of memory');
    this.taken.push(p);
    return p;
  }

  /** A copy of `data` in the module's memory. */
  put(data: Float32Array | Int32Array | Float64Array): number {
    const p = this.alloc(data.byteLength);
    new Uint8Array(this.ex.memory.buffer, p, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return p;
  }

  /** An array of pointers (32-bit offsets). */
  pointers(list: readonly number[]): number {
    return this.put(Int32Array.from(list));
  }

  free(): void {
    for (const p of this.taken) this.ex.rp_free(p);
    this.taken.length = 0;
  }
}

/**
 * The engine compiled to WebAssembly (native/src/wasm_api.cc) behind the addon's `NativeEngine`
 * interface, so that the native learner runs on it unchanged: the same C++ code, on SIMD128
 * kernels, on one thread. Calls run synchronously on the caller's thread; `adapt` and `fit`
 * return settled promises, as the addon's do once its worker is done.
 */
export class WasmEngine implements NativeEngine {
  private ptr: number;
  private readonly sizes: EngineSizes;
  private readonly norms: { index: number; channels: number }[];
  private failed: string | undefined;

  constructor(
    private readonly ex: WasmExports,
    plan: NativePlan,
  ) {
    const encoded = encodePlan(plan);
    this.sizes = { inputSize: plan.inputSize, outputSize: plan.outputSize, paramSize: plan.paramSize };
    this.norms = batchNormOps(plan);
    const frozen = plan.frozen ?? new Float32Array(0);
    this.ptr = this.call((s) => this.ex.rp_create(s.put(encoded), encoded.length, s.put(frozen), frozen.length));
    if (this.ptr === 0) throw new Error('the WebAssembly engine could not read the plan');
  }

  /** Runs fn with scratch memory; a trap (the engine ran out of memory) leaves this engine unusable. */
  private call<T>(fn: (s: Scratch) => T): T {
    if (this.failed) throw new Error(this.failed);
    if (this.ptr === -1) throw new Error('the WebAssembly engine has been released');
    const s = new Scratch(this.ex);
    try {
      return fn(s);
    } catch (e) {
      if (e instanceof WebAssembly.RuntimeError) {
        this.failed = `the WebAssembly engine failed (${this.cString(this.ex.rp_last_error()) || e.message}); create a new learner`;
        throw new Error(this.failed, { cause: e });
      }
      throw e;
    } finally {
      if (!this.failed) s.free();
    }
  }

  private cString(p: number): string {
    const bytes = new Uint8Array(this.ex.memory.buffer, p);
    return new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0)));
  }

  private f32(p: number, n: number): Float32Array {
    return new Float32Array(this.ex.memory.buffer, p, n);
  }

  isa(): string {
    return this.call(() => this.cString(this.ex.rp_isa(this.ptr)));
  }

  threads(): number {
    return 1;
  }

  setParams(params: Float32Array): void {
    checkF32(params, 'params');
    if (params.length !== this.sizes.paramSize) throw new Error(`params have ${params.length} values, the plan needs ${this.sizes.paramSize}`);
    this.call(() => this.f32(this.ex.rp_params(this.ptr), params.length).set(params));
  }

  getParams(): Float32Array {
    return this.call(() => this.f32(this.ex.rp_params(this.ptr), this.sizes.paramSize).slice());
  }

  reptileUpdate(adapted: Float32Array[], epsilon: number): { index: number; value: number } | undefined {
    if (!Array.isArray(adapted)) throw new TypeError('reptileUpdate needs an array of adapted weights');
    if (typeof epsilon !== 'number') throw new TypeError('reptileUpdate needs a number epsilon');
    if (adapted.length === 0) throw new Error('reptileUpdate needs at least one adapted weight vector');
    for (const a of adapted) if (checkF32(a, 'adapted weights').length !== this.sizes.paramSize) throw new Error(`adapted weights have ${a.length} values, the plan needs ${this.sizes.paramSize}`);
    return this.call((s) => {
      const index = this.ex.rp_reptile_update(this.ptr, s.pointers(adapted.map((a) => s.put(a))), adapted.length, epsilon);
      return index < 0 ? undefined : { index, value: this.ex.rp_next_value(this.ptr, index) };
    });
  }

  setOptimizerState(kind: 'none' | 'sgd' | 'adam', step = 0, m?: Float32Array, v?: Float32Array): void {
    const k = typeof kind === 'string' ? kind : 'none';
    if (k !== 'none' && k !== 'sgd' && k !== 'adam') throw new Error('optimizer kind must be sgd or adam');
    if (k === 'adam' && (checkF32(m, 'm').length !== this.sizes.paramSize || checkF32(v, 'v').length !== this.sizes.paramSize)) throw new Error('Adam state does not fit this model');
    this.call(() => {
      this.ex.rp_set_optimizer(this.ptr, OPT_CODES[k], step);
      if (k === 'adam') {
        this.f32(this.ex.rp_opt_m_to_write(this.ptr), this.sizes.paramSize).set(m!);
        this.f32(this.ex.rp_opt_v_to_write(this.ptr), this.sizes.paramSize).set(v!);
      }
    });
  }

  getOptimizerState(): { kind: 'sgd' | 'adam'; step: number; m?: Float32Array; v?: Float32Array } | undefined {
    return this.call(() => {
      const kind = this.ex.rp_opt_kind(this.ptr);
      const step = this.ex.rp_opt_step(this.ptr);
      if (kind === 0) return undefined;
      if (kind === 1) return { kind: 'sgd' as const, step };
      const P = this.sizes.paramSize;
      return { kind: 'adam' as const, step, m: this.f32(this.ex.rp_opt_m(this.ptr), P).slice(), v: this.f32(this.ex.rp_opt_v(this.ptr), P).slice() };
    });
  }

  getMovingStats(): { mean: Float32Array; variance: Float32Array }[] {
    return this.call(() =>
      this.norms.map(({ index, channels }) => ({
        mean: this.f32(this.ex.rp_moving(this.ptr, index, 0), channels).slice(),
        variance: this.f32(this.ex.rp_moving(this.ptr, index, 1), channels).slice(),
      })),
    );
  }

  adapt(args: NativeAdaptArgs): Promise<NativeAdaptResult>;
  adapt(args: NativeAdaptArgs[]): Promise<NativeAdaptResult[]>;
  adapt(args: NativeAdaptArgs | NativeAdaptArgs[]): Promise<NativeAdaptResult | NativeAdaptResult[]> {
    try {
      const all = Array.isArray(args) ? args : [args];
      for (const a of all) checkAdaptArgs(a, this.sizes);
      if (anyOverlap(all.flatMap((a) => (a.into ? [a.into.params, a.into.lastStep] : [])))) throw new Error('the arrays given as into overlap');
      if (Array.isArray(args)) {
        if (args.length === 0) throw new Error('adapt needs at least one task');
        return Promise.resolve(args.map((a) => this.adaptOne(a)));
      }
      return Promise.resolve(this.adaptOne(args));
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  private adaptOne(a: NativeAdaptArgs): NativeAdaptResult {
    const P = this.sizes.paramSize;
    const out = this.sizes.outputSize;
    const predict = a.predict ?? [];
    return this.call((s) => {
      const adapted = s.alloc(4 * P);
      const lastStep = s.alloc(4 * P);
      const predictX = s.pointers(predict.map((p) => s.put(p.inputs)));
      const predictN = s.put(Int32Array.from(predict, (p) => p.count));
      const outs = predict.map((p) => s.alloc(4 * p.count * out));
      const loss = this.ex.rp_adapt(
        this.ptr,
        s.put(a.inputs),
        s.put(a.targets),
        a.count,
        s.put(a.batches),
        a.batchSize,
        a.batches.length / a.batchSize,
        OPT_CODES[a.optimizer],
        a.learningRate,
        a.beta1,
        a.beta2,
        a.epsilon,
        a.reset ? 1 : 0,
        a.dropoutSeed ?? 0,
        LOSS_CODES[a.loss],
        a.lossDivisor ?? 0,
        predict.length,
        predictX,
        predictN,
        a.batchStats === false ? 0 : 1,
        adapted,
        lastStep,
        s.pointers(outs),
      );
      const into = a.into;
      into?.params.set(this.f32(adapted, P));
      into?.lastStep.set(this.f32(lastStep, P));
      const result: NativeAdaptResult = into
        ? { params: into.params, lastStep: into.lastStep, loss }
        : { params: this.f32(adapted, P).slice(), lastStep: this.f32(lastStep, P).slice(), loss };
      if (a.predict !== undefined) result.outputs = outs.map((p, j) => this.f32(p, predict[j]!.count * out).slice());
      return result;
    });
  }

  fit(f: NativeFitArgs): Promise<number> {
    try {
      checkFitArgs(f, this.sizes);
      return Promise.resolve(
        this.call((s) => {
          const losses = s.alloc(8 * f.losses.length);
          const outputs = s.alloc(4 * f.outputs.length);
          const slow = f.period > 0 ? s.put(f.slow!) : 0;
          const counter = this.ex.rp_fit(
            this.ptr,
            s.put(f.inputs),
            s.put(f.targets),
            s.put(f.order),
            s.put(f.sizes),
            f.sizes.length,
            LOSS_CODES[f.loss],
            OPT_CODES[f.optimizer],
            f.learningRate,
            f.beta1,
            f.beta2,
            f.epsilon,
            slow,
            f.period ?? 0,
            f.alpha ?? 0,
            f.counter ?? 0,
            f.dropoutSeed ?? 0,
            f.firstStep ?? 0,
            losses,
            outputs,
          );
          f.losses.set(new Float64Array(this.ex.memory.buffer, losses, f.losses.length));
          f.outputs.set(this.f32(outputs, f.outputs.length));
          if (slow) f.slow!.set(this.f32(slow, this.sizes.paramSize));
          return counter;
        }),
      );
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  predict(inputs: Float32Array, count: number, batchStats: boolean): Float32Array {
    checkF32(inputs, 'inputs');
    if (!(Number.isInteger(count) && count > 0) || inputs.length !== count * this.sizes.inputSize) throw new Error('inputs do not match count × input size');
    return this.call((s) => {
      const out = s.alloc(4 * count * this.sizes.outputSize);
      this.ex.rp_predict(this.ptr, s.put(inputs), count, batchStats ? 1 : 0, out);
      return this.f32(out, count * this.sizes.outputSize).slice();
    });
  }

  gradients(inputs: Float32Array, targets: Float32Array, count: number, loss: NativeLoss, dropoutSeed?: number): { loss: number; grad: Float32Array; inputGrad: Float32Array; output: Float32Array } {
    checkF32(inputs, 'inputs');
    checkF32(targets, 'targets');
    checkLoss(loss);
    if (!(Number.isInteger(count) && count > 0) || inputs.length !== count * this.sizes.inputSize || targets.length !== count * targetSize(loss, this.sizes)) {
      throw new Error('inputs or targets do not match the example count');
    }
    if (loss === 'softmax-xent') checkLabels(targets, this.sizes);
    const { paramSize: P, outputSize } = this.sizes;
    return this.call((s) => {
      const grad = s.alloc(4 * P);
      const inputGrad = s.alloc(4 * inputs.length);
      const output = s.alloc(4 * count * outputSize);
      const hasSeed = typeof dropoutSeed === 'number';
      const l = this.ex.rp_gradients(this.ptr, s.put(inputs), s.put(targets), count, LOSS_CODES[loss], grad, inputGrad, output, hasSeed ? 1 : 0, hasSeed ? dropoutSeed : 0);
      return { loss: l, grad: this.f32(grad, P).slice(), inputGrad: this.f32(inputGrad, inputs.length).slice(), output: this.f32(output, count * outputSize).slice() };
    });
  }

  release(): void {
    if (this.ptr > 0 && !this.failed) this.ex.rp_release(this.ptr);
    this.ptr = -1;
  }
}
