import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ThreadsExecutor } from '../src/exec/threads.js';
import { REPRODUCTIONS, reproduce, trainingSeconds } from '../src/recipes/reproduce.js';
import type { ProgressLine } from '../src/recipes/learning-curve.js';
import { selectBackend } from '../src/engine/backend.js';
import { evalInnerOptions, resolveFewShotRun } from '../src/recipes/few-shot/settings.js';
import { resolveMetaConfig } from '../src/train/config.js';

const line = (iteration: number, seconds: number): ProgressLine => ({ iteration, train: 1, test: 1, loss: 0, epsilon: 0, seconds, imagesPerSecond: 0 });

describe('reproduce', () => {
  it('training time sums every session of a resumed run', () => {
    expect(trainingSeconds([])).toBe(0);
    expect(trainingSeconds([line(10, 1), line(20, 2.5)])).toBe(2.5);
    // Resumed after 20: the second session counts from zero again.
    expect(trainingSeconds([line(10, 1), line(20, 2.5), line(30, 0.5), line(40, 1.5), line(50, 0.7)])).toBe(2.5 + 1.5 + 0.7);
  });

  it("the paper's cells are the final version's Table 1", () => {
    const cells = Object.values(REPRODUCTIONS).flatMap((r) => r.columns.map((c) => [c.setting, c.paper.nonTransductive.accuracy, c.paper.transductive.accuracy]));
    expect(cells).toEqual([
      ['omniglot-5w1s', 0.9539, 0.9768],
      ['omniglot-5w5s', 0.989, 0.9948],
      ['omniglot-20w1s', 0.8814, 0.8943],
      ['omniglot-20w5s', 0.9665, 0.9712],
    ]);
  });

  it("test tasks adapt on supervised-reptile's summed loss: divided by the training minibatch, not the test one", () => {
    const run = resolveFewShotRun({ preset: 'omniglot-20w1s', seed: 0 });
    const config = resolveMetaConfig(run.config);
    expect(run.settings.loss).toBe('sum');
    expect(evalInnerOptions(run.settings, config)).toMatchObject({ innerBatch: 10, innerIters: 50, learningRate: 0.0005, lossDivisor: 20 });
    expect(evalInnerOptions({ ...run.settings, loss: 'mean' }, config).lossDivisor).toBeUndefined();
    // A checkpoint that records no loss was trained identically under both, and is evaluated on the sum.
    const { loss: _recorded, ...old } = run.settings;
    expect(evalInnerOptions(old, config).lossDivisor).toBe(20);
    expect(resolveFewShotRun({ preset: 'omniglot-5w5s', seed: 0, fewShot: { loss: 'mean' } }).settings.loss).toBe('mean');
  });

  it('an unknown setting is one clear error', async () => {
    await expect(reproduce({ name: 'omniglot-9w', dataDir: '.', outDir: '.', command: '' })).rejects.toThrow(/^unknown setting 'omniglot-9w' to reproduce: `name` must be 'omniglot-5w' or 'omniglot-20w'$/);
  });

  // On the committed 5-way checkpoint and the real archives (where ../shared/data/omniglot exists):
  // nothing left to train, four small cells evaluated, written, and reused on the second run.
  const data = path.resolve('../shared/data/omniglot');
  const committed = path.resolve('docs/results/omniglot-5w');
  it.skipIf(!fs.existsSync(path.join(data, 'images_background.zip')))(
    'on the committed 5-way run: four cells, two column files, cells reused when run again',
    async () => {
      await selectBackend('wasm');
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'reptile-reproduce-'));
      fs.mkdirSync(path.join(out, 'omniglot-5w'));
      for (const f of ['reptile.ckpt', 'progress.jsonl.gz']) fs.copyFileSync(path.join(committed, f), path.join(out, 'omniglot-5w', f));
      const lines: string[] = [];
      const r = await reproduce({ name: 'omniglot-5w', dataDir: data, outDir: out, samples: 20, command: 'test', log: (l) => lines.push(l) });
      expect(r.stopped).toBe(false);
      if (r.stopped) return;
      expect(r.columns.map((c) => path.basename(c.file))).toEqual(['omniglot-5w1s.json', 'omniglot-5w5s.json']);
      for (const { file, result } of r.columns) {
        const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof result;
        expect(saved).toEqual(result);
        expect(saved.metaIters).toBe(100_000);
        expect(saved.nonTransductive.samples).toBe(20);
        // 20 tasks × 5 queries: multiples of 1/100.
        for (const c of [saved.nonTransductive, saved.transductive]) {
          expect(Math.abs(c.accuracy * 100 - Math.round(c.accuracy * 100))).toBeLessThan(1e-9);
          expect(c.accuracy).toBeGreaterThan(0.8);
        }
        expect(saved.trainSeconds).toBeGreaterThan(10_000);
        expect(saved.executor).toBe('inline');
        expect(saved.innerState).toBe('carry');
        expect(saved.loss).toBe('sum');
      }
      // A finished run is only read: its checkpoint stays byte for byte the committed one.
      expect(fs.readFileSync(path.join(out, 'omniglot-5w', 'reptile.ckpt')).equals(fs.readFileSync(path.join(committed, 'reptile.ckpt')))).toBe(true);
      expect(fs.existsSync(path.join(out, 'omniglot-5w', 'learning-curve.svg'))).toBe(true);
      expect(fs.readdirSync(path.join(out, 'omniglot-5w')).filter((f) => f.startsWith('eval-')).sort()).toEqual([
        'eval-1shot-transductive.json',
        'eval-1shot.json',
        'eval-5shot-transductive.json',
        'eval-5shot.json',
      ]);
      const again: string[] = [];
      const r2 = await reproduce({ name: 'omniglot-5w', dataDir: data, outDir: out, samples: 20, command: 'test', log: (l) => again.push(l) });
      expect(again.filter((l) => l.includes('already holds'))).toHaveLength(4);
      expect(again.some((l) => l.includes('evaluating'))).toBe(false);
      if (!r2.stopped) expect(r2.columns.map((c) => c.result.nonTransductive)).toEqual(r.columns.map((c) => c.result.nonTransductive));
      // The cells' tasks on two worker threads: the same cells.
      const out3 = fs.mkdtempSync(path.join(os.tmpdir(), 'reptile-reproduce-'));
      fs.mkdirSync(path.join(out3, 'omniglot-5w'));
      for (const f of ['reptile.ckpt', 'progress.jsonl.gz']) fs.copyFileSync(path.join(committed, f), path.join(out3, 'omniglot-5w', f));
      const threads = new ThreadsExecutor({ workers: 2 });
      try {
        const r3 = await reproduce({ name: 'omniglot-5w', dataDir: data, outDir: out3, samples: 20, command: 'test', evalExecutor: threads });
        if (!r3.stopped) {
          expect(r3.columns.map((c) => [c.result.nonTransductive, c.result.transductive])).toEqual(r.columns.map((c) => [c.result.nonTransductive, c.result.transductive]));
        }
        expect(r3.stopped).toBe(false);
      } finally {
        await threads.close();
      }
      fs.rmSync(out, { recursive: true, force: true });
      fs.rmSync(out3, { recursive: true, force: true });
    },
    600_000,
  );
});
