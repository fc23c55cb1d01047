import { describeValue } from '../../_utils/checks.js';
import { MAX_FIXED_WEIGHT_BYTES, type JobResult, type RunSpec, type TaskJob, type TaskOutcome } from '../job.js';

/**
 * Largest run spec a worker reads: 4 MiB for the model topology and the task source, and room
 * for the model's fixed weights in base64 (at most 64 MiB of floats, 4/3 as many characters).
 */
export const MAX_SPEC_BYTES = (4 << 20) + Math.ceil(MAX_FIXED_WEIGHT_BYTES / 3) * 4;
/** Words a worker fails a job with when φ or the state it names is not in Redis. */
export const BLOBS_MISSING = 'not in redis (it restarted empty?)';

/** What a job on the queue carries: the job's plain fields; φ and the state stay in Redis, once per iteration. */
export interface QueuedJob extends Omit<TaskJob, 'phi' | 'state'> {
  readonly state?: { kind: 'sgd' | 'adam'; step: number; m: boolean; v: boolean };
}

/** The same bytes as a Buffer, without copying them. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The value of a JSON text, or undefined when it is not JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Bytes of a result besides its arrays (the JSON header), at most. */
export const MAX_RESULT_OVERHEAD = 1 << 20;
/** Tasks in one result, at most: an evaluation job's 25 (adapt jobs hold one). */
export const MAX_TASKS_PER_RESULT = 25;

/**
 * A result as one binary value: a little-endian u32 header length, the JSON header (every field
 * but the arrays, and which arrays each outcome has), zero padding to a multiple of 4, then the
 * arrays one after another. One value is one round trip and one buffer, and the arrays come out
 * as aligned views.
 */
export function encodeResult(result: JobResult): Buffer {
  const arrays: Uint8Array[] = [];
  const outcomes = result.outcomes.map((o) => {
    const parts = ([['p', o.params], ['l', o.lastStep], ['m', o.state?.m], ['v', o.state?.v]] as const).filter(([, a]) => a !== undefined);
    for (const [, a] of parts) arrays.push(a!);
    return { taskIndex: o.taskIndex, loss: o.loss, score: o.score, ...(o.state ? { state: { kind: o.state.kind, step: o.state.step } } : {}), parts: parts.map(([n]) => n).join('') };
  });
  const header = Buffer.from(JSON.stringify({ runId: result.runId, kind: result.kind, iteration: result.iteration, digest: result.digest, layoutHash: result.layoutHash, outcomes }), 'utf8');
  const start = Math.ceil((4 + header.length) / 4) * 4;
  const out = Buffer.alloc(start + arrays.reduce((n, a) => n + a.byteLength, 0));
  out.writeUInt32LE(header.length, 0);
  header.copy(out, 4);
  let at = start;
  for (const a of arrays) {
    out.set(a, at);
    at += a.byteLength;
  }
  return out;
}

/** The result in `bytes` (see {@link encodeResult}), or why it cannot be read; `size` floats per array. */
export function decodeResult(bytes: Buffer, size: number): JobResult | string {
  if (bytes.length < 4) return 'the result is truncated';
  const headerLength = bytes.readUInt32LE(0);
  if (headerLength > MAX_RESULT_OVERHEAD || 4 + headerLength > bytes.length) return 'the result header is malformed';
  const meta = parseJson(bytes.toString('utf8', 4, 4 + headerLength)) as { runId?: unknown; kind?: unknown; iteration?: unknown; digest?: unknown; layoutHash?: unknown; outcomes?: unknown } | undefined;
  if (typeof meta !== 'object' || meta === null || !Array.isArray(meta.outcomes)) return 'the result is not readable';
  // Aligned views into one fresh buffer (a Buffer this large never comes from Node's shared pool).
  const body = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = Math.ceil((4 + headerLength) / 4) * 4;
  const take = (): Uint8Array | undefined => {
    if (at + size * 4 > body.byteLength) return undefined;
    const a = body.subarray(at, at + size * 4);
    at += size * 4;
    return a;
  };
  const outcomes: TaskOutcome[] = [];
  for (const o of meta.outcomes as Record<string, unknown>[]) {
    if (typeof o !== 'object' || o === null || typeof o['parts'] !== 'string' || !/^p?l?m?v?$/.test(o['parts'])) return 'an outcome of the result is malformed';
    const parts = o['parts'];
    const got: Record<string, Uint8Array> = {};
    for (const p of parts) {
      const a = take();
      if (a === undefined) return 'the result is shorter than its header says';
      got[p] = a;
    }
    const state = o['state'] as { kind: 'sgd' | 'adam'; step: number } | undefined;
    outcomes.push({
      taskIndex: o['taskIndex'] as number,
      ...(o['loss'] !== undefined ? { loss: o['loss'] as number } : {}),
      ...(o['score'] !== undefined ? { score: o['score'] as number } : {}),
      ...(got['p'] ? { params: got['p'] } : {}),
      ...(got['l'] ? { lastStep: got['l'] } : {}),
      ...(state ? { state: { kind: state.kind, step: state.step, ...(got['m'] ? { m: got['m'] } : {}), ...(got['v'] ? { v: got['v'] } : {}) } } : {}),
    });
  }
  if (at !== body.byteLength) return `the result holds ${body.byteLength - at} bytes more than its header says`;
  return { runId: meta.runId as string, kind: meta.kind as 'adapt', iteration: meta.iteration as number, digest: meta.digest as string, layoutHash: meta.layoutHash as string, outcomes };
}

/** Why a worker will not work on the run `spec` describes, or undefined. */
export function checkSpec(spec: RunSpec | undefined, runId: string): string | undefined {
  if (typeof spec !== 'object' || spec === null) return `its spec is not readable JSON (or larger than ${MAX_SPEC_BYTES >> 20} MiB)`;
  if (spec.runId !== runId) return `its spec names run ${describeValue(spec.runId)}`;
  const l = spec.learner as Partial<RunSpec['learner']> | undefined;
  if (typeof l !== 'object' || l === null) return 'its spec has no learner';
  if (l.kind !== 'native' && l.kind !== 'wasm' && l.kind !== 'tfjs') return `unknown learner kind ${describeValue(l.kind)}`;
  if (l.innerState !== 'shared' && l.innerState !== 'reset' && l.innerState !== 'carry') return `unknown inner-state policy ${describeValue(l.innerState)}`;
  if (typeof l.layout !== 'object' || l.layout === null || !Number.isSafeInteger(l.layout.size) || l.layout.size < 1 || l.layout.size > 1 << 28 || typeof l.layout.hash !== 'string') return 'its layout is malformed';
  if (typeof l.modelTopology !== 'object' || l.modelTopology === null) return 'its model topology is not an object';
  if (typeof l.backend !== 'string' || !['cpu', 'wasm', 'tensorflow'].includes(l.backend)) return `unknown tfjs backend ${describeValue(l.backend)}`;
  if (typeof spec.source !== 'object' || spec.source === null) return 'its task source is not an object';
  return undefined;
}
