import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { zipSync } from 'fflate';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { tempDir } from '../helpers/fixtures.js';

const root = path.resolve(import.meta.dirname, '..', '..');

/** A fresh temporary directory, removed once the test file's tests have run (see tempDir). */
export function makeTemp(prefix = 'reptile-fewshot-'): string {
  return tempDir(prefix);
}

/** PNG bytes of an RGB image given by `pixel(x, y) → [r, g, b]`. */
export function pngBytes(width: number, height: number, pixel: (x: number, y: number) => [number, number, number]): Uint8Array {
  const png = new PNG({ width, height });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y);
      const i = (y * width + x) * 4;
      png.data[i] = r;
      png.data[i + 1] = g;
      png.data[i + 2] = b;
      png.data[i + 3] = 255;
    }
  }
  return new Uint8Array(PNG.sync.write(png));
}

/** JPEG bytes (quality 100) of an RGB image. */
export function jpegBytes(width: number, height: number, pixel: (x: number, y: number) => [number, number, number]): Uint8Array {
  const data = Buffer.alloc(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y);
      const i = (y * width + x) * 4;
      data[i] = r;
      data[i + 1] = g;
      data[i + 2] = b;
      data[i + 3] = 255;
    }
  }
  return new Uint8Array(jpeg.encode({ data, width, height }, 100).data);
}

/** A 105×105 black-and-white drawing: ink (0) where `ink(x, y)`, paper (255) elsewhere. */
export function drawing(ink: (x: number, y: number) => boolean): Uint8Array {
  return pngBytes(105, 105, (x, y) => (ink(x, y) ? [0, 0, 0] : [255, 255, 255]));
}

/**
 * Writes the two Omniglot archives in the official layout with `alphabets` alphabets per archive,
 * `characters` characters each and `drawings` drawings per character; drawing d of character
 * (a, c) has an ink square whose position encodes a, c and d. Returns the directory.
 */
export function writeOmniglotZips(dir: string, options: { alphabets: number; characters: number; drawings: number; override?: (name: string, bytes: Uint8Array) => Uint8Array }): string {
  for (const [archive, prefix] of [['images_background', 'Back'], ['images_evaluation', 'Eval']] as const) {
    const files: Record<string, Uint8Array> = {};
    for (let a = 0; a < options.alphabets; a++) {
      for (let c = 1; c <= options.characters; c++) {
        for (let d = 1; d <= options.drawings; d++) {
          const name = `${archive}/${prefix}_${a}/character${String(c).padStart(2, '0')}/${String(c).padStart(4, '0')}_${String(d).padStart(2, '0')}.png`;
          const bytes = drawing((x, y) => Math.abs(x - (10 + 8 * c)) < 4 && Math.abs(y - (10 + 8 * d)) < 4);
          files[name] = options.override ? options.override(name, bytes) : bytes;
        }
      }
    }
    fs.writeFileSync(path.join(dir, `${archive}.zip`), zipSync(files, { level: 0 }));
  }
  return dir;
}

/** Writes a class-per-folder image directory: `classes` folders of `perClass` images, the class index in the red channel. */
export function writeImageFolder(dir: string, options: { classes: number; perClass: number; size: number; format?: 'png' | 'jpg' }): string {
  const format = options.format ?? 'png';
  for (let c = 0; c < options.classes; c++) {
    const sub = path.join(dir, `class_${String(c).padStart(2, '0')}`);
    fs.mkdirSync(sub, { recursive: true });
    for (let i = 0; i < options.perClass; i++) {
      const pixel = (x: number, y: number): [number, number, number] => [c * 20, (x * 7 + i * 30) % 256, (y * 5) % 256];
      const bytes = format === 'png' ? pngBytes(options.size, options.size, pixel) : jpegBytes(options.size, options.size, pixel);
      fs.writeFileSync(path.join(sub, `img_${i}.${format}`), bytes);
    }
  }
  return dir;
}

/** Runs the built `reptile` command. */
export function runCli(args: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const entry = path.join(root, 'dist', 'cli', 'main.js');
  const r = spawnSync(process.execPath, [entry, ...args], { cwd: root, encoding: 'utf8', timeout: 240_000, env: { ...process.env, ...env } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
