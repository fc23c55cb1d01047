#include "engine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
// REPTILE_SINGLE_THREAD (the WebAssembly build): no helper thread; both shards run on the caller.
#ifndef REPTILE_SINGLE_THREAD
#include <condition_variable>
#include <mutex>
#include <thread>
#endif

namespace reptile {

#ifdef REPTILE_SINGLE_THREAD
class Pool {
 public:
  void rest() {}
  void wake() {}
  void run(void (*fn)(void*, int), void* arg) {
    fn(arg, 0);
    fn(arg, 1);
  }
};
#else
namespace {
inline void cpuRelax() {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}
}  // namespace

// A helper thread for the second shard. run(fn, arg) publishes a job, does part 0 itself, then
// claims part 1 unless the helper already has: a helper that wakes late (asleep, or descheduled on
// a busy machine) is simply not waited for. Claims are tagged with the job's generation, so a
// late helper can never take a part of a later job. Between jobs the helper spins for up to 2 ms
// (jobs come every few microseconds inside an inner loop), then sleeps until the next one; at the
// end of an engine call (rest) it sleeps at once, leaving the core to the threads that hand the
// results back and the next call in (spinning there delayed each of those hand-offs by about
// 0.2 ms on two cores).
class Pool {
 public:
  Pool() : helper_([this] { loop(); }) {}
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_.store(true);
      gen_.fetch_add(1);
    }
    cv_.notify_all();
    helper_.join();
  }

  // No job for a while (the end of an engine call): the helper sleeps now instead of spinning.
  void rest() {
    {
      std::lock_guard<std::mutex> lk(m_);
      wake_ = false;
    }
    rest_.store(true, std::memory_order_relaxed);
  }
  // Jobs are coming (an engine call is about to start): a sleeping helper wakes now, so that it is
  // spinning by the first one instead of leaving it to the caller while the OS wakes it.
  void wake() {
    rest_.store(false, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lk(m_);
    wake_ = true;
    if (sleeping_.load()) cv_.notify_one();
  }

  void run(void (*fn)(void*, int), void* arg) {
    rest_.store(false, std::memory_order_relaxed);
    const uint64_t g = gen_.load() + 1;
    fn_ = fn;
    arg_ = arg;
    gen_.store(g);
    if (sleeping_.load()) {
      std::lock_guard<std::mutex> lk(m_);
      cv_.notify_one();
    }
    fn(arg, 0);
    uint64_t expected = g - 1;
    if (claim_.compare_exchange_strong(expected, g)) {
      fn(arg, 1);
      return;
    }
    unsigned spins = 0;
    while (done_.load(std::memory_order_acquire) != g) {
      cpuRelax();
      if ((++spins & 4095) == 0) std::this_thread::yield();
    }
  }

 private:
  void loop() {
    uint64_t seen = 0;
    for (;;) {
      auto t0 = std::chrono::steady_clock::now();
      unsigned spins = 0;
      while (gen_.load() == seen) {
        cpuRelax();
        if ((++spins & 255) == 0 &&
            (rest_.load(std::memory_order_relaxed) || std::chrono::steady_clock::now() - t0 > std::chrono::milliseconds(2))) {
          std::unique_lock<std::mutex> lk(m_);
          sleeping_.store(true);
          cv_.wait(lk, [&] { return gen_.load() != seen || wake_; });
          wake_ = false;
          sleeping_.store(false);
          t0 = std::chrono::steady_clock::now();
        }
      }
      if (stop_.load()) return;
      seen = gen_.load();
      uint64_t expected = seen - 1;
      if (claim_.compare_exchange_strong(expected, seen)) {
        fn_(arg_, 1);
        done_.store(seen, std::memory_order_release);
      }
    }
  }

  std::atomic<uint64_t> gen_{0}, claim_{0}, done_{0};
  std::atomic<bool> stop_{false}, sleeping_{false}, rest_{false};
  bool wake_ = false;  // guarded by m_
  void (*fn_)(void*, int) = nullptr;
  void* arg_ = nullptr;
  std::mutex m_;
  std::condition_variable cv_;
  std::thread helper_;
};
#endif  // REPTILE_SINGLE_THREAD

bool lossFusesLastOp(const std::vector<OpSpec>& ops, LossKind loss) {
  if (ops.empty()) return false;
  const OpSpec& last = ops.back();
  if (loss == LossKind::SoftmaxXent) return last.kind == OpKind::Softmax;
  if (loss == LossKind::SigmoidBce) return last.kind == OpKind::Act && last.act == ActKind::Sigmoid;
  return false;
}

void Engine::rest() {
  if (pool_) pool_->rest();
}

void Engine::wake() {
  if (pool_) pool_->wake();
}

void Engine::setThreads(int threads) {
  // Packings are kept per shard on two threads and once on one (see Pack in runItem): a change
  // makes them stale.
#ifdef REPTILE_SINGLE_THREAD
  threads = 1;
#endif
  if ((threads > 1) != (pool_ != nullptr)) weightsChanged();
  if (threads > 1 && !pool_) pool_ = std::make_unique<Pool>();
  if (threads <= 1) pool_.reset();
}

Engine::Engine(std::vector<OpSpec> ops, int inputSize, int outputSize, int64_t paramSize, const Kernels* k,
               std::vector<float> frozen)
    : ops_(std::move(ops)), inputSize_(inputSize), outputSize_(outputSize), P_(paramSize), k_(k),
      frozen_(std::move(frozen)) {
  // The graph's tensors: which ops read each, and whether it depends on trainable weights or on
  // the network's input (what the backward pass has to reach).
  const size_t N = ops_.size();
  in_.resize(N);
  consumers_.assign(N + 1, 0);
  trainBelow_.assign(N + 1, false);
  reachesIn_.assign(N + 1, false);
  reachesIn_[0] = true;
  for (size_t i = 0; i < N; i++) {
    const OpSpec& op = ops_[i];
    if (op.inputs.empty())
      in_[i].push_back((int)i);
    else
      for (int j : op.inputs) in_[i].push_back(j + 1);
    bool below = !op.frozen && (op.w >= 0 || op.b >= 0 || op.gamma >= 0 || op.beta >= 0), reaches = false;
    for (int t : in_[i]) {
      if (t < 0 || t > (int)i) throw std::runtime_error("an op reads an op that does not come before it");
      consumers_[(size_t)t]++;
      below = below || trainBelow_[(size_t)t];
      reaches = reaches || reachesIn_[(size_t)t];
    }
    trainBelow_[i + 1] = below;
    reachesIn_[i + 1] = reaches;
  }
  // Fold a ReLU that directly follows a batch norm, and is the only reader of its output, into
  // it: the ReLU's output then lives in the batch norm's output buffer and its backward pass
  // reads it from there.
  hasBatchNorm_ = std::any_of(ops_.begin(), ops_.end(), [](const OpSpec& o) { return o.kind == OpKind::BatchNorm; });
  for (size_t i = 0; i + 1 < N; i++) {
    if (ops_[i].kind == OpKind::BatchNorm && ops_[i + 1].kind == OpKind::Relu && in_[i + 1].size() == 1 &&
        in_[i + 1][0] == (int)i + 1 && consumers_[i + 1] == 1) {
      ops_[i].fusedRelu = true;
      ops_[i + 1].skip = true;
    }
  }
  // Likewise a ReLU after a convolution (not the model's last op): the convolution's product
  // applies its bias and the ReLU while each tile is in cache, and its backward pass masks dy by
  // the ReLU's output first.
  for (size_t i = 0; i + 2 < N; i++) {
    if (ops_[i].kind == OpKind::Conv && ops_[i + 1].kind == OpKind::Relu && in_[i + 1].size() == 1 &&
        in_[i + 1][0] == (int)i + 1 && consumers_[i + 1] == 1) {
      ops_[i].fusedRelu = true;
      ops_[i + 1].skip = true;
    }
  }
  // A max pooling that alone reads a convolution's output, directly or through such a ReLU (or a
  // batch norm's, through the ReLU folded into it). Through the ReLU, the pooling applies the
  // ReLU's backward mask itself (where its pooled value is > 0), so the convolution's (or batch
  // norm's) dy arrives masked, without a pass of its own over it. When the convolution reads its
  // input in place, the pooling runs inside the convolution's passes (see convForward and
  // convBackward).
  for (size_t j = 0; j < N; j++) {
    if (ops_[j].kind != OpKind::MaxPool || in_[j].size() != 1 || in_[j][0] < 1) continue;
    size_t t = (size_t)in_[j][0];
    if (consumers_[t] != 1) continue;
    const bool throughRelu = ops_[t - 1].kind == OpKind::Relu && ops_[t - 1].skip;
    if (throughRelu) t = (size_t)in_[t - 1][0];  // (the folded ReLU is the convolution's only reader)
    // Likewise a batch norm with its ReLU folded in: its backward sums then read dy as it is. A
    // batch norm's output that the pooling alone reads (through the ReLU or not) is pooled as the
    // batch norm's apply pass computes it, and never written (see bn_apply_maxpool).
    if (t >= 1 && ops_[t - 1].kind == OpKind::BatchNorm && ops_[t - 1].fusedRelu == throughRelu) {
      if (throughRelu) {
        ops_[j].reluBelow = true;
        ops_[t - 1].dyMasked = true;
      }
      ops_[t - 1].bnPool = (int)j;
      ops_[j].inBnApply = true;
      continue;
    }
    if (t < 1 || ops_[t - 1].kind != OpKind::Conv) continue;
    OpSpec& conv = ops_[t - 1];
    if (throughRelu && conv.fusedRelu) {
      ops_[j].reluBelow = true;
      conv.dyMasked = true;
    }
    if (conv.dilH == 1 && conv.dilW == 1 && k_->conv_implicit(conv.g)) {
      conv.pooledBy = (int)j;
      ops_[j].inConvForward = true;
    }
  }
  for (int fused = 0; fused < 2; fused++)
    for (int inputGrad = 0; inputGrad < 2; inputGrad++)
      plans_[fused * 2 + inputGrad] = buildBackwardPlan(fused != 0, inputGrad != 0);
  params_.assign(P_, 0.f);
  cur_.assign(P_, 0.f);
  before_.assign(P_, 0.f);
  useWeights(params_.data(), params_.data());
  act_.resize(ops_.size() + 1);
  aux_.resize(ops_.size());
  arg_.resize(ops_.size());
  stats_.resize(ops_.size());
  size_t maxC = 0;
  for (size_t i = 0; i < ops_.size(); i++) {
    if (ops_[i].kind == OpKind::BatchNorm) {
      stats_[i].assign(3 * (size_t)ops_[i].channels, 0.f);
      maxC = std::max(maxC, (size_t)ops_[i].channels);
    }
  }
  for (int s = 0; s < kShards; s++) {
    grads_[s].assign(P_, 0.f);
    // Written row after row by both shards at once: 64 bytes of padding on each side keep the two
    // shards' sums off each other's cache lines.
    part_[s].assign(2 * maxC + 2 * kPad, 0.f);
  }
  for (int which = 0; which < 2; which++) packs_[which].resize(ops_.size());
  plainPack_.assign(ops_.size(), false);
  dxPhased_.assign(ops_.size(), false);
  dxTables_.resize(ops_.size());
  grouped_.resize(ops_.size());
  size_t dxWork = 0;
  for (size_t i = 0; i < ops_.size(); i++) {
    if (ops_[i].kind != OpKind::Conv) continue;
    const WindowGeom& g = ops_[i].g;
    const int K = g.kh * g.kw * g.cin;
    const bool dilated = ops_[i].dilH != 1 || ops_[i].dilW != 1;
    plainPack_[i] = k_->packed_is_plain(K, g.cout);
    // Phased dx needs the input read in place too (implicit); when no packing is ready, the phases'
    // weights are packed into the shard's workspace, which is made large enough below.
    dxPhased_[i] = !dilated && k_->conv_implicit(g) && k_->conv_dx_phased(g);
    if (dxPhased_[i]) dxWork = std::max(dxWork, k_->conv_dx_packed_floats(g));
    for (int which = 0; which < 2; which++) {
      const size_t floats = which == 0   ? k_->packed_b_floats(g.cout, K)
                            : dxPhased_[i] ? k_->conv_dx_packed_floats(g)
                                           : k_->packed_b_floats(K, g.cout);
      // One copy per shard (see Packed), each a whole number of cache lines; one copy, packed half
      // by each shard, for a packing larger than a core's cache (see runPack).
      const size_t stride = (floats + 15) / 16 * 16;
      const bool shared = floats * sizeof(float) > kSharedPackBytes;
      float* p = static_cast<float*>(std::aligned_alloc(64, (shared ? 1 : kShards) * stride * sizeof(float)));
      if (!p) {
        releaseBuffers();
        throw std::runtime_error("out of memory");
      }
      packs_[which][i].data = p;
      packs_[which][i].stride = stride;
      packs_[which][i].shared = shared;
    }
  }
  // Each shard's product workspace: the products' own, or a phase packing when larger.
  const size_t workBytes = (std::max(k_->gemm_work_floats(), dxWork) * sizeof(float) + 63) / 64 * 64;
  for (float*& w : work_) {
    w = static_cast<float*>(std::aligned_alloc(64, workBytes));
    if (!w) {
      releaseBuffers();
      throw std::runtime_error("out of memory");
    }
  }
  implicit_.assign(ops_.size(), false);
  taps_.resize(ops_.size());
  tapsKey_.resize(ops_.size());
  size_t maxCin = 0;
  for (size_t i = 0; i < ops_.size(); i++) {
    const OpSpec& op = ops_[i];
    if (op.kind != OpKind::Conv) continue;
    maxK_ = std::max(maxK_, (size_t)op.g.kh * op.g.kw * op.g.cin);
    maxCin = std::max({maxCin, (size_t)op.g.cin, (size_t)op.g.cout});
    // A dilated convolution goes through its own im2col (dilatedIm2col).
    implicit_[i] = op.dilH == 1 && op.dilW == 1 && k_->conv_implicit(op.g);
  }
  zeroPixel_.assign(maxCin + 1, 0.f);
  // A first dense layer narrow enough for gemm_narrow_rows reads a minibatch's examples in place,
  // unless another op reads the network's input too (a skip connection), which needs it copied.
  bool inputReadLater = false;
  for (size_t i = 1; i < ops_.size(); i++)
    for (int j : ops_[i].inputs) inputReadLater = inputReadLater || j < 0;
  if (!ops_.empty() && !inputReadLater && ops_[0].kind == OpKind::Dense && ops_[0].outSize <= kNarrowMaxN) {
    const float* probe = nullptr;
    float out = 0;
    denseFirst_ = k_->gemm_narrow_rows(1, ops_[0].outSize, 0, &probe, false, nullptr, ops_[0].outSize, &out, 1, true);
  }
  lateEnd_ = lateParamsEnd();
  ownParams();
  dcol_.assign(kShards * kDxChunkRows * maxK_, 0.f);
  bnTotal_.assign(2 * maxC + 1, 0.f);
  ones_.assign(maxC + 1, 1.f);
  zeros_.assign(maxC + 1, 0.f);
  // A step queues at most a few items per op between two flushes.
  queue_.reserve(4 * ops_.size() + 8);
}

