#include "scheduler/scaling/scale_controller.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/clock.h"

namespace moe::scheduler {
namespace {

// The scheduler as the controller sees it: members (by name), a load total, drains.
class FakeTarget : public ScalingTarget {
 public:
  std::vector<Member> Members() const override { return members; }
  LoadSnapshot Load(absl::Time) override {
    LoadSnapshot s;
    s.total_tokens = window_tokens;
    return s;
  }
  absl::Status Drain(const std::string& id) override {
    drain_calls.push_back(id);
    if (!drain_status.ok()) return drain_status;
    for (const Member& m : members) {
      if (m.id == id) return absl::OkStatus();
    }
    return absl::NotFoundError(id);
  }
  bool Drained(const std::string& id) const override { return drained.count(id) > 0; }

  void AddExpert(const std::string& name, double tps = 0) {
    Member m;
    m.id = absl::StrCat("expert-", ++seq);
    m.seq = seq;
    m.info.role = Role::kExpert;
    m.info.name = name;
    m.tokens_per_second = tps;
    members.push_back(m);
  }
  void RemoveByName(const std::string& name) {
    std::erase_if(members, [&](const Member& m) { return m.info.name == name; });
  }
  std::string IdOf(const std::string& name) const {
    for (const Member& m : members) {
      if (m.info.name == name) return m.id;
    }
    return "";
  }

  std::vector<Member> members;
  int64_t window_tokens = 0;
  std::vector<std::string> drain_calls;
  absl::Status drain_status;
  std::set<std::string> drained;
  int64_t seq = 0;
};

// Instances named "e-<k>", removed highest first; records every ScaleTo.
class FakeProvider : public InstanceProvider {
 public:
  absl::StatusOr<int> Current() override {
    ++current_calls;  // a Kubernetes GET each
    return static_cast<int>(names.size());
  }
  absl::Status ScaleTo(int n) override {
    scale_calls.push_back(n);
    while (static_cast<int>(names.size()) > n) names.pop_back();
    while (static_cast<int>(names.size()) < n) names.push_back(absl::StrCat("e-", next++));
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> NextToRemove() override {
    if (names.empty()) return absl::NotFoundError("none");
    return names.back();
  }
  std::vector<InstanceExit> TakeExited() override { return std::exchange(exited, {}); }
  std::string Describe() const override { return "fake"; }

  std::vector<std::string> names;
  std::vector<int> scale_calls;
  std::vector<InstanceExit> exited;
  int next = 0;
  int current_calls = 0;
};

class ScaleControllerTest : public ::testing::Test {
 protected:
  ScaleControllerOptions Options() {
    ScaleControllerOptions o;
    o.params.min_instances = 1;
    o.params.max_instances = 4;
    o.params.instance_capacity_tps = 100;
    o.params.up_cooldown = absl::Seconds(5);
    o.params.down_cooldown = absl::Seconds(20);
    o.params.max_step_up = 1;
    o.params.max_step_down = 1;
    o.load_window = absl::Seconds(10);
    o.drain_timeout = absl::Seconds(30);
    return o;
  }
  // Demand in tokens/s over the 10 s window.
  void SetDemand(double tps) { target_.window_tokens = static_cast<int64_t>(tps * 10); }
  // Registers every provider instance not yet a member.
  void RegisterAll() {
    for (const std::string& n : provider_.names) {
      if (target_.IdOf(n).empty()) target_.AddExpert(n);
    }
  }

