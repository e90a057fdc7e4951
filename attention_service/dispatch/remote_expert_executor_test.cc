// RemoteExpertExecutor over the in-process transport: two ShardExecutors, each holding the
// experts the StaticPlacement gives it, against LocalExpertExecutor on one backend holding all
// of them. Failover through replicas when one instance's calls fail; UNAVAILABLE when an
// expert has no replica left.
#include "attention_service/dispatch/remote_expert_executor.h"

#include <atomic>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
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
  std::atomic<int> failed_calls{0};
  std::atomic<int> total_calls{0};

 private:
  ExpertTransport* inner_;
  std::set<std::string> bad_;
};

// Forwards to `inner`; calls to the addresses in `not_loaded` answer FAILED_PRECONDITION (alive,
// expert not loaded yet) until `loaded` is set.
class NotYetLoadedTransport final : public ExpertTransport {
 public:
  NotYetLoadedTransport(ExpertTransport* inner, std::set<std::string> not_loaded)
      : inner_(inner), not_loaded_(std::move(not_loaded)) {}
  void ForwardAll(absl::Span<ExpertCall> calls, absl::Duration timeout) override {
    if (!loaded.load()) {
      for (ExpertCall& c : calls) {
        if (not_loaded_.count(c.instance)) {
          c.status = absl::FailedPreconditionError("expert not loaded here");
          ++refused;
          if (refused.load() >= 2) loaded.store(true);  // loads after two refusals
        }
      }
    }
    std::vector<ExpertCall> good;
    std::vector<size_t> index;
    for (size_t i = 0; i < calls.size(); ++i) {
      if (calls[i].status.ok()) {
        good.push_back(std::move(calls[i]));
        index.push_back(i);
      }
    }
    inner_->ForwardAll(absl::MakeSpan(good), timeout);
    for (size_t k = 0; k < good.size(); ++k) calls[index[k]] = std::move(good[k]);
  }
  std::atomic<bool> loaded{false};
  std::atomic<int> refused{0};

 private:
  ExpertTransport* inner_;
  std::set<std::string> not_loaded_;
};

// Records the epoch of every request.
class EpochRecordingTransport final : public ExpertTransport {
 public:
  explicit EpochRecordingTransport(ExpertTransport* inner) : inner_(inner) {}
  void ForwardAll(absl::Span<ExpertCall> calls, absl::Duration timeout) override {
    for (const ExpertCall& c : calls) {
      absl::MutexLock lock(&mu_);
      epochs_.insert(c.request.epoch());
    }
    inner_->ForwardAll(calls, timeout);
  }
  std::set<int64_t> epochs() {
    absl::MutexLock lock(&mu_);
    return epochs_;
  }

 private:
  ExpertTransport* inner_;
  absl::Mutex mu_;
  std::set<int64_t> epochs_;
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