// Where an op's parameters lie in the parameter vector: {offset, size} for each of its two
// parameter arrays (weights and bias, or γ and β), offset −1 for an absent one.
static std::array<std::array<int64_t, 2>, 2> paramRanges(const OpSpec& op) {
  if (op.frozen) return {{{-1, 0}, {-1, 0}}};
  switch (op.kind) {
    case OpKind::Conv:
      return {{{op.w, (int64_t)op.g.kh * op.g.kw * op.g.cin * op.g.cout}, {op.b, op.g.cout}}};
    case OpKind::Dense:
      return {{{op.w, (int64_t)op.inSize * op.outSize}, {op.b, op.outSize}}};
    case OpKind::Depthwise:
      return {{{op.w, (int64_t)op.g.kh * op.g.kw * op.g.cout}, {op.b, op.g.cout}}};
    case OpKind::BatchNorm:
    case OpKind::LayerNorm:
      return {{{op.gamma, op.channels}, {op.beta, op.channels}}};
    default:
      return {{{-1, 0}, {-1, 0}}};
  }
}

// The parameters that the last flush of a backward pass reads or writes: those of the ops up to the
// first batch norm (its dx, and the backward passes of the ops before it, run after the shards
// last meet to add its dγ and dβ). Returns where they end when they are exactly the parameters
// before that point and every other op's lie after it; otherwise P_ (no early optimizer step).
int64_t Engine::lateParamsEnd() const {
  size_t first = ops_.size();
  for (size_t i = 0; i < ops_.size(); i++)
    if (ops_[i].kind == OpKind::BatchNorm && trainBelow_[i + 1]) {
      first = i;
      break;
    }
  if (first == ops_.size()) return P_;
  // The late parameters must fill [0, lateEnd) (their sizes add up to it) and precede the rest.
  int64_t lateEnd = 0, lateCount = 0, restBegin = P_;
  for (size_t i = 0; i < ops_.size(); i++)
    for (const auto& r : paramRanges(ops_[i])) {
      if (r[0] < 0 || r[1] == 0) continue;
      if (i <= first) {
        lateEnd = std::max(lateEnd, r[0] + r[1]);
        lateCount += r[1];
      } else {
        restBegin = std::min(restBegin, r[0]);
      }
    }
  return lateCount == lateEnd && restBegin >= lateEnd && lateEnd < P_ ? lateEnd : P_;
}

// Which parameters each shard starts, snapshots, finishes and steps (runParamRange): half of every
// parameter array, split at a multiple of 16 floats (arrays under 32 floats go whole to the shard
// with fewer so far). Each shard's partial gradient of an array is then half read by the other
// shard's step, and each array's new values half written by it, so that the cost of moving them
// between cores falls evenly on both shards in every flush, instead of on one shard in the flush
// that computes an array's gradient. Parameters outside the ops' arrays, if any, are split in half.
void Engine::ownParams() {
  std::vector<std::array<int64_t, 2>> arrays;
  for (const OpSpec& op : ops_)
    for (const auto& r : paramRanges(op))
      if (r[0] >= 0 && r[1] > 0) arrays.push_back({r[0], r[0] + r[1]});
  std::sort(arrays.begin(), arrays.end());
  // Gaps and what lies past the last array become arrays of their own; overlaps (shared arrays)
  // fall back to the two halves of [0, lateEnd_) and [lateEnd_, P_).
  std::vector<std::array<int64_t, 2>> all;
  int64_t at = 0;
  bool overlap = false;
  for (const auto& a : arrays) {
    if (a[0] < at) overlap = true;
    if (a[0] > at) all.push_back({at, a[0]});
    all.push_back(a);
    at = std::max(at, a[1]);
  }
  if (at < P_) all.push_back({at, P_});
  // An array straddling lateEnd_ (only when there is no early step: lateEnd_ = P_) cannot happen.
  if (overlap) {
    all.clear();
    if (lateEnd_ > 0) all.push_back({0, lateEnd_});
    if (lateEnd_ < P_) all.push_back({lateEnd_, P_});
  }
  for (auto& v : owned_) v.clear();
  int64_t count[kShards] = {0, 0};
  auto give = [&](int s, int64_t lo, int64_t hi) {
    if (hi <= lo) return;
    auto& v = owned_[s];
    if (!v.empty() && v.back()[1] == lo)
      v.back()[1] = hi;
    else
      v.push_back({lo, hi});
    count[s] += hi - lo;
  };
  for (const auto& a : all) {
    if (a[1] - a[0] < 32) {
      give(count[1] < count[0] ? 1 : 0, a[0], a[1]);
      continue;
    }
    const int64_t mid = std::min(a[1], std::max(a[0], (a[0] + (a[1] - a[0]) / 2 + 15) / 16 * 16));
    give(0, a[0], mid);
    give(1, mid, a[1]);
  }
}

// Where the parameters [from, P_) split between the two shards: halfway, rounded up to a whole
// number of 16-float vectors.
int64_t Engine::paramSplit(int64_t from) const { return std::min(from + ((P_ - from) / 2 + 15) / 16 * 16, P_); }

Engine::~Engine() {
  pool_.reset();
  releaseBuffers();
}

// Frees the product workspaces and the packings (those not allocated yet are null).
void Engine::releaseBuffers() {
  for (float*& w : work_) {
    std::free(w);
    w = nullptr;
  }
  for (auto& v : packs_)
    for (Packed& q : v) {
      std::free(q.data);
      q.data = nullptr;
    }
}

void Engine::resetOptimizer(OptKind kind) {
  optKind = kind;
  optStep = 0;
  momentsZero_ = kind == OptKind::Adam;
  if (kind == OptKind::Adam) {
    m_.resize((size_t)P_);
    v_.resize((size_t)P_);
  } else {
    m_.clear();
    v_.clear();
  }
}

float* Engine::moments(int which) {
  if (momentsZero_) {
    std::fill(m_.begin(), m_.end(), 0.f);
    std::fill(v_.begin(), v_.end(), 0.f);
    momentsZero_ = false;
  }
  return which == 0 ? m_.data() : v_.data();
}

float* Engine::momentsToOverwrite(int which) {
  momentsZero_ = false;
  return which == 0 ? m_.data() : v_.data();
}

