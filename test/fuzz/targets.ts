// The decoders that read bytes from outside the process, each with valid seed inputs made here
// and a property: whatever the input, the decoder returns a valid value or throws the library's
// typed error for it (or returns its reason, for the wire checks that do), never anything else.
// Shared by the short runs in test/fuzz-*.test.ts and the long runs of `npm run fuzz`.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crc32, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { zipSync } from 'fflate';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { floatsToBytes } from '../../src/core/codec.js';
import { Params, createLayout } from '../../src/core/params.js';
import { encodeIdxUint8, parseIdx } from '../../src/data/idx.js';
import { decodeImage } from '../../src/data/images.js';
const MAX_IMAGE_PIXELS = 1 << 24;
import { decodeOmniglotDrawing, omniglotZipCharacters } from '../../src/data/omniglot.js';
import { checkJob, checkResult, jobDigest, stateFromWire, type JobResult, type RunSpec, type TaskJob } from '../../src/exec/job.js';
import { checkSpec, decodeResult, encodeResult, MAX_SPEC_BYTES, parseJson } from '../../src/exec/redis/codec.js';
import { decodeCheckpoint, writeCheckpoint } from '../../src/train/checkpoint.js';
import { CheckpointError, DataError } from '../../src/_utils/errors.js';
import { hostileJson, mutatedBytes, mutatedJson, randomBytes } from './mutate.js';

/** A decoder under fuzzing: how to make its inputs, and the property one input must satisfy. */
export interface FuzzTarget {
  readonly name: string;
  /** What counts as an input and the check of one input, which throws only for a finding. */
  setup(extraSeeds?: Uint8Array[]): { input: fc.Arbitrary<unknown>; run: (input: unknown) => void };
}

/** A finding: the decoder did something its contract rules out. */
export class FuzzFinding extends Error {}

function expectTyped(e: unknown, typed: new (...args: never[]) => Error): void {
  if (e instanceof typed) return;
  throw new FuzzFinding(`threw ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)} instead of a ${typed.name}`, { cause: e });
}

function must(ok: boolean, what: string): void {
  if (!ok) throw new FuzzFinding(what);
}

const utf8 = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const ascii = (s: string) => new TextEncoder().encode(s);
const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());

function floats(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sin(seed * 7 + i * 1.3) * 2;
  return out;
}

// ---- checkpoints ------------------------------------------------------------------------------

