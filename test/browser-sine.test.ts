import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, findChromium, openServedPage } from './helpers/browser.js';
import { reptile } from './helpers/cli.js';
import { tempDir } from './helpers/fixtures.js';

// The sine page in a real Chromium, served by `reptile serve` from a fresh Vite build of web/.
// `npm run test:browser` runs this file alone; under `npm test` it is skipped when no Chromium is
// installed (apt-get install chromium, or CHROMIUM_PATH).

const chromiumPath = findChromium();
if (!chromiumPath) {
  console.warn(`browser tests skipped: no Chromium at ${process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'} (apt-get install chromium, or set CHROMIUM_PATH)`);
}

interface PageState {
  status: 'loading' | 'ready' | 'error';
  error: string | null;
  backend: string;
  engine: string;
  settings: { k: number; learningRate: number };
  points: { x: number; y: number }[];
  panels: Record<'meta' | 'random', { ready: boolean; error: string | null; errors: number[]; step: number }>;
  adaptRuns: number;
  lastAdapt: { points: number; steps: number; ms: number; computeMs: number } | null;
  metaTrain: { status: string; iteration: number; metaIters: number; curve: { iteration: number; mse: number }[]; seconds: number; error: string | null };
}

const readState = (page: Page): Promise<PageState> =>
  page.evaluate(() => {
    const s = (window as unknown as { __reptile: PageState }).__reptile;
    return JSON.parse(JSON.stringify(s)) as PageState;
  });

