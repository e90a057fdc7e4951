// Run-time CPU feature checks (the binary is built for baseline x86-64; AVX512 code is
// compiled per file and only entered after these checks).
#ifndef MOE_MODEL_KERNELS_CPU_FEATURES_H_
#define MOE_MODEL_KERNELS_CPU_FEATURES_H_

#include <string>

namespace moe::kernels {

// avx512f + avx512bw + avx512vl + avx512_bf16, with OS support for the ZMM state.
// MOE_DISABLE_AVX512_BF16=1 in the environment forces false (to test fallbacks).
bool HasAvx512Bf16();

// e.g. "AMD EPYC, 2 threads, avx512_bf16".
std::string CpuDescription();

}  // namespace moe::kernels

#endif  // MOE_MODEL_KERNELS_CPU_FEATURES_H_