// Grows the per-batch buffers to hold n examples; never shrinks, so steady state allocates nothing.
void Engine::ensure(int n) {
  if (n <= cap_) return;
  cap_ = n;
  size_t maxAct = (size_t)inputSize_;
  act_[0].assign((size_t)n * inputSize_, 0.f);
  for (size_t i = 0; i < ops_.size(); i++) {
    const OpSpec& op = ops_[i];
    act_[i + 1].assign(op.skip ? 0 : (size_t)n * op.outSize, 0.f);
    maxAct = std::max(maxAct, (size_t)op.outSize);
    maxAct = std::max(maxAct, (size_t)op.inSize);
    if (op.kind == OpKind::Conv && implicit_[i]) {
      taps_[i].assign(tapStride(op.g) * op.g.kh * op.g.kw, zeroPixel_.data());
      for (TapsKey& key : tapsKey_[i]) key = TapsKey{};
      for (DxTables& t : dxTables_[i]) t = DxTables{};
      for (Grouped& t : grouped_[i]) t = Grouped{};
    } else if (op.kind == OpKind::Conv) {
      const size_t col = (size_t)n * op.g.outH * op.g.outW * op.g.kh * op.g.kw * op.g.cin;
      aux_[i].assign(col, 0.f);
    } else if (op.kind == OpKind::MaxPool) {
      arg_[i].assign((size_t)n * op.outSize, 0);
    } else if (op.kind == OpKind::Dropout) {
      aux_[i].assign((size_t)n * op.outSize, 0.f);
    } else if (op.kind == OpKind::LayerNorm) {
      aux_[i].assign((size_t)n * (op.inSize / op.channels) * 2, 0.f);  // each row's mean and 1/σ
    }
  }
  // Gradient buffers are shared by all layers: each example owns a slot as large as the largest
  // layer needs, so that the shards' rows never overlap whatever layer each is at.
  actStride_ = maxAct;
  int buffers = 2;
  for (const BwdPlan& p : plans_) buffers = std::max(buffers, p.buffers);
  gbuf_.resize((size_t)buffers);
  for (auto& g : gbuf_) g.assign(maxAct * n, 0.f);
  batchTargets_.assign((size_t)n * std::max(outputSize_, 1), 0.f);
  inputRows_.assign((size_t)n, nullptr);
}

void Engine::split(int n) {
  n_ = n;
  count_[0] = (n + 1) / 2;
  begin_[0] = 0;
  begin_[1] = count_[0];
  count_[1] = n - count_[0];
}

// A skipped ReLU's output is the batch norm's output before it.
float* Engine::tensorData(int t) {
  if (t == 0) return act_[0].data();
  size_t i = (size_t)t - 1;
  while (ops_[i].skip) i = (size_t)in_[i][0] - 1;
  return act_[i + 1].data();
}

void Engine::push(Stage stage, int op, float* dy, float* dx, const float* packed, int which) {
  queue_.push_back(Item{stage, op, dy, dx, packed, which});
}

Engine::BwdPlan Engine::buildBackwardPlan(bool fused, bool inputGrad) const {
  BwdPlan p;
  const size_t N = ops_.size();
  std::vector<int> buf(N + 1, -1);
  std::vector<bool> busy;
  auto take = [&]() {
    for (size_t b = 0; b < busy.size(); b++)
      if (!busy[b]) {
        busy[b] = true;
        return (int)b;
      }
    busy.push_back(true);
    return (int)busy.size() - 1;
  };
  // The loss writes the gradient of the output, or of the last op's input when fused with it.
  const size_t top = N - (fused ? 1 : 0);
  buf[fused ? (size_t)in_[N - 1][0] : N] = take();
  int held = -1;
  for (size_t ii = top; ii-- > 0;) {
    const int out = (int)ii + 1;
    if (buf[(size_t)out] < 0) continue;
    if (ops_[ii].skip) {  // the batch norm below reads this gradient as its own
      buf[(size_t)in_[ii][0]] = buf[(size_t)out];
      continue;
    }
    const int dy = buf[(size_t)out];
    bool any = false;
    for (size_t k = 0; k < in_[ii].size(); k++) {
      const int t = in_[ii][k];
      if (!needsGrad(t, inputGrad)) continue;
      any = true;
      if (buf[(size_t)t] < 0) {
        buf[(size_t)t] = take();
        p.actions.push_back({(int)ii, dy, buf[(size_t)t], (int)k, -1});
      } else {
        const int tmp = take();
        p.actions.push_back({(int)ii, dy, tmp, (int)k, buf[(size_t)t]});
        busy[(size_t)tmp] = false;  // free once AddGrad, queued next, has read it
      }
    }
    if (!any && needsGrad(out, inputGrad)) p.actions.push_back({(int)ii, dy, -1, 0, -1});  // its weights only
    // A max pooling whose backward pass the convolution below runs (see convBackward) reads its dy
    // while the convolution writes its dx: that buffer stays taken until the convolution's is planned.
    if (ops_[ii].kind == OpKind::MaxPool && ops_[ii].inConvForward) {
      held = dy;
      continue;
    }
    busy[(size_t)dy] = false;
    if (held >= 0) busy[(size_t)held] = false;
    held = -1;
  }
  p.inputBuf = inputGrad ? buf[0] : -1;
  p.buffers = (int)busy.size();
  return p;
}

const float* Engine::packedFor(size_t op, int which) const {
  // (runItem reads a plain forward packing from the shard's own weights.)
  if (which == 0 && plainPack_[op]) return (ops_[op].frozen ? frozen_.data() : w_) + ops_[op].w;
  const Packed& p = packs_[which][op];
  return p.data && p.done == version_ ? p.data : nullptr;
}

// Packings are queued as Pack items (see runItem); a product reads a packing only from a
// later flush on (see packedFor), so the first convolution of a forward pass packs for the next call.
void Engine::queuePacks(bool dx) {
  for (size_t i = 0; i < ops_.size(); i++) {
    if (ops_[i].kind != OpKind::Conv) continue;
    for (int which = 0; which < (dx && trainBelow_[(size_t)in_[i][0]] ? 2 : 1); which++) {
      if (which == 0 && plainPack_[i]) continue;
      Packed& p = packs_[which][i];
      if (p.done == version_ || p.queued == version_) continue;
      p.queued = version_;
      queue_.push_back(Item{Stage::Pack, (int)i, nullptr, nullptr, nullptr, which});
    }
  }
}

static void runShardOf(void* engine, int s) { static_cast<Engine*>(engine)->runShard(s); }

// Runs every queued item on both shards, each shard's items in queue order, and empties the
// queue. Work between two flushes must be local to a shard; what combines the shards (batch
// statistics, gradient sums) happens between flushes, on the calling thread.
void Engine::flush() {
  if (queue_.empty()) return;
  if (pool_) {
    pool_->run(&runShardOf, this);
  } else {
    for (int s = 0; s < kShards; s++) runShard(s);
  }
  queue_.clear();
  for (auto& v : packs_)
    for (Packed& p : v) p.done = std::max(p.done, p.queued);
}

// Drops queued items that will not run (a call ended early), with the packings they would have made.
void Engine::abandonQueue() {
  queue_.clear();
  for (auto& v : packs_)
    for (Packed& p : v) p.queued = p.done;
}

void Engine::runShard(int s) {
  for (const Item& it : queue_) runItem(it, s);
}

// Calls f(i, count) over [lo, hi): with far (values the other core wrote: its partial gradient,
// its half of the weights) a chunk of kFarChunk at a time, each chunk of far prefetched kFarAhead
// chunks before with the non-temporal hint; without, once over the whole range. A line read that
// way does not stay in this core's caches once used, so that the other core's next write to it
// does not have to take it back from here first: with the two cores far apart (a round trip of
// ~450 ns), that write had cost more than the read.
template <class F>
static inline void farChunks(const float* far, int64_t lo, int64_t hi, F f) {
  if (!far) {
    if (hi > lo) f(lo, hi - lo);
    return;
  }
  for (int64_t i = lo; i < hi; i += Engine::kFarChunk) {
    for (int64_t j = i + Engine::kFarAhead * Engine::kFarChunk, end = std::min(j + Engine::kFarChunk, hi); j < end; j += 16)
      __builtin_prefetch(far + j, 0, 0);
    f(i, std::min(Engine::kFarChunk, hi - i));
  }
}

// Work over all parameters, each shard on its own (see ownParams): the start and end of an inner
// loop, the optimizer step (whose gradient is the shards' sum, in order), and on two threads the
// copy of the values the other shard's step wrote (Sync).
void Engine::runParamRange(Stage stage, int s) {
  const bool ownCopies = shardW_[0] != shardW_[1];
  if (stage == Stage::Start && ownCopies) {
    // Each shard's copy starts as the whole of φ.
    std::memcpy(shardW_[s], params_.data(), sizeof(float) * (size_t)P_);
    return;
  }
  if (stage == Stage::Sync) {
    const float* from = shardW_[1 - s];
    float* to = shardW_[s];
    for (const auto& r : owned_[1 - s])
      farChunks(from, std::max(r[0], syncFrom_), r[1],
                [&](int64_t i, int64_t c) { std::memcpy(to + i, from + i, sizeof(float) * (size_t)c); });
    return;
  }
  // OptEarly: the optimizer step on the parameters from lateEnd_ on (see adapt).
  const int64_t from = stage == Stage::OptEarly ? lateEnd_ : 0;
  for (const auto& r : owned_[s]) {
    const int64_t lo = std::max(r[0], from), hi = r[1];
    if (hi > lo) runParamRange(stage, lo, hi, s);
  }
}

void Engine::runParamRange(Stage stage, int64_t lo, int64_t hi, int s) {
  const size_t bytes = sizeof(float) * (size_t)(hi - lo);
  float* cur = shardW_[s];
  switch (stage) {
    case Stage::Start:
      std::memcpy(cur + lo, params_.data() + lo, bytes);
      return;
    case Stage::Snapshot:
      std::memcpy(before_.data() + lo, cur + lo, bytes);
      return;
    case Stage::Finish: {
      std::memcpy(adaptedOut_ + lo, cur + lo, bytes);
      if (lastStepWritten_) return;
      const float* before = before_.data();
      for (int64_t i = lo; i < hi; i++) lastStepOut_[i] = cur[i] - before[i];
      return;
    }
    case Stage::Opt:
    case Stage::OptEarly:
      optimizerStep(stepFrom_ ? stepFrom_ : cur, stepTo_ ? stepTo_ : cur, lo, hi, pool_ ? 1 - s : -1);
      return;
    default:
      return;
  }
}

// The optimizer step on parameters [lo, hi) of the weights from, written to to (from itself, or
// an array apart): their gradient is the shards' partial sums added in order, inside the
// optimizer's pass. remote: the shard whose partial sums the other core wrote (or -1), read as
// farChunks reads.
void Engine::optimizerStep(const float* from, float* to, int64_t lo, int64_t hi, int remote) {
  const float* g = grads_[0].data();
  const float* g1 = grads_[1].data();
  farChunks(remote < 0 ? nullptr : grads_[remote].data(), lo, hi, [&](int64_t i, int64_t c) {
    float* delta = deltaOut_ ? deltaOut_ + i : nullptr;
    if (optKind == OptKind::Sgd)
      k_->sgd((size_t)c, from + i, to + i, g + i, g1 + i, coef_[0], delta);
    else if (optKind == OptKind::Adam)
      k_->adam((size_t)c, from + i, to + i, g + i, g1 + i, m_.data() + i, v_.data() + i, coef_, delta);
  });
}

