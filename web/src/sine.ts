// The sine page: the meta-learned and a random initialisation adapt side by side to the points
// the user clicks, with the library's own learners on its WebAssembly engine (tfjs under
// `?engine=tfjs`); "meta-train" runs the library's Reptile loop from scratch in a Web Worker.
import * as tf from '@tensorflow/tfjs';
import {
  Params,
  Rng,
  SineTaskSource,
  TfjsLearner,
  WasmLearner,
  createSineModel,
  mse,
  type Examples,
  type Learner,
  type SineWave,
  type Task,
} from 'reptile-ml';
import { loadJson, loadModel, selectDemoBackend, selectDemoEngine, yieldToBrowser, type DemoEngine } from './common.js';
import { Plot, type View } from './plot.js';
import type { FromWorker, ToWorker } from './sine-protocol.js';

/** What `reptile demo sine --export` writes beside the model. */
interface DemoSettings {
  randomInitSeed: number;
  metaIters: number;
  train: { learningRate: number; innerIters: number; innerBatch: number; metaStep: number; metaStepFinal: number };
  adapt: { learningRate: number; innerIters: number; shots: number };
}

type PanelName = 'meta' | 'random';

interface Panel {
  readonly name: PanelName;
  readonly plot: Plot;
  readonly note: HTMLElement;
  learner?: Learner;
  phi?: Params;
  error?: string;
  before?: Float32Array;
  current?: Float32Array;
  /** MSE on the clicked points before adaptation (index 0) and after each step. */
  errors: number[];
}

interface CurvePoint {
  iteration: number;
  mse: number;
}

/** The page's state as the browser tests read it (`window.__reptile`). */
interface SineState {
  page: 'sine';
  status: 'loading' | 'ready' | 'error';
  error: string | null;
  /** The tfjs backend the page loads models with (and runs them on under tfjs). */
  backend: string;
  /** Which engine runs the inner loops: the library's WebAssembly engine, or tfjs (`?engine=tfjs`, or its fallback). */
  engine: DemoEngine | '';
  /** Why the page runs on that engine (one line). */
  engineNote: string;
  settings: { k: number; learningRate: number };
  points: { x: number; y: number }[];
  trueWave: SineWave | null;
  panels: Record<PanelName, { ready: boolean; error: string | null; errors: number[]; step: number }>;
  /** Adaptations run to their last step. */
  adaptRuns: number;
  /** The last finished adaptation: from the click (or button) that started it to the last redraw. */
  lastAdapt: { points: number; steps: number; ms: number; computeMs: number } | null;
  metaTrain: {
    status: 'idle' | 'running' | 'done' | 'stopped' | 'error';
    iteration: number;
    metaIters: number;
    curve: CurvePoint[];
    seconds: number;
    error: string | null;
  };
  /** Viewport coordinates of data point (x, y) on a panel's canvas, for clicking it. */
  pointToClient(x: number, y: number, panel?: PanelName): { x: number; y: number };
}

const MODEL_DIR = new URLSearchParams(location.search).get('model') ?? 'models/sine';
const MAKE_WITH = 'npm run web:weights (reptile demo sine --export web/public/models/sine)';
const VIEW: View = { xMin: -5, xMax: 5, yMin: -6, yMax: 6 };
// 121 abscissas draw a smooth curve at this width; each redraw runs the network on all of them.
const GRID = Array.from({ length: 121 }, (_, i) => VIEW.xMin + ((VIEW.xMax - VIEW.xMin) * i) / 120);
const COLORS: Record<PanelName, string> = { meta: '#1f77b4', random: '#ff7f0e' };

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
};

const inputs = { k: $<HTMLInputElement>('k'), lr: $<HTMLInputElement>('lr'), shots: $<HTMLInputElement>('shots'), metaIters: $<HTMLInputElement>('meta-iters') };
const statusLine = $('status');
const trainStatus = $('train-status');
const useTrained = $<HTMLButtonElement>('use-trained');
const trainButton = $<HTMLButtonElement>('meta-train');

const panels: Record<PanelName, Panel> = {
  meta: { name: 'meta', plot: new Plot($<HTMLCanvasElement>('meta-canvas'), VIEW), note: $('meta-note'), errors: [] },
  random: { name: 'random', plot: new Plot($<HTMLCanvasElement>('random-canvas'), VIEW), note: $('random-note'), errors: [] },
};
const curvePlot = new Plot($<HTMLCanvasElement>('curve-canvas'), { xMin: 0, xMax: 1, yMin: 0, yMax: 1 });

