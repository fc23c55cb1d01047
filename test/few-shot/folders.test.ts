import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadImageFolder, loadMiniImageNet, splitFolder } from '../../src/data/folder.js';
import { loadMnistFewShot } from '../../src/data/mnist-fewshot.js';
import { openFewShotData } from '../../src/data/open.js';
import { jpegBytes, makeTemp, pngBytes, writeImageFolder } from './fixtures.js';

describe('class-per-folder images', () => {
  it('loads PNG folders exactly: classes sorted, RGB / 255', () => {
    const dir = writeImageFolder(makeTemp(), { classes: 3, perClass: 4, size: 6 });
    fs.writeFileSync(path.join(dir, 'README.txt'), 'not a class');
    const ds = loadImageFolder({ dir });
    expect(ds.numClasses).toBe(3);
    expect(ds.inputShape).toEqual([6, 6, 3]);
    expect(ds.countOf(2)).toBe(4);
    expect(ds.className(1)).toBe('class_01');
    const out = new Float32Array(6 * 6 * 3);
    ds.load(2, 1, out, 0); // class 2, img_1: pixel (x, y) = [40, (7x + 30) % 256, 5y]
    const at = (x: number, y: number) => Array.from(out.subarray((y * 6 + x) * 3, (y * 6 + x) * 3 + 3));
    expect(at(0, 0)).toEqual([40 / 255, 30 / 255, 0].map((v) => Math.fround(v)));
    expect(at(3, 5)).toEqual([40 / 255, 51 / 255, 25 / 255].map((v) => Math.fround(v)));
    const grey = loadImageFolder({ dir, channels: 1 });
    expect(grey.inputShape).toEqual([6, 6, 1]);
  });

  it('loads JPEG folders (lossy, close to the source)', () => {
    const dir = writeImageFolder(makeTemp(), { classes: 2, perClass: 2, size: 16, format: 'jpg' });
    const ds = loadImageFolder({ dir });
    const out = new Float32Array(16 * 16 * 3);
    ds.load(1, 0, out, 0);
    expect(Math.abs(out[0]! - 20 / 255)).toBeLessThan(0.05);
  });

  it('a seeded class split is disjoint and covers every class', () => {
    const ds = loadImageFolder({ dir: writeImageFolder(makeTemp(), { classes: 10, perClass: 1, size: 2 }) });
    const a = splitFolder({ dataset: ds, seed: 4 });
    expect(a.train.numClasses).toBe(7);
    expect(a.test.numClasses).toBe(3);
    const names = (d: typeof a.train) => Array.from({ length: d.numClasses }, (_, i) => d.className(i));
    expect(new Set([...names(a.train), ...names(a.test)]).size).toBe(10);
    expect(names(splitFolder({ dataset: ds, seed: 4 }).train)).toEqual(names(a.train));
  });

  it('bad input: missing folder, no classes, corrupt PNG, corrupt JPEG, mixed sizes — one clear line each', () => {
    expect(() => loadImageFolder({ dir: path.join(makeTemp(), 'none') })).toThrow(/image directory '.*none' does not exist: point `dir` at a folder with one sub-folder of images per class/);
    expect(() => loadImageFolder({ dir: makeTemp() })).toThrow(/has no class folders with PNG or JPEG images/);
    const badPng = writeImageFolder(makeTemp(), { classes: 2, perClass: 2, size: 4 });
    fs.writeFileSync(path.join(badPng, 'class_01', 'img_1.png'), pngBytes(4, 4, () => [1, 2, 3]).subarray(0, 40));
    expect(() => loadImageFolder({ dir: badPng })).toThrow(/cannot decode image '.*class_01\/img_1.png' .*damaged/);
    const badJpeg = writeImageFolder(makeTemp(), { classes: 1, perClass: 1, size: 8, format: 'jpg' });
    fs.writeFileSync(path.join(badJpeg, 'class_00', 'img_0.jpg'), jpegBytes(8, 8, () => [9, 9, 9]).subarray(0, 30));
    expect(() => loadImageFolder({ dir: badJpeg })).toThrow(/cannot decode image '.*img_0.jpg' .*damaged/);
    const mixed = writeImageFolder(makeTemp(), { classes: 2, perClass: 1, size: 8 });
    fs.writeFileSync(path.join(mixed, 'class_01', 'img_0.png'), pngBytes(9, 8, () => [0, 0, 0]));
    expect(() => loadImageFolder({ dir: mixed })).toThrow(/image '.*class_01\/img_0.png' is 9×8, but 8×8 is expected: resize all images/);
  });
});

