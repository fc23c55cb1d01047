import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { reptile } from './helpers/cli.js';
import { tempDir } from './helpers/fixtures.js';

const fast = ['--meta-iters', '5', '--eval-samples', '3', '--eval-iters', '2'];
const digest = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** Asserts the one-line error contract: non-zero exit, one line on stderr naming `pattern`, nothing on stdout. */
function expectOneLineError(args: string[], pattern: RegExp, code = 2): string {
  const r = reptile(args);
  expect(r.code, r.stderr).toBe(code);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^reptile: /);
  expect(lines[0]).toMatch(pattern);
  return lines[0]!;
}

describe('reptile CLI', () => {
  let ckptDir = '';
  let ckptFile = '';
  let ckptHash = '';

  beforeAll(() => {
    ckptDir = tempDir();
    const r = reptile(['train', '--task', 'sine', ...fast, '--checkpoint', ckptDir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    ckptFile = path.join(ckptDir, 'reptile.ckpt');
    ckptHash = digest(ckptFile);
  });

  it('prints help', () => {
    const r = reptile(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/train/);
    expect(r.stdout).toMatch(/demo/);
    expect(reptile(['train', '--help']).stdout).toMatch(/--meta-step-final/);
  });

  it('trains on sine, prints JSON, writes a checkpoint and a log, and resumes a finished run without retraining', () => {
    const dir = tempDir();
    const r = reptile(['train', '--task', 'sine', ...fast, '--checkpoint', dir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { iterations: number; heldOut: { mse: number; samples: number } };
    expect(out.iterations).toBe(5);
    expect(out.heldOut.samples).toBe(3);
    expect(Number.isFinite(out.heldOut.mse)).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n')).toHaveLength(5);
    const again = reptile(['train', '--task', 'sine', ...fast, '--checkpoint', dir]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/resumed at 5/);
  });

  describe('bad input: one line naming the problem and the fix, non-zero exit, nothing damaged', () => {
    const cases: [string, string[], RegExp][] = [
      ['unknown flag', ['train', '--task', 'sine', '--bogus'], /unknown option '--bogus'.*reptile train --help/],
      ['missing value', ['train', '--task', 'sine', '--meta-iters'], /--meta-iters needs a value/],
      ['negative iterations', ['train', '--task', 'sine', '--meta-iters', '-5'], /--meta-iters '-5' is invalid \(expected a whole number from 1 to 1,000,000\)/],
      ['non-numeric iterations', ['train', '--task', 'sine', '--meta-iters', 'ten'], /--meta-iters 'ten' is invalid/],
      ['zero inner iterations', ['train', '--task', 'sine', '--inner-iters', '0'], /--inner-iters '0' is invalid/],
      ['ε above 1', ['train', '--task', 'sine', '--meta-step', '1.5'], /--meta-step '1.5' is invalid \(expected a number in \[0, 1\]\)/],
      ['ε below 0', ['train', '--task', 'sine', '--meta-step-final', '-0.1'], /--meta-step-final '-0.1' is invalid/],
      ['negative learning rate', ['train', '--task', 'sine', '--learning-rate', '-1'], /--learning-rate '-1' is invalid \(expected a positive number\)/],
      ['unknown optimizer', ['train', '--task', 'sine', '--optimizer', 'rmsprop'], /--optimizer 'rmsprop' is invalid \(expected one of sgd, adam\)/],
      ['unknown task', ['train', '--task', 'circle'], /--task 'circle' is invalid \(expected one of sine\)/],
      ['missing task', ['train'], /missing --task.*reptile train --task sine/],
      ['bad layer sizes', ['train', '--task', 'sine', '--hidden', '64x64'], /--hidden '64x64'.*e\.g\. --hidden 64,64/],
      ['unknown command', ['trian'], /unknown command 'trian'.*reptile --help/],
      ['unknown demo', ['demo', 'cosine'], /unknown demo 'cosine'.*reptile demo sine/],
    ];
    for (const [name, args, pattern] of cases) {
      it(name, () => {
        expectOneLineError(args, pattern);
      });
    }

    it('unwritable checkpoint directory', () => {
      const dir = tempDir();
      const file = path.join(dir, 'notes.txt');
      fs.writeFileSync(file, 'precious');
      expectOneLineError(['train', '--task', 'sine', ...fast, '--checkpoint', path.join(file, 'ckpt')], /--checkpoint '.*notes\.txt\/ckpt' is inside a file, '.*notes\.txt': name a path under a folder/, 1);
      expect(fs.readFileSync(file, 'utf8')).toBe('precious');
    });

    it('unwritable log file', () => {
      const dir = tempDir();
      const file = path.join(dir, 'notes.txt');
      fs.writeFileSync(file, 'precious');
      expectOneLineError(['train', '--task', 'sine', ...fast, '--log', path.join(file, 'log.jsonl')], /--log '.*notes\.txt\/log\.jsonl' is inside a file, '.*notes\.txt': name a file in a folder/, 1);
      expect(fs.readFileSync(file, 'utf8')).toBe('precious');
    });

    it('truncated checkpoint', () => {
      const dir = tempDir();
      const file = path.join(dir, 'reptile.ckpt');
      fs.writeFileSync(file, fs.readFileSync(ckptFile).subarray(0, 300));
      const before = digest(file);
      expectOneLineError(['train', '--task', 'sine', ...fast, '--checkpoint', dir], /is corrupt .*delete it to start afresh/, 1);
      expect(digest(file)).toBe(before);
    });

    it('edited checkpoint', () => {
      const dir = tempDir();
      const file = path.join(dir, 'reptile.ckpt');
      const bytes = fs.readFileSync(ckptFile);
      bytes[bytes.length - 64] = bytes[bytes.length - 64]! ^ 0xff;
      fs.writeFileSync(file, bytes);
      expectOneLineError(['train', '--task', 'sine', ...fast, '--checkpoint', dir], /checksum mismatch/, 1);
    });

    it('checkpoint from a different architecture', () => {
      expectOneLineError(['train', '--task', 'sine', ...fast, '--hidden', '32', '--checkpoint', ckptDir], /written for a different model.*same architecture, or a new --checkpoint$/, 1);
      expect(digest(ckptFile)).toBe(ckptHash);
    });

    it('resume with different settings', () => {
      // A usage mistake (exit code 2), the library's option named as the flag.
      expectOneLineError(['train', '--task', 'sine', ...fast, '--learning-rate', '0.5', '--checkpoint', ckptDir], /trained with --learning-rate = 0.02, not 0.5: resume with the same settings, or use a new --checkpoint$/, 2);
      expect(digest(ckptFile)).toBe(ckptHash);
    });
  });
});
