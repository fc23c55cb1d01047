// The Omniglot page: meta-trains the paper's Omniglot network from a random start in a Web
// Worker, on characters `reptile serve --omniglot DIR` packs from the user's own copy of the
// archives, and plots the 1-shot 5-way accuracy on held-out characters as it rises.
import { readBinarySet, type BinarySet } from 'reptile-ml';
import { selectDemoBackend, selectDemoEngine, type DemoEngine } from './common.js';
import type { FromWorker, ToWorker } from './omniglot-protocol.js';
import { Plot } from './plot.js';

/** Where `reptile serve --omniglot DIR` serves the packed characters. */
const SET_URL = './omniglot-set.bin';
const HOW_TO = 'this page needs Omniglot characters from its server: download the archives with `reptile data omniglot --download --dir data/omniglot`, then start `reptile serve --omniglot data/omniglot`';

interface CurvePoint {
  iteration: number;
  accuracy: number;
  seconds: number;
}

/** The page's state as the browser tests read it (`window.__reptile`). */
interface OmniglotState {
  page: 'omniglot';
  status: 'loading' | 'ready' | 'no-data' | 'error';
  error: string | null;
  backend: string;
  engine: DemoEngine | '';
  engineNote: string;
  set: { train: number; test: number; images: number; bytes: number } | null;
  metaTrain: {
    status: 'idle' | 'running' | 'done' | 'stopped' | 'error';
    iteration: number;
    metaIters: number;
    curve: CurvePoint[];
    /** Seconds since the start, and those spent meta-training (not evaluating). */
    seconds: number;
    trainSeconds: number;
    error: string | null;
  };
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
};

const state: OmniglotState = {
  page: 'omniglot',
  status: 'loading',
  error: null,
  backend: '',
  engine: '',
  engineNote: '',
  set: null,
  metaTrain: { status: 'idle', iteration: 0, metaIters: 0, curve: [], seconds: 0, trainSeconds: 0, error: null },
};
(window as unknown as { __reptile: OmniglotState }).__reptile = state;

const statusLine = $('status');
const trainStatus = $('train-status');
const trainButton = $<HTMLButtonElement>('meta-train');
const inputs = { metaIters: $<HTMLInputElement>('meta-iters'), evalEvery: $<HTMLInputElement>('eval-every'), evalTasks: $<HTMLInputElement>('eval-tasks') };
const curvePlot = new Plot($<HTMLCanvasElement>('curve-canvas'), { xMin: 0, xMax: 1, yMin: 0, yMax: 1 });
let bytes: ArrayBuffer | undefined;
let worker: Worker | undefined;

function fail(message: string, status: OmniglotState['status'] = 'error'): void {
  state.status = status;
  state.error = message;
  statusLine.textContent = message;
  statusLine.classList.add('error');
}

/** A strip of characters: the first drawing of some training characters, then of some held-out ones. */
function drawCharacters(set: BinarySet): void {
  const canvas = $<HTMLCanvasElement>('characters');
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const side = set.side;
  const cells = Math.floor(canvas.width / (side + 4));
  const heldOut = Math.floor(cells / 4);
  const image = ctx.createImageData(side, side);
  const pixels = new Float32Array(side * side);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  for (let i = 0; i < cells; i++) {
    const fromTest = i >= cells - heldOut;
    const dataset = fromTest ? set.test : set.train;
    const cls = fromTest ? i - (cells - heldOut) : i;
    if (cls >= dataset.numClasses) continue;
    dataset.load(cls, 0, pixels, 0);
    for (let p = 0; p < pixels.length; p++) {
      const v = pixels[p]! > 0.5 ? 255 : fromTest ? 40 : 0;
      image.data.set([v, v, fromTest && v === 40 ? 160 : v, 255], p * 4);
    }
    ctx.putImageData(image, 2 + i * (side + 4), 18);
  }
  $('characters-note').textContent = `${set.train.numClasses} characters for meta-training (black, the first few shown) and ${set.test.numClasses} held out (blue, at the right), 20 drawings each, ${side}×${side}`;
}

function drawCurve(): void {
  const { curve, metaIters } = state.metaTrain;
  const xMax = Math.max(1, metaIters);
  curvePlot.view = { xMin: 0, xMax, yMin: 0, yMax: 1 };
  curvePlot.clear([0, 0.25, 0.5, 0.75, 1].map((f) => Math.round(f * xMax)), [0, 0.2, 0.4, 0.6, 0.8, 1], String, (v) => `${Math.round(v * 100)}%`);
  curvePlot.line([0, xMax], [0.2, 0.2], '#999', { width: 1, dashed: true });
  if (curve.length > 0) {
    curvePlot.line(curve.map((c) => c.iteration), curve.map((c) => c.accuracy), '#1f77b4', { width: 2.5 });
    curvePlot.dots(curve.map((c) => c.iteration), curve.map((c) => c.accuracy), '#1f77b4', 3);
    const last = curve[curve.length - 1]!;
    curvePlot.label(`held-out 1-shot 5-way accuracy: ${(last.accuracy * 100).toFixed(1)}% at meta-iteration ${last.iteration} (random start: ${(curve[0]!.accuracy * 100).toFixed(1)}%; dashed: chance)`);
  } else {
    curvePlot.label(state.set ? 'press meta-train' : 'no characters loaded', '#555');
  }
}

