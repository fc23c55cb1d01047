import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeIdxUint8 } from '../src/data/idx.js';
import { nativeSkipReason } from './native-helpers.js';

const root = path.resolve(import.meta.dirname, '..');
const cli = path.join(root, 'dist', 'cli', 'main.js');
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function run(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** 28×28 MNIST-shaped fixtures: digit d is a bright horizontal bar in rows 2d..2d+3, so a linear model can learn it. */
function fixtureDir(opts: { trainN?: number; testLabels?: number } = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reptile-example-'));
  dirs.push(dir);
  for (const [stem, n] of [['train', opts.trainN ?? 200], ['t10k', 50]] as const) {
    const labels = Uint8Array.from({ length: n }, (_, i) => (i * 7) % 10);
    const images = new Uint8Array(n * 784);
    labels.forEach((d, i) => images.fill(255, i * 784 + 2 * d * 28, i * 784 + (2 * d + 4) * 28));
    fs.writeFileSync(path.join(dir, `${stem}-images-idx3-ubyte`), encodeIdxUint8([n, 28, 28], images));
    const ln = stem === 't10k' && opts.testLabels !== undefined ? opts.testLabels : n;
    fs.writeFileSync(path.join(dir, `${stem}-labels-idx1-ubyte`), encodeIdxUint8([ln], labels.subarray(0, ln)));
  }
  return dir;
}

function expectOneLineError(args: string[], pattern: RegExp, code: number): void {
  const r = run(args);
  expect(r.code, r.stderr).toBe(code);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n').filter((l) => !l.startsWith('tfjs backend:'));
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^reptile: /);
  expect(lines[0]).toMatch(pattern);
}

describe('reptile example mnist', () => {
  it('trains on a directory of IDX files and prints the result as JSON', () => {
    const dir = fixtureDir();
    const r = run(['example', 'mnist', '--data', dir, '--epochs', '3', '--limit', '150', '--learning-rate', '0.05', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, number>;
    expect(out).toMatchObject({ epochs: 3, trainExamples: 150, testExamples: 50 });
    // The native engine trains where the addon loads; --backend asks for tfjs's model.fit.
    expect(out['engine']).toBe(nativeSkipReason === undefined ? 'native' : 'tfjs');
    const t = run(['example', 'mnist', '--data', dir, '--epochs', '1', '--limit', '64', '--backend', 'cpu', '--json']);
    expect(t.code, t.stderr).toBe(0);
    expect(JSON.parse(t.stdout)).toMatchObject({ engine: 'tfjs', backend: 'cpu' });
    expect(out['testAccuracy']).toBeGreaterThanOrEqual(0);
    expect(out['testAccuracy']).toBeLessThanOrEqual(1);
    expect(Number.isFinite(out['testLoss'])).toBe(true);
    // Keras-like progress goes to stderr under --json, one block per epoch.
    expect(r.stderr.match(/^Epoch \d\/3$/gm)).toHaveLength(3);
    expect(r.stderr).toMatch(/^5\/5 - [\d.]+s - loss: [\d.]+ - acc: [\d.]+ - test_loss: [\d.]+ - test_acc: [\d.]+$/m);
  });

  it('prints per-epoch lines and a summary on stdout without --json, and runs the one-vs-rest variant', () => {
    const dir = fixtureDir();
    const r = run(['example', 'mnist', '--data', dir, '--epochs', '2', '--variant', 'one-vs-rest']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/one-vs-rest: ten sigmoid outputs, binary cross-entropy/);
    expect(r.stdout).toMatch(/^Epoch 2\/2$/m);
    expect(r.stdout).toMatch(/^test accuracy [\d.]+%, test loss [\d.]+ after 2 epochs/m);
  });

  it('rejects bad input with one line each', () => {
    const dir = fixtureDir({ testLabels: 40 });
    expectOneLineError(['example', 'mnist', '--data', dir, '--epochs', '1'], /label file .*t10k-labels-idx1-ubyte holds 40 labels but image file .* holds 50 images/, 1);
    expectOneLineError(['example', 'mnist', '--data', path.join(dir, 'missing')], /MNIST directory '.*missing' does not exist: point --data at a folder/, 1);
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'reptile-example-'));
    dirs.push(empty);
    expectOneLineError(['example', 'mnist', '--data', empty], /MNIST file train-images-idx3-ubyte\[\.gz\] is missing/, 1);
    expectOneLineError(['example', 'cifar'], /unknown example 'cifar'/, 2);
    expectOneLineError(['example', 'mnist', '--epochs', '0'], /--epochs.*expected a whole number from 1 to 100,000/, 2);
    expectOneLineError(['example', 'mnist', '--learning-rate', '-1'], /--learning-rate.*expected a positive number/, 2);
    expectOneLineError(['example', 'mnist', '--variant', 'sigmoid'], /--variant.*expected one of softmax, one-vs-rest/, 2);
  });
});
