#include "scheduler/core/scheduler_core.h"

#include <gtest/gtest.h>

#include <set>

#include "common/clock.h"

namespace moe::scheduler {
namespace {

SchedulerConfig Config(int replicas = 1) {
  SchedulerConfig c;
  c.layers = 2;
  c.experts = 4;
  c.replication = {.min_replicas = replicas, .replication = static_cast<double>(replicas)};
  c.heartbeat_interval = absl::Milliseconds(500);
  c.heartbeat_timeout = absl::Seconds(2);
  return c;
}

MemberInfo Expert(int port) {
  MemberInfo m;
  m.role = Role::kExpert;
  m.address = "127.0.0.1:" + std::to_string(port);
  return m;
}

std::set<std::string> PlanInstances(const PublishedPlan& p) {
  std::set<std::string> ids;
  for (const auto& rs : p.plan.replicas) {
    for (const Replica& r : rs) ids.insert(p.plan.instance_info[r.instance].id);
  }
  return ids;
}

TEST(SchedulerCoreTest, PlansOnJoinAndFailsOverOnDeath) {
  FakeClock clock;
  std::vector<std::shared_ptr<const PublishedPlan>> seen;
  SchedulerCore core(Config(), [&](auto p) { seen.push_back(p); });
  ASSERT_TRUE(ValidateSchedulerConfig(core.config()).ok());
  EXPECT_EQ(core.Tick(clock.Now()).published, nullptr) << "no expert instance yet";
  EXPECT_EQ(core.Current(), nullptr);

  auto a = core.Register(Expert(1), clock.Now());
  auto b = core.Register(Expert(2), clock.Now());
  auto c = core.Register(Expert(3), clock.Now());
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  TickResult r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr);
  EXPECT_EQ(r.published->plan.epoch, 1);
  EXPECT_EQ(r.published->reason, PlanReason::kInitial);
  EXPECT_TRUE(ValidatePlan(r.published->plan).ok());
  EXPECT_EQ(PlanInstances(*r.published), (std::set<std::string>{*a, *b, *c}));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(core.Tick(clock.Now()).published, nullptr) << "nothing changed";

  // a and b heartbeat, c goes silent.
  for (int i = 0; i < 5; ++i) {
    clock.Advance(absl::Milliseconds(500));
    ASSERT_TRUE(core.Heartbeat(*a, {.applied_epoch = 1, .ready = true}, clock.Now()).ok());
    ASSERT_TRUE(core.Heartbeat(*b, {.applied_epoch = 1, .ready = true}, clock.Now()).ok());
    r = core.Tick(clock.Now());
    if (r.published != nullptr) break;
  }
  ASSERT_NE(r.published, nullptr);
  EXPECT_EQ(r.dead, std::vector<std::string>{*c});
  EXPECT_EQ(r.published->plan.epoch, 2);
  EXPECT_EQ(r.published->reason, PlanReason::kFailover);
  EXPECT_TRUE(ValidatePlan(r.published->plan).ok()) << "every expert still placed";
  EXPECT_EQ(PlanInstances(*r.published), (std::set<std::string>{*a, *b}));
  // Survivors keep their experts.
  const PublishedPlan& before = *seen[0];
  for (size_t g = 0; g < before.plan.replicas.size(); ++g) {
    const std::string& owner = before.plan.instance_info[before.plan.replicas[g][0].instance].id;
    const std::string& now_owner =
        r.published->plan.instance_info[r.published->plan.replicas[g][0].instance].id;
    if (owner != *c) {
      EXPECT_EQ(now_owner, owner) << "expert " << g << " moved needlessly";
    }
  }
  EXPECT_EQ(core.Heartbeat(*c, {}, clock.Now()).code(), absl::StatusCode::kNotFound);
  SchedulerStats s = core.Stats();
  EXPECT_EQ(s.epoch, 2);
  EXPECT_EQ(s.expert_instances, 2);
  EXPECT_EQ(s.instance_deaths, 1);
  EXPECT_EQ(s.failovers, 1);
  EXPECT_EQ(seen.size(), 2u);

