import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { DataError } from '../_utils/errors.js';

/** A decoded image: `width × height` pixels, RGBA, 8 bits per channel. */
export interface RgbaImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/**
 * Decodes a PNG or JPEG file's bytes (told apart by their signatures) into RGBA. A file that is
 * neither, or is damaged, is one clear `DataError` naming the file.
 */
export function decodeImage(bytes: Uint8Array, name: string): RgbaImage {
  const isPng = bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  const isJpeg = bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
  try {
    if (isPng) {
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      return { width: png.width, height: png.height, data: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
    }
    if (isJpeg) {
      const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 256 });
      return { width: img.width, height: img.height, data: img.data };
    }
  } catch (e) {
    throw new DataError(`cannot decode image '${name}' (${(e as Error).message.split('\n')[0]}): the file is damaged; replace it or download the dataset again`);
  }
  throw new DataError(`'${name}' is not a PNG or JPEG image: remove it from the dataset directory or replace it`);
}

/**
 * Nearest-neighbour resize of a single channel, sampling the source pixel under each target
 * pixel's centre: source index ⌊(t + ½)·in/out⌋. This is what PIL's `Image.resize` does for
 * 1-bit images (it always uses NEAREST for mode '1'), which is how supervised-reptile shrinks
 * Omniglot's 105×105 drawings to 28×28.
 */
export function resizeNearest(src: Uint8Array, width: number, height: number, outW: number, outH: number): Uint8Array {
  const out = new Uint8Array(outW * outH);
  for (let y = 0; y < outH; y++) {
    const sy = Math.min(height - 1, Math.floor(((y + 0.5) * height) / outH));
    for (let x = 0; x < outW; x++) {
      const sx = Math.min(width - 1, Math.floor(((x + 0.5) * width) / outW));
      out[y * outW + x] = src[sy * width + sx]!;
    }
  }
  return out;
}

/** The red channel of an RGBA image as one channel (for black-and-white drawings). */
export function firstChannel(img: RgbaImage): Uint8Array {
  const out = new Uint8Array(img.width * img.height);
  for (let i = 0; i < out.length; i++) out[i] = img.data[i * 4]!;
  return out;
}

/** Converts RGBA to `channels` channels: 3 drops alpha, 1 averages R, G and B. */
export function toChannels(img: RgbaImage, channels: 1 | 3): Uint8Array {
  const n = img.width * img.height;
  const out = new Uint8Array(n * channels);
  for (let i = 0; i < n; i++) {
    const r = img.data[i * 4]!;
    const g = img.data[i * 4 + 1]!;
    const b = img.data[i * 4 + 2]!;
    if (channels === 3) {
      out[i * 3] = r;
      out[i * 3 + 1] = g;
      out[i * 3 + 2] = b;
    } else {
      out[i] = Math.round((r + g + b) / 3);
    }
  }
  return out;
}

/** Lower-case file extension test for the image files loaders accept. */
export function isImageFile(name: string): boolean {
  return /\.(png|jpe?g)$/i.test(name);
}
