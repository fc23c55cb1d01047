// AVX2 + FMA kernels (8 floats per register, 6 × 16 register tile).
#include "kernels.h"

#include <algorithm>
#include <vector>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define KFN __attribute__((target("avx2,fma")))
#define VW 8
#define K_MR 6
#define K_NV 2
#define ISA_NAME "avx2"
namespace reptile {
namespace avx2_impl {
#include "kernels_impl.inc"
}  // namespace avx2_impl
const Kernels* kernels_avx2() { return &avx2_impl::table; }
}  // namespace reptile
#endif