/** Valid checkpoint files (without optimizer, SGD, Adam with moments), written by `writeCheckpoint`. */
export function checkpointSeeds(): Uint8Array[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reptile-fuzz-'));
  try {
    const layout = createLayout([{ name: 'w', shape: [3, 2] }, { name: 'b', shape: [2] }, { name: 's', shape: [] }]);
    const params = new Params(layout, floats(layout.size, 1));
    const kinds = [undefined, { kind: 'sgd' as const, step: 3 }, { kind: 'adam' as const, step: 7, m: floats(layout.size, 2), v: floats(layout.size, 3).map(Math.abs) }];
    return kinds.map((optimizer, i) => {
      writeCheckpoint(dir, { iteration: 10 * i, params, optimizer, meta: { run: 'fuzz', config: { seed: i, metaStep: 0.1 }, list: [1, 2, 3] } });
      return new Uint8Array(fs.readFileSync(path.join(dir, 'reptile.ckpt')));
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A checkpoint's bytes with a correct SHA-256 at the end (so the checks past the checksum run). */
export function withDigest(bytes: Uint8Array): Uint8Array {
  if (bytes.length < 32) return bytes;
  const out = bytes.slice();
  out.set(sha256(out.subarray(0, out.length - 32)), out.length - 32);
  return out;
}

/** The header and payload of a checkpoint file, and the file rebuilt from another header. */
export function splitCheckpoint(bytes: Uint8Array): { header: unknown; payload: Uint8Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(12, true);
  return { header: JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + length))), payload: bytes.slice(16 + length, bytes.length - 32) };
}

export function buildCheckpoint(header: unknown, payload: Uint8Array): Uint8Array {
  const head = header === undefined ? new Uint8Array(0) : utf8(header);
  const out = new Uint8Array(16 + head.length + payload.length + 32);
  out.set(ascii('RPTLCKPT'));
  const view = new DataView(out.buffer);
  view.setUint32(8, 1, true);
  view.setUint32(12, head.length, true);
  out.set(head, 16);
  out.set(payload, 16 + head.length);
  return withDigest(out);
}

export const checkpointTarget: FuzzTarget = {
  name: 'checkpoint',
  setup() {
    const seeds = checkpointSeeds();
    const parts = seeds.map(splitCheckpoint);
    const input = fc.oneof(
      randomBytes([ascii('RPTLCKPT')]),
      mutatedBytes(seeds),
      mutatedBytes(seeds).map(withDigest),
      mutatedJson(parts.map((p) => p.header)).map(({ seed, value }) => buildCheckpoint(value, parts[seed]!.payload)),
    );
    const run = (bytes: unknown) => {
      try {
        const ckpt = decodeCheckpoint(Buffer.from(bytes as Uint8Array), 'fuzz.ckpt');
        must(ckpt.params.data.length === ckpt.params.layout.size, 'φ does not have its layout size');
        must(Number.isSafeInteger(ckpt.iteration) || Number.isInteger(ckpt.iteration), 'the iteration is not whole');
        if (ckpt.optimizer?.m) must(ckpt.optimizer.m.length === ckpt.params.layout.size && ckpt.optimizer.v?.length === ckpt.params.layout.size, 'moments of the wrong size');
      } catch (e) {
        expectTyped(e, CheckpointError);
      }
    };
    return { input, run };
  },
};

// ---- IDX --------------------------------------------------------------------------------------

/** Valid IDX files: uint8 of 0 to 3 dimensions, big-endian int16/int32/float32/float64, gzipped too. */
export function idxSeeds(): Uint8Array[] {
  const u8 = [encodeIdxUint8([2, 3, 4], Uint8Array.from({ length: 24 }, (_, i) => i * 10)), encodeIdxUint8([5], Uint8Array.of(0, 1, 2, 3, 255)), encodeIdxUint8([], Uint8Array.of(9)), encodeIdxUint8([0, 28], new Uint8Array(0))];
  const typed = (code: number, bytes: number, values: number[], write: (v: DataView, at: number, x: number) => void) => {
    const out = new Uint8Array(8 + values.length * bytes);
    const view = new DataView(out.buffer);
    out[2] = code;
    out[3] = 1;
    view.setUint32(4, values.length, false);
    values.forEach((x, i) => write(view, 8 + i * bytes, x));
    return out;
  };
  const others = [
    typed(0x09, 1, [-1, 5, -128], (v, at, x) => v.setInt8(at, x)),
    typed(0x0b, 2, [-300, 7, 32767], (v, at, x) => v.setInt16(at, x, false)),
    typed(0x0c, 4, [-70000, 1], (v, at, x) => v.setInt32(at, x, false)),
    typed(0x0d, 4, [0.5, -2.25, 1e30], (v, at, x) => v.setFloat32(at, x, false)),
    typed(0x0e, 8, [Math.PI, -0], (v, at, x) => v.setFloat64(at, x, false)),
  ];
  const all = [...u8, ...others];
  return [...all, ...all.slice(0, 3).map((b) => new Uint8Array(gzipSync(b)))];
}

export const idxTarget: FuzzTarget = {
  name: 'idx',
  setup() {
    const seeds = idxSeeds();
    const input = fc.oneof(randomBytes([Uint8Array.of(0, 0, 8, 3), Uint8Array.of(0, 0, 0x0d, 1), Uint8Array.of(0x1f, 0x8b)]), mutatedBytes(seeds));
    const run = (bytes: unknown) => {
      try {
        const idx = parseIdx(bytes as Uint8Array, 'fuzz.idx');
        must(idx.data.length === idx.dims.reduce((a, b) => a * b, 1), `${idx.data.length} values for dimensions [${idx.dims.join(', ')}]`);
      } catch (e) {
        expectTyped(e, DataError);
      }
    };
    return { input, run };
  },
};

// ---- images -----------------------------------------------------------------------------------

/** A `width × height` drawing: a dark stroke on white paper, RGBA. */
function drawing(width: number, height: number, seed: number): Buffer {
  const data = Buffer.alloc(width * height * 4, 255);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (Math.abs(x - y - seed) < 3 || (x * seed + y) % 17 === 0) data.fill(seed * 13 % 200, (y * width + x) * 4, (y * width + x) * 4 + 3);
    }
  }
  return data;
}

