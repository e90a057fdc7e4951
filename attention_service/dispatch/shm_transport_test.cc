// ShmExpertTransport against an in-process ExpertServer (real gRPC on 127.0.0.1, real shm
// segment): the same bytes as the gRPC transport, the same error codes, concurrent ForwardAll
// from two threads, and every gRPC fallback (OpenShm refused, request or response larger than
// a slot, a server that shut down).
#include "attention_service/dispatch/shm_transport.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "attention_service/dispatch/grpc_transport.h"
#include "expert_service/backend/testing/random_expert.h"
#include "expert_service/executor/shard_executor.h"
#include "expert_service/grpc/expert_server.h"

namespace moe::attention {
namespace {

namespace v1 = ::moe::expert::v1;
namespace cv1 = ::moe::common::v1;

constexpr int kLayers = 2;
constexpr int kExperts = 4;
constexpr int kHidden = 24;
constexpr int kInter = 16;

class ShmTransportTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(16); }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  void StartServer(int max_shm_clients) {
    if (server_ != nullptr) server_->Shutdown();
    server_.reset();
    if (experts_.empty()) {
      for (int l = 0; l < kLayers; ++l) {
        for (int e = 0; e < kExperts; ++e) {
          experts_.push_back(expert::testing::MakeExpert(l, e, kHidden, kInter, DType::kF32,
                                                         static_cast<uint32_t>(100 + l * 10 + e)));
        }
      }
    }
    auto backend = expert::CreateExpertBackend("cpu", expert::BackendOptions{});
    ASSERT_TRUE(backend.ok());
    expert::ShardExecutorConfig c;
    c.num_layers = kLayers;
    c.num_experts = kExperts;
    c.hidden = kHidden;
    executor_ = std::make_unique<expert::ShardExecutor>(c, std::move(*backend));
    std::vector<expert::ExpertWeights> w;
    for (const auto& r : experts_) w.push_back(r.Weights());
    ASSERT_TRUE(executor_->LoadExperts(w, 0).ok());
    expert::ExpertServerOptions o;
    o.max_shm_clients = max_shm_clients;
    auto server = expert::ExpertServer::Start(o, executor_.get(), nullptr);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    server_->SetServing(true);
    address_ = "127.0.0.1:" + std::to_string(server_->port());
  }

