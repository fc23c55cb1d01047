import * as fs from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../core/rng.js';
import { DataError } from '../_utils/errors.js';
import { pythonShuffle } from './python-random.js';
import { ArrayDataset, subsetClasses, withRotations, type LabeledDataset } from '../tasks/labeled.js';
import { defaultCacheDir, readCache, writeCache } from './cache.js';
import { decodeImage, firstChannel, resizeNearest } from './images.js';
import { requireDataFolder } from './data-dir.js';
import { readZipEntries } from './zip.js';

/** The two official archives; both are merged (1,623 characters), as supervised-reptile does. */
export const OMNIGLOT_ARCHIVES = ['images_background.zip', 'images_evaluation.zip'] as const;
/** Side of the stored drawings and of the network's input. */
export const OMNIGLOT_SOURCE_SIZE = 105;
export const OMNIGLOT_SIZE = 28;
const CACHE_VERSION = 1;

/** Options of `loadOmniglot`. */
export interface OmniglotLoadOptions {
  /** Directory holding the two official zips, or their extracted `images_background/` and `images_evaluation/` folders. */
  dir: string;
  /** Where the decoded 28×28 images are cached (default `defaultCacheDir()`); `false` disables the cache. */
  cacheDir?: string | false;
  /** Progress lines (e.g. "decoding ..."). */
  log?: (line: string) => void;
}

/** What `loadOmniglot` returns: every character as a class, and where the images came from. */
export interface OmniglotData {
  /** 1,623 classes (for the official archives) of 28×28×1 binary images: 1 = white paper, 0 = ink. */
  dataset: ArrayDataset;
  names: string[];
  fromCache: boolean;
  cacheFile?: string;
  /** Why the decoded images could not be cached, when they could not. */
  cacheProblem?: string;
}

interface RawCharacter {
  name: string;
  files: { name: string; read: () => Uint8Array }[];
}

/**
 * Loads Omniglot (Lake et al. 2015) as supervised-reptile prepares it: both archives merged,
 * characters ordered by alphabet then character name, each 105×105 drawing shrunk to 28×28 by
 * nearest-neighbour sampling (PIL resizes 1-bit images that way) and kept binary, 1 for paper
 * and 0 for ink (`np.array` of a mode-'1' image). The decoded images are cached in `cacheDir`
 * keyed by the archives' names, sizes and modification times, so later loads skip decoding.
 */