  // c comes back under a new id: a membership plan including it, pending until every
  // instance of it loaded its experts, then the same epoch committed.
  auto c2 = core.Register(Expert(3), clock.Now());
  ASSERT_TRUE(c2.ok());
  r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr);
  EXPECT_EQ(r.published->plan.epoch, 3);
  EXPECT_EQ(r.published->reason, PlanReason::kMembership);
  EXPECT_TRUE(r.published->pending);
  EXPECT_EQ(r.published->committed_epoch, 2);
  EXPECT_EQ(PlanInstances(*r.published).count(*c2), 1u);
  EXPECT_EQ(core.Current()->plan.epoch, 2) << "routing stays on the committed plan";
  EXPECT_EQ(core.Stats().pending_epoch, 3);
  ASSERT_TRUE(core.Heartbeat(*a, {.applied_epoch = 2, .loaded_epoch = 3}, clock.Now()).ok());
  ASSERT_TRUE(core.Heartbeat(*b, {.applied_epoch = 2, .loaded_epoch = 3}, clock.Now()).ok());
  EXPECT_EQ(core.Tick(clock.Now()).published, nullptr) << "c2 has not loaded yet";
  ASSERT_TRUE(core.Heartbeat(*c2, {.loaded_epoch = 3}, clock.Now()).ok());
  r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr);
  EXPECT_FALSE(r.published->pending);
  EXPECT_EQ(r.published->plan.epoch, 3);
  EXPECT_EQ(r.published->committed_epoch, 3);
  EXPECT_EQ(core.Current()->plan.epoch, 3);
  EXPECT_EQ(core.Pending(), nullptr);
  EXPECT_EQ(core.Stats().epoch, 3);
}

// Heartbeats `epoch` as loaded and applied from every member (all roles).
void AllLoaded(SchedulerCore& core, int64_t epoch, absl::Time now) {
  for (const Member& m : core.Members()) {
    ASSERT_TRUE(
        core.Heartbeat(m.id, {.applied_epoch = epoch, .loaded_epoch = epoch, .ready = true}, now)
            .ok());
  }
}

TEST(SchedulerCoreTest, PendingPlanNotLoadedInTimeIsAbandoned) {
  FakeClock clock;
  SchedulerConfig config = Config();
  config.heartbeat_timeout = absl::Minutes(10);
  config.rebalance.commit_timeout = absl::Seconds(20);
  std::vector<std::shared_ptr<const PublishedPlan>> seen;
  SchedulerCore core(config, [&](auto p) { seen.push_back(p); });
  auto a = core.Register(Expert(1), clock.Now());
  ASSERT_TRUE(a.ok());
  ASSERT_NE(core.Tick(clock.Now()).published, nullptr);
  auto b = core.Register(Expert(2), clock.Now());
  ASSERT_TRUE(b.ok());
  TickResult r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr);
  ASSERT_TRUE(r.published->pending);
  clock.Advance(absl::Seconds(19));
  EXPECT_EQ(core.Tick(clock.Now()).published, nullptr);
  clock.Advance(absl::Seconds(2));
  r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr) << "the committed plan is published again";
  EXPECT_FALSE(r.published->pending);
  EXPECT_EQ(r.published->plan.epoch, 1);
  EXPECT_NE(r.note.find("abandoned"), std::string::npos) << r.note;
  EXPECT_EQ(core.Stats().abandoned, 1);
  // The join is tried again with a fresh epoch (followers may have seen epoch 2).
  r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr);
  EXPECT_TRUE(r.published->pending);
  EXPECT_EQ(r.published->plan.epoch, 3);
}

