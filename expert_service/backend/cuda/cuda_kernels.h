// The CUDA kernels of the CUDA expert backend (cuda_kernels.cu). BF16 buffers are passed as
// uint16_t so this header needs only the runtime API.
#ifndef MOE_EXPERT_SERVICE_BACKEND_CUDA_CUDA_KERNELS_H_
#define MOE_EXPERT_SERVICE_BACKEND_CUDA_CUDA_KERNELS_H_

#include <cstdint>

#include <cuda_runtime_api.h>

namespace moe::expert::cuda {

// out[i] = bf16(in[i]) (round to nearest even) for i < n, on `stream`.
cudaError_t LaunchF32ToBf16(const float* in, uint16_t* out, int64_t n, cudaStream_t stream);

// out[r, i] = bf16(silu(gate_up[r, i]) * gate_up[r, inter + i]) for r < rows, i < inter:
// gate_up is [rows, 2*inter] F32 (the fused gate+up GEMM output), out is [rows, inter] BF16
// (the down GEMM's input).
cudaError_t LaunchSiluMulToBf16(const float* gate_up, int64_t rows, int64_t inter, uint16_t* out,
                                cudaStream_t stream);

}  // namespace moe::expert::cuda

#endif  // MOE_EXPERT_SERVICE_BACKEND_CUDA_CUDA_KERNELS_H_
