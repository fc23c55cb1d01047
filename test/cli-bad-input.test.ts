import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reptile, type CliRun } from './helpers/cli.js';
import { tempDir } from './helpers/fixtures.js';
import { redisSkipReason, startRedis, type TestRedis } from './helpers/redis.js';
import { writeImageFolder } from './few-shot/fixtures.js';

// Bad input as a newcomer meets it (issue 32, item 7), one class of failure per block: one line on
// stderr that names the problem and the fix, exit 2 for a mistake in the command line and 1 for a
// file, data or network that is not as needed, no stack trace, nothing that exists replaced, and
// nothing left behind by a command that was refused. Every case runs in a fresh working folder,
// so that what it leaves behind is what the folder holds afterwards.

/** Every file and folder under `dir`, with the bytes of the files. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) {
        out[`${r}/`] = '';
        walk(path.join(d, e.name), r);
      } else out[r] = fs.readFileSync(path.join(d, e.name), 'latin1');
    }
  };
  walk(dir, '');
  return out;
}

interface Case {
  name: string;
  args: (ctx: Context) => string[];
  /** Files made in the working folder first (null: a folder). */
  setup?: Record<string, string | null>;
  code: 1 | 2;
  message: RegExp;
  /** Words the message must not use. */
  not?: RegExp;
  timeoutMs?: number;
}

interface Context {
  checkpoint: string;
  folder: string;
}

/** Runs a case in a fresh folder; asserts the contract, and that the folder is exactly as it was. */
function expectRefused(c: Case, ctx: Context): CliRun {
  const cwd = tempDir('reptile-bad-');
  for (const [name, content] of Object.entries(c.setup ?? {})) {
    if (content === null) fs.mkdirSync(path.join(cwd, name), { recursive: true });
    else fs.writeFileSync(path.join(cwd, name), content);
  }
  const before = snapshot(cwd);
  const began = Date.now();
  const r = reptile(c.args(ctx), { cwd, timeoutMs: c.timeoutMs ?? 60_000 });
  expect(Date.now() - began, 'it must fail fast, not hang').toBeLessThan(c.timeoutMs ?? 60_000);
  expect(r.code, r.stderr).toBe(c.code);
  expect(r.stderr, 'no stack trace').not.toMatch(/\n\s+at /);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines.filter((l) => l.startsWith('reptile: ')), r.stderr).toHaveLength(1);
  expect(lines[lines.length - 1]).toMatch(/^reptile: /);
  expect(lines[lines.length - 1]).toMatch(c.message);
  expect(r.stderr).not.toMatch(/\.\.\/shared/);
  if (c.not) expect(r.stderr).not.toMatch(c.not);
  expect(snapshot(cwd), 'nothing written, replaced or left behind').toEqual(before);
  return r;
}

const fast = ['--meta-iters', '5', '--eval-samples', '3', '--eval-iters', '2'];
const tiny = ['--classes', '3', '--shots', '1', '--train-shots', '2', '--inner-batch', '3', '--inner-iters', '1', '--meta-iters', '2', '--meta-batch', '2', '--eval-iters', '1', '--eval-batch', '2', '--eval-interval', '1'];
const onLinux = fs.existsSync('/proc/self');

const ctx: Context = { checkpoint: '', folder: '' };

beforeAll(() => {
  // A 12-class image folder and a two-iteration few-shot checkpoint trained on it.
  ctx.folder = writeImageFolder(tempDir(), { classes: 12, perClass: 3, size: 28 });
  ctx.checkpoint = path.join(tempDir(), 'ck');
  const r = reptile(['train', '--dataset', 'folder', '--data-dir', ctx.folder, ...tiny, '--checkpoint', ctx.checkpoint, '--backend', 'cpu']);
  expect(r.code, r.stderr).toBe(0);
});