function readInput(input: HTMLInputElement, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, Math.round(Number(input.value) || lo)));
}

function startMetaTrain(): void {
  if (state.metaTrain.status === 'running') {
    worker?.postMessage({ type: 'stop' } satisfies ToWorker);
    return;
  }
  if (!bytes) return;
  const metaIters = readInput(inputs.metaIters, 10, 100_000);
  state.metaTrain = { status: 'running', iteration: 0, metaIters, curve: [], seconds: 0, trainSeconds: 0, error: null };
  trainButton.textContent = 'stop';
  trainStatus.textContent = 'starting the worker…';
  trainStatus.classList.remove('error');
  drawCurve();
  worker ??= new Worker(new URL('./omniglot-worker.ts', import.meta.url), { type: 'module' });
  worker.onmessage = (event: MessageEvent<FromWorker>) => onWorkerMessage(event.data);
  worker.onerror = (event) => onWorkerMessage({ type: 'error', message: event.message || 'the meta-training worker failed to start' });
  worker.postMessage({
    type: 'start',
    backend: state.backend,
    engine: state.engine === 'wasm' ? 'wasm' : 'tfjs',
    set: bytes.slice(0),
    metaIters,
    evalEvery: readInput(inputs.evalEvery, 5, 10_000),
    evalTasks: readInput(inputs.evalTasks, 5, 1000),
    seed: 0,
  } satisfies ToWorker);
}

function onWorkerMessage(message: FromWorker): void {
  const mt = state.metaTrain;
  if (message.type === 'curve') {
    mt.curve.push({ iteration: message.iteration, accuracy: message.accuracy, seconds: message.seconds });
    drawCurve();
  } else if (message.type === 'progress') {
    mt.iteration = message.iteration;
    mt.seconds = message.seconds;
    mt.trainSeconds = message.trainSeconds;
    trainStatus.textContent = `meta-iteration ${message.iteration}/${message.metaIters} · inner loss ${message.loss.toFixed(3)} · ${message.seconds.toFixed(1)} s (${message.trainSeconds.toFixed(1)} s meta-training, the rest evaluating)`;
  } else if (message.type === 'done') {
    mt.status = message.stopped ? 'stopped' : 'done';
    mt.iteration = message.iterations;
    mt.seconds = message.seconds;
    mt.trainSeconds = message.trainSeconds;
    trainButton.textContent = 'meta-train';
    trainStatus.textContent = `${message.stopped ? 'stopped' : 'done'} after ${message.iterations} meta-iterations in ${message.seconds.toFixed(1)} s (${(message.trainSeconds / Math.max(1, message.iterations) * 1000).toFixed(0)} ms per meta-iteration of 25 Adam steps)`;
  } else {
    mt.status = 'error';
    mt.error = message.message;
    trainButton.textContent = 'meta-train';
    trainStatus.textContent = `meta-training failed: ${message.message}`;
    trainStatus.classList.add('error');
  }
}

async function load(): Promise<void> {
  state.backend = await selectDemoBackend();
  const { engine, note } = await selectDemoEngine();
  state.engine = engine;
  state.engineNote = note;
  let response: Response;
  try {
    response = await fetch(SET_URL);
  } catch (e) {
    return fail(`could not fetch ${SET_URL} (${(e as Error).message}): ${HOW_TO}`, 'no-data');
  }
  if (response.status === 404) return fail(`no characters at ${SET_URL}: ${HOW_TO}`, 'no-data');
  if (!response.ok) return fail(`fetching ${SET_URL} answered HTTP ${response.status}: ${HOW_TO}`, 'no-data');
  bytes = await response.arrayBuffer();
  let set: BinarySet;
  try {
    set = readBinarySet(new Uint8Array(bytes));
  } catch (e) {
    bytes = undefined;
    return fail(`${SET_URL}: ${(e as Error).message}`);
  }
  state.set = { train: set.train.numClasses, test: set.test.numClasses, images: set.counts.reduce((a, b) => a + b, 0), bytes: bytes.byteLength };
  drawCharacters(set);
  state.status = 'ready';
  trainButton.disabled = false;
  statusLine.textContent = `ready · ${state.engineNote} · ${set.names.length} characters (${(bytes.byteLength / 1e6).toFixed(2)} MB)`;
}

trainButton.addEventListener('click', startMetaTrain);
drawCurve();
load()
  .catch((e: unknown) => fail((e as Error).message ?? String(e)))
  .finally(() => drawCurve());