// Runs one queued item on shard s: each stage has its own function (below).
void Engine::runItem(const Item& it, int s) {
  switch (it.stage) {
    case Stage::Start:
    case Stage::Snapshot:
    case Stage::Opt:
    case Stage::OptEarly:
    case Stage::Finish:
    case Stage::Sync:
      runParamRange(it.stage, s);
      return;
    case Stage::Copy:
      runCopy(s);
      return;
    case Stage::Loss:
      runLoss(s);
      return;
    case Stage::Pack:
      runPack(it, s);
      return;
    case Stage::Fwd:
      runForward(it, s);
      return;
    case Stage::BnMoments:
      runBnMoments(it, s);
      return;
    case Stage::BnApply:
      runBnApply(it, s);
      return;
    case Stage::BnBwdSum:
      runBnBackwardSums(it, s);
      return;
    case Stage::BnBwdDx:
      runBnBackwardDx(it, s);
      return;
    case Stage::Bwd:
      runBackward(it, s);
      return;
    case Stage::AddGrad: {
      const size_t at = (size_t)begin_[s] * actStride_, m = (size_t)count_[s] * tensorSize(it.op);
      const float* from = it.dy + at;
      float* to = it.dx + at;
      for (size_t j = 0; j < m; j++) to[j] += from[j];
      return;
    }
  }
}

// Copy: the shard's rows of the current minibatch, inputs and targets, from the task's examples.
void Engine::runCopy(int s) {
  const int n = count_[s], b = begin_[s];
  const AdaptArgs& a = *args_;
  const int tsize = targetSize(a.loss);
  const float* inputs = a.inputsData ? a.inputsData : a.inputs.data();
  const float* targets = a.targetsData ? a.targetsData : a.targets.data();
  const int32_t* first = a.batchesData ? a.batchesData : a.batches.data();
  const int32_t* idx = first + (size_t)step_ * a.batchSize;
  for (int r = b; r < b + n; r++) {
    // A first dense layer reads the examples where they lie (see rowsInPlace_).
    if (rowsInPlace_)
      inputRows_[(size_t)r] = inputs + (size_t)idx[r] * inputSize_;
    else
      std::memcpy(act_[0].data() + (size_t)r * inputSize_, inputs + (size_t)idx[r] * inputSize_,
                  sizeof(float) * inputSize_);
    std::memcpy(batchTargets_.data() + (size_t)r * tsize, targets + (size_t)idx[r] * tsize,
                sizeof(float) * tsize);
  }
  // The shard's rows of the next minibatch are scattered over the examples, which are far larger
  // than the caches: fetched now, they arrive while this step computes.
  const int32_t* end = a.batchesEnd ? a.batchesEnd : first + (size_t)a.numBatches * a.batchSize;
  const int32_t* next = idx + a.batchSize;
  const size_t rowBytes = sizeof(float) * (size_t)inputSize_;
  for (int r = b; r < b + n && next + r < end; r++) {
    const char* row = reinterpret_cast<const char*>(inputs + (size_t)next[r] * inputSize_);
    for (size_t at = 0; at < rowBytes; at += 64) __builtin_prefetch(row + at, 0, 3);
  }
}

// Loss: the shard's part of the loss and its gradient with respect to the network's output.
void Engine::runLoss(int s) {
  const int n = count_[s], b = begin_[s];
  const size_t last = ops_.size() - 1;
  const int tsize = targetSize(lossKind_);
  // Fused with a last softmax or sigmoid: from that op's input, the logits (as many values).
  const float* out = lossFusesLastOp(ops_, lossKind_) ? shardInput(last, s)
                                                      : tensorData((int)last + 1) + (size_t)b * outputSize_;
  const float* t = targets_ + (size_t)b * tsize;
  float* d = gbuf_[0].data() + (size_t)b * actStride_;
  const double div = lossDivisor_ > 0 ? lossDivisor_ : (double)n_;
  switch (lossKind_) {
    case LossKind::SoftmaxXent:
      lossPart_[s] = k_->softmax_xent(n, outputSize_, out, t, d, 1.f / (float)div);
      break;
    case LossKind::Mse:
      lossPart_[s] = k_->mse(n, outputSize_, out, t, d, 2.f / (float)(div * outputSize_));
      break;
    case LossKind::SigmoidBce:
      // The mean over each example's outputs, as tfjs's binaryCrossentropy takes it.
      lossPart_[s] = k_->sigmoid_bce(n, outputSize_, out, t, d, 1.f / (float)(div * outputSize_));
      break;
  }
}

// Pack: a convolution's weights packed as the forward product (which 0) or dx's (which 1) reads them.
void Engine::runPack(const Item& it, int s) {
  const size_t i = (size_t)it.op;
  const OpSpec& op = ops_[i];
  const float* P = weightsOf(i, s);
  const WindowGeom& g = op.g;
  const int K = g.kh * g.kw * g.cin;
  // On two threads each shard packs the whole matrix into its own copy, which only its own core
  // then reads and writes; on one, the first shard packs the copy both read.
  // A packing larger than a core's cache is read from the shared cache or memory either way: the
  // shards then pack half of it each into one copy, which both read from the next flush on.
  if (s > 0 && !pool_) return;
  const Packed& p = packs_[it.which][i];
  float* out = shardCopy(p, s);
  const int part = p.shared && pool_ ? s : 0, parts = p.shared && pool_ ? kShards : 1;
  if (it.which == 0)
    k_->pack_b_all(K, g.cout, P + op.w, g.cout, false, out, part, parts);
  else if (dxPhased_[i])
    k_->conv_dx_pack(g, P + op.w, out, part, parts);
  else
    k_->pack_b_all(g.cout, K, P + op.w, g.cout, true, out, part, parts);
}

// The shard's own copy of an item's packing (see runPack); a forward packing read in place is the
// shard's weights.
const float* Engine::shardPacking(const Item& it, int s) const {
  const size_t i = (size_t)it.op;
  if (!it.packed) return nullptr;
  if (it.stage == Stage::Fwd && plainPack_[i]) return weightsOf(i, s) + ops_[i].w;
  return shardCopy(packs_[it.stage == Stage::Fwd ? 0 : 1][i], s);
}

// The shard's rows of op i's input and output.
const float* Engine::shardInput(size_t i, int s) {
  const int t = in_[i][0];
  return tensorData(t) + (size_t)begin_[s] * tensorSize(t);
}

float* Engine::shardOutput(size_t i, int s) { return act_[i + 1].data() + (size_t)begin_[s] * ops_[i].outSize; }

// Fwd: op it.op's forward pass on the shard's rows.
void Engine::runForward(const Item& it, int s) {
  const int n = count_[s], b = begin_[s];
  const float* P = weightsOf((size_t)it.op, s);
  const size_t i = (size_t)it.op;
  const OpSpec& op = ops_[i];
  const float* x = shardInput(i, s);
  float* y = shardOutput(i, s);
  switch (op.kind) {
    case OpKind::Conv:
      convForward(i, s, x, y, shardPacking(it, s));
      break;
    case OpKind::Dense:
      // (gemm_narrow: gemm's bits, faster for layers of at most 16 units.)
      if (i == 0 && rowsInPlace_)
        k_->gemm_narrow_rows(n, op.outSize, op.inSize, inputRows_.data() + b, false, P + op.w, op.outSize, y,
                             op.outSize, false);
      else
        k_->gemm_narrow(n, op.outSize, op.inSize, x, op.inSize, false, P + op.w, op.outSize, false, y, op.outSize,
                        false, work_[s]);
      if (op.b >= 0) k_->add_bias(n, op.outSize, P + op.b, y);
      break;
    case OpKind::BatchNorm: {  // inference: the moving statistics
      const int c = op.channels;
      const int rows = bnRows(op, n);
      const float* gamma = op.gamma >= 0 ? P + op.gamma : ones_.data();
      const float* beta = op.beta >= 0 ? P + op.beta : zeros_.data();
      k_->bn_inference(rows, c, x, gamma, beta, op.eps, op.movingMean.data(), op.movingVar.data(), y);
      if (op.fusedRelu) k_->relu_forward((size_t)rows * c, y, y);
      break;
    }
    case OpKind::Relu:
      k_->relu_forward((size_t)n * op.inSize, x, y);
      break;
    case OpKind::Tanh:
      k_->tanh_forward((size_t)n * op.inSize, x, y);
      break;
    case OpKind::Act:
      k_->act_forward((int)op.act, op.alpha, (size_t)n * op.inSize, x, y);
      break;
    case OpKind::Softmax:
      k_->softmax_forward(n * (op.inSize / op.channels), op.channels, x, y);
      break;
    case OpKind::MaxPool:
      k_->maxpool_forward(op.g, n, x, y, arg_[i].data() + (size_t)b * op.outSize);
      break;
    case OpKind::AvgPool:
      k_->avgpool_forward(op.g, n, x, y);
      break;
    case OpKind::LayerNorm:
      layerNormForward(i, s, x, y);
      break;
    case OpKind::Depthwise:
      k_->depthwise_forward(op.g, op.depthMul, n, x, P + op.w, y);
      if (op.b >= 0) k_->add_bias(n * op.g.outH * op.g.outW, op.g.cout, P + op.b, y);
      break;
    case OpKind::Pad:
      k_->pad_forward(op.g, n, x, y);
      break;
    case OpKind::Add:
    case OpKind::Multiply:
    case OpKind::Concat:
      mergeForward(i, s, y);
      break;
    case OpKind::Dropout:
      if (dropoutOn_) {
        dropoutForward(i, s, x, y);
      } else {
        std::memcpy(y, x, sizeof(float) * (size_t)n * op.inSize);
      }
      break;
  }
}

// Add and Multiply fold their inputs in order (((x0 + x1) + x2)...); Concat copies each input's
// channels of every position into place.
void Engine::mergeForward(size_t i, int s, float* y) {
  const OpSpec& op = ops_[i];
  const int n = count_[s], b = begin_[s];
  const std::vector<int>& in = in_[i];
  if (op.kind == OpKind::Concat) {
    const int positions = op.outSize / op.channels, rows = n * positions;
    int at = 0;
    for (int t : in) {
      const int c = tensorSize(t) / positions;
      const float* x = tensorData(t) + (size_t)b * tensorSize(t);
      for (int r = 0; r < rows; r++)
        std::memcpy(y + (size_t)r * op.channels + at, x + (size_t)r * c, sizeof(float) * (size_t)c);
      at += c;
    }
    return;
  }
  const size_t m = (size_t)n * op.outSize;
  std::memcpy(y, tensorData(in[0]) + (size_t)b * op.outSize, sizeof(float) * m);
  for (size_t k = 1; k < in.size(); k++) {
    const float* x = tensorData(in[k]) + (size_t)b * op.outSize;
    if (op.kind == OpKind::Add)
      for (size_t j = 0; j < m; j++) y[j] += x[j];
    else
      for (size_t j = 0; j < m; j++) y[j] *= x[j];
  }
}

// The gradient of a merge op's input k: dy itself (Add), dy times the other inputs in order
// (Multiply), or input k's channels of dy (Concat).
void Engine::mergeBackward(size_t i, int s, int k, const float* dy, float* dx) {
  const OpSpec& op = ops_[i];
  const int n = count_[s], b = begin_[s];
  const std::vector<int>& in = in_[i];
  if (op.kind == OpKind::Concat) {
    const int positions = op.outSize / op.channels, rows = n * positions;
    int at = 0;
    for (int j = 0; j < k; j++) at += tensorSize(in[(size_t)j]) / positions;
    const int c = tensorSize(in[(size_t)k]) / positions;
    for (int r = 0; r < rows; r++)
      std::memcpy(dx + (size_t)r * c, dy + (size_t)r * op.channels + at, sizeof(float) * (size_t)c);
    return;
  }
  const size_t m = (size_t)n * op.outSize;
  std::memcpy(dx, dy, sizeof(float) * m);
  if (op.kind == OpKind::Add) return;
  for (size_t j = 0; j < in.size(); j++) {
    if ((int)j == k) continue;
    const float* x = tensorData(in[j]) + (size_t)b * op.outSize;
    for (size_t e = 0; e < m; e++) dx[e] *= x[e];
  }
}

