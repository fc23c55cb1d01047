#include "engine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#ifdef REPTILE_PROFILE
#include <chrono>
double g_prof[2][64];
#define PROF_START auto prof_t0 = std::chrono::steady_clock::now();
#define PROF_END(dir, i) g_prof[dir][i] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - prof_t0).count();
#else
#define PROF_START
#define PROF_END(dir, i)
#endif

namespace reptile {

// A helper thread that takes chunks of the current job alongside the calling thread. Chunks are
// claimed with a generation-tagged counter, so a helper that wakes late cannot take a chunk of a
// later job, and the caller does any chunk the helper has not taken: a busy machine only loses
// the helper, never waits for it. The helper spins briefly between jobs (they come every few
// tens of microseconds inside an inner loop), then sleeps.
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

  static void runOn(void* pool, int chunks, void (*fn)(void*, int), void* arg) {
    static_cast<Pool*>(pool)->run(chunks, fn, arg);
  }

 private:
  void run(int chunks, void (*fn)(void*, int), void* arg) {
    const uint64_t g = gen_.load() + 1;
    fn_ = fn;
    arg_ = arg;
    total_.store(chunks);
    done_.store(0);
    next_.store(g << 32);
    gen_.store(g);
    if (sleeping_.load()) {
      std::lock_guard<std::mutex> lk(m_);
      cv_.notify_one();
    }
    work(g);
    while (done_.load(std::memory_order_acquire) < chunks) pause();
  }

  void work(uint64_t g) {
    for (;;) {
      uint64_t v = next_.load();
      if ((v >> 32) != g) return;
      const int idx = (int)(v & 0xffffffffu);
      if (idx >= total_.load()) return;
      if (!next_.compare_exchange_weak(v, v + 1)) continue;
      fn_(arg_, idx);
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      auto t0 = std::chrono::steady_clock::now();
      unsigned spins = 0;
      while (gen_.load() == seen) {
        pause();
        if ((++spins & 255) == 0 && std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(300)) {
          std::unique_lock<std::mutex> lk(m_);
          sleeping_.store(true);
          cv_.wait(lk, [&] { return gen_.load() != seen; });
          sleeping_.store(false);
        }
      }
      if (stop_.load()) return;
      seen = gen_.load();
      work(seen);
    }
  }

  static void pause() {
#if defined(__x86_64__) || defined(_M_X64)
    __builtin_ia32_pause();
#else
    std::this_thread::yield();
#endif
  }

  std::atomic<uint64_t> gen_{0}, next_{0};
  std::atomic<int> total_{0}, done_{0};
  std::atomic<bool> stop_{false}, sleeping_{false};
  void (*fn_)(void*, int) = nullptr;
  void* arg_ = nullptr;
  std::mutex m_;
  std::condition_variable cv_;
  std::thread helper_;
};

void Engine::setThreads(int threads) {
  if (threads > 1 && !pool_) pool_ = std::make_unique<Pool>();
  if (threads <= 1) pool_.reset();
  parallel_ = Parallel{threads > 1 ? 2 : 1, pool_.get(), &Pool::runOn};
  par_ = threads > 1 ? &parallel_ : nullptr;
}

Engine::Engine(std::vector<OpSpec> ops, int inputSize, int outputSize, int64_t paramSize, const Kernels* k)
    : ops_(std::move(ops)), inputSize_(inputSize), outputSize_(outputSize), P_(paramSize), k_(k) {
  // Fold a ReLU that directly follows a batch norm into it: the ReLU's output then lives in the
  // batch norm's output buffer and its backward pass reads it from there.
  for (size_t i = 0; i + 1 < ops_.size(); i++) {
    if (ops_[i].kind == OpKind::BatchNorm && ops_[i + 1].kind == OpKind::Relu) {
      ops_[i].fusedRelu = true;
      ops_[i + 1].skip = true;
    }
  }
  size_t bytes = k_->gemm_work_floats() * sizeof(float);
  bytes = (bytes + 63) / 64 * 64;
  work_ = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!work_) throw std::runtime_error("out of memory");
  params_.assign(P_, 0.f);
  grad_.assign(P_, 0.f);
  phi_.assign(P_, 0.f);
  before_.assign(P_, 0.f);
  adapted_.assign(P_, 0.f);
  lastStep_.assign(P_, 0.f);
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
  scratch_.assign(2 * maxC + 1, 0.f);
  ones_.assign(maxC + 1, 1.f);
  zeros_.assign(maxC + 1, 0.f);
}

