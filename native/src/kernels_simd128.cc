// WebAssembly SIMD128 kernels (4 floats per register, 4 × 8 register tile): the shared
// implementation on clang's 128-bit vector type, which -msimd128 lowers to f32x4 instructions.
// The tile is sized for the runtime's register allocator, not for WebAssembly (whose locals are
// unbounded): V8 on x86-64 allocates 15 vector registers, and without a fused multiply-add each
// step needs the accumulators, the NV values of B, the broadcast of A and a product. 4 × 2
// vectors (8 + 2 + 1 + 1) fit; the 6 × 2 tile of the AVX kernels (12 + 2 + 1 + 1) spills every
// step: the Omniglot Adam step took about twice as long with it in Node 20.
#include "kernels.h"

#include <algorithm>
#include <vector>
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#define KFN
#define VW 4
#if defined(__wasm_relaxed_simd__)
// With f32x4.relaxed_madd the 4 × 2 tile still serves best in Node 20: measured per Adam step of
// the Omniglot network (CPU ms, 3 rounds), 4 × 2 3.6–4.3, 3 × 3 4.1–4.3, 4 × 3 6.2–6.7, 5 × 2
// 6.7–7.1, 6 × 2 6.8–7.0; the SIMD128 build 4.2–4.5. REPTILE_WASM_FLAGS=-DREPTILE_WASM_MR=…
// (npm run build:wasm) tries others.
#ifndef REPTILE_WASM_MR
#define REPTILE_WASM_MR 4
#endif
#ifndef REPTILE_WASM_NV
#define REPTILE_WASM_NV 2
#endif
#define K_MR REPTILE_WASM_MR
#define K_NV REPTILE_WASM_NV
#define ISA_NAME "relaxed-simd128"
#else
#define K_MR 4
#define K_NV 2
#define ISA_NAME "simd128"
#endif
namespace reptile {
namespace simd128_impl {
#include "kernels_impl.inc"
}  // namespace simd128_impl
const Kernels* kernels_simd128() { return &simd128_impl::table; }
}  // namespace reptile
#endif
