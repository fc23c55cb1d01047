import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, findChromium, openServedPage, startServe } from './helpers/browser.js';
import { tempDir } from './helpers/fixtures.js';

// The Omniglot page in a real Chromium: `reptile serve --omniglot DIR` packs 400 real characters
// from the archives, and the page meta-trains the paper's network on them from a random start on
// the WebAssembly engine, in a Web Worker, while its held-out 1-shot accuracy rises. Skipped, with
// the reason, without a Chromium or without the real archives (the page's point is real data).

const chromiumPath = findChromium();
const omniglot = path.resolve(import.meta.dirname, '..', '..', 'shared', 'data', 'omniglot');
const haveData = fs.existsSync(path.join(omniglot, 'images_background.zip')) && fs.existsSync(path.join(omniglot, 'images_evaluation.zip'));
if (!chromiumPath) console.warn(`Omniglot page tests skipped: no Chromium at ${process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'} (apt-get install chromium, or set CHROMIUM_PATH)`);
else if (!haveData) console.warn(`Omniglot page tests skipped: no Omniglot archives at ${omniglot}`);

interface PageState {
  status: 'loading' | 'ready' | 'no-data' | 'error';
  error: string | null;
  backend: string;
  engine: string;
  set: { train: number; test: number; images: number; bytes: number } | null;
  metaTrain: { status: string; iteration: number; metaIters: number; curve: { iteration: number; accuracy: number; seconds: number }[]; seconds: number; trainSeconds: number; error: string | null };
}

const readState = (page: Page): Promise<PageState> => page.evaluate(() => JSON.parse(JSON.stringify((window as unknown as { __reptile: PageState }).__reptile)) as PageState);
const settled = (page: Page) => page.waitForFunction(() => (window as unknown as { __reptile?: PageState }).__reptile?.status !== 'loading', undefined, { timeout: 60_000 });

describe.skipIf(!chromiumPath || !haveData)('the Omniglot page in Chromium', () => {
  let browser: Browser;
  let page: Page;
  let server: { url: string; stop: () => Promise<void> };
  let outside: string[] = [];
  let out = '';
  const consoleErrors: string[] = [];
  const report: Record<string, unknown> = {};

  beforeAll(async () => {
    ({ browser, page, server, outside, out } = await openServedPage(chromiumPath!, { width: 1120, height: 900 }, tempDir('reptile-web-'), ['--omniglot', omniglot, '--omniglot-characters', '400']));
    page.on('console', (m) => void (m.type() === 'error' ? consoleErrors.push(m.text()) : undefined));
    page.on('pageerror', (e) => void consoleErrors.push(e.message));
    await page.goto(`${server.url}omniglot.html`);
    await settled(page);
  }, 240_000);

  afterAll(async () => {
    fs.writeFileSync(path.join(ARTIFACTS, 'omniglot-report.json'), `${JSON.stringify(report, null, 2)}\n`);
    await browser?.close();
    await server?.stop();
  });

  it('loads 400 real characters (300 to meta-train on, 100 held out) from the local server only', async () => {
    const s = await readState(page);
    expect(s.error).toBeNull();
    expect(s.status).toBe('ready');
    expect(s.engine).toBe('wasm');
    expect(s.set).toEqual({ train: 300, test: 100, images: 8000, bytes: expect.any(Number) });
    expect(s.set!.bytes).toBeLessThan(1_000_000);
    expect(outside).toEqual([]);
    report['set'] = s.set;
    await page.screenshot({ path: path.join(ARTIFACTS, 'omniglot-1-loaded.png'), fullPage: true });
  });

  it('meta-trains from a random start in the page: the held-out 1-shot 5-way accuracy rises well above chance', async () => {
    const metaIters = 300;
    await page.fill('#meta-iters', String(metaIters));
    await page.fill('#eval-every', '50');
    await page.fill('#eval-tasks', '25');
    await page.click('#meta-train');
    await page.waitForFunction(() => (window as unknown as { __reptile: PageState }).__reptile.metaTrain.status !== 'running', undefined, { timeout: 400_000 });
    const s = await readState(page);
    expect(s.metaTrain.error).toBeNull();
    expect(s.metaTrain.status).toBe('done');
    expect(s.metaTrain.iteration).toBe(metaIters);
    const curve = s.metaTrain.curve;
    expect(curve.map((c) => c.iteration)).toEqual([0, 50, 100, 150, 200, 250, 300]);
    const start = curve[0]!.accuracy;
    const end = curve[curve.length - 1]!.accuracy;
    // From a random start 25 held-out tasks score near chance (20%); after 300 meta-iterations
    // of the paper's setting they score far above it (about 60% in Node on the same characters).
    expect(start).toBeLessThan(0.4);
    expect(end).toBeGreaterThan(0.45);
    expect(end - start).toBeGreaterThan(0.2);
    expect(consoleErrors).toEqual([]);
    const msPerIter = (s.metaTrain.trainSeconds / metaIters) * 1000;
    report['metaTrain'] = { metaIters, seconds: s.metaTrain.seconds, trainSeconds: s.metaTrain.trainSeconds, msPerMetaIteration: msPerIter, curve };
    console.log(`Omniglot in the page (${s.engine}): ${metaIters} meta-iterations in ${s.metaTrain.trainSeconds.toFixed(1)} s (${msPerIter.toFixed(0)} ms each, 25 Adam steps), ${s.metaTrain.seconds.toFixed(1)} s with evaluations; held-out 1-shot accuracy ${curve.map((c) => `${c.iteration}: ${(c.accuracy * 100).toFixed(0)}%`).join(', ')}`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'omniglot-2-trained.png'), fullPage: true });
  }, 420_000);

  it('without characters from its server, says in one line how to get them', async () => {
    const bare = await startServe(out);
    const context = await browser.newContext();
    try {
      const p = await context.newPage();
      await p.goto(`${bare.url}omniglot.html`);
      await settled(p);
      const s = await readState(p);
      expect(s.status).toBe('no-data');
      expect(s.error).toMatch(/no characters at \.\/omniglot-set\.bin: .*reptile data omniglot --download --dir data\/omniglot.*reptile serve --omniglot data\/omniglot/);
      expect(await p.locator('#meta-train').isDisabled()).toBe(true);
    } finally {
      await context.close();
      await bare.stop();
    }
  });
});
