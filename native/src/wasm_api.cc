// C ABI of the WebAssembly build of the engine (src/engine/wasm-engine.ts is its loader). The
// plan arrives as a flat array of doubles (encoded and checked by src/engine/wasm-plan.ts), every
// other array as a pointer into the module's memory that the caller allocated with rp_alloc. The
// checks the N-API binding makes on its arguments are made by the loader, before these calls.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "engine.h"

using namespace reptile;

namespace {

// Fields per op in the encoded plan (the layout is wasm-plan.ts's OP_FIELDS), followed by the ops
// it reads (field 28 says how many) and, for a batch normalisation, its moving mean and variance
// (channels values each).
constexpr int kOpFields = 29;
constexpr OptKind kOpts[] = {OptKind::None, OptKind::Sgd, OptKind::Adam};
constexpr LossKind kLosses[] = {LossKind::SoftmaxXent, LossKind::Mse, LossKind::SigmoidBce};

// Set by a failing engine before it traps (see __cxa_throw): the loader reads it to name the failure.
const char* lastError = "";

}  // namespace

// The engine throws only when memory runs out; built without exception handling, a throw records
// its message and traps, and the loader reports the module as failed.
extern "C" {
void* __cxa_allocate_exception(size_t size) { return std::malloc(size); }
[[noreturn]] void __cxa_throw(void* thrown, void*, void (*)(void*)) {
  lastError = static_cast<std::exception*>(thrown)->what();
  __builtin_trap();
}
}

#define EXPORT(name) extern "C" __attribute__((export_name(#name)))

EXPORT(rp_alloc) void* rp_alloc(size_t bytes) { return std::aligned_alloc(16, (bytes + 15) / 16 * 16); }
EXPORT(rp_free) void rp_free(void* p) { std::free(p); }
EXPORT(rp_last_error) const char* rp_last_error() { return lastError; }

EXPORT(rp_create)
Engine* rp_create(const double* plan, int planLength, const float* frozen, int frozenLength) {
  const int nOps = (int)plan[0];
  const double* at = plan + 4;
  std::vector<OpSpec> ops;
  ops.reserve(nOps);
  for (int i = 0; i < nOps; i++) {
    OpSpec op;
    op.kind = (OpKind)(int)at[0];
    op.inSize = (int)at[1];
    op.outSize = (int)at[2];
    op.w = (int64_t)at[3];
    op.b = (int64_t)at[4];
    op.frozen = at[5] != 0;
    int* g = &op.g.inH;
    for (int k = 0; k < 12; k++) g[k] = (int)at[6 + k];
    op.depthMul = (int)at[18];
    op.channels = (int)at[19];
    op.act = (ActKind)(int)at[20];
    op.alpha = (float)at[21];
    op.eps = (float)at[22];
    op.momentum = (float)at[23];
    op.gamma = (int64_t)at[24];
    op.beta = (int64_t)at[25];
    op.dilH = (int)at[26];
    op.dilW = (int)at[27];
    const int nInputs = (int)at[28];
    at += kOpFields;
    for (int k = 0; k < nInputs; k++) op.inputs.push_back((int)at[k]);
    at += nInputs;
    if (op.kind == OpKind::BatchNorm) {
      op.movingMean.assign(at, at + op.channels);
      op.movingVar.assign(at + op.channels, at + 2 * op.channels);
      at += 2 * op.channels;
    }
    ops.push_back(std::move(op));
  }
  if (at != plan + planLength) return nullptr;
  return new Engine(std::move(ops), (int)plan[1], (int)plan[2], (int64_t)plan[3], kernels_simd128(),
                    std::vector<float>(frozen, frozen + frozenLength));
}

EXPORT(rp_release) void rp_release(Engine* e) { delete e; }
EXPORT(rp_isa) const char* rp_isa(Engine* e) { return e->kernels()->isa; }
// φ lives at a fixed place for the engine's lifetime: the loader reads and writes it there.
EXPORT(rp_params) float* rp_params(Engine* e) { return e->params().data(); }

// Returns the index of the first value that is not finite (φ unchanged), or −1.
EXPORT(rp_reptile_update) double rp_reptile_update(Engine* e, const float* const* adapted, int n, double epsilon) {
  return (double)e->reptileUpdate(adapted, n, epsilon);
}
EXPORT(rp_next_value) float rp_next_value(Engine* e, double i) { return e->nextValue((int64_t)i); }

