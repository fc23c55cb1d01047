// N-API binding of the native engine: compiles a layer plan handed over from TypeScript, and runs
// whole inner loops on a worker thread (napi AsyncWorker) so that the event loop stays free.
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>
#include <sstream>
#include <string>

#include "engine.h"

namespace reptile {
namespace {

// A whole number in [lo, hi]: anything else (NaN, ±∞, a fraction, out of range) is refused here,
// before a cast to an integer type could make it something else.
int64_t wholeIn(Napi::Env env, double d, const char* key, int64_t lo, int64_t hi) {
  if (!(d >= (double)lo && d <= (double)hi) || d != std::floor(d))
    throw Napi::RangeError::New(env, std::string("field '") + key + "' must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
  return (int64_t)d;
}

int intOf(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("plan field '") + key + "' must be a number");
  return (int)wholeIn(o.Env(), v.As<Napi::Number>().DoubleValue(), key, INT32_MIN, INT32_MAX);
}

double numOf(const Napi::Object& o, const char* key, double dflt) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : dflt;
}

// An optional whole-number field (absent: dflt) within [lo, hi].
int64_t wholeOf(const Napi::Object& o, const char* key, int64_t dflt, int64_t lo, int64_t hi) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? wholeIn(o.Env(), v.As<Napi::Number>().DoubleValue(), key, lo, hi) : dflt;
}

constexpr int64_t kMaxWhole = (int64_t)1 << 53;  // a double's whole numbers
constexpr int64_t kMaxSize = (int64_t)1 << 28;   // floats per example, per parameter vector

Napi::Float32Array f32Of(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a Float32Array");
  return v.As<Napi::Float32Array>();
}

// The adapted weights and last steps that adapt returns: recycled float buffers instead of fresh
// ones. A fresh 4·P-byte array is zero-filled by V8 and, being large, mapped anew by malloc at
// every call, so each task paid page faults and a memset before the engine overwrote every value
// anyway. These arrays are external: when JavaScript lets go of one, its finalizer hands the
// memory back here. Shared by every thread's addon instance (the lock is taken twice per array).
class OutputPool {
 public:
  static constexpr size_t kHeader = 64;  // the element count lives in front of the data, which stays 64-byte aligned
  static constexpr size_t kKeep = 64;    // buffers of one size kept for reuse; more are freed

  float* take(size_t n) {
    {
      std::lock_guard<std::mutex> lk(m_);
      auto& v = free_[n];
      if (!v.empty()) {
        float* p = v.back();
        v.pop_back();
        return p;
      }
    }
    char* raw = static_cast<char*>(std::aligned_alloc(64, kHeader + ((n * sizeof(float) + 63) / 64) * 64));
    if (raw == nullptr) throw std::bad_alloc();
    *reinterpret_cast<size_t*>(raw) = n;
    return reinterpret_cast<float*>(raw + kHeader);
  }

  void give(float* p) {
    char* raw = reinterpret_cast<char*>(p) - kHeader;
    const size_t n = *reinterpret_cast<size_t*>(raw);
    {
      std::lock_guard<std::mutex> lk(m_);
      auto& v = free_[n];
      if (v.size() < kKeep) {
        v.push_back(p);
        return;
      }
    }
    std::free(raw);
  }

 private:
  std::mutex m_;
  std::unordered_map<size_t, std::vector<float*>> free_;
};

// Never destroyed: finalizers may still run while the process exits.
OutputPool& outputPool() {
  static OutputPool* pool = new OutputPool();
  return *pool;
}

// A Float32Array of n values whose contents the caller overwrites in full.
Napi::Float32Array recycledArray(Napi::Env env, size_t n) {
  float* p = outputPool().take(n);
  Napi::ArrayBuffer buffer;
  try {
    buffer = Napi::ArrayBuffer::New(env, p, n * sizeof(float), [](Napi::Env, void* data) { outputPool().give(static_cast<float*>(data)); });
  } catch (const Napi::Error&) {
    // A runtime that refuses external buffers: a plain array.
    outputPool().give(p);
    return Napi::Float32Array::New(env, n);
  }
  return Napi::Float32Array::New(env, n, buffer, 0);
}

Napi::Float32Array copyOut(Napi::Env env, const float* p, size_t n) {
  Napi::Float32Array a = Napi::Float32Array::New(env, n);
  if (n) std::memcpy(a.Data(), p, n * sizeof(float));
  return a;
}

WindowGeom geomOf(const Napi::Object& o) {
  WindowGeom g;
  g.inH = intOf(o, "inH");
  g.inW = intOf(o, "inW");
  g.cin = intOf(o, "cin");
  g.outH = intOf(o, "outH");
  g.outW = intOf(o, "outW");
  g.cout = intOf(o, "cout");
  g.kh = intOf(o, "kh");
  g.kw = intOf(o, "kw");
  g.sh = intOf(o, "sh");
  g.sw = intOf(o, "sw");
  g.padT = intOf(o, "padT");
  g.padL = intOf(o, "padL");
  return g;
}

LossKind lossOf(Napi::Env env, const Napi::Value& v) {
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "softmax-xent") return LossKind::SoftmaxXent;
  if (s == "mse") return LossKind::Mse;
  if (s == "sigmoid-bce") return LossKind::SigmoidBce;
  throw Napi::TypeError::New(env, "loss must be 'softmax-xent', 'sigmoid-bce' or 'mse'");
}

// The activations of an "act" op, by the names the plan gives them.
ActKind actOf(Napi::Env env, const std::string& name) {
  static const std::pair<const char*, ActKind> names[] = {
      {"sigmoid", ActKind::Sigmoid},         {"elu", ActKind::Elu},
      {"selu", ActKind::Selu},               {"clipRelu", ActKind::ClipRelu},
      {"softplus", ActKind::Softplus},       {"softsign", ActKind::Softsign},
      {"swish", ActKind::Swish},             {"leakyRelu", ActKind::LeakyRelu},
      {"hardSigmoid", ActKind::HardSigmoid}, {"gelu", ActKind::Gelu},
      {"geluTanh", ActKind::GeluTanh},       {"mish", ActKind::Mish},
  };
  for (const auto& p : names)
    if (name == p.first) return p.second;
  throw Napi::Error::New(env, "unknown activation '" + name + "'");
}