Engine::~Engine() { std::free(work_); }

void Engine::resetOptimizer(OptKind kind) {
  optKind = kind;
  optStep = 0;
  if (kind == OptKind::Adam) {
    m.assign(P_, 0.f);
    v.assign(P_, 0.f);
  } else {
    m.clear();
    v.clear();
  }
}

// Grows the per-batch buffers to hold n examples; never shrinks, so steady state allocates nothing.
void Engine::ensure(int n) {
  if (n <= cap_) return;
  cap_ = n;
  size_t maxAct = (size_t)inputSize_, maxCol = 0;
  act_[0].assign((size_t)n * inputSize_, 0.f);
  for (size_t i = 0; i < ops_.size(); i++) {
    const OpSpec& op = ops_[i];
    act_[i + 1].assign(op.skip ? 0 : (size_t)n * op.outSize, 0.f);
    maxAct = std::max(maxAct, (size_t)op.outSize);
    maxAct = std::max(maxAct, (size_t)op.inSize);
    if (op.kind == OpKind::Conv) {
      const size_t col = (size_t)n * op.g.outH * op.g.outW * op.g.kh * op.g.kw * op.g.cin;
      aux_[i].assign(col, 0.f);
      maxCol = std::max(maxCol, col);
    } else if (op.kind == OpKind::MaxPool) {
      arg_[i].assign((size_t)n * op.outSize, 0);
    }
  }
  g0_.assign(maxAct * n, 0.f);
  g1_.assign(maxAct * n, 0.f);
  dcol_.assign(maxCol, 0.f);
  batchTargets_.assign((size_t)n * std::max(outputSize_, 1), 0.f);
}

// A skipped ReLU's output is the batch norm's output before it.
static inline std::vector<float>& outputOf(std::vector<std::vector<float>>& act, const std::vector<OpSpec>& ops,
                                           size_t i) {
  while (i > 0 && ops[i].skip) i--;
  return act[i + 1];
}

void Engine::forward(int n, bool training) {
  const float* P = params_.data();
  for (size_t i = 0; i < ops_.size(); i++) {
    OpSpec& op = ops_[i];
    if (op.skip) continue;
    const float* x = outputOf(act_, ops_, i == 0 ? 0 : i - 1).data();
    if (i == 0) x = act_[0].data();
    float* y = act_[i + 1].data();
    PROF_START
    switch (op.kind) {
      case OpKind::Conv: {
        const WindowGeom& g = op.g;
        const int M = n * g.outH * g.outW, K = g.kh * g.kw * g.cin;
        k_->im2col(g, n, x, aux_[i].data());
        k_->gemm(M, g.cout, K, aux_[i].data(), K, false, P + op.w, g.cout, false, y, g.cout, false, work_, par_);
        if (op.b >= 0) k_->add_bias(M, g.cout, P + op.b, y);
        break;
      }
      case OpKind::Dense: {
        k_->gemm(n, op.outSize, op.inSize, x, op.inSize, false, P + op.w, op.outSize, false, y, op.outSize, false,
                 work_, par_);
        if (op.b >= 0) k_->add_bias(n, op.outSize, P + op.b, y);
        break;
      }
      case OpKind::BatchNorm: {
        const int rows = n * (op.inSize / op.channels), c = op.channels;
        const float* gamma = op.gamma >= 0 ? P + op.gamma : ones_.data();
        const float* beta = op.beta >= 0 ? P + op.beta : zeros_.data();
        float* st = stats_[i].data();
        if (training) {
          k_->bn_forward(rows, c, x, gamma, beta, op.eps, st, y, op.fusedRelu);
          // The moving statistics follow tfjs: moving ← moving − (moving − batch)·(1 − momentum).
          const float decay = 1.f - op.momentum;
          for (int j = 0; j < c; j++) {
            op.movingMean[j] = op.movingMean[j] - (op.movingMean[j] - st[j]) * decay;
            op.movingVar[j] = op.movingVar[j] - (op.movingVar[j] - st[c + j]) * decay;
          }
        } else {
          k_->bn_inference(rows, c, x, gamma, beta, op.eps, op.movingMean.data(), op.movingVar.data(), y);
          if (op.fusedRelu) k_->relu_forward((size_t)rows * c, y, y);
        }
        break;
      }
      case OpKind::Relu:
        k_->relu_forward((size_t)n * op.inSize, x, y);
        break;
      case OpKind::Tanh:
        k_->tanh_forward((size_t)n * op.inSize, x, y);
        break;
      case OpKind::MaxPool:
        k_->maxpool_forward(op.g, n, x, y, arg_[i].data());
        break;
    }
    PROF_END(0, i)
  }
}

