// PlanFollower on the golden tiny-mixtral (F32): a real ModelExpertSource and ShardExecutor
// (CPU backend) follow hand-made plans: load this instance's experts, drop the others after the
// grace period, keep them within it, load-only for pending plans, refuse a wrong-shape plan.
#include "expert_service/control/plan_follower.h"

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "expert_service/backend/expert_backend.h"

namespace moe::expert {
namespace {

namespace v1 = ::moe::scheduler::v1;
using Set = std::set<std::pair<int, int>>;

template <typename F>
bool Eventually(F done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return done();
}

class PlanFollowerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto source = ModelExpertSource::Open(std::string(MOE_GOLDEN_DIR) + "/tiny-mixtral/hf-f32");
    ASSERT_TRUE(source.ok()) << source.status();
    source_ = std::move(*source);
    layers_ = source_->config().num_hidden_layers;
    experts_ = source_->config().num_experts;
    auto backend = CreateExpertBackend("cpu", BackendOptions{});
    ASSERT_TRUE(backend.ok());
    executor_ = std::make_unique<ShardExecutor>(source_->ExecutorConfig(), std::move(*backend));
  }

  // Two instances; (l, e) goes to "expert-1" when holder(l, e) is 0, "expert-2" when 1, both
  // when 2.
  template <typename F>
  v1::PlacementPlan Plan(int64_t epoch, F holder, bool pending = false) const {
    v1::PlacementPlan p;
    p.set_epoch(epoch);
    p.set_layers(layers_);
    p.set_num_experts(experts_);
    p.set_state(pending ? v1::PLAN_STATE_PENDING : v1::PLAN_STATE_COMMITTED);
    p.set_pending(pending);
    for (int i = 0; i < 2; ++i) {
      auto* inst = p.add_instances();
      inst->set_instance_id("expert-" + std::to_string(i + 1));
      inst->set_address("127.0.0.1:" + std::to_string(9000 + i));
      inst->set_index(i);
    }
    for (int l = 0; l < layers_; ++l) {
      for (int e = 0; e < experts_; ++e) {
        auto* ep = p.add_experts();
        ep->set_layer(l);
        ep->set_expert(e);
        const int h = holder(l, e);
        for (int i = 0; i < 2; ++i) {
          if (h == i || h == 2) {
            auto* r = ep->add_replicas();
            r->set_instance_id("expert-" + std::to_string(i + 1));
            r->set_instance_index(i);
            r->set_share(h == 2 ? 0.5 : 1.0);
          }
        }
      }
    }
    return p;
  }

  Set Loaded() const {
    auto v = executor_->Loaded();
    return Set(v.begin(), v.end());
  }

  std::unique_ptr<ModelExpertSource> source_;
  std::unique_ptr<ShardExecutor> executor_;
  int layers_ = 0;
  int experts_ = 0;
};