  // One layer's request: `tokens` random tokens per expert in `experts`, combined (F32 with
  // weights and rows) or per-shard in `dtype`.
  v1::ComputeRequest Request(int layer, const std::vector<int>& experts, int tokens, bool combine,
                             uint32_t seed, DType dtype = DType::kF32) const {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0, 1);
    v1::ComputeRequest req;
    req.set_layer(layer);
    req.set_combine(combine);
    if (combine) req.set_combined_rows(tokens);
    for (int e : experts) {
      v1::Shard* s = req.add_shards();
      s->set_expert(e);
      cv1::Tensor* h = s->mutable_hidden();
      h->add_shape(tokens);
      h->add_shape(kHidden);
      std::string* bytes = h->mutable_data();
      for (int i = 0; i < tokens * kHidden; ++i) {
        const float v = d(rng);
        if (dtype == DType::kF32) {
          bytes->append(reinterpret_cast<const char*>(&v), 4);
        } else {
          const uint16_t b = F32ToBf16(v);
          bytes->append(reinterpret_cast<const char*>(&b), 2);
        }
      }
      h->set_dtype(dtype == DType::kF32 ? cv1::DTYPE_F32 : cv1::DTYPE_BF16);
      if (combine) {
        cv1::Tensor* w = s->mutable_weights();
        w->set_dtype(cv1::DTYPE_F32);
        w->add_shape(tokens);
        cv1::Tensor* r = s->mutable_rows();
        r->set_dtype(cv1::DTYPE_I32);
        r->add_shape(tokens);
        for (int t = 0; t < tokens; ++t) {
          const float wt = 0.25f + 0.1f * static_cast<float>(t % 3);
          const int32_t row = (t * 7 + e) % tokens;
          w->mutable_data()->append(reinterpret_cast<const char*>(&wt), 4);
          r->mutable_data()->append(reinterpret_cast<const char*>(&row), 4);
        }
      }
    }
    return req;
  }

  std::vector<ExpertCall> Calls(const std::vector<v1::ComputeRequest>& reqs) const {
    std::vector<ExpertCall> calls(reqs.size());
    for (size_t i = 0; i < reqs.size(); ++i) {
      calls[i].instance = address_;
      calls[i].request = reqs[i];
    }
    return calls;
  }

  std::vector<v1::ComputeRequest> Mix() const {
    return {Request(0, {0, 1}, 5, true, 1), Request(1, {3}, 1, true, 2),
            Request(1, {0, 2, 3}, 64, true, 3), Request(0, {2}, 7, false, 4),
            Request(1, {1}, 3, false, 5, DType::kBF16)};
  }

  std::vector<ExpertCall> RunGrpc(const std::vector<v1::ComputeRequest>& reqs) const {
    GrpcExpertTransport grpc;
    std::vector<ExpertCall> calls = Calls(reqs);
    grpc.ForwardAll(absl::MakeSpan(calls), absl::Seconds(30));
    return calls;
  }

  static void ExpectSame(const std::vector<ExpertCall>& got, const std::vector<ExpertCall>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].status, want[i].status) << i;
      EXPECT_EQ(got[i].response.SerializeAsString(), want[i].response.SerializeAsString()) << i;
    }
  }

  std::vector<expert::testing::RandomExpert> experts_;
  std::unique_ptr<expert::ShardExecutor> executor_;
  std::unique_ptr<expert::ExpertServer> server_;
  std::string address_;
};

TEST_F(ShmTransportTest, SameOutputsAsGrpc) {
  const std::vector<v1::ComputeRequest> reqs = Mix();
  const std::vector<ExpertCall> want = RunGrpc(reqs);
  for (const ExpertCall& c : want) ASSERT_TRUE(c.status.ok()) << c.status;
  ShmExpertTransport shm;
  ASSERT_TRUE(shm.UsesShm(address_));
  for (int round = 0; round < 3; ++round) {
    std::vector<ExpertCall> got = Calls(reqs);
    shm.ForwardAll(absl::MakeSpan(got), absl::Seconds(30));
    ExpectSame(got, want);
  }
  EXPECT_EQ(shm.shm_calls(), 3 * static_cast<int64_t>(reqs.size()));
  EXPECT_EQ(shm.grpc_calls(), 0);
  EXPECT_GT(want[2].response.combined().data().size(), 0u);
}