/** PNG files in every colour type and depth pngjs writes, of a few sizes. */
export function pngSeeds(): Uint8Array[] {
  const out: Uint8Array[] = [];
  const variants: [number, number, 0 | 2 | 4 | 6, 8 | 16][] = [[1, 1, 6, 8], [7, 5, 0, 8], [6, 9, 2, 8], [4, 4, 4, 16], [3, 8, 6, 16], [16, 16, 0, 16]];
  variants.forEach(([w, h, colorType, bitDepth], i) => {
    const png = new PNG({ width: w, height: h, colorType, bitDepth, inputHasAlpha: true });
    png.data = drawing(w, h, i + 1);
    out.push(new Uint8Array(PNG.sync.write(png, { colorType, bitDepth, inputHasAlpha: true })));
  });
  return out;
}

/** An Omniglot-like 105×105 drawing as a grayscale PNG. */
export function omniglotPng(seed: number): Uint8Array {
  const png = new PNG({ width: 105, height: 105 });
  png.data = drawing(105, 105, seed);
  return new Uint8Array(PNG.sync.write(png, { colorType: 0 }));
}

/** JPEG files of a few sizes and qualities. */
export function jpegSeeds(): Uint8Array[] {
  return ([[8, 8, 90], [17, 5, 50], [1, 1, 100], [24, 16, 10]] as const).map(([w, h, q], i) => new Uint8Array(jpeg.encode({ width: w, height: h, data: drawing(w, h, i + 2) }, q).data));
}

/** A PNG's bytes with every chunk's CRC made right again, so that a mutated header or size gets past the CRC check. */
export function withPngCrcs(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  const view = new DataView(out.buffer);
  for (let at = 8; at + 12 <= out.length; ) {
    const length = view.getUint32(at, false);
    if (at + 12 + length > out.length) break;
    view.setUint32(at + 8 + length, crc32(out.subarray(at + 4, at + 8 + length)), false);
    at += 12 + length;
  }
  return out;
}

function imageTarget(name: string, seeds: () => Uint8Array[], magic: Uint8Array, fix: (b: Uint8Array) => Uint8Array = (b) => b): FuzzTarget {
  return {
    name,
    setup(extra = []) {
      const all = [...seeds(), ...extra];
      const input = fc.oneof(randomBytes([magic]), mutatedBytes(all), mutatedBytes(all).map(fix));
      const run = (bytes: unknown) => {
        try {
          const img = decodeImage(bytes as Uint8Array, `fuzz.${name}`);
          must(Number.isInteger(img.width) && Number.isInteger(img.height) && img.width * img.height <= MAX_IMAGE_PIXELS, `an image of ${img.width}×${img.height}`);
          must(img.data.length === img.width * img.height * 4, `${img.data.length} bytes for ${img.width}×${img.height} RGBA`);
        } catch (e) {
          expectTyped(e, DataError);
        }
      };
      return { input, run };
    },
  };
}

export const pngTarget = imageTarget('png', () => [...pngSeeds(), omniglotPng(3)], Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a), withPngCrcs);
export const jpegTarget = imageTarget('jpeg', jpegSeeds, Uint8Array.of(0xff, 0xd8, 0xff));

// ---- zip archives (Omniglot) ------------------------------------------------------------------

