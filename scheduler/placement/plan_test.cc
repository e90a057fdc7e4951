#include "scheduler/placement/plan.h"

#include <gtest/gtest.h>

#include "scheduler/placement/plan_proto.h"

namespace moe::scheduler {
namespace {

PlacementPlan TwoByTwo() {
  PlacementPlan p;
  p.epoch = 7;
  p.instances = 2;
  p.layers = 2;
  p.experts = 2;
  p.replicas = {{{0, 1.0}}, {{0, 0.25}, {1, 0.75}}, {{1, 1.0}}, {{0, 0.5}, {1, 0.5}}};
  return p;
}

TEST(PlanTest, ValidateAcceptsAndRejects) {
  PlacementPlan p = TwoByTwo();
  EXPECT_TRUE(ValidatePlan(p).ok());
  p.At(1, 0).clear();
  EXPECT_EQ(ValidatePlan(p).code(), absl::StatusCode::kInvalidArgument);
  p = TwoByTwo();
  p.At(0, 1)[1].share = 0.5;  // sums to 0.75
  EXPECT_FALSE(ValidatePlan(p).ok());
  p = TwoByTwo();
  p.At(0, 1)[1].instance = 0;  // two replicas on one instance
  EXPECT_FALSE(ValidatePlan(p).ok());
  p = TwoByTwo();
  p.At(0, 0)[0].instance = 2;  // out of range
  EXPECT_FALSE(ValidatePlan(p).ok());
}

TEST(PlanTest, JsonRoundTrip) {
  const PlacementPlan p = TwoByTwo();
  const std::string json = PlanToJson(p);
  absl::StatusOr<PlacementPlan> back = PlanFromJson(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, p);
  EXPECT_EQ(p.ReplicasOn(0), 3);
  EXPECT_EQ(p.ReplicasOn(1), 3);
}

TEST(PlanTest, JsonOfflineFormatWithoutShape) {
  absl::StatusOr<PlacementPlan> p =
      PlanFromJson(R"({"instances": 2, "replicas": {"0:0": [[0, 1.0]], "0:1": [[1, 0.5], [0, 0.5]],
                       "1:0": [[1, 1]], "1:1": [[0, 1]]}})");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->layers, 2);
  EXPECT_EQ(p->experts, 2);
  EXPECT_EQ(p->At(0, 1).size(), 2u);
  EXPECT_EQ(p->At(1, 0)[0].instance, 1);
}

TEST(PlanTest, JsonRejectsBadInput) {
  EXPECT_FALSE(PlanFromJson("not json").ok());
  EXPECT_FALSE(PlanFromJson(R"({"instances": 1})").ok());
  EXPECT_FALSE(PlanFromJson(R"({"instances": 1, "replicas": {"a:b": [[0, 1]]}})").ok());
  // 1:0 missing -> an expert without replica.
  EXPECT_FALSE(PlanFromJson(R"({"instances": 1, "replicas": {"0:0": [[0, 1]], "1:1": [[0, 1]]}})")
                   .ok());
  EXPECT_FALSE(PlanFromJson(R"({"instances": 1, "replicas": {"0:0": [[0, 0.5]]}})").ok());
}

TEST(PlanTest, ProtoRoundTrip) {
  PlacementPlan p = TwoByTwo();
  p.instance_info = {{"expert-1", "127.0.0.1:1"}, {"expert-2", "127.0.0.1:2"}};
  v1::PlacementPlan proto;
  PlanToProto(p, &proto);
  EXPECT_EQ(proto.epoch(), 7);
  ASSERT_EQ(proto.experts_size(), 4);
  EXPECT_EQ(proto.experts(1).replicas(1).instance_id(), "expert-2");
  absl::StatusOr<PlacementPlan> back = PlanFromProto(proto);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, p);

  proto.mutable_experts(2)->clear_replicas();
  EXPECT_FALSE(PlanFromProto(proto).ok());
  proto.set_layers(3);
  EXPECT_FALSE(PlanFromProto(proto).ok());
}

}  // namespace
}  // namespace moe::scheduler