// d(loss)/d(output) must be in g0_. Parameter gradients go to grad_; with inputGrad the gradient
// with respect to the network's input ends in g0_.
void Engine::backward(int n, bool inputGrad) {
  const float* P = params_.data();
  float* G = grad_.data();
  float* dy = g0_.data();
  float* dx = g1_.data();
  for (size_t ii = ops_.size(); ii-- > 0;) {
    const OpSpec& op = ops_[ii];
    if (op.skip) continue;
    const bool needDx = ii > 0 || inputGrad;
    const float* x = ii == 0 ? act_[0].data() : outputOf(act_, ops_, ii - 1).data();
    const float* y = act_[ii + 1].data();
    PROF_START
    switch (op.kind) {
      case OpKind::Conv: {
        const WindowGeom& g = op.g;
        const int M = n * g.outH * g.outW, K = g.kh * g.kw * g.cin;
        k_->gemm(K, g.cout, M, aux_[ii].data(), K, true, dy, g.cout, false, G + op.w, g.cout, false, work_, par_);
        if (op.b >= 0) k_->col_sums(M, g.cout, dy, G + op.b);
        if (needDx) {
          k_->gemm(M, K, g.cout, dy, g.cout, false, P + op.w, g.cout, true, dcol_.data(), K, false, work_, par_);
          k_->col2im(g, n, dcol_.data(), dx);
        }
        break;
      }
      case OpKind::Dense: {
        k_->gemm(op.inSize, op.outSize, n, x, op.inSize, true, dy, op.outSize, false, G + op.w, op.outSize, false,
                 work_, par_);
        if (op.b >= 0) k_->col_sums(n, op.outSize, dy, G + op.b);
        if (needDx)
          k_->gemm(n, op.inSize, op.outSize, dy, op.outSize, false, P + op.w, op.outSize, true, dx, op.inSize, false,
                   work_, par_);
        break;
      }
      case OpKind::BatchNorm: {
        const int c = op.channels, rows = n * (op.inSize / c);
        float* dgamma = op.gamma >= 0 ? G + op.gamma : scratch_.data();
        float* dbeta = op.beta >= 0 ? G + op.beta : scratch_.data() + c;
        const float* gamma = op.gamma >= 0 ? P + op.gamma : ones_.data();
        k_->bn_backward(rows, c, x, y, dy, gamma, stats_[ii].data(), dgamma, dbeta, needDx ? dx : nullptr,
                        op.fusedRelu);
        break;
      }
      case OpKind::Relu:
        if (needDx) k_->relu_backward((size_t)n * op.inSize, y, dy, dx);
        break;
      case OpKind::Tanh:
        if (needDx) k_->tanh_backward((size_t)n * op.inSize, y, dy, dx);
        break;
      case OpKind::MaxPool:
        if (needDx) k_->maxpool_backward(op.g, n, dy, arg_[ii].data(), dx);
        break;
    }
    PROF_END(1, ii)
    if (needDx) std::swap(dy, dx);
  }
  if (inputGrad && dy != g0_.data()) std::memcpy(g0_.data(), dy, sizeof(float) * (size_t)n * inputSize_);
}

