// The few-shot drawing page: the meta-learned Omniglot network and the same network before
// meta-training adapt, in this page, to one drawing per class, then classify the query drawing.
// The library's WebAssembly engine runs the adaptation (WasmLearner); `?engine=tfjs` runs it
// with the TfjsLearner instead, for comparison.
import * as tf from '@tensorflow/tfjs';
import {
  Params,
  Rng,
  TfjsLearner,
  WasmLearner,
  concatExamples,
  createOmniglotModel,
  registerWasmConvKernels,
  type ConvInit,
  type Examples,
  type InnerOptions,
  type Learner,
  type Task,
} from 'reptile-ml';
import { loadJson, loadModel, selectDemoBackend, selectDemoEngine, yieldToBrowser } from './common.js';
import type { DrawingState, NetName } from './drawing-state.js';

/** What `reptile export --demo-tasks` writes beside the model. */
interface DemoTasks {
  classes: number;
  size: number;
  inner: InnerOptions;
  randomInit: { seed: number; init: ConvInit };
  tasks: { index: number; support: string[]; query: string[]; queryLabels: number[]; node: Record<'metaLearned' | 'random', { predicted: number[]; probabilities: number[][]; correct: number }> }[];
}

const MODEL_DIR = new URLSearchParams(location.search).get('model') ?? 'models/omniglot-5w';
const MAKE_WITH = 'reptile export --checkpoint docs/results/omniglot-5w --out web/public/models/omniglot-5w --demo-tasks 12';
const SIZE = 28;
const SCALE = 5;
const CLASSES = 5;

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
};
const statusLine = $('status');
const stepsInput = $<HTMLInputElement>('steps');

const boxes: HTMLCanvasElement[] = [];
for (let b = 0; b <= CLASSES; b++) {
  const wrap = document.createElement('div');
  wrap.className = b === CLASSES ? 'box query' : 'box';
  const canvas = document.createElement('canvas');
  canvas.width = SIZE * SCALE;
  canvas.height = SIZE * SCALE;
  canvas.id = b === CLASSES ? 'query' : `class-${b}`;
  const label = document.createElement('span');
  label.textContent = b === CLASSES ? 'query' : `class ${b + 1}`;
  const clear = document.createElement('button');
  clear.type = 'button';
  clear.textContent = 'clear';
  clear.addEventListener('click', () => {
    blank(canvas);
    refreshBitmaps();
  });
  wrap.append(canvas, label, clear);
  $('boxes').append(wrap);
  boxes.push(canvas);
}

// Adam steps of the adaptation by default: the paper's 50 on the WebAssembly engine. tfjs takes
// about 50 ms a step here, so on it the page runs 10; on 1,000 held-out 5-way 1-shot tasks the
// committed checkpoint scores 95.70% after 10 steps and 95.72% after 50 (reptile eval --shots 1
// --eval-iters 10|50 --samples 1000).
const DEFAULT_STEPS: Record<'wasm' | 'tfjs', number> = { wasm: 50, tfjs: 10 };
// Steps per call of `adapt` between two yields to the browser: a WebAssembly step of both networks
// takes a few milliseconds, a tfjs one tens.
const STEPS_PER_CALL: Record<'wasm' | 'tfjs', number> = { wasm: 10, tfjs: 1 };

const state: DrawingState = {
  page: 'drawing',
  status: 'loading',
  error: null,
  backend: '',
  engine: '',
  engineNote: '',
  steps: DEFAULT_STEPS.wasm,
  bitmaps: [],
  lastAdapt: null,
  runs: 0,
  running: false,
  last: null,
  cellToClient(box, row, col) {
    const canvas = boxes[box]!;
    const rect = canvas.getBoundingClientRect();
    const cell = rect.width / SIZE;
    return { x: rect.left + (col + 0.5) * cell, y: rect.top + (row + 0.5) * cell, cell };
  },
};
(window as unknown as { __reptile: DrawingState }).__reptile = state;

