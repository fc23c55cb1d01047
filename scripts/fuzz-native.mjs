/* global process, console, URL */
// Drives the native addon's JavaScript API with random plans, shapes and buffers: plans built as
// the model compiler builds them and then damaged (a field set to a hostile value, removed, or of
// the wrong type), and calls with wrong sizes, NaNs, out-of-range indices and labels. Every case
// must be refused with a JavaScript error or computed; run against the sanitizer build
// (scripts/build-sanitized.sh, `npm run fuzz:native`), any memory error or undefined behaviour
// aborts the process with the sanitizer's report.
//   node scripts/fuzz-native.mjs [--cases N] [--seed S] [--addon FILE]
import { createRequire } from 'node:module';
import { writeSync } from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const cases = Number(flag('--cases', '2000'));
const firstSeed = Number(flag('--seed', '1'));
const addonFile = flag('--addon', process.env.REPTILE_NATIVE_ADDON ?? new URL('../native/build-sanitized/reptile_native.node', import.meta.url).pathname);
const addon = createRequire(import.meta.url)(path.resolve(addonFile));

// mulberry32: a small seeded generator, so that a case is reproduced by its seed alone.
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1));
  const pick = (list) => list[int(0, list.length - 1)];
  return { next, int, pick, chance: (p) => next() < p };
}

const ACTS = ['sigmoid', 'elu', 'selu', 'clipRelu', 'softplus', 'softsign', 'swish', 'leakyRelu', 'hardSigmoid', 'gelu', 'geluTanh', 'mish'];
const HOSTILE = [-1, 0, 1, 2, -2147483648, 2147483647, 2147483648, 4294967296, -4294967297, 1e10, -1e10, 1e300, 0.5, -0.5, NaN, Infinity, -Infinity, 2 ** 53 + 2, 'x', '3', null, undefined, true, {}, [], new Float32Array(3)];

function axis(r, inSize) {
  const k = r.int(1, Math.min(3, inSize + 1));
  const s = r.int(1, 2);
  if (r.chance(0.5)) {
    const out = Math.ceil(inSize / s);
    const total = Math.max(0, (out - 1) * s + k - inSize);
    return { k, s, out, lo: Math.floor(total / 2) };
  }
  if (k > inSize) return { k: 1, s, out: Math.floor((inSize - 1) / s) + 1, lo: 0 };
  return { k, s, out: Math.floor((inSize - k) / s) + 1, lo: 0 };
}