// Checks that a plan's ops chain up and that every size, window and weight offset lies within
// what the engine allocates for them, so that no plan, however forged, makes it read or write
// outside its buffers: the model compiler's plans pass, anything else is a JavaScript error.
void checkPlan(Napi::Env env, const std::vector<OpSpec>& ops, int inputSize, int outputSize, int64_t P, int64_t F) {
  auto bad = [&](size_t i, const std::string& why) {
    throw Napi::RangeError::New(env, "plan op " + std::to_string(i) + ": " + why);
  };
  (void)inputSize;  // each op's input sizes are checked against the ops it reads while parsing
  for (size_t i = 0; i < ops.size(); i++) {
    const OpSpec& op = ops[i];
    if (op.inSize < 1 || op.outSize < 1 || op.inSize > kMaxSize || op.outSize > kMaxSize) bad(i, "sizes must be from 1 to 2^28");
    const WindowGeom& g = op.g;
    const bool window = op.kind == OpKind::Conv || op.kind == OpKind::MaxPool || op.kind == OpKind::AvgPool ||
                        op.kind == OpKind::Depthwise || op.kind == OpKind::Pad;
    if (window) {
      for (int v : {g.inH, g.inW, g.cin, g.outH, g.outW, g.cout, g.kh, g.kw, g.sh, g.sw})
        if (v < 1) bad(i, "window sizes, channels and strides must be ≥ 1");
      if (g.padT < 0 || g.padL < 0) bad(i, "padding must be ≥ 0");
      if ((int64_t)g.inH * g.inW * g.cin != op.inSize || (int64_t)g.outH * g.outW * g.cout != op.outSize)
        bad(i, "its sizes are not height × width × channels");
      if (op.kind == OpKind::Pad) {
        if (g.cin != g.cout || (int64_t)g.padT + g.inH > g.outH || (int64_t)g.padL + g.inW > g.outW)
          bad(i, "padding must place the input inside the output");
      } else {
        // Every window starts before the input's end and ends after its start.
        // A dilated window spans (k − 1)·d + 1 pixels.
        const int64_t ekh = (int64_t)(g.kh - 1) * op.dilH + 1, ekw = (int64_t)(g.kw - 1) * op.dilW + 1;
        if (g.padT >= ekh || g.padL >= ekw || (int64_t)(g.outH - 1) * g.sh - g.padT >= g.inH ||
            (int64_t)(g.outW - 1) * g.sw - g.padL >= g.inW)
          bad(i, "a window lies wholly in the padding");
        // No window is larger than its padded input (which keeps the kernels' int arithmetic in range).
        if (ekh > (int64_t)g.inH + 2 * (int64_t)g.padT + 1 || ekw > (int64_t)g.inW + 2 * (int64_t)g.padL + 1)
          bad(i, "a window is larger than its padded input");
        if ((op.kind == OpKind::MaxPool || op.kind == OpKind::AvgPool) && g.cin != g.cout) bad(i, "pooling keeps the channels");
      }
    }
    if (op.kind == OpKind::BatchNorm && (op.channels < 1 || op.inSize % op.channels != 0 || op.inSize != op.outSize))
      bad(i, "a batch normalisation's channels must divide its input size");
    if (op.kind == OpKind::Softmax && op.inSize != op.outSize) bad(i, "a softmax keeps its size");
    if ((op.kind == OpKind::Relu || op.kind == OpKind::Tanh || op.kind == OpKind::Act) && op.inSize != op.outSize)
      bad(i, "an activation keeps its size");
    // The weights: where each array starts (−1: absent) and how many values it spans.
    int64_t wN = 0, bN = 0, gN = 0;
    if (op.kind == OpKind::Conv) wN = (int64_t)g.kh * g.kw * g.cin * g.cout, bN = g.cout;
    if (op.kind == OpKind::Depthwise) wN = (int64_t)g.kh * g.kw * g.cout, bN = g.cout;
    if (op.kind == OpKind::Dense) wN = (int64_t)op.inSize * op.outSize, bN = op.outSize;
    if (op.kind == OpKind::BatchNorm || op.kind == OpKind::LayerNorm) gN = op.channels;
    if (wN > 0 && op.w < 0) bad(i, "it needs weights (w)");
    const int64_t limit = op.frozen ? F : P;
    const std::pair<int64_t, int64_t> spans[] = {{op.w, wN}, {op.b, bN}, {op.gamma, gN}, {op.beta, gN}};
    for (const auto& [at, n] : spans) {
      if (at < 0) continue;
      if (n == 0 || at + n > limit) bad(i, std::string("its weights lie outside ") + (op.frozen ? "plan.frozen" : "the parameters (paramSize)"));
    }
  }
  if (ops.empty() || ops.back().outSize != outputSize) throw Napi::RangeError::New(env, "the plan's last op does not give outputSize values");
}

class EngineWrap;

// An engine call on a worker thread that settles a promise: the object it was given (and the
// arrays it names) stays referenced until then, since the engine reads and writes them in place.
// The engine is marked free again whether the call succeeds or fails.
class EngineTask : public Napi::AsyncWorker {
 public:
  EngineTask(Napi::Env env, const char* name, EngineWrap* owner, Napi::Object keepAlive)
      : Napi::AsyncWorker(env, name), owner_(owner), deferred_(Napi::Promise::Deferred::New(env)) {
    keep_ = Napi::Persistent(keepAlive);
  }
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 protected:
  virtual void run() = 0;                    // on the worker thread
  virtual Napi::Value result(Napi::Env env) = 0;
  virtual void failed() {}                   // on the main thread, before the promise rejects
  EngineWrap* owner_;

 private:
  Napi::ObjectReference keep_;
  Napi::Promise::Deferred deferred_;
};

// Engine::fitSteps: batches in a given order on the weights in place; resolves to the sync counter.
class FitWorker : public EngineTask {
 public:
  FitWorker(Napi::Env env, EngineWrap* owner, Napi::Object options, const FitArgs& args) : EngineTask(env, "reptile.fit", owner, options), args_(args) {}

