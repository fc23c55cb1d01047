import * as tf from '@tensorflow/tfjs';
import { UnsupportedModelError } from '../_utils/errors.js';

type TensorInfo = tf.TensorInfo;

// The parts of tfjs-backend-wasm's BackendWasm these kernels use (public methods of that class).
interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
  disposeData(dataId: tf.DataId): boolean;
}

interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** Geometry of a 2-D convolution (NHWC, dilation 1) as im2col sees it. */
export interface ConvGeometry {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  outC: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  top: number;
  left: number;
}

function geometry(xShape: number[], filterShape: number[], attrs: ConvAttrs): ConvGeometry {
  if (attrs.dataFormat !== 'NHWC') throw new UnsupportedModelError(`the wasm backend's convolution gradients support only NHWC (channelsLast) data, got ${attrs.dataFormat}: use channelsLast or another tfjs backend`);
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  return {
    batch: info.batchSize,
    inH: info.inHeight,
    inW: info.inWidth,
    inC: info.inChannels,
    outH: info.outHeight,
    outW: info.outWidth,
    outC: info.outChannels,
    kH: info.filterHeight,
    kW: info.filterWidth,
    strideH: info.strideHeight,
    strideW: info.strideWidth,
    top: info.padInfo.top,
    left: info.padInfo.left,
  };
}

/**
 * Unfolds an NHWC image batch into patch rows: row p = (n, oh, ow) holds the kH·kW·inC input
 * values under the filter at that output position, in the filter's (kh, kw, c) order, zero where
 * the patch hangs over the padding. Then a convolution is one matrix product with the filter.
 */
export function im2col(x: Float32Array, g: ConvGeometry, col: Float32Array): void {
  const k = g.kH * g.kW * g.inC;
  let row = 0;
  for (let n = 0; n < g.batch; n++) {
    const xn = n * g.inH * g.inW * g.inC;
    for (let oh = 0; oh < g.outH; oh++) {
      for (let ow = 0; ow < g.outW; ow++, row++) {
        let o = row * k;
        for (let i = 0; i < g.kH; i++) {
          const ih = oh * g.strideH - g.top + i;
          for (let j = 0; j < g.kW; j++) {
            const iw = ow * g.strideW - g.left + j;
            if (ih < 0 || ih >= g.inH || iw < 0 || iw >= g.inW) {
              col.fill(0, o, o + g.inC);
            } else {
              const src = xn + (ih * g.inW + iw) * g.inC;
              for (let c = 0; c < g.inC; c++) col[o + c] = x[src + c]!;
            }
            o += g.inC;
          }
        }
      }
    }
  }
}

/** The adjoint of `im2col`: adds every patch row back onto the image positions it came from. */
export function col2im(col: Float32Array, g: ConvGeometry, x: Float32Array): void {
  x.fill(0);
  const k = g.kH * g.kW * g.inC;
  let row = 0;
  for (let n = 0; n < g.batch; n++) {
    const xn = n * g.inH * g.inW * g.inC;
    for (let oh = 0; oh < g.outH; oh++) {
      for (let ow = 0; ow < g.outW; ow++, row++) {
        let o = row * k;
        for (let i = 0; i < g.kH; i++) {
          const ih = oh * g.strideH - g.top + i;
          for (let j = 0; j < g.kW; j++, o += g.inC) {
            const iw = ow * g.strideW - g.left + j;
            if (ih < 0 || ih >= g.inH || iw < 0 || iw >= g.inW) continue;
            const dst = xn + (ih * g.inW + iw) * g.inC;
            for (let c = 0; c < g.inC; c++) x[dst + c]! += col[o + c]!;
          }
        }
      }
    }
  }
}

function batchMatMul(backend: WasmBackend, a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): TensorInfo {
  // tfjs-backend-wasm registers BatchMatMul whenever it registers the backend: an invariant.
  const kernel = tf.getKernel('BatchMatMul', 'wasm');
  if (!kernel) throw new Error("the wasm backend has no 'BatchMatMul' kernel");
  return kernel.kernelFunc({ inputs: { a, b }, backend: backend as unknown as tf.KernelBackend, attrs: { transposeA, transposeB } }) as TensorInfo;
}

// dW[kh, kw, c, o] = Σ_p col[p, (kh, kw, c)] · dy[p, o]: one product of the unfolded input with dy.
function conv2DBackpropFilter(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const attrs = args.attrs as unknown as ConvAttrs & { filterShape: number[] };
  const g = geometry(x.shape, attrs.filterShape, attrs);
  const rows = g.batch * g.outH * g.outW;
  const k = g.kH * g.kW * g.inC;
  const col = backend.makeOutput([1, rows, k], 'float32');
  // Views of the wasm heap are taken after the allocation above, which may have grown (and so
  // detached) the heap.
  im2col(backend.typedArrayFromHeap(x), g, backend.typedArrayFromHeap(col));
  const dy3: TensorInfo = { dataId: dy.dataId, shape: [1, rows, g.outC], dtype: 'float32' };
  const out = batchMatMul(backend, col, dy3, true, false);
  backend.disposeData(col.dataId);
  return { dataId: out.dataId, shape: [...attrs.filterShape], dtype: 'float32' };
}

// dcol = dy · Wᵀ (patch gradients), then col2im adds each patch gradient back onto the input.
function conv2DBackpropInput(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const attrs = args.attrs as unknown as ConvAttrs & { inputShape: number[] };
  const g = geometry(attrs.inputShape, filter.shape, attrs);
  const rows = g.batch * g.outH * g.outW;
  const k = g.kH * g.kW * g.inC;
  const dy2: TensorInfo = { dataId: dy.dataId, shape: [1, rows, g.outC], dtype: 'float32' };
  const w2: TensorInfo = { dataId: filter.dataId, shape: [1, k, g.outC], dtype: 'float32' };
  const dcol = batchMatMul(backend, dy2, w2, false, true);
  const out = backend.makeOutput([...attrs.inputShape], 'float32');
  col2im(backend.typedArrayFromHeap({ ...dcol, shape: [rows, k] }), g, backend.typedArrayFromHeap(out));
  backend.disposeData(dcol.dataId);
  return out;
}

let registered = false;

/**
 * Registers im2col + matrix-product kernels for `Conv2DBackpropFilter` (which tfjs-backend-wasm
 * lacks, so conv nets cannot be trained on it) and `Conv2DBackpropInput` (whose wasm version is a
 * direct loop) with the wasm backend. The matrix product is the backend's own XNNPACK
 * `BatchMatMul`; the unfolding runs in JS. Call after the wasm backend is importable; calling
 * again does nothing.
 */
export function registerWasmConvKernels(): void {
  if (registered) return;
  registered = true;
  if (tf.getKernel('Conv2DBackpropFilter', 'wasm') === undefined) {
    tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2DBackpropFilter as unknown as tf.KernelFunc });
  }
  if (tf.getKernel('Conv2DBackpropInput', 'wasm') !== undefined) tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
  tf.registerKernel({ kernelName: 'Conv2DBackpropInput', backendName: 'wasm', kernelFunc: conv2DBackpropInput as unknown as tf.KernelFunc });
}