const nets: Partial<Record<NetName, { learner: Learner; phi: Params }>> = {};
let demo: DemoTasks | undefined;
let inner: InnerOptions = { optimizer: 'adam', learningRate: 0.001, innerIters: 50, innerBatch: 5, beta1: 0, beta2: 0.999 };
let nextTask = 0;

function context(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new Error('this browser gives no 2-D canvas');
  return ctx;
}

function blank(canvas: HTMLCanvasElement): void {
  const ctx = context(canvas);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

/**
 * The drawing at the network's resolution as Omniglot stores it (1 paper, 0 ink): a cell is ink
 * when more than half of its pixels are. A pen one cell wide therefore marks exactly the cells its
 * centre line crosses.
 */
function bitmapOf(canvas: HTMLCanvasElement): string {
  const data = context(canvas).getImageData(0, 0, canvas.width, canvas.height).data;
  let out = '';
  for (let r = 0; r < SIZE; r++) {
    for (let c = 0; c < SIZE; c++) {
      let dark = 0;
      for (let y = r * SCALE; y < (r + 1) * SCALE; y++) for (let x = c * SCALE; x < (c + 1) * SCALE; x++) dark += 1 - data[(y * canvas.width + x) * 4]! / 255;
      out += dark / (SCALE * SCALE) > 0.5 ? '0' : '1';
    }
  }
  return out;
}

function paintBitmap(canvas: HTMLCanvasElement, bits: string): void {
  blank(canvas);
  const ctx = context(canvas);
  ctx.fillStyle = '#000';
  for (let p = 0; p < bits.length; p++) if (bits[p] === '0') ctx.fillRect((p % SIZE) * SCALE, Math.floor(p / SIZE) * SCALE, SCALE, SCALE);
}

function refreshBitmaps(): void {
  state.bitmaps = boxes.map(bitmapOf);
}

function hasInk(bits: string): boolean {
  return bits.includes('0');
}

// ---- drawing with the pointer ----

for (const canvas of boxes) {
  let drawing = false;
  const at = (e: PointerEvent): [number, number] => {
    const rect = canvas.getBoundingClientRect();
    return [((e.clientX - rect.left) * canvas.width) / rect.width, ((e.clientY - rect.top) * canvas.height) / rect.height];
  };
  canvas.addEventListener('pointerdown', (e) => {
    drawing = true;
    canvas.setPointerCapture(e.pointerId);
    const ctx = context(canvas);
    const [x, y] = at(e);
    ctx.fillStyle = '#000';
    ctx.beginPath();
    ctx.arc(x, y, SCALE / 2, 0, 2 * Math.PI);
    ctx.fill();
    ctx.beginPath();
    ctx.moveTo(x, y);
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!drawing) return;
    const ctx = context(canvas);
    const [x, y] = at(e);
    ctx.strokeStyle = '#000';
    ctx.lineWidth = SCALE;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.lineTo(x, y);
    ctx.stroke();
    ctx.beginPath();
    ctx.moveTo(x, y);
  });
  const end = () => {
    if (!drawing) return;
    drawing = false;
    const startedAt = performance.now();
    refreshBitmaps();
    void classify(startedAt);
  };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
}

// ---- adaptation and prediction ----

function examplesOf(bitmaps: readonly string[], labels: readonly number[]): Examples {
  const inputs = new Float32Array(bitmaps.length * SIZE * SIZE);
  bitmaps.forEach((bits, k) => {
    for (let p = 0; p < SIZE * SIZE; p++) inputs[k * SIZE * SIZE + p] = bits[p] === '1' ? 1 : 0;
  });
  return { count: bitmaps.length, inputs, inputShape: [SIZE, SIZE, 1], targets: Float32Array.from(labels), targetShape: [] };
}

type Adapted = Record<NetName, Params>;
/** The support drawings (and step count) the running or finished adaptation is for. */
let adaptingKey = '';
let adapting: Promise<Adapted | undefined> | undefined;

function stepCount(): number {
  return Math.max(1, Math.min(500, Math.round(Number(stepsInput.value) || 1)));
}

