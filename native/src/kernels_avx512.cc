// AVX-512 kernels (16 floats per register; 12 × 32 and 6 × 64 register tiles: 24 accumulators).
#include "kernels.h"

#include <algorithm>
#include <vector>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define KFN __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define VW 16
#define K_MR 12
#define K_NV 2
#define K_MRW 6
#define K_NVW 4
#define ISA_NAME "avx512"
namespace reptile {
namespace avx512_impl {
#include "kernels_impl.inc"
}  // namespace avx512_impl
const Kernels* kernels_avx512() { return &avx512_impl::table; }
}  // namespace reptile
#endif
