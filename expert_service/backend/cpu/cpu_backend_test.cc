#include "expert_service/backend/cpu/cpu_backend.h"

#include <atomic>
#include <thread>
#include <vector>

#include "expert_service/backend/expert_backend.h"
#include "expert_service/backend/testing/random_expert.h"
#include "gtest/gtest.h"
#include "model/kernels/cpu_features.h"

namespace moe::expert {
namespace {

using testing::MakeExpert;
using testing::RandomActivations;
using testing::RandomExpert;

std::unique_ptr<ExpertBackend> Cpu(BackendOptions options = {}) {
  auto b = CreateExpertBackend("cpu", options);
  EXPECT_TRUE(b.ok()) << b.status();
  return std::move(*b);
}

std::vector<float> RunOne(ExpertBackend& b, int layer, int expert, const std::vector<float>& x,
                          int64_t hidden, absl::Status* status) {
  const int tokens = static_cast<int>(x.size() / hidden);
  std::vector<float> out(x.size());
  ExpertShard s{expert, tokens, x.data(), out.data()};
  *status = b.Run(layer, absl::MakeConstSpan(&s, 1));
  return out;
}

TEST(Registry, KnowsCpuAndRejectsUnknown) {
  const std::vector<std::string> names = AvailableBackends();
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names[0], "cpu");
  EXPECT_EQ(CreateExpertBackend("tpu", {}).status().code(), absl::StatusCode::kNotFound);
  // "cuda" either is built (and then fails here without a GPU) or says it was not built.
  auto cuda = CreateExpertBackend("cuda", {});
  if (!cuda.ok()) {
    EXPECT_TRUE(cuda.status().code() == absl::StatusCode::kUnavailable ||
                cuda.status().code() == absl::StatusCode::kFailedPrecondition)
        << cuda.status();
  }
}

TEST(CpuBackend, LoadRunUnloadAndDescribe) {
  auto b = Cpu();
  const RandomExpert e = MakeExpert(2, 7, 64, 96, DType::kBF16, 1);
  EXPECT_FALSE(b->Has(2, 7));
  ASSERT_TRUE(b->Load({e.Weights()}).ok());
  EXPECT_TRUE(b->Has(2, 7));
  EXPECT_FALSE(b->Has(7, 2));
  BackendInfo info = b->Describe();
  EXPECT_EQ(info.name, "cpu");
  EXPECT_EQ(info.experts_loaded, 1);
  if (kernels::HasAvx512Bf16()) {
    // One exponent-coded copy (BackendOptions::coded_bf16): 12 bits per weight plus the few
    // exceptions and their per-block offsets.
    EXPECT_GE(info.weight_bytes, 3 * 64 * 96 * 3 / 2);
    EXPECT_LT(info.weight_bytes, 3 * 64 * 96 * 3 / 2 + 1024);
  } else {
    EXPECT_EQ(info.weight_bytes, 3 * 64 * 96 * 2);  // one BF16 copy, 64/32-aligned dims
  }
  EXPECT_GT(info.memory_bytes, 0);

  const std::vector<float> x = RandomActivations(4 * 64, 2);
  absl::Status st;
  const std::vector<float> y = RunOne(*b, 2, 7, x, 64, &st);
  ASSERT_TRUE(st.ok()) << st;
  const std::vector<double> want = e.Reference(x.data() + 64);
  for (int c = 0; c < 64; ++c) EXPECT_NEAR(y[64 + c], want[c], 0.02 + 0.02 * std::abs(want[c]));

  const std::pair<int, int> drop[] = {{2, 7}, {9, 9}};
  ASSERT_TRUE(b->Unload(drop).ok());
  EXPECT_FALSE(b->Has(2, 7));
  info = b->Describe();
  EXPECT_EQ(info.experts_loaded, 0);
  EXPECT_EQ(info.weight_bytes, 0);
  RunOne(*b, 2, 7, x, 64, &st);
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
}

// A layer's shards run together (spread over the kernels' threads in pieces of output
// features: 4 MiB gate|up and 2 MiB down matrices here are cut into several pieces each) give
// bit for bit what each shard gives run alone, with and without the combine.
TEST(CpuBackend, ShardsRunTogetherEqualShardsRunAlone) {
  constexpr int kLayer = 3, kHidden = 1024, kInter = 1024;
  const int tokens[] = {3, 1, 2, 1, 2, 1, 1};
  auto b = Cpu();
  std::vector<RandomExpert> experts;
  for (int e = 0; e < 7; ++e) {
    experts.push_back(MakeExpert(kLayer, e, kHidden, kInter, DType::kBF16, 10 + e));
    ASSERT_TRUE(b->Load({experts.back().Weights()}).ok());
  }
  for (const bool combine : {false, true}) {
    std::vector<std::vector<float>> inputs, alone, together;
    std::vector<std::vector<float>> gates;
    std::vector<ExpertShard> shards;
    for (int e = 0; e < 7; ++e) {
      inputs.push_back(RandomActivations(tokens[e] * kHidden, 20 + e));
      gates.push_back(RandomActivations(tokens[e], 30 + e));
      alone.emplace_back(tokens[e] * kHidden, 0.5f);
      together.emplace_back(tokens[e] * kHidden, 0.5f);
    }
    for (int e = 0; e < 7; ++e) {
      ExpertShard s{e, tokens[e], inputs[e].data(), alone[e].data()};
      if (combine) s.combine_weight = gates[e].data();
      ASSERT_TRUE(b->Run(kLayer, absl::MakeConstSpan(&s, 1)).ok());
      ExpertShard t{e, tokens[e], inputs[e].data(), together[e].data()};
      if (combine) t.combine_weight = gates[e].data();
      shards.push_back(t);
    }
    ASSERT_TRUE(b->Run(kLayer, shards).ok());
    for (int e = 0; e < 7; ++e) EXPECT_EQ(together[e], alone[e]) << "expert " << e;
    // And the values are the expert's, not just self-consistent.
    const std::vector<double> want = experts[0].Reference(inputs[0].data());
    for (int c = 0; c < kHidden; ++c) {
      const double w = combine ? gates[0][0] * want[c] + 0.5 : want[c];
      EXPECT_NEAR(together[0][c], w, 0.02 + 0.02 * std::abs(w)) << c;
    }
  }
}

TEST(CpuBackend, LoadIsAllOrNothingOnBadShapes) {
  auto b = Cpu();
  const RandomExpert good = MakeExpert(0, 0, 32, 48, DType::kBF16, 3);
  RandomExpert bad = MakeExpert(0, 1, 32, 48, DType::kBF16, 4);
  ExpertWeights bad_w = bad.Weights();
  bad_w.down.shape = {48, 32};  // transposed: must be [hidden, inter]
  absl::Status st = b->Load({good.Weights(), bad_w});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_FALSE(b->Has(0, 0));

  ExpertWeights mixed = bad.Weights();
  mixed.up.dtype = DType::kF16;
  EXPECT_EQ(b->Load({mixed}).code(), absl::StatusCode::kInvalidArgument);
  ExpertWeights ints = bad.Weights();
  ints.gate.dtype = ints.up.dtype = ints.down.dtype = DType::kI32;
  EXPECT_EQ(b->Load({ints}).code(), absl::StatusCode::kInvalidArgument);
  ExpertWeights null = bad.Weights();
  null.up.data = nullptr;
  EXPECT_EQ(b->Load({null}).code(), absl::StatusCode::kInvalidArgument);
  ExpertWeights three_d = bad.Weights();
  three_d.gate.shape = {48, 32, 1};
  EXPECT_EQ(b->Load({three_d}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b->Describe().experts_loaded, 0);
}

TEST(CpuBackend, MemoryLimitIsEnforced) {
  const RandomExpert e0 = MakeExpert(0, 0, 64, 64, DType::kBF16, 5);
  const RandomExpert e1 = MakeExpert(0, 1, 64, 64, DType::kBF16, 6);
  auto b = Cpu({.memory_limit_bytes = 3 * 64 * 64 * 2 + 100});  // room for one expert
  ASSERT_TRUE(b->Load({e0.Weights()}).ok());
  EXPECT_EQ(b->Load({e1.Weights()}).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(b->Has(0, 1));
  ASSERT_TRUE(b->Load({e0.Weights()}).ok());  // replacing itself fits
  const std::pair<int, int> drop[] = {{0, 0}};
  ASSERT_TRUE(b->Unload(drop).ok());
  EXPECT_TRUE(b->Load({e1.Weights()}).ok());
}

TEST(CpuBackend, ReloadReplacesWeights) {
  auto b = Cpu();
  const RandomExpert a = MakeExpert(1, 1, 32, 32, DType::kF32, 7);
  const RandomExpert c = MakeExpert(1, 1, 32, 32, DType::kF32, 8);
  const std::vector<float> x = RandomActivations(32, 9);
  absl::Status st;
  ASSERT_TRUE(b->Load({a.Weights()}).ok());
  const std::vector<float> ya = RunOne(*b, 1, 1, x, 32, &st);
  ASSERT_TRUE(b->Load({c.Weights()}).ok());
  const std::vector<float> yc = RunOne(*b, 1, 1, x, 32, &st);
  const std::vector<double> want = c.Reference(x.data());
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(yc[i], want[i], 1e-5) << i;
  EXPECT_NE(ya, yc);
  EXPECT_EQ(b->Describe().experts_loaded, 1);
}

TEST(CpuBackend, RejectsBadShards) {
  auto b = Cpu();
  const RandomExpert e = MakeExpert(0, 0, 32, 32, DType::kBF16, 10);
  ASSERT_TRUE(b->Load({e.Weights()}).ok());
  ExpertShard negative{0, -1, nullptr, nullptr};
  EXPECT_EQ(b->Run(0, absl::MakeConstSpan(&negative, 1)).code(),
            absl::StatusCode::kInvalidArgument);
  ExpertShard null{0, 2, nullptr, nullptr};
  EXPECT_EQ(b->Run(0, absl::MakeConstSpan(&null, 1)).code(), absl::StatusCode::kInvalidArgument);
  ExpertShard empty{0, 0, nullptr, nullptr};
  EXPECT_TRUE(b->Run(0, absl::MakeConstSpan(&empty, 1)).ok());
}

// Make-before-break: Load/Unload on another thread while Run runs. Every Run either finds the
// expert (and computes the right values) or reports NOT_FOUND; none crashes or mixes weights.
TEST(CpuBackend, UnloadDuringRunIsSafe) {
  auto b = Cpu();
  const RandomExpert e = MakeExpert(3, 4, 128, 256, DType::kBF16, 11);
  ASSERT_TRUE(b->Load({e.Weights()}).ok());
  const std::vector<float> x = RandomActivations(16 * 128, 12);
  absl::Status st;
  const std::vector<float> expected = RunOne(*b, 3, 4, x, 128, &st);
  ASSERT_TRUE(st.ok());
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    const std::pair<int, int> key[] = {{3, 4}};
    while (!stop.load()) {
      EXPECT_TRUE(b->Unload(key).ok());
      EXPECT_TRUE(b->Load({e.Weights()}).ok());
    }
  });
  // Run until both outcomes were seen a few times (bounded), so the overlap really happened
  // without depending on how the two threads get scheduled.
  int ok = 0, not_found = 0, wrong = 0, runs = 0;
  for (; runs < 20000 && (ok < 5 || not_found < 5); ++runs) {
    const std::vector<float> y = RunOne(*b, 3, 4, x, 128, &st);
    if (st.ok()) {
      ++ok;
      if (y != expected) ++wrong;
    } else if (st.code() == absl::StatusCode::kNotFound) {
      ++not_found;
    } else {
      ADD_FAILURE() << st;
    }
  }
  stop = true;
  churn.join();
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(ok + not_found, runs);
  // The churn thread ends with a Load: the expert is back and computes the same values.
  const std::vector<float> y = RunOne(*b, 3, 4, x, 128, &st);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(y, expected);
}

}  // namespace
}  // namespace moe::expert