const state: SineState = {
  page: 'sine',
  status: 'loading',
  error: null,
  backend: '',
  engine: '',
  engineNote: '',
  settings: { k: 32, learningRate: 0.02 },
  points: [],
  trueWave: null,
  panels: {
    meta: { ready: false, error: null, errors: [], step: 0 },
    random: { ready: false, error: null, errors: [], step: 0 },
  },
  adaptRuns: 0,
  lastAdapt: null,
  metaTrain: { status: 'idle', iteration: 0, metaIters: 0, curve: [], seconds: 0, error: null },
  pointToClient(x, y, panel = 'meta') {
    const plot = panels[panel].plot;
    const rect = plot.canvas.getBoundingClientRect();
    const [cx, cy] = plot.toCanvas(x, y);
    return { x: rect.left + cx * (rect.width / plot.width), y: rect.top + cy * (rect.height / plot.height) };
  },
};
(window as unknown as { __reptile: SineState }).__reptile = state;

let settings: DemoSettings = {
  randomInitSeed: 0,
  metaIters: 4000,
  train: { learningRate: 0.03, innerIters: 5, innerBatch: 10, metaStep: 1, metaStepFinal: 0 },
  adapt: { learningRate: 0.02, innerIters: 32, shots: 10 },
};
let generation = 0;
let backend = 'cpu';
let engine: DemoEngine = 'tfjs';
let taskCounter = 0;
// A seed for "random task" that differs from one page load to the next (no Math.random: the
// library's seeded generator draws the wave).
const sessionSeed = Date.now() % 2 ** 31;

function readSettings(): { k: number; learningRate: number } {
  const k = Math.max(1, Math.min(500, Math.round(Number(inputs.k.value) || 1)));
  const lr = Number(inputs.lr.value);
  state.settings = { k, learningRate: Number.isFinite(lr) && lr > 0 ? lr : 0.02 };
  return state.settings;
}

function examples(xs: readonly number[], ys: readonly number[]): Examples {
  return { count: xs.length, inputs: Float32Array.from(xs), inputShape: [1], targets: Float32Array.from(ys), targetShape: [1] };
}

const gridExamples = examples(GRID, GRID.map(() => 0));

function currentTask(): Task | undefined {
  if (state.points.length === 0) return undefined;
  return {
    kind: 'regression',
    support: examples(state.points.map((p) => p.x), state.points.map((p) => p.y)),
    query: gridExamples,
  };
}

function draw(): void {
  const ticks = [-4, -2, 0, 2, 4];
  for (const panel of Object.values(panels)) {
    const p = panel.plot;
    p.clear(ticks, [-6, -3, 0, 3, 6]);
    if (state.trueWave) {
      const w = state.trueWave;
      p.line(GRID, GRID.map((x) => w.amplitude * Math.sin(x + w.phase)), '#999', { width: 1.5 });
    }
    if (panel.error) {
      p.label('the meta-learned model did not load (see the message above)', '#b00020');
    } else if (!panel.learner) {
      p.label('loading…', '#555');
    } else {
      if (panel.before) p.line(GRID, panel.before, COLORS[panel.name], { width: 1.5, dashed: true });
      if (panel.current) p.line(GRID, panel.current, COLORS[panel.name], { width: 2.5 });
      const errs = panel.errors;
      if (errs.length > 0) {
        const last = errs[errs.length - 1]!;
        p.label(`step ${errs.length - 1}/${state.settings.k} · MSE on the points ${last.toPrecision(3)} (from ${errs[0]!.toPrecision(3)})`);
      }
    }
    p.dots(state.points.map((q) => q.x), state.points.map((q) => q.y), '#d62728');
  }
}

/** The curve on the grid and the MSE on the task's points, from one forward pass over both. */
function predictWithPoints(learner: Learner, task: Task): { grid: Float32Array; error: number } {
  const n = GRID.length;
  const both = examples([...GRID, ...task.support.inputs], [...GRID.map(() => 0), ...task.support.targets]);
  const out = learner.predict(both);
  return { grid: out.subarray(0, n), error: mse(out.subarray(n), task.support.targets) };
}