 protected:
  void run() override;
  Napi::Value result(Napi::Env env) override { return Napi::Number::New(env, counter_); }

 private:
  FitArgs args_;
  int counter_ = 0;
};

// The queued adapt calls; resolves to their results.
class AdaptWorker : public EngineTask {
 public:
  AdaptWorker(Napi::Env env, EngineWrap* owner, Napi::Object keepAlive) : EngineTask(env, "reptile.adapt", owner, keepAlive) {}

 protected:
  void run() override;
  Napi::Value result(Napi::Env env) override;
  void failed() override;
};

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {
                           InstanceMethod<&EngineWrap::Isa>("isa"),
                           InstanceMethod<&EngineWrap::Threads>("threads"),
                           InstanceMethod<&EngineWrap::SetParams>("setParams"),
                           InstanceMethod<&EngineWrap::GetParams>("getParams"),
                           InstanceMethod<&EngineWrap::ReptileUpdate>("reptileUpdate"),
                           InstanceMethod<&EngineWrap::SetOptimizerState>("setOptimizerState"),
                           InstanceMethod<&EngineWrap::GetOptimizerState>("getOptimizerState"),
                           InstanceMethod<&EngineWrap::GetMovingStats>("getMovingStats"),
                           InstanceMethod<&EngineWrap::Adapt>("adapt"),
                           InstanceMethod<&EngineWrap::Fit>("fit"),
                           InstanceMethod<&EngineWrap::Predict>("predict"),
                           InstanceMethod<&EngineWrap::Gradients>("gradients"),
                           InstanceMethod<&EngineWrap::Release>("release"),
                       });
  }

  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "Engine needs a plan object");
    Napi::Object plan = info[0].As<Napi::Object>();
    const std::string isa = plan.Get("isa").IsString() ? plan.Get("isa").As<Napi::String>().Utf8Value() : "auto";
    const Kernels* k = pick_kernels(isa.c_str());
    if (!k) throw Napi::Error::New(env, "instruction set '" + isa + "' is not available on this CPU");
    Napi::Value opsV = plan.Get("ops");
    if (!opsV.IsArray()) throw Napi::TypeError::New(env, "plan.ops must be an array");
    Napi::Array arr = opsV.As<Napi::Array>();
    std::vector<OpSpec> ops;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Object o = arr.Get(i).As<Napi::Object>();
      const std::string kind = o.Get("kind").As<Napi::String>().Utf8Value();
      OpSpec op;
      op.inSize = intOf(o, "inSize");
      op.outSize = intOf(o, "outSize");
      if (kind == "conv" || kind == "maxpool" || kind == "avgpool" || kind == "pad" || kind == "depthwise") {
        op.kind = kind == "conv"      ? OpKind::Conv
                  : kind == "maxpool" ? OpKind::MaxPool
                  : kind == "avgpool" ? OpKind::AvgPool
                  : kind == "pad"     ? OpKind::Pad
                                      : OpKind::Depthwise;
        op.g = geomOf(o);
        op.depthMul = (int)wholeOf(o, "depthMultiplier", 1, 1, 1 << 16);
        if (op.kind == OpKind::Depthwise && (op.depthMul < 1 || op.g.cout != op.g.cin * op.depthMul))
          throw Napi::Error::New(env, "a depthwise convolution's output channels must be its input channels times the depth multiplier");
        op.w = wholeOf(o, "w", -1, -1, kMaxWhole);
        op.b = wholeOf(o, "b", -1, -1, kMaxWhole);
        op.dilH = (int)wholeOf(o, "dilationH", 1, 1, 1 << 16);
        op.dilW = (int)wholeOf(o, "dilationW", 1, 1, 1 << 16);
        if (op.dilH < 1 || op.dilW < 1 || ((op.dilH != 1 || op.dilW != 1) && op.kind != OpKind::Conv))
          throw Napi::Error::New(env, "a dilation rate must be a positive integer, and only a convolution has one");
      } else if (kind == "add" || kind == "multiply" || kind == "concat") {
        op.kind = kind == "add" ? OpKind::Add : kind == "multiply" ? OpKind::Multiply : OpKind::Concat;
        op.channels = kind == "concat" ? intOf(o, "channels") : op.outSize;
        if (op.channels <= 0 || op.outSize % op.channels != 0)
          throw Napi::Error::New(env, "a concatenation's channels must divide its output size");
      } else if (kind == "dense") {
        op.kind = OpKind::Dense;
        op.w = wholeOf(o, "w", -1, -1, kMaxWhole);
        op.b = wholeOf(o, "b", -1, -1, kMaxWhole);
      } else if (kind == "batchnorm") {
        op.kind = OpKind::BatchNorm;
        op.channels = intOf(o, "channels");
        op.eps = (float)numOf(o, "epsilon", 1e-3);
        op.momentum = (float)numOf(o, "momentum", 0.99);
        op.gamma = wholeOf(o, "gamma", -1, -1, kMaxWhole);
        op.beta = wholeOf(o, "beta", -1, -1, kMaxWhole);
        Napi::Float32Array mm = f32Of(o.Get("movingMean"), "movingMean");
        Napi::Float32Array mv = f32Of(o.Get("movingVariance"), "movingVariance");
        if ((int)mm.ElementLength() != op.channels || (int)mv.ElementLength() != op.channels)
          throw Napi::Error::New(env, "moving statistics do not match the channel count");
        op.movingMean.assign(mm.Data(), mm.Data() + op.channels);
        op.movingVar.assign(mv.Data(), mv.Data() + op.channels);
      } else if (kind == "relu") {
        op.kind = OpKind::Relu;
      } else if (kind == "tanh") {
        op.kind = OpKind::Tanh;
      } else if (kind == "act") {
        op.kind = OpKind::Act;
        op.act = actOf(env, o.Get("act").IsString() ? o.Get("act").As<Napi::String>().Utf8Value() : "");
        op.alpha = (float)numOf(o, "alpha", 0);
      } else if (kind == "layernorm") {
        op.kind = OpKind::LayerNorm;
        op.channels = intOf(o, "channels");
        op.eps = (float)numOf(o, "epsilon", 1e-3);
        op.gamma = wholeOf(o, "gamma", -1, -1, kMaxWhole);
        op.beta = wholeOf(o, "beta", -1, -1, kMaxWhole);
        if (op.channels <= 0 || op.inSize % op.channels != 0 || op.inSize != op.outSize)
          throw Napi::Error::New(env, "a layer normalisation's channels must divide its input size");
      } else if (kind == "dropout") {
        op.kind = OpKind::Dropout;
        op.alpha = (float)numOf(o, "rate", 0);
        if (!(op.alpha >= 0.f && op.alpha < 1.f) || op.inSize != op.outSize)
          throw Napi::Error::New(env, "a dropout's rate must be in [0, 1)");
      } else if (kind == "softmax") {
        op.kind = OpKind::Softmax;
        op.channels = intOf(o, "channels");
        if (op.channels <= 0 || op.inSize % op.channels != 0)
          throw Napi::Error::New(env, "a softmax's channels must divide its input size");
      } else {
        throw Napi::Error::New(env, "unknown op kind '" + kind + "'");
      }
      op.frozen = o.Get("frozen").ToBoolean();
      // The ops read (−1: the network's input); absent: the op before.
      Napi::Value inV = o.Get("inputs");
      if (!inV.IsUndefined()) {
        if (!inV.IsArray()) throw Napi::TypeError::New(env, "an op's inputs must be an array of op indices");
        Napi::Array ins = inV.As<Napi::Array>();
        for (uint32_t k = 0; k < ins.Length(); k++) {
          const Napi::Value v = ins.Get(k);
          const double j = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -2;
          if (j != (double)(int)j || j < -1 || j >= (double)i)
            throw Napi::Error::New(env, "op " + std::to_string(i) + " reads an op that does not come before it");
          op.inputs.push_back((int)j);
        }
      }
      const bool merge = op.kind == OpKind::Add || op.kind == OpKind::Multiply || op.kind == OpKind::Concat;
      std::vector<int> reads = op.inputs;
      if (reads.empty()) reads.push_back((int)i - 1);
      if (merge ? reads.size() < 2 : reads.size() != 1)
        throw Napi::Error::New(env, "op " + std::to_string(i) + (merge ? " merges fewer than two inputs" : " must read one input"));
      int total = 0;
      for (int j : reads) {
        const int size = j < 0 ? intOf(plan, "inputSize") : ops[(size_t)j].outSize;
        if (op.kind == OpKind::Concat ? size % (op.outSize / op.channels) != 0 : size != (merge ? op.outSize : op.inSize))
          throw Napi::Error::New(env, "op " + std::to_string(i) + "'s input sizes do not match the ops it reads");
        total += size;
      }
      if (op.kind == OpKind::Concat && total != op.outSize)
        throw Napi::Error::New(env, "op " + std::to_string(i) + " concatenates inputs that do not add up to its output size");
      if (merge) op.inSize = op.outSize;
      ops.push_back(std::move(op));
    }
    if (ops.empty()) throw Napi::Error::New(env, "a plan needs at least one op");
    if (ops.back().outSize != intOf(plan, "outputSize"))
      throw Napi::Error::New(env, "the last op's output size is not plan.outputSize");
    // The frozen ops' weights (plan.frozen), given once.
    std::vector<float> frozen;
    if (!plan.Get("frozen").IsUndefined()) {
      Napi::Float32Array f = f32Of(plan.Get("frozen"), "frozen");
      frozen.assign(f.Data(), f.Data() + f.ElementLength());
    }
    for (const OpSpec& op : ops)
      for (int64_t at : {op.w, op.b, op.gamma, op.beta})
        if (op.frozen && at >= (int64_t)frozen.size())
          throw Napi::Error::New(env, "a frozen op's weights lie outside plan.frozen");
    const int inputSize = intOf(plan, "inputSize"), outputSize = intOf(plan, "outputSize");
    const int64_t paramSize = wholeOf(plan, "paramSize", 0, 0, kMaxSize);
    checkPlan(env, ops, inputSize, outputSize, paramSize, (int64_t)frozen.size());
    engine_ = std::make_unique<Engine>(std::move(ops), inputSize, outputSize, paramSize, k, std::move(frozen));
    const int threads = (int)wholeOf(plan, "threads", 1, 1, 2);
    if (threads != 1 && threads != 2) throw Napi::Error::New(env, "threads must be 1 or 2");
    engine_->setThreads(threads);
  }

  Engine& engine() { return *engine_; }
  bool busy = false;

 private:
  void checkIdle(Napi::Env env) {
    if (busy) throw Napi::Error::New(env, "the native engine is busy with an adapt call; await it first");
    if (!engine_) throw Napi::Error::New(env, "the native engine has been released");
  }

  // Frees the buffers and stops the helper thread now rather than when the object is collected.
  Napi::Value Release(const Napi::CallbackInfo& info) {
    if (busy) throw Napi::Error::New(info.Env(), "the native engine is busy with an adapt call; await it first");
    engine_.reset();
    return info.Env().Undefined();
  }

  Napi::Value Isa(const Napi::CallbackInfo& info) {
    checkIdle(info.Env());
    return Napi::String::New(info.Env(), engine_->kernels()->isa);
  }
  Napi::Value Threads(const Napi::CallbackInfo& info) {
    checkIdle(info.Env());
    return Napi::Number::New(info.Env(), engine_->threads());
  }

  Napi::Value SetParams(const Napi::CallbackInfo& info) {
    checkIdle(info.Env());
    Napi::Float32Array a = f32Of(info[0], "params");
    if ((int64_t)a.ElementLength() != engine_->paramSize())
      throw Napi::Error::New(info.Env(), "params have " + std::to_string(a.ElementLength()) + " values, the plan needs " +
                                             std::to_string(engine_->paramSize()));
    if (a.ElementLength()) std::memcpy(engine_->params().data(), a.Data(), a.ElementLength() * sizeof(float));
    return info.Env().Undefined();
  }

  Napi::Value GetParams(const Napi::CallbackInfo& info) {
    checkIdle(info.Env());
    return copyOut(info.Env(), engine_->params().data(), engine_->params().size());
  }

  // reptileUpdate(adapted: Float32Array[], epsilon): φ moves toward the mean of the adapted
  // weights; returns undefined, or { index, value } for the first value that is not finite (φ is
  // then unchanged).
  Napi::Value ReptileUpdate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    if (!info[0].IsArray()) throw Napi::TypeError::New(env, "reptileUpdate needs an array of adapted weights");
    if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "reptileUpdate needs a number epsilon");
    Napi::Array list = info[0].As<Napi::Array>();
    const uint32_t n = list.Length();
    if (n == 0) throw Napi::Error::New(env, "reptileUpdate needs at least one adapted weight vector");
    std::vector<const float*> adapted(n);
    for (uint32_t k = 0; k < n; k++) {
      Napi::Float32Array a = f32Of(list.Get(k), "adapted weights");
      if ((int64_t)a.ElementLength() != engine_->paramSize())
        throw Napi::Error::New(env, "adapted weights have " + std::to_string(a.ElementLength()) +
                                        " values, the plan needs " + std::to_string(engine_->paramSize()));
      adapted[k] = a.Data();
    }
    if (engine_->paramSize() == 0) return env.Undefined();  // nothing to move
    // The helper, asleep since the adapt call that computed these weights, wakes for the update;
    // it then spins on for the next adapt call (the JavaScript that prepares it runs on the other core).
    engine_->wake();
    const int64_t bad = engine_->reptileUpdate(adapted.data(), (int)n, info[1].As<Napi::Number>().DoubleValue());
    if (bad < 0) return env.Undefined();
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", Napi::Number::New(env, (double)bad));
    o.Set("value", Napi::Number::New(env, engine_->nextValue(bad)));
    return o;
  }

  Napi::Value SetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    const std::string kind = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "none";
    Engine& e = *engine_;
    if (kind == "none") {
      e.resetOptimizer(OptKind::None);
      return env.Undefined();
    }
    const double step = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
    if (kind == "sgd") {
      e.resetOptimizer(OptKind::Sgd);
      e.optStep = step;
      return env.Undefined();
    }
    if (kind != "adam") throw Napi::Error::New(env, "optimizer kind must be sgd or adam");
    Napi::Float32Array m = f32Of(info[2], "m"), v = f32Of(info[3], "v");
    if ((int64_t)m.ElementLength() != e.paramSize() || (int64_t)v.ElementLength() != e.paramSize())
      throw Napi::Error::New(env, "Adam state does not fit this model");
    e.resetOptimizer(OptKind::Adam);
    e.optStep = step;
    if (e.paramSize()) {  // (an empty vector's data() may be null, which memcpy may not be given)
      std::memcpy(e.momentsToOverwrite(0), m.Data(), m.ElementLength() * sizeof(float));
      std::memcpy(e.momentsToOverwrite(1), v.Data(), v.ElementLength() * sizeof(float));
    }
    return env.Undefined();
  }

  Napi::Value GetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    Engine& e = *engine_;
    if (e.optKind == OptKind::None) return env.Undefined();
    Napi::Object o = Napi::Object::New(env);
    o.Set("kind", e.optKind == OptKind::Sgd ? "sgd" : "adam");
    o.Set("step", e.optStep);
    if (e.optKind == OptKind::Adam) {
      o.Set("m", copyOut(env, e.moments(0), (size_t)e.paramSize()));
      o.Set("v", copyOut(env, e.moments(1), (size_t)e.paramSize()));
    }
    return o;
  }

  Napi::Value GetMovingStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    Napi::Array out = Napi::Array::New(env);
    uint32_t k = 0;
    for (const OpSpec& op : engine_->ops()) {
      if (op.kind != OpKind::BatchNorm) continue;
      Napi::Object o = Napi::Object::New(env);
      o.Set("mean", copyOut(env, op.movingMean.data(), op.movingMean.size()));
      o.Set("variance", copyOut(env, op.movingVar.data(), op.movingVar.size()));
      out.Set(k++, o);
    }
    return out;
  }

  // Fills a from one task's options {inputs, targets, count, batches, batchSize, optimizer, learningRate,
  // beta1, beta2, epsilon, reset, loss, lossDivisor}, checking every size and index before anything runs.
  void parseArgs(Napi::Env env, const Napi::Value& v, AdaptArgs& a) {
    if (!v.IsObject()) throw Napi::TypeError::New(env, "adapt needs an options object per task");
    Napi::Object o = v.As<Napi::Object>();
    Engine& e = *engine_;
    a.count = intOf(o, "count");
    a.batchSize = intOf(o, "batchSize");
    Napi::Float32Array x = f32Of(o.Get("inputs"), "inputs");
    Napi::Float32Array t = f32Of(o.Get("targets"), "targets");
    Napi::Value bv = o.Get("batches");
    if (!bv.IsTypedArray() || bv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(env, "batches must be an Int32Array");
    Napi::Int32Array b = bv.As<Napi::Int32Array>();
    a.loss = lossOf(env, o.Get("loss"));
    const int tsize = e.targetSize(a.loss);
    if (a.count <= 0 || a.batchSize <= 0) throw Napi::Error::New(env, "count and batchSize must be positive");
    if ((int64_t)x.ElementLength() != (int64_t)a.count * e.inputSize())
      throw Napi::Error::New(env, "inputs do not match count × input size");
    if ((int64_t)t.ElementLength() != (int64_t)a.count * tsize)
      throw Napi::Error::New(env, "targets do not match count × target size");
    if (b.ElementLength() % a.batchSize != 0) throw Napi::Error::New(env, "batches is not a whole number of batches");
    a.numBatches = (int)(b.ElementLength() / a.batchSize);
    for (size_t i = 0; i < b.ElementLength(); i++)
      if (b[i] < 0 || b[i] >= a.count) throw Napi::Error::New(env, "batch index out of range");
    if (a.loss == LossKind::SoftmaxXent)
      for (size_t i = 0; i < t.ElementLength(); i++)
        if (!(t[i] >= 0 && t[i] < e.outputSize() && (float)(int)t[i] == t[i]))
        {
          std::ostringstream msg;
          msg << "class label " << t[i] << " is not in 0.." << e.outputSize() - 1;
          throw Napi::Error::New(env, msg.str());
        }
    const std::string opt = o.Get("optimizer").IsString() ? o.Get("optimizer").As<Napi::String>().Utf8Value() : "";
    if (opt == "sgd")
      a.opt = OptKind::Sgd;
    else if (opt == "adam")
      a.opt = OptKind::Adam;
    else
      throw Napi::Error::New(env, "optimizer must be sgd or adam");
    a.lr = numOf(o, "learningRate", 1e-3);
    a.beta1 = numOf(o, "beta1", 0);
    a.beta2 = numOf(o, "beta2", 0.999);
    a.eps = numOf(o, "epsilon", 1e-8);
    a.reset = o.Get("reset").ToBoolean();
    a.dropoutSeed = (uint64_t)wholeOf(o, "dropoutSeed", 0, 0, kMaxWhole);
    a.lossDivisor = numOf(o, "lossDivisor", 0);
    if (!(a.lossDivisor >= 0) || !std::isfinite(a.lossDivisor))
      throw Napi::Error::New(env, "lossDivisor must be a positive number (or 0: the batch's size)");
    // Optional predictions with the adapted weights: predict: [{ inputs, count }, ...].
    a.predictInputs.clear();
    a.predictCounts.clear();
    Napi::Value pv = o.Get("predict");
    if (!pv.IsUndefined()) {
      if (!pv.IsArray()) throw Napi::TypeError::New(env, "predict must be an array of { inputs, count }");
      Napi::Array pa = pv.As<Napi::Array>();
      a.predictInputs.resize(pa.Length());
      for (uint32_t j = 0; j < pa.Length(); j++) {
        if (!pa.Get(j).IsObject()) throw Napi::TypeError::New(env, "predict must be an array of { inputs, count }");
        Napi::Object po = pa.Get(j).As<Napi::Object>();
        const int n = intOf(po, "count");
        Napi::Float32Array px = f32Of(po.Get("inputs"), "predict inputs");
        if (n <= 0 || (int64_t)px.ElementLength() != (int64_t)n * e.inputSize())
          throw Napi::Error::New(env, "predict inputs do not match count × input size");
        a.predictInputs[j].assign(px.Data(), px.Data() + px.ElementLength());
        a.predictCounts.push_back(n);
      }
      a.predictBatchStats = o.Get("batchStats").IsUndefined() ? true : o.Get("batchStats").ToBoolean();
    }
    // Copies reuse the capacity of earlier calls: no allocation once sizes are steady.
    a.inputs.assign(x.Data(), x.Data() + x.ElementLength());
    a.targets.assign(t.Data(), t.Data() + t.ElementLength());
    a.batches.assign(b.Data(), b.Data() + b.ElementLength());
  }

  // adapt(options) runs one task's inner loop; adapt([options, ...]) runs several tasks one after
  // the other in a single worker job (the same results as separate calls, one thread hand-off).
  Napi::Value Adapt(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    many_ = info[0].IsArray();
    std::vector<Napi::Value> tasks;
    if (many_) {
      Napi::Array arr = info[0].As<Napi::Array>();
      if (arr.Length() == 0) throw Napi::Error::New(env, "adapt needs at least one task");
      for (uint32_t i = 0; i < arr.Length(); i++) tasks.push_back(arr.Get(i));
    } else {
      tasks.push_back(info[0]);
    }
    args_.resize(tasks.size());
    for (size_t i = 0; i < tasks.size(); i++) parseArgs(env, tasks[i], args_[i]);
    // The result arrays are made here, on the JS thread, and filled in place by the worker: new
    // ones, or the caller's (into: { params, lastStep }, arrays of an earlier result it no longer
    // reads), which spares the allocation and the garbage collections that 2·4·P bytes of new
    // arrays per task set off (for ResNet-12, a major collection at every call).
    const size_t P = (size_t)engine_->paramSize();
    std::vector<Napi::Float32Array> given;
    for (const Napi::Value& t : tasks) {
      Napi::Value iv = t.As<Napi::Object>().Get("into");
      if (iv.IsUndefined()) {
        given.push_back(Napi::Float32Array());
        given.push_back(Napi::Float32Array());
        continue;
      }
      if (!iv.IsObject()) throw Napi::TypeError::New(env, "into must be { params, lastStep }");
      for (const char* key : {"params", "lastStep"}) {
        Napi::Float32Array a = f32Of(iv.As<Napi::Object>().Get(key), key);
        if (a.ElementLength() != P) throw Napi::Error::New(env, std::string("into.") + key + " must hold paramSize floats");
        given.push_back(a);
      }
    }
    // No two of the given arrays may share memory: the worker writes them all.
    for (size_t i = 0; i < given.size(); i++)
      for (size_t j = 0; j < i; j++) {
        if (given[i].IsEmpty() || given[j].IsEmpty() || P == 0) continue;
        const float *a = given[i].Data(), *b = given[j].Data();
        if (a < b + P && b < a + P) throw Napi::Error::New(env, "the arrays given as into overlap");
      }
    outputs_.clear();
    outputs_.reserve(2 * args_.size());
    out_.resize(args_.size());
    for (size_t i = 0; i < args_.size(); i++) {
      Napi::Float32Array w = given[2 * i].IsEmpty() ? recycledArray(env, P) : given[2 * i];
      Napi::Float32Array d = given[2 * i + 1].IsEmpty() ? recycledArray(env, P) : given[2 * i + 1];
      out_[i] = {w.Data(), d.Data()};
      outputs_.push_back(Napi::Persistent(w.As<Napi::Object>()));
      outputs_.push_back(Napi::Persistent(d.As<Napi::Object>()));
    }
    predicted_.clear();
    predictedOut_.assign(args_.size(), {});
    for (size_t i = 0; i < args_.size(); i++)
      for (int n : args_[i].predictCounts) {
        Napi::Float32Array y = Napi::Float32Array::New(env, (size_t)n * engine_->outputSize());
        predictedOut_[i].push_back(y.Data());
        predicted_.push_back(Napi::Persistent(y.As<Napi::Object>()));
      }
    losses_.assign(args_.size(), 0);
    busy = true;
    engine_->wake();
    AdaptWorker* w = new AdaptWorker(env, this, Value());
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  }

  // fit(options): Keras-style steps on φ in place (Engine::fitSteps); resolves to the fast steps
  // since the last synchronisation. Options: { inputs, targets, count, order, sizes, loss,
  // optimizer, learningRate, beta1, beta2, epsilon, period, alpha, counter, slow, losses, outputs }.
  Napi::Value Fit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "fit needs an options object");
    Napi::Object o = info[0].As<Napi::Object>();
    Engine& e = *engine_;
    FitArgs f;
    const int count = intOf(o, "count");
    Napi::Float32Array x = f32Of(o.Get("inputs"), "inputs");
    Napi::Float32Array t = f32Of(o.Get("targets"), "targets");
    auto i32 = [&](const char* key) {
      Napi::Value v = o.Get(key);
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
        throw Napi::TypeError::New(env, std::string(key) + " must be an Int32Array");
      return v.As<Napi::Int32Array>();
    };
    Napi::Int32Array order = i32("order"), sizes = i32("sizes");
    f.loss = lossOf(env, o.Get("loss"));
    const int tsize = e.targetSize(f.loss);
    if (count <= 0) throw Napi::Error::New(env, "count must be positive");
    if ((int64_t)x.ElementLength() != (int64_t)count * e.inputSize()) throw Napi::Error::New(env, "inputs do not match count × input size");
    if ((int64_t)t.ElementLength() != (int64_t)count * tsize) throw Napi::Error::New(env, "targets do not match count × target size");
    int64_t total = 0;
    for (size_t k = 0; k < sizes.ElementLength(); k++) {
      if (sizes[k] <= 0) throw Napi::Error::New(env, "batch sizes must be positive");
      total += sizes[k];
    }
    if (total != (int64_t)order.ElementLength()) throw Napi::Error::New(env, "the batch sizes do not add up to the order's length");
    for (size_t k = 0; k < order.ElementLength(); k++)
      if (order[k] < 0 || order[k] >= count) throw Napi::Error::New(env, "batch index out of range");
    // Only the labels this call reads are checked: a caller running one batch per call pays for one batch.
    if (f.loss == LossKind::SoftmaxXent)
      for (size_t k = 0; k < order.ElementLength(); k++) {
        const float label = t[(size_t)order[k]];
        if (!(label >= 0 && label < e.outputSize() && (float)(int)label == label)) {
          std::ostringstream msg;
          msg << "class label " << label << " is not in 0.." << e.outputSize() - 1;
          throw Napi::Error::New(env, msg.str());
        }
      }
    const std::string opt = o.Get("optimizer").IsString() ? o.Get("optimizer").As<Napi::String>().Utf8Value() : "";
    if (opt != "sgd" && opt != "adam") throw Napi::Error::New(env, "optimizer must be sgd or adam");
    f.opt = opt == "sgd" ? OptKind::Sgd : OptKind::Adam;
    f.lr = numOf(o, "learningRate", 1e-3);
    f.beta1 = numOf(o, "beta1", 0.9);
    f.beta2 = numOf(o, "beta2", 0.999);
    f.eps = numOf(o, "epsilon", 1e-7);
    f.period = (int)wholeOf(o, "period", 0, INT32_MIN, INT32_MAX);
    f.alpha = numOf(o, "alpha", 0);
    f.counter = (int)wholeOf(o, "counter", 0, INT32_MIN, INT32_MAX);
    f.dropoutSeed = (uint64_t)wholeOf(o, "dropoutSeed", 0, 0, kMaxWhole);
    f.firstStep = wholeOf(o, "firstStep", 0, 0, kMaxWhole);
    if (f.period < 0 || f.counter < 0 || (f.period > 0 && f.counter >= f.period))
      throw Napi::Error::New(env, "period and counter must satisfy 0 ≤ counter < period");
    if (f.period > 0) {
      Napi::Float32Array slow = f32Of(o.Get("slow"), "slow");
      if ((int64_t)slow.ElementLength() != e.paramSize()) throw Napi::Error::New(env, "slow weights do not fit this model");
      f.slow = slow.Data();
    }
    Napi::Value lv = o.Get("losses");
    if (!lv.IsTypedArray() || lv.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
        lv.As<Napi::TypedArray>().ElementLength() != sizes.ElementLength())
      throw Napi::TypeError::New(env, "losses must be a Float64Array with one value per batch");
    Napi::Float32Array out = f32Of(o.Get("outputs"), "outputs");
    if ((int64_t)out.ElementLength() != (int64_t)order.ElementLength() * e.outputSize())
      throw Napi::Error::New(env, "outputs must hold one output per example of the order");
    f.inputs = x.Data();
    f.targets = t.Data();
    f.order = order.Data();
    f.sizes = sizes.Data();
    f.numBatches = (int)sizes.ElementLength();
    f.losses = lv.As<Napi::Float64Array>().Data();
    f.outputs = out.Data();
    // The optimizer state carries over: only a change of kind starts it afresh.
    if (e.optKind != f.opt) e.resetOptimizer(f.opt);
    busy = true;
    engine_->wake();
    FitWorker* w = new FitWorker(env, this, o, f);
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  }

  // Runs on the worker thread.
 public:
  int runFit(const FitArgs& f) {
    const int c = engine_->fitSteps(f);
    engine_->rest();
    return c;
  }

  void runAdapt() {
    Engine& e = *engine_;
    for (size_t i = 0; i < args_.size(); i++) {
      const AdaptArgs& a = args_[i];
      losses_[i] = e.adapt(a, out_[i].first, out_[i].second);
      for (size_t j = 0; j < a.predictCounts.size(); j++)
        e.predictWith(out_[i].first, a.predictInputs[j].data(), a.predictCounts[j], a.predictBatchStats, predictedOut_[i][j], j > 0);
    }
    e.rest();
  }

  Napi::Value results(Napi::Env env) {
    size_t first = 0;  // the first of task i's predictions in predicted_
    auto one = [&](size_t i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("params", outputs_[2 * i].Value());
      o.Set("lastStep", outputs_[2 * i + 1].Value());
      o.Set("loss", losses_[i]);
      if (!args_[i].predictCounts.empty()) {
        Napi::Array ys = Napi::Array::New(env, args_[i].predictCounts.size());
        for (size_t j = 0; j < args_[i].predictCounts.size(); j++) ys.Set((uint32_t)j, predicted_[first + j].Value());
        o.Set("outputs", ys);
      }
      first += args_[i].predictCounts.size();
      return o;
    };
    Napi::Value r;
    if (!many_) {
      r = one(0);
    } else {
      Napi::Array a = Napi::Array::New(env, args_.size());
      for (size_t i = 0; i < args_.size(); i++) a.Set((uint32_t)i, one(i));
      r = a;
    }
    outputs_.clear();
    predicted_.clear();
    return r;
  }

  void dropOutputs() {
    outputs_.clear();
    predicted_.clear();
  }

 private:

  Napi::Value Predict(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    Napi::Float32Array x = f32Of(info[0], "inputs");
    const int n = info[1].As<Napi::Number>().Int32Value();
    const bool batchStats = info[2].ToBoolean();
    if (n <= 0 || (int64_t)x.ElementLength() != (int64_t)n * engine_->inputSize())
      throw Napi::Error::New(env, "inputs do not match count × input size");
    Napi::Float32Array out = Napi::Float32Array::New(env, (size_t)n * engine_->outputSize());
    engine_->predict(x.Data(), n, batchStats, out.Data());
    return out;
  }

  Napi::Value Gradients(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    Napi::Float32Array x = f32Of(info[0], "inputs");
    Napi::Float32Array t = f32Of(info[1], "targets");
    const int n = info[2].As<Napi::Number>().Int32Value();
    const LossKind loss = lossOf(env, info[3]);
    const int tsize = engine_->targetSize(loss);
    if (n <= 0 || (int64_t)x.ElementLength() != (int64_t)n * engine_->inputSize() ||
        (int64_t)t.ElementLength() != (int64_t)n * tsize)
      throw Napi::Error::New(env, "inputs or targets do not match the example count");
    if (loss == LossKind::SoftmaxXent)
      for (size_t i = 0; i < t.ElementLength(); i++)
        if (!(t[i] >= 0 && t[i] < engine_->outputSize() && (float)(int)t[i] == t[i])) {
          std::ostringstream msg;
          msg << "class label " << t[i] << " is not in 0.." << engine_->outputSize() - 1;
          throw Napi::Error::New(env, msg.str());
        }
    Napi::Float32Array grad = Napi::Float32Array::New(env, (size_t)engine_->paramSize());
    Napi::Float32Array ig = Napi::Float32Array::New(env, x.ElementLength());
    Napi::Float32Array out = Napi::Float32Array::New(env, (size_t)n * engine_->outputSize());
    // An optional fifth argument: the seed of the dropout masks (none: no dropout).
    const bool dropout = info.Length() > 4 && info[4].IsNumber();
    const uint64_t seed = dropout ? (uint64_t)wholeIn(env, info[4].As<Napi::Number>().DoubleValue(), "dropoutSeed", 0, kMaxWhole) : 0;
    const double l =
        engine_->gradients(x.Data(), t.Data(), n, loss, grad.Data(), ig.Data(), out.Data(), dropout ? &seed : nullptr);
    Napi::Object o = Napi::Object::New(env);
    o.Set("loss", l);
    o.Set("grad", grad);
    o.Set("inputGrad", ig);
    o.Set("output", out);
    return o;
  }

  std::unique_ptr<Engine> engine_;
  std::vector<AdaptArgs> args_;
  std::vector<Napi::ObjectReference> outputs_;        // per task: adapted weights, last step
  std::vector<std::pair<float*, float*>> out_;        // ... and their data, for the worker
  std::vector<double> losses_;
  std::vector<Napi::ObjectReference> predicted_;      // every task's prediction outputs, in order
  std::vector<std::vector<float*>> predictedOut_;     // ... and their data, per task
  bool many_ = false;
};