  // Runs one layer on both executors (the remote one with `memory`) and compares the outputs.
  void ExpectLayerMatchesLocal(ExpertExecutor* remote, int layer, const std::vector<float>& x,
                               const model::Routing& routing, DispatchMemory* memory) {
    std::vector<float> want(x.size(), 0.0f), got(x.size(), 123.0f);
    ASSERT_TRUE(local_->Run(layer, x.data(), kHidden, routing, want.data(), nullptr).ok());
    absl::Status s = remote->Run(layer, x.data(), kHidden, routing, got.data(), memory);
    ASSERT_TRUE(s.ok()) << s;
    double max_abs = 0;
    for (float v : want) max_abs = std::max(max_abs, std::abs(double(v)));
    ASSERT_GT(max_abs, 1e-3) << "outputs must not be trivially zero";
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], 1e-6) << "layer " << layer << " index " << i;
    }
  }

  // Every layer in order, as one forward pass of `tokens` tokens (one DispatchMemory).
  void ExpectMatchesLocal(ExpertExecutor* remote, int tokens, uint32_t seed) {
    DispatchMemory memory;
    for (int layer = 0; layer < kLayers; ++layer) {
      ASSERT_NO_FATAL_FAILURE(
          ExpectLayerMatchesLocal(remote, layer, RandomX(tokens, seed * 7 + layer),
                                  RandomRouting(tokens, seed + layer), &memory));
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
  EXPECT_GT(failing.failed_calls.load(), 0);
  EXPECT_GT(remote.failovers(), 0);
  // Once marked unhealthy, instance 1 is skipped: later layers need no failover.
  const int64_t before = remote.failovers();
  const int failed_before = failing.failed_calls.load();
  ExpectMatchesLocal(&remote, 30, 5);
  EXPECT_EQ(failing.failed_calls.load(), failed_before);
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
  absl::Status s = remote.Run(0, x.data(), kHidden, routing, out.data(), nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

TEST_F(RemoteExpertExecutorTest, InvalidRequestIsNotRetried) {
  Build(2, 2);
  RemoteExpertExecutor remote(placement_.get(), addresses_, transport_.get());
  // hidden 23 disagrees with the executors' hidden size 24: INVALID_ARGUMENT, no failover.
  const model::Routing routing = RandomRouting(4, 3);
  std::vector<float> x(4 * 23, 0.5f), out(4 * 23);
  absl::Status s = remote.Run(0, x.data(), 23, routing, out.data(), nullptr);
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

// Two threads call Run on one executor at once (the micro-batching lanes), with failover
// going on (instance 1 fails every call): each result must equal the local one.
TEST_F(RemoteExpertExecutorTest, ConcurrentRunsMatchLocal) {
  Build(3, 2);
  FailingTransport failing(transport_.get(), {addresses_[1]});
  RemoteExpertExecutor remote(placement_.get(), addresses_, transport_.get());
  RemoteExpertExecutor remote_failing(placement_.get(), addresses_, &failing);
  struct Case {
    int layer, tokens;
    uint32_t seed;
    model::Routing routing;
    std::vector<float> x, want;
  };
  std::vector<Case> cases;
  for (int i = 0; i < 24; ++i) {
    Case c{i % kLayers, 1 + (i * 7) % 33, static_cast<uint32_t>(100 + i), {}, {}, {}};
    c.routing = RandomRouting(c.tokens, c.seed);
    c.x = RandomX(c.tokens, c.seed);
    c.want.assign(c.x.size(), 0.0f);
    ASSERT_TRUE(local_->Run(c.layer, c.x.data(), kHidden, c.routing, c.want.data(), nullptr).ok());
    cases.push_back(std::move(c));
  }
  std::atomic<int> mismatches{0}, errors{0};
  auto lane = [&](RemoteExpertExecutor* ex, int first) {
    for (int round = 0; round < 10; ++round) {
      for (size_t i = first; i < cases.size(); i += 2) {
        const Case& c = cases[i];
        std::vector<float> got(c.x.size(), 99.0f);
        if (!ex->Run(c.layer, c.x.data(), kHidden, c.routing, got.data(), nullptr).ok()) {
          ++errors;
          continue;
        }
        for (size_t k = 0; k < got.size(); ++k) {
          if (std::abs(got[k] - c.want[k]) > 1e-6) {
            ++mismatches;
            break;
          }
        }
      }
    }
  };
  for (RemoteExpertExecutor* ex : {&remote, &remote_failing}) {
    std::thread a(lane, ex, 0), b(lane, ex, 1);
    a.join();
    b.join();
  }
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(remote.failovers(), 0);
  EXPECT_GT(remote_failing.failovers(), 0);
}

// Instance 0 holds nothing and dies; the holder gets a newer snapshot (epoch 2) only while a
// Run is waiting: the Run completes with it and sends the new epoch.
TEST_F(RemoteExpertExecutorTest, WaitsForNewerPlacementWhenNoReplicaIsLeft) {
  Build(2, 1);
  auto p1 = PlacementSnapshot::FromStatic(*placement_, addresses_, /*epoch=*/1);
  ASSERT_TRUE(p1.ok());
  // Epoch 2: everything on instance 1 ... but instance 1 only holds its round-robin half, so
  // load the other half there too.
  std::vector<expert::ExpertWeights> rest;
  for (const auto& r : experts_) {
    if (placement_->Replicas(r.layer, r.expert)[0] == 0) rest.push_back(r.Weights());
  }
  ASSERT_TRUE(executors_[1]->LoadExperts(rest, 2).ok());
  auto all_on_1 = StaticPlacement::RoundRobin(TinyConfig(), 1, 1);
  ASSERT_TRUE(all_on_1.ok());
  auto p2 = PlacementSnapshot::FromStatic(*all_on_1, {addresses_[1]}, /*epoch=*/2);
  ASSERT_TRUE(p2.ok());

  PlacementHolder holder(*p1);
  FailingTransport failing(transport_.get(), {addresses_[0]});
  EpochRecordingTransport recording(&failing);
  RemoteExecutorOptions o;
  o.placement_wait = absl::Seconds(60);
  RemoteExpertExecutor remote(&holder, &recording, o);
  std::thread publisher([&] {
    // Publish once the Run has failed on instance 0 (it then waits for a newer epoch).
    while (failing.failed_calls == 0) absl::SleepFor(absl::Milliseconds(1));
    holder.Set(*p2);
  });
  ExpectMatchesLocal(&remote, 30, 31);
  publisher.join();
  EXPECT_EQ(remote.placement_waits(), 1);
  EXPECT_EQ(recording.epochs(), (std::set<int64_t>{1, 2}));
  EXPECT_EQ(holder.Get()->epoch(), 2);
}

TEST_F(RemoteExpertExecutorTest, BoundedWaitEndsUnavailable) {
  Build(2, 1);
  auto p1 = PlacementSnapshot::FromStatic(*placement_, addresses_, 1);
  ASSERT_TRUE(p1.ok());
  PlacementHolder holder(*p1);
  FailingTransport failing(transport_.get(), {addresses_[0]});
  RemoteExecutorOptions o;
  o.placement_wait = absl::Milliseconds(200);
  RemoteExpertExecutor remote(&holder, &failing, o);
  const model::Routing routing = RandomRouting(20, 9);
  const std::vector<float> x = RandomX(20, 9);
  std::vector<float> out(x.size());
  absl::Status s = remote.Run(0, x.data(), kHidden, routing, out.data(), nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(remote.placement_waits(), 0);
}

TEST_F(RemoteExpertExecutorTest, NoPlacementYetWaitsThenUnavailable) {
  Build(2, 1);
  PlacementHolder holder;
  RemoteExecutorOptions o;
  o.placement_wait = absl::Milliseconds(50);
  RemoteExpertExecutor remote(&holder, transport_.get(), o);
  const model::Routing routing = RandomRouting(4, 9);
  const std::vector<float> x = RandomX(4, 9);
  std::vector<float> out(x.size());
  EXPECT_EQ(remote.Run(0, x.data(), kHidden, routing, out.data(), nullptr).code(),
            absl::StatusCode::kUnavailable);
  auto p = PlacementSnapshot::FromStatic(*placement_, addresses_, 3);
  ASSERT_TRUE(p.ok());
  holder.Set(*p);
  ExpectMatchesLocal(&remote, 5, 41);
}

// An instance that answers FAILED_PRECONDITION (still loading) is polled again, not failed.
TEST_F(RemoteExpertExecutorTest, NotYetLoadedInstanceIsRetried) {
  Build(2, 1);
  NotYetLoadedTransport slow(transport_.get(), {addresses_[0]});
  RemoteExecutorOptions o;
  o.placement_wait = absl::Seconds(60);
  RemoteExpertExecutor remote(placement_.get(), addresses_, &slow, o);
  ExpectMatchesLocal(&remote, 30, 51);
  EXPECT_EQ(slow.refused.load(), 2);
}

// Forwards to `inner`, recording each call's (instance address, layer, expert, pairs) shards;
// calls for layer `fail_layer` to `fail_address` fail UNAVAILABLE.
class ShardRecordingTransport final : public ExpertTransport {
 public:
  struct Shard {
    std::string instance;
    int layer = 0;
    int expert = 0;
    int pairs = 0;
  };
  explicit ShardRecordingTransport(ExpertTransport* inner) : inner_(inner) {}
  void ForwardAll(absl::Span<ExpertCall> calls, absl::Duration timeout) override {
    std::vector<ExpertCall> good;
    std::vector<size_t> index;
    for (size_t i = 0; i < calls.size(); ++i) {
      if (calls[i].request.layer() == fail_layer && calls[i].instance == fail_address) {
        calls[i].status = absl::UnavailableError("injected failure");
        continue;
      }
      for (const auto& s : calls[i].request.shards()) {
        shards.push_back({calls[i].instance, static_cast<int>(calls[i].request.layer()),
                          static_cast<int>(s.expert()), static_cast<int>(s.hidden().shape(0))});
      }
      good.push_back(std::move(calls[i]));
      index.push_back(i);
    }
    inner_->ForwardAll(absl::MakeSpan(good), timeout);
    for (size_t k = 0; k < good.size(); ++k) calls[index[k]] = std::move(good[k]);
  }
  int fail_layer = -1;
  std::string fail_address;
  std::vector<Shard> shards;  // of the calls that were forwarded (Run calls ForwardAll serially)

 private:
  ExpertTransport* inner_;
};

// Every token chooses `expert` (top-1, weight 1).
model::Routing AllTo(int tokens, int expert) {
  model::Routing r;
  r.tokens = tokens;
  r.top_k = 1;
  r.experts.assign(tokens, expert);
  r.weights.assign(tokens, 1.0f);
  return r;
}

// The instance address each token of `memory` ran on (one each here).
std::vector<std::string> TokenAddresses(const DispatchMemory& memory) {
  std::vector<std::string> out;
  for (int t = 0; t < memory.homes.tokens(); ++t) {
    EXPECT_EQ(memory.homes.Of(t).size(), 1u) << t;
    out.push_back(memory.homes.Of(t).empty() ? "" : memory.instances[memory.homes.Of(t)[0]]);
  }
  return out;
}

// Two instances holding every expert (shares .5/.5). 64 tokens choose expert 0 in layer 0
// (replicas listed {0, 1}) and expert 1 in layer 1 (listed {1, 0}: a contiguous split would
// move every token). With the forward's DispatchMemory each token's layer-1 pair runs where its
// layer-0 pair ran, 32 pairs per instance; the outputs equal the local executor's.
TEST_F(RemoteExpertExecutorTest, SecondLayerFollowsFirstLayersInstances) {
  Build(2, 2);
  ASSERT_EQ(placement_->Replicas(0, 0)[0], 0);
  ASSERT_EQ(placement_->Replicas(1, 1)[0], 1);
  ShardRecordingTransport recording(transport_.get());
  RemoteExpertExecutor remote(placement_.get(), addresses_, &recording);
  constexpr int kTokens = 64;
  const std::vector<float> x = RandomX(kTokens, 61);
  DispatchMemory memory;
  std::vector<std::string> layer0_at;
  for (int layer = 0; layer < 2; ++layer) {
    ASSERT_NO_FATAL_FAILURE(
        ExpectLayerMatchesLocal(&remote, layer, x, AllTo(kTokens, layer), &memory));
    EXPECT_EQ(memory.layer, layer);
    if (layer == 0) layer0_at = TokenAddresses(memory);
  }
  ASSERT_EQ(layer0_at.size(), static_cast<size_t>(kTokens));
  for (int t = 0; t < kTokens; ++t) EXPECT_EQ(layer0_at[t], addresses_[t < 32 ? 0 : 1]) << t;
  EXPECT_EQ(TokenAddresses(memory), layer0_at);
  int layer1_pairs[2] = {0, 0};
  for (const auto& s : recording.shards) {
    if (s.layer == 1) layer1_pairs[s.instance == addresses_[0] ? 0 : 1] += s.pairs;
  }
  EXPECT_EQ(layer1_pairs[0], 32);
  EXPECT_EQ(layer1_pairs[1], 32);
  EXPECT_EQ(remote.pairs_after_previous_layer(), kTokens);  // layer 1 only
  EXPECT_EQ(remote.local_pairs(), kTokens);

  // Without the memory, layer 1 splits contiguously: every token changes instance.
  DispatchMemory fresh;
  std::vector<float> out(x.size());
  ASSERT_TRUE(remote.Run(1, x.data(), kHidden, AllTo(kTokens, 1), out.data(), &fresh).ok());
  for (int t = 0; t < kTokens; ++t) EXPECT_NE(TokenAddresses(fresh)[t], layer0_at[t]) << t;
  EXPECT_EQ(remote.pairs_after_previous_layer(), kTokens);  // a first layer: not counted
}

// Layer 1's call to instance 1 fails and its pairs are resent to instance 0: the memory records
// where they actually ran (every token on instance 0).
TEST_F(RemoteExpertExecutorTest, MemoryRecordsWhereResentPairsRan) {
  Build(2, 2);
  ShardRecordingTransport recording(transport_.get());
  recording.fail_layer = 1;
  recording.fail_address = addresses_[1];
  RemoteExpertExecutor remote(placement_.get(), addresses_, &recording);
  constexpr int kTokens = 64;
  const std::vector<float> x = RandomX(kTokens, 62);
  DispatchMemory memory;
  for (int layer = 0; layer < 2; ++layer) {
    ASSERT_NO_FATAL_FAILURE(
        ExpectLayerMatchesLocal(&remote, layer, x, AllTo(kTokens, layer), &memory));
  }
  EXPECT_GT(remote.failovers(), 0);
  EXPECT_EQ(TokenAddresses(memory), std::vector<std::string>(kTokens, addresses_[0]));
  EXPECT_EQ(remote.local_pairs(), 32);  // the tokens that were on instance 0 in layer 0
}

// A new placement between the layers lists the instances the other way round: homes follow the
// addresses, not the instance indices.
TEST_F(RemoteExpertExecutorTest, HomesFollowAddressesAcrossPlacements) {
  Build(2, 2);
  auto p0 = PlacementSnapshot::FromStatic(*placement_, addresses_, 0);
  auto p1 = PlacementSnapshot::FromStatic(*placement_, {addresses_[1], addresses_[0]}, 0);
  ASSERT_TRUE(p0.ok() && p1.ok());
  PlacementHolder holder(*p0);
  RemoteExpertExecutor remote(&holder, transport_.get());
  constexpr int kTokens = 64;
  const std::vector<float> x = RandomX(kTokens, 63);
  DispatchMemory memory;
  std::vector<float> out(x.size());
  ASSERT_TRUE(remote.Run(0, x.data(), kHidden, AllTo(kTokens, 0), out.data(), &memory).ok());
  const std::vector<std::string> layer0_at = TokenAddresses(memory);
  holder.Set(*p1);
  // Layer 1's expert 0 lists instance indices {0, 1}: addresses 1, 0 in the new placement.
  ASSERT_TRUE(remote.Run(1, x.data(), kHidden, AllTo(kTokens, 0), out.data(), &memory).ok());
  EXPECT_EQ(TokenAddresses(memory), layer0_at);
  EXPECT_EQ(remote.local_pairs(), kTokens);
}

TEST(PlacementHolderTest, SetKeepsNewestAndWaitWakes) {
  auto rr = StaticPlacement::RoundRobin(TinyConfig(), 2, 1);
  ASSERT_TRUE(rr.ok());
  auto s1 = PlacementSnapshot::FromStatic(*rr, {"a", "b"}, 1);
  auto s3 = PlacementSnapshot::FromStatic(*rr, {"a", "b"}, 3);
  auto s2 = PlacementSnapshot::FromStatic(*rr, {"a", "b"}, 2);
  ASSERT_TRUE(s1.ok() && s2.ok() && s3.ok());
  EXPECT_FALSE(PlacementSnapshot::FromStatic(*rr, {"a"}, 1).ok());
  PlacementHolder h;
  EXPECT_EQ(h.Get(), nullptr);
  EXPECT_EQ(h.WaitForNewerThan(-1, absl::Milliseconds(1)), nullptr);
  EXPECT_TRUE(h.Set(*s1));
  EXPECT_TRUE(h.Set(*s3));
  EXPECT_FALSE(h.Set(*s2));  // older: ignored
  EXPECT_EQ(h.Get()->epoch(), 3);
  EXPECT_EQ(h.WaitForNewerThan(3, absl::Milliseconds(1))->epoch(), 3);  // timed out
  std::thread t([&] {
    auto s5 = PlacementSnapshot::FromStatic(*rr, {"a", "b"}, 5);
    absl::SleepFor(absl::Milliseconds(20));
    h.Set(*s5);
  });
  EXPECT_EQ(h.WaitForNewerThan(3, absl::Seconds(60))->epoch(), 5);
  t.join();
  // A Replace with a lower epoch (restarted scheduler) wakes a waiter too.
  std::thread r([&] {
    absl::SleepFor(absl::Milliseconds(20));
    h.Replace(*s1);
  });
  EXPECT_EQ(h.WaitForNewerThan(5, absl::Seconds(60))->epoch(), 1);
  r.join();
}

TEST(PlacementSnapshotTest, FromPlan) {
  model::ModelConfig c = TinyConfig();
  moe::scheduler::v1::PlacementPlan plan;
  plan.set_epoch(7);
  plan.set_layers(kLayers);
  plan.set_num_experts(kExperts);
  for (int i = 0; i < 2; ++i) {
    auto* inst = plan.add_instances();
    inst->set_instance_id("expert-" + std::to_string(i + 1));
    inst->set_address("127.0.0.1:" + std::to_string(7000 + i));
    inst->set_index(i);
  }
  for (int l = 0; l < kLayers; ++l) {
    for (int e = 0; e < kExperts; ++e) {
      auto* ep = plan.add_experts();
      ep->set_layer(l);
      ep->set_expert(e);
      auto* r = ep->add_replicas();
      r->set_instance_index((l + e) % 2);
      r->set_share(e == 5 ? 0.5 : 1.0);
      if (e == 5) {
        auto* r2 = ep->add_replicas();
        r2->set_instance_index((l + e + 1) % 2);
        r2->set_share(0.5);
      }
    }
  }
  auto s = PlacementSnapshot::FromPlan(plan, c);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->epoch(), 7);
  EXPECT_EQ((*s)->num_instances(), 2);
  EXPECT_EQ((*s)->address(1), "127.0.0.1:7001");
  EXPECT_EQ((*s)->instance_id(0), "expert-1");
  ASSERT_EQ((*s)->Replicas(1, 2).size(), 1u);
  EXPECT_EQ((*s)->Replicas(1, 2)[0], 1);
  // (0, 5) lists instances 1, 0; rotated by (0 * 6 + 5) % 2 = 1: 0 first. (1, 5) lists
  // 0, 1; rotated by 11 % 2 = 1: 1 first.
  ASSERT_EQ((*s)->Replicas(0, 5).size(), 2u);
  EXPECT_EQ((*s)->Replicas(0, 5)[0], 0);
  EXPECT_EQ((*s)->Replicas(0, 5)[1], 1);
  ASSERT_EQ((*s)->Replicas(1, 5).size(), 2u);
  EXPECT_EQ((*s)->Replicas(1, 5)[0], 1);
  EXPECT_EQ((*s)->Replicas(1, 5)[1], 0);

  auto bad_index = plan;
  bad_index.mutable_experts(3)->mutable_replicas(0)->set_instance_index(2);
  EXPECT_FALSE(PlacementSnapshot::FromPlan(bad_index, c).ok());
  auto no_replica = plan;
  no_replica.mutable_experts(4)->clear_replicas();
  EXPECT_FALSE(PlacementSnapshot::FromPlan(no_replica, c).ok());
  auto wrong_shape = plan;
  wrong_shape.set_num_experts(kExperts + 1);
  EXPECT_FALSE(PlacementSnapshot::FromPlan(wrong_shape, c).ok());
  auto no_address = plan;
  no_address.mutable_instances(0)->clear_address();
  EXPECT_FALSE(PlacementSnapshot::FromPlan(no_address, c).ok());
}

TEST(RoutingLoadRecorderTest, TokensAndConsecutiveLayerPairs) {
  RoutingLoadRecorder rec(3, 4, /*max_pairs=*/2);
  model::Routing l0;
  l0.tokens = 2;
  l0.top_k = 1;
  l0.experts = {1, 3};
  l0.weights = {1, 1};
  model::Routing l1 = l0;
  l1.experts = {2, 2};
  rec.Record(0, l0);
  rec.Record(1, l1);
  rec.Record(1, l1);  // not after layer 0 on this thread: no pairs
  RoutingLoad got = rec.Take();
  ASSERT_EQ(got.tokens.size(), 12u);
  EXPECT_EQ(got.tokens[0 * 4 + 1], 1);
  EXPECT_EQ(got.tokens[0 * 4 + 3], 1);
  EXPECT_EQ(got.tokens[1 * 4 + 2], 4);
  EXPECT_EQ(got.total_tokens, 6);
  ASSERT_EQ(got.coact.size(), 2u);
  EXPECT_EQ(got.coact[0].layer, 0);
  EXPECT_EQ(got.coact[0].a, 1);
  EXPECT_EQ(got.coact[0].b, 2);
  EXPECT_EQ(got.coact[0].count, 1);
  EXPECT_EQ(got.coact[1].a, 3);
  EXPECT_EQ(got.coact[1].b, 2);
  // Reset by Take.
  RoutingLoad again = rec.Take();
  EXPECT_EQ(again.total_tokens, 0);
  EXPECT_TRUE(again.coact.empty());
  // Pairs on another thread do not mix with this thread's layers.
  rec.Record(0, l0);
  std::thread([&] { rec.Record(1, l1); }).join();
  EXPECT_TRUE(rec.Take().coact.empty());
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
