// The native training engine: a compiled plan of layers over NHWC float32 data, with all buffers
// owned here and reused from call to call, running whole inner loops (forward, backward,
// optimizer step, for every minibatch) without allocating once the largest batch has been seen.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels.h"

namespace reptile {

enum class OpKind { Conv, Dense, BatchNorm, Relu, Tanh, MaxPool };
enum class LossKind { SoftmaxXent, Mse };
enum class OptKind { None, Sgd, Adam };

struct OpSpec {
  OpKind kind;
  WindowGeom g{};            // Conv, MaxPool
  int inSize = 0;            // per-example input floats
  int outSize = 0;           // per-example output floats
  int64_t w = -1, b = -1;    // Conv / Dense parameter offsets (b = -1: no bias)
  int channels = 0;          // BatchNorm: size of the last axis
  float eps = 1e-3f, momentum = 0.99f;
  int64_t gamma = -1, beta = -1;
  std::vector<float> movingMean, movingVar;
  bool fusedRelu = false;    // BatchNorm followed by a ReLU that this op applies itself
  bool skip = false;         // a ReLU folded into the BatchNorm before it
};

struct AdaptArgs {
  std::vector<float> inputs, targets;
  std::vector<int32_t> batches;
  int count = 0, batchSize = 0, numBatches = 0;
  OptKind opt = OptKind::Adam;
  double lr = 1e-3, beta1 = 0, beta2 = 0.999, eps = 1e-8;
  bool reset = false;
  LossKind loss = LossKind::SoftmaxXent;
};

class Pool;

class Engine {
 public:
  // 1: everything on the calling thread; 2: large matrix products shared with a helper thread.
  void setThreads(int threads);
  int threads() const { return par_ ? 2 : 1; }

  Engine(std::vector<OpSpec> ops, int inputSize, int outputSize, int64_t paramSize, const Kernels* k);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const Kernels* kernels() const { return k_; }
  int64_t paramSize() const { return P_; }
  int inputSize() const { return inputSize_; }
  int outputSize() const { return outputSize_; }
  std::vector<float>& params() { return params_; }
  const std::vector<OpSpec>& ops() const { return ops_; }

  OptKind optKind = OptKind::None;
  double optStep = 0;
  std::vector<float> m, v;
  void resetOptimizer(OptKind kind);

  // Runs all minibatches of args from the current parameters φ; leaves φ in place, the adapted
  // weights in adapted() and W − W_{k−1} in lastStep(). Returns the mean loss over the steps.
  double adapt(const AdaptArgs& args);
  const std::vector<float>& adapted() const { return adapted_; }
  const std::vector<float>& lastStep() const { return lastStep_; }

  void predict(const float* x, int n, bool batchStats, float* out);
  double gradients(const float* x, const float* targets, int n, LossKind loss, float* grad, float* inputGrad,
                   float* output);

 private:
  void ensure(int n);
  void forward(int n, bool training);
  void backward(int n, bool inputGrad);
  double lossAndGrad(int n, LossKind loss, const float* targets);
  void applyOptimizer(const AdaptArgs& a);

  std::vector<OpSpec> ops_;
  int inputSize_, outputSize_;
  int64_t P_;
  const Kernels* k_;
  int cap_ = 0;
  std::vector<std::vector<float>> act_;   // act_[i]: input of op i; act_[ops.size()]: output
  std::vector<std::vector<float>> aux_;   // per op: im2col buffer (Conv)
  std::vector<std::vector<int32_t>> arg_; // per op: argmax (MaxPool)
  std::vector<std::vector<float>> stats_; // per op: mean, var, invstd (BatchNorm)
  std::vector<float> g0_, g1_, dcol_, grad_, scratch_, ones_, zeros_;
  float* work_ = nullptr;
  std::unique_ptr<Pool> pool_;
  Parallel parallel_{1, nullptr, nullptr};
  const Parallel* par_ = nullptr;
  std::vector<float> params_, phi_, before_, adapted_, lastStep_, batchTargets_;
};

}  // namespace reptile
