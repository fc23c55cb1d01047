import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, DataError, DivergenceError, InvalidOptionsError, ReptileError, UnsupportedModelError, UsageError } from '../src/_utils/errors.js';
import { withFlagNames, kebabCase } from '../src/cli/flag-names.js';
import { miniBatches } from '../src/core/batches.js';
import { bytesToFloats } from '../src/core/codec.js';
import { Rng } from '../src/core/rng.js';
import { downloadOmniglot } from '../src/data/download.js';
import { loadImageFolder } from '../src/data/folder.js';
import { createExecutor } from '../src/exec/create-executor.js';
import { ThreadsExecutor } from '../src/exec/threads.js';
import { createLearner } from '../src/learners/create-learner.js';
import { validateInnerOptions, type InnerOptions } from '../src/learners/learner.js';
import { createSineModel } from '../src/learners/models.js';
import { TfjsLearner } from '../src/learners/tfjs.js';
import { Reptile } from '../src/optim/reptile.js';
import { ArrayDataset, FewShotTaskSource, chooseClasses } from '../src/tasks/labeled.js';
import { SineTaskSource } from '../src/tasks/sine.js';
import { readCheckpoint } from '../src/train/checkpoint.js';
import { evaluate } from '../src/train/evaluate.js';
import { metaTrain } from '../src/train/meta-train.js';
import { serveStatic } from '../src/_utils/static-server.js';
import { reptile } from './helpers/cli.js';
import { NativeLearner } from '../src/learners/native-learner.js';
import { checkTaskFits, resolveFewShotRun } from '../src/recipes/few-shot/settings.js';
import { nativeSkipReason } from './native-helpers.js';
import { tempDir } from './helpers/fixtures.js';

type ErrorClass = abstract new (...args: never[]) => ReptileError;

/**
 * Runs `run` (awaiting what it returns) and checks the error contract: the expected class, a
 * `ReptileError` with the class's exit code, one line (no newline), the named option, the message.
 */
async function expectTyped(run: () => unknown, cls: ErrorClass, exitCode: 1 | 2, pattern: RegExp, option?: string): Promise<ReptileError> {
  let err: unknown;
  try {
    await run();
  } catch (e) {
    err = e;
  }
  expect(err, 'no error was thrown').toBeDefined();
  expect(err, String(err)).toBeInstanceOf(cls);
  expect(err).toBeInstanceOf(ReptileError);
  const e = err as ReptileError;
  expect(e.exitCode).toBe(exitCode);
  expect(e.message).not.toContain('\n');
  expect(e.message).toMatch(pattern);
  if (option !== undefined) expect((e as InvalidOptionsError).option).toBe(option);
  return e;
}

const inner: InnerOptions = { optimizer: 'sgd', learningRate: 0.01, innerIters: 1, innerBatch: 5 };
// The library's bad inputs as a JavaScript caller (or a TypeScript one with a cast) makes them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const loose = (f: (...args: any[]) => unknown) => f as (...args: unknown[]) => unknown;

describe('the error hierarchy', () => {
  it('gives each class its exit code and its place under ReptileError', () => {
    const option = new InvalidOptionsError('`learningRate` must be > 0', { option: 'learningRate' });
    expect(option).toBeInstanceOf(UsageError);
    expect([option.exitCode, option.option, option.name]).toEqual([2, 'learningRate', 'InvalidOptionsError']);
    expect(new UnsupportedModelError('x')).toBeInstanceOf(UsageError);
    expect(new UnsupportedModelError('x').exitCode).toBe(2);
    for (const cls of [DataError, CheckpointError, DivergenceError]) {
      const e = new cls('x');
      expect(e).toBeInstanceOf(ReptileError);
      expect(e).not.toBeInstanceOf(UsageError);
      expect(e.exitCode).toBe(1);
      expect(e.name).toBe(cls.name);
    }
  });
});

