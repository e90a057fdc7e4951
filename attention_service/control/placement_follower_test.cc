// PlacementFollower against an in-process SchedulerServer: a committed plan reaches the
// PlacementHolder (addresses from the plan), pending and misfit plans do not, and routed
// tokens reach the scheduler's load window through the periodic ReportLoad.
#include "attention_service/control/placement_follower.h"

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/clock.h"
#include "scheduler/core/scheduler_core.h"
#include "scheduler/grpc/scheduler_server.h"

namespace moe::attention {
namespace {

namespace sv1 = ::moe::scheduler::v1;

constexpr int kLayers = 2;
constexpr int kExperts = 4;

model::ModelConfig Config() {
  model::ModelConfig c;
  c.architecture = model::Architecture::kMixtral;
  c.num_hidden_layers = kLayers;
  c.num_experts = kExperts;
  c.hidden_size = 8;
  return c;
}

template <typename F>
bool Eventually(F done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return done();
}

class PlacementFollowerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    scheduler::SchedulerConfig c;
    c.layers = kLayers;
    c.experts = kExperts;
    c.replication = {.min_replicas = 2, .replication = 2};
    c.heartbeat_interval = absl::Milliseconds(20);
    c.heartbeat_timeout = absl::Seconds(2);
    core_ = std::make_unique<scheduler::SchedulerCore>(
        c, [this](auto plan) { server_->PublishPlan(*plan); });
    auto s = scheduler::SchedulerServer::Start({}, core_.get(), &clock_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }
  void TearDown() override {
    follower_.reset();  // closes its channel before the server stops
    server_->Shutdown();
  }

  FakeClock clock_;
  std::unique_ptr<scheduler::SchedulerCore> core_;
  std::unique_ptr<scheduler::SchedulerServer> server_;
  std::unique_ptr<PlacementFollower> follower_;
};

TEST_F(PlacementFollowerTest, InstallsCommittedPlansAndReportsLoad) {
  PlacementHolder holder;
  RoutingLoadRecorder load(kLayers, kExperts);
  PlacementFollowerOptions o;
  o.scheduler = "127.0.0.1:" + std::to_string(server_->port());
  o.address = "127.0.0.1:6000";
  o.report_interval = absl::Milliseconds(10);
  auto f = PlacementFollower::Start(o, Config(), &holder, &load);
  ASSERT_TRUE(f.ok()) << f.status();
  follower_ = std::move(*f);
  // Two expert instances join (registered directly with the core) and the scheduler plans.
  scheduler::MemberInfo e1, e2;
  e1.address = "127.0.0.1:7001";
  e2.address = "127.0.0.1:7002";
  auto id1 = core_->Register(e1, clock_.Now());
  auto id2 = core_->Register(e2, clock_.Now());
  ASSERT_TRUE(id1.ok() && id2.ok());
  ASSERT_NE(core_->Tick(clock_.Now()).published, nullptr);
  ASSERT_TRUE(Eventually([&] { return holder.Get() != nullptr; }));
  std::shared_ptr<const PlacementSnapshot> snap = holder.Get();
  EXPECT_EQ(snap->epoch(), 1);
  ASSERT_EQ(snap->num_instances(), 2);
  EXPECT_EQ(snap->address(0), "127.0.0.1:7001");
  EXPECT_EQ(snap->address(1), "127.0.0.1:7002");
  EXPECT_EQ(snap->Replicas(1, 3).size(), 2u);
  // The worker reports routing epoch 1 and ready in its heartbeats.
  ASSERT_TRUE(Eventually([&] {
    for (const auto& m : core_->Members()) {
      if (m.info.role == scheduler::Role::kAttention) return m.applied_epoch == 1 && m.ready;
    }
    return false;
  }));

  // Routed tokens reach the scheduler's load window.
  model::Routing r;
  r.tokens = 3;
  r.top_k = 1;
  r.experts = {2, 2, 3};
  r.weights = {1, 1, 1};
  load.Record(0, r);
  model::Routing r1 = r;
  r1.experts = {1, 1, 1};
  load.Record(1, r1);
  ASSERT_TRUE(Eventually([&] { return core_->Load(clock_.Now()).total_tokens == 6; }));
  scheduler::LoadSnapshot got = core_->Load(clock_.Now());
  EXPECT_EQ(got.tokens[0 * kExperts + 2], 2);
  EXPECT_EQ(got.tokens[1 * kExperts + 1], 3);
  ASSERT_EQ(got.coact.size(), 2u);  // (0: 2 -> 1) x2, (0: 3 -> 1) x1
  EXPECT_EQ(got.coact[0].a, 2);
  EXPECT_EQ(got.coact[0].count, 2);
}

TEST(PlacementFollowerInstallTest, PendingAndMisfitPlansAreNotInstalled) {
  sv1::PlacementPlan plan;
  plan.set_epoch(4);
  plan.set_layers(kLayers);
  plan.set_num_experts(kExperts);
  auto* inst = plan.add_instances();
  inst->set_instance_id("expert-1");
  inst->set_address("127.0.0.1:7001");
  for (int l = 0; l < kLayers; ++l) {
    for (int e = 0; e < kExperts; ++e) {
      auto* ep = plan.add_experts();
      ep->set_layer(l);
      ep->set_expert(e);
      auto* r = ep->add_replicas();
      r->set_instance_index(0);
      r->set_share(1);
    }
  }
  PlacementHolder holder;
  sv1::PlacementPlan pending = plan;
  pending.set_state(sv1::PLAN_STATE_PENDING);
  EXPECT_TRUE(PlacementFollower::Install(pending, Config(), &holder).ok());
  EXPECT_EQ(holder.Get(), nullptr);
  plan.set_state(sv1::PLAN_STATE_COMMITTED);
  ASSERT_TRUE(PlacementFollower::Install(plan, Config(), &holder).ok());
  EXPECT_EQ(holder.Get()->epoch(), 4);
  sv1::PlacementPlan misfit = plan;
  misfit.set_epoch(5);
  misfit.set_layers(kLayers + 1);
  EXPECT_FALSE(PlacementFollower::Install(misfit, Config(), &holder).ok());
  EXPECT_EQ(holder.Get()->epoch(), 4);
  // A restarted scheduler's epoch 1 replaces epoch 4.
  sv1::PlacementPlan restarted = plan;
  restarted.set_epoch(1);
  ASSERT_TRUE(PlacementFollower::Install(restarted, Config(), &holder).ok());
  EXPECT_EQ(holder.Get()->epoch(), 1);
  RoutingLoadRecorder load(kLayers, kExperts);
  EXPECT_FALSE(PlacementFollower::TakeLoadReport(&load).has_value());
}

}  // namespace
}  // namespace moe::attention