/** Omniglot-shaped zip archives: stored and deflated drawings, with a file that is not a drawing. */
export function zipSeeds(extraPngs: Uint8Array[] = []): Uint8Array[] {
  const pngs = [omniglotPng(1), omniglotPng(2), ...extraPngs];
  const files: Record<string, Uint8Array> = {};
  pngs.forEach((png, i) => {
    files[`images_background/Alphabet_${i % 2}/character0${i + 1}/0${i}01_01.png`] = png;
  });
  files['images_background/README.txt'] = ascii('not a drawing');
  return [new Uint8Array(zipSync(files, { level: 0 })), new Uint8Array(zipSync(files, { level: 6 })), new Uint8Array(zipSync({ 'a/b/character01/x.png': pngs[0]! }, { level: 9 }))];
}

export const zipTarget: FuzzTarget = {
  name: 'zip',
  setup(extra = []) {
    const seeds = zipSeeds(extra);
    const input = fc.oneof(randomBytes([Uint8Array.of(0x50, 0x4b, 0x03, 0x04)]), mutatedBytes(seeds));
    const run = (bytes: unknown) => {
      try {
        for (const character of omniglotZipCharacters(bytes as Uint8Array, 'fuzz.zip')) {
          for (const file of character.files) must(decodeOmniglotDrawing(file.read(), file.name).length === 28 * 28, 'a drawing that is not 28×28');
        }
      } catch (e) {
        expectTyped(e, DataError);
      }
    };
    return { input, run };
  },
};

// ---- the wire: jobs, results, run specs -------------------------------------------------------

const SIZE = 6;
const SPEC: RunSpec = {
  runId: 'rfuzz',
  learner: { kind: 'native', modelTopology: { class_name: 'Sequential', config: { layers: [] } }, innerState: 'shared', batchStatsAtTest: true, layout: { hash: 'h6', size: SIZE }, backend: 'cpu' },
  source: { task: 'sine', shots: 10 },
};

function validJobs(): TaskJob[] {
  const phi = floatsToBytes(floats(SIZE, 4));
  const m = floatsToBytes(floats(SIZE, 5));
  const v = floatsToBytes(floats(SIZE, 6).map(Math.abs));
  const base = { runId: SPEC.runId, seed: 42, transductive: false, wantLastStep: true, phi };
  const adam = { kind: 'adam' as const, step: 3, m, v };
  return [
    { ...base, kind: 'adapt', iteration: 3, taskIndices: [1], inner: { optimizer: 'adam', learningRate: 0.001, innerIters: 5, innerBatch: 10, beta1: 0 }, state: adam, digest: jobDigest(phi, adam) },
    { ...base, kind: 'eval', iteration: 0, taskIndices: [0, 1, 2], inner: { optimizer: 'sgd', learningRate: 0.02, innerIters: 50, innerBatch: 5 }, digest: jobDigest(phi, undefined) },
  ];
}

/** A job as the queue carries it (the blobs apart), with the blobs a worker reads from Redis. */
interface WireJob {
  json: Uint8Array;
  phi: Uint8Array;
  m?: Uint8Array;
  v?: Uint8Array;
}

function queued(job: TaskJob): unknown {
  const { phi: _phi, state, ...rest } = job;
  return { ...rest, ...(state ? { state: { kind: state.kind, step: state.step, m: state.m !== undefined, v: state.v !== undefined } } : {}) };
}