describe.skipIf(!chromiumPath)('the sine page in Chromium', () => {
  let browser: Browser;
  let page: Page;
  let server: { url: string; stop: () => Promise<void> };
  let outside: string[] = [];
  const consoleErrors: string[] = [];
  const report: Record<string, unknown> = {};

  beforeAll(async () => {
    ({ browser, page, server, outside } = await openServedPage(chromiumPath!, { width: 1120, height: 1000 }, tempDir('reptile-web-')));
    page.on('console', (m) => void (m.type() === 'error' ? consoleErrors.push(m.text()) : undefined));
    page.on('pageerror', (e) => void consoleErrors.push(e.message));
    await page.goto(server.url);
    await page.waitForFunction(() => (window as unknown as { __reptile?: PageState }).__reptile?.status !== 'loading', undefined, { timeout: 60_000 });
  }, 180_000);

  afterAll(async () => {
    fs.writeFileSync(path.join(ARTIFACTS, 'sine-report.json'), `${JSON.stringify(report, null, 2)}\n`);
    await browser?.close();
    await server?.stop();
  });

  it('loads the meta-learned model and the random one, from the local server only', async () => {
    const s = await readState(page);
    expect(s.error).toBeNull();
    expect(s.status).toBe('ready');
    expect(s.panels.meta.ready && s.panels.random.ready).toBe(true);
    // The wasm backend's binaries come from the page's own files too.
    expect(s.backend).toBe('wasm');
    // The inner loops run on the library's engine, compiled to WebAssembly and served with the page.
    expect(s.engine).toBe('wasm');
    report['backend'] = s.backend;
    report['engine'] = s.engine;
    expect(outside).toEqual([]);
    await page.screenshot({ path: path.join(ARTIFACTS, 'sine-1-loaded.png'), fullPage: true });
  });

  it('adapts to three clicked points of a known sine: the error on them falls at least 10× within k steps', async () => {
    const wave = { amplitude: 3, phase: 1 };
    const xs = [-3, 0.5, 3];
    let clickedAt = 0;
    for (const [i, x] of xs.entries()) {
      const at = await page.evaluate(([px, py]) => (window as unknown as { __reptile: { pointToClient(x: number, y: number): { x: number; y: number } } }).__reptile.pointToClient(px!, py!), [x, wave.amplitude * Math.sin(x + wave.phase)]);
      if (i === xs.length - 1) clickedAt = performance.now();
      await page.mouse.click(at.x, at.y);
      if (i < xs.length - 1) await page.waitForTimeout(150);
    }
    await page.waitForFunction(() => {
      const s = (window as unknown as { __reptile: PageState }).__reptile;
      return s.lastAdapt !== null && s.lastAdapt.points === 3;
    }, undefined, { timeout: 30_000 });
    const observedMs = performance.now() - clickedAt;
    const s = await readState(page);
    // The clicks landed on the curve (to within a pixel or two of the plot's scale).
    s.points.forEach((p, i) => {
      expect(Math.abs(p.x - xs[i]!)).toBeLessThan(0.05);
      expect(Math.abs(p.y - wave.amplitude * Math.sin(xs[i]! + wave.phase))).toBeLessThan(0.08);
    });
    const meta = s.panels.meta.errors;
    const random = s.panels.random.errors;
    expect(meta).toHaveLength(s.settings.k + 1);
    expect(meta[0]!).toBeGreaterThan(0.1);
    expect(meta[0]! / meta[s.settings.k]!).toBeGreaterThanOrEqual(10);
    report['adapt'] = {
      k: s.settings.k,
      learningRate: s.settings.learningRate,
      metaErrorBefore: meta[0],
      metaErrorAfter: meta[s.settings.k],
      randomErrorBefore: random[0],
      randomErrorAfter: random[s.settings.k],
      thirdClickToAdaptedCurveMs: s.lastAdapt!.ms,
      computeMsOfThoseSteps: s.lastAdapt!.computeMs,
      thirdClickToAdaptedCurveObservedByTestMs: observedMs,
    };
    console.log(`third click to adapted curve: ${s.lastAdapt!.ms.toFixed(0)} ms in the page (${observedMs.toFixed(0)} ms seen by the test), k = ${s.settings.k}; meta-learned error on the points ${meta[0]!.toFixed(3)} → ${meta[s.settings.k]!.toExponential(2)}, random ${random[0]!.toFixed(3)} → ${random[s.settings.k]!.toFixed(3)}`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'sine-2-three-points.png'), fullPage: true });
  });

  it("meta-trains the demo's 4,000 meta-iterations in a worker, to within 25% of `reptile demo sine`'s held-out MSE", async () => {
    // The reference: the demo itself, same seed, same configuration, same 100 held-out tasks.
    const ref = reptile(['demo', 'sine', '--json', '--out', tempDir('reptile-sine-ref-')], { timeoutMs: 300_000 });
    expect(ref.code, ref.stderr).toBe(0);
    const demo = JSON.parse(ref.stdout) as { mse: { metaLearned: number }; seconds: number; learner: string };
    const metaIters = 4000;
    await page.fill('#meta-iters', String(metaIters));
    await page.click('#meta-train');
    await page.waitForFunction(() => (window as unknown as { __reptile: PageState }).__reptile.metaTrain.status !== 'running', undefined, { timeout: 400_000 });
    const s = await readState(page);
    expect(s.metaTrain.error).toBeNull();
    expect(s.metaTrain.status).toBe('done');
    expect(s.metaTrain.iteration).toBe(metaIters);
    const curve = s.metaTrain.curve;
    expect(curve[0]!.iteration).toBe(0);
    expect(curve[curve.length - 1]!.iteration).toBe(metaIters);
    const start = curve[0]!.mse;
    const end = curve[curve.length - 1]!.mse;
    expect(end).toBeLessThan(start);
    expect(Math.abs(end - demo.mse.metaLearned) / demo.mse.metaLearned).toBeLessThanOrEqual(0.25);
    report['metaTrain'] = { metaIters, seconds: s.metaTrain.seconds, heldOutMseRandomStart: start, heldOutMseAfter: end, demoHeldOutMse: demo.mse.metaLearned, demoSeconds: demo.seconds, demoLearner: demo.learner, curve };
    console.log(`meta-training in the page (${s.engine}): ${metaIters} meta-iterations in ${s.metaTrain.seconds.toFixed(1)} s; held-out MSE after ${s.settings.k} steps ${start.toFixed(3)} (random start) → ${end.toFixed(4)}; reptile demo sine: ${demo.mse.metaLearned.toFixed(4)} (${demo.learner}, ${demo.seconds.toFixed(1)} s)`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'sine-3-meta-trained.png'), fullPage: true });
    expect(consoleErrors).toEqual([]);
  }, 720_000);

  it('says so when the model cannot be loaded', async () => {
    const other = await page.context().newPage();
    await other.goto(`${server.url}?model=models/missing`);
    await other.waitForFunction(() => (window as unknown as { __reptile?: PageState }).__reptile?.status !== 'loading', undefined, { timeout: 60_000 });
    const s = await readState(other);
    expect(s.status).toBe('error');
    expect(s.error).toMatch(/could not load the model at models\/missing\/model\.json.*npm run web:weights/);
    expect(await other.locator('#status').textContent()).toMatch(/could not load the model/);
    expect(s.panels.random.ready).toBe(true);
    await other.screenshot({ path: path.join(ARTIFACTS, 'sine-4-model-missing.png'), fullPage: true });
    await other.close();
  });
});
