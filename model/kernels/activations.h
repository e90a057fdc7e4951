// Element-wise helpers of the SwiGLU FFN and friends, F32, vectorised by the compiler.
#ifndef MOE_MODEL_KERNELS_ACTIVATIONS_H_
#define MOE_MODEL_KERNELS_ACTIVATIONS_H_

#include <cstdint>

namespace moe::kernels {

// silu(v) = v / (1 + exp(-v)), in F32.
float Silu(float v);

// out[r, i] = silu(gate_up[r, i]) * gate_up[r, inter + i] for r < rows, i < inter:
// the layout PackedLinear::CreateStacked({gate, up}) produces ([rows, 2*inter]).
// `out` is dense [rows, inter]; it may be exactly `gate_up` (in place: rows are compacted in
// order), otherwise it must not overlap `gate_up`.
void SiluMulStacked(const float* gate_up, int64_t rows, int64_t inter, float* out);

// out[i] = silu(gate[i]) * up[i] for i < n (separate gate and up buffers).
void SiluMul(const float* gate, const float* up, int64_t n, float* out);

// y[i] += alpha * x[i] for i < n.
void Axpy(float alpha, const float* x, int64_t n, float* y);

}  // namespace moe::kernels

#endif  // MOE_MODEL_KERNELS_ACTIVATIONS_H_
