// WebAssembly SIMD128 kernels (4 floats per register, 6 × 8 register tile): the shared
// implementation on clang's 128-bit vector type, which -msimd128 lowers to f32x4 instructions.
#include "kernels.h"

#include <algorithm>
#include <vector>
#if defined(__wasm_simd128__)
#define KFN
#define VW 4
#define K_MR 6
#define K_NV 2
#define ISA_NAME "simd128"
namespace reptile {
namespace simd128_impl {
#include "kernels_impl.inc"
}  // namespace simd128_impl
const Kernels* kernels_simd128() { return &simd128_impl::table; }
}  // namespace reptile
#endif
