import * as fs from 'node:fs';
import * as path from 'node:path';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { zipSync } from 'fflate';
import { loadOmniglot, splitOmniglot } from '../../src/data/omniglot.js';
import { pythonShuffle } from '../../src/data/python-random.js';
import { openFewShotData } from '../../src/data/open.js';
import { dataOrigin } from '../../src/recipes/few-shot/settings.js';
import { downloadOmniglot } from '../../src/data/download.js';
import { resizeNearest } from '../../src/data/images.js';
import { defaultCacheDir } from '../../src/data/cache.js';
import { ArrayDataset } from '../../src/tasks/labeled.js';
import { drawing, makeTemp, pngBytes, writeOmniglotZips } from './fixtures.js';

describe('Omniglot loader', () => {
  it('merges both archives, orders characters by alphabet and name, shrinks 105→28 binary (1 = paper)', () => {
    const dir = writeOmniglotZips(makeTemp(), { alphabets: 2, characters: 3, drawings: 4 });
    const cacheDir = makeTemp();
    const d = loadOmniglot({ dir, cacheDir });
    expect(d.fromCache).toBe(false);
    expect(d.dataset.numClasses).toBe(12);
    expect(d.names.slice(0, 4)).toEqual(['Back_0/character01', 'Back_0/character02', 'Back_0/character03', 'Back_1/character01']);
    expect(d.names[6]).toBe('Eval_0/character01');
    expect(d.dataset.inputShape).toEqual([28, 28, 1]);
    expect(d.dataset.countOf(0)).toBe(4);
    // Character c, drawing d has ink on x ∈ (10+8c±4), y ∈ (10+8d±4) in 105×105. A 28×28 pixel
    // (tx, ty) samples source ⌊(t + ½)·3.75⌋, so it is ink exactly when that source pixel is.
    const out = new Float32Array(28 * 28);
    d.dataset.load(1, 2, out, 0); // character02, drawing 03
    for (let ty = 0; ty < 28; ty++) {
      for (let tx = 0; tx < 28; tx++) {
        const sx = Math.floor((tx + 0.5) * 3.75);
        const sy = Math.floor((ty + 0.5) * 3.75);
        const ink = Math.abs(sx - 26) < 4 && Math.abs(sy - 34) < 4;
        expect(out[ty * 28 + tx]).toBe(ink ? 0 : 1);
      }
    }
  });

  it('a second load comes from the cache and is identical; a changed archive is decoded again', () => {
    const dir = writeOmniglotZips(makeTemp(), { alphabets: 1, characters: 2, drawings: 3 });
    const cacheDir = makeTemp();
    const first = loadOmniglot({ dir, cacheDir });
    const second = loadOmniglot({ dir, cacheDir });
    expect(second.fromCache).toBe(true);
    expect(second.names).toEqual(first.names);
    const a = new Float32Array(784);
    const b = new Float32Array(784);
    for (let c = 0; c < first.dataset.numClasses; c++) {
      for (let i = 0; i < 3; i++) {
        first.dataset.load(c, i, a, 0);
        second.dataset.load(c, i, b, 0);
        expect(Array.from(b)).toEqual(Array.from(a));
      }
    }
    // A corrupted cache file is ignored and rebuilt, never trusted.
    const file = first.cacheFile!;
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0xff;
    fs.writeFileSync(file, bytes);
    expect(loadOmniglot({ dir, cacheDir }).fromCache).toBe(false);
    expect(loadOmniglot({ dir, cacheDir }).fromCache).toBe(true);
    // New archive contents (size/mtime) invalidate the cache.
    writeOmniglotZips(dir, { alphabets: 1, characters: 3, drawings: 3 });
    const third = loadOmniglot({ dir, cacheDir });
    expect(third.fromCache).toBe(false);
    expect(third.dataset.numClasses).toBe(6);
  });

  it('reads the extracted folders as well as the zips', () => {
    const dir = makeTemp();
    for (const archive of ['images_background', 'images_evaluation']) {
      const sub = path.join(dir, archive, `${archive}_alpha`, 'character01');
      fs.mkdirSync(sub, { recursive: true });
      for (let d = 0; d < 2; d++) fs.writeFileSync(path.join(sub, `x_${d}.png`), drawing((x) => x < 50 + d));
    }
    const d = loadOmniglot({ dir, cacheDir: false });
    expect(d.dataset.numClasses).toBe(2);
    expect(d.dataset.countOf(1)).toBe(2);
  });

  it('bad input: missing directory, missing archive, corrupt zip, corrupt PNG, wrong image size — one clear line each', () => {
    const missing = path.join(makeTemp(), 'nope');
    expect(() => loadOmniglot({ dir: missing, cacheDir: false })).toThrow(/Omniglot directory '.*nope' does not exist: point `dir` at a folder with images_background.zip/);

    const half = makeTemp();
    writeOmniglotZips(half, { alphabets: 1, characters: 1, drawings: 1 });
    fs.rmSync(path.join(half, 'images_evaluation.zip'));
    expect(() => loadOmniglot({ dir: half, cacheDir: false })).toThrow(/has neither images_evaluation.zip nor its extracted folder: download it/);

    const corruptZip = writeOmniglotZips(makeTemp(), { alphabets: 1, characters: 1, drawings: 1 });
    const zipFile = path.join(corruptZip, 'images_background.zip');
    fs.writeFileSync(zipFile, fs.readFileSync(zipFile).subarray(0, 200));
    expect(() => loadOmniglot({ dir: corruptZip, cacheDir: false })).toThrow(/cannot read the zip archive '.*images_background.zip' .*: it is damaged or incomplete; delete it and download it again/);

    const corruptPng = writeOmniglotZips(makeTemp(), {
      alphabets: 1,
      characters: 1,
      drawings: 2,
      override: (name, bytes) => (name.endsWith('0001_02.png') && name.startsWith('images_background') ? bytes.subarray(0, 60) : bytes),
    });
    expect(() => loadOmniglot({ dir: corruptPng, cacheDir: false })).toThrow(/cannot decode image 'images_background\/Back_0\/character01\/0001_02.png' .*damaged/);

    const wrongSize = makeTemp();
    fs.writeFileSync(path.join(wrongSize, 'images_background.zip'), zipSync({ 'images_background/A/character01/a.png': drawing(() => false) }));
    fs.writeFileSync(path.join(wrongSize, 'images_evaluation.zip'), zipSync({ 'images_evaluation/B/character01/b.png': pngBytes(64, 64, () => [255, 255, 255]) }));
    expect(() => loadOmniglot({ dir: wrongSize, cacheDir: false })).toThrow(/Omniglot image 'images_evaluation\/B\/character01\/b.png' is 64×64, not 105×105/);
  });
});

