// The machine's float32 FMA ceiling, measured: `threads` threads each run 12 independent chains of
// fused multiply-adds on the widest vectors the compiler is allowed (-march=native), long enough
// for the chains' latency to hide behind the FMA units' throughput. Prints GFLOP/s (2 per FMA per
// lane) as JSON. Built and run by bench/anchors.ts.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
typedef __m512 vec;
static const int kLanes = 16;
static inline vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
static inline vec splat(float x) { return _mm512_set1_ps(x); }
static inline float first(vec a) { return _mm512_cvtss_f32(a); }
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
typedef __m256 vec;
static const int kLanes = 8;
static inline vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
static inline vec splat(float x) { return _mm256_set1_ps(x); }
static inline float first(vec a) { return _mm256_cvtss_f32(a); }
#else
typedef float vec;
static const int kLanes = 1;
static inline vec fma(vec a, vec b, vec c) { return a * b + c; }
static inline vec splat(float x) { return x; }
static inline float first(vec a) { return a; }
#endif

static float run(long iters) {
  vec a = splat(0.999999f), b = splat(1e-7f);
  vec c0 = splat(0), c1 = splat(1), c2 = splat(2), c3 = splat(3), c4 = splat(4), c5 = splat(5);
  vec c6 = splat(6), c7 = splat(7), c8 = splat(8), c9 = splat(9), c10 = splat(10), c11 = splat(11);
  for (long i = 0; i < iters; i++) {
    c0 = fma(c0, a, b); c1 = fma(c1, a, b); c2 = fma(c2, a, b); c3 = fma(c3, a, b);
    c4 = fma(c4, a, b); c5 = fma(c5, a, b); c6 = fma(c6, a, b); c7 = fma(c7, a, b);
    c8 = fma(c8, a, b); c9 = fma(c9, a, b); c10 = fma(c10, a, b); c11 = fma(c11, a, b);
  }
  return first(c0) + first(c1) + first(c2) + first(c3) + first(c4) + first(c5) + first(c6) + first(c7) + first(c8) +
         first(c9) + first(c10) + first(c11);
}

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  long iters = argc > 2 ? atol(argv[2]) : 200000000L;
  std::vector<std::thread> pool;
  std::vector<float> sink(threads);
  auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; t++) pool.emplace_back([&, t] { sink[t] = run(iters); });
  for (auto& th : pool) th.join();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double flops = 2.0 * 12 * kLanes * (double)iters * threads;
  float check = 0;
  for (float x : sink) check += x;
  printf("{\"threads\":%d,\"lanes\":%d,\"gflop_per_s\":%.1f,\"seconds\":%.3f,\"check\":%g}\n", threads, kLanes, flops / s / 1e9, s, check);
  return 0;
}