TEST(SchedulerCoreTest, RebalancesASkewedLayerMakeBeforeBreak) {
  FakeClock clock;
  SchedulerConfig config = Config();
  config.layers = 1;
  config.heartbeat_timeout = absl::Minutes(10);
  config.rebalance.min_interval = absl::Seconds(10);
  config.rebalance.min_tokens = 100;
  config.load_window = absl::Minutes(10);
  std::vector<std::shared_ptr<const PublishedPlan>> seen;
  SchedulerCore core(config, [&](auto p) { seen.push_back(p); });
  auto a = core.Register(Expert(1), clock.Now());
  auto b = core.Register(Expert(2), clock.Now());
  ASSERT_TRUE(a.ok() && b.ok());
  TickResult r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr);
  const PlacementPlan first = r.published->plan;
  // The two hottest experts share an instance under the uniform first plan.
  const int i0 = first.At(0, 0)[0].instance;
  int partner = -1;
  for (int e = 1; e < 4; ++e) {
    if (first.At(0, e)[0].instance == i0) partner = e;
  }
  ASSERT_GE(partner, 0);
  std::vector<int64_t> tokens(4, 10);
  tokens[0] = tokens[partner] = 1000;
  ASSERT_TRUE(core.ReportLoad("", {tokens, {}}, clock.Now()).ok());
  AllLoaded(core, 1, clock.Now());

  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(core.Tick(clock.Now()).published, nullptr) << "within the minimum interval";
  ASSERT_EQ(core.Stats().balancedness.size(), 1u);
  EXPECT_LT(core.Stats().balancedness[0], 0.6);

  clock.Advance(absl::Seconds(6));
  r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr) << r.note;
  EXPECT_EQ(r.published->reason, PlanReason::kRebalance);
  EXPECT_TRUE(r.published->pending);
  EXPECT_NE(r.published->plan.At(0, 0)[0].instance, r.published->plan.At(0, partner)[0].instance)
      << "the hot experts are split";
  EXPECT_EQ(core.Current()->plan.epoch, 1);

  clock.Advance(absl::Milliseconds(800));
  AllLoaded(core, 2, clock.Now());
  r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr);
  EXPECT_FALSE(r.published->pending);
  EXPECT_EQ(r.published->plan.epoch, 2);
  SchedulerStats s = core.Stats();
  EXPECT_EQ(s.rebalances, 1);
  EXPECT_NEAR(s.last_rebalance_seconds, 0.8, 1e-9);

  // Balanced now: no further plan, however long we wait.
  for (int i = 0; i < 5; ++i) {
    clock.Advance(absl::Seconds(11));
    EXPECT_EQ(core.Tick(clock.Now()).published, nullptr);
  }
  ASSERT_EQ(core.Stats().balancedness.size(), 1u);
  EXPECT_GT(core.Stats().balancedness[0], 0.95);
}

TEST(SchedulerCoreTest, NoRebalanceWithoutABetterPlan) {
  FakeClock clock;
  SchedulerConfig config = Config();
  config.layers = 1;
  config.heartbeat_timeout = absl::Minutes(10);
  config.rebalance.min_interval = absl::Seconds(1);
  config.rebalance.min_tokens = 1;
  SchedulerCore core(config, nullptr);
  ASSERT_TRUE(core.Register(Expert(1), clock.Now()).ok());
  ASSERT_TRUE(core.Register(Expert(2), clock.Now()).ok());
  ASSERT_NE(core.Tick(clock.Now()).published, nullptr);
  // One expert takes everything: with one replica per expert no plan can balance it.
  ASSERT_TRUE(core.ReportLoad("", {{1000, 0, 0, 0}, {}}, clock.Now()).ok());
  clock.Advance(absl::Seconds(2));
  TickResult r = core.Tick(clock.Now());
  EXPECT_EQ(r.published, nullptr);
  EXPECT_NE(r.note.find("no better plan"), std::string::npos) << r.note;
}