export const jobTarget: FuzzTarget = {
  name: 'job',
  setup() {
    const jobs = validJobs();
    const wire = jobs.map((j): WireJob => ({ json: utf8(queued(j)), phi: j.phi, ...(j.state?.m ? { m: j.state.m, v: j.state.v! } : {}) }));
    const blob = (b: Uint8Array | undefined) => (b === undefined ? fc.constant(undefined) : fc.oneof(fc.constant(b), mutatedBytes([b]), fc.uint8Array({ maxLength: 64 })));
    const input = fc.oneof(
      fc.record({ seed: fc.nat({ max: wire.length - 1 }), json: mutatedBytes(wire.map((w) => w.json)) }).map(({ seed, json }) => ({ ...wire[seed]!, json })),
      mutatedJson(jobs.map(queued)).map(({ seed, value }) => ({ ...wire[seed]!, json: utf8(value) })),
      fc.nat({ max: wire.length - 1 }).chain((i) => fc.record({ json: fc.constant(wire[i]!.json), phi: blob(wire[i]!.phi), m: blob(wire[i]!.m), v: blob(wire[i]!.v) })),
      fc.record({ json: randomBytes(), phi: fc.uint8Array({ maxLength: 64 }) }),
    );
    const run = (raw: unknown) => {
      const w = raw as WireJob;
      // As the Redis worker puts a job together: its JSON, with φ and the state's moments from Redis.
      const data = parseJson(new TextDecoder().decode(w.json)) as { state?: { kind: 'sgd' | 'adam'; step: number } } | undefined;
      if (typeof data !== 'object' || data === null) return;
      const full = { ...data, phi: w.phi, ...(data.state ? { state: { kind: data.state.kind, step: data.state.step, ...(w.m ? { m: w.m } : {}), ...(w.v ? { v: w.v } : {}) } } : {}) };
      let problem: string | undefined;
      try {
        problem = checkJob(full, { spec: SPEC, maxTasks: 100 });
      } catch (e) {
        throw new FuzzFinding(`checkJob threw ${String(e)}`, { cause: e });
      }
      must(problem === undefined || typeof problem === 'string', 'checkJob answered neither a reason nor undefined');
      if (problem !== undefined) return;
      const job = full as unknown as TaskJob;
      must(job.phi.byteLength === SIZE * 4 && job.digest === jobDigest(job.phi, job.state), 'an accepted job with a wrong φ or digest');
      must(job.taskIndices.every((t) => Number.isSafeInteger(t) && t >= 0 && t < 100), 'an accepted job with a bad task index');
      const state = stateFromWire(job.state, SIZE);
      if (state?.m) must(state.m.length === SIZE && [...state.m].every(Number.isFinite), 'an accepted job with bad moments');
    };
    return { input, run };
  },
};

function validResults(): { result: JobResult; job: TaskJob; wantState: boolean }[] {
  const [adapt, evaluate] = validJobs() as [TaskJob, TaskJob];
  const arr = (s: number) => floatsToBytes(floats(SIZE, s));
  const adaptResult: JobResult = {
    runId: SPEC.runId,
    kind: 'adapt',
    iteration: adapt.iteration,
    digest: adapt.digest,
    layoutHash: SPEC.learner.layout.hash,
    outcomes: [{ taskIndex: 1, loss: 0.25, params: arr(7), lastStep: arr(8), state: { kind: 'adam', step: 8, m: arr(9), v: floatsToBytes(floats(SIZE, 10).map(Math.abs)) } }],
  };
  const evalResult: JobResult = { runId: SPEC.runId, kind: 'eval', iteration: 0, digest: evaluate.digest, layoutHash: SPEC.learner.layout.hash, outcomes: [0, 1, 2].map((t) => ({ taskIndex: t, score: t / 4 })) };
  return [
    { result: adaptResult, job: adapt, wantState: true },
    { result: evalResult, job: evaluate, wantState: false },
  ];
}

