#include "model/arch/router.h"

#include <cmath>

#include <gtest/gtest.h>

namespace moe::model {
namespace {

TEST(Router, SoftmaxTopKRenormalised) {
  RouterSpec spec{RouterScoring::kSoftmax, 4, 2, true, 1.0f, 1, 1};
  ASSERT_TRUE(ValidateRouterSpec(spec).ok());
  float logits[] = {1.0f, 3.0f, 2.0f, 0.0f};
  Routing r;
  Route(spec, logits, 1, {}, &r);
  EXPECT_EQ(r.experts[0], 1);
  EXPECT_EQ(r.experts[1], 2);
  // Renormalised over the two chosen: softmax of (3, 2).
  EXPECT_NEAR(r.weights[0], 1.0 / (1.0 + std::exp(-1.0)), 1e-6);
  EXPECT_NEAR(r.weights[0] + r.weights[1], 1.0, 1e-6);
}

TEST(Router, SoftmaxWithoutRenormKeepsFullSoftmaxMass) {
  RouterSpec spec{RouterScoring::kSoftmax, 4, 2, false, 1.0f, 1, 1};
  float logits[] = {1.0f, 3.0f, 2.0f, 0.0f};
  Routing r;
  Route(spec, logits, 1, {}, &r);
  double z = std::exp(1.0) + std::exp(3.0) + std::exp(2.0) + 1.0;
  EXPECT_NEAR(r.weights[0], std::exp(3.0) / z, 1e-6);
  EXPECT_NEAR(r.weights[1], std::exp(2.0) / z, 1e-6);
}

TEST(Router, TiesGoToLowerExpertId) {
  RouterSpec spec{RouterScoring::kSoftmax, 4, 2, true, 1.0f, 1, 1};
  float logits[] = {0.5f, 0.5f, 0.5f, 0.5f, /*token 2*/ 0.0f, 1.0f, 1.0f, 1.0f};
  Routing r;
  Route(spec, logits, 2, {}, &r);
  EXPECT_EQ(r.experts[0], 0);
  EXPECT_EQ(r.experts[1], 1);
  EXPECT_EQ(r.experts[2], 1);
  EXPECT_EQ(r.experts[3], 2);
  EXPECT_NEAR(r.weights[2], 0.5, 1e-6);
}

TEST(Router, SigmoidBiasSelectsButDoesNotWeigh) {
  // DeepSeek-V3: bias changes which experts win, weights come from the unbiased sigmoid.
  RouterSpec spec{RouterScoring::kSigmoid, 4, 2, true, 2.5f, 1, 1};
  float logits[] = {2.0f, 1.0f, 0.0f, -1.0f};
  float bias[] = {0.0f, 0.0f, 0.0f, 10.0f};
  Routing r;
  Route(spec, logits, 1, bias, &r);
  EXPECT_EQ(r.experts[0], 3);
  EXPECT_EQ(r.experts[1], 0);
  double s3 = 1 / (1 + std::exp(1.0)), s0 = 1 / (1 + std::exp(-2.0));
  EXPECT_NEAR(r.weights[0], 2.5 * s3 / (s3 + s0), 1e-6);
  EXPECT_NEAR(r.weights[1], 2.5 * s0 / (s3 + s0), 1e-6);
}

TEST(Router, GroupLimitedKeepsBestGroups) {
  // 8 experts in 4 groups of 2, keep 1 group: group 2 (experts 4, 5) has the best top-2 sum
  // even though expert 0 alone is the single best score.
  RouterSpec spec{RouterScoring::kSigmoid, 8, 2, true, 1.0f, 4, 1};
  ASSERT_TRUE(ValidateRouterSpec(spec).ok());
  float logits[] = {5.0f, -5.0f, 0.0f, 0.0f, 3.0f, 3.0f, -1.0f, -1.0f};
  Routing r;
  Route(spec, logits, 1, {}, &r);
  EXPECT_EQ(r.experts[0], 4);
  EXPECT_EQ(r.experts[1], 5);
}

TEST(Router, ValidateRejectsBadSpecs) {
  EXPECT_FALSE(ValidateRouterSpec({RouterScoring::kSoftmax, 4, 5, true, 1, 1, 1}).ok());
  EXPECT_FALSE(ValidateRouterSpec({RouterScoring::kSoftmax, 4, 0, true, 1, 1, 1}).ok());
  EXPECT_FALSE(ValidateRouterSpec({RouterScoring::kSigmoid, 8, 2, true, 1, 3, 1}).ok());
  EXPECT_FALSE(ValidateRouterSpec({RouterScoring::kSigmoid, 8, 4, true, 1, 4, 1}).ok());
}

}  // namespace
}  // namespace moe::model