TEST(SchedulerCoreTest, DrainPublishesAPlanWithoutTheInstance) {
  FakeClock clock;
  SchedulerConfig config = Config(/*replicas=*/1);
  config.heartbeat_timeout = absl::Minutes(10);
  SchedulerCore core(config, nullptr);
  auto a = core.Register(Expert(1), clock.Now());
  auto b = core.Register(Expert(2), clock.Now());
  MemberInfo worker;
  worker.role = Role::kAttention;
  worker.address = "127.0.0.1:9";
  auto w = core.Register(worker, clock.Now());
  ASSERT_TRUE(a.ok() && b.ok() && w.ok());
  ASSERT_NE(core.Tick(clock.Now()).published, nullptr);
  AllLoaded(core, 1, clock.Now());

  EXPECT_EQ(core.Drain("expert-99").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(core.Drain(*w).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(core.Drain(*b).ok());
  EXPECT_EQ(core.Drain(*a).code(), absl::StatusCode::kFailedPrecondition) << "the last one";
  EXPECT_FALSE(core.Drained(*b));

  TickResult r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr);
  EXPECT_EQ(r.published->reason, PlanReason::kScale);
  EXPECT_TRUE(r.published->pending);
  EXPECT_EQ(PlanInstances(*r.published), (std::set<std::string>{*a}));
  EXPECT_FALSE(core.Drained(*b)) << "not committed yet";
  ASSERT_TRUE(core.Heartbeat(*a, {.applied_epoch = 1, .loaded_epoch = 2}, clock.Now()).ok());
  r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr);
  EXPECT_FALSE(r.published->pending);
  EXPECT_FALSE(core.Drained(*b)) << "the attention worker still routes with epoch 1";
  ASSERT_TRUE(core.Heartbeat(*w, {.applied_epoch = 2}, clock.Now()).ok());
  EXPECT_TRUE(core.Drained(*b));
  EXPECT_EQ(core.Tick(clock.Now()).published, nullptr) << "b is live but drained: no replan";
}

TEST(SchedulerCoreTest, ReplicasSurviveOneDeath) {
  FakeClock clock;
  SchedulerCore core(Config(/*replicas=*/2), nullptr);
  auto a = core.Register(Expert(1), clock.Now());
  auto b = core.Register(Expert(2), clock.Now());
  auto c = core.Register(Expert(3), clock.Now());
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  TickResult r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr);
  for (const auto& rs : r.published->plan.replicas) EXPECT_EQ(rs.size(), 2u);
  clock.Advance(absl::Seconds(3));
  ASSERT_TRUE(core.Heartbeat(*a, {}, clock.Now()).ok());
  ASSERT_TRUE(core.Heartbeat(*b, {}, clock.Now()).ok());
  r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr);
  EXPECT_EQ(r.published->plan.instances, 2);
  for (const auto& rs : r.published->plan.replicas) EXPECT_EQ(rs.size(), 2u) << "topped up";
}

