// Test helpers: random expert weights in any dtype and a double-precision SwiGLU reference.
#ifndef MOE_EXPERT_SERVICE_BACKEND_TESTING_RANDOM_EXPERT_H_
#define MOE_EXPERT_SERVICE_BACKEND_TESTING_RANDOM_EXPERT_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "expert_service/backend/expert_backend.h"
#include "model/dtype.h"

namespace moe::expert::testing {

// One weight tensor: raw bytes in `dtype` plus the exact values they encode.
struct RandomTensor {
  DType dtype = DType::kBF16;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  std::vector<double> values;
  WeightRef Ref() const { return WeightRef{dtype, shape, bytes.data()}; }
};

inline RandomTensor MakeTensor(DType dtype, int64_t rows, int64_t cols, double scale,
                               std::mt19937* rng) {
  std::normal_distribution<float> dist(0.0f, static_cast<float>(scale));
  RandomTensor t;
  t.dtype = dtype;
  t.shape = {rows, cols};
  t.bytes.resize(static_cast<size_t>(rows * cols) * DTypeSize(dtype));
  t.values.resize(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) {
    const float v = dist(*rng);
    if (dtype == DType::kF32) {
      std::memcpy(t.bytes.data() + 4 * i, &v, 4);
      t.values[i] = v;
    } else {
      const uint16_t h = dtype == DType::kBF16 ? F32ToBf16(v) : F32ToF16(v);
      std::memcpy(t.bytes.data() + 2 * i, &h, 2);
      t.values[i] = dtype == DType::kBF16 ? Bf16ToF32(h) : F16ToF32(h);
    }
  }
  return t;
}

struct RandomExpert {
  int layer = 0;
  int expert = 0;
  int64_t hidden = 0;
  int64_t inter = 0;
  RandomTensor gate, up, down;

  ExpertWeights Weights() const { return {layer, expert, gate.Ref(), up.Ref(), down.Ref()}; }

  // ffn(x) for one token in double precision over the exact weight values.
  std::vector<double> Reference(const float* x) const {
    std::vector<double> h(inter);
    for (int64_t i = 0; i < inter; ++i) {
      double g = 0, u = 0;
      for (int64_t c = 0; c < hidden; ++c) {
        g += gate.values[i * hidden + c] * x[c];
        u += up.values[i * hidden + c] * x[c];
      }
      h[i] = g / (1.0 + std::exp(-g)) * u;
    }
    std::vector<double> out(hidden);
    for (int64_t o = 0; o < hidden; ++o) {
      double s = 0;
      for (int64_t i = 0; i < inter; ++i) s += down.values[o * inter + i] * h[i];
      out[o] = s;
    }
    return out;
  }
};

// Weights scaled by 1/sqrt(fan_in) so activations stay O(1) through the FFN.
inline RandomExpert MakeExpert(int layer, int expert, int64_t hidden, int64_t inter, DType dtype,
                               uint32_t seed) {
  std::mt19937 rng(seed);
  RandomExpert e;
  e.layer = layer;
  e.expert = expert;
  e.hidden = hidden;
  e.inter = inter;
  e.gate = MakeTensor(dtype, inter, hidden, 1.0 / std::sqrt(double(hidden)), &rng);
  e.up = MakeTensor(dtype, inter, hidden, 1.0 / std::sqrt(double(hidden)), &rng);
  e.down = MakeTensor(dtype, hidden, inter, 1.0 / std::sqrt(double(inter)), &rng);
  return e;
}

inline std::vector<float> RandomActivations(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

}  // namespace moe::expert::testing

#endif  // MOE_EXPERT_SERVICE_BACKEND_TESTING_RANDOM_EXPERT_H_
