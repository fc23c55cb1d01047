import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ArrayDataset, DataError, loadOmniglot, packBinarySet, readBinarySet } from '../src/index.js';
import { startServe } from './helpers/browser.js';
import { reptile } from './helpers/cli.js';
import { tempDir } from './helpers/fixtures.js';
import { writeOmniglotZips } from './few-shot/fixtures.js';

// The packed set the Omniglot page meta-trains on: exact round trips, every field of a foreign or
// damaged file refused in one line, and `reptile serve --omniglot` making it from the archives.

function dataset(side: number, counts: number[], seed = 1): ArrayDataset {
  const total = counts.reduce((a, b) => a + b, 0);
  const pixels = new Uint8Array(total * side * side);
  let s = seed;
  for (let i = 0; i < pixels.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    pixels[i] = (s >>> 16) & 1;
  }
  return new ArrayDataset({ inputShape: [side, side, 1], pixels, counts, names: counts.map((_, c) => `alpha/char${c}`) });
}

function image(d: { load(c: number, i: number, out: Float32Array, o: number): void; inputShape: readonly number[] }, c: number, i: number): number[] {
  const out = new Float32Array(d.inputShape.reduce((a, b) => a * b, 1));
  d.load(c, i, out, 0);
  return Array.from(out);
}

describe('packBinarySet / readBinarySet', () => {
  it('round-trips every pixel, name and count, training classes first (a side that is not a multiple of 8 too)', () => {
    for (const side of [28, 5]) {
      const d = dataset(side, [3, 2, 4, 1, 2]);
      const set = readBinarySet(packBinarySet(d, [4, 0, 2], [1, 3]));
      expect(set.side).toBe(side);
      expect(set.names).toEqual(['alpha/char4', 'alpha/char0', 'alpha/char2', 'alpha/char1', 'alpha/char3']);
      expect(set.counts).toEqual([2, 3, 4, 2, 1]);
      expect(set.train.numClasses).toBe(3);
      expect(set.test.numClasses).toBe(2);
      expect(image(set.train, 0, 1)).toEqual(image(d, 4, 1));
      expect(image(set.train, 2, 3)).toEqual(image(d, 2, 3));
      expect(image(set.test, 0, 1)).toEqual(image(d, 1, 1));
      expect(image(set.test, 1, 0)).toEqual(image(d, 3, 0));
      expect(set.test.className(1)).toBe('alpha/char3');
    }
  });

  it('packs 28×28 images into 98 bytes each', () => {
    const bytes = packBinarySet(dataset(28, [20, 20]), [0], [1]);
    const header = new DataView(bytes.buffer).getUint32(8, true);
    expect(bytes.length - 12 - header).toBe(40 * 98);
  });

  it('refuses images that are not binary, and a class listed twice', () => {
    const gray = new ArrayDataset({ inputShape: [2, 2, 1], pixels: new Float32Array([0, 1, 0.5, 1, 0, 0, 1, 1]), counts: [1, 1] });
    expect(() => packBinarySet(gray, [0], [1])).toThrow(/has the value 0\.5: packBinarySet packs binary images/);
    expect(() => packBinarySet(dataset(4, [1, 1]), [0], [0])).toThrow(/listed twice/);
  });

  it('refuses a foreign, truncated, padded or hostile file with one DataError naming the problem', () => {
    const good = packBinarySet(dataset(6, [2, 2, 2]), [0, 1], [2]);
    const headerLength = new DataView(good.buffer).getUint32(8, true);
    const withHeader = (h: unknown): Uint8Array => {
      const json = new TextEncoder().encode(JSON.stringify(h));
      const out = new Uint8Array(12 + json.length + good.length - 12 - headerLength);
      out.set(good.subarray(0, 8));
      new DataView(out.buffer).setUint32(8, json.length, true);
      out.set(json, 12);
      out.set(good.subarray(12 + headerLength), 12 + json.length);
      return out;
    };
    const huge = good.slice();
    new DataView(huge.buffer).setUint32(8, 0xffffffff, true);
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(0), /does not start with RPTLBIN1/],
      [new TextEncoder().encode('PK\u0003\u0004 a zip, not a set'), /does not start with RPTLBIN1/],
      [huge, /header claims 4294967295 bytes/],
      [good.subarray(0, good.length - 1), /truncated or padded/],
      [new Uint8Array([...good, 0]), /truncated or padded/],
      [withHeader([1, 2]), /header is not an object/],
      [withHeader({ side: 6, names: ['a', 'b', 'c'], counts: [2, 2, 2], train: 3 }), /leaves no classes on one side/],
      [withHeader({ side: 0, names: ['a', 'b', 'c'], counts: [2, 2, 2], train: 2 }), /image side is 0/],
      [withHeader({ side: 6, names: ['a', 'b'], counts: [2, 2, 2], train: 2 }), /names do not match/],
      [withHeader({ side: 6, names: ['a', 'b', 'c'], counts: [2, -1, 2], train: 2 }), /counts are not a list/],
      [withHeader({ side: 6, names: ['a', 'b', 'c'], counts: [2, 2, 3], train: 2 }), /truncated or padded/],
    ];
    const broken = good.slice();
    broken.set(new TextEncoder().encode('{{{'), 12);
    cases.push([broken, /header is not JSON/]);
    for (const [bytes, message] of cases) {
      let error: unknown;
      try {
        readBinarySet(bytes);
      } catch (e) {
        error = e;
      }
      expect(error, String(message)).toBeInstanceOf(DataError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message.split('\n')).toHaveLength(1);
    }
  });
});