double Engine::lossAndGrad(int n, LossKind loss, const float* targets) {
  const float* out = outputOf(act_, ops_, ops_.size() - 1).data();
  if (loss == LossKind::SoftmaxXent) return k_->softmax_xent(n, outputSize_, out, targets, g0_.data());
  return k_->mse(n, outputSize_, out, targets, g0_.data());
}

void Engine::applyOptimizer(const AdaptArgs& a) {
  if (optKind == OptKind::Sgd) {
    optStep += 1;
    k_->sgd((size_t)P_, params_.data(), grad_.data(), (float)a.lr);
    return;
  }
  optStep += 1;
  const double t = optStep;
  const float coef[8] = {(float)a.lr,
                         (float)a.beta1,
                         (float)(1 - a.beta1),
                         (float)a.beta2,
                         (float)(1 - a.beta2),
                         (float)(1 - std::pow(a.beta1, t)),
                         (float)(1 - std::pow(a.beta2, t)),
                         (float)a.eps};
  k_->adam((size_t)P_, params_.data(), grad_.data(), m.data(), v.data(), coef);
}

double Engine::adapt(const AdaptArgs& a) {
  if (a.reset || optKind != a.opt) resetOptimizer(a.opt);
  ensure(a.batchSize);
  const int tsize = a.loss == LossKind::SoftmaxXent ? 1 : outputSize_;
  std::copy(params_.begin(), params_.end(), phi_.begin());
  double lossSum = 0;
  for (int k = 0; k < a.numBatches; k++) {
    if (k == a.numBatches - 1) std::copy(params_.begin(), params_.end(), before_.begin());
    const int32_t* idx = a.batches.data() + (size_t)k * a.batchSize;
    for (int r = 0; r < a.batchSize; r++) {
      std::memcpy(act_[0].data() + (size_t)r * inputSize_, a.inputs.data() + (size_t)idx[r] * inputSize_,
                  sizeof(float) * inputSize_);
      std::memcpy(batchTargets_.data() + (size_t)r * tsize, a.targets.data() + (size_t)idx[r] * tsize,
                  sizeof(float) * tsize);
    }
    forward(a.batchSize, true);
    lossSum += lossAndGrad(a.batchSize, a.loss, batchTargets_.data());
    backward(a.batchSize, false);
    applyOptimizer(a);
  }
  for (int64_t i = 0; i < P_; i++) {
    adapted_[i] = params_[i];
    lastStep_[i] = params_[i] - before_[i];
  }
  std::copy(phi_.begin(), phi_.end(), params_.begin());
  return a.numBatches > 0 ? lossSum / a.numBatches : 0;
}

void Engine::predict(const float* x, int n, bool batchStats, float* out) {
  ensure(n);
  std::memcpy(act_[0].data(), x, sizeof(float) * (size_t)n * inputSize_);
  forward(n, batchStats);
  std::memcpy(out, outputOf(act_, ops_, ops_.size() - 1).data(), sizeof(float) * (size_t)n * outputSize_);
}

double Engine::gradients(const float* x, const float* targets, int n, LossKind loss, float* grad, float* inputGrad,
                         float* output) {
  ensure(n);
  std::memcpy(act_[0].data(), x, sizeof(float) * (size_t)n * inputSize_);
  forward(n, true);
  std::memcpy(output, outputOf(act_, ops_, ops_.size() - 1).data(), sizeof(float) * (size_t)n * outputSize_);
  const double l = lossAndGrad(n, loss, targets);
  backward(n, true);
  std::memcpy(grad, grad_.data(), sizeof(float) * (size_t)P_);
  std::memcpy(inputGrad, g0_.data(), sizeof(float) * (size_t)n * inputSize_);
  return l;
}

}  // namespace reptile
