// Which kernel variant this CPU runs: shared by the binding and the benchmarks.
#include <string>

#include "kernels.h"

namespace reptile {

bool cpu_has(const char* isa) {
  const std::string f(isa);
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (f == "avx512")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (f == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return f == "generic";
}

const Kernels* pick_kernels(const char* want) {
  const std::string w(want);
#if defined(__x86_64__) || defined(_M_X64)
  if (w == "auto") {
    if (cpu_has("avx512")) return kernels_avx512();
    if (cpu_has("avx2")) return kernels_avx2();
    return kernels_generic();
  }
  if (w == "avx512" && cpu_has("avx512")) return kernels_avx512();
  if (w == "avx2" && cpu_has("avx2")) return kernels_avx2();
#else
  if (w == "auto") return kernels_generic();
#endif
  if (w == "generic") return kernels_generic();
  return nullptr;
}

}  // namespace reptile