void EngineTask::Execute() {
  try {
    run();
  } catch (const std::exception& e) {
    SetError(e.what());
  }
}

void EngineTask::OnOK() {
  owner_->busy = false;
  deferred_.Resolve(result(Env()));
}

void EngineTask::OnError(const Napi::Error& err) {
  owner_->busy = false;
  failed();
  deferred_.Reject(err.Value());
}

void FitWorker::run() { counter_ = owner_->runFit(args_); }

void AdaptWorker::run() { owner_->runAdapt(); }

Napi::Value AdaptWorker::result(Napi::Env env) { return owner_->results(env); }

void AdaptWorker::failed() { owner_->dropOutputs(); }

Napi::Value Supported(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env);
  uint32_t k = 0;
  for (const char* f : {"avx512", "avx2", "generic"})
    if (cpu_has(f)) a.Set(k++, f);
  return a;
}

// Which compiler built this binary, so that a check can tell a clang build from a g++ one.
Napi::Value Compiler(const Napi::CallbackInfo& info) {
#if defined(__clang__)
  return Napi::String::New(info.Env(), "clang " __clang_version__);
#elif defined(__GNUC__)
  return Napi::String::New(info.Env(), "g++ " __VERSION__);
#else
  return Napi::String::New(info.Env(), "unknown");
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", EngineWrap::Define(env));
  exports.Set("supportedIsas", Napi::Function::New(env, Supported));
  exports.Set("compiler", Napi::Function::New(env, Compiler));
  return exports;
}

}  // namespace
}  // namespace reptile

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return reptile::Init(env, exports); }
NODE_API_MODULE(reptile_native, InitModule)
