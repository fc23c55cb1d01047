import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DrawingState } from '../web/src/drawing-state.js';
import { ARTIFACTS, findChromium, openServedPage } from './helpers/browser.js';
import { tempDir } from './helpers/fixtures.js';

// The few-shot drawing page in a real Chromium: the strokes of a held-out Omniglot task, rendered
// from its real images, are drawn with the mouse, and the in-page prediction must be the right
// class on a query the meta-learned network gets right in Node (tasks.json, from reptile export).

const chromiumPath = findChromium();
if (!chromiumPath) {
  console.warn(`browser tests skipped: no Chromium at ${process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'} (apt-get install chromium, or set CHROMIUM_PATH)`);
}

const root = path.resolve(import.meta.dirname, '..');
const SIZE = 28;

interface DemoTasks {
  classes: number;
  tasks: { index: number; support: string[]; query: string[]; queryLabels: number[]; node: Record<'metaLearned' | 'random', { predicted: number[]; probabilities: number[][] }> }[];
}

type PageState = DrawingState;

const readState = (page: Page): Promise<PageState> =>
  page.evaluate(() => JSON.parse(JSON.stringify((window as unknown as { __reptile: PageState }).__reptile)) as PageState);

/** Draws `bits` (1 paper, 0 ink) into box `box` with the mouse: one stroke per horizontal run of ink. */
async function drawBitmap(page: Page, box: number, bits: string): Promise<void> {
  for (let r = 0; r < SIZE; r++) {
    let c = 0;
    while (c < SIZE) {
      if (bits[r * SIZE + c] !== '0') {
        c++;
        continue;
      }
      let end = c;
      while (end + 1 < SIZE && bits[r * SIZE + end + 1] === '0') end++;
      const [a, b] = await page.evaluate(([bx, row, c0, c1]) => {
        const s = (window as unknown as { __reptile: { cellToClient(b: number, r: number, c: number): { x: number; y: number } } }).__reptile;
        return [s.cellToClient(bx!, row!, c0!), s.cellToClient(bx!, row!, c1!)];
      }, [box, r, c, end]);
      await page.mouse.move(a!.x, a!.y);
      await page.mouse.down();
      await page.mouse.move(b!.x, b!.y, { steps: Math.max(1, end - c) });
      await page.mouse.up();
      c = end + 1;
    }
  }
}