/** Adapts both panels from their initialisation to the current points, one SGD step at a time. */
async function adapt(startedAt: number): Promise<void> {
  const gen = ++generation;
  const { k, learningRate } = readSettings();
  const task = currentTask();
  const ready = Object.values(panels).filter((p) => p.learner && p.phi);
  for (const panel of ready) {
    panel.learner!.setParams(panel.phi!);
    if (task) {
      const out = predictWithPoints(panel.learner!, task);
      panel.before = out.grid;
      panel.errors = [out.error];
    } else {
      panel.before = panel.learner!.predict(gridExamples);
      panel.errors = [];
    }
    panel.current = panel.before;
    state.panels[panel.name].errors = [...panel.errors];
    state.panels[panel.name].step = 0;
  }
  draw();
  if (!task) return;
  // Full-batch SGD keeps no state between steps, so k calls of one step each are the k-step
  // adaptation itself, with a redraw after every step.
  const inner = { optimizer: 'sgd' as const, learningRate, innerIters: 1, innerBatch: task.support.count };
  const rng = Rng.fromSeed(0);
  let computeMs = 0;
  for (let step = 1; step <= k; step++) {
    const stepBegan = performance.now();
    for (const panel of ready) {
      const learner = panel.learner!;
      const r = await learner.adapt(task, inner, rng);
      learner.setParams(r.params);
      const out = predictWithPoints(learner, task);
      panel.current = out.grid;
      panel.errors.push(out.error);
      state.panels[panel.name].errors = [...panel.errors];
      state.panels[panel.name].step = step;
    }
    draw();
    computeMs += performance.now() - stepBegan;
    await yieldToBrowser();
    if (gen !== generation) return;
  }
  state.adaptRuns += 1;
  state.lastAdapt = { points: task.support.count, steps: k, ms: performance.now() - startedAt, computeMs };
}

function onCanvasClick(panel: Panel, event: MouseEvent): void {
  const startedAt = performance.now();
  const rect = panel.plot.canvas.getBoundingClientRect();
  const [x, y] = panel.plot.toData((event.clientX - rect.left) * (panel.plot.width / rect.width), (event.clientY - rect.top) * (panel.plot.height / rect.height));
  if (x < VIEW.xMin || x > VIEW.xMax || y < VIEW.yMin || y > VIEW.yMax) return;
  if (state.trueWave) {
    // A click after a random task starts a task of the user's own.
    state.trueWave = null;
    state.points = [];
  }
  state.points.push({ x, y });
  void adapt(startedAt);
}

function randomTask(): void {
  const startedAt = performance.now();
  const shots = Math.max(1, Math.min(50, Math.round(Number(inputs.shots.value) || 5)));
  const task = new SineTaskSource({ shots }).sample(Rng.derive(sessionSeed, taskCounter++));
  state.trueWave = task.wave;
  state.points = Array.from(task.support.inputs, (x, i) => ({ x, y: task.support.targets[i]! }));
  void adapt(startedAt);
}

async function loadPanels(): Promise<void> {
  backend = await selectDemoBackend();
  state.backend = backend;
  const chosen = await selectDemoEngine();
  engine = chosen.engine;
  state.engine = engine;
  state.engineNote = chosen.note;
  try {
    settings = await loadJson<DemoSettings>(`${MODEL_DIR}/sine-demo.json`, MAKE_WITH);
  } catch {
    // The settings have defaults; the model's own failure below is the one to report.
  }
  inputs.k.value = String(settings.adapt.innerIters);
  inputs.lr.value = String(settings.adapt.learningRate);
  readSettings();
  const random = createSineModel({ seed: settings.randomInitSeed });
  setPanel(panels.random, learnerFor(random));
  try {
    const model = await loadModel(`${MODEL_DIR}/model.json`, MAKE_WITH);
    setPanel(panels.meta, learnerFor(model));
  } catch (e) {
    panels.meta.error = (e as Error).message;
    state.panels.meta.error = panels.meta.error;
    throw e;
  }
}

/** The learner for a model on the page's engine; the model stays the page's format (tfjs) either way. */
function learnerFor(model: tf.LayersModel): Learner {
  return engine === 'wasm' ? new WasmLearner({ model }) : new TfjsLearner({ model });
}

function setPanel(panel: Panel, learner: Learner): void {
  panel.learner = learner;
  panel.phi = learner.getParams();
  panel.before = learner.predict(gridExamples);
  panel.current = panel.before;
  state.panels[panel.name].ready = true;
}

// ---- meta-training in a worker ----

let worker: Worker | undefined;
let trained: Float32Array | undefined;

function drawCurve(): void {
  const { curve, metaIters } = state.metaTrain;
  const top = Math.max(1, ...curve.map((c) => c.mse)) * 1.1;
  curvePlot.view = { xMin: 0, xMax: Math.max(1, metaIters), yMin: 0, yMax: top };
  const xt = [0, 0.25, 0.5, 0.75, 1].map((f) => Math.round(f * Math.max(1, metaIters)));
  const yt = [0, 0.25, 0.5, 0.75, 1].map((f) => f * top);
  curvePlot.clear(xt, yt, (v) => (Math.abs(v) >= 10 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1)));
  if (curve.length > 0) {
    curvePlot.line([0, metaIters], [curve[0]!.mse, curve[0]!.mse], '#ff7f0e', { width: 1.5, dashed: true });
    curvePlot.line(curve.map((c) => c.iteration), curve.map((c) => c.mse), '#1f77b4', { width: 2.5 });
    curvePlot.dots(curve.map((c) => c.iteration), curve.map((c) => c.mse), '#1f77b4', 3);
    const last = curve[curve.length - 1]!;
    curvePlot.label(`held-out MSE after ${state.settings.k} steps: ${last.mse.toFixed(3)} at meta-iteration ${last.iteration} (random start, dashed: ${curve[0]!.mse.toFixed(3)})`);
  } else {
    curvePlot.label('press meta-train', '#555');
  }
}

