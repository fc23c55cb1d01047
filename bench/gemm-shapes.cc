// The engine's matrix product alone, on the products of one training step of the Omniglot network
// for one shard of a batch (examples per shard: the first argument, 5 for the paper's 5-way batch
// of 10): each convolution's forward product, weight gradient and input gradient, timed as the
// engine runs them (weights packed once beforehand for the forward and input-gradient products) and
// with the packing inside the product. Best of 7 runs of 200 products each; one JSON line per shape.
// Built and run by bench/gemm-shapes.mjs (npm run bench:gemm).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "kernels.h"

using namespace reptile;

template <class F>
static double best(F f) {
  double t = 1e30;
  for (int rep = 0; rep < 7; rep++) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 200; i++) f();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 200;
    if (dt < t) t = dt;
  }
  return t;
}

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 5;
  const Kernels* k = pick_kernels("auto");
  float* work = static_cast<float*>(std::aligned_alloc(64, (k->gemm_work_floats() * sizeof(float) + 63) / 64 * 64));
  struct Shape {
    const char* name;
    int M, N, K;
    bool transA, transB, weights;
  };
  // Layers 1–4 of the network: 28×28 → 14×14 → 7×7 → 4×4 → 2×2, 64 filters of 3×3.
  const int rows[4] = {n * 196, n * 49, n * 16, n * 4}, depth[4] = {9, 576, 576, 576};
  std::vector<Shape> shapes;
  static const char* names[4][3] = {{"conv1 forward", "conv1 weight gradient", ""},
                                    {"conv2 forward", "conv2 weight gradient", "conv2 input gradient"},
                                    {"conv3 forward", "conv3 weight gradient", "conv3 input gradient"},
                                    {"conv4 forward", "conv4 weight gradient", "conv4 input gradient"}};
  for (int l = 0; l < 4; l++) {
    shapes.push_back({names[l][0], rows[l], 64, depth[l], false, false, true});
    shapes.push_back({names[l][1], depth[l], 64, rows[l], true, false, false});
    if (l > 0) shapes.push_back({names[l][2], rows[l], depth[l], 64, false, true, true});
  }
  for (const Shape& s : shapes) {
    std::vector<float> A((size_t)s.M * s.K), B((size_t)s.K * s.N), C((size_t)s.M * s.N);
    for (size_t i = 0; i < A.size(); i++) A[i] = (float)((i * 7919) % 1000) / 1000.f - 0.5f;
    for (size_t i = 0; i < B.size(); i++) B[i] = (float)((i * 104729) % 1000) / 1000.f - 0.5f;
    const int lda = s.transA ? s.M : s.K, ldb = s.transB ? s.K : s.N;
    const double plain = best([&] {
      k->gemm(s.M, s.N, s.K, A.data(), lda, s.transA, B.data(), ldb, s.transB, C.data(), s.N, false, work);
    });
    double engine = plain;
    if (s.weights) {
      std::vector<float> packed(k->packed_b_floats(s.N, s.K));
      k->pack_b_all(s.K, s.N, B.data(), ldb, s.transB, packed.data(), 0, 1);
      engine = best([&] {
        k->gemm_packed(s.M, s.N, s.K, A.data(), lda, s.transA, packed.data(), C.data(), s.N, false, work);
      });
    }
    const double flop = 2.0 * s.M * s.N * s.K;
    std::printf(
        "{\"isa\":\"%s\",\"examples\":%d,\"product\":\"%s\",\"M\":%d,\"N\":%d,\"K\":%d,\"us\":%.2f,\"gflop_per_s\":%.1f,"
        "\"us_packing_inside\":%.2f,\"gflop_per_s_packing_inside\":%.1f}\n",
        k->isa, n, s.name, s.M, s.N, s.K, engine * 1e6, flop / engine / 1e9, plain * 1e6, flop / plain / 1e9);
  }
  std::free(work);
  return 0;
}
