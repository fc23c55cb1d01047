// The native training engine: a compiled plan of layers over NHWC float32 data, with all buffers
// owned here and reused from call to call, running whole inner loops (forward, backward,
// optimizer step, for every minibatch) without allocating once the largest batch has been seen.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels.h"

namespace reptile {

// Add, Multiply: the elementwise sum or product of their inputs (all of one size); Concat: its
// inputs joined along the last axis (channels: the output's last axis).
enum class OpKind { Conv, Dense, BatchNorm, Relu, Tanh, MaxPool, Act, Softmax, Dropout, AvgPool, Pad, Depthwise, LayerNorm, Add, Multiply, Concat };
// SoftmaxXent: against class labels, from the output as logits or, when the last op is a Softmax,
// from that op's input (the loss fused with it). SigmoidBce: against one target in [0, 1] per
// output, from the input of a last Sigmoid activation (fused) or from the output as logits.
enum class LossKind { SoftmaxXent, Mse, SigmoidBce };
enum class OptKind { None, Sgd, Adam };

struct OpSpec {
  OpKind kind;
  WindowGeom g{};            // Conv, MaxPool, AvgPool, Pad, Depthwise
  int depthMul = 1;          // Depthwise: filters per input channel
  int inSize = 0;            // per-example input floats
  int outSize = 0;           // per-example output floats
  int64_t w = -1, b = -1;    // Conv / Dense / Depthwise parameter offsets (b = -1: no bias)
  int channels = 0;          // BatchNorm, Softmax, LayerNorm: size of the last axis
  ActKind act = ActKind::Sigmoid;  // Act: which activation, and its parameter (see ActKind)
  float alpha = 0;                 // Dropout: the rate
  float eps = 1e-3f, momentum = 0.99f;
  int64_t gamma = -1, beta = -1;
  std::vector<float> movingMean, movingVar;
  bool fusedRelu = false;    // BatchNorm or Conv followed by a ReLU that this op applies itself
  bool reluBelow = false;    // MaxPool: applies the backward mask of the fused ReLU below it
  bool dyMasked = false;     // Conv or BatchNorm with fusedRelu: its dy arrives masked (by the MaxPool above)
  int pooledBy = -1;         // Conv: the MaxPool that alone reads its output, run by its forward pass
  bool inConvForward = false;  // MaxPool: run by the forward pass of the convolution below it
  int bnPool = -1;           // BatchNorm: the MaxPool that alone reads its output, run by its apply pass (training)
  bool inBnApply = false;    // MaxPool: run by the apply pass of the batch norm below it (training)
  bool skip = false;         // a ReLU folded into the BatchNorm before it
  // Weights held fixed: w, b, gamma, beta are offsets in the engine's frozen weights, not in φ.
  bool frozen = false;
  // The ops whose outputs this op reads, in order (−1: the network's input); empty: the op before
  // it (the network's input for the first). Every input comes before the op (a topological order),
  // and the network's output is the last op's.
  std::vector<int> inputs;
  int dilH = 1, dilW = 1;  // Conv: the dilation rate (window taps dilH rows, dilW columns apart)
};

// Whether a loss is computed from the last op's input, the last op itself left out of the
// backward pass (a softmax with the cross-entropy, a sigmoid with the binary cross-entropy).
bool lossFusesLastOp(const std::vector<OpSpec>& ops, LossKind loss);

struct AdaptArgs {
  std::vector<float> inputs, targets;
  std::vector<int32_t> batches;
  int count = 0, batchSize = 0, numBatches = 0;
  OptKind opt = OptKind::Adam;
  double lr = 1e-3, beta1 = 0, beta2 = 0.999, eps = 1e-8;
  bool reset = false;
  // Where the dropout masks of this inner loop come from (see Engine::dropoutForward).
  uint64_t dropoutSeed = 0;
  LossKind loss = LossKind::SoftmaxXent;
  // The per-example losses of a minibatch are summed and divided by this (0: the minibatch's size,
  // i.e. their mean).
  double lossDivisor = 0;
  // Batches to predict with the adapted weights once the inner loop is done (evaluation).
  std::vector<std::vector<float>> predictInputs;
  std::vector<int> predictCounts;
  bool predictBatchStats = true;
  // fit (Engine::fitSteps): the examples and minibatch indices are read in place instead of from
  // inputs, targets and batches, and each step's loss and training outputs are recorded.
  const float* inputsData = nullptr;
  const float* targetsData = nullptr;
  const int32_t* batchesData = nullptr;
  const int32_t* batchesEnd = nullptr;  // where the indices readable from batchesData end (the next batches' rows are prefetched)
  double* stepLosses = nullptr;  // numBatches values
  float* stepOutputs = nullptr;  // numBatches × batchSize × outputSize values
};

// Keras-style training (the fit/ layer): minibatches of varying size, taken in the given order from
// examples the caller keeps, stepped on φ itself; with lookahead (period > 0) every period-th step
// moves the slow weights toward the fast ones, slow ← (1 − alpha)·slow + alpha·fast, and the fast
// weights restart from them (Reptile used as an optimizer).
struct FitArgs {
  const float* inputs = nullptr;
  const float* targets = nullptr;
  const int32_t* order = nullptr;  // the examples of every batch, one batch after the other
  const int32_t* sizes = nullptr;  // each batch's size
  int numBatches = 0;
  OptKind opt = OptKind::Adam;
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-7;
  LossKind loss = LossKind::SoftmaxXent;
  float* slow = nullptr;  // paramSize() floats, updated in place (lookahead only)
  int period = 0;         // 0: no lookahead
  double alpha = 0;
  int counter = 0;        // fast steps taken since the last synchronisation
  // Dropout masks: a function of this seed and the optimizer step a run of batches starts at.
  uint64_t dropoutSeed = 0;
  int64_t firstStep = 0;
  double* losses = nullptr;   // out: each batch's loss
  float* outputs = nullptr;   // out: each example's training output, in order
};

class Pool;

// One stage of work on one shard of a batch; see Engine::flush. (Sync: on two threads, a shard
// copies into its own weights the values the other shard's optimizer step wrote.)
// (AddGrad: dx += dy over a tensor's rows, where that tensor feeds several ops.)
enum class Stage : uint8_t { Start, Copy, Pack, Fwd, BnMoments, BnApply, Loss, Bwd, BnBwdSum, BnBwdDx, Snapshot, Opt, OptEarly, Finish, Sync, AddGrad };
struct Item {
  Stage stage;
  int op;
  float* dy;  // Bwd, BnBwdSum, BnBwdDx: gradient with respect to the op's output (whole batch)
  float* dx;  // ... and with respect to its input
  const float* packed = nullptr;  // Fwd, Bwd of a convolution: its weights packed beforehand (or null)
  int which = 0;                  // Pack: 0, the weights as the forward product reads them; 1, as dx's does;
                                  // Bwd: which input dx is the gradient of
  // Bwd of a convolution that runs the backward pass of the max pooling above it first (see
  // OpSpec::pooledBy): the gradient with respect to the pooling's output; dy is then the pooling's dx.
  const float* poolDy = nullptr;
};

// Every batch is split into two shards (the first ⌈n/2⌉ examples, then the rest). Each shard runs
// the network on its own examples and keeps its own partial sums (batch-norm statistics, their
// gradients, parameter gradients, the loss); the shards' partial sums are added in a fixed order.
// The shards run on two threads or one after the other on one: results are bit-identical either
// way.
class Engine {
 public:
  static constexpr int kShards = 2;
  // How values the other core wrote are read (see farChunks): chunks of floats, chunks ahead.
  static constexpr int64_t kFarChunk = 256, kFarAhead = 2;
  // 1: both shards on the calling thread; 2: the second shard on a helper thread.
  void setThreads(int threads);
  // The caller has no work for the engine for a while: its helper thread sleeps until the next.
  void rest();
  // The caller is about to call the engine: a sleeping helper thread wakes now.
  void wake();
  int threads() const { return pool_ ? 2 : 1; }

