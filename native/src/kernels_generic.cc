// Portable kernels: plain vector extensions at the baseline instruction set.
#include "kernels.h"

#include <algorithm>
#include <vector>

#define KFN
#define VW 4
#define K_MR 6
#define K_NV 2
#define ISA_NAME "generic"
namespace reptile {
namespace generic_impl {
#include "kernels_impl.inc"
}  // namespace generic_impl
const Kernels* kernels_generic() { return &generic_impl::table; }
}  // namespace reptile
