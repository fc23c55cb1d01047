import { InvalidOptionsError } from '../_utils/errors.js';

/** One named tensor inside a flat parameter vector. */
export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

/**
 * The layout of a flat parameter vector: the names and shapes of its pieces, in order, and a
 * hash of both so that two ends of a wire (or a checkpoint and a model) can check they agree.
 */
export interface Layout {
  readonly specs: readonly ParamSpec[];
  readonly size: number;
  readonly hash: string;
}

/** Builds a `Layout` from the specs of its pieces. */
export function createLayout(specs: readonly ParamSpec[]): Layout {
  let size = 0;
  for (const s of specs) {
    for (const d of s.shape) {
      if (!Number.isInteger(d) || d < 0) throw new InvalidOptionsError(`\`specs\`: parameter '${s.name}' has the shape [${s.shape.join(', ')}]: every dimension must be a whole number ≥ 0`, { option: 'specs' });
    }
    size += sizeOf(s.shape);
  }
  const frozen = specs.map((s) => ({ name: s.name, shape: [...s.shape] }));
  return { specs: frozen, size, hash: hashLayout(frozen) };
}

/** Number of elements of a shape. */
export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

// The hash ignores names on purpose: tfjs numbers its layer names per process
// (dense_Dense1 vs dense_Dense4), and what must agree is the shapes in order.
function hashLayout(specs: readonly ParamSpec[]): string {
  const text = specs.map((s) => `[${s.shape.join('x')}]`).join(';');
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/**
 * Model parameters as one `Float32Array` plus its `Layout` (docs/architecture.md, invariant 2): the form in
 * which parameters are averaged, interpolated, checkpointed and sent between processes.
 */
export class Params {
  readonly layout: Layout;
  readonly data: Float32Array;

  constructor(layout: Layout, data?: Float32Array) {
    this.layout = layout;
    this.data = data ?? new Float32Array(layout.size);
    if (this.data.length !== layout.size) {
      throw new InvalidOptionsError(`\`data\` has ${this.data.length} values but its layout needs ${layout.size}: pass a vector of the layout's size`, { option: 'data' });
    }
  }

  /** A copy with its own values over the same layout. */
  clone(): Params {
    return new Params(this.layout, this.data.slice());
  }

  /** The values of one named piece (a view, not a copy). */
  piece(index: number): Float32Array {
    let offset = 0;
    for (let i = 0; i < index; i++) offset += sizeOf(this.layout.specs[i]!.shape);
    const spec = this.layout.specs[index];
    if (!spec) throw new InvalidOptionsError(`no parameter piece ${index}: \`index\` must be from 0 to ${this.layout.specs.length - 1}`, { option: 'index' });
    return this.data.subarray(offset, offset + sizeOf(spec.shape));
  }
}

/** Throws unless `a` and `b` have the same layout. */
export function assertSameLayout(a: Params, b: Params): void {
  if (a.layout.hash !== b.layout.hash || a.data.length !== b.data.length) {
    throw new InvalidOptionsError(`parameter layouts differ (${a.layout.hash}/${a.data.length} vs ${b.layout.hash}/${b.data.length}): combine only parameters of the same model`);
  }
}

/**
 * Checks parameters that arrive from elsewhere (a worker, a file): the expected layout and
 * only finite values. Returns a one-line problem description, or undefined when they are fine.
 */
export function checkParams(p: Params, expected: Layout): string | undefined {
  if (p.layout.hash !== expected.hash) return `layout ${p.layout.hash} does not match the model's ${expected.hash}`;
  if (p.data.length !== expected.size) return `${p.data.length} values where the model has ${expected.size}`;
  for (let i = 0; i < p.data.length; i++) {
    if (!Number.isFinite(p.data[i]!)) return `value ${i} is ${p.data[i]} (not finite)`;
  }
  return undefined;
}

/** a + t·(b − a), element-wise, as a new vector. */
export function lerp(a: Params, b: Params, t: number): Params {
  assertSameLayout(a, b);
  const out = new Float32Array(a.data.length);
  const x = a.data;
  const y = b.data;
  for (let i = 0; i < out.length; i++) out[i] = x[i]! + t * (y[i]! - x[i]!);
  return new Params(a.layout, out);
}

/** a − b, element-wise. */
export function sub(a: Params, b: Params): Params {
  assertSameLayout(a, b);
  const out = new Float32Array(a.data.length);
  for (let i = 0; i < out.length; i++) out[i] = a.data[i]! - b.data[i]!;
  return new Params(a.layout, out);
}

/** a + s·d, element-wise. */
export function addScaled(a: Params, d: Params, s: number): Params {
  assertSameLayout(a, d);
  const out = new Float32Array(a.data.length);
  for (let i = 0; i < out.length; i++) out[i] = a.data[i]! + s * d.data[i]!;
  return new Params(a.layout, out);
}

/**
 * The element-wise mean of several vectors. Sums in float64 in the given order, so the result
 * depends only on the list (not on who computed its members or when they arrived).
 */
export function mean(list: readonly Params[]): Params {
  const first = list[0];
  if (!first) throw new InvalidOptionsError('the mean of an empty list of parameters: pass at least one parameter vector', { option: 'list' });
  for (const p of list) assertSameLayout(first, p);
  const n = list.length;
  const out = new Float32Array(first.data.length);
  for (let i = 0; i < out.length; i++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += list[k]!.data[i]!;
    out[i] = s / n;
  }
  return new Params(first.layout, out);
}
