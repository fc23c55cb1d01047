import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../src/engine/backend.js';
import { openFewShotData } from '../../src/data/open.js';
import { fewShotTrain, type FewShotTrainOptions } from '../../src/recipes/few-shot/train.js';
import { readProgress, smoothProgress, trimProgress, type ProgressLine } from '../../src/recipes/learning-curve.js';
import { makeTemp, writeImageFolder } from './fixtures.js';

let folder: string;
beforeAll(async () => {
  await selectBackend('wasm');
  folder = writeImageFolder(makeTemp(), { classes: 12, perClass: 3, size: 28 });
});

function options(checkpointDir: string, signal?: AbortSignal): FewShotTrainOptions {
  return {
    data: openFewShotData({ dataset: 'folder', dataDir: folder, seed: 0 }),
    settings: { classes: 3, shots: 1, trainShots: 2, evalIters: 1, evalBatch: 2, transductive: false },
    config: { seed: 0, metaIters: 6, metaBatch: 2, innerIters: 1, innerBatch: 3 },
    evalInterval: 1,
    checkpointDir,
    checkpointEvery: 2,
    // The native engine where it is built (fast); the tfjs learner otherwise.
    learner: 'auto',
    ...(signal ? { signal } : {}),
  };
}

// What a resumed run must reproduce: everything but the wall-clock fields.
const comparable = (lines: ProgressLine[]) => lines.map(({ iteration, train, test, loss, epsilon }) => ({ iteration, train, test, loss, epsilon }));

describe('learning curve beside the checkpoint', () => {
  it('writes progress.jsonl and learning-curve.svg; a resumed run rewrites the lines past its checkpoint, equal to an uninterrupted run', async () => {
    const whole = path.join(makeTemp(), 'ck');
    const a = await fewShotTrain(options(whole));
    a.learner.dispose();
    const full = readProgress(path.join(whole, 'progress.jsonl'));
    expect(full.map((p) => p.iteration)).toEqual([1, 2, 3, 4, 5, 6]);
    const svg = fs.readFileSync(path.join(whole, 'learning-curve.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('training tasks');
    expect(svg).toContain('test tasks');
    expect(svg).toContain('meta-iteration');
    const spec = JSON.parse(fs.readFileSync(path.join(whole, 'learning-curve.vl.json'), 'utf8')) as { concat: { layer: { data: { values: unknown[] } }[] }[] };
    expect(spec.concat[0]!.layer[1]!.data.values).toHaveLength(6);

    // Stopped after meta-iteration 3: the checkpoint holds 3, then a killed process left a line for
    // iteration 4 and half a line behind it.
    const part = path.join(makeTemp(), 'ck');
    const stop = new AbortController();
    const b = await fewShotTrain({ ...options(part, stop.signal), onProgress: (p) => p.iteration === 3 && stop.abort() });
    b.learner.dispose();
    expect(b.result.iterations).toBe(3);
    const progress = path.join(part, 'progress.jsonl');
    fs.appendFileSync(progress, `${JSON.stringify({ ...full[3]!, train: 0.123 })}\n{"iteration": 5, "tra`);
    const c = await fewShotTrain(options(part));
    c.learner.dispose();
    expect(comparable(readProgress(progress))).toEqual(comparable(full));
  }, 300_000);

  it('trimProgress keeps lines up to the iteration; smoothProgress averages windows', () => {
    const file = path.join(makeTemp(), 'progress.jsonl');
    const line = (iteration: number, train: number, test: number): ProgressLine => ({ iteration, train, test, loss: 1, epsilon: 1, seconds: 0, imagesPerSecond: 0 });
    fs.writeFileSync(file, [line(10, 0.2, 0.4), line(20, 0.4, 0.6), line(30, 1, 1)].map((l) => JSON.stringify(l)).join('\n'));
    trimProgress(file, 20);
    expect(readProgress(file).map((p) => p.iteration)).toEqual([10, 20]);
    trimProgress(path.join(path.dirname(file), 'none.jsonl'), 5);
    expect(readProgress(path.join(path.dirname(file), 'none.jsonl'))).toEqual([]);
    const many = Array.from({ length: 400 }, (_, i) => line(i + 1, i % 2, 1 - (i % 2)));
    const s = smoothProgress(many, 100);
    expect(s).toHaveLength(100);
    expect(s[0]).toEqual({ iteration: 4, train: 0.5, test: 0.5 });
    expect(s[99]!.iteration).toBe(400);
  });
});
