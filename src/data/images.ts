import { inflateSync } from 'node:zlib';
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
 * Most pixels an image may have (2²⁴, 4096 × 4096; 64 MiB as RGBA). A PNG's header is checked
 * against it before anything is decoded, and JPEG's decoder is given it as its own limit.
 */
export const MAX_IMAGE_PIXELS = 1 << 24;

/**
 * Decodes a PNG or JPEG file's bytes (told apart by their signatures) into RGBA. A file that is
 * neither, is damaged, or has more than {@link MAX_IMAGE_PIXELS} pixels is one clear `DataError`
 * naming the file.
 */
export function decodeImage(bytes: Uint8Array, name: string): RgbaImage {
  const isPng = bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  const isJpeg = bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
  if (isPng) checkPngSize(bytes, name);
  try {
    if (isPng) {
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      return { width: png.width, height: png.height, data: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
    }
    if (isJpeg) {
      const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 256, maxResolutionInMP: MAX_IMAGE_PIXELS / 1e6 });
      return { width: img.width, height: img.height, data: img.data };
    }
  } catch (e) {
    if (e instanceof DataError) throw e;
    const why = e instanceof Error ? e.message : String(e);
    throw new DataError(`cannot decode image '${name}' (${why.split('\n')[0]}): the file is damaged; replace it or download the dataset again`);
  }
  throw new DataError(`'${name}' is not a PNG or JPEG image: remove it from the dataset directory or replace it`);
}

// A PNG's size from its header (the IHDR chunk comes first), checked before the decoder allocates
// for it, and against its compressed pixel data: deflate shrinks data at most 1,032-fold, so a
// header that declares more pixels than its data can hold is refused before the decoder works
// through them. An interlaced PNG is also inflated here with its output bounded, because the
// decoder inflates those without a bound.
function checkPngSize(bytes: Uint8Array, name: string): void {
  if (bytes.length < 33) return; // too short to hold a header: the decoder says it is damaged
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(12, false) !== 0x49484452) return; // not 'IHDR': the decoder refuses it
  const width = view.getUint32(16, false);
  const height = view.getUint32(20, false);
  // An empty side is refused too: a 0 × 2³¹ image would have the decoder walk two billion empty rows.
  if (width < 1 || height < 1 || width * height > MAX_IMAGE_PIXELS) {
    throw new DataError(`image '${name}' declares ${width}×${height} pixels (an image has 1 to ${MAX_IMAGE_PIXELS}): the file is damaged or not a dataset image; replace it`);
  }
  const damaged = (why: string) => new DataError(`cannot decode image '${name}' (${why}): the file is damaged; replace it or download the dataset again`);
  const idat: Uint8Array[] = [];
  let compressed = 0;
  for (let at = 8; at + 8 <= bytes.length; ) {
    const length = view.getUint32(at, false);
    const type = view.getUint32(at + 4, false);
    if (type === 0x49444154) {
      const data = bytes.subarray(at + 8, Math.min(bytes.length, at + 8 + length));
      idat.push(data);
      compressed += data.length;
    }
    if (type === 0x49454e44) break;
    at += 12 + length;
  }
  // Bits per pixel: channels of the colour type (grey, -, RGB, palette, grey+alpha, -, RGBA) times the depth.
  const channels = [1, 0, 3, 1, 2, 0, 4][bytes[25]!] ?? 0;
  const pixelBytes = Math.ceil((width * height * channels * bytes[24]!) / 8);
  if (pixelBytes > (compressed + 64) * 1032) throw damaged(`its ${compressed} bytes of pixel data cannot hold ${width}×${height} pixels`);
  if (bytes[28] === 0) return;
  try {
    // 8 bytes per pixel (16-bit RGBA) is the most, plus a filter byte per row of each of the 7 passes.
    inflateSync(Buffer.concat(idat), { maxOutputLength: width * height * 8 + 16 * height + 64 });
  } catch (e) {
    throw damaged((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? 'its pixels inflate to more than its size allows' : (e as Error).message);
  }
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