TEST_F(PlanFollowerTest, ExpertsOfPicksThisInstancesReplicas) {
  const v1::PlacementPlan p = Plan(3, [](int l, int e) { return (l + e) % 3; });
  auto mine = PlanFollower::ExpertsOf(p, "expert-2", source_->config());
  ASSERT_TRUE(mine.ok()) << mine.status();
  Set want;
  for (int l = 0; l < layers_; ++l) {
    for (int e = 0; e < experts_; ++e) {
      if ((l + e) % 3 >= 1) want.insert({l, e});
    }
  }
  EXPECT_EQ(Set(mine->begin(), mine->end()), want);
  EXPECT_TRUE(PlanFollower::ExpertsOf(p, "expert-9", source_->config())->empty());
  v1::PlacementPlan wrong = p;
  wrong.set_layers(layers_ + 1);
  EXPECT_EQ(PlanFollower::ExpertsOf(wrong, "expert-2", source_->config()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PlanFollowerTest, LoadsItsExpertsAndDropsTheRestAfterGrace) {
  std::atomic<int> ready_changes{0};
  PlanFollowerOptions o;
  o.drop_grace = absl::ZeroDuration();
  o.on_ready_change = [&](bool ready) {
    if (ready) ++ready_changes;
  };
  PlanFollower f(executor_.get(), source_.get(), o);
  EXPECT_FALSE(f.ready());
  // Epoch 1: expert-1 holds the even experts.
  f.OnPlan(Plan(1, [](int, int e) { return e % 2; }), "expert-1");
  ASSERT_EQ(f.WaitForApplied(1, absl::Seconds(60)), 1);
  Set even;
  for (int l = 0; l < layers_; ++l) {
    for (int e = 0; e < experts_; e += 2) even.insert({l, e});
  }
  EXPECT_EQ(Loaded(), even);
  EXPECT_TRUE(f.ready());
  EXPECT_TRUE(Eventually([&] { return ready_changes.load() == 1; }));
  EXPECT_EQ(executor_->applied_epoch(), 1);

  // Epoch 2: expert-1 holds layer 0 entirely (its odd experts are new), nothing else.
  f.OnPlan(Plan(2, [](int l, int) { return l == 0 ? 0 : 1; }), "expert-1");
  ASSERT_EQ(f.WaitForApplied(2, absl::Seconds(60)), 2);
  Set layer0;
  for (int e = 0; e < experts_; ++e) layer0.insert({0, e});
  EXPECT_TRUE(Eventually([&] { return Loaded() == layer0; }));
  EXPECT_EQ(executor_->applied_epoch(), 2);
  EXPECT_EQ(f.applied_epoch(), 2);
}

TEST_F(PlanFollowerTest, KeepsDroppedExpertsDuringGraceAndPendingLoadsOnly) {
  PlanFollowerOptions o;
  o.drop_grace = absl::Hours(1);
  PlanFollower f(executor_.get(), source_.get(), o);
  f.OnPlan(Plan(1, [](int l, int) { return l == 0 ? 0 : 1; }), "expert-1");
  ASSERT_EQ(f.WaitForApplied(1, absl::Seconds(60)), 1);
  Set layer0, layers01;
  for (int e = 0; e < experts_; ++e) {
    layer0.insert({0, e});
    layers01.insert({0, e});
    layers01.insert({1, e});
  }
  EXPECT_EQ(Loaded(), layer0);
  // Pending epoch 2 moves expert-1 to layer 1: loaded alongside, nothing dropped, not applied.
  f.OnPlan(Plan(2, [](int l, int) { return l == 1 ? 0 : 1; }, /*pending=*/true), "expert-1");
  ASSERT_TRUE(Eventually([&] { return f.loaded_epoch() == 2; }));
  EXPECT_EQ(Loaded(), layers01);
  EXPECT_EQ(f.applied_epoch(), 1);
  // Committed epoch 2: layer 0 is no longer placed here but stays loaded within the grace.
  f.OnPlan(Plan(2, [](int l, int) { return l == 1 ? 0 : 1; }), "expert-1");
  ASSERT_EQ(f.WaitForApplied(2, absl::Seconds(60)), 2);
  EXPECT_EQ(Loaded(), layers01);
}

TEST_F(PlanFollowerTest, PlanNotListingThisInstanceChangesNothing) {
  PlanFollowerOptions o;
  o.drop_grace = absl::ZeroDuration();
  PlanFollower f(executor_.get(), source_.get(), o);
  f.OnPlan(Plan(1, [](int l, int) { return l == 0 ? 0 : 1; }), "expert-1");
  ASSERT_EQ(f.WaitForApplied(1, absl::Seconds(60)), 1);
  const Set before = Loaded();
  ASSERT_EQ(before.size(), static_cast<size_t>(experts_));
  // Epoch 2 as seen under an id the plan does not list (e.g. before a re-registration was
  // answered): nothing is dropped, the epoch is not applied.
  f.OnPlan(Plan(2, [](int, int) { return 1; }), "expert-7");
  EXPECT_EQ(f.WaitForApplied(2, absl::Milliseconds(300)), 1);
  EXPECT_EQ(Loaded(), before);
  EXPECT_TRUE(f.ready());
}

TEST_F(PlanFollowerTest, WrongShapePlanIsNotApplied) {
  PlanFollower f(executor_.get(), source_.get(), {});
  v1::PlacementPlan p = Plan(1, [](int, int) { return 0; });
  p.set_num_experts(experts_ + 1);
  f.OnPlan(p, "expert-1");
  EXPECT_EQ(f.WaitForApplied(1, absl::Milliseconds(300)), 0);
  EXPECT_FALSE(f.ready());
  EXPECT_TRUE(Loaded().empty());
  // A good plan afterwards supersedes it.
  f.OnPlan(Plan(2, [](int, int e) { return e == 3 ? 0 : 1; }), "expert-1");
  ASSERT_EQ(f.WaitForApplied(2, absl::Seconds(60)), 2);
  EXPECT_EQ(Loaded().size(), static_cast<size_t>(layers_));
  EXPECT_TRUE(f.ready());
}

}  // namespace
}  // namespace moe::expert