export function loadOmniglot(options: OmniglotLoadOptions): OmniglotData {
  const dir = requireDataFolder(options.dir, 'Omniglot directory', `a folder with images_background.zip and images_evaluation.zip (fetch them with 'reptile data omniglot --download --dir DIR')`);
  const sources = OMNIGLOT_ARCHIVES.map((zip) => {
    const zipPath = path.join(dir, zip);
    const folder = path.join(dir, zip.replace(/\.zip$/, ''));
    if (fs.existsSync(zipPath)) return { kind: 'zip' as const, path: zipPath };
    if (fs.existsSync(folder) && fs.statSync(folder).isDirectory()) return { kind: 'folder' as const, path: folder };
    throw new DataError(`'${dir}' has neither ${zip} nor its extracted folder: download it with 'reptile data omniglot --download --dir ${dir}'`);
  });
  const key = sources.map((s) => {
    const st = fs.statSync(s.path);
    return `${path.basename(s.path)}:${st.size}:${Math.round(st.mtimeMs)}`;
  });
  const cacheFile = options.cacheDir === false ? undefined : path.join(options.cacheDir ?? defaultCacheDir(), `omniglot-${OMNIGLOT_SIZE}-v${CACHE_VERSION}.bin`);
  if (cacheFile !== undefined) {
    const cached = readCache(cacheFile);
    const h = cached?.header;
    if (cached && h && JSON.stringify(h['key']) === JSON.stringify(key) && Array.isArray(h['names']) && Array.isArray(h['counts'])) {
      const names = h['names'] as string[];
      const counts = h['counts'] as number[];
      const dataset = new ArrayDataset({ inputShape: [OMNIGLOT_SIZE, OMNIGLOT_SIZE, 1], pixels: cached.payload, counts, names });
      return { dataset, names, fromCache: true, cacheFile };
    }
  }
  options.log?.(`decoding Omniglot from ${dir} (once; later loads use the cache)`);
  const characters = sources.flatMap((s) => (s.kind === 'zip' ? readZip(s.path) : readFolder(s.path)));
  characters.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (characters.length === 0) throw new DataError(`no Omniglot characters found in '${dir}': the archives hold no <alphabet>/<character>/*.png drawings; download them again`);
  const side = OMNIGLOT_SIZE;
  const counts = characters.map((c) => c.files.length);
  const pixels = new Uint8Array(counts.reduce((a, b) => a + b, 0) * side * side);
  let offset = 0;
  for (const ch of characters) {
    for (const file of ch.files) {
      pixels.set(decodeOmniglotDrawing(file.read(), file.name), offset);
      offset += side * side;
    }
  }
  const names = characters.map((c) => c.name);
  const dataset = new ArrayDataset({ inputShape: [side, side, 1], pixels, counts, names });
  if (cacheFile === undefined) return { dataset, names, fromCache: false };
  const problem = writeCache(cacheFile, { format: 'omniglot', version: CACHE_VERSION, key, names, counts }, pixels);
  if (problem !== undefined) options.log?.(`could not write the Omniglot cache '${cacheFile}' (${problem}); point the cache (REPTILE_CACHE, the \`cacheDir\` option or --cache-dir) at a writable folder to make later loads fast`);
  return { dataset, names, fromCache: false, cacheFile, ...(problem !== undefined ? { cacheProblem: problem } : {}) };
}

/** One Omniglot drawing's PNG bytes as 28×28 binary pixels (1 paper, 0 ink); a bad file is a `DataError`. */
export function decodeOmniglotDrawing(bytes: Uint8Array, name: string): Uint8Array {
  const img = decodeImage(bytes, name);
  if (img.width !== OMNIGLOT_SOURCE_SIZE || img.height !== OMNIGLOT_SOURCE_SIZE) {
    throw new DataError(`Omniglot image '${name}' is ${img.width}×${img.height}, not ${OMNIGLOT_SOURCE_SIZE}×${OMNIGLOT_SOURCE_SIZE}: the archive is not the official one; download it again`);
  }
  const gray = firstChannel(img);
  for (let i = 0; i < gray.length; i++) gray[i] = gray[i]! >= 128 ? 1 : 0;
  return resizeNearest(gray, img.width, img.height, OMNIGLOT_SIZE, OMNIGLOT_SIZE);
}

function addDrawing(groups: Map<string, RawCharacter>, rel: string, read: () => Uint8Array): void {
  // <archive>/<alphabet>/<character>/<drawing>.png; anything else in the archive is ignored.
  const parts = rel.split('/').filter((p) => p !== '');
  if (parts.length < 3 || !parts[parts.length - 1]!.toLowerCase().endsWith('.png')) return;
  const character = parts[parts.length - 2]!;
  const alphabet = parts[parts.length - 3]!;
  if (!character.startsWith('character')) return;
  const name = `${alphabet}/${character}`;
  const group = groups.get(name) ?? { name, files: [] };
  group.files.push({ name: rel, read });
  groups.set(name, group);
}

function finish(groups: Map<string, RawCharacter>): RawCharacter[] {
  const list = [...groups.values()];
  for (const g of list) g.files.sort((a, b) => (a.name < b.name ? -1 : 1));
  return list;
}

function readZip(file: string): RawCharacter[] {
  return omniglotZipCharacters(fs.readFileSync(file), file);
}

/** The drawings of an Omniglot zip archive's bytes, grouped by character (not yet decoded). */
export function omniglotZipCharacters(bytes: Uint8Array, file: string): { name: string; files: { name: string; read: () => Uint8Array }[] }[] {
  const entries = readZipEntries(bytes, file, (name) => name.toLowerCase().endsWith('.png'));
  const groups = new Map<string, RawCharacter>();
  for (const [name, png] of Object.entries(entries)) addDrawing(groups, name, () => png);
  return finish(groups);
}