describe.skipIf(!chromiumPath)('the few-shot drawing page in Chromium', () => {
  let browser: Browser;
  let page: Page;
  let server: { url: string; stop: () => Promise<void> };
  let outside: string[] = [];
  const report: Record<string, unknown> = {};

  beforeAll(async () => {
    ({ browser, page, server, outside } = await openServedPage(chromiumPath!, { width: 1120, height: 760 }, tempDir('reptile-web-')));
    await page.goto(`${server.url}drawing.html`);
    await page.waitForFunction(() => (window as unknown as { __reptile?: PageState }).__reptile?.status !== 'loading', undefined, { timeout: 90_000 });
  }, 180_000);

  afterAll(async () => {
    fs.writeFileSync(path.join(ARTIFACTS, 'drawing-report.json'), `${JSON.stringify(report, null, 2)}\n`);
    await browser?.close();
    await server?.stop();
  });

  it('loads the exported network from the local server only', async () => {
    const s = await readState(page);
    expect(s.error).toBeNull();
    expect(s.status).toBe('ready');
    expect(s.backend).toBe('wasm');
    // The library's engine, compiled to WebAssembly and served with the page, adapts the networks.
    expect(s.engine).toBe('wasm');
    expect(s.steps).toBe(50);
    report['engine'] = s.engine;
    expect(outside).toEqual([]);
  });

  it('classifies a drawn held-out query right where Node does, from one drawing per class', async () => {
    const demo = JSON.parse(fs.readFileSync(path.join(root, 'web', 'public', 'models', 'omniglot-5w', 'tasks.json'), 'utf8')) as DemoTasks;
    // The held-out query Node is surest of, among those it classifies right.
    let best = { task: 0, query: 0, p: 0 };
    demo.tasks.forEach((t, ti) =>
      t.queryLabels.forEach((label, q) => {
        const p = t.node.metaLearned.probabilities[q]![label]!;
        if (t.node.metaLearned.predicted[q] === label && p > best.p) best = { task: ti, query: q, p };
      }),
    );
    const task = demo.tasks[best.task]!;
    const label = task.queryLabels[best.query]!;
    const runsBefore = (await readState(page)).runs;
    for (let c = 0; c < demo.classes; c++) await drawBitmap(page, c, task.support[c]!);
    await drawBitmap(page, demo.classes, task.query[best.query]!);
    const lastStroke = performance.now();
    await page.waitForFunction((n) => {
      const s = (window as unknown as { __reptile: PageState }).__reptile;
      return s.runs > n && !s.running;
    }, runsBefore, { timeout: 120_000 });
    const observedMs = performance.now() - lastStroke;
    const s = await readState(page);
    // The mouse drew the real images: cells that differ from them, over all six boxes.
    const wanted = [...task.support, task.query[best.query]!];
    const differing = wanted.reduce((n, bits, b) => n + [...bits].filter((v, i) => v !== s.bitmaps[b]![i]).length, 0);
    expect(differing).toBeLessThanOrEqual(6 * 8);
    const meta = s.last!.results.meta;
    const random = s.last!.results.random;
    expect(meta.predicted).toBe(label);
    // The paper's 50 Adam steps, run to their end for both networks before the prediction.
    expect(s.last!.steps).toBe(50);
    expect(s.lastAdapt!.steps).toBe(50);
    expect(s.lastAdapt!.ms).toBeGreaterThan(0);
    report['drawing'] = {
      engine: s.engine,
      task: task.index,
      queryLabel: label,
      nodeProbability: best.p,
      pageProbability: meta.probabilities[label],
      randomPredicted: random.predicted,
      randomProbabilityOfLabel: random.probabilities[label],
      nodeRandomPredicted: task.node.random.predicted[best.query],
      differingCells: differing,
      steps: s.last!.steps,
      lastStrokeToPredictionMs: s.last!.ms,
      lastStrokeToPredictionObservedByTestMs: observedMs,
      lastClassStrokeToAdaptedMs: s.lastAdapt?.ms ?? null,
    };
    console.log(`drawing: held-out task ${task.index}, query class ${label + 1}: meta-learned ${(100 * meta.probabilities[label]!).toFixed(1)}% (Node ${(100 * best.p).toFixed(1)}%), no meta-training predicts class ${random.predicted + 1}; ${differing} cells differ from the images; last stroke to prediction ${s.last!.ms.toFixed(0)} ms; the ${s.last!.steps} steps of both networks ended ${(s.lastAdapt?.ms ?? NaN).toFixed(0)} ms after the last class stroke`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'drawing-1-held-out-task.png'), fullPage: true });
  });

  it('runs on tfjs with 10 steps under ?engine=tfjs, for comparison', async () => {
    // The same measure on both engines: from loading a held-out task to the end of the adaptation.
    const runsBefore = (await readState(page)).runs;
    await page.click('#load-task');
    await page.waitForFunction((n) => {
      const st = (window as unknown as { __reptile: PageState }).__reptile;
      return st.runs > n && !st.running;
    }, runsBefore, { timeout: 120_000 });
    const w = await readState(page);
    expect(w.last!.steps).toBe(50);
    report['wasm'] = { steps: w.last!.steps, loadTaskToAdaptedMs: w.lastAdapt?.ms ?? null, loadTaskToPredictionMs: w.last!.ms };
    console.log(`drawing on the WebAssembly engine: the ${w.last!.steps} steps of both networks ended ${(w.lastAdapt?.ms ?? NaN).toFixed(0)} ms after loading a task`);
    const other = await page.context().newPage();
    await other.goto(`${server.url}drawing.html?engine=tfjs`);
    await other.waitForFunction(() => (window as unknown as { __reptile?: PageState }).__reptile?.status !== 'loading', undefined, { timeout: 90_000 });
    const ready = await readState(other);
    expect(ready.error).toBeNull();
    expect(ready.engine).toBe('tfjs');
    expect(ready.steps).toBe(10);
    await other.click('#load-task');
    await other.waitForFunction(() => {
      const st = (window as unknown as { __reptile: PageState }).__reptile;
      return st.runs > 0 && !st.running;
    }, undefined, { timeout: 120_000 });
    const s = await readState(other);
    expect(s.last!.steps).toBe(10);
    report['tfjs'] = { steps: s.last!.steps, loadTaskToAdaptedMs: s.lastAdapt?.ms ?? null, loadTaskToPredictionMs: s.last!.ms };
    console.log(`drawing on tfjs (?engine=tfjs): the ${s.last!.steps} steps of both networks ended ${(s.lastAdapt?.ms ?? NaN).toFixed(0)} ms after loading a task`);
    await other.close();
  });

  it('falls back to tfjs, saying why, when the WebAssembly module does not load', async () => {
    const other = await page.context().newPage();
    await other.route(/\/reptile-[^/]*\.wasm$/, (route) => route.fulfill({ status: 404, body: 'not found' }));
    await other.goto(`${server.url}drawing.html`);
    await other.waitForFunction(() => (window as unknown as { __reptile?: PageState }).__reptile?.status !== 'loading', undefined, { timeout: 90_000 });
    const s = await readState(other);
    expect(s.error).toBeNull();
    expect(s.status).toBe('ready');
    expect(s.engine).toBe('tfjs');
    expect(s.steps).toBe(10);
    expect(s.engineNote).toMatch(/the WebAssembly engine is unavailable: fetching the module gave HTTP 404/);
    expect(await other.locator('#status').textContent()).toMatch(/WebAssembly engine is unavailable/);
    await other.close();
  });
});
