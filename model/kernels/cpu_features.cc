#include "model/kernels/cpu_features.h"

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "model/kernels/thread_pool.h"

namespace moe::kernels {

bool HasAvx512Bf16() {
  static const bool has = [] {
    const char* off = std::getenv("MOE_DISABLE_AVX512_BF16");
    if (off != nullptr && std::strcmp(off, "0") != 0 && off[0] != '\0') return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
  }();
  return has;
}

std::string CpuDescription() {
  std::string model = "cpu";
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      if (colon != std::string::npos) model = line.substr(colon + 2);
      break;
    }
  }
  return model + ", " + std::to_string(KernelThreads()) + " threads" +
         (HasAvx512Bf16() ? ", avx512_bf16" : "");
}

}  // namespace moe::kernels