TEST(SchedulerCoreTest, LoadReportsShapePlacement) {
  FakeClock clock;
  SchedulerConfig config = Config();
  config.replication.replication = 1.5;  // 6 replicas per layer: 2 spare
  SchedulerCore core(config, nullptr);
  // Expert 0 of layer 0 is hot.
  ASSERT_TRUE(core.ReportLoad("", {{1000, 10, 10, 10, 10, 10, 10, 10}, {}}, clock.Now()).ok());
  EXPECT_EQ(core.ReportLoad("nobody", {{0, 0, 0, 0, 0, 0, 0, 0}, {}}, clock.Now()).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(core.ReportLoad("", {{1, 2}, {}}, clock.Now()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(core.Load(clock.Now()).total_tokens, 1070);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(core.Register(Expert(i), clock.Now()).ok());
  TickResult r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr);
  EXPECT_EQ(r.published->plan.At(0, 0).size(), 3u) << "the hot expert is replicated";
  for (int e = 1; e < 4; ++e) EXPECT_EQ(r.published->plan.At(0, e).size(), 1u);
  // Layer 1 is uniform: its 2 spare replicas go to two different experts.
  size_t layer1 = 0;
  for (int e = 0; e < 4; ++e) layer1 += r.published->plan.At(1, e).size();
  EXPECT_EQ(layer1, 6u);
  EXPECT_LE(r.published->plan.At(1, 0).size(), 2u);
}

TEST(SchedulerCoreTest, AwaitWorkWakesOnRegisterAndStop) {
  FakeClock clock;
  SchedulerCore core(Config(), nullptr);
  ASSERT_TRUE(core.Register(Expert(1), clock.Now()).ok());
  EXPECT_TRUE(core.AwaitWork(absl::Hours(1))) << "returns at once: work pending";
  core.Stop();
  EXPECT_FALSE(core.AwaitWork(absl::Hours(1)));
}

TEST(SchedulerCoreTest, InitialPlanWaitsForMinExpertInstances) {
  FakeClock clock;
  SchedulerConfig config = Config(2);
  config.min_expert_instances = 2;
  SchedulerCore core(config, nullptr);
  auto a = core.Register(Expert(1), clock.Now());
  ASSERT_TRUE(a.ok());
  TickResult r = core.Tick(clock.Now());
  EXPECT_EQ(r.published, nullptr);
  EXPECT_EQ(r.placement_status.code(), absl::StatusCode::kUnavailable);
  auto b = core.Register(Expert(2), clock.Now());
  ASSERT_TRUE(b.ok());
  r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr);
  EXPECT_EQ(r.published->plan.epoch, 1);
  EXPECT_EQ(PlanInstances(*r.published), (std::set<std::string>{*a, *b}));
  // Later plans do not wait: b dies, a alone gets the failover plan.
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(core.Heartbeat(*a, {}, clock.Now()).ok());
  clock.Advance(absl::Milliseconds(1500));
  r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr);
  EXPECT_EQ(r.published->reason, PlanReason::kFailover);
  EXPECT_EQ(PlanInstances(*r.published), (std::set<std::string>{*a}));
  ASSERT_EQ(core.Members().size(), 1u);
  EXPECT_EQ(core.Members()[0].id, *a);
}

TEST(SchedulerCoreTest, ConfigValidation) {
  SchedulerConfig c = Config();
  c.min_expert_instances = -1;
  EXPECT_FALSE(ValidateSchedulerConfig(c).ok());
  c = Config();
  c.layers = 0;
  EXPECT_FALSE(ValidateSchedulerConfig(c).ok());
  c = Config();
  c.heartbeat_interval = absl::Seconds(5);
  EXPECT_FALSE(ValidateSchedulerConfig(c).ok());
  c = Config();
  c.policy = PlacementPolicy::kLayerBlocks;
  EXPECT_EQ(ValidateSchedulerConfig(c).code(), absl::StatusCode::kInvalidArgument)
      << "layer blocks with the load rebalancer on";
  c.rebalance.enabled = false;
  EXPECT_TRUE(ValidateSchedulerConfig(c).ok());
}

TEST(SchedulerCoreTest, LayerBlocksPolicyPlacesWholeLayersPerInstance) {
  FakeClock clock;
  SchedulerConfig config = Config();
  config.policy = PlacementPolicy::kLayerBlocks;
  config.rebalance.enabled = false;
  config.min_expert_instances = 2;
  SchedulerCore core(config, nullptr);
  auto a = core.Register(Expert(1), clock.Now());
  auto b = core.Register(Expert(2), clock.Now());
  ASSERT_TRUE(a.ok() && b.ok());
  TickResult r = core.Tick(clock.Now());
  ASSERT_NE(r.published, nullptr);
  const PlacementPlan& plan = r.published->plan;
  EXPECT_TRUE(ValidatePlan(plan).ok());
  for (int l = 0; l < 2; ++l) {
    for (int e = 0; e < 4; ++e) {
      ASSERT_EQ(plan.At(l, e).size(), 1u);
      EXPECT_EQ(plan.instance_info[plan.At(l, e)[0].instance].id, l == 0 ? *a : *b)
          << "layer " << l << " expert " << e;
    }
  }
}

}  // namespace
}  // namespace moe::scheduler