describe('Omniglot split', () => {
  const ds = new ArrayDataset({ inputShape: [1, 1, 1], pixels: new Uint8Array(1623), counts: new Array<number>(1623).fill(1) });

  it('1,200 training characters × 4 rotations and 423 test characters, disjoint, covering all, fixed by the seed', () => {
    const a = splitOmniglot({ dataset: ds, seed: 0 });
    expect(a.trainClasses).toHaveLength(1200);
    expect(a.testClasses).toHaveLength(423);
    expect(a.train.numClasses).toBe(4800);
    expect(a.test.numClasses).toBe(423);
    const train = new Set(a.trainClasses);
    expect(a.testClasses.some((c) => train.has(c))).toBe(false);
    expect(new Set([...a.trainClasses, ...a.testClasses]).size).toBe(1623);
    const again = splitOmniglot({ dataset: ds, seed: 0 });
    expect(again.trainClasses).toEqual(a.trainClasses);
    const other = splitOmniglot({ dataset: ds, seed: 1 });
    expect(other.trainClasses).not.toEqual(a.trainClasses);
    expect(splitOmniglot({ dataset: ds, seed: 0, rotate: false }).train.numClasses).toBe(1200);
  });

  it('refuses a dataset too small to split', () => {
    const tiny = new ArrayDataset({ inputShape: [1, 1, 1], pixels: new Uint8Array(5), counts: [1, 1, 1, 1, 1] });
    expect(() => splitOmniglot({ dataset: tiny, seed: 0 })).toThrow(/cannot split 5 Omniglot characters into 1200/);
  });

  // The expected values below are CPython 3's: `random.seed(s); x = list(range(n)); random.shuffle(x)`.
  it("pythonShuffle is CPython's random.seed + random.shuffle, for small, zero and multi-word seeds", () => {
    const range = (n: number) => Array.from({ length: n }, (_, i) => i);
    expect(pythonShuffle(range(10), 0)).toEqual([7, 8, 1, 5, 3, 4, 2, 0, 9, 6]);
    const s7 = pythonShuffle(range(1623), 7);
    expect(s7.slice(0, 8)).toEqual([1170, 586, 809, 558, 654, 1015, 1400, 964]);
    expect(s7.slice(-3)).toEqual([808, 308, 663]);
    const s3 = pythonShuffle(range(300), 3);
    expect(s3.slice(0, 6)).toEqual([52, 229, 160, 283, 20, 244]);
    expect(s3.slice(-4)).toEqual([189, 66, 278, 121]);
    expect(pythonShuffle(range(12), 2 ** 32 + 5)).toEqual([9, 6, 8, 11, 3, 1, 10, 5, 0, 4, 7, 2]);
    expect(pythonShuffle([], 0)).toEqual([]);
    expect(pythonShuffle(['only'], 4)).toEqual(['only']);
    const input = range(5);
    pythonShuffle(input, 1);
    expect(input).toEqual([0, 1, 2, 3, 4]);
    expect(() => pythonShuffle(input, -1)).toThrow(/split `seed` must be a whole number ≥ 0/);
  });

  it("the supervised-reptile split takes supervised-reptile's characters: sorted by alphabet and name, then Python's shuffle", () => {
    const names: string[] = [];
    for (const alphabet of ['Latin', 'Greek', 'Braille_(x)']) for (const c of ['character03', 'character01', 'character10', 'character02']) names.push(`${alphabet}/${c}`);
    const fixture = new ArrayDataset({ inputShape: [1, 1, 1], pixels: new Uint8Array(12), counts: new Array<number>(12).fill(1), names });
    const split = splitOmniglot({ dataset: fixture, seed: 0, numTrain: 8, classSplit: 'supervised-reptile', rotate: false });
    // CPython: sorted((alphabet, character)) shuffled after random.seed(0), first 8 for training.
    expect(split.trainClasses.map((c) => names[c])).toEqual([
      'Braille_(x)/character02', 'Latin/character02', 'Latin/character01', 'Greek/character02',
      'Latin/character03', 'Braille_(x)/character03', 'Braille_(x)/character10', 'Greek/character10',
    ]);
    expect(split.testClasses.map((c) => names[c])).toEqual(['Greek/character01', 'Braille_(x)/character01', 'Latin/character10', 'Greek/character03']);
    // The order the dataset lists its classes in does not matter, only their names.
    const reversed = [...names].reverse();
    const again = splitOmniglot({ dataset: new ArrayDataset({ inputShape: [1, 1, 1], pixels: new Uint8Array(12), counts: new Array<number>(12).fill(1), names: reversed }), seed: 0, numTrain: 8, classSplit: 'supervised-reptile', rotate: false });
    expect(again.testClasses.map((c) => reversed[c])).toEqual(split.testClasses.map((c) => names[c]));
    expect(splitOmniglot({ dataset: fixture, seed: 0, numTrain: 8, rotate: false }).testClasses).not.toEqual(split.testClasses);
    const unnamed = new ArrayDataset({ inputShape: [1, 1, 1], pixels: new Uint8Array(12), counts: new Array<number>(12).fill(1) });
    expect(() => splitOmniglot({ dataset: unnamed, seed: 0, numTrain: 8, classSplit: 'supervised-reptile' })).toThrow(/is not named <alphabet>\/<character>/);
  });

  it('openFewShotData takes the class split for Omniglot only and records it; other datasets and unknown splits are refused', () => {
    expect(() => openFewShotData({ dataset: 'mnist', dataDir: '.', seed: 0, classSplit: 'supervised-reptile' })).toThrow(/Omniglot's, not mnist's: drop `classSplit`/);
    expect(() => openFewShotData({ dataset: 'omniglot', dataDir: '.', seed: 0, classSplit: 'python' as never })).toThrow(/unknown class split 'python': `classSplit` must be 'seeded' or 'supervised-reptile'/);
    const describe = { dataset: 'omniglot', dataDir: '/d', splitSeed: 0, classSplit: 'supervised-reptile', fingerprint: 'f' };
    expect(dataOrigin(describe, 'test', 0)).toEqual({ dataset: 'omniglot', dataDir: '/d', split: 'test', splitSeed: 0, classSplit: 'supervised-reptile', fingerprint: 'f' });
    expect(dataOrigin({ ...describe, classSplit: undefined }, 'train', 0)).not.toHaveProperty('classSplit');
  });
});

