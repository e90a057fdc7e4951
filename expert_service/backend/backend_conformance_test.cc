// Backend conformance: the same random expert batches on one backend (chosen by --backend=)
// compared with a double-precision reference by normalised MSE. Exits 77 (ctest: Skipped)
// when a non-CPU backend is not built or cannot run here (no GPU).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "expert_service/backend/expert_backend.h"
#include "expert_service/backend/testing/random_expert.h"
#include "gtest/gtest.h"

namespace moe::expert {
namespace {

std::string g_backend = "cpu";

using testing::MakeExpert;
using testing::RandomActivations;
using testing::RandomExpert;

constexpr int kLayer = 5;
constexpr int64_t kHidden = 136;
constexpr int64_t kInter = 100;
// 100 > 64 also takes the CPU backend's oneDNN path (PackedLinear's kAuto switch).
constexpr int kTokenCounts[] = {0, 1, 3, 17, 64, 100};

// NMSE bound per (backend, weight dtype): BF16 math rounds activations to 8 significant bits
// (expected NMSE ~1e-5); F32 (and F16 widened to F32) weights on the CPU keep F32 math.
double Threshold(DType dtype) {
  if (g_backend == "cpu" && dtype != DType::kBF16) return 1e-9;
  return 1e-4;
}

std::unique_ptr<ExpertBackend> MakeBackend() {
  absl::StatusOr<std::unique_ptr<ExpertBackend>> b = CreateExpertBackend(g_backend, {});
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? std::move(*b) : nullptr;
}

double Nmse(const std::vector<float>& got, const std::vector<double>& want) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    err += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return norm == 0 ? err : err / norm;
}

class ConformanceTest : public ::testing::TestWithParam<DType> {};

TEST_P(ConformanceTest, ShardsMatchReference) {
  const DType dtype = GetParam();
  std::unique_ptr<ExpertBackend> backend = MakeBackend();
  ASSERT_NE(backend, nullptr);
  std::vector<RandomExpert> experts;
  std::vector<ExpertWeights> weights;
  for (int e = 0; e < 6; ++e) {
    experts.push_back(MakeExpert(kLayer, e * 3 + 1, kHidden, kInter, dtype, 100 + e));
  }
  for (const auto& e : experts) weights.push_back(e.Weights());
  ASSERT_TRUE(backend->Load(weights).ok());

  std::vector<std::vector<float>> inputs, outputs;
  std::vector<ExpertShard> shards;
  for (size_t i = 0; i < experts.size(); ++i) {
    const int tokens = kTokenCounts[i];
    inputs.push_back(RandomActivations(tokens * kHidden, 200 + i));
    outputs.emplace_back(tokens * kHidden, -7.0f);
  }
  for (size_t i = 0; i < experts.size(); ++i) {
    shards.push_back({experts[i].expert, kTokenCounts[i], inputs[i].data(), outputs[i].data()});
  }
  ASSERT_TRUE(backend->Run(kLayer, shards).ok());
  for (size_t i = 0; i < experts.size(); ++i) {
    const int tokens = kTokenCounts[i];
    std::vector<double> want;
    for (int t = 0; t < tokens; ++t) {
      std::vector<double> row = experts[i].Reference(inputs[i].data() + t * kHidden);
      want.insert(want.end(), row.begin(), row.end());
    }
    if (tokens == 0) continue;
    const double nmse = Nmse(outputs[i], want);
    EXPECT_LT(nmse, Threshold(dtype)) << "expert " << experts[i].expert << " tokens " << tokens;
    RecordProperty("nmse_tokens_" + std::to_string(tokens), std::to_string(nmse));
  }
}

TEST_P(ConformanceTest, CombineAccumulatesWeightedRows) {
  const DType dtype = GetParam();
  std::unique_ptr<ExpertBackend> backend = MakeBackend();
  ASSERT_NE(backend, nullptr);
  // 6 tokens, top-2 routing over 3 experts: every token appears in two shards.
  const int64_t num_tokens = 6;
  std::vector<RandomExpert> experts;
  std::vector<ExpertWeights> weights;
  for (int e = 0; e < 3; ++e) {
    experts.push_back(MakeExpert(kLayer, e, kHidden, kInter, dtype, 300 + e));
  }
  for (const auto& e : experts) weights.push_back(e.Weights());
  ASSERT_TRUE(backend->Load(weights).ok());
  const std::vector<float> tokens = RandomActivations(num_tokens * kHidden, 400);
  const std::vector<std::vector<int32_t>> rows = {{0, 2, 4, 5}, {0, 1, 3}, {1, 2, 3, 4, 5}};
  const std::vector<std::vector<float>> gates = {{0.7f, 0.5f, 0.6f, 0.1f},
                                                 {0.3f, 0.9f, 0.25f},
                                                 {0.1f, 0.5f, 0.75f, 0.4f, 0.9f}};
  std::vector<std::vector<float>> inputs(3);
  std::vector<ExpertShard> shards;
  for (int e = 0; e < 3; ++e) {
    for (int32_t r : rows[e]) {
      inputs[e].insert(inputs[e].end(), tokens.begin() + r * kHidden,
                       tokens.begin() + (r + 1) * kHidden);
    }
  }
  std::vector<float> out = RandomActivations(num_tokens * kHidden, 401);  // residual
  std::vector<double> want(out.begin(), out.end());
  for (int e = 0; e < 3; ++e) {
    ExpertShard s;
    s.expert = e;
    s.tokens = static_cast<int>(rows[e].size());
    s.input = inputs[e].data();
    s.output = out.data();
    s.combine_weight = gates[e].data();
    s.combine_row = rows[e].data();
    shards.push_back(s);
    for (size_t t = 0; t < rows[e].size(); ++t) {
      std::vector<double> ffn = experts[e].Reference(tokens.data() + rows[e][t] * kHidden);
      for (int64_t c = 0; c < kHidden; ++c) want[rows[e][t] * kHidden + c] += gates[e][t] * ffn[c];
    }
  }
  ASSERT_TRUE(backend->Run(kLayer, shards).ok());
  EXPECT_LT(Nmse(out, want), Threshold(dtype));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ConformanceTest,
                         ::testing::Values(DType::kBF16, DType::kF32, DType::kF16),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(DTypeName(info.param));
                         });

}  // namespace
}  // namespace moe::expert

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--backend=", 10) == 0) moe::expert::g_backend = argv[i] + 10;
  }
  const std::string& name = moe::expert::g_backend;
  if (name != "cpu") {
    absl::StatusOr<std::unique_ptr<moe::expert::ExpertBackend>> probe =
        moe::expert::CreateExpertBackend(name, {});
    if (!probe.ok()) {
      std::printf("SKIP: backend '%s' cannot run here: %s\n", name.c_str(),
                  probe.status().ToString().c_str());
      return 77;
    }
  }
  std::printf("backend: %s\n", name.c_str());
  return RUN_ALL_TESTS();
}