/** A plan as the model compiler makes them: a chain of ops with sizes, geometry and weight offsets that agree. */
function validPlan(r) {
  let shape = r.chance(0.6) ? [r.int(1, 7), r.int(1, 7), r.int(1, 3)] : [r.int(1, 12)];
  const inputSize = shape.reduce((a, b) => a * b, 1);
  const ops = [];
  let P = 0;
  let F = 0;
  const weights = (n, frozen) => {
    if (frozen) {
      F += n;
      return F - n;
    }
    P += n;
    return P - n;
  };
  const size = () => shape.reduce((a, b) => a * b, 1);
  const count = r.int(1, 5);
  for (let i = 0; i < count; i++) {
    const inSize = size();
    const kinds = shape.length === 3 ? ['conv', 'maxpool', 'avgpool', 'depthwise', 'pad', 'batchnorm', 'relu', 'act', 'dropout', 'layernorm', 'flatten-dense'] : ['dense', 'batchnorm', 'layernorm', 'relu', 'tanh', 'act', 'dropout'];
    const kind = r.pick(kinds);
    const frozen = r.chance(0.15);
    if (kind === 'conv' || kind === 'maxpool' || kind === 'avgpool' || kind === 'depthwise') {
      const [inH, inW, cin] = shape;
      const h = axis(r, inH);
      const w = axis(r, inW);
      const mul = kind === 'depthwise' ? r.int(1, 2) : 1;
      const cout = kind === 'conv' ? r.int(1, 4) : cin * mul;
      const op = { kind, inSize, outSize: h.out * w.out * cout, inH, inW, cin, outH: h.out, outW: w.out, cout, kh: h.k, kw: w.k, sh: h.s, sw: w.s, padT: h.lo, padL: w.lo };
      if (kind === 'conv') Object.assign(op, { w: weights(h.k * w.k * cin * cout, frozen), ...(r.chance(0.7) ? { b: weights(cout, frozen) } : {}), frozen });
      if (kind === 'depthwise') Object.assign(op, { depthMultiplier: mul, w: weights(h.k * w.k * cout, frozen), ...(r.chance(0.7) ? { b: weights(cout, frozen) } : {}), frozen });
      ops.push(op);
      shape = [h.out, w.out, cout];
    } else if (kind === 'pad') {
      const [inH, inW, c] = shape;
      const [t, b, l, rt] = [r.int(0, 2), r.int(0, 2), r.int(0, 2), r.int(0, 2)];
      const outH = inH + t + b;
      const outW = inW + l + rt;
      ops.push({ kind, inSize, outSize: outH * outW * c, inH, inW, cin: c, outH, outW, cout: c, kh: 1, kw: 1, sh: 1, sw: 1, padT: t, padL: l });
      shape = [outH, outW, c];
    } else if (kind === 'dense' || kind === 'flatten-dense') {
      const out = r.int(1, 6);
      ops.push({ kind: 'dense', inSize, outSize: out, w: weights(inSize * out, frozen), ...(r.chance(0.8) ? { b: weights(out, frozen) } : {}), frozen });
      shape = [out];
    } else if (kind === 'batchnorm' || kind === 'layernorm') {
      const c = shape[shape.length - 1];
      const op = { kind, inSize, outSize: inSize, channels: c, epsilon: 1e-3, ...(r.chance(0.7) ? { gamma: weights(c, frozen) } : {}), ...(r.chance(0.7) ? { beta: weights(c, frozen) } : {}), frozen };
      if (kind === 'batchnorm') Object.assign(op, { momentum: 0.99, movingMean: new Float32Array(c), movingVariance: new Float32Array(c).fill(1) });
      ops.push(op);
    } else if (kind === 'act') {
      ops.push({ kind, act: r.pick(ACTS), alpha: r.pick([0, 0.2, 1, 6]), inSize, outSize: inSize });
    } else if (kind === 'dropout') {
      ops.push({ kind, rate: r.pick([0, 0.1, 0.5]), inSize, outSize: inSize });
    } else {
      ops.push({ kind, inSize, outSize: inSize });
    }
  }
  if (r.chance(0.5)) {
    const c = shape[shape.length - 1];
    ops.push({ kind: 'softmax', inSize: size(), outSize: size(), channels: c });
  }
  const plan = { ops, inputSize, outputSize: size(), paramSize: P, isa: r.pick(['auto', ...addon.supportedIsas()]), threads: r.pick([1, 2]) };
  if (F > 0) plan.frozen = new Float32Array(F).map(() => r.next() - 0.5);
  return plan;
}

/** The plan with 0 to 3 of its fields damaged. */
function damage(r, plan) {
  const edits = r.pick([0, 0, 1, 1, 2, 3]);
  for (let e = 0; e < edits; e++) {
    const target = r.chance(0.2) || !Array.isArray(plan.ops) || plan.ops.length === 0 ? plan : r.pick(plan.ops);
    if (typeof target !== 'object' || target === null) continue;
    const keys = Object.keys(target);
    const key = r.chance(0.1) ? r.pick(['w', 'b', 'gamma', 'beta', 'depthMultiplier', 'channels', 'frozen', 'kind']) : r.pick(keys);
    if (r.chance(0.1)) delete target[key];
    else if (key === 'kind') target[key] = r.pick(['conv', 'dense', 'maxpool', 'avgpool', 'depthwise', 'pad', 'batchnorm', 'layernorm', 'softmax', 'relu', 'tanh', 'act', 'dropout', 'bogus']);
    else if (r.chance(0.5) && typeof target[key] === 'number') target[key] = target[key] + r.pick([-2, -1, 1, 2, 64]);
    else target[key] = r.pick(HOSTILE);
  }
  const opsReplaced = r.chance(0.05);
  if (opsReplaced) plan.ops = r.pick([[], undefined, [null], ['x']]);
  // Set last, so that no edit above changes it.
  plan.damaged = edits > 0 || opsReplaced;
  return plan;
}

function floats(r, n, hostile) {
  const a = new Float32Array(Math.max(0, n));
  for (let i = 0; i < a.length; i++) a[i] = hostile && r.chance(0.05) ? r.pick([NaN, Infinity, -Infinity, 3e38, -0]) : r.next() * 2 - 1;
  return a;
}

/** A length that is usually right and sometimes off by one, zero or large. */
function lengthNear(r, n) {
  return r.chance(0.85) ? n : r.pick([0, 1, n - 1, n + 1, 2 * n, n + 4096]);
}

