#include "expert_service/executor/shard_executor.h"

#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "expert_service/backend/testing/random_expert.h"

namespace moe::expert {
namespace {

constexpr int kHidden = 16;
constexpr int kInter = 8;

struct Fixture {
  std::vector<testing::RandomExpert> experts;
  std::unique_ptr<ShardExecutor> executor;
  std::unique_ptr<ExpertBackend> reference;  // a second backend with the same weights
};

testing::RandomExpert MakeExpert(int layer, int expert, std::mt19937* rng) {
  testing::RandomExpert r;
  r.layer = layer;
  r.expert = expert;
  r.hidden = kHidden;
  r.inter = kInter;
  r.gate = testing::MakeTensor(DType::kF32, kInter, kHidden, 0.25, rng);
  r.up = testing::MakeTensor(DType::kF32, kInter, kHidden, 0.25, rng);
  r.down = testing::MakeTensor(DType::kF32, kHidden, kInter, 0.35, rng);
  return r;
}

Fixture MakeFixture() {
  Fixture f;
  std::mt19937 rng(7);
  f.experts.push_back(MakeExpert(1, 0, &rng));
  f.experts.push_back(MakeExpert(1, 2, &rng));
  std::vector<ExpertWeights> w;
  for (const auto& e : f.experts) w.push_back(e.Weights());
  auto backend = CreateExpertBackend("cpu", BackendOptions{});
  auto reference = CreateExpertBackend("cpu", BackendOptions{});
  EXPECT_TRUE(backend.ok() && reference.ok());
  EXPECT_TRUE((*reference)->Load(w).ok());
  f.reference = std::move(*reference);
  ShardExecutorConfig c;
  c.num_layers = 2;
  c.num_experts = 4;
  c.hidden = kHidden;
  c.max_tokens = 64;
  f.executor = std::make_unique<ShardExecutor>(c, std::move(*backend));
  EXPECT_TRUE(f.executor->LoadExperts(w, /*epoch=*/3).ok());
  return f;
}

std::vector<float> RandomActivations(int tokens, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> v(static_cast<size_t>(tokens) * kHidden);
  for (float& x : v) x = d(rng);
  return v;
}

std::string_view Bytes(const void* p, size_t n) {
  return std::string_view(static_cast<const char*>(p), n);
}

WireTensor F32Tensor(const std::vector<float>& v, std::vector<int64_t> shape) {
  return WireTensor{DType::kF32, std::move(shape), Bytes(v.data(), v.size() * 4), true};
}

ShardRequest Shard(int expert, const std::vector<float>& x) {
  ShardRequest s;
  s.expert = expert;
  s.hidden = F32Tensor(x, {static_cast<int64_t>(x.size() / kHidden), kHidden});
  return s;
}

std::vector<float> Direct(ExpertBackend* b, int layer, int expert, const std::vector<float>& x) {
  std::vector<float> out(x.size());
  ExpertShard s{expert, static_cast<int>(x.size() / kHidden), x.data(), out.data()};
  EXPECT_TRUE(b->Run(layer, {&s, 1}).ok());
  return out;
}

TEST(ShardExecutorTest, PerShardOutputsMatchDirectBackendCall) {
  Fixture f = MakeFixture();
  std::vector<float> x0 = RandomActivations(5, 1), x2 = RandomActivations(3, 2);
  ForwardRequest req;
  req.layer = 1;
  req.epoch = 3;
  req.shards = {Shard(0, x0), Shard(2, x2)};
  auto r = f.executor->Forward(req);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->outputs.size(), 2u);
  EXPECT_EQ(r->tokens, 8);
  std::vector<float> want0 = Direct(f.reference.get(), 1, 0, x0);
  std::vector<float> want2 = Direct(f.reference.get(), 1, 2, x2);
  ASSERT_EQ(r->outputs[0].size(), want0.size());
  ASSERT_EQ(r->outputs[1].size(), want2.size());
  for (size_t i = 0; i < want0.size(); ++i) EXPECT_FLOAT_EQ(r->outputs[0][i], want0[i]);
  for (size_t i = 0; i < want2.size(); ++i) EXPECT_FLOAT_EQ(r->outputs[1][i], want2[i]);
  // And the backend agrees with the float64 reference (the test is not comparing noise).
  std::vector<double> ref = f.experts[0].Reference(x0.data());
  for (int k = 0; k < kHidden; ++k) EXPECT_NEAR(r->outputs[0][k], ref[k], 1e-4);
}

TEST(ShardExecutorTest, CombineSumsWeightedOutputsPerRow) {
  Fixture f = MakeFixture();
  std::vector<float> x = RandomActivations(3, 5);  // tokens 0..2, each to both experts
  std::vector<float> w0 = {0.25f, 0.5f, 1.0f}, w2 = {0.75f, 0.5f, -1.0f};
  std::vector<int32_t> rows0 = {2, 0, 1}, rows2 = {2, 0, 1};
  ForwardRequest req;
  req.layer = 1;
  req.epoch = 4;
  req.combine = true;
  req.combined_rows = 3;
  for (auto [e, w] : {std::pair{0, &w0}, std::pair{2, &w2}}) {
    ShardRequest s = Shard(e, x);
    s.weights = F32Tensor(*w, {3});
    s.rows = WireTensor{DType::kI32, {3}, Bytes(rows0.data(), 12), true};
    req.shards.push_back(s);
  }
  auto r = f.executor->Forward(req);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->combined.size(), 3u * kHidden);
  std::vector<float> y0 = Direct(f.reference.get(), 1, 0, x);
  std::vector<float> y2 = Direct(f.reference.get(), 1, 2, x);
  for (int t = 0; t < 3; ++t) {
    for (int k = 0; k < kHidden; ++k) {
      const float want = w0[t] * y0[t * kHidden + k] + w2[t] * y2[t * kHidden + k];
      EXPECT_NEAR(r->combined[rows0[t] * kHidden + k], want, 1e-5);
    }
  }
}