function startMetaTrain(): void {
  if (state.metaTrain.status === 'running') {
    worker?.postMessage({ type: 'stop' } satisfies ToWorker);
    return;
  }
  const metaIters = Math.max(10, Math.min(100_000, Math.round(Number(inputs.metaIters.value) || 10)));
  const { k, learningRate } = readSettings();
  state.metaTrain = { status: 'running', iteration: 0, metaIters, curve: [], seconds: 0, error: null };
  trainButton.textContent = 'stop';
  useTrained.disabled = true;
  trainStatus.textContent = 'starting the worker…';
  drawCurve();
  worker ??= new Worker(new URL('./sine-worker.ts', import.meta.url), { type: 'module' });
  worker.onmessage = (event: MessageEvent<FromWorker>) => onWorkerMessage(event.data);
  worker.onerror = (event) => onWorkerMessage({ type: 'error', message: event.message || 'the meta-training worker failed to start' });
  worker.postMessage({
    type: 'start',
    backend,
    engine,
    metaIters,
    initSeed: settings.randomInitSeed,
    seed: 0,
    curvePoints: 10,
    // The demo's 100 held-out tasks where the engine makes them cheap.
    evalTasks: engine === 'wasm' ? 100 : 20,
    train: settings.train,
    adapt: { learningRate, innerIters: k, shots: settings.adapt.shots },
  } satisfies ToWorker);
}

function onWorkerMessage(message: FromWorker): void {
  const mt = state.metaTrain;
  if (message.type === 'curve') {
    mt.curve.push({ iteration: message.iteration, mse: message.mse });
    drawCurve();
  } else if (message.type === 'progress') {
    mt.iteration = message.iteration;
    mt.seconds = message.seconds;
    trainStatus.textContent = `meta-iteration ${message.iteration}/${message.metaIters} · inner loss ${message.loss.toFixed(3)} · ${message.seconds.toFixed(1)} s`;
  } else if (message.type === 'done') {
    mt.status = message.stopped ? 'stopped' : 'done';
    mt.iteration = message.iterations;
    mt.seconds = message.seconds;
    trained = message.params;
    trainButton.textContent = 'meta-train';
    useTrained.disabled = false;
    trainStatus.textContent = `${message.stopped ? 'stopped' : 'done'} after ${message.iterations} meta-iterations in ${message.seconds.toFixed(1)} s`;
  } else {
    mt.status = 'error';
    mt.error = message.message;
    trainButton.textContent = 'meta-train';
    trainStatus.textContent = `meta-training failed: ${message.message}`;
    trainStatus.classList.add('error');
  }
}

function useTrainedInit(): void {
  const panel = panels.meta;
  const base = panel.learner ?? panels.random.learner;
  if (!trained || !base) return;
  if (!panel.learner) {
    // The exported model did not load: the page-trained φ fills the left panel instead.
    panel.error = undefined;
    state.panels.meta.error = null;
    setPanel(panel, learnerFor(createSineModel({ seed: settings.randomInitSeed })));
  }
  panel.phi = new Params(panel.learner!.layout, trained.slice());
  panel.note.textContent = `(trained in this page, ${state.metaTrain.iteration} meta-iterations)`;
  void adapt(performance.now());
}

for (const panel of Object.values(panels)) panel.plot.canvas.addEventListener('click', (e) => onCanvasClick(panel, e));
$('random-task').addEventListener('click', randomTask);
$('clear').addEventListener('click', () => {
  state.points = [];
  state.trueWave = null;
  void adapt(performance.now());
});
inputs.k.addEventListener('change', () => void adapt(performance.now()));
inputs.lr.addEventListener('change', () => void adapt(performance.now()));
trainButton.addEventListener('click', startMetaTrain);
useTrained.addEventListener('click', useTrainedInit);

draw();
drawCurve();
loadPanels()
  .then(() => {
    state.status = 'ready';
    statusLine.textContent = `ready · ${state.engineNote} (models loaded with tfjs's ${tf.getBackend()} backend)`;
  })
  .catch((e: unknown) => {
    state.status = 'error';
    state.error = (e as Error).message;
    statusLine.textContent = state.error;
    statusLine.classList.add('error');
  })
  .finally(() => draw());