describe('Mini-ImageNet layout', () => {
  it('loads train/val/test class folders of 84×84 colour images', () => {
    const dir = makeTemp();
    writeImageFolder(path.join(dir, 'train'), { classes: 3, perClass: 2, size: 84 });
    writeImageFolder(path.join(dir, 'val'), { classes: 1, perClass: 2, size: 84 });
    writeImageFolder(path.join(dir, 'test'), { classes: 2, perClass: 2, size: 84, format: 'jpg' });
    const mi = loadMiniImageNet({ dir });
    expect([mi.train.numClasses, mi.val.numClasses, mi.test.numClasses]).toEqual([3, 1, 2]);
    expect(mi.test.inputShape).toEqual([84, 84, 3]);
    const data = openFewShotData({ dataset: 'miniimagenet', dataDir: dir, seed: 0 });
    expect(data.train.numClasses).toBe(3);
    expect(data.val?.numClasses).toBe(1);
  });

  it('rejects images that are not 84×84 and a missing split', () => {
    const dir = makeTemp();
    writeImageFolder(path.join(dir, 'train'), { classes: 1, perClass: 1, size: 32 });
    expect(() => loadMiniImageNet({ dir })).toThrow(/is 32×32, but 84×84 is expected/);
    const partial = makeTemp();
    writeImageFolder(path.join(partial, 'train'), { classes: 1, perClass: 1, size: 84 });
    expect(() => loadMiniImageNet({ dir: partial })).toThrow(/has no 'val\/' folder: it needs train\/, val\/ and test\//);
  });
});

function writeIdx(file: string, dims: number[], data: Uint8Array): void {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  fs.writeFileSync(file, Buffer.concat([head, data]));
}

describe('MNIST few-shot', () => {
  it('groups images by digit and splits the ten digits by the seed into 5 + 5', () => {
    const dir = makeTemp();
    const n = 30;
    const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
    const images = Uint8Array.from({ length: n * 4 }, (_, i) => Math.floor(i / 4) * 8); // image i is all 8·i
    writeIdx(path.join(dir, 'train-images-idx3-ubyte'), [n, 2, 2], images);
    writeIdx(path.join(dir, 'train-labels-idx1-ubyte'), [n], labels);
    const m = loadMnistFewShot({ dir, seed: 3 });
    expect([...m.trainDigits, ...m.testDigits].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(m.train.numClasses).toBe(5);
    expect(m.train.countOf(0)).toBe(3);
    const out = new Float32Array(4);
    m.train.load(0, 1, out, 0); // second image of the smallest training digit d is image 10 + d
    const d = m.trainDigits[0]!;
    expect(out[0]).toBeCloseTo(((10 + d) * 8) / 255, 6);
    expect(loadMnistFewShot({ dir, seed: 3 }).trainDigits).toEqual(m.trainDigits);
  });

  it('bad input: missing, truncated and mismatched IDX files', () => {
    const dir = makeTemp();
    expect(() => loadMnistFewShot({ dir, seed: 0 })).toThrow(/MNIST file train-images-idx3-ubyte\[\.gz\] is missing from .*: put the four IDX files/);
    writeIdx(path.join(dir, 'train-images-idx3-ubyte'), [3, 2, 2], new Uint8Array(10));
    writeIdx(path.join(dir, 'train-labels-idx1-ubyte'), [3], new Uint8Array(3));
    expect(() => loadMnistFewShot({ dir, seed: 0 })).toThrow(/train-images-idx3-ubyte is truncated: 26 bytes, its header \[3, 2, 2\] needs 28: download it again/);
    writeIdx(path.join(dir, 'train-images-idx3-ubyte'), [3, 2, 2], new Uint8Array(12));
    writeIdx(path.join(dir, 'train-labels-idx1-ubyte'), [2], new Uint8Array(2));
    expect(() => loadMnistFewShot({ dir, seed: 0 })).toThrow(/holds 2 labels but image file .* holds 3 images: use the label file that belongs to these images/);
  });
});