TEST(ShardExecutorTest, Bf16ActivationsAreWidened) {
  Fixture f = MakeFixture();
  std::vector<float> x = RandomActivations(4, 9);
  std::vector<uint16_t> xb(x.size());
  std::vector<float> widened(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    xb[i] = F32ToBf16(x[i]);
    widened[i] = Bf16ToF32(xb[i]);
  }
  ForwardRequest req;
  req.layer = 1;
  req.epoch = 3;
  ShardRequest s;
  s.expert = 2;
  s.hidden = WireTensor{DType::kBF16, {4, kHidden}, Bytes(xb.data(), xb.size() * 2), true};
  req.shards = {s};
  auto r = f.executor->Forward(req);
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<float> want = Direct(f.reference.get(), 1, 2, widened);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_FLOAT_EQ(r->outputs[0][i], want[i]);
}

TEST(ShardExecutorTest, RejectsMalformedRequestsWithTheRightCode) {
  Fixture f = MakeFixture();
  f.executor->SetMinEpoch(2);
  std::vector<float> x = RandomActivations(2, 3);
  auto base = [&] {
    ForwardRequest r;
    r.layer = 1;
    r.epoch = 3;
    r.shards = {Shard(0, x)};
    return r;
  };
  ASSERT_TRUE(f.executor->Validate(base()).ok());
  auto code = [&](ForwardRequest r) { return f.executor->Forward(r).status().code(); };
  using C = absl::StatusCode;
  ForwardRequest r = base();
  r.layer = 2;
  EXPECT_EQ(code(r), C::kInvalidArgument);
  r = base();
  r.layer = -1;
  EXPECT_EQ(code(r), C::kInvalidArgument);
  r = base();
  r.shards[0].expert = 4;
  EXPECT_EQ(code(r), C::kInvalidArgument);
  r = base();
  r.shards[0].expert = 1;  // in range, not loaded here
  EXPECT_EQ(code(r), C::kFailedPrecondition);
  r = base();
  r.layer = 0;  // nothing loaded on layer 0
  EXPECT_EQ(code(r), C::kFailedPrecondition);
  r = base();
  r.epoch = 1;
  EXPECT_EQ(code(r), C::kFailedPrecondition);
  r = base();
  r.shards.clear();
  EXPECT_EQ(code(r), C::kInvalidArgument);
  r = base();
  r.shards[0].hidden.data.remove_suffix(1);
  EXPECT_EQ(code(r), C::kInvalidArgument);
  r = base();
  r.shards[0].hidden.shape = {3, kHidden};  // bytes say 2 tokens
  EXPECT_EQ(code(r), C::kInvalidArgument);
  r = base();
  r.shards[0].hidden.shape = {-2, kHidden};
  EXPECT_EQ(code(r), C::kInvalidArgument);
  r = base();
  r.shards[0].hidden.shape = {int64_t{1} << 60, kHidden};  // no overflow in the byte check
  EXPECT_EQ(code(r), C::kInvalidArgument);
  r = base();
  r.shards[0].hidden.shape = {2 * kHidden};
  EXPECT_EQ(code(r), C::kInvalidArgument);
  r = base();
  r.shards[0].hidden.dtype = std::nullopt;
  EXPECT_EQ(code(r), C::kInvalidArgument);
  r = base();
  r.shards[0].hidden.dtype = DType::kI32;
  EXPECT_EQ(code(r), C::kInvalidArgument);
  r = base();
  r.shards[0].hidden.present = false;
  EXPECT_EQ(code(r), C::kInvalidArgument);
  // Combine: weights missing, rows out of range.
  std::vector<float> w = {1, 1};
  std::vector<int32_t> rows = {0, 5};
  r = base();
  r.combine = true;
  r.combined_rows = 2;
  EXPECT_EQ(code(r), C::kInvalidArgument);
  r.shards[0].weights = F32Tensor(w, {2});
  r.shards[0].rows = WireTensor{DType::kI32, {2}, Bytes(rows.data(), 8), true};
  EXPECT_EQ(code(r), C::kInvalidArgument);
  rows[1] = 1;
  EXPECT_TRUE(f.executor->Forward(r).ok());
  // Too many tokens in total (max_tokens = 64).
  std::vector<float> big = RandomActivations(40, 4);
  r = base();
  r.shards = {Shard(0, big), Shard(2, big)};
  EXPECT_EQ(code(r), C::kInvalidArgument);
  // Still serving.
  EXPECT_TRUE(f.executor->Forward(base()).ok());
}

TEST(ShardExecutorTest, DroppedExpertsAreRefused) {
  Fixture f = MakeFixture();
  std::vector<float> x = RandomActivations(1, 3);
  ForwardRequest r;
  r.layer = 1;
  r.shards = {Shard(2, x)};
  ASSERT_TRUE(f.executor->Forward(r).ok());
  std::pair<int, int> drop{1, 2};
  ASSERT_TRUE(f.executor->DropExperts({&drop, 1}).ok());
  EXPECT_EQ(f.executor->Forward(r).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(f.executor->Loaded().size(), 1u);
  EXPECT_EQ(f.executor->applied_epoch(), 3);
}

TEST(ShardExecutorTest, ZeroTokenShardIsANoOp) {
  Fixture f = MakeFixture();
  std::vector<float> none;
  ForwardRequest r;
  r.layer = 1;
  r.shards = {Shard(0, none)};
  auto out = f.executor->Forward(r);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->outputs[0].empty());
  EXPECT_EQ(out->tokens, 0);
}

}  // namespace
}  // namespace moe::expert