function targetsFor(r, loss, count, outSize) {
  if (loss === 'softmax-xent') return Float32Array.from({ length: lengthNear(r, count) }, () => (r.chance(0.95) ? r.int(0, Math.max(0, outSize - 1)) : r.pick([-1, outSize, 0.5, NaN, 1e9])));
  return floats(r, lengthNear(r, count * outSize), true);
}

function adaptArgs(r, plan) {
  const inSize = Math.min(Number(plan.inputSize) | 0, 4096);
  const outSize = Math.min(Number(plan.outputSize) | 0, 4096);
  const count = r.chance(0.9) ? r.int(1, 6) : r.pick([0, -1, 2147483647, NaN]);
  const n = Number.isFinite(count) && count > 0 && count < 100 ? count : 1;
  const batchSize = r.chance(0.9) ? r.int(1, n) : r.pick([0, -3, n + 1, 100000]);
  const steps = r.int(0, 3);
  const bs = Number.isFinite(batchSize) && batchSize > 0 && batchSize < 100 ? batchSize : 1;
  const batches = Int32Array.from({ length: steps * bs }, () => (r.chance(0.97) ? r.int(0, n - 1) : r.pick([-1, n, 2147483647])));
  const loss = r.pick(['softmax-xent', 'mse', 'sigmoid-bce', 'softmax-xent', 'bogus']);
  const a = {
    inputs: floats(r, lengthNear(r, n * inSize), true),
    targets: targetsFor(r, loss, n, outSize),
    count,
    batches,
    batchSize,
    optimizer: r.pick(['sgd', 'adam', 'adam', 'bogus']),
    learningRate: r.pick([0.01, 0.001, 0, -1, NaN, Infinity]),
    beta1: r.pick([0, 0.9, NaN]),
    beta2: r.pick([0.999, 1, NaN]),
    epsilon: r.pick([1e-8, 0, NaN]),
    reset: r.chance(0.5),
    dropoutSeed: r.pick([0, 1, 4294967295, -1, NaN, 1e300, 2 ** 64]),
    loss,
    lossDivisor: r.pick([undefined, 1, 3, 0, -1, NaN, Infinity]),
  };
  if (r.chance(0.3)) a.predict = Array.from({ length: r.int(1, 2) }, () => {
    const c = r.chance(0.9) ? r.int(1, 4) : r.pick([0, -1, NaN]);
    return { inputs: floats(r, lengthNear(r, (Number.isFinite(c) && c > 0 ? c : 1) * inSize), true), count: c };
  });
  if (r.chance(0.05)) a[r.pick(Object.keys(a))] = r.pick(HOSTILE);
  return a;
}

function fitArgs(r, plan) {
  const inSize = Number(plan.inputSize) | 0;
  const outSize = Number(plan.outputSize) | 0;
  const count = r.chance(0.9) ? r.int(1, 6) : r.pick([0, -1, NaN]);
  const n = Number.isFinite(count) && count > 0 ? count : 1;
  const sizes = Int32Array.from({ length: r.int(0, 3) }, () => (r.chance(0.95) ? r.int(1, n) : r.pick([0, -1, 2147483647])));
  const total = sizes.reduce((a, b) => a + Math.max(0, b), 0);
  const order = Int32Array.from({ length: lengthNear(r, Math.min(total, 64)) }, () => (r.chance(0.97) ? r.int(0, n - 1) : r.pick([-1, n])));
  const loss = r.pick(['softmax-xent', 'mse', 'sigmoid-bce']);
  const period = r.pick([0, 0, 2, -1, NaN, 1e12]);
  const a = {
    inputs: floats(r, lengthNear(r, n * inSize), true),
    targets: targetsFor(r, loss, n, outSize),
    count,
    order,
    sizes,
    loss,
    optimizer: r.pick(['sgd', 'adam']),
    learningRate: r.pick([0.01, NaN]),
    beta1: 0.9,
    beta2: 0.999,
    epsilon: 1e-7,
    period,
    alpha: 0.5,
    counter: r.pick([0, 1, 5, -1, NaN]),
    slow: floats(r, lengthNear(r, Number(plan.paramSize) | 0), false),
    dropoutSeed: r.pick([0, 7, -1, NaN, 1e300]),
    firstStep: r.pick([0, 3, -5, NaN, 1e300]),
    losses: new Float64Array(lengthNear(r, sizes.length)),
    outputs: new Float32Array(Math.max(0, lengthNear(r, order.length * outSize))),
  };
  if (r.chance(0.05)) a[r.pick(Object.keys(a))] = r.pick(HOSTILE);
  return a;
}

