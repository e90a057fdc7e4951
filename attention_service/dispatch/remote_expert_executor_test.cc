// RemoteExpertExecutor over the in-process transport: two ShardExecutors, each holding the
// experts the StaticPlacement gives it, against LocalExpertExecutor on one backend holding all
// of them. Failover through replicas when one instance's calls fail; UNAVAILABLE when an
// expert has no replica left.
#include "attention_service/dispatch/remote_expert_executor.h"

#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "attention_service/dispatch/grpc_transport.h"
#include "attention_service/dispatch/in_process_transport.h"
#include "attention_service/dispatch/local_expert_executor.h"
#include "attention_service/dispatch/placement.h"
#include "expert_service/backend/testing/random_expert.h"
#include "expert_service/executor/shard_executor.h"
#include "expert_service/grpc/expert_server.h"

namespace moe::attention {
namespace {

constexpr int kLayers = 2;
constexpr int kExperts = 6;
constexpr int kHidden = 24;
constexpr int kInter = 16;
constexpr int kTopK = 2;

model::ModelConfig TinyConfig() {
  model::ModelConfig c;
  c.architecture = model::Architecture::kMixtral;
  c.num_hidden_layers = kLayers;
  c.num_experts = kExperts;
  c.hidden_size = kHidden;
  return c;
}

// Fails every call to `bad` with UNAVAILABLE and forwards the others.
class FailingTransport final : public ExpertTransport {
 public:
  FailingTransport(ExpertTransport* inner, std::set<std::string> bad)
      : inner_(inner), bad_(std::move(bad)) {}
  void ForwardAll(absl::Span<ExpertCall> calls, absl::Duration timeout) override {
    std::vector<ExpertCall> good;
    std::vector<size_t> index;
    for (size_t i = 0; i < calls.size(); ++i) {
      if (bad_.count(calls[i].instance)) {
        calls[i].status = absl::UnavailableError("injected failure");
        ++failed_calls;
      } else {
        good.push_back(std::move(calls[i]));
        index.push_back(i);
      }
    }
    inner_->ForwardAll(absl::MakeSpan(good), timeout);
    for (size_t k = 0; k < good.size(); ++k) calls[index[k]] = std::move(good[k]);
    total_calls += static_cast<int>(calls.size());
  }
  int failed_calls = 0;
  int total_calls = 0;

 private:
  ExpertTransport* inner_;
  std::set<std::string> bad_;
};

class RemoteExpertExecutorTest : public ::testing::Test {
 protected:
  // `instances` ShardExecutors loaded per a round-robin placement with `replication`.
  void Build(int instances, int replication) {
    auto p = StaticPlacement::RoundRobin(TinyConfig(), instances, replication);
    ASSERT_TRUE(p.ok()) << p.status();
    placement_ = std::make_unique<StaticPlacement>(*p);
    std::mt19937 rng(11);
    experts_.clear();
    for (int l = 0; l < kLayers; ++l) {
      for (int e = 0; e < kExperts; ++e) {
        expert::testing::RandomExpert r;
        r.layer = l;
        r.expert = e;
        r.hidden = kHidden;
        r.inter = kInter;
        r.gate = expert::testing::MakeTensor(DType::kF32, kInter, kHidden, 0.25, &rng);
        r.up = expert::testing::MakeTensor(DType::kF32, kInter, kHidden, 0.25, &rng);
        r.down = expert::testing::MakeTensor(DType::kF32, kHidden, kInter, 0.3, &rng);
        experts_.push_back(std::move(r));
      }
    }
    auto local = expert::CreateExpertBackend("cpu", expert::BackendOptions{});
    ASSERT_TRUE(local.ok());
    local_backend_ = std::move(*local);
    std::vector<expert::ExpertWeights> all;
    for (const auto& r : experts_) all.push_back(r.Weights());
    ASSERT_TRUE(local_backend_->Load(all).ok());
    local_ = std::make_unique<LocalExpertExecutor>(local_backend_.get(), kExperts);

    transport_ = std::make_unique<InProcessExpertTransport>();
    executors_.clear();
    addresses_.clear();
    for (int i = 0; i < instances; ++i) {
      std::vector<expert::ExpertWeights> mine;
      for (const auto& r : experts_) {
        for (int k : placement_->Replicas(r.layer, r.expert)) {
          if (k == i) mine.push_back(r.Weights());
        }
      }
      auto backend = expert::CreateExpertBackend("cpu", expert::BackendOptions{});
      ASSERT_TRUE(backend.ok());
      expert::ShardExecutorConfig c;
      c.num_layers = kLayers;
      c.num_experts = kExperts;
      c.hidden = kHidden;
      executors_.push_back(std::make_unique<expert::ShardExecutor>(c, std::move(*backend)));
      ASSERT_TRUE(executors_.back()->LoadExperts(mine, 0).ok());
      addresses_.push_back("inproc-" + std::to_string(i));
      transport_->Add(addresses_.back(), executors_.back().get());
    }
  }