export const resultTarget: FuzzTarget = {
  name: 'result',
  setup() {
    const cases = validResults();
    const seeds = cases.map((c) => new Uint8Array(encodeResult(c.result)));
    // The JSON header of each seed and its arrays, to rebuild a result around an edited header.
    const split = seeds.map((b) => {
      const length = new DataView(b.buffer, b.byteOffset).getUint32(0, true);
      return { header: JSON.parse(new TextDecoder().decode(b.subarray(4, 4 + length))) as unknown, arrays: b.slice(Math.ceil((4 + length) / 4) * 4) };
    });
    const rebuild = (header: unknown, arrays: Uint8Array) => {
      const head = utf8(header);
      const start = Math.ceil((4 + head.length) / 4) * 4;
      const out = new Uint8Array(start + arrays.length);
      new DataView(out.buffer).setUint32(0, head.length, true);
      out.set(head, 4);
      out.set(arrays, start);
      return out;
    };
    const input = fc.record({
      expect: fc.nat({ max: cases.length - 1 }),
      bytes: fc.oneof(randomBytes(), mutatedBytes(seeds), mutatedJson(split.map((s) => s.header)).map(({ seed, value }) => rebuild(value, split[seed]!.arrays))),
    });
    const run = (raw: unknown) => {
      const { expect, bytes } = raw as { expect: number; bytes: Uint8Array };
      const c = cases[expect]!;
      // A fresh buffer, as the coordinator's read from Redis gives.
      const copy = Buffer.alloc(bytes.length);
      copy.set(bytes);
      let problem: string | undefined;
      try {
        const decoded = decodeResult(copy, SIZE);
        problem = typeof decoded === 'string' ? decoded : checkResult(decoded, { job: c.job, layout: SPEC.learner.layout, wantState: c.wantState });
        if (problem === undefined && typeof decoded !== 'string') {
          for (const o of decoded.outcomes) {
            if (c.job.kind === 'eval') must(Number.isFinite(o.score), 'an accepted evaluation without a finite score');
            else must(o.params?.byteLength === SIZE * 4 && o.lastStep?.byteLength === SIZE * 4, 'accepted adapted weights of the wrong size');
          }
        }
      } catch (e) {
        if (e instanceof FuzzFinding) throw e;
        throw new FuzzFinding(`decoding a result threw ${String(e)}`, { cause: e });
      }
      must(problem === undefined || typeof problem === 'string', 'the result check answered neither a reason nor undefined');
    };
    return { input, run };
  },
};

export const specTarget: FuzzTarget = {
  name: 'spec',
  setup() {
    const seeds = [SPEC, { ...SPEC, learner: { ...SPEC.learner, kind: 'tfjs', innerState: 'carry', fixedWeights: { names: ['a'], shapes: [[2]], data: 'AAAAAAAAAAA=', digest: '00' } } }];
    const input = fc.oneof(randomBytes(), mutatedBytes(seeds.map(utf8)), mutatedJson(seeds).map(({ value }) => utf8(value)), hostileJson.map(utf8));
    const run = (bytes: unknown) => {
      const b = bytes as Uint8Array;
      // As the worker reads a run's spec from Redis.
      const spec = b.length <= MAX_SPEC_BYTES ? (parseJson(new TextDecoder().decode(b)) as RunSpec | undefined) : undefined;
      let problem: string | undefined;
      try {
        problem = checkSpec(spec, SPEC.runId);
      } catch (e) {
        throw new FuzzFinding(`checkSpec threw ${String(e)}`, { cause: e });
      }
      if (problem !== undefined) return;
      must(spec!.runId === SPEC.runId && Number.isSafeInteger(spec!.learner.layout.size) && typeof spec!.source === 'object', 'an accepted spec without its run, layout or source');
    };
    return { input, run };
  },
};

/** Every decoder fuzzed, by name. */
export const TARGETS: readonly FuzzTarget[] = [checkpointTarget, idxTarget, pngTarget, jpegTarget, zipTarget, jobTarget, resultTarget, specTarget];

/**
 * Runs `target`'s property over `runs` inputs from `seed`; a call slower than `maxMs` (default
 * 30 s, far above any sound input's milliseconds) is a finding: a hang, cut short only by the long
 * runs' watchdog. Throws fast-check's report on a finding.
 */
export function fuzz(target: FuzzTarget, options: { runs: number; seed?: number; maxMs?: number; extraSeeds?: Uint8Array[] }): void {
  const { input, run } = target.setup(options.extraSeeds);
  const maxMs = options.maxMs ?? 30_000;
  fc.assert(
    fc.property(input, (value) => {
      const began = performance.now();
      run(value);
      const ms = performance.now() - began;
      if (ms > maxMs) throw new FuzzFinding(`one input took ${ms.toFixed(0)} ms`);
    }),
    { numRuns: options.runs, ...(options.seed !== undefined ? { seed: options.seed } : {}), endOnFailure: false },
  );
}
