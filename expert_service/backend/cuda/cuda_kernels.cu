#include "expert_service/backend/cuda/cuda_kernels.h"

#include <cuda_bf16.h>

namespace moe::expert::cuda {
namespace {

constexpr int kThreads = 256;

int Blocks(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65535 ? blocks : 65535);  // grid-stride loops cover the rest
}

__global__ void F32ToBf16Kernel(const float* in, __nv_bfloat16* out, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = __float2bfloat16_rn(in[i]);
  }
}

__global__ void SiluMulKernel(const float* gate_up, int64_t rows, int64_t inter,
                              __nv_bfloat16* out) {
  const int64_t n = rows * inter;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / inter;
    const int64_t c = i - r * inter;
    const float g = gate_up[r * 2 * inter + c];
    const float u = gate_up[r * 2 * inter + inter + c];
    out[i] = __float2bfloat16_rn(g / (1.0f + __expf(-g)) * u);
  }
}

}  // namespace

cudaError_t LaunchF32ToBf16(const float* in, uint16_t* out, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  F32ToBf16Kernel<<<Blocks(n), kThreads, 0, stream>>>(in, reinterpret_cast<__nv_bfloat16*>(out),
                                                      n);
  return cudaGetLastError();
}

cudaError_t LaunchSiluMulToBf16(const float* gate_up, int64_t rows, int64_t inter, uint16_t* out,
                                cudaStream_t stream) {
  if (rows <= 0 || inter <= 0) return cudaSuccess;
  SiluMulKernel<<<Blocks(rows * inter), kThreads, 0, stream>>>(
      gate_up, rows, inter, reinterpret_cast<__nv_bfloat16*>(out));
  return cudaGetLastError();
}

}  // namespace moe::expert::cuda