  // Random routing: top-k distinct experts per token with positive weights.
  static model::Routing RandomRouting(int tokens, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(0.05f, 1.0f);
    model::Routing r;
    r.tokens = tokens;
    r.top_k = kTopK;
    for (int t = 0; t < tokens; ++t) {
      std::vector<int> ids(kExperts);
      for (int e = 0; e < kExperts; ++e) ids[e] = e;
      std::shuffle(ids.begin(), ids.end(), rng);
      for (int j = 0; j < kTopK; ++j) {
        r.experts.push_back(ids[j]);
        r.weights.push_back(u(rng));
      }
    }
    return r;
  }

  static std::vector<float> RandomX(int tokens, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0, 1);
    std::vector<float> v(static_cast<size_t>(tokens) * kHidden);
    for (float& x : v) x = d(rng);
    return v;
  }

  // Runs both executors on the same inputs and compares.
  void ExpectMatchesLocal(ExpertExecutor* remote, int tokens, uint32_t seed) {
    for (int layer = 0; layer < kLayers; ++layer) {
      const model::Routing routing = RandomRouting(tokens, seed + layer);
      const std::vector<float> x = RandomX(tokens, seed * 7 + layer);
      std::vector<float> want(x.size(), 0.0f), got(x.size(), 123.0f);
      ASSERT_TRUE(local_->Run(layer, x.data(), kHidden, routing, want.data()).ok());
      absl::Status s = remote->Run(layer, x.data(), kHidden, routing, got.data());
      ASSERT_TRUE(s.ok()) << s;
      double max_abs = 0;
      for (float v : want) max_abs = std::max(max_abs, std::abs(double(v)));
      ASSERT_GT(max_abs, 1e-3) << "outputs must not be trivially zero";
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_NEAR(got[i], want[i], 1e-6) << "layer " << layer << " index " << i;
      }
    }
  }

  // Serves every ShardExecutor over gRPC on 127.0.0.1 (port 0); returns their addresses.
  std::vector<std::string> StartServers() {
    std::vector<std::string> out;
    for (auto& ex : executors_) {
      expert::ExpertServerOptions o;
      auto server = expert::ExpertServer::Start(o, ex.get(), nullptr);
      EXPECT_TRUE(server.ok()) << server.status();
      if (!server.ok()) return {};
      (*server)->SetServing(true);
      out.push_back("127.0.0.1:" + std::to_string((*server)->port()));
      servers_.push_back(std::move(*server));
    }
    return out;
  }

  void TearDown() override {
    for (auto& s : servers_) s->Shutdown();
  }

  std::unique_ptr<StaticPlacement> placement_;
  std::vector<expert::testing::RandomExpert> experts_;
  std::unique_ptr<expert::ExpertBackend> local_backend_;
  std::unique_ptr<LocalExpertExecutor> local_;
  std::vector<std::unique_ptr<expert::ShardExecutor>> executors_;
  std::vector<std::string> addresses_;
  std::unique_ptr<InProcessExpertTransport> transport_;
  std::vector<std::unique_ptr<expert::ExpertServer>> servers_;  // after executors_: stops first
};

TEST(StaticPlacementTest, RoundRobinWithReplicasAndExpertLists) {
  auto p = StaticPlacement::RoundRobin(TinyConfig(), 4, 2);
  ASSERT_TRUE(p.ok());
  // (layer 1, expert 3): primary (1 * 6 + 3) % 4 = 1, replica 2.
  ASSERT_EQ(p->Replicas(1, 3).size(), 2u);
  EXPECT_EQ(p->Replicas(1, 3)[0], 1);
  EXPECT_EQ(p->Replicas(1, 3)[1], 2);
  EXPECT_EQ(p->Replicas(0, 3)[0], 3);
  EXPECT_EQ(p->Replicas(0, 3)[1], 0);
  // Instance 0 holds primaries 0:0, 0:4, 1:2 and replicas of 0:3, 1:1, 1:5.
  EXPECT_EQ(p->ExpertList(0), "0:0,0:3,0:4,1:1,1:2,1:5");
  EXPECT_FALSE(StaticPlacement::RoundRobin(TinyConfig(), 2, 3).ok());
  EXPECT_FALSE(StaticPlacement::RoundRobin(TinyConfig(), 0, 1).ok());
}