describe('reptile serve --omniglot', () => {
  it('packs characters from the archives and serves them as omniglot-set.bin beside the pages', async () => {
    const data = writeOmniglotZips(tempDir(), { alphabets: 2, characters: 4, drawings: 3 });
    const site = tempDir();
    fs.writeFileSync(path.join(site, 'index.html'), '<p>demos</p>');
    const cache = tempDir();
    const server = await startServe(site, ['--omniglot', data, '--omniglot-characters', '12'], { REPTILE_CACHE: cache });
    try {
      const r = await fetch(`${server.url}omniglot-set.bin`);
      expect(r.status).toBe(200);
      expect(r.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
      const set = readBinarySet(new Uint8Array(await r.arrayBuffer()));
      expect(set.train.numClasses).toBe(9);
      expect(set.test.numClasses).toBe(3);
      expect(set.counts).toEqual(Array(12).fill(3));
      // Every packed image is the archives' own, by name.
      const { dataset: all } = loadOmniglot({ dir: data, cacheDir: false });
      const byName = new Map(Array.from({ length: all.numClasses }, (_, c) => [all.className(c), c]));
      for (let c = 0; c < set.test.numClasses; c++) {
        const from = byName.get(set.test.className(c))!;
        expect(image(set.test, c, 2)).toEqual(image(all, from, 2));
      }
      expect(new Set(set.names).size).toBe(12);
      expect((await fetch(server.url)).status).toBe(200);
    } finally {
      await server.stop();
    }
  });

  it('says in one line what to do when the archives are missing or too few characters are there', () => {
    const site = tempDir();
    fs.writeFileSync(path.join(site, 'index.html'), '<p>demos</p>');
    const missing = reptile(['serve', '--dir', site, '--omniglot', path.join(site, 'nowhere')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/does not exist: point .* images_background\.zip/);
    const data = writeOmniglotZips(tempDir(), { alphabets: 1, characters: 4, drawings: 2 });
    const few = reptile(['serve', '--dir', site, '--omniglot', data, '--omniglot-characters', '20'], {});
    expect(few.code).toBe(1);
    expect(few.stderr.trim().split('\n').filter((l) => !l.startsWith('decoding'))).toHaveLength(1);
    expect(few.stderr).toMatch(/--omniglot-characters 20 is more than the 8 characters/);
    const alone = reptile(['serve', '--dir', site, '--omniglot-characters', '20']);
    expect(alone.code).not.toBe(0);
    expect(alone.stderr.trim().split('\n')).toHaveLength(1);
    expect(alone.stderr).toMatch(/--omniglot-characters is read only with --omniglot/);
  });
});