function supportKey(): string {
  return `${stepCount()}#${state.bitmaps.slice(0, CLASSES).join('|')}`;
}

/**
 * Adapts both networks to the class drawings as soon as every class box has ink, before the
 * query is drawn (the adaptation never sees the query), so that finishing the query only costs a
 * prediction. A later stroke in a class box starts a new adaptation and the old one stops at its
 * next call. Adam runs a few steps per call so the page paints and takes input between calls; with
 * the optimizer's state carried from call to call and the whole support set as each minibatch,
 * that is the same as one call of `steps` steps.
 */
function adaptToSupport(startedAt: number): Promise<Adapted | undefined> | undefined {
  if (state.status !== 'ready' || !state.bitmaps.slice(0, CLASSES).every(hasInk)) return undefined;
  const key = supportKey();
  if (adapting !== undefined && adaptingKey === key) return adapting;
  adaptingKey = key;
  const steps = stepCount();
  const run = async (): Promise<Adapted | undefined> => {
    const labels = Array.from({ length: CLASSES }, (_, c) => c);
    const support = examplesOf(state.bitmaps.slice(0, CLASSES), labels);
    const task: Task = { kind: 'classification', numClasses: CLASSES, support, query: support };
    const perCall = STEPS_PER_CALL[state.engine === 'wasm' ? 'wasm' : 'tfjs'];
    const ready = Object.entries(nets) as [NetName, { learner: Learner; phi: Params }][];
    const current = Object.fromEntries(ready.map(([name, net]) => [name, net.phi])) as Adapted;
    const states = Object.fromEntries(ready.map(([name]) => [name, undefined])) as Record<NetName, ReturnType<Learner['getOptimizerState']>>;
    const rng = Rng.fromSeed(0);
    for (let step = 0; step < steps; ) {
      const chunk: InnerOptions = { ...inner, innerIters: Math.min(perCall, steps - step), innerBatch: CLASSES };
      // Each network resumes its own trajectory: the page's learners are shared with the prediction.
      for (const [name, net] of ready) {
        net.learner.setParams(current[name]);
        net.learner.setOptimizerState(states[name]);
        current[name] = (await net.learner.adapt(task, chunk, rng)).params;
        states[name] = net.learner.getOptimizerState();
        net.learner.setParams(net.phi);
        net.learner.setOptimizerState(undefined);
      }
      step += chunk.innerIters;
      if (step % 5 === 0) statusLine.textContent = `adapting to the class drawings… step ${step}/${steps}`;
      await yieldToBrowser();
      if (adaptingKey !== key) return undefined;
    }
    state.lastAdapt = { steps, ms: performance.now() - startedAt };
    return current;
  };
  adapting = run();
  return adapting;
}

/** Classifies the query with the networks adapted to the class drawings (adapting first if needed). */
async function classify(startedAt: number): Promise<void> {
  const pending = adaptToSupport(startedAt);
  if (pending === undefined || !hasInk(state.bitmaps[CLASSES]!)) return;
  state.running = true;
  try {
    const key = adaptingKey;
    const adapted = await pending;
    if (adapted === undefined || key !== adaptingKey) return;
    const labels = Array.from({ length: CLASSES }, (_, c) => c);
    const support = examplesOf(state.bitmaps.slice(0, CLASSES), labels);
    const query = examplesOf([state.bitmaps[CLASSES]!], [0]);
    const results = {} as Record<NetName, { probabilities: number[]; predicted: number }>;
    for (const [name, net] of Object.entries(nets) as [NetName, { learner: Learner; phi: Params }][]) {
      // Not transductive: the query is classified in one batch with the support set.
      net.learner.setParams(adapted[name]);
      const logits = Array.from(net.learner.predict(concatExamples(support, query)).subarray(CLASSES * CLASSES, CLASSES * (CLASSES + 1)));
      net.learner.setParams(net.phi);
      const top = Math.max(...logits);
      const e = logits.map((v) => Math.exp(v - top));
      const sum = e.reduce((a, b) => a + b, 0);
      const probabilities = e.map((v) => v / sum);
      results[name] = { probabilities, predicted: probabilities.indexOf(Math.max(...probabilities)) };
      renderBars(name, results[name]);
    }
    const steps = Number(key.split('#')[0]);
    state.steps = steps;
    state.runs += 1;
    state.last = { steps, ms: performance.now() - startedAt, results };
    statusLine.textContent = `prediction ${state.last.ms.toFixed(0)} ms after the last stroke (the networks adapted to the class drawings in ${steps} steps, ${((state.lastAdapt?.ms ?? 0) / 1000).toFixed(2)} s after their last stroke) · ${engineLabel()}`;
  } finally {
    state.running = false;
  }
}