const classes: Record<string, Case[]> = {
  'nothing that exists is replaced without --force': [
    { name: 'export --out over a model.json', args: (c) => ['export', '--checkpoint', c.checkpoint, '--out', 'o'], setup: { o: null, 'o/model.json': 'mine' }, code: 1, message: /'o\/model\.json' exists: pass --force to replace it, or name a new --out folder/ },
    { name: 'demo --out over a result.json (refused before training)', args: () => ['demo', 'sine', '--out', 'o'], setup: { o: null, 'o/result.json': 'mine' }, code: 1, message: /'o\/result\.json' exists: pass --force/ },
    { name: 'demo --export over a model.json', args: () => ['demo', 'sine', '--out', 'new', '--export', 'e'], setup: { e: null, 'e/model.json': 'mine' }, code: 1, message: /'e\/model\.json' exists: pass --force/ },
  ],
  'every input is checked before the first byte is written': [
    { name: 'export --demo-tasks with a missing --data-dir writes no model', args: (c) => ['export', '--checkpoint', c.checkpoint, '--out', 'o', '--demo-tasks', '2', '--data-dir', 'missing'], code: 1, message: /./ },
    { name: 'export --data-dir without --demo-tasks', args: (c) => ['export', '--checkpoint', c.checkpoint, '--out', 'o', '--data-dir', c.folder], code: 2, message: /--data-dir is read only for --demo-tasks/ },
    { name: 'demo --export to a file fails before the plots are written', args: () => ['demo', 'sine', '--out', 'plots', '--export', 'afile'], setup: { afile: 'mine' }, code: 1, message: /--export 'afile' is a file, not a folder/ },
    { name: 'reproduce with a missing --data-dir makes no run folder', args: () => ['reproduce', 'omniglot-5w', '--data-dir', 'missing', '--out', 'r'], code: 1, message: /does not exist/ },
    { name: 'a checkpoint of a few-shot run given to sine training', args: (c) => ['train', '--task', 'sine', ...fast, '--checkpoint', c.checkpoint, '--log', 'log.jsonl'], code: 1, message: /different model/ },
  ],
  'no stack trace': [
    { name: 'demo --out a file (once after the whole training)', args: () => ['demo', 'sine', '--out', 'afile'], setup: { afile: 'mine' }, code: 1, message: /--out 'afile' is a file, not a folder: name a folder/ },
    { name: 'serve --port 99999', args: () => ['serve', '--port', '99999'], code: 2, message: /--port '99999' is invalid \(expected a whole number from 0 to 65,535\)/ },
    { name: 'reproduce --out a file', args: (c) => ['reproduce', 'omniglot-5w', '--data-dir', c.folder, '--out', 'afile'], setup: { afile: 'mine' }, code: 1, message: /--out 'afile' is a file/ },
  ],
  'bounds': [
    { name: 'train --meta-iters 1e12', args: () => ['train', '--task', 'sine', '--meta-iters', '1e12'], code: 2, message: /--meta-iters '1e12' is invalid \(expected a whole number from 1 to 1,000,000\)/ },
    { name: 'demo --meta-iters 1e12', args: () => ['demo', 'sine', '--meta-iters', '1e12'], code: 2, message: /--meta-iters '1e12' is invalid/ },
    { name: 'train --eval-samples 1e12', args: () => ['train', '--task', 'sine', '--eval-samples', '1e12'], code: 2, message: /--eval-samples '1e12' is invalid/ },
    { name: 'eval --samples 1e12', args: (c) => ['eval', '--checkpoint', c.checkpoint, '--samples', '1e12'], code: 2, message: /--samples '1e12' is invalid/ },
    { name: 'export --demo-tasks 1e9', args: (c) => ['export', '--checkpoint', c.checkpoint, '--out', 'o', '--demo-tasks', '1e9'], code: 2, message: /--demo-tasks '1e9' is invalid/ },
    { name: 'a layer of a million units', args: () => ['train', '--task', 'sine', '--hidden', '64,1000000'], code: 2, message: /--hidden '64,1000000' is not a list of layer sizes/ },
    { name: 'a 1-way task is trivial', args: (c) => ['train', '--dataset', 'folder', '--data-dir', c.folder, ...tiny, '--classes', '1'], code: 2, message: /--classes '1' is invalid \(expected a whole number from 2 to/ },
  ],
  'paths under /proc fail at once instead of spinning': onLinux
    ? [
        { name: 'train --checkpoint', args: () => ['train', '--task', 'sine', ...fast, '--checkpoint', '/proc/reptile-test/ck'], code: 1, message: /cannot write to --checkpoint '\/proc\/reptile-test\/ck'/, timeoutMs: 20_000 },
        { name: 'few-shot train --checkpoint', args: (c) => ['train', '--dataset', 'folder', '--data-dir', c.folder, ...tiny, '--checkpoint', '/proc/reptile-test'], code: 1, message: /cannot write to --checkpoint/, timeoutMs: 20_000 },
        { name: 'export --out', args: (c) => ['export', '--checkpoint', c.checkpoint, '--out', '/proc/reptile-test'], code: 1, message: /cannot write to --out/, timeoutMs: 20_000 },
        { name: 'demo --out', args: () => ['demo', 'sine', '--out', '/proc/reptile-test'], code: 1, message: /cannot write to --out/, timeoutMs: 20_000 },
        { name: 'data --download --dir', args: () => ['data', 'omniglot', '--download', '--dir', '/proc/reptile-test'], code: 1, message: /cannot write to --dir/, timeoutMs: 20_000 },
        { name: 'eval --cache-dir', args: (c) => ['eval', '--checkpoint', c.checkpoint, '--samples', '2', '--cache-dir', '/proc/reptile-test'], code: 1, message: /cannot write to --cache-dir/, timeoutMs: 20_000 },
      ]
    : [],
  'the words name the real problem and a fix the command has': [
    { name: 'a --data-dir that is a file is not "missing"', args: () => ['train', '--dataset', 'omniglot', '--data-dir', 'afile', ...tiny], setup: { afile: 'x' }, code: 1, message: /--data-dir 'afile' is a file, not a folder/, not: /does not exist|download/ },
    { name: 'eval --checkpoint that is a file', args: () => ['eval', '--checkpoint', 'afile'], setup: { afile: 'x' }, code: 1, message: /--checkpoint 'afile' is a file, not a folder/, not: /train with/ },
    { name: "'data' names its own --dir, not --data-dir", args: () => ['data', 'omniglot', '--dir', 'missing'], code: 1, message: /--dir 'missing' does not exist: fetch the archives into it with 'reptile data omniglot --download --dir missing'/, not: /--data-dir/ },
    { name: 'a missing --data-dir names a real folder', args: () => ['train', '--dataset', 'omniglot', ...tiny], code: 2, message: /missing --data-dir: .*reptile data omniglot --download/ },
    { name: 'reproduce without --data-dir', args: () => ['reproduce', 'omniglot-5w'], code: 2, message: /missing --data-dir/ },
    { name: 'a few-shot flag on sine is not ignored', args: () => ['train', '--task', 'sine', ...fast, '--classes', '3'], code: 2, message: /--classes is a few-shot flag/ },
    { name: 'a sine flag on few-shot is not ignored', args: (c) => ['train', '--dataset', 'folder', '--data-dir', c.folder, ...tiny, '--hidden', '32'], code: 2, message: /--hidden sets the sine network/ },
    { name: 'a --log in a folder that does not exist', args: () => ['train', '--task', 'sine', ...fast, '--log', 'logs/run.jsonl'], code: 1, message: /--log 'logs\/run\.jsonl': the folder 'logs' does not exist: make it first/ },
    { name: 'a --cache-dir that is a file', args: (c) => ['eval', '--checkpoint', c.checkpoint, '--samples', '2', '--cache-dir', 'afile'], setup: { afile: 'x' }, code: 1, message: /--cache-dir 'afile' is a file/ },
    { name: 'a worker --run-id that names no queue', args: () => ['worker', '--redis', 'redis://127.0.0.1:1', '--run-id', 'a b'], code: 2, message: /--run-id 'a b' is not a run name/ },
  ],
  'silence': [
    { name: 'no arguments', args: () => [], code: 2, message: /no command given: name one of the commands above/ },
    { name: 'help nosuch', args: () => ['help', 'nosuch'], code: 2, message: /unknown command 'nosuch': see 'reptile --help'/ },
    { name: 'an unknown setting of reproduce', args: () => ['reproduce', 'omniglot-7w'], code: 2, message: /unknown setting 'omniglot-7w' \(expected one of omniglot-5w, omniglot-20w\)/ },
  ],
};

describe('reptile: bad input, one class of failure at a time', () => {
  for (const [title, cases] of Object.entries(classes)) {
    if (cases.length === 0) continue;
    describe(title, () => {
      for (const c of cases) it(c.name, () => void expectRefused(c, ctx));
    });
  }

  it('no arguments prints the help (on stderr, with exit 2)', () => {
    const r = reptile([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/Usage: reptile/);
    expect(r.stderr).toMatch(/train/);
  });

  it('--force replaces an earlier export, and a folder with other files is used as it is', () => {
    const cwd = tempDir('reptile-bad-');
    fs.mkdirSync(path.join(cwd, 'o'));
    fs.writeFileSync(path.join(cwd, 'o', 'model.json'), 'old');
    fs.writeFileSync(path.join(cwd, 'o', 'notes.txt'), 'mine');
    const r = reptile(['export', '--checkpoint', ctx.checkpoint, '--out', 'o', '--force'], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(cwd, 'o', 'model.json'), 'utf8'))).toHaveProperty('modelTopology');
    expect(fs.readFileSync(path.join(cwd, 'o', 'notes.txt'), 'utf8')).toBe('mine');
    const other = tempDir('reptile-bad-');
    fs.writeFileSync(path.join(other, 'notes.txt'), 'mine');
    expect(reptile(['export', '--checkpoint', ctx.checkpoint, '--out', other]).code).toBe(0);
  });

  it("the demo's own default folder is replaced on each run (npm start twice)", () => {
    const cwd = tempDir('reptile-bad-');
    fs.mkdirSync(path.join(cwd, 'runs', 'sine-demo'), { recursive: true });
    fs.writeFileSync(path.join(cwd, 'runs', 'sine-demo', 'result.json'), 'old');
    const r = reptile(['demo', 'sine', '--meta-iters', '20', '--eval-tasks', '2'], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(cwd, 'runs', 'sine-demo', 'result.json'), 'utf8'))).toHaveProperty('mse');
  });
});