  // frozen: the weights of the frozen ops (OpSpec::frozen), given once and never changed.
  Engine(std::vector<OpSpec> ops, int inputSize, int outputSize, int64_t paramSize, const Kernels* k,
         std::vector<float> frozen = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const Kernels* kernels() const { return k_; }
  int64_t paramSize() const { return P_; }
  int inputSize() const { return inputSize_; }
  int outputSize() const { return outputSize_; }
  // Floats per example's target: a class label, or one value per output.
  int targetSize(LossKind loss) const { return loss == LossKind::SoftmaxXent ? 1 : outputSize_; }
  std::vector<float>& params() { return params_; }
  const std::vector<OpSpec>& ops() const { return ops_; }

  OptKind optKind = OptKind::None;
  double optStep = 0;
  void resetOptimizer(OptKind kind);
  // Adam's first (which 0) or second moments, paramSize() floats, to read or overwrite.
  float* moments(int which);
  // The same arrays for a caller that overwrites every value of both: the zeros a reset left
  // pending are not written first.
  float* momentsToOverwrite(int which);

  // Runs all minibatches of args from the current parameters φ, which stay in place; writes the
  // adapted weights W to adapted and W − W_{k−1} to lastStep (paramSize() floats each). Returns
  // the mean loss over the steps.
  double adapt(const AdaptArgs& args, float* adapted, float* lastStep);

  // Runs the batches of f on φ in place (see FitArgs); returns the fast steps taken since the
  // last synchronisation.
  int fitSteps(const FitArgs& f);

  // The Reptile meta-update (paper, Algorithm 2) on φ in place: φ ← φ + ε·(mean of the n adapted
  // weight vectors − φ), with the bits of the library's reptileUpdate (core/meta-update.ts): the mean
  // summed in double, task by task, and rounded to float32; ε = 1 lands on that mean. Returns the
  // index of the first value that is not finite, and then leaves φ as it was; −1 when all are.
  int64_t reptileUpdate(const float* const* adapted, int n, double epsilon);
  // The value reptileUpdate computed at index i (to name a value that is not finite).
  float nextValue(int64_t i) const { return nextParams_[(size_t)i]; }

  void predict(const float* x, int n, bool batchStats, float* out);
  // predict with the given weights in place of φ (which stays as it is).
  // reuse: the same weights, unchanged, as the previous call's (their packing is kept).
  void predictWith(const float* weights, const float* x, int n, bool batchStats, float* out, bool reuse = false);
  // dropoutSeed: dropout is applied with the masks of that seed at step 0 (null: no dropout).
  double gradients(const float* x, const float* targets, int n, LossKind loss, float* grad, float* inputGrad,
                   float* output, const uint64_t* dropoutSeed = nullptr);

  // Runs the queued items of one shard (called by flush, on either thread).
  void runShard(int s);

 private:
  void ensure(int n);
  void split(int n);
  // training: batch norm uses (and updates) batch statistics; backwardFollows: keep what the
  // backward pass reads (each convolution's im2col matrix).
  void forward(bool training, bool backwardFollows);
  float* backward(bool inputGrad);
  void push(Stage stage, int op, float* dy = nullptr, float* dx = nullptr, const float* packed = nullptr, int which = 0);
  void predictOnce(const float* x, int n, bool batchStats, float* out);
  // The weights the kernels read have changed (or may have): packings made before are stale.
  void weightsChanged() { version_++; }
  // Queues the packing of every convolution's weights not yet packed for the current weights.
  void queuePacks(bool dx);
  const float* packedFor(size_t op, int which) const;
  void flush();
  void abandonQueue();
  // Runs one queued item on shard s; it only dispatches, to one function per stage below.
  void runItem(const Item& it, int s);
  void runCopy(int s);
  void runLoss(int s);
  void runPack(const Item& it, int s);
  void runForward(const Item& it, int s);
  void convForward(size_t i, int s, const float* x, float* y, const float* shardPacked);
  // Writes the shard's rows of dropout op i's mask (0 or 1 / (1 − rate) per value) to aux_[i].
  void dropoutForward(size_t i, int s, const float* x, float* y);
  // The merge ops (Add, Multiply, Concat) on the shard's rows, and the gradient of input k.
  void mergeForward(size_t i, int s, float* y);
  void mergeBackward(size_t i, int s, int k, const float* dy, float* dx);
  // A dilated convolution's im2col rows, and their transpose added into dx.
  void dilatedIm2col(const OpSpec& op, const float* x, int row0, int rows, float* col) const;
  void dilatedCol2im(const OpSpec& op, int row0, int rows, const float* col, float* dx) const;
  // A layer normalisation over the last axis of the shard's rows, and its backward pass.
  void layerNormForward(size_t i, int s, const float* x, float* y);
  void layerNormBackward(size_t i, int s, const float* dy, float* dx);
  void runBnMoments(const Item& it, int s);
  void runBnApply(const Item& it, int s);
  void runBnBackwardSums(const Item& it, int s);
  void runBnBackwardDx(const Item& it, int s);
  void runBackward(const Item& it, int s);
  void convBackward(size_t i, int s, float* dy, float* dx, const float* shardPacked, const float* poolDy);
  void dxPhased(size_t i, int s, const float* dy, float* dx, const float* shardPacked, int chunk,
                const std::function<void(int, int)>& before);
  int poolChunk(size_t i) const;
  void releaseBuffers();
  // What the stages read: the shard's copy of an item's packing, the shard's rows of op i's input
  // and output, and the rows (examples × positions) a batch norm normalises over n examples.
  const float* shardPacking(const Item& it, int s) const;
  const float* shardInput(size_t i, int s);
  float* shardOutput(size_t i, int s);
  static int bnRows(const OpSpec& op, int n) { return op.kind == OpKind::BatchNorm ? n * (op.inSize / op.channels) : 0; }
  void runParamRange(Stage stage, int s);
  void runParamRange(Stage stage, int64_t lo, int64_t hi, int s);
  void ownParams();
  void optimizerStep(const float* from, float* to, int64_t lo, int64_t hi, int remote);
  // Where op i's weights are for shard s: the frozen weights, or the shard's φ or W.
  const float* weightsOf(size_t i, int s) const { return ops_[i].frozen ? frozen_.data() : shardW_[s]; }
  // The weights the kernels read: w for both shards, or w and a copy of its own for the second.
  void useWeights(float* w, float* second) {
    w_ = w;
    shardW_[0] = w;
    shardW_[1] = second;
  }

  int64_t lateParamsEnd() const;
  int64_t paramSplit(int64_t from) const;
  int64_t reptileUpdateRange(const float* const* adapted, int n, double epsilon, int64_t lo, int64_t hi);
  static void runUpdatePart(void* job, int s);
  void setOptimizerCoefficients(const AdaptArgs& a, bool last);
  double meanLoss() const;

  std::vector<OpSpec> ops_;
  int inputSize_, outputSize_;
  // The graph: tensor 0 is the network's input, tensor i + 1 op i's output.
  std::vector<std::vector<int>> in_;         // per op: the tensors it reads
  std::vector<int> consumers_;               // per tensor: how many op inputs read it
  std::vector<bool> trainBelow_, reachesIn_; // per tensor: made from trainable weights, from the input
  int tensorSize(int t) const { return t == 0 ? inputSize_ : ops_[(size_t)t - 1].outSize; }
  // Where a tensor's values are (a skipped ReLU's are its batch norm's).
  float* tensorData(int t);
  // Whether the backward pass computes a gradient for tensor t (inputGrad: the network input's too).
  bool needsGrad(int t, bool inputGrad) const { return trainBelow_[(size_t)t] || (inputGrad && reachesIn_[(size_t)t]); }
  // The backward pass as a list of ops to run, with the gradient buffers each reads and writes,
  // worked out once per (loss fused with the last op, input gradient wanted). A tensor's gradient
  // is written by the first op (from the top) that reads the tensor; any other writes to a
  // buffer of its own that AddGrad then adds (addTo). A plain chain takes buffers 0 and 1 in turn.
  struct BwdAction {
    int op, dy, dx, which, addTo;  // dx, addTo: −1 for none
  };
  struct BwdPlan {
    std::vector<BwdAction> actions;
    int inputBuf = -1;  // the buffer of the network input's gradient
    int buffers = 0;
  };
  BwdPlan plans_[4];
  BwdPlan buildBackwardPlan(bool fused, bool inputGrad) const;
  int64_t P_;
  const Kernels* k_;
  std::vector<float> frozen_;
  int cap_ = 0;
  size_t actStride_ = 0;  // floats per example in each gradient buffer (gbuf_)
  size_t maxK_ = 0;       // the widest convolution window (kh·kw·cin): a row of dcol_
  std::vector<std::vector<float>> act_;   // act_[i]: input of op i; act_[ops.size()]: output
  std::vector<std::vector<float>> aux_;   // per op: im2col buffer (Conv, unless implicit)
  // Per op: whether a convolution's products read its input in place (conv_implicit), and then
  // their table of pointers (conv_taps; zeroPixel_ stands for the padding).
  std::vector<bool> implicit_;
  std::vector<std::vector<const float*>> taps_;
  // Per op and shard: the input and row count the shard's rows of the table were written for.
  struct TapsKey {
    const float* x = nullptr;
    int rows = -1;
  };
  std::vector<std::array<TapsKey, kShards>> tapsKey_;
  // Per op and shard, written with the table: the forward product's rows grouped by their padding,
  // as a table of pointers (ldt: the shard's rows) and each row's place in the output (none when
  // the grouping is the rows' own order).
  struct Grouped {
    std::vector<const float*> taps;
    std::vector<float*> rows;
  };
  std::vector<std::array<Grouped, kShards>> grouped_;
  // A convolution's table: the rows of example b on, and the distance between window positions.
  const float** tapsOf(size_t op, int b) { return taps_[op].data() + (size_t)b * ops_[op].g.outH * ops_[op].g.outW; }
  size_t tapStride(const WindowGeom& g) const { return (size_t)cap_ * g.outH * g.outW; }
  // Per op: whether a convolution's dx is gathered phase by phase (conv_dx_phases; its packs_[1]
  // is then the phases' weights), and per shard the tables of pointers for it, with the dy, dx and
  // row count they were written for.
  std::vector<bool> dxPhased_;
  // With chunk < n, the tables of each block of chunk examples in turn (see convBackward), block k's
  // from taps[tapsAt[k]] and rows[rowsAt[k]] on.
  struct DxTables {
    std::vector<const float*> taps;
    std::vector<float*> rows;
    std::vector<size_t> tapsAt, rowsAt;
    const float* dy = nullptr;
    const float* dx = nullptr;
    int n = -1, chunk = -1;
  };
  std::vector<std::array<DxTables, kShards>> dxTables_;
  // Where zeroPixel_ has as many zeros as any tap reads (a convolution's cin, or cout for dx).
  std::vector<float> zeroPixel_;
  std::vector<std::vector<int32_t>> arg_; // per op: argmax (MaxPool)
  std::vector<std::vector<float>> stats_; // per op: mean, var, invstd (BatchNorm)
  // gbuf_: gradients flowing back through the layers (gbuf_[0]: the loss's); dcol_: per shard, a
  // block of dy·Wᵀ rows.
  std::vector<std::vector<float>> gbuf_;
  std::vector<float> dcol_, ones_, zeros_, bnTotal_;
  std::unique_ptr<Pool> pool_;
  // φ; the weights an inner loop is moving (cur_) and their value before its last step.
  std::vector<float> params_, cur_, before_, batchTargets_;
  // A first Dense op that gemm_narrow_rows computes (denseFirst_) reads the examples of an inner
  // loop's minibatches where they lie, through inputRows_ (one pointer per row of the batch, set by
  // Copy items), instead of from copies in act_[0]; rowsInPlace_: during adapt.
  bool denseFirst_ = false, rowsInPlace_ = false;
  std::vector<const float*> inputRows_;
  std::vector<float> fitLast_;     // fitSteps: the last steps adapt writes, unused
  std::vector<float> nextParams_;  // reptileUpdate's result, copied to φ once every value is finite
  float* w_ = nullptr;  // the weights the kernels read: params_, or cur_ during adapt
  // The weights each shard reads and writes: w_ for both, except in adapt on two threads, where the
  // second shard has a copy of its own (cur1_), so that each core's weights are read by the
  // other only when a Sync item copies the values the other shard's optimizer step wrote. Weights
  // larger than this come from the shared cache or memory either way, and both shards read one copy
  // (no Sync: each step's copying would cost more than it saves).
  float* shardW_[2] = {nullptr, nullptr};
  std::vector<float> cur1_;
  static constexpr size_t kOwnCopyMaxBytes = (size_t)4 << 20;
  // During adapt's last step, where the optimizer writes each parameter's change (lastStep), and
  // whether it did so.
  float* deltaOut_ = nullptr;
  bool lastStepWritten_ = false;
  // During a step of adapt that reads φ in place (see adapt), where its optimizer pass reads the
  // weights and where it writes them; null: each shard's own weights, in place.
  const float* stepFrom_ = nullptr;
  float* stepTo_ = nullptr;
  // Where the last optimizer step run by the shards began (lateEnd_ with an early step, else 0).
  int64_t syncFrom_ = 0;

  // The convolutions' weights packed for the matrix products (gemm_packed), once per value of the
  // weights instead of once per product: [0] as the forward product reads them, [1] as the
  // product for dx does (transposed, or the phases' weights of a phased dx). A packing counts from the flush that completes it, for the value of
  // the weights (version_) it was queued for.
  // On two threads each shard has its own copy, stride floats after the previous shard's, except
  // for a shared packing (over kSharedPackBytes), of which there is one copy.
  struct Packed {
    float* data = nullptr;
    size_t stride = 0;
    uint64_t done = 0, queued = 0;
    bool shared = false;  // one copy for both shards (see runPack)
  };
  // Packings larger than this are shared by the shards.
  static constexpr size_t kSharedPackBytes = (size_t)2 << 20;
  std::vector<Packed> packs_[2];
  // Shard s's copy of a packing: its own on two threads, the one copy on one.
  float* shardCopy(const Packed& p, int s) const { return p.data + (pool_ && !p.shared ? (size_t)s * p.stride : 0); }
  // Per op: a convolution whose forward packing would be its weights as they are (read in place).
  std::vector<bool> plainPack_;
  uint64_t version_ = 1;
  bool hasBatchNorm_ = false;
  // Parameters [0, lateEnd_) are those the last flush of a backward pass touches (P_: the optimizer
  // step waits for that flush, in a flush of its own).
  int64_t lateEnd_ = 0;
  // Per shard: the parameter ranges it starts, snapshots, finishes and steps (see ownParams).
  std::vector<std::array<int64_t, 2>> owned_[kShards];
  // Whether the forward pass being run keeps each convolution's im2col matrix for a backward pass
  // (adapt, gradients) or, predicting, builds it a block of rows at a time (set by forward).
  bool keepCol_ = true;
  static constexpr size_t kChunkBytes = 256 * 1024;
  // A convolution whose output only a max pooling reads runs both a few examples at a time, so
  // that the pooling reads each block of the convolution's output from cache: blocks of about this
  // many bytes (see convForward).
  static constexpr size_t kPoolChunkBytes = 384 * 1024;
  static constexpr int kChunkRows = 96;
  static constexpr int kDxChunkRows = 48;
  const float* lastPredictWeights_ = nullptr;
  uint64_t lastPredictVersion_ = 0;

  // The batch being run and its split.
  int n_ = 0;
  int begin_[kShards] = {0, 0}, count_[kShards] = {0, 0};
  std::vector<Item> queue_;
  // Per shard: matrix-product workspace, partial parameter gradients, partial per-channel sums
  // (and dγ, dβ of absent scale or offset), the loss summed over its examples.
  float* work_[kShards] = {nullptr, nullptr};
  std::vector<float> grads_[kShards], part_[kShards];
  static constexpr size_t kPad = 16;
  float* partOf(int s) { return part_[s].data() + kPad; }
  double lossPart_[kShards] = {0, 0};
  // What Copy, Loss and Opt items read.
  const AdaptArgs* args_ = nullptr;
  int step_ = 0;
  LossKind lossKind_ = LossKind::SoftmaxXent;
  // Whether the forward pass applies dropout (adapt, gradients with a seed), and its seed.
  bool dropoutOn_ = false;
  uint64_t dropoutSeed_ = 0;
  double lossDivisor_ = 0;  // 0: the batch's size (see AdaptArgs::lossDivisor)
  const float* targets_ = nullptr;
  float coef_[10] = {};
  // Adam's moments. A reset leaves them zero in name only (momentsZero_): the first step reads
  // neither, and moments() writes the zeros for a caller. With β1 = 0, m is the last step's
  // gradient, and only the last step of an inner loop writes it.
  std::vector<float> m_, v_;
  bool momentsZero_ = false, mBehind_ = false;
  float *adaptedOut_ = nullptr, *lastStepOut_ = nullptr;
};

}  // namespace reptile