TEST_F(RemoteExpertExecutorTest, TwoInstancesMatchLocal) {
  Build(2, 1);
  RemoteExpertExecutor remote(placement_.get(), addresses_, transport_.get());
  ExpectMatchesLocal(&remote, 1, 1);
  ExpectMatchesLocal(&remote, 9, 2);
  ExpectMatchesLocal(&remote, 40, 3);
  EXPECT_EQ(remote.failovers(), 0);
}

TEST_F(RemoteExpertExecutorTest, FailoverToReplicas) {
  Build(3, 2);
  FailingTransport failing(transport_.get(), {addresses_[1]});
  RemoteExpertExecutor remote(placement_.get(), addresses_, &failing);
  ExpectMatchesLocal(&remote, 30, 4);
  EXPECT_GT(failing.failed_calls, 0);
  EXPECT_GT(remote.failovers(), 0);
  // Once marked unhealthy, instance 1 is skipped: later layers need no failover.
  const int64_t before = remote.failovers();
  const int failed_before = failing.failed_calls;
  ExpectMatchesLocal(&remote, 30, 5);
  EXPECT_EQ(failing.failed_calls, failed_before);
  EXPECT_EQ(remote.failovers(), before);
}

TEST_F(RemoteExpertExecutorTest, NoReplicaLeftIsUnavailable) {
  Build(2, 1);
  FailingTransport failing(transport_.get(), {addresses_[0]});
  RemoteExpertExecutor remote(placement_.get(), addresses_, &failing);
  const int tokens = 20;
  const model::Routing routing = RandomRouting(tokens, 9);
  const std::vector<float> x = RandomX(tokens, 9);
  std::vector<float> out(x.size());
  absl::Status s = remote.Run(0, x.data(), kHidden, routing, out.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

TEST_F(RemoteExpertExecutorTest, InvalidRequestIsNotRetried) {
  Build(2, 2);
  RemoteExpertExecutor remote(placement_.get(), addresses_, transport_.get());
  // hidden 23 disagrees with the executors' hidden size 24: INVALID_ARGUMENT, no failover.
  const model::Routing routing = RandomRouting(4, 3);
  std::vector<float> x(4 * 23, 0.5f), out(4 * 23);
  absl::Status s = remote.Run(0, x.data(), 23, routing, out.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(remote.failovers(), 0);
}

TEST_F(RemoteExpertExecutorTest, GrpcTransportMatchesLocal) {
  Build(2, 1);
  const std::vector<std::string> addresses = StartServers();
  ASSERT_EQ(addresses.size(), 2u);
  GrpcExpertTransport grpc;
  RemoteExpertExecutor remote(placement_.get(), addresses, &grpc);
  ExpectMatchesLocal(&remote, 1, 21);
  ExpectMatchesLocal(&remote, 33, 22);
  EXPECT_EQ(remote.failovers(), 0);
}

TEST_F(RemoteExpertExecutorTest, GrpcTransportFailsOverFromUnreachableInstance) {
  Build(3, 2);
  std::vector<std::string> addresses = StartServers();
  ASSERT_EQ(addresses.size(), 3u);
  servers_[0]->Shutdown();  // instance 0 no longer listens: its calls fail UNAVAILABLE
  GrpcExpertTransport grpc;
  RemoteExpertExecutor remote(placement_.get(), addresses, &grpc);
  ExpectMatchesLocal(&remote, 25, 23);
  EXPECT_GT(remote.failovers(), 0);
}

TEST(GrpcExpertTransportTest, PerCallStatusAndOrder) {
  GrpcExpertTransport grpc;
  std::vector<ExpertCall> calls(2);
  calls[0].instance = "127.0.0.1:1";  // nothing listens on port 1
  calls[1].instance = "127.0.0.1:1";
  calls[1].request.set_layer(7);
  grpc.ForwardAll(absl::MakeSpan(calls), absl::Seconds(10));
  EXPECT_EQ(calls[0].status.code(), absl::StatusCode::kUnavailable) << calls[0].status;
  EXPECT_EQ(calls[1].status.code(), absl::StatusCode::kUnavailable) << calls[1].status;
  EXPECT_EQ(calls[1].request.layer(), 7);
}

}  // namespace
}  // namespace moe::attention