async function oneCase(seed, tally) {
  const r = rng(seed);
  const plan = damage(r, validPlan(r));
  let engine;
  try {
    engine = new addon.Engine(plan);
  } catch (e) {
    if (!(e instanceof Error)) throw new Error(`the constructor threw a non-Error: ${String(e)}`, { cause: e });
    // A plan as the model compiler makes them must be accepted.
    if (!plan.damaged) throw new Error(`case ${seed}: an undamaged plan was refused: ${e.message}`, { cause: e });
    tally.refused++;
    return;
  }
  tally.built++;
  const P = Number(plan.paramSize) | 0;
  const call = async (name, f) => {
    try {
      await f();
      tally.ok++;
    } catch (e) {
      if (!(e instanceof Error)) throw new Error(`${name} threw a non-Error: ${String(e)}`, { cause: e });
      tally.errors++;
    }
  };
  const calls = r.int(1, 6);
  for (let c = 0; c < calls; c++) {
    const what = r.pick(['setParams', 'adapt', 'adapt', 'adaptMany', 'fit', 'predict', 'gradients', 'reptileUpdate', 'optimizer', 'stats']);
    if (what === 'setParams') await call(what, () => engine.setParams(floats(r, lengthNear(r, P), true)));
    else if (what === 'adapt') await call(what, () => engine.adapt(adaptArgs(r, plan)));
    else if (what === 'adaptMany') await call(what, () => engine.adapt([adaptArgs(r, plan), adaptArgs(r, plan)]));
    else if (what === 'fit') await call(what, () => engine.fit(fitArgs(r, plan)));
    else if (what === 'predict') {
      const n = r.chance(0.9) ? r.int(1, 4) : r.pick([0, -1, NaN, 'x']);
      await call(what, () => engine.predict(floats(r, lengthNear(r, (Number.isFinite(n) && n > 0 ? n : 1) * (Number(plan.inputSize) | 0)), true), n, r.chance(0.5)));
    } else if (what === 'gradients') {
      const n = r.chance(0.9) ? r.int(1, 4) : r.pick([0, -1, NaN]);
      const m = Number.isFinite(n) && n > 0 ? n : 1;
      const loss = r.pick(['softmax-xent', 'mse', 'sigmoid-bce', 'bogus']);
      await call(what, () => engine.gradients(floats(r, lengthNear(r, m * (Number(plan.inputSize) | 0)), true), targetsFor(r, loss, m, Number(plan.outputSize) | 0), n, loss, r.pick([undefined, 3, -1, NaN, 1e300])));
    } else if (what === 'reptileUpdate') {
      await call(what, () => engine.reptileUpdate(Array.from({ length: r.int(0, 3) }, () => floats(r, lengthNear(r, P), true)), r.pick([0.1, 1, NaN, -Infinity])));
    } else if (what === 'optimizer') {
      await call(what, () => engine.setOptimizerState(r.pick(['none', 'sgd', 'adam', 'bogus']), r.pick([0, 5, NaN, -1]), floats(r, lengthNear(r, P), true), floats(r, lengthNear(r, P), true)));
      await call('getOptimizerState', () => engine.getOptimizerState());
    } else {
      await call(what, () => engine.getMovingStats());
      await call('getParams', () => engine.getParams());
    }
  }
  // A second call while an adapt runs is refused, then the engine is released.
  if (r.chance(0.2)) {
    let pending;
    try {
      pending = engine.adapt(adaptArgs(r, plan)).catch(() => {});
    } catch {
      pending = undefined;
    }
    await call('busy', () => engine.setParams(new Float32Array(P)));
    await pending;
  }
  await call('release', () => engine.release());
  await call('after release', () => engine.getParams());
}

const tally = { built: 0, refused: 0, ok: 0, errors: 0 };
const began = Date.now();
for (let i = 0; i < cases; i++) {
  // The case about to run, so that an abort names it (a sanitizer report ends the process).
  if (process.env.FUZZ_NATIVE_TRACE) writeSync(2, `case ${firstSeed + i}\n`);
  await oneCase(firstSeed + i, tally);
}
console.log(
  `native fuzz: ${cases} random cases (seeds ${firstSeed}..${firstSeed + cases - 1}) with ${addon.compiler()} in ${((Date.now() - began) / 1000).toFixed(0)} s: ` +
    `${tally.built} plans built, ${tally.refused} refused; ${tally.ok} calls computed, ${tally.errors} refused with an error; no sanitizer report`,
);
