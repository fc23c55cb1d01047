// Compute kernels of the native engine. Each instruction-set variant (AVX-512, AVX2, portable)
// compiles the same implementation (kernels_impl.inc) into its own table of function pointers,
// so that the code which orchestrates a training step is compiled once and picks a table at
// run time.
#pragma once
#include <cstddef>
#include <cstdint>

namespace reptile {

// Elementwise activations of act_forward and act_backward, as tfjs-layers defines them; alpha is
// ELU's and LeakyReLU's slope, or a clipped ReLU's ceiling (6 for relu6).
enum class ActKind : int {
  Sigmoid,
  Elu,
  Selu,
  ClipRelu,
  Softplus,
  Softsign,
  Swish,
  LeakyRelu,
  HardSigmoid,
  Gelu,
  GeluTanh,
  Mish,
};

// The widest product (columns) that gemm_narrow and gemm_narrow_rows compute themselves.
constexpr int kNarrowMaxN = 16;

// Geometry of a 2-D convolution or pooling window over NHWC data.
struct WindowGeom {
  int inH, inW, cin;
  int outH, outW, cout;  // for pooling, cout == cin
  int kh, kw, sh, sw, padT, padL;
};

struct Kernels {
  const char* isa;
  // C[M×N] (row stride ldc) = op(A)·op(B), plus C when accumulate. op(A) is M×K: A is stored
  // M×K (lda) or, with transA, K×M. op(B) is K×N: B is stored K×N (ldb) or, with transB, N×K.
  // work must hold gemm_work_floats() floats, 64-byte aligned.
  void (*gemm)(int M, int N, int K, const float* A, int lda, bool transA, const float* B, int ldb, bool transB,
               float* C, int ldc, bool accumulate, float* work);
  size_t (*gemm_work_floats)();
  // gemm with op(B) packed beforehand (pack_b_all), for a B used by several
  // products: the same C bit for bit, without packing B again.
  void (*gemm_packed)(int M, int N, int K, const float* A, int lda, bool transA, const float* Bpacked, float* C,
                      int ldc, bool accumulate, float* work);
  size_t (*packed_b_floats)(int N, int K);
  // Part `part` of `parts` (0 of 1: all of it): parts written by different threads make the whole.
  void (*pack_b_all)(int K, int N, const float* B, int ldb, bool transB, float* out, int part, int parts);
  // Whether B (K × N, not transposed, row stride N) packed is B itself, so that gemm_packed can
  // read B in place of its packing.
  bool (*packed_is_plain)(int K, int N);
  // Convolutions without im2col's matrix, for those conv_implicit accepts. conv_taps writes rows
  // [row0, row0 + rows) of a table of pointers: taps[t·ldt + r] is where row r of the im2col
  // matrix finds its cin floats for window position t (an input pixel, or zero: cin zeros). The
  // forward product (B: the weights packed by pack_b_all, or W itself when packed is null) and the
  // weight gradient (dW, K × cout, = im2colᵀ·dy over M rows) read the matrix through it and give
  // the same bits as im2col_rows followed by gemm.
  bool (*conv_implicit)(const WindowGeom& g);
  void (*conv_taps)(const WindowGeom& g, const float* x, const float* zero, int row0, int rows, const float** taps,
                    size_t ldt);
  // With rows, row r of the product goes to rows[r] instead of y + r·cout (y unused). With bias
  // (or null), each value's finished sum then gets its channel's bias added (the bits of add_bias
  // after the product), and with relu goes through a ReLU (relu_forward's bits), while the tile is
  // still in cache.
  void (*conv_forward_implicit)(const WindowGeom& g, int M, const float* const* taps, size_t ldt, const float* zero,
                                const float* packed, const float* W, float* y, float* const* rows, float* work,
                                const float* bias, bool relu);
  void (*conv_weight_grad_implicit)(const WindowGeom& g, int M, const float* const* taps, size_t ldt, const float* zero,
                                    const float* dy, float* dW, float* work);
  // Rows [row0, row0 + rows) of the im2col matrix of the batch at x (row (s·outH + oh)·outW + ow:
  // the window of example s at output position (oh, ow)), written from col on.
  void (*im2col_rows)(const WindowGeom& g, const float* x, int row0, int rows, float* col);
  // Adds rows [row0, row0 + rows) of an im2col-shaped matrix (col holds just those rows) into dx,
  // the gradient with respect to the batch's input; each element of dx takes its rows'
  // contributions in row order, so block after block in order is the same bits as all at once.
  void (*col2im_rows)(const WindowGeom& g, int row0, int rows, const float* col, float* dx);
  void (*add_bias)(int rows, int cols, const float* b, float* y);
  void (*col_sums)(int rows, int cols, const float* dy, float* out);
  // Batch normalisation with batch statistics, in stages over some rows of a batch (the rows are
  // all axes but the last): per-channel mean and sum of squared deviations of these rows, the
  // normalisation itself (optionally followed by a ReLU), the partial dγ and dβ of the backward
  // pass (masking dy by the ReLU's output first), and dx from the whole batch's dγ, dβ.
  void (*channel_moments)(int rows, int c, const float* x, float* mean, float* m2);
  void (*bn_apply)(int rows, int c, const float* x, const float* mean, const float* invstd, const float* gamma,
                   const float* beta, float* y, bool relu);
  void (*bn_backward_sums)(int rows, int c, const float* x, const float* y, float* dy, const float* mean,
                           const float* invstd, float* dgamma, float* dbeta, bool relu);
  void (*bn_backward_dx)(int rows, int c, const float* x, const float* dy, const float* mean, const float* invstd,
                         const float* gamma, const float* dgamma, const float* dbeta, float inv, float* dx);
  void (*bn_inference)(int rows, int c, const float* x, const float* gamma, const float* beta, float eps,
                       const float* mean, const float* var, float* y);
  void (*relu_forward)(size_t n, const float* x, float* y);
  void (*relu_backward)(size_t n, const float* y, const float* dy, float* dx);
  void (*tanh_forward)(size_t n, const float* x, float* y);
  void (*tanh_backward)(size_t n, const float* y, const float* dy, float* dx);
  void (*maxpool_forward)(const WindowGeom& g, int n, const float* x, float* y, int32_t* argmax);
  // With y (the pooled output, or null), a gradient passes only where y > 0: the backward pass of a
  // ReLU below the pooling, whose output the pooling alone reads, in the same pass (the same bits).
  void (*maxpool_backward)(const WindowGeom& g, int n, const float* dy, const int32_t* argmax, const float* y,
                           float* dx);
  // Softmax cross-entropy against integer labels: returns the sum over these rows and writes
  // d(loss)/d(logits) scaled by invRows (1 / rows of the whole batch, for the mean).
  double (*softmax_xent)(int rows, int c, const float* logits, const float* labels, float* dlogits, float invRows);
  // Squared error: returns the sum over these rows' elements and writes d(loss)/d(out), the
  // difference times scale (2 / elements of the whole batch, for the mean).
  double (*mse)(int rows, int c, const float* out, const float* target, float* dout, float scale);
  // One optimizer step on n parameters with gradient g, or g + g2 (each sum rounded to float) when
  // g2 is not null: the weights are read from p and the stepped ones written to q (p itself, or
  // an array that does not overlap it); with delta (or null), each parameter's change, new − old,
  // is written there too. adam's coef: lr, β1, 1 − β1, β2, 1 − β2, 1 − β1ᵗ, 1 − β2ᵗ, ε, and how
  // the moments are read and written (see kernels_impl.inc).
  void (*adam)(size_t n, const float* p, float* q, const float* g, const float* g2, float* m, float* v,
               const float* coef, float* delta);
  void (*sgd)(size_t n, const float* p, float* q, const float* g, const float* g2, float lr, float* delta);
  // A convolution's input gradient gathered phase by phase (see kernels_impl.inc), for those
  // conv_dx_phased accepts: each stride phase of the input's pixels is a product of its own, over
  // the window positions that reach it, written straight into dx (no col2im, no zeroing, no
  // products for taps that fall outside the output). conv_dx_pack packs the phases' weights
  // (conv_dx_packed_floats in all); conv_dx_taps writes a batch's tables of
  // pointers (conv_dx_table_size of each), which stay valid while dy and dx stay where they are.
  bool (*conv_dx_phased)(const WindowGeom& g);
  size_t (*conv_dx_packed_floats)(const WindowGeom& g);
  void (*conv_dx_table_size)(const WindowGeom& g, int n, size_t* taps, size_t* rows);
  void (*conv_dx_pack)(const WindowGeom& g, const float* W, float* out, int part, int parts);
  void (*conv_dx_taps)(const WindowGeom& g, int n, const float* dy, float* dx, const float* zero, const float** taps,
                       float** rows);
  void (*conv_dx_phases)(const WindowGeom& g, int n, const float* const* taps, float* const* rows, const float* zero,
                         const float* packed, float* work);
  // A permutation of a batch's n·outH·outW im2col rows that groups them by which window positions
  // lie in the padding (see kernels_impl.inc): computed in that order, a forward product's tiles
  // skip those positions.
  void (*conv_rows_by_padding)(const WindowGeom& g, int n, int32_t* order);
  // A convolution whose window holds few values (a one-channel input, as a first layer on grayscale
  // images), for those conv_small accepts: from its im2col matrix (M × K), the forward product
  // plus the bias (bias may be null) in one pass, the same bits as gemm then add_bias; and the
  // weight gradient (colᵀ·dy) with the bias gradient (db may be null) in one pass over dy, the
  // same bits as gemm and col_sums.
  bool (*conv_small)(const WindowGeom& g);
  void (*conv_small_forward)(int M, int K, int N, const float* col, const float* W, const float* bias, float* y);
  void (*conv_small_grads)(int M, int K, int N, const float* col, const float* dy, float* dW, float* db);
  // The Reptile meta-update's values at [lo, hi) (see Engine::reptileUpdate): the mean of the n
  // vectors a[0..n), summed in double in their order and rounded to float; with eps ≠ 1 then
  // phi + eps·(mean − phi) in double, the product rounded before the sum (never fused), rounded to
  // float. Returns the first index whose value is not finite, or −1.
  int64_t (*reptile_update)(int64_t lo, int64_t hi, const float* const* a, int n, double eps, const float* phi,
                            float* out);
  // An elementwise activation (ActKind) on n values, and its backward pass from its input x and
  // output y: dx = dy · f'(x).
  void (*act_forward)(int kind, float alpha, size_t n, const float* x, float* y);
  void (*act_backward)(int kind, float alpha, size_t n, const float* x, const float* y, const float* dy, float* dx);
  // Softmax over each row of c values, and its backward pass from the output: dx = y·(dy − Σ dy·y).
  void (*softmax_forward)(int rows, int c, const float* x, float* y);
  void (*softmax_backward)(int rows, int c, const float* y, const float* dy, float* dx);
  // Binary cross-entropy of sigmoid(logits) against targets in [0, 1], computed from the logits
  // (max(z, 0) − z·t + log(1 + e^−|z|)): returns the sum over these rows' elements and writes
  // d(loss)/d(logits) = (sigmoid(z) − t) · scale (1 / elements of the whole batch, for the mean).
  double (*sigmoid_bce)(int rows, int c, const float* logits, const float* target, float* dlogits, float scale);
  // Average pooling over n examples: each output the mean of its window's pixels inside the input
  // (padding does not count, as TensorFlow's), and its backward pass (dx written whole).
  void (*avgpool_forward)(const WindowGeom& g, int n, const float* x, float* y);
  void (*avgpool_backward)(const WindowGeom& g, int n, const float* dy, float* dx);
  // Zero padding (g.padT, g.padL before, the rest of outH × outW after) and its backward pass, the crop.
  void (*pad_forward)(const WindowGeom& g, int n, const float* x, float* y);
  void (*pad_backward)(const WindowGeom& g, int n, const float* dy, float* dx);
  // Depthwise convolution over n examples: each input channel c has its own g.kh × g.kw filters,
  // mul of them (the depth multiplier), giving output channels c·mul … c·mul + mul − 1 (g.cout =
  // g.cin · mul); W is kh × kw × cin × mul, as tfjs stores it. The backward pass writes dW (when
  // not null) and dx (when not null) whole.
  void (*depthwise_forward)(const WindowGeom& g, int mul, int n, const float* x, const float* W, float* y);
  void (*depthwise_backward)(const WindowGeom& g, int mul, int n, const float* x, const float* W, const float* dy,
                             float* dW, float* dx);
  // gemm for products with few columns (N ≤ kNarrowMaxN: a dense layer with few units): the same
  // arguments and the same bits, in tiles as narrow as N, with B read in place (gemm itself for
  // wider N).
  void (*gemm_narrow)(int M, int N, int K, const float* A, int lda, bool transA, const float* B, int ldb, bool transB,
                      float* C, int ldc, bool accumulate, float* work);
  // gemm_narrow's product (B row-major, K × N) with A read through a table of pointers: rows[i] is
  // row i of A, or with transA rows[k] is column k of op(A) (row k of A). Returns false, writing
  // nothing, where N is too wide for it (then copy A's rows together and call gemm_narrow).
  bool (*gemm_narrow_rows)(int M, int N, int K, const float* const* rows, bool transA, const float* B, int ldb,
                           float* C, int ldc, bool accumulate);
  // Inverted dropout on one row of n values: value j's uniform draw is output j + 1 of the
  // splitmix64 stream whose state is `state` (24 bits in [0, 1)); it is kept, times scale, when
  // the draw is at least rate. Writes the mask and y = x · mask.
  void (*dropout_row)(uint64_t state, size_t n, float rate, float scale, const float* x, float* mask, float* y);
  // A batch norm's output (through its folded ReLU when relu) max-pooled by g as it is computed:
  // the bits of bn_apply followed by maxpool_forward, without the batch norm's output.
  void (*bn_apply_maxpool)(const WindowGeom& g, int n, const float* x, const float* mean, const float* invstd,
                           const float* gamma, const float* beta, bool relu, float* y, int32_t* argmax);
};

// Whether this CPU runs a variant: "avx512", "avx2" or "generic".
bool cpu_has(const char* isa);
// The variant named by want ("auto": the widest this CPU runs), or null if this CPU cannot run it.
const Kernels* pick_kernels(const char* want);

const Kernels* kernels_generic();
#if defined(__x86_64__) || defined(_M_X64)
const Kernels* kernels_avx2();
const Kernels* kernels_avx512();
#endif
#if defined(__wasm_simd128__)
// The WebAssembly build's kernels (kernels_simd128.cc).
const Kernels* kernels_simd128();
#endif

}  // namespace reptile