function readFolder(dir: string): RawCharacter[] {
  const groups = new Map<string, RawCharacter>();
  const walk = (sub: string) => {
    for (const entry of fs.readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const rel = sub === '' ? entry.name : `${sub}/${entry.name}`;
      if (entry.isDirectory()) walk(rel);
      else addDrawing(groups, `${path.basename(dir)}/${rel}`, () => fs.readFileSync(path.join(dir, rel)));
    }
  };
  walk('');
  return finish(groups);
}

/** Options of `splitOmniglot`. */
export interface OmniglotSplitOptions {
  dataset: LabeledDataset;
  seed: number;
  /** Characters used for meta-training (default 1,200, the rest test). */
  numTrain?: number;
  /** Augment the training characters with 90° rotations (default true). */
  rotate?: boolean;
  /** How the seed orders the characters (default `seeded`); see `OmniglotClassSplit`. */
  classSplit?: OmniglotClassSplit;
}

/**
 * How the seed picks the training characters. `seeded`: the library's own generator shuffles the
 * characters in the order the archives list them (the default, which the committed runs used).
 * `supervised-reptile`: Python's `random.seed(seed)` and `random.shuffle` over the characters
 * sorted by alphabet and name, as supervised-reptile's `read_dataset` and `split_dataset` do, so
 * that seed 0 gives the paper's exact 1,200 training and 423 test characters.
 */
export type OmniglotClassSplit = 'seeded' | 'supervised-reptile';

/** The ways `splitOmniglot` can order the characters. */
export const OMNIGLOT_CLASS_SPLITS: readonly OmniglotClassSplit[] = ['seeded', 'supervised-reptile'];

/**
 * supervised-reptile's split: the characters shuffled by the seed, the first 1,200 for training
 * and the rest (423 for the official archives) for testing; the training characters are then
 * augmented with rotations by 0/90/180/270° (each rotation its own class, so 4,800 classes),
 * the test characters are not. Returns the character indices of each side too.
 */
export function splitOmniglot(options: OmniglotSplitOptions): { train: LabeledDataset; test: LabeledDataset; trainClasses: number[]; testClasses: number[] } {
  const numTrain = options.numTrain ?? 1200;
  const n = options.dataset.numClasses;
  if (!Number.isInteger(numTrain) || numTrain < 1 || numTrain >= n) {
    throw new DataError(`cannot split ${n} Omniglot characters into ${numTrain} for training and the rest for testing: the dataset is incomplete; use the official archives`);
  }
  const order = options.classSplit === 'supervised-reptile' ? pythonOrder(options.dataset, options.seed) : Rng.derive(options.seed, 0x0a11).shuffle(Array.from({ length: n }, (_, i) => i));
  const trainClasses = order.slice(0, numTrain);
  const testClasses = order.slice(numTrain);
  const trainBase = subsetClasses(options.dataset, trainClasses);
  return {
    train: options.rotate === false ? trainBase : withRotations(trainBase),
    test: subsetClasses(options.dataset, testClasses),
    trainClasses,
    testClasses,
  };
}

// supervised-reptile lists the characters alphabet by alphabet and, within one, by name (both
// sorted), then shuffles that list with Python's generator.
function pythonOrder(dataset: LabeledDataset, seed: number): number[] {
  const keys = Array.from({ length: dataset.numClasses }, (_, c) => {
    const parts = dataset.className(c).split('/');
    if (parts.length !== 2) throw new DataError(`the Omniglot class '${dataset.className(c)}' is not named <alphabet>/<character>: the supervised-reptile split needs the official archives' names`);
    return { c, alphabet: parts[0]!, character: parts[1]! };
  });
  const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  keys.sort((a, b) => byCodePoint(a.alphabet, b.alphabet) || byCodePoint(a.character, b.character));
  return pythonShuffle(keys.map((k) => k.c), seed);
}