function renderBars(name: NetName, r: { probabilities: number[]; predicted: number }): void {
  const host = $(name === 'meta' ? 'meta-bars' : 'random-bars');
  host.replaceChildren();
  r.probabilities.forEach((p, c) => {
    const label = document.createElement('span');
    label.textContent = `class ${c + 1}`;
    const track = document.createElement('div');
    const bar = document.createElement('div');
    bar.className = c === r.predicted ? 'bar best' : 'bar';
    bar.style.width = `${Math.max(1, p * 220).toFixed(0)}px`;
    track.append(bar);
    const value = document.createElement('span');
    value.textContent = `${(100 * p).toFixed(1)}%`;
    host.append(label, track, value);
  });
}

function loadTask(): void {
  if (!demo || demo.tasks.length === 0) return;
  const t = demo.tasks[nextTask++ % demo.tasks.length]!;
  const q = nextTask % CLASSES;
  t.support.forEach((bits, c) => paintBitmap(boxes[c]!, bits));
  paintBitmap(boxes[CLASSES]!, t.query[q]!);
  refreshBitmaps();
  statusLine.textContent = `held-out task ${t.index}: the query is class ${t.queryLabels[q]! + 1}`;
  void classify(performance.now());
}

function engineLabel(): string {
  return state.engine === 'wasm' ? 'WebAssembly engine' : `tfjs (${state.backend} backend)`;
}

/** The learner for a model on the page's engine; the model stays the page's format (tfjs) either way. */
function learnerFor(model: tf.LayersModel): Learner {
  return state.engine === 'wasm' ? new WasmLearner({ model }) : new TfjsLearner({ model });
}

async function load(): Promise<void> {
  state.backend = await selectDemoBackend();
  // tfjs's wasm backend lacks the convolution gradients; the library supplies them.
  if (state.backend === 'wasm') registerWasmConvKernels();
  const chosen = await selectDemoEngine();
  state.engine = chosen.engine;
  state.engineNote = chosen.note;
  demo = await loadJson<DemoTasks>(`${MODEL_DIR}/tasks.json`, MAKE_WITH);
  inner = demo.inner;
  state.steps = DEFAULT_STEPS[chosen.engine];
  stepsInput.value = String(state.steps);
  const model = await loadModel(`${MODEL_DIR}/model.json`, MAKE_WITH);
  const meta = learnerFor(model);
  nets.meta = { learner: meta, phi: meta.getParams() };
  const random = learnerFor(createOmniglotModel({ classes: demo.classes, seed: demo.randomInit.seed, init: demo.randomInit.init }));
  nets.random = { learner: random, phi: random.getParams() };
}

boxes.forEach(blank);
refreshBitmaps();
$('load-task').addEventListener('click', loadTask);
$('clear-all').addEventListener('click', () => {
  boxes.forEach(blank);
  refreshBitmaps();
});
load()
  .then(() => {
    state.status = 'ready';
    statusLine.textContent = `ready · ${state.engineNote}: draw in every box, or load a held-out task`;
  })
  .catch((e: unknown) => {
    state.status = 'error';
    state.error = (e as Error).message;
    statusLine.textContent = state.error;
    statusLine.classList.add('error');
  });