describe('resize, cache directory and download', () => {
  it('the cache directory is $REPTILE_CACHE when set, else under ~/.cache', () => {
    const saved = process.env['REPTILE_CACHE'];
    try {
      process.env['REPTILE_CACHE'] = '/somewhere/else';
      expect(defaultCacheDir()).toBe('/somewhere/else');
      delete process.env['REPTILE_CACHE'];
      expect(defaultCacheDir()).toMatch(/reptile-ml$/);
    } finally {
      if (saved === undefined) delete process.env['REPTILE_CACHE'];
      else process.env['REPTILE_CACHE'] = saved;
    }
  });

  it('nearest-neighbour resize samples the source pixel under each target centre', () => {
    // 105 → 28: target t reads source ⌊(t + ½)·3.75⌋, i.e. 1, 5, 9, 13, ... 103.
    const src = Uint8Array.from({ length: 105 * 105 }, (_, i) => i % 105);
    const out = resizeNearest(src, 105, 105, 28, 28);
    expect(Array.from(out.subarray(0, 5))).toEqual([1, 5, 9, 13, 16]);
    expect(out[27]).toBe(103);
    // 4 → 2 picks source 1 and 3 (centres 0.5·2 = 1 and 1.5·2 = 3).
    expect(Array.from(resizeNearest(Uint8Array.from([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33]), 4, 4, 2, 2))).toEqual([11, 13, 31, 33]);
  });

  it('offline download fails with one clear line and leaves the directory as it was', async () => {
    const dir = makeTemp();
    fs.writeFileSync(path.join(dir, 'keep.txt'), 'x');
    const offline = (() => Promise.reject(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ENOTFOUND' } }))) as unknown as typeof fetch;
    await expect(downloadOmniglot({ dir, fetchImpl: offline })).rejects.toThrow(/cannot download https:\/\/.*images_background.zip \(ENOTFOUND\): this machine seems to be offline; copy images_background.zip and images_evaluation.zip into/);
    expect(fs.readdirSync(dir)).toEqual(['keep.txt']);
  });

  it('an HTTP error from a real server is reported as the server\'s answer, not as offline; nothing is written', async () => {
    const server = http.createServer((_req, res) => {
      res.writeHead(404, 'Not Found').end('no such file');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const dir = makeTemp();
      await expect(downloadOmniglot({ dir, baseUrl: `http://127.0.0.1:${port}/omniglot` })).rejects.toThrow(
        /^cannot download http:\/\/127\.0\.0\.1:\d+\/omniglot\/images_background\.zip: the server answered HTTP 404 Not Found; check the address, or copy images_background\.zip and images_evaluation\.zip into/,
      );
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('download writes both archives from the server', async () => {
    const dir = makeTemp();
    const served: string[] = [];
    const server = ((url: string) => {
      served.push(url);
      return Promise.resolve(new Response(new Uint8Array([1, 2, 3])));
    }) as unknown as typeof fetch;
    const files = await downloadOmniglot({ dir, fetchImpl: server, baseUrl: 'http://example.invalid/o' });
    expect(served).toEqual(['http://example.invalid/o/images_background.zip', 'http://example.invalid/o/images_evaluation.zip']);
    expect(files.map((f) => fs.readFileSync(f).length)).toEqual([3, 3]);
  });
});