describe.skipIf(!onLinux)('the library under /proc', () => {
  it('refuses a checkpoint folder there at once (Node\'s recursive mkdir spins there)', () => {
    // In a child process with a time limit: the spin is synchronous and would hang the test itself.
    const dist = pathToFileURL(path.resolve(import.meta.dirname, '..', 'dist', 'train', 'checkpoint.js')).href;
    const script = `const { ensureWritableDir } = await import(${JSON.stringify(dist)}); try { ensureWritableDir('/proc/reptile-test/ck'); } catch (e) { console.log(e.message); }`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.signal, 'it hung').toBeNull();
    expect(r.stdout).toMatch(/cannot write checkpoints to '\/proc\/reptile-test\/ck' \(ENOENT\)/);
  });
});

describe.skipIf(redisSkipReason !== undefined)('reptile: a Redis that is not what the URL says', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis({ persistent: false });
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('rediss:// to a plain server says the TLS handshake failed, in seconds', () => {
    const url = `rediss://127.0.0.1:${redis.port}`;
    for (const args of [['worker', '--redis', url], ['train', '--task', 'sine', ...fast, '--executor', 'redis', '--redis', url]]) {
      const r = expectRefused({ name: 'rediss', args: () => args, code: 1, message: /TLS handshake with 127\.0\.0\.1:\d+ got no answer in 3 s: is the server plain redis:\/\/\?/, timeoutMs: 20_000 }, ctx);
      expect(r.stdout).toBe('');
    }
  });

  it('nothing listening is a runtime failure (exit 1), not a usage mistake', () => {
    expectRefused({ name: 'refused', args: () => ['worker', '--redis', 'redis://127.0.0.1:1'], code: 1, message: /cannot reach Redis at 127\.0\.0\.1:1 \(ECONNREFUSED\)/ }, ctx);
  });
});
