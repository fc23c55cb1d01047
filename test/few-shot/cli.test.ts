import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../src/engine/backend.js';
import { loadFewShotCheckpoint } from '../../src/recipes/few-shot/checkpoint.js';
import { openRecordedFewShotData } from '../../src/data/open.js';
import { makeTemp, pngBytes, runCli, writeImageFolder, writeOmniglotZips } from './fixtures.js';

function expectOneLineError(r: { code: number; stdout: string; stderr: string }, pattern: RegExp): void {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('tfjs backend:') && !l.startsWith('decoding ') && !/training classes, \d+ test classes/.test(l));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^reptile: /);
  expect(lines[0]).toMatch(pattern);
}

// A 12-class 28×28 folder dataset: 9 training and 3 test classes after the seeded split.
let folder: string;
const tiny = ['--classes', '3', '--shots', '1', '--train-shots', '2', '--inner-batch', '3', '--inner-iters', '1', '--meta-iters', '2', '--meta-batch', '2', '--eval-iters', '1', '--eval-batch', '2', '--eval-interval', '1'];

beforeAll(() => {
  folder = writeImageFolder(makeTemp(), { classes: 12, perClass: 3, size: 28 });
});

describe('reptile train/eval/export on a few-shot dataset', () => {
  it('trains, prints accuracy every --eval-interval, evaluates the checkpoint as JSON, exports a loadable LayersModel', async () => {
    const ck = path.join(makeTemp(), 'ck');
    const train = runCli(['train', '--dataset', 'folder', '--data-dir', folder, ...tiny, '--checkpoint', ck, '--backend', 'wasm', '--verbose']);
    expect(train.stderr).toMatch(/tfjs backend: wasm/);
    expect(train.code).toBe(0);
    expect(train.stdout).toMatch(/batch 1: train=\d\.\d+ test=\d\.\d+/);
    expect(train.stdout).toMatch(/batch 2: train=/);
    expect(train.stdout).toMatch(/meta-trained 2 iterations/);

    // 'auto' tries tfjs-node first, then wasm, and says which one runs.
    const ev = runCli(['eval', '--checkpoint', ck, '--samples', '4', '--seed', '3', '--json', '--verbose']);
    expect(ev.code).toBe(0);
    expect(ev.stderr).toMatch(/tfjs backend: (tensorflow|wasm \(tensorflow: not installed\))/);
    const result = JSON.parse(ev.stdout) as { accuracy: number; ci95: number; samples: number; classes: number; shots: number; dataDir: string; transductive: boolean };
    expect(result.samples).toBe(4);
    expect(result.classes).toBe(3);
    expect(result.shots).toBe(1);
    expect(result.transductive).toBe(false);
    expect(result.dataDir).toBe(path.resolve(folder));
    // 4 tasks × 3 queries: accuracy is a multiple of 1/3 per task, so of 1/12 overall.
    expect(Math.abs(result.accuracy * 12 - Math.round(result.accuracy * 12))).toBeLessThan(1e-9);
    expect(result.ci95).toBeGreaterThanOrEqual(0);
    const again = JSON.parse(runCli(['eval', '--checkpoint', ck, '--samples', '4', '--seed', '3', '--json', '--backend', 'wasm']).stdout) as { accuracy: number };
    expect(again.accuracy).toBe(result.accuracy);

    const out = path.join(makeTemp(), 'model');
    const ex = runCli(['export', '--checkpoint', ck, '--out', out]);
    expect(ex.code).toBe(0);
    await selectBackend('cpu');
    const { learner, model } = loadFewShotCheckpoint(ck);
    const loaded = await tf.loadLayersModel({
      load: async () => {
        const m = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8')) as { modelTopology: object; weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[] };
        const bin = fs.readFileSync(path.join(out, 'weights.bin'));
        return { modelTopology: m.modelTopology, weightSpecs: m.weightsManifest[0]!.weights, weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) };
      },
    });
    const x = tf.randomUniform([4, 28, 28, 3], 0, 1, 'float32', 1);
    const a = (model.apply(x, { training: true }) as tf.Tensor).dataSync();
    const b = (loaded.apply(x, { training: true }) as tf.Tensor).dataSync();
    expect(Array.from(b)).toEqual(Array.from(a));
    learner.dispose();
  });

  it('bad input: each is one line naming the problem and the fix, non-zero exit', () => {
    const missing = path.join(makeTemp(), 'absent');
    expectOneLineError(runCli(['train', '--dataset', 'omniglot', '--data-dir', missing, '--backend', 'cpu']), /Omniglot directory '.*absent' does not exist: point --data-dir at a folder with images_background.zip/);
    expectOneLineError(runCli(['train', '--dataset', 'folder', '--backend', 'cpu']), /missing --data-dir/);
    expectOneLineError(runCli(['train', '--dataset', 'folder', '--data-dir', folder, ...tiny, '--classes', '10', '--backend', 'cpu']), /the training split has 9 classes, fewer than --classes 10: lower --classes/);
    expectOneLineError(runCli(['train', '--dataset', 'folder', '--data-dir', folder, ...tiny, '--shots', '3', '--backend', 'cpu']), /has 3 examples, fewer than the 4 a task needs \(--shots \+ 1\)/);
    expectOneLineError(runCli(['train', '--dataset', 'folder', '--data-dir', folder, ...tiny, '--train-shots', '5', '--backend', 'cpu']), /has 3 examples, fewer than the 5 a task needs \(--train-shots\)/);

    const corrupt = writeOmniglotZips(makeTemp(), { alphabets: 1, characters: 1, drawings: 1 });
    fs.writeFileSync(path.join(corrupt, 'images_evaluation.zip'), 'not a zip at all');
    expectOneLineError(runCli(['train', '--dataset', 'omniglot', '--data-dir', corrupt, '--backend', 'cpu'], { REPTILE_CACHE: makeTemp() }), /cannot read the zip archive '.*images_evaluation.zip'.*download it again/);
    const small = writeOmniglotZips(makeTemp(), { alphabets: 1, characters: 2, drawings: 2 });
    expectOneLineError(runCli(['train', '--dataset', 'omniglot', '--data-dir', small, '--backend', 'cpu'], { REPTILE_CACHE: makeTemp() }), /cannot split 4 Omniglot characters into 1200/);

    const wrongSize = writeImageFolder(makeTemp(), { classes: 4, perClass: 2, size: 28 });
    writeImageFolder(path.join(wrongSize, 'extra'), { classes: 1, perClass: 1, size: 30 });
    fs.renameSync(path.join(wrongSize, 'extra', 'class_00'), path.join(wrongSize, 'class_zz'));
    expectOneLineError(runCli(['train', '--dataset', 'folder', '--data-dir', wrongSize, '--backend', 'cpu']), /is 30×30, but 28×28 is expected/);

    expectOneLineError(runCli(['eval', '--samples', '2']), /missing --checkpoint/);
    expectOneLineError(runCli(['eval', '--checkpoint', path.join(makeTemp(), 'none'), '--samples', '2', '--backend', 'cpu']), /no checkpoint at '.*none.reptile.ckpt'/);
    expectOneLineError(runCli(['export', '--checkpoint', path.join(makeTemp(), 'none')]), /missing --out/);
    expectOneLineError(runCli(['train', '--task', 'sine', '--dataset', 'folder', '--data-dir', folder]), /--task and --dataset .*both given/);
  });

  it('an existing checkpoint is not damaged by a failing run', () => {
    const ck = path.join(makeTemp(), 'ck');
    expect(runCli(['train', '--dataset', 'folder', '--data-dir', folder, ...tiny, '--meta-iters', '1', '--checkpoint', ck, '--backend', 'wasm']).code).toBe(0);
    const before = fs.readFileSync(path.join(ck, 'reptile.ckpt'));
    expectOneLineError(runCli(['train', '--dataset', 'folder', '--data-dir', path.join(folder, 'nope'), ...tiny, '--checkpoint', ck, '--backend', 'cpu']), /does not exist/);
    expect(fs.readFileSync(path.join(ck, 'reptile.ckpt')).equals(before)).toBe(true);
  });

  it('resuming with other few-shot settings or other data is refused with one line, the checkpoint untouched', () => {
    const ck = path.join(makeTemp(), 'ck');
    expect(runCli(['train', '--dataset', 'folder', '--data-dir', folder, ...tiny, '--meta-iters', '1', '--checkpoint', ck, '--backend', 'wasm']).code).toBe(0);
    const before = fs.readFileSync(path.join(ck, 'reptile.ckpt'));
    const resume = (extra: string[], dir = folder) => runCli(['train', '--dataset', 'folder', '--data-dir', dir, ...tiny, ...extra, '--checkpoint', ck, '--backend', 'cpu']);
    expectOneLineError(resume(['--shots', '2']), /trained with --shots 1, not 2: resume with the same settings/);
    expectOneLineError(resume(['--classes', '2']), /trained with --classes 3, not 2/);
    expectOneLineError(resume(['--train-shots', '3']), /trained with --train-shots 2, not 3/);
    expectOneLineError(resume(['--init', 'glorot']), /trained with --init fan-in, not glorot/);
    // The same classes and counts, one drawing changed: the data's fingerprint tells them apart.
    const other = path.join(makeTemp(), 'other');
    fs.cpSync(folder, other, { recursive: true });
    const cls = fs.readdirSync(other).sort()[0]!;
    const first = fs.readdirSync(path.join(other, cls)).sort()[0]!;
    fs.writeFileSync(path.join(other, cls, first), pngBytes(28, 28, (x) => (x < 14 ? [255, 255, 255] : [0, 0, 0])));
    expectOneLineError(resume([], other), /trained on other data \(fingerprint [0-9a-f]{16}, not [0-9a-f]{16}\): resume with the same settings and data, or use a new --checkpoint$/);
    expect(fs.readFileSync(path.join(ck, 'reptile.ckpt')).equals(before)).toBe(true);
    // The same settings and data resume.
    const ok = runCli(['train', '--dataset', 'folder', '--data-dir', folder, ...tiny, '--meta-iters', '1', '--checkpoint', ck, '--backend', 'cpu']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/meta-trained 1 iterations/);
  });

  // On the real archives (where ../shared/data/omniglot exists): the paper's own characters.
  const omniglot = path.resolve('../shared/data/omniglot');
  it.skipIf(!fs.existsSync(path.join(omniglot, 'images_background.zip')))(
    "--class-split supervised-reptile trains on the paper's 423 test characters, is recorded, and eval and resume follow it",
    () => {
      const ck = path.join(makeTemp(), 'ck');
      const small = ['--preset', 'omniglot-5w5s', '--data-dir', omniglot, '--meta-iters', '2', '--eval-interval', '1', '--checkpoint', ck, '--backend', 'wasm'];
      const trained = runCli(['train', ...small, '--class-split', 'supervised-reptile']);
      expect(trained.code, trained.stderr).toBe(0);
      const info = loadFewShotCheckpoint(ck).info;
      expect(info.data['classSplit']).toBe('supervised-reptile');
      // supervised-reptile's split_dataset after random.seed(0), computed with CPython: its test list begins and ends so.
      const data = openRecordedFewShotData(info.data, { seed: 0 });
      const names = Array.from({ length: data.test.numClasses }, (_, c) => data.test.className(c));
      expect(names).toHaveLength(423);
      expect(names.slice(0, 3)).toEqual(['Malayalam/character17', 'Mkhedruli_(Georgian)/character07', 'Japanese_(hiragana)/character33']);
      expect(names.slice(-2)).toEqual(['Tifinagh/character11', 'Japanese_(hiragana)/character15']);
      expect(data.describe.fingerprint).toBe(info.data['fingerprint']);
      // eval reopens the recorded split (a different one would fail the fingerprint check).
      const ev = runCli(['eval', '--checkpoint', ck, '--samples', '2', '--eval-iters', '1', '--json', '--backend', 'wasm']);
      expect(ev.code, ev.stderr).toBe(0);
      expect((JSON.parse(ev.stdout) as { samples: number }).samples).toBe(2);
      // Resuming on the default split is refused, naming the flag; the checkpoint is untouched.
      const before = fs.readFileSync(path.join(ck, 'reptile.ckpt'));
      expectOneLineError(runCli(['train', ...small, '--meta-iters', '3']), /trained with --class-split supervised-reptile, not seeded/);
      expect(fs.readFileSync(path.join(ck, 'reptile.ckpt')).equals(before)).toBe(true);
      expectOneLineError(runCli(['train', '--dataset', 'folder', '--data-dir', folder, ...tiny, '--class-split', 'supervised-reptile', '--backend', 'cpu']), /supervised-reptile class split is Omniglot's, not folder's: drop --class-split/);
    },
    300_000,
  );
});
