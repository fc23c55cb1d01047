import * as fs from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../core/rng.js';
import { DataError } from '../_utils/errors.js';
import { ArrayDataset, subsetClasses, type LabeledDataset } from '../tasks/labeled.js';
import { decodeImage, isImageFile, toChannels } from './images.js';
import { requireDataFolder } from './data-dir.js';

/** Options of `loadImageFolder`. */
export interface ImageFolderOptions {
  /** A directory with one sub-folder of PNG or JPEG images per class. */
  dir: string;
  /** Required image size [height, width]; default: the size of the first image, which all must share. */
  size?: readonly [number, number];
  /** 3 for colour (default), 1 for grey (mean of R, G, B). */
  channels?: 1 | 3;
}

/**
 * Any class-per-folder image directory as a `LabeledDataset`: each sub-folder of `dir` that holds
 * PNG or JPEG files is a class (sorted by name), its images decoded into memory as 8-bit values
 * and scaled to [0, 1] on load (pixel / 255, as supervised-reptile does for Mini-ImageNet). All
 * images must have one size; a missing folder, an undecodable file or a differently sized image
 * stops with one line naming it.
 */
export function loadImageFolder(options: ImageFolderOptions): ArrayDataset {
  const dir = requireDataFolder(options.dir, 'image directory', 'a folder with one sub-folder of images per class');
  const channels = options.channels ?? 3;
  const classes = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => ({ name: e.name, files: fs.readdirSync(path.join(dir, e.name)).filter(isImageFile).sort() }))
    .filter((c) => c.files.length > 0)
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  if (classes.length === 0) throw new DataError(`'${dir}' has no class folders with PNG or JPEG images: put each class's images in its own sub-folder`);
  let size = options.size;
  const chunks: Uint8Array[] = [];
  for (const cls of classes) {
    for (const file of cls.files) {
      const full = path.join(dir, cls.name, file);
      const img = decodeImage(fs.readFileSync(full), full);
      size ??= [img.height, img.width];
      if (img.height !== size[0] || img.width !== size[1]) {
        throw new DataError(`image '${full}' is ${img.width}×${img.height}, but ${size[1]}×${size[0]} is expected: resize all images of the dataset to one size`);
      }
      chunks.push(toChannels(img, channels));
    }
  }
  const per = size![0] * size![1] * channels;
  const pixels = new Uint8Array(chunks.length * per);
  chunks.forEach((c, i) => pixels.set(c, i * per));
  return new ArrayDataset({ inputShape: [size![0], size![1], channels], pixels, counts: classes.map((c) => c.files.length), scale: 1 / 255, names: classes.map((c) => c.name) });
}

/** Options of `loadMiniImageNet`. */
export interface MiniImageNetOptions {
  /** The directory with `train/`, `val/` and `test/`, each one folder of images per class. */
  dir: string;
  /** Image side (default 84, the paper's). */
  size?: number;
}

/**
 * Mini-ImageNet in its usual layout (Ravi & Larochelle's split: 64 train, 16 val, 20 test
 * classes of 84×84 colour images), each split a class-per-folder directory; pixels / 255.
 */
export function loadMiniImageNet(options: MiniImageNetOptions): { train: ArrayDataset; val: ArrayDataset; test: ArrayDataset } {
  requireDataFolder(options.dir, 'Mini-ImageNet directory', 'a folder with train/, val/ and test/, one sub-folder per class in each');
  const side = options.size ?? 84;
  const open = (split: string) => {
    const dir = path.join(options.dir, split);
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new DataError(`Mini-ImageNet directory '${options.dir}' has no '${split}/' folder: it needs train/, val/ and test/, one sub-folder per class`);
    return loadImageFolder({ dir, size: [side, side], channels: 3 });
  };
  return { train: open('train'), val: open('val'), test: open('test') };
}

/** A seeded split of a folder dataset's classes: the first ⌈fraction·n⌉ shuffled classes train, the rest test. */
export function splitFolder(options: { dataset: LabeledDataset; seed: number; trainFraction?: number }): { train: LabeledDataset; test: LabeledDataset } {
  const n = options.dataset.numClasses;
  const numTrain = Math.min(n - 1, Math.max(1, Math.ceil((options.trainFraction ?? 0.7) * n)));
  if (n < 2) throw new DataError(`the image folder has ${n} class, too few to split into training and test classes: add class folders`);
  const order = Rng.derive(options.seed, 0xf01d).shuffle(Array.from({ length: n }, (_, i) => i));
  return { train: subsetClasses(options.dataset, order.slice(0, numTrain)), test: subsetClasses(options.dataset, order.slice(numTrain)) };
}