TEST_F(ShmTransportTest, SameErrorsAsGrpc) {
  std::vector<v1::ComputeRequest> reqs = {Request(0, {1}, 2, true, 1), Request(0, {1}, 2, true, 2),
                                          Request(5, {1}, 2, true, 3), Request(0, {1}, 2, true, 4)};
  reqs[0].mutable_shards(0)->mutable_hidden()->mutable_data()->resize(7);  // bad byte length
  reqs[1].mutable_shards(0)->set_expert(kExperts);                         // no such expert
  const std::vector<ExpertCall> want = RunGrpc(reqs);
  EXPECT_EQ(want[0].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(want[3].status.code(), absl::StatusCode::kOk);
  ShmExpertTransport shm;
  std::vector<ExpertCall> got = Calls(reqs);
  shm.ForwardAll(absl::MakeSpan(got), absl::Seconds(30));
  ExpectSame(got, want);
  EXPECT_EQ(shm.grpc_calls(), 0);
}

TEST_F(ShmTransportTest, ConcurrentForwardAll) {
  const std::vector<v1::ComputeRequest> reqs = Mix();
  const std::vector<ExpertCall> want = RunGrpc(reqs);
  ShmTransportOptions o;
  o.slots = 4;  // fewer than two threads' calls in flight: some go over gRPC, all must match
  ShmExpertTransport shm(o);
  auto worker = [&] {
    for (int i = 0; i < 30; ++i) {
      std::vector<ExpertCall> got = Calls(reqs);
      shm.ForwardAll(absl::MakeSpan(got), absl::Seconds(30));
      ExpectSame(got, want);
    }
  };
  std::thread a(worker), b(worker);
  a.join();
  b.join();
  EXPECT_GT(shm.shm_calls(), 0);
  EXPECT_EQ(shm.shm_calls() + shm.grpc_calls(), 2 * 30 * static_cast<int64_t>(reqs.size()));
}

TEST_F(ShmTransportTest, FallsBackToGrpcWhenOpenShmIsRefused) {
  StartServer(/*max_shm_clients=*/0);  // OpenShm answers RESOURCE_EXHAUSTED
  const std::vector<v1::ComputeRequest> reqs = Mix();
  const std::vector<ExpertCall> want = RunGrpc(reqs);
  ShmExpertTransport shm;
  EXPECT_FALSE(shm.UsesShm(address_));
  std::vector<ExpertCall> got = Calls(reqs);
  shm.ForwardAll(absl::MakeSpan(got), absl::Seconds(30));
  ExpectSame(got, want);
  EXPECT_EQ(shm.shm_calls(), 0);
  EXPECT_EQ(shm.grpc_calls(), static_cast<int64_t>(reqs.size()));
}

TEST_F(ShmTransportTest, FallsBackToGrpcForAnAddressWithoutAService) {
  ShmTransportOptions o;
  o.renegotiate_after = absl::Hours(1);
  ShmExpertTransport shm(o);
  std::vector<ExpertCall> calls = Calls({Request(0, {0}, 1, true, 1)});
  calls[0].instance = "127.0.0.1:1";
  shm.ForwardAll(absl::MakeSpan(calls), absl::Seconds(2));
  EXPECT_EQ(calls[0].status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(shm.grpc_calls(), 1);
}

TEST_F(ShmTransportTest, OversizedRequestsAndResponsesGoOverGrpc) {
  // A bf16 request whose F32 response is twice its tensor bytes: the request fits the slot,
  // the response does not. And a request bigger than the slot.
  const v1::ComputeRequest fits = Request(0, {3}, 8, false, 1, DType::kBF16);
  const v1::ComputeRequest too_big = Request(1, {0}, 40, true, 2);
  const v1::ComputeRequest small = Request(1, {2}, 1, true, 3);
  ShmTransportOptions o;
  o.slot_bytes = fits.ByteSizeLong() + 64;
  ASSERT_LT(o.slot_bytes, 8u * kHidden * 4) << "the response must not fit";
  ASSERT_GT(too_big.ByteSizeLong(), o.slot_bytes);
  const std::vector<ExpertCall> want = RunGrpc({fits, too_big, small});
  ShmExpertTransport shm(o);
  std::vector<ExpertCall> got = Calls({fits, too_big, small});
  shm.ForwardAll(absl::MakeSpan(got), absl::Seconds(30));
  ExpectSame(got, want);
  EXPECT_EQ(shm.shm_calls(), 1);   // small
  EXPECT_EQ(shm.grpc_calls(), 2);  // too_big up front, fits after RESOURCE_EXHAUSTED
}

TEST_F(ShmTransportTest, ServerShutdownIsAnErrorNotAHang) {
  ShmExpertTransport shm;
  ASSERT_TRUE(shm.UsesShm(address_));
  server_->Shutdown();
  std::vector<ExpertCall> calls = Calls({Request(0, {0}, 1, true, 1)});
  shm.ForwardAll(absl::MakeSpan(calls), absl::Seconds(60));
  EXPECT_EQ(calls[0].status.code(), absl::StatusCode::kUnavailable) << calls[0].status;
}

}  // namespace
}  // namespace moe::attention
