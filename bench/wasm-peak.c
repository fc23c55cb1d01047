// Peak f32x4 multiply-add throughput of WebAssembly SIMD128 in this runtime: 12 independent
// accumulators, acc = acc + a·b (no fused multiply-add in SIMD128), or with RELAXED
// f32x4.relaxed_madd. Built and timed by bench/wasm-peak.mjs.
#include <wasm_simd128.h>
#define N 12
__attribute__((export_name("peak"))) float peak(int iters, float x) {
  v128_t acc[N];
  for (int i = 0; i < N; i++) acc[i] = wasm_f32x4_splat(x * (float)i);
  const v128_t a = wasm_f32x4_splat(x), b = wasm_f32x4_splat(1.0f - x);
  for (int it = 0; it < iters; it++) {
#pragma clang loop unroll(full)
    for (int i = 0; i < N; i++) {
#ifdef RELAXED
      acc[i] = __builtin_wasm_fma_f32x4(a, b, acc[i]);
#else
      acc[i] = wasm_f32x4_add(wasm_f32x4_mul(a, b), acc[i]);
#endif
    }
    __asm__ volatile("" ::: "memory");
  }
  v128_t s = acc[0];
  for (int i = 1; i < N; i++) s = wasm_f32x4_add(s, acc[i]);
  return wasm_f32x4_extract_lane(s, 0);
}
