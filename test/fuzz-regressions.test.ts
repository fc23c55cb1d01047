// The inputs fuzzing (and its review) found that crashed, hung or over-allocated a decoder, each
// reproduced exactly: every one now ends in the library's typed error, or in a reason, quickly.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { parseIdx } from '../src/data/idx.js';
import { decodeImage } from '../src/data/images.js';
import { omniglotZipCharacters } from '../src/data/omniglot.js';
import { MAX_ZIP_ENTRIES } from '../src/data/zip.js';
import { checkJob, checkResult, jobDigest } from '../src/exec/job.js';
import { checkSpec } from '../src/exec/redis/codec.js';
import { loadFewShotCheckpoint } from '../src/recipes/few-shot/checkpoint.js';
import { decodeCheckpoint } from '../src/train/checkpoint.js';
import { CheckpointError, DataError } from '../src/_utils/errors.js';
import { buildCheckpoint, checkpointSeeds, omniglotPng, splitCheckpoint, withPngCrcs } from './fuzz/targets.js';

const hex = (s: string) => Uint8Array.from(s.match(/../g)!, (b) => parseInt(b, 16));

/** Runs `f`, which must throw `typed` (a hang is left to the test's time limit; the message shows the check that refused it). */
function refusedQuickly(f: () => unknown, typed: new (...args: never[]) => Error): Error {
  let error: unknown;
  try {
    f();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(typed);
  return error as Error;
}

describe('PNG', () => {
  it('a header of 0 × 2³¹ pixels is refused before the decoder walks its rows (it took 249 s)', () => {
    const png = hex(
      '89504e470d0a1a0a0000000d49484452000000008000001010000000002bf3fd59000000a0494441547801edc1a191c3301445d11b0579264864996a307f35b80677211cbaea61416a58b6a1790588861a85a886fcf17852c59e737a7cabb61be8a5cac1c3bf5057703bffdc41b3fb7671d7ccae4c94ede9aeb928113cea4a7023b881b2166837385faf5026d0ecbe5df82b2a229489b23ddd131f7a81bfd87980b216480437826a5dc183a04c50d69208aa1cb428f3e1a69c38781094d9b91154f977780335033699597fad6b0000000049454e44ae426082',
    );
    expect(refusedQuickly(() => decodeImage(png, 'x.png'), DataError).message).toMatch(/declares 0×2147483664 pixels/);
  });

  it('a header of 131075 × 8 16-bit RGBA pixels over 42 bytes of data is refused before decoding (2 s per call)', () => {
    const png = Uint8Array.from([
      137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 2, 0, 3, 0, 0, 0, 8, 16, 6, 0, 0, 0, 128, 68, 7, 160, 0, 0, 0, 42, 73, 68, 65, 84, 120, 1, 189, 193, 177, 1, 0, 32, 12, 195, 48, 211, 207, 146, 195, 243, 90, 97,
      100, 40, 43, 210, 146, 90, 125, 36, 132, 75, 37, 132, 65, 241, 80, 12, 108, 204, 7, 27, 217, 109, 11, 0, 216, 186, 240, 25, 0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130,
    ]);
    expect(refusedQuickly(() => decodeImage(png, 'x.png'), DataError).message).toMatch(/42 bytes of pixel data cannot hold 131075×8 pixels/);
  });

  it('a header declaring more pixels than an image may have is refused before anything is allocated', () => {
    const png = omniglotPng(1);
    new DataView(png.buffer).setUint32(16, 50_000, false);
    new DataView(png.buffer).setUint32(20, 50_000, false);
    expect(refusedQuickly(() => decodeImage(withPngCrcs(png), 'x.png'), DataError).message).toMatch(/declares 50000×50000 pixels \(an image has 1 to 16777216\)/);
  });

  it('a valid drawing still decodes', () => {
    const img = decodeImage(omniglotPng(2), 'x.png');
    expect([img.width, img.height, img.data.length]).toEqual([105, 105, 105 * 105 * 4]);
  });
});

describe('zip archives', () => {
  const archive = () => new Uint8Array(zipSync({ 'images_background/A/character01/x.png': omniglotPng(1) }, { level: 6 }));

  it('an entry that declares 4 GiB is refused before it is allocated', () => {
    const zip = archive();
    const view = new DataView(zip.buffer);
    // The central directory's uncompressed size of the one entry (offset 24 of its header).
    const cd = view.getUint32(zip.length - 22 + 16, true);
    view.setUint32(cd + 24, 0xfffffff0, true);
    expect(refusedQuickly(() => omniglotZipCharacters(zip, 'x.zip'), DataError).message).toMatch(/has an entry of 4294967280 bytes, more than the 16 MiB/);
  });

  it('a zip64 directory that claims 4 billion entries is refused after the stated limit instead of looping over them', () => {
    const zip = archive();
    const eocd = zip.length - 22;
    const cdOffset = new DataView(zip.buffer).getUint32(eocd + 16, true);
    // A zip64 end record (56 bytes) and its locator (20 bytes) put before the end record.
    const z64 = new Uint8Array(76);
    const v = new DataView(z64.buffer);
    v.setUint32(0, 0x06064b50, true);
    v.setUint32(32, 0xffffffff, true); // total entries
    v.setUint32(48, cdOffset, true);
    v.setUint32(56, 0x07064b50, true);
    v.setUint32(64, eocd, true); // where the zip64 end record starts
    const forged = new Uint8Array(zip.length + 76);
    forged.set(zip.subarray(0, eocd));
    forged.set(z64, eocd);
    forged.set(zip.subarray(eocd), eocd + 76);
    expect(refusedQuickly(() => omniglotZipCharacters(forged, 'x.zip'), DataError).message).toMatch(new RegExp(`lists more than ${MAX_ZIP_ENTRIES} entries`));
  });
});

describe('IDX', () => {
  it('a header declaring more than 1 GiB of values is refused with the limit named', () => {
    const idx = Uint8Array.from([0, 0, 0x0e, 2, 0, 1, 0, 0, 0, 1, 0, 0, 1, 2, 3]);
    expect(refusedQuickly(() => parseIdx(idx, 'x.idx'), DataError).message).toMatch(/declares 4294967296 values \[65536, 65536\], more than the 1024 MiB/);
  });
});

describe('the wire', () => {
  const spec = { runId: 'r1', learner: { kind: 'native', modelTopology: {}, innerState: 'shared', batchStatsAtTest: true, layout: { hash: 'h', size: 2 }, backend: 'cpu' }, source: {} } as const;

  it('a job whose run id is an object that cannot become a string is rejected with a reason (it threw a TypeError)', () => {
    // The counterexample found, as the worker parses it from the queue.
    const job = JSON.parse(
      '{"runId":{"toString":0},"seed":42,"transductive":false,"wantLastStep":true,"kind":"adapt","iteration":3,"taskIndices":[1],"inner":{"optimizer":"adam","learningRate":0.001,"innerIters":5,"innerBatch":10,"beta1":0},"digest":"f79fd070ce57d311","state":{"kind":"adam","step":3,"m":true,"v":true}}',
    ) as Record<string, unknown>;
    expect(checkJob({ ...job, phi: new Uint8Array(8) }, { spec: spec as never })).toBe('the job is for run an object, not \'r1\'');
  });

  it('a run spec whose run id is such an object is refused with a reason', () => {
    expect(checkSpec(JSON.parse('{"runId":{"toString":null},"learner":{}}') as never, 'r1')).toBe('its spec names run an object');
  });

  it('a result whose run id or outcome state is hostile is thrown away with a reason', () => {
    const phi = new Uint8Array(8);
    const job = { runId: 'r1', kind: 'adapt' as const, iteration: 3, digest: jobDigest(phi, undefined), taskIndices: [1] };
    const expect_ = { job, layout: { hash: 'h', size: 2 }, wantState: true };
    expect(checkResult({ ...job, runId: { toString: [] }, layoutHash: 'h', outcomes: [] }, expect_)).toBe("the result is for run an object, not 'r1'");
    const outcome = { taskIndex: 1, loss: 0.5, params: new Uint8Array(8), lastStep: new Uint8Array(8), state: null };
    expect(checkResult({ ...job, layoutHash: 'h', outcomes: [outcome] }, expect_)).toMatch(/optimizer state is missing or malformed/);
  });
});

describe('checkpoints', () => {
  it('a header whose iteration cannot become a string is a CheckpointError (it threw a TypeError)', () => {
    const { header, payload } = splitCheckpoint(checkpointSeeds()[1]!);
    const bytes = buildCheckpoint({ ...(header as object), iteration: { toString: 0 } }, payload);
    expect(refusedQuickly(() => decodeCheckpoint(Buffer.from(bytes), 'x.ckpt'), CheckpointError).message).toMatch(/bad iteration an object/);
  });

  it('a negative optimizer step is a CheckpointError', () => {
    const { header, payload } = splitCheckpoint(checkpointSeeds()[1]!);
    const h = header as { optimizer: { step: number } };
    expect(() => decodeCheckpoint(Buffer.from(buildCheckpoint({ ...h, optimizer: { ...h.optimizer, step: -1 } }, payload)), 'x.ckpt')).toThrow(/bad optimizer state/);
  });

  it("a few-shot checkpoint naming a network too large to build, or of a hostile kind, is refused before it is built", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reptile-fuzz-'));
    try {
      const { header, payload } = splitCheckpoint(checkpointSeeds()[0]!);
      const meta = { fewShot: { classes: 5, shots: 1, evalBatch: 5, evalIters: 50, transductive: true }, data: { dataset: 'omniglot', dataDir: '/d' }, modelKind: 'omniglot', inputShape: [28, 28, 1], config: { seed: 0, innerState: 'carry' } };
      const write = (m: object) => fs.writeFileSync(path.join(dir, 'reptile.ckpt'), buildCheckpoint({ ...(header as object), meta: m }, payload));
      write({ ...meta, inputShape: [100_000, 100_000, 1] });
      expect(refusedQuickly(() => loadFewShotCheckpoint(dir), CheckpointError).message).toMatch(/input shape \[100000, 100000, 1\] is not \[height, width, channels\]/);
      write({ ...meta, modelKind: { toString: 0 } });
      expect(refusedQuickly(() => loadFewShotCheckpoint(dir), CheckpointError).message).toMatch(/unknown network an object/);
      write({ ...meta, fewShot: { ...meta.fewShot, classes: 'five' } });
      expect(refusedQuickly(() => loadFewShotCheckpoint(dir), CheckpointError).message).toMatch(/classes per task/);
      // The same description with a sound network reaches the layout check (this checkpoint's φ is not an Omniglot network's).
      write(meta);
      expect(() => loadFewShotCheckpoint(dir, { learner: 'tfjs' })).toThrow(/does not fit the omniglot network it names/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