describe('bad input to the library: one typed line naming the option', () => {
  let learner: TfjsLearner;
  const sine = new SineTaskSource();
  beforeAll(async () => {
    await tf.setBackend('cpu');
    learner = new TfjsLearner({ model: createSineModel({ seed: 1 }) });
  });

  it('createLearner without a model, or without options', async () => {
    await expectTyped(() => loose(createLearner)({ model: {} }), InvalidOptionsError, 2, /^`model` must be a tfjs LayersModel \(tf\.sequential\(\) or tf\.model\(\)\), got an object that is not one$/, 'model');
    await expectTyped(() => loose(createLearner)({ model: tf.zeros([2]) }), InvalidOptionsError, 2, /`model` must be a tfjs LayersModel/, 'model');
    await expectTyped(() => loose(createLearner)(undefined), InvalidOptionsError, 2, /^createLearner takes an options object such as \{ model \}, got undefined$/);
  });

  it('createLearner with an unknown learner, policy or thread count', async () => {
    const model = createSineModel({ seed: 1 });
    await expectTyped(() => loose(createLearner)({ model, learner: 'gpu' }), InvalidOptionsError, 2, /unknown learner 'gpu': `learner` must be 'auto', 'native', 'wasm' or 'tfjs'/, 'learner');
    await expectTyped(() => loose(createLearner)({ model, innerState: 'keep' }), InvalidOptionsError, 2, /`innerState` must be 'carry', 'shared' or 'reset', got 'keep'/, 'innerState');
    await expectTyped(() => loose(createLearner)({ model, learner: 'tfjs', threads: 3 }), InvalidOptionsError, 2, /`threads` must be 1 or 2, got 3/, 'threads');
  });

  it('a model with a regularizer is an UnsupportedModelError', async () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1], kernelRegularizer: tf.regularizers.l2() })] });
    await expectTyped(() => createLearner({ model, learner: 'tfjs' }), UnsupportedModelError, 2, /has a regularizer \(kernelRegularizer\)/);
  });

  it('metaTrain without a source or a learner, or without options', async () => {
    await expectTyped(() => loose(metaTrain)({ learner, config: { metaIters: 1 } }), InvalidOptionsError, 2, /^`source` must be a task source, e\.g\. new SineTaskSource\(\).*, got undefined$/, 'source');
    await expectTyped(() => loose(metaTrain)({ source: sine, config: { metaIters: 1 } }), InvalidOptionsError, 2, /^`learner` must be a Learner, e\.g\. createLearner\(\{ model \}\), got undefined$/, 'learner');
    await expectTyped(() => loose(metaTrain)({ learner: {}, source: sine, config: {} }), InvalidOptionsError, 2, /`learner` must be a Learner.*got an object without getParams\(\)/, 'learner');
    await expectTyped(() => loose(metaTrain)(), InvalidOptionsError, 2, /^metaTrain takes an options object/);
  });

  it('metaTrain settings out of range, of the wrong type, or misspelt', async () => {
    await expectTyped(() => metaTrain({ learner, source: sine, config: { metaIters: -1 } }), InvalidOptionsError, 2, /^`metaIters` must be a whole number ≥ 1, got -1$/, 'metaIters');
    await expectTyped(() => loose(metaTrain)({ learner, source: sine, config: { metaStep: '0.5' } }), InvalidOptionsError, 2, /^`metaStep` \(ε\) must be in \[0, 1\], got '0\.5'/, 'metaStep');
    // A misspelt setting used to be ignored, so the run went on for the default 400,000 iterations.
    await expectTyped(() => loose(metaTrain)({ learner, source: sine, config: { metaIter: 2 } }), InvalidOptionsError, 2, /^unknown meta-training setting 'metaIter': use metaStep, .*metaIters/, 'metaIter');
    await expectTyped(() => metaTrain({ learner, source: sine, config: { metaIters: 1 }, checkpointEvery: 0 }), InvalidOptionsError, 2, /^`checkpointEvery` must be a whole number ≥ 1, got 0$/, 'checkpointEvery');
    await expectTyped(() => loose(metaTrain)({ learner, source: sine, config: { metaIters: 1 }, checkpointDir: 7 }), InvalidOptionsError, 2, /^`checkpointDir` must be a path, got 7$/, 'checkpointDir');
  });

  it('a usage mistake found before the checkpoint folder is made leaves no folder behind', async () => {
    const dir = path.join(tempDir(), 'ckpt');
    const parallel = { name: 'threads', parallel: true, runMetaBatch: () => Promise.resolve([]) };
    await expectTyped(
      () => loose(metaTrain)({ learner, source: sine, config: { metaIters: 1, innerState: 'carry' }, executor: parallel, checkpointDir: dir }),
      InvalidOptionsError,
      2,
      /cannot carry the inner optimizer's state .*set `innerState` to 'shared' or 'reset'/,
    );
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('evaluate with no tasks, no inner loop or a bad learning rate', async () => {
    await expectTyped(() => evaluate({ learner, source: sine, inner, samples: 0, seed: 0 }), InvalidOptionsError, 2, /^`samples` must be a whole number ≥ 1, got 0$/, 'samples');
    await expectTyped(() => loose(evaluate)({ learner, source: sine, samples: 1, seed: 0 }), InvalidOptionsError, 2, /^the inner loop takes an options object/);
    await expectTyped(() => validateInnerOptions({ ...inner, learningRate: -1, innerIters: 0 }), InvalidOptionsError, 2, /^`learningRate` must be a positive number, got -1; `innerIters` must be a whole number ≥ 1, got 0$/, 'learningRate');
  });

  it('task sources: too many classes, a dataset that is not one, no shots, a bad range', async () => {
    const ds = new ArrayDataset({ inputShape: [1], pixels: new Float32Array(6), counts: [3, 3] });
    await expectTyped(() => new FewShotTaskSource({ dataset: ds, classes: 5, shots: 1 }), InvalidOptionsError, 2, /^`classes` is 5 but the dataset has 2 classes: lower `classes` or add classes to the dataset$/, 'classes');
    await expectTyped(() => loose((o: never) => new FewShotTaskSource(o))({ dataset: {}, classes: 2, shots: 1 }), InvalidOptionsError, 2, /^`dataset` must be a LabeledDataset .*got an object without countOf\(\)/, 'dataset');
    await expectTyped(() => chooseClasses(Rng.derive(0), ds, 10), InvalidOptionsError, 2, /cannot draw 10 classes from a dataset of 2/, 'classes');
    await expectTyped(() => new SineTaskSource({ shots: 0 }), InvalidOptionsError, 2, /^`shots` must be a whole number ≥ 1, got 0$/, 'shots');
    // NaN in a range used to give tasks of NaN silently.
    await expectTyped(() => new SineTaskSource({ xRange: [5, Number.NaN] }), InvalidOptionsError, 2, /^`xRange` must be two finite numbers \[low, high\] with low ≤ high, got \[5, NaN\]$/, 'xRange');
    await expectTyped(() => new ArrayDataset({ inputShape: [2], pixels: new Float32Array(3), counts: [2] }), InvalidOptionsError, 2, /`pixels` holds 3 values, but `counts` and `inputShape` need 2 examples × 2/, 'pixels');
  });

  it('core: NaN counts, bad seeds and bytes that are not floats', async () => {
    // miniBatches(NaN, ...) used to loop for ever.
    await expectTyped(() => miniBatches(Number.NaN, 5, 2, Rng.derive(0)), InvalidOptionsError, 2, /^`count` must be a whole number ≥ 1, got NaN$/, 'count');
    await expectTyped(() => Rng.derive(-1), InvalidOptionsError, 2, /^`seed` must be a whole number in \[0, 2\^32\), got -1$/, 'seed');
    await expectTyped(() => bytesToFloats(new Uint8Array(3)), DataError, 1, /a float32 payload of 3 bytes is not a whole number of floats/);
  });

  it('the Reptile optimizer and the executors', async () => {
    await expectTyped(() => new Reptile({ learningRate: -1 }), InvalidOptionsError, 2, /Reptile `learningRate` must be a positive finite number, got -1/, 'learningRate');
    await expectTyped(() => loose(createExecutor)({ executor: 'gpu' }), InvalidOptionsError, 2, /unknown executor 'gpu': `executor` must be 'inline', 'threads' or 'redis'/, 'executor');
    await expectTyped(() => createExecutor({ workers: 2 }), InvalidOptionsError, 2, /^`workers` is for the threads executor/, 'workers');
    await expectTyped(() => new ThreadsExecutor({ workers: 0 }), InvalidOptionsError, 2, /^`workers` must be a whole number from 1 to 1024, got 0$/, 'workers');
  });

  it('checkpoints: missing, corrupt, or of another model', async () => {
    const dir = tempDir();
    await expectTyped(() => readCheckpoint(path.join(dir, 'none')), CheckpointError, 1, /^no checkpoint at .*\(ENOENT\): train with `checkpointDir` '.*none' first/);
    fs.writeFileSync(path.join(dir, 'reptile.ckpt'), 'RPTLCKPT garbage');
    await expectTyped(() => readCheckpoint(dir), CheckpointError, 1, /is corrupt \(not a reptile-ml checkpoint or truncated\)/);
    const other = new TfjsLearner({ model: tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [3] })] }) });
    await expectTyped(() => learner.setParams(other.getParams()), InvalidOptionsError, 2, /do not fit this model/, 'params');
  });

  it('a data folder that is a file is called a file, not missing', async () => {
    const file = path.join(tempDir(), 'a-file');
    fs.writeFileSync(file, 'x');
    await expectTyped(() => loadImageFolder({ dir: file }), DataError, 1, /^image directory '.*a-file' is a file, not a folder: point `dir` at a folder with one sub-folder of images per class$/);
  });

  it.runIf(fs.existsSync('/proc/self'))('a folder under /proc fails at once instead of spinning', async () => {
    await expectTyped(
      () => metaTrain({ learner, source: sine, config: { metaIters: 1, innerIters: 1 }, checkpointDir: '/proc/reptile-test/ckpt' }),
      CheckpointError,
      1,
      /^cannot write checkpoints to '\/proc\/reptile-test\/ckpt' \(ENOENT\): choose a writable `checkpointDir`$/,
    );
    await expectTyped(() => downloadOmniglot({ dir: '/proc/reptile-test/omniglot', fetchImpl: () => Promise.reject(new Error('offline')) }), DataError, 1, /^cannot create '\/proc\/reptile-test\/omniglot' \(ENOENT\): choose a writable `dir`$/);
  });

  it('the few-shot recipe: a sine preset, too few classes or examples', async () => {
    await expectTyped(() => resolveFewShotRun({ preset: 'sine', seed: 0 }), InvalidOptionsError, 2, /^preset 'sine' is not a few-shot setting/, 'preset');
    const ds = new ArrayDataset({ inputShape: [1], pixels: new Float32Array(6), counts: [3, 3] });
    await expectTyped(() => checkTaskFits(ds, 'training split', 5, 1, '`shots` + 1'), InvalidOptionsError, 2, /^the training split has 2 classes, fewer than `classes` 5: lower `classes`/, 'classes');
    await expectTyped(() => checkTaskFits(ds, 'training split', 2, 4, '`trainShots`'), InvalidOptionsError, 2, /has 3 examples, fewer than the 4 a task needs \(`trainShots`\): lower it/, 'trainShots');
  });

  it.skipIf(nativeSkipReason !== undefined)('the native learner: a model it cannot run, and use after dispose', async () => {
    const prelu = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [2] }), tf.layers.prelu()] });
    await expectTyped(() => new NativeLearner({ model: prelu }), UnsupportedModelError, 2, /\(PReLU\) is not supported; the native engine supports .*: use the tfjs learner \(set `learner` to 'tfjs' or 'auto'\)$/);
    const native = new NativeLearner({ model: createSineModel({ seed: 1 }) });
    native.dispose();
    await expectTyped(() => native.getParams(), UsageError, 2, /^this NativeLearner has been disposed: create a new one$/);
    await expectTyped(() => loose((o: never) => new NativeLearner(o))({ model: createSineModel({ seed: 1 }), threads: 4 }), InvalidOptionsError, 2, /^`threads` must be 1 or 2, got 4$/, 'threads');
  });

  it('a port past 65535 is one line, not a RangeError from listen()', async () => {
    await expectTyped(() => serveStatic({ root: tempDir(), port: 99999, host: '127.0.0.1' }), InvalidOptionsError, 2, /^`port` must be a whole number from 0 to 65535, got 99999$/, 'port');
  });

  it('a diverging run is a DivergenceError naming the options to lower', async () => {
    const wild = new TfjsLearner({ model: createSineModel({ seed: 1 }) });
    await expectTyped(
      () => metaTrain({ learner: wild, source: sine, config: { metaIters: 3, innerIters: 2, innerBatch: 10, learningRate: 1e30, optimizer: 'sgd' } }),
      DivergenceError,
      1,
      /^training diverged at meta-iteration 0 .*: lower `learningRate` or `metaStep`; the last good checkpoint is untouched$/,
    );
  });
});