// The rows of a dilated convolution's im2col matrix (as im2col_rows, with the window's taps dilH
// rows and dilW columns apart).
void Engine::dilatedIm2col(const OpSpec& op, const float* x, int row0, int rows, float* col) const {
  const WindowGeom& g = op.g;
  const size_t inSample = (size_t)g.inH * g.inW * g.cin, K = (size_t)g.kh * g.kw * g.cin;
  const int perExample = g.outH * g.outW;
  for (int r = 0; r < rows; r++) {
    const int row = row0 + r, e = row / perExample, p = row % perExample, oh = p / g.outW, ow = p % g.outW;
    const float* xs = x + (size_t)e * inSample;
    float* d = col + (size_t)r * K;
    for (int i = 0; i < g.kh; i++) {
      const int ih = oh * g.sh - g.padT + i * op.dilH;
      for (int j = 0; j < g.kw; j++, d += g.cin) {
        const int iw = ow * g.sw - g.padL + j * op.dilW;
        if (ih < 0 || ih >= g.inH || iw < 0 || iw >= g.inW)
          std::fill(d, d + g.cin, 0.f);
        else
          std::memcpy(d, xs + ((size_t)ih * g.inW + iw) * g.cin, sizeof(float) * (size_t)g.cin);
      }
    }
  }
}

// Adds rows of a dilated convolution's im2col-shaped matrix into dx, in row order (as col2im_rows).
void Engine::dilatedCol2im(const OpSpec& op, int row0, int rows, const float* col, float* dx) const {
  const WindowGeom& g = op.g;
  const size_t inSample = (size_t)g.inH * g.inW * g.cin, K = (size_t)g.kh * g.kw * g.cin;
  const int perExample = g.outH * g.outW;
  for (int r = 0; r < rows; r++) {
    const int row = row0 + r, e = row / perExample, p = row % perExample, oh = p / g.outW, ow = p % g.outW;
    float* xs = dx + (size_t)e * inSample;
    const float* src = col + (size_t)r * K;
    for (int i = 0; i < g.kh; i++) {
      const int ih = oh * g.sh - g.padT + i * op.dilH;
      for (int j = 0; j < g.kw; j++, src += g.cin) {
        const int iw = ow * g.sw - g.padL + j * op.dilW;
        if (ih < 0 || ih >= g.inH || iw < 0 || iw >= g.inW) continue;
        float* d = xs + ((size_t)ih * g.inW + iw) * g.cin;
        for (int c = 0; c < g.cin; c++) d[c] += src[c];
      }
    }
  }
}

// Each row (the last axis of one position of one example) normalised by its own mean and variance
// (as tf.moments: the mean of squared deviations), then scaled by γ and shifted by β.
void Engine::layerNormForward(size_t i, int s, const float* x, float* y) {
  const OpSpec& op = ops_[i];
  const float* P = weightsOf(i, s);
  const int c = op.channels, perExample = op.inSize / c;
  const int rows = count_[s] * perExample, first = begin_[s] * perExample;
  float* st = aux_[i].data() + (size_t)first * 2;
  for (int r = 0; r < rows; r++) {
    const float* xr = x + (size_t)r * c;
    float* yr = y + (size_t)r * c;
    float mean = 0.f;
    for (int j = 0; j < c; j++) mean += xr[j];
    mean /= (float)c;
    float var = 0.f;
    for (int j = 0; j < c; j++) var += (xr[j] - mean) * (xr[j] - mean);
    var /= (float)c;
    const float inv = 1.f / std::sqrt(var + op.eps);
    st[2 * r] = mean;
    st[2 * r + 1] = inv;
    for (int j = 0; j < c; j++) {
      const float xh = (xr[j] - mean) * inv;
      yr[j] = xh * (op.gamma >= 0 ? P[op.gamma + j] : 1.f) + (op.beta >= 0 ? P[op.beta + j] : 0.f);
    }
  }
}

// dγ = Σ dy·x̂ and dβ = Σ dy over the shard's rows (partial sums, in grads_), and per row
// dx = (1/σ)·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·γ.
void Engine::layerNormBackward(size_t i, int s, const float* dy, float* dx) {
  const OpSpec& op = ops_[i];
  const float* P = weightsOf(i, s);
  const int c = op.channels, perExample = op.inSize / c;
  const int rows = count_[s] * perExample, first = begin_[s] * perExample;
  const float* x = shardInput(i, s);
  const float* st = aux_[i].data() + (size_t)first * 2;
  float* G = grads_[s].data();
  float* dgamma = op.gamma >= 0 && !op.frozen ? G + op.gamma : nullptr;
  float* dbeta = op.beta >= 0 && !op.frozen ? G + op.beta : nullptr;
  if (dgamma) std::fill(dgamma, dgamma + c, 0.f);
  if (dbeta) std::fill(dbeta, dbeta + c, 0.f);
  for (int r = 0; r < rows; r++) {
    const float* xr = x + (size_t)r * c;
    const float* d = dy + (size_t)r * c;
    const float mean = st[2 * r], inv = st[2 * r + 1];
    float sumG = 0.f, sumGx = 0.f;
    for (int j = 0; j < c; j++) {
      const float xh = (xr[j] - mean) * inv;
      const float g = d[j] * (op.gamma >= 0 ? P[op.gamma + j] : 1.f);
      sumG += g;
      sumGx += g * xh;
      if (dgamma) dgamma[j] += d[j] * xh;
      if (dbeta) dbeta[j] += d[j];
    }
    if (!dx) continue;
    float* o = dx + (size_t)r * c;
    const float mG = sumG / (float)c, mGx = sumGx / (float)c;
    for (int j = 0; j < c; j++) {
      const float xh = (xr[j] - mean) * inv;
      o[j] = inv * (d[j] * (op.gamma >= 0 ? P[op.gamma + j] : 1.f) - mG - xh * mGx);
    }
  }
}