  FakeClock clock_;
  FakeTarget target_;
  FakeProvider provider_;
};

TEST_F(ScaleControllerTest, StartsTheMinimumAndGrowsUnderLoad) {
  ScaleController c(&target_, &provider_, &clock_, Options());
  ScaleStatus st = c.Step(clock_.Now());
  EXPECT_EQ(provider_.names.size(), 1u);  // below min at start
  EXPECT_EQ(st.decision.reason, ScaleReason::kBelowMin);
  RegisterAll();
  SetDemand(95);  // 0.95 of one instance
  clock_.Advance(absl::Seconds(1));
  st = c.Step(clock_.Now());
  EXPECT_EQ(st.decision.reason, ScaleReason::kUpCoolingDown);
  EXPECT_EQ(provider_.names.size(), 1u);
  clock_.Advance(absl::Seconds(5));
  st = c.Step(clock_.Now());
  EXPECT_EQ(st.decision.reason, ScaleReason::kHighLoad);
  EXPECT_EQ(provider_.names.size(), 2u);
  EXPECT_EQ(st.current, 2);
  EXPECT_EQ(st.scale_ups, 2);  // the initial min counts as an up action
  EXPECT_EQ(provider_.scale_calls, (std::vector<int>{1, 2}));
}

TEST_F(ScaleControllerTest, ShrinkDrainsTheNextToRemoveBeforeStoppingIt) {
  ScaleController c(&target_, &provider_, &clock_, Options());
  ASSERT_TRUE(provider_.ScaleTo(3).ok());
  RegisterAll();
  provider_.scale_calls.clear();
  SetDemand(0);
  ScaleStatus st = c.Step(clock_.Now());
  ASSERT_EQ(target_.drain_calls, std::vector<std::string>{target_.IdOf("e-2")});
  EXPECT_EQ(st.draining, "e-2");
  EXPECT_TRUE(provider_.scale_calls.empty());  // not stopped before drained
  // Not drained yet: the next steps wait (and decide nothing else).
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(absl::Seconds(1));
    st = c.Step(clock_.Now());
    EXPECT_EQ(st.draining, "e-2");
  }
  EXPECT_TRUE(provider_.scale_calls.empty());
  EXPECT_EQ(target_.drain_calls.size(), 1u);
  target_.drained.insert(target_.IdOf("e-2"));
  clock_.Advance(absl::Seconds(1));
  st = c.Step(clock_.Now());
  EXPECT_EQ(provider_.scale_calls, std::vector<int>{2});
  EXPECT_EQ(provider_.names, (std::vector<std::string>{"e-0", "e-1"}));
  EXPECT_EQ(st.draining, "");
  EXPECT_EQ(st.scale_downs, 1);
  // The down cool-down counts from that removal.
  target_.RemoveByName("e-2");
  clock_.Advance(absl::Seconds(19));
  st = c.Step(clock_.Now());
  EXPECT_EQ(st.decision.reason, ScaleReason::kDownCoolingDown);
  EXPECT_EQ(target_.drain_calls.size(), 1u);
  clock_.Advance(absl::Seconds(1));
  st = c.Step(clock_.Now());
  EXPECT_EQ(target_.drain_calls.back(), target_.IdOf("e-1"));
}

TEST_F(ScaleControllerTest, ShrinkByMoreThanOneDrainsOneAtATime) {
  ScaleControllerOptions o = Options();
  o.params.max_step_down = 3;
  ScaleController c(&target_, &provider_, &clock_, o);
  ASSERT_TRUE(provider_.ScaleTo(4).ok());
  RegisterAll();
  SetDemand(0);
  c.Step(clock_.Now());
  ASSERT_EQ(target_.drain_calls.size(), 1u);
  for (const std::string name : {"e-3", "e-2", "e-1"}) {
    EXPECT_EQ(target_.drain_calls.back(), target_.IdOf(name));
    target_.drained.insert(target_.IdOf(name));
    clock_.Advance(absl::Seconds(1));
    c.Step(clock_.Now());  // removes it
    clock_.Advance(absl::Seconds(1));
    c.Step(clock_.Now());  // drains the next one, no cool-down inside one shrink
  }
  EXPECT_EQ(provider_.names, std::vector<std::string>{"e-0"});
  EXPECT_EQ(target_.drain_calls.size(), 3u);
}

TEST_F(ScaleControllerTest, UnregisteredInstanceIsRemovedWithoutDrain) {
  ScaleController c(&target_, &provider_, &clock_, Options());
  ASSERT_TRUE(provider_.ScaleTo(2).ok());
  target_.AddExpert("e-0");  // e-1 never registered
  provider_.scale_calls.clear();
  ScaleStatus st = c.Step(clock_.Now());
  EXPECT_TRUE(target_.drain_calls.empty());
  EXPECT_EQ(provider_.scale_calls, std::vector<int>{1});
  EXPECT_EQ(st.scale_downs, 1);
}

TEST_F(ScaleControllerTest, DrainTimeoutRemovesAnyway) {
  ScaleController c(&target_, &provider_, &clock_, Options());
  ASSERT_TRUE(provider_.ScaleTo(2).ok());
  RegisterAll();
  provider_.scale_calls.clear();
  c.Step(clock_.Now());
  ASSERT_EQ(target_.drain_calls.size(), 1u);
  clock_.Advance(absl::Seconds(29));
  c.Step(clock_.Now());
  EXPECT_TRUE(provider_.scale_calls.empty());
  clock_.Advance(absl::Seconds(1));
  c.Step(clock_.Now());
  EXPECT_EQ(provider_.scale_calls, std::vector<int>{1});
}

TEST_F(ScaleControllerTest, RefusedDrainStopsNothing) {
  ScaleController c(&target_, &provider_, &clock_, Options());
  ASSERT_TRUE(provider_.ScaleTo(2).ok());
  RegisterAll();
  provider_.scale_calls.clear();
  target_.drain_status = absl::FailedPreconditionError("last expert instance");
  ScaleStatus st = c.Step(clock_.Now());
  EXPECT_EQ(st.error.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(provider_.scale_calls.empty());
  EXPECT_EQ(st.draining, "");
}

TEST_F(ScaleControllerTest, InstanceEndingWhileDrainedAbandonsTheDrain) {
  ScaleController c(&target_, &provider_, &clock_, Options());
  ASSERT_TRUE(provider_.ScaleTo(3).ok());
  RegisterAll();
  provider_.scale_calls.clear();
  c.Step(clock_.Now());
  ASSERT_EQ(target_.drain_calls.size(), 1u);
  // e-2 dies on its own: the provider drops it and reports it.
  provider_.names.pop_back();
  provider_.exited.push_back({"e-2", 137});
  ScaleStatus st = c.Step(clock_.Now());
  EXPECT_EQ(st.instance_exits, 1);
  EXPECT_EQ(st.draining, "");
  EXPECT_TRUE(provider_.scale_calls.empty());  // 2 instances == the shrink's target
  EXPECT_EQ(st.current, 2);
}

TEST_F(ScaleControllerTest, UsesMeasuredThroughputAndOnlyExpertMembers) {
  ScaleController c(&target_, &provider_, &clock_, Options());
  ASSERT_TRUE(provider_.ScaleTo(1).ok());
  target_.AddExpert("e-0", /*tps=*/500);
  Member attention;
  attention.id = "attention-1";
  attention.info.role = Role::kAttention;
  attention.tokens_per_second = 1;
  target_.members.push_back(attention);
  SetDemand(250);  // 2.5x the configured 100, half of the measured 500
  ScaleStatus st = c.Step(clock_.Now());
  EXPECT_DOUBLE_EQ(st.decision.instance_capacity, 500);
  EXPECT_DOUBLE_EQ(st.decision.utilisation, 0.5);
  EXPECT_EQ(st.decision.reason, ScaleReason::kSteady);
  EXPECT_EQ(provider_.names.size(), 1u);
}

TEST_F(ScaleControllerTest, ASteadyStepReadsTheCountOnce) {
  ScaleController c(&target_, &provider_, &clock_, Options());
  ASSERT_TRUE(provider_.ScaleTo(1).ok());
  target_.AddExpert("e-0");
  SetDemand(50);
  provider_.current_calls = 0;
  ScaleStatus st = c.Step(clock_.Now());
  EXPECT_EQ(st.decision.reason, ScaleReason::kSteady);
  EXPECT_EQ(st.current, 1);
  EXPECT_EQ(provider_.current_calls, 1);
}

TEST_F(ScaleControllerTest, ThreadStepsAndStops) {
  FakeClock clock;
  int steps = 0;
  absl::Mutex mu;
  ScaleControllerOptions o = Options();
  o.interval = absl::Milliseconds(5);
  ScaleController c(&target_, &provider_, &clock, o, [&](const ScaleStatus&) {
    absl::MutexLock lock(&mu);
    ++steps;
  });
  c.Start();
  {
    absl::MutexLock lock(&mu);
    auto two = [&steps] { return steps >= 2; };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&two), absl::Seconds(10)));
  }
  c.Stop();
  EXPECT_EQ(provider_.names.size(), 1u);  // the minimum
}

}  // namespace
}  // namespace moe::scheduler