describe('the command line names flags where the library names options', () => {
  const program = new Command('reptile');
  program.command('train').option('--learning-rate <x>').option('--meta-step <eps>').option('--checkpoint <dir>').option('--data-dir <dir>').option('--log <file>');
  program.command('data').option('--dir <dir>');
  program.command('example').option('--data <dir>').option('--learning-rate <lr>');
  program.command('eval').option('--eval-iters <n>').option('--checkpoint <dir>');

  it('derives kebab-case flags and uses the table for the few that differ', () => {
    expect(kebabCase('learningRate')).toBe('learning-rate');
    expect(withFlagNames('`learningRate` must be > 0', program, 'train')).toBe('--learning-rate must be > 0');
    expect(withFlagNames('lower `learningRate` or `metaStep`; use a new `checkpointDir`', program, 'train')).toBe('lower --learning-rate or --meta-step; use a new --checkpoint');
    expect(withFlagNames('choose a writable `logFile`', program, 'train')).toBe('choose a writable --log');
  });

  it("prefers the command's own flag, then its exceptions, and leaves words that are no flag", () => {
    expect(withFlagNames('point `dir` at a folder', program, 'data')).toBe('point --dir at a folder');
    expect(withFlagNames('point `dir` at a folder', program, 'train')).toBe('point --data-dir at a folder');
    expect(withFlagNames('point `dir` at a folder', program, 'example')).toBe('point --data at a folder');
    expect(withFlagNames('`innerIters` must be ≥ 1', program, 'eval')).toBe('--eval-iters must be ≥ 1');
    expect(withFlagNames('give the tasks a `numClasses`; run `npm install x`', program, 'train')).toBe('give the tasks a `numClasses`; run `npm install x`');
  });

  it('prints a library error with the flag, on one line, with its exit code', () => {
    // metaTrain's DivergenceError names the options `learningRate` and `metaStep`; the CLI names its flags.
    const r = reptile(['train', '--task', 'sine', '--meta-iters', '3', '--inner-iters', '2', '--learning-rate', '1e30', '--optimizer', 'sgd']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toBe('reptile: training diverged at meta-iteration 0 (value 0 is NaN (not finite)): lower --learning-rate or --meta-step; the last good checkpoint is untouched\n');
  });
});