namespace {
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

// A dropout mask is a pure function of the seed, the step of the inner loop, the op and the row of
// the minibatch (never of the shard or thread that draws it): each row's values come from a
// splitmix64 stream keyed by those four numbers. A value is kept (scaled by 1 / (1 − rate), as
// tfjs's inverted dropout) when its uniform draw, 24 bits in [0, 1), is at least the rate.
void Engine::dropoutForward(size_t i, int s, const float* x, float* y) {
  const OpSpec& op = ops_[i];
  const float rate = op.alpha, scale = 1.f / (1.f - rate);
  const int b = begin_[s];
  for (int r = b; r < b + count_[s]; r++) {
    uint64_t key = dropoutSeed_;
    uint64_t state = splitmix64(key) ^ ((uint64_t)step_ << 40) ^ ((uint64_t)i << 24) ^ (uint64_t)r;
    splitmix64(state);
    const size_t off = (size_t)(r - b) * op.inSize;
    k_->dropout_row(state, (size_t)op.inSize, rate, scale, x + off, aux_[i].data() + (size_t)r * op.inSize, y + off);
  }
}

// A convolution's forward pass on the shard's rows: through a table of pointers (implicit) or an
// im2col matrix; shardPacked: its weights packed beforehand (or null).
void Engine::convForward(size_t i, int s, const float* x, float* y, const float* shardPacked) {
  const int n = count_[s], b = begin_[s];
  const float* P = weightsOf(i, s);
  const OpSpec& op = ops_[i];
  const WindowGeom& g = op.g;
  const int M = n * g.outH * g.outW, K = g.kh * g.kw * g.cin;
  if (implicit_[i]) {
    // The products read the input through a table of pointers (see conv_taps), which the
    // backward pass reads too: the shard's rows of it, from row b·outH·outW on.
    const size_t ldt = tapStride(g);
    const float** taps = tapsOf(i, b);
    // The table depends only on where the shard's input lies and how many rows it has,
    // which stay the same from step to step: it is written again only when they change.
    TapsKey& key = tapsKey_[i][s];
    Grouped& grouped = grouped_[i][s];
    if (key.x != x || key.rows != M) {
      k_->conv_taps(g, x, zeroPixel_.data(), 0, M, taps, ldt);
      key = TapsKey{x, M};
      // The same rows grouped by their padding (see conv_rows_by_padding), for the forward
      // product: each row's sum is the same, so are its bits; none when no row has any.
      std::vector<int32_t> order((size_t)M);
      k_->conv_rows_by_padding(g, n, order.data());
      bool same = true;
      for (int r = 0; r < M && same; r++) same = order[(size_t)r] == r;
      const size_t T = (size_t)g.kh * g.kw;
      grouped.taps.assign(same ? 0 : T * M, nullptr);
      grouped.rows.assign(same ? 0 : (size_t)M, nullptr);
      for (int r = 0; r < M && !same; r++) {
        const int from = order[(size_t)r];
        for (size_t t = 0; t < T; t++) grouped.taps[t * M + r] = taps[t * ldt + from];
        grouped.rows[(size_t)r] = y + (size_t)from * g.cout;
      }
    }
    const float* bias = op.b >= 0 ? P + op.b : nullptr;
    if (op.pooledBy >= 0 && grouped.rows.empty()) {
      // A few examples at a time, each block's pooling while its rows are still in cache: the rows
      // of the product are independent, and each example is pooled on its own, so the bits are
      // those of the product over all rows followed by the pooling.
      const size_t j = (size_t)op.pooledBy;
      const OpSpec& pool = ops_[j];
      const int per = g.outH * g.outW;
      const int chunk = poolChunk(i);
      float* py = shardOutput(j, s);
      int32_t* arg = arg_[j].data() + (size_t)b * pool.outSize;
      for (int e0 = 0; e0 < n; e0 += chunk) {
        const int e = std::min(chunk, n - e0);
        const size_t r0 = (size_t)e0 * per;
        k_->conv_forward_implicit(g, e * per, taps + r0, ldt, zeroPixel_.data(), shardPacked, P + op.w,
                                  y + r0 * g.cout, nullptr, work_[s], bias, op.fusedRelu);
        k_->maxpool_forward(pool.g, e, y + r0 * g.cout, py + (size_t)e0 * pool.outSize,
                            arg + (size_t)e0 * pool.outSize);
      }
      return;
    }
    if (grouped.rows.empty())
      k_->conv_forward_implicit(g, M, taps, ldt, zeroPixel_.data(), shardPacked, P + op.w, y, nullptr, work_[s], bias,
                                op.fusedRelu);
    else
      k_->conv_forward_implicit(g, M, grouped.taps.data(), (size_t)M, zeroPixel_.data(), shardPacked, P + op.w,
                                nullptr, grouped.rows.data(), work_[s], bias, op.fusedRelu);
    if (op.pooledBy >= 0) {
      const size_t j = (size_t)op.pooledBy;
      k_->maxpool_forward(ops_[j].g, n, y, shardOutput(j, s), arg_[j].data() + (size_t)b * ops_[j].outSize);
    }
    return;
  }
  float* col = aux_[i].data() + (size_t)b * g.outH * g.outW * K;
  // Without a backward pass to come, the im2col matrix is not kept: it is built and used
  // kChunkRows rows at a time in a block that stays in cache (the rows of a product are
  // independent, so the outputs are the same bits).
  const int chunk = keepCol_ || (size_t)M * K * sizeof(float) <= kChunkBytes ? M : kChunkRows;
  // A small window (conv_small): the product and the bias in one pass over y.
  const bool small = k_->conv_small(g);
  for (int r0 = 0; r0 < M; r0 += chunk) {
    const int rows = std::min(chunk, M - r0);
    if (op.dilH != 1 || op.dilW != 1)
      dilatedIm2col(op, x, r0, rows, col);
    else
      k_->im2col_rows(g, x, r0, rows, col);
    float* yr = y + (size_t)r0 * g.cout;
    if (small)
      k_->conv_small_forward(rows, K, g.cout, col, P + op.w, op.b >= 0 ? P + op.b : nullptr, yr);
    else if (shardPacked)
      k_->gemm_packed(rows, g.cout, K, col, K, false, shardPacked, yr, g.cout, false, work_[s]);
    else
      k_->gemm(rows, g.cout, K, col, K, false, P + op.w, g.cout, false, yr, g.cout, false, work_[s]);
  }
  if (op.b >= 0 && !small) k_->add_bias(M, g.cout, P + op.b, y);
  if (op.fusedRelu) k_->relu_forward((size_t)M * g.cout, y, y);
}

// BnMoments: the shard's partial sums of a batch norm's input, per channel.
void Engine::runBnMoments(const Item& it, int s) {
  const size_t i = (size_t)it.op;
  const OpSpec& op = ops_[i];
  const int c = op.channels;
  k_->channel_moments(bnRows(op, count_[s]), c, shardInput(i, s), partOf(s), partOf(s) + c);
}

// BnApply: a batch norm with the batch's statistics (stats_), on the shard's rows.
void Engine::runBnApply(const Item& it, int s) {
  const float* P = weightsOf((size_t)it.op, s);
  const size_t i = (size_t)it.op;
  const OpSpec& op = ops_[i];
  const int c = op.channels;
  const float* stats = stats_[i].data();
  const float* gamma = op.gamma >= 0 ? P + op.gamma : ones_.data();
  const float* beta = op.beta >= 0 ? P + op.beta : zeros_.data();
  if (op.bnPool >= 0) {
    const size_t j = (size_t)op.bnPool;
    k_->bn_apply_maxpool(ops_[j].g, count_[s], shardInput(i, s), stats, stats + 2 * c, gamma, beta, op.fusedRelu,
                         shardOutput(j, s), arg_[j].data() + (size_t)begin_[s] * ops_[j].outSize);
    return;
  }
  k_->bn_apply(bnRows(op, count_[s]), c, shardInput(i, s), stats, stats + 2 * c, gamma, beta, shardOutput(i, s),
               op.fusedRelu);
}

// BnBwdSum: the shard's partial sums of a batch norm's backward pass (dgamma and dbeta, or their
// stand-ins in partOf when the layer has none).
void Engine::runBnBackwardSums(const Item& it, int s) {
  const int b = begin_[s];
  const size_t i = (size_t)it.op;
  const OpSpec& op = ops_[i];
  const int c = op.channels;
  const float* stats = stats_[i].data();
  float* G = grads_[s].data();
  float* dgamma = op.gamma >= 0 && !op.frozen ? G + op.gamma : partOf(s);
  float* dbeta = op.beta >= 0 && !op.frozen ? G + op.beta : partOf(s) + c;
  k_->bn_backward_sums(bnRows(op, count_[s]), c, shardInput(i, s), shardOutput(i, s), it.dy + (size_t)b * actStride_,
                       stats, stats + 2 * c, dgamma, dbeta, op.fusedRelu && !op.dyMasked);
}

// BnBwdDx: a batch norm's gradient with respect to its input, on the shard's rows, from the sums
// of both shards (bnTotal_).
void Engine::runBnBackwardDx(const Item& it, int s) {
  const int b = begin_[s];
  const float* P = weightsOf((size_t)it.op, s);
  const size_t i = (size_t)it.op;
  const OpSpec& op = ops_[i];
  const int c = op.channels;
  const float* stats = stats_[i].data();
  const int total = n_ * (op.inSize / c);
  k_->bn_backward_dx(bnRows(op, count_[s]), c, shardInput(i, s), it.dy + (size_t)b * actStride_, stats,
                     stats + 2 * c, op.gamma >= 0 ? P + op.gamma : ones_.data(), bnTotal_.data(), bnTotal_.data() + c,
                     1.f / (float)total, it.dx + (size_t)b * actStride_);
}

// Bwd: op it.op's backward pass on the shard's rows: its parameters' gradient (added to the
// shard's grads_) and, when it.dx is given, the gradient with respect to its input.
void Engine::runBackward(const Item& it, int s) {
  const int n = count_[s], b = begin_[s];
  const float* P = weightsOf((size_t)it.op, s);
  const size_t i = (size_t)it.op;
  const OpSpec& op = ops_[i];
  const float* x = shardInput(i, s);
  const float* y = shardOutput(i, s);
  float* G = grads_[s].data();
  const float* dy = it.dy + (size_t)b * actStride_;
  float* dx = it.dx ? it.dx + (size_t)b * actStride_ : nullptr;
  switch (op.kind) {
    case OpKind::Conv:
      // dy arrives as the gradient of the fused ReLU's output (this op's buffer holds that
      // output): masked in place, it is the gradient of the product.
      if (op.fusedRelu && !op.dyMasked) k_->relu_backward((size_t)n * op.outSize, y, dy, const_cast<float*>(dy));
      convBackward(i, s, const_cast<float*>(dy), dx, shardPacking(it, s),
                   it.poolDy ? it.poolDy + (size_t)b * actStride_ : nullptr);
      break;
    case OpKind::Dense:
      if (!op.frozen) {
        if (i == 0 && rowsInPlace_)
          k_->gemm_narrow_rows(op.inSize, op.outSize, n, inputRows_.data() + b, true, dy, op.outSize, G + op.w,
                               op.outSize, false);
        else
          k_->gemm_narrow(op.inSize, op.outSize, n, x, op.inSize, true, dy, op.outSize, false, G + op.w,
                          op.outSize, false, work_[s]);
        if (op.b >= 0) k_->col_sums(n, op.outSize, dy, G + op.b);
      }
      if (dx)
        k_->gemm_narrow(n, op.inSize, op.outSize, dy, op.outSize, false, P + op.w, op.outSize, true, dx, op.inSize,
                        false, work_[s]);
      break;
    case OpKind::Relu:
      if (dx) k_->relu_backward((size_t)n * op.inSize, y, dy, dx);
      break;
    case OpKind::Tanh:
      if (dx) k_->tanh_backward((size_t)n * op.inSize, y, dy, dx);
      break;
    case OpKind::Act:
      if (dx) k_->act_backward((int)op.act, op.alpha, (size_t)n * op.inSize, x, y, dy, dx);
      break;
    case OpKind::Softmax:
      if (dx) k_->softmax_backward(n * (op.inSize / op.channels), op.channels, y, dy, dx);
      break;
    case OpKind::AvgPool:
      if (dx) k_->avgpool_backward(op.g, n, dy, dx);
      break;
    case OpKind::LayerNorm:
      layerNormBackward(i, s, dy, dx);
      break;
    case OpKind::Depthwise:
      k_->depthwise_backward(op.g, op.depthMul, n, x, P + op.w, dy, op.frozen ? nullptr : G + op.w, dx);
      if (op.b >= 0 && !op.frozen) k_->col_sums(n * op.g.outH * op.g.outW, op.g.cout, dy, G + op.b);
      break;
    case OpKind::Pad:
      if (dx) k_->pad_backward(op.g, n, dy, dx);
      break;
    case OpKind::Dropout:
      if (dx && dropoutOn_) {
        const float* mask = aux_[i].data() + (size_t)b * op.inSize;
        for (size_t j = 0, m = (size_t)n * op.inSize; j < m; j++) dx[j] = dy[j] * mask[j];
      } else if (dx) {
        std::memcpy(dx, dy, sizeof(float) * (size_t)n * op.inSize);
      }
      break;
    case OpKind::MaxPool:
      if (dx) k_->maxpool_backward(op.g, n, dy, arg_[i].data() + (size_t)b * op.outSize, op.reluBelow ? y : nullptr, dx);
      break;
    case OpKind::Add:
    case OpKind::Multiply:
    case OpKind::Concat:
      if (dx) mergeBackward(i, s, it.which, dy, dx);
      break;
    case OpKind::BatchNorm:
      break;
  }
}

// Examples per block when a convolution and the max pooling above it run a block at a time: about
// kPoolChunkBytes of the convolution's output.
int Engine::poolChunk(size_t i) const {
  const WindowGeom& g = ops_[i].g;
  return (int)std::max<size_t>(1, kPoolChunkBytes / ((size_t)g.outH * g.outW * g.cout * sizeof(float)));
}

// The phase-by-phase input gradient of convolution i on shard s's rows, chunk examples at a time,
// before(e0, e) (when given) writing dy's examples [e0, e0 + e) just before their block. Each
// example's dx depends on its dy alone, and a row's sum is the same in any block, so are its bits.
void Engine::dxPhased(size_t i, int s, const float* dy, float* dx, const float* shardPacked, int chunk,
                      const std::function<void(int, int)>& before) {
  const int n = count_[s];
  const OpSpec& op = ops_[i];
  const WindowGeom& g = op.g;
  const size_t dySample = (size_t)g.outH * g.outW * g.cout, dxSample = (size_t)op.inSize;
  // The tables depend only on where dy and dx lie, the shard's row count and the block size.
  DxTables& t = dxTables_[i][s];
  if (t.dy != dy || t.dx != dx || t.n != n || t.chunk != chunk) {
    t.taps.clear();
    t.rows.clear();
    t.tapsAt.clear();
    t.rowsAt.clear();
    for (int e0 = 0; e0 < n; e0 += chunk) {
      const int e = std::min(chunk, n - e0);
      size_t nt = 0, nr = 0;
      k_->conv_dx_table_size(g, e, &nt, &nr);
      t.tapsAt.push_back(t.taps.size());
      t.rowsAt.push_back(t.rows.size());
      t.taps.resize(t.taps.size() + nt);
      t.rows.resize(t.rows.size() + nr);
      k_->conv_dx_taps(g, e, dy + (size_t)e0 * dySample, dx + (size_t)e0 * dxSample, zeroPixel_.data(),
                       t.taps.data() + t.tapsAt.back(), t.rows.data() + t.rowsAt.back());
    }
    t.dy = dy;
    t.dx = dx;
    t.n = n;
    t.chunk = chunk;
  }
  // Without a packing ready (no earlier flush made one), the phases' weights are packed
  // here, into the shard's workspace, which the products then do not need.
  const float* packed = shardPacked;
  if (!packed) {
    k_->conv_dx_pack(g, weightsOf(i, s) + op.w, work_[s], 0, 1);
    packed = work_[s];
  }
  for (int e0 = 0, k = 0; e0 < n; e0 += chunk, k++) {
    const int e = std::min(chunk, n - e0);
    if (before) before(e0, e);
    k_->conv_dx_phases(g, e, t.taps.data() + t.tapsAt[(size_t)k], t.rows.data() + t.rowsAt[(size_t)k],
                       zeroPixel_.data(), packed, work_[s]);
  }
}

// A convolution's backward pass on the shard's rows (dy, dx: the shard's rows, dx null when not
// wanted); shardPacked: its weights packed as dx's product reads them (or null); poolDy: see below.
void Engine::convBackward(size_t i, int s, float* dy, float* dx, const float* shardPacked, const float* poolDy) {
  const int n = count_[s], b = begin_[s];
  const float* P = weightsOf(i, s);
  const OpSpec& op = ops_[i];
  float* G = grads_[s].data();
  const WindowGeom& g = op.g;
  const int M = n * g.outH * g.outW, K = g.kh * g.kw * g.cin;
  const size_t colOffset = (size_t)b * g.outH * g.outW * K;
  // With poolDy, dy is first written by the backward pass of the max pooling above (see
  // OpSpec::pooledBy): a few examples at a time, each block's input gradient computed while that
  // block of dy is in cache (phase by phase), or all of it at once.
  const int per = g.outH * g.outW;
  const bool chunked = poolDy && dx && dxPhased_[i];
  if (poolDy) {
    const size_t j = (size_t)op.pooledBy;
    const OpSpec& pool = ops_[j];
    const int32_t* arg = arg_[j].data() + (size_t)b * pool.outSize;
    const float* py = pool.reluBelow ? shardOutput(j, s) : nullptr;
    if (chunked)
      dxPhased(i, s, dy, dx, shardPacked, poolChunk(i), [&](int e0, int e) {
        const size_t o = (size_t)e0 * pool.outSize;
        k_->maxpool_backward(pool.g, e, poolDy + o, arg + o, py ? py + o : nullptr, dy + (size_t)e0 * per * g.cout);
      });
    else
      k_->maxpool_backward(pool.g, n, poolDy, arg, py, dy);
  }
  if (op.frozen) {
    // Fixed weights: no gradient for them, only dx below.
  } else if (implicit_[i]) {
    k_->conv_weight_grad_implicit(g, M, tapsOf(i, b), tapStride(g), zeroPixel_.data(), dy, G + op.w, work_[s]);
    if (op.b >= 0) k_->col_sums(M, g.cout, dy, G + op.b);
  } else if (k_->conv_small(g)) {
    k_->conv_small_grads(M, K, g.cout, aux_[i].data() + colOffset, dy, G + op.w, op.b >= 0 ? G + op.b : nullptr);
  } else {
    k_->gemm(K, g.cout, M, aux_[i].data() + colOffset, K, true, dy, g.cout, false, G + op.w, g.cout, false, work_[s]);
    if (op.b >= 0) k_->col_sums(M, g.cout, dy, G + op.b);
  }
  if (chunked) {
    // The input gradient went block by block with the pooling's backward pass, above.
  } else if (dx && dxPhased_[i]) {
    dxPhased(i, s, dy, dx, shardPacked, n, nullptr);
  } else if (dx) {
    // dx = col2im(dy·Wᵀ), kDxChunkRows rows of dy·Wᵀ at a time in a block that stays in
    // cache: its rows are independent, and col2im adds them to dx in row order either way.
    float* dcol = dcol_.data() + (size_t)s * kDxChunkRows * maxK_;
    std::memset(dx, 0, sizeof(float) * (size_t)n * op.inSize);
    for (int r0 = 0; r0 < M; r0 += kDxChunkRows) {
      const int rows = std::min(kDxChunkRows, M - r0);
      const float* dyr = dy + (size_t)r0 * g.cout;
      if (shardPacked)
        k_->gemm_packed(rows, K, g.cout, dyr, g.cout, false, shardPacked, dcol, K, false, work_[s]);
      else
        k_->gemm(rows, K, g.cout, dyr, g.cout, false, P + op.w, g.cout, true, dcol, K, false, work_[s]);
      if (op.dilH != 1 || op.dilW != 1)
        dilatedCol2im(op, r0, rows, dcol, dx);
      else
        k_->col2im_rows(g, r0, rows, dcol, dx);
    }
  }
}

// Queues the forward pass of the current batch (its input in act_[0], or queued by a Copy item);
// flushes where batch statistics need both shards.
void Engine::forward(bool training, bool backwardFollows) {
  keepCol_ = backwardFollows;
  // Packings queued now serve this pass from its first flush on (a batch norm with batch statistics),
  // or later calls with the same weights (a task's predictions); without either they would be wasted.
  const bool flushes = training && hasBatchNorm_;
  if (flushes || !backwardFollows) queuePacks(flushes);
  for (size_t i = 0; i < ops_.size(); i++) {
    OpSpec& op = ops_[i];
    if (op.skip || op.inConvForward || (training && op.inBnApply)) continue;
    if (op.kind != OpKind::BatchNorm || !training) {
      push(Stage::Fwd, (int)i, nullptr, nullptr, packedFor(i, 0));
      continue;
    }
    const int c = op.channels, perExample = op.inSize / c;
    push(Stage::BnMoments, (int)i);
    flush();
    // The shards' means and squared deviations merged (Chan et al.): with counts n0, n1 and
    // δ = mean1 − mean0, mean = mean0 + δ·n1/n and M2 = M2₀ + M2₁ + δ²·n0·n1/n.
    const float n0 = (float)(count_[0] * perExample), n1 = (float)(count_[1] * perExample);
    const float n = n0 + n1;
    const float* mean0 = partOf(0);
    const float* mean1 = partOf(1);
    const float* m20 = partOf(0) + c;
    const float* m21 = partOf(1) + c;
    float* st = stats_[i].data();
    // The moving statistics follow tfjs: moving ← moving − (moving − batch)·(1 − momentum).
    const float decay = 1.f - op.momentum;
    for (int j = 0; j < c; j++) {
      const float delta = mean1[j] - mean0[j];
      st[j] = mean0[j] + delta * (n1 / n);
      st[c + j] = (m20[j] + m21[j] + delta * delta * (n0 * n1 / n)) / n;
      st[2 * c + j] = 1.f / std::sqrt(st[c + j] + op.eps);
      op.movingMean[j] = op.movingMean[j] - (op.movingMean[j] - st[j]) * decay;
      op.movingVar[j] = op.movingVar[j] - (op.movingVar[j] - st[c + j]) * decay;
    }
    push(Stage::BnApply, (int)i);
  }
}

// Queues the backward pass (see BwdPlan); d(loss)/d(output) must be in gbuf_[0] (a queued Loss
// item writes it there); shard s's rows of a gradient start at begin_[s]·actStride_ in each buffer.
// Parameter gradients go to each shard's grads_ (partial sums). With inputGrad, returns the buffer
// that will hold the gradient with respect to the network's input once flushed.
float* Engine::backward(bool inputGrad) {
  const BwdPlan& plan = plans_[(lossFusesLastOp(ops_, lossKind_) ? 2 : 0) + (inputGrad ? 1 : 0)];
  const float* poolDy = nullptr;
  for (size_t k = 0; k < plan.actions.size(); k++) {
    const BwdAction& a = plan.actions[k];
    const OpSpec& op = ops_[(size_t)a.op];
    float* dy = gbuf_[(size_t)a.dy].data();
    float* dx = a.dx >= 0 ? gbuf_[(size_t)a.dx].data() : nullptr;
    // A max pooling run by the convolution below it in the forward pass has its backward pass run
    // by that convolution's too (see convBackward), when the convolution's comes next.
    if (op.kind == OpKind::MaxPool && op.inConvForward && dx && a.addTo < 0 && k + 1 < plan.actions.size()) {
      const BwdAction& c = plan.actions[k + 1];
      if (ops_[(size_t)c.op].pooledBy == a.op && c.dy == a.dx) {
        poolDy = dy;
        continue;
      }
    }
    if (op.kind == OpKind::BatchNorm) {
      const int c = op.channels;
      push(Stage::BnBwdSum, a.op, dy, nullptr);
      flush();
      const bool own = !op.frozen;  // a frozen batch norm's sums are in the stand-ins
      const float* dg0 = op.gamma >= 0 && own ? grads_[0].data() + op.gamma : partOf(0);
      const float* dg1 = op.gamma >= 0 && own ? grads_[1].data() + op.gamma : partOf(1);
      const float* db0 = op.beta >= 0 && own ? grads_[0].data() + op.beta : partOf(0) + c;
      const float* db1 = op.beta >= 0 && own ? grads_[1].data() + op.beta : partOf(1) + c;
      for (int j = 0; j < c; j++) {
        bnTotal_[j] = dg0[j] + dg1[j];
        bnTotal_[c + j] = db0[j] + db1[j];
      }
      if (dx) push(Stage::BnBwdDx, a.op, dy, dx);
    } else {
      push(Stage::Bwd, a.op, dy, dx, dx ? packedFor((size_t)a.op, 1) : nullptr, a.which);
      queue_.back().poolDy = poolDy;
      poolDy = nullptr;
    }
    if (a.addTo >= 0) push(Stage::AddGrad, in_[(size_t)a.op][(size_t)a.which], dx, gbuf_[(size_t)a.addTo].data());
  }
  return plan.inputBuf >= 0 ? gbuf_[(size_t)plan.inputBuf].data() : nullptr;
}

// The loss of the last flushed batch: the shards' sums, in order, over examples (or elements).
double Engine::meanLoss() const {
  const double count = lossKind_ == LossKind::SoftmaxXent ? (double)n_ : (double)n_ * outputSize_;
  return (lossPart_[0] + lossPart_[1]) / count;
}

// last: the inner loop's last step, which leaves m as it stands (see the adam kernel).
void Engine::setOptimizerCoefficients(const AdaptArgs& a, bool last) {
  optStep += 1;
  if (optKind == OptKind::Sgd) {
    coef_[0] = (float)a.lr;
    return;
  }
  coef_[8] = a.beta1 == 0 ? (last ? 1.f : 0.f) : momentsZero_ ? 1.f : 2.f;
  coef_[9] = momentsZero_ ? 0.f : 1.f;
  momentsZero_ = false;
  mBehind_ = coef_[8] == 0.f;
  const double t = optStep;
  coef_[0] = (float)a.lr;
  coef_[1] = (float)a.beta1;
  coef_[2] = (float)(1 - a.beta1);
  coef_[3] = (float)a.beta2;
  coef_[4] = (float)(1 - a.beta2);
  coef_[5] = (float)(1 - std::pow(a.beta1, t));
  coef_[6] = (float)(1 - std::pow(a.beta2, t));
  coef_[7] = (float)a.eps;
}

double Engine::adapt(const AdaptArgs& a, float* adapted, float* lastStep) {
  if (a.reset || optKind != a.opt) resetOptimizer(a.opt);
  ensure(a.batchSize);
  split(a.batchSize);
  args_ = &a;
  lossKind_ = a.loss;
  lossDivisor_ = a.lossDivisor;
  dropoutOn_ = true;
  dropoutSeed_ = a.dropoutSeed;
  targets_ = batchTargets_.data();
  adaptedOut_ = adapted;
  lastStepOut_ = lastStep;
  // Whatever happens in between, the engine is back on φ at the end of this call.
  struct Restore {
    Engine* e;
    ~Restore() {
      e->useWeights(e->params_.data(), e->params_.data());
      e->stepFrom_ = nullptr;
      e->stepTo_ = nullptr;
      e->abandonQueue();
      e->args_ = nullptr;
      e->rowsInPlace_ = false;
      e->dropoutOn_ = false;
      e->deltaOut_ = nullptr;
      e->weightsChanged();
      // A loop that stopped before its last step has no m to leave (β1 = 0): the moments start
      // over, as a reset would.
      if (e->mBehind_) e->resetOptimizer(e->optKind);
    }
  } restore{this};
  rowsInPlace_ = denseFirst_;
  // The last step's optimizer pass writes each parameter's change into lastStep itself (the
  // bits of W − W⁽ᵏ⁻¹⁾); without an optimizer, or without steps, Finish takes it from a snapshot.
  lastStepWritten_ = false;
  const bool deltaInStep = optKind != OptKind::None && a.numBatches > 0;
  // On two threads the second shard works on a copy of its own, unless the weights are large (see
  // shardW_).
  const bool secondCopy = pool_ && (size_t)P_ * sizeof(float) <= kOwnCopyMaxBytes;
  if (secondCopy && cur1_.size() != (size_t)P_) cur1_.assign(P_, 0.f);
  // With one copy of the weights for both shards, the loop reads φ where it lies: the first step
  // runs on φ and its optimizer pass writes cur_, and the last step's writes the adapted weights
  // (no copy of the weights at the start or at the end).
  const bool direct = !secondCopy && deltaInStep;
  if (direct)
    useWeights(params_.data(), params_.data());
  else
    useWeights(cur_.data(), secondCopy ? cur1_.data() : cur_.data());
  const bool ownCopies = shardW_[0] != shardW_[1];
  if (!direct) {
    push(Stage::Start, -1);
    flush();
  }
  weightsChanged();
  if (!deltaInStep) push(Stage::Snapshot, -1);
  double lossSum = 0;
  for (int k = 0; k < a.numBatches; k++) {
    step_ = k;
    if (k > 0 && ownCopies) push(Stage::Sync, -1);
    if (k == a.numBatches - 1 && !deltaInStep) push(Stage::Snapshot, -1);
    deltaOut_ = k == a.numBatches - 1 && deltaInStep ? lastStepOut_ : nullptr;
    stepFrom_ = direct ? (k == 0 ? params_.data() : cur_.data()) : nullptr;
    stepTo_ = direct ? (k == a.numBatches - 1 ? adaptedOut_ : cur_.data()) : nullptr;
    push(Stage::Copy, -1);
    forward(true, true);
    push(Stage::Loss, -1);
    backward(false);
    if (lateEnd_ < P_ && optKind != OptKind::None) {
      // The parameters from lateEnd_ on have their whole gradient before the last flush of the
      // backward pass, which neither reads nor writes them: their step runs in that flush, beside
      // the first layers' backward pass, and the few parameters of those layers are stepped here
      // once it is done (each value's step is the same arithmetic wherever it runs).
      setOptimizerCoefficients(a, k == a.numBatches - 1);
      push(Stage::OptEarly, -1);
      flush();
      optimizerStep(stepFrom_ ? stepFrom_ : w_, stepTo_ ? stepTo_ : w_, 0, lateEnd_, -1);
      if (ownCopies) std::memcpy(shardW_[1], w_, sizeof(float) * (size_t)lateEnd_);
      syncFrom_ = lateEnd_;
    } else {
      flush();
      setOptimizerCoefficients(a, k == a.numBatches - 1);
      push(Stage::Opt, -1);
      flush();
      syncFrom_ = 0;
    }
    lastStepWritten_ = deltaOut_ != nullptr;
    deltaOut_ = nullptr;
    if (direct && k == 0) useWeights(cur_.data(), cur_.data());
    lossSum += meanLoss();
    if (a.stepLosses) a.stepLosses[k] = meanLoss();
    if (a.stepOutputs)
      std::memcpy(a.stepOutputs + (size_t)k * a.batchSize * outputSize_, tensorData((int)ops_.size()),
                  sizeof(float) * (size_t)a.batchSize * outputSize_);
    weightsChanged();
  }
  stepFrom_ = nullptr;
  stepTo_ = nullptr;
  if (!direct) {
    push(Stage::Finish, -1);
    flush();
  }
  return a.numBatches > 0 ? lossSum / a.numBatches : 0;
}

int Engine::fitSteps(const FitArgs& f) {
  AdaptArgs a;
  a.opt = f.opt;
  a.lr = f.lr;
  a.beta1 = f.beta1;
  a.beta2 = f.beta2;
  a.eps = f.eps;
  a.loss = f.loss;
  a.inputsData = f.inputs;
  a.targetsData = f.targets;
  fitLast_.resize((size_t)P_);
  const float keep = (float)(1 - f.alpha), move = (float)f.alpha;
  int counter = f.counter;
  size_t pos = 0, total = 0;
  for (int k = 0; k < f.numBatches; k++) total += (size_t)f.sizes[k];
  for (int k = 0; k < f.numBatches;) {
    // One adapt call per run of equal-sized batches that does not pass a synchronisation; it
    // writes the adapted weights over φ (adapt reads φ only before its first step).
    const int size = f.sizes[k];
    const int limit = f.period > 0 ? f.period - counter : f.numBatches;
    int n = 1;
    while (k + n < f.numBatches && n < limit && f.sizes[k + n] == size) n++;
    a.batchSize = size;
    a.numBatches = n;
    a.batchesData = f.order + pos;
    a.batchesEnd = f.order + total;
    a.stepLosses = f.losses ? f.losses + k : nullptr;
    a.stepOutputs = f.outputs ? f.outputs + pos * (size_t)outputSize_ : nullptr;
    uint64_t key = (uint64_t)(f.firstStep + k) * 0x9E3779B97F4A7C15ull;
    a.dropoutSeed = f.dropoutSeed ^ splitmix64(key);
    adapt(a, params_.data(), fitLast_.data());
    k += n;
    pos += (size_t)n * size;
    counter += n;
    if (f.period > 0 && counter >= f.period) {
      float* p = params_.data();
      for (int64_t i = 0; i < P_; i++) {
        const float s = keep * f.slow[i] + move * p[i];
        f.slow[i] = s;
        p[i] = s;
      }
      counter = 0;
    }
  }
  weightsChanged();
  return counter;
}

// Computes reptileUpdate's values for [lo, hi) into nextParams_; returns the first index there
// whose value is not finite, or −1.
int64_t Engine::reptileUpdateRange(const float* const* adapted, int n, double epsilon, int64_t lo, int64_t hi) {
  return k_->reptile_update(lo, hi, adapted, n, epsilon, params_.data(), nextParams_.data());
}

namespace {
struct UpdateJob {
  Engine* engine;
  const float* const* adapted;
  int n;
  double epsilon;
  int64_t half, size;
  int64_t bad[Engine::kShards];
};
}  // namespace

void Engine::runUpdatePart(void* arg, int s) {
  UpdateJob& job = *static_cast<UpdateJob*>(arg);
  const int64_t lo = s == 0 ? 0 : job.half, hi = s == 0 ? job.half : job.size;
  job.bad[s] = job.engine->reptileUpdateRange(job.adapted, job.n, job.epsilon, lo, hi);
}

int64_t Engine::reptileUpdate(const float* const* adapted, int n, double epsilon) {
  nextParams_.resize((size_t)P_);
  // Every value is computed on its own, so the two halves can run on two threads.
  UpdateJob job{this, adapted, n, epsilon, paramSplit(0), P_, {-1, -1}};
  if (pool_) {
    pool_->run(&Engine::runUpdatePart, &job);
  } else {
    for (int s = 0; s < kShards; s++) runUpdatePart(&job, s);
  }
  const int64_t bad = job.bad[0] >= 0 ? job.bad[0] : job.bad[1];
  if (bad >= 0) return bad;
  std::memcpy(params_.data(), nextParams_.data(), sizeof(float) * (size_t)P_);
  weightsChanged();
  return -1;
}

void Engine::predict(const float* x, int n, bool batchStats, float* out) {
  weightsChanged();
  predictOnce(x, n, batchStats, out);
}

void Engine::predictOnce(const float* x, int n, bool batchStats, float* out) {
  dropoutOn_ = false;
  ensure(n);
  split(n);
  std::memcpy(act_[0].data(), x, sizeof(float) * (size_t)n * inputSize_);
  forward(batchStats, false);
  flush();
  std::memcpy(out, tensorData((int)ops_.size()), sizeof(float) * (size_t)n * outputSize_);
}

void Engine::predictWith(const float* weights, const float* x, int n, bool batchStats, float* out, bool reuse) {
  struct Restore {
    Engine* e;
    ~Restore() {
      e->useWeights(e->params_.data(), e->params_.data());
      e->abandonQueue();
    }
  } restore{this};
  useWeights(const_cast<float*>(weights), const_cast<float*>(weights));
  if (!(reuse && weights == lastPredictWeights_ && version_ == lastPredictVersion_)) weightsChanged();
  lastPredictWeights_ = nullptr;
  predictOnce(x, n, batchStats, out);
  lastPredictWeights_ = weights;
  lastPredictVersion_ = version_;
}

double Engine::gradients(const float* x, const float* targets, int n, LossKind loss, float* grad, float* inputGrad,
                         float* output, const uint64_t* dropoutSeed) {
  weightsChanged();
  dropoutOn_ = dropoutSeed != nullptr;
  dropoutSeed_ = dropoutSeed ? *dropoutSeed : 0;
  step_ = 0;
  ensure(n);
  split(n);
  std::memcpy(act_[0].data(), x, sizeof(float) * (size_t)n * inputSize_);
  lossKind_ = loss;
  lossDivisor_ = 0;
  targets_ = targets;
  forward(true, true);
  push(Stage::Loss, -1);
  float* dIn = backward(true);
  flush();
  targets_ = nullptr;
  dropoutOn_ = false;
  std::memcpy(output, tensorData((int)ops_.size()), sizeof(float) * (size_t)n * outputSize_);
  for (int64_t i = 0; i < P_; i++) grad[i] = grads_[0][i] + grads_[1][i];
  for (int s = 0; s < kShards && dIn; s++)
    std::memcpy(inputGrad + (size_t)begin_[s] * inputSize_, dIn + (size_t)begin_[s] * actStride_,
                sizeof(float) * (size_t)count_[s] * inputSize_);
  return meanLoss();
}

}  // namespace reptile