// kind: 0 none, 1 sgd, 2 adam; the Adam moments are then written at rp_opt_m and rp_opt_v.
EXPORT(rp_set_optimizer) void rp_set_optimizer(Engine* e, int kind, double step) {
  e->resetOptimizer(kOpts[kind]);
  e->optStep = kind == 0 ? 0 : step;
}
EXPORT(rp_opt_kind) int rp_opt_kind(Engine* e) { return e->optKind == OptKind::None ? 0 : e->optKind == OptKind::Sgd ? 1 : 2; }
EXPORT(rp_opt_step) double rp_opt_step(Engine* e) { return e->optStep; }
EXPORT(rp_opt_m) float* rp_opt_m(Engine* e) { return e->moments(0); }
EXPORT(rp_opt_v) float* rp_opt_v(Engine* e) { return e->moments(1); }
// The same, for a caller that then writes every value of both (nothing is zero-filled first).
EXPORT(rp_opt_m_to_write) float* rp_opt_m_to_write(Engine* e) { return e->momentsToOverwrite(0); }
EXPORT(rp_opt_v_to_write) float* rp_opt_v_to_write(Engine* e) { return e->momentsToOverwrite(1); }

// Op i's moving mean (which 0) or variance (1): channels floats.
EXPORT(rp_moving) float* rp_moving(Engine* e, int i, int which) {
  OpSpec& op = const_cast<OpSpec&>(e->ops()[(size_t)i]);
  return which == 0 ? op.movingMean.data() : op.movingVar.data();
}

// One task's inner loop (Engine::adapt), then its predictions with the adapted weights.
EXPORT(rp_adapt)
double rp_adapt(Engine* e, const float* x, const float* t, int count, const int32_t* batches, int batchSize,
                int numBatches, int opt, double lr, double beta1, double beta2, double eps, int reset,
                double dropoutSeed, int loss, double lossDivisor, int nPredict, const float* const* predictX,
                const int32_t* predictN, int batchStats, float* adapted, float* lastStep, float* const* predictOut) {
  AdaptArgs a;
  a.count = count;
  a.batchSize = batchSize;
  a.numBatches = numBatches;
  a.inputsData = x;
  a.targetsData = t;
  a.batchesData = batches;
  a.opt = kOpts[opt];
  a.lr = lr;
  a.beta1 = beta1;
  a.beta2 = beta2;
  a.eps = eps;
  a.reset = reset != 0;
  a.dropoutSeed = (uint64_t)dropoutSeed;
  a.loss = kLosses[loss];
  a.lossDivisor = lossDivisor;
  const double l = e->adapt(a, adapted, lastStep);
  for (int j = 0; j < nPredict; j++) e->predictWith(adapted, predictX[j], predictN[j], batchStats != 0, predictOut[j], j > 0);
  return l;
}

// Keras-style steps on φ in place (Engine::fitSteps); returns the fast steps since the last
// synchronisation.
EXPORT(rp_fit)
int rp_fit(Engine* e, const float* x, const float* t, const int32_t* order, const int32_t* sizes, int numBatches,
           int loss, int opt, double lr, double beta1, double beta2, double eps, float* slow, int period, double alpha,
           int counter, double dropoutSeed, double firstStep, double* losses, float* outputs) {
  FitArgs f;
  f.inputs = x;
  f.targets = t;
  f.order = order;
  f.sizes = sizes;
  f.numBatches = numBatches;
  f.loss = kLosses[loss];
  f.opt = kOpts[opt];
  f.lr = lr;
  f.beta1 = beta1;
  f.beta2 = beta2;
  f.eps = eps;
  f.slow = slow;
  f.period = period;
  f.alpha = alpha;
  f.counter = counter;
  f.dropoutSeed = (uint64_t)dropoutSeed;
  f.firstStep = (int64_t)firstStep;
  f.losses = losses;
  f.outputs = outputs;
  if (e->optKind != f.opt) e->resetOptimizer(f.opt);
  return e->fitSteps(f);
}

EXPORT(rp_predict) void rp_predict(Engine* e, const float* x, int n, int batchStats, float* out) {
  e->predict(x, n, batchStats != 0, out);
}

// hasSeed: apply dropout with the masks of seed at step 0.
EXPORT(rp_gradients)
double rp_gradients(Engine* e, const float* x, const float* t, int n, int loss, float* grad, float* inputGrad, float* out,
                    int hasSeed, double seed) {
  const uint64_t s = (uint64_t)seed;
  return e->gradients(x, t, n, kLosses[loss], grad, inputGrad, out, hasSeed ? &s : nullptr);
}
