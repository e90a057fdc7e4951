#include "scheduler/core/rebalance.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace moe::scheduler {

double WorstLayer(const std::vector<double>& balancedness) {
  double worst = 1.0;
  for (double b : balancedness) worst = std::min(worst, b);
  return worst;
}

RebalanceDecision DecideRebalance(const RebalanceInputs& in, const RebalanceConfig& config) {
  if (!config.enabled) return {false, "rebalancing is off"};
  if (in.now - in.last_change < config.min_interval) {
    return {false, "within the minimum interval since the last plan"};
  }
  if (in.window_tokens < config.min_tokens) {
    return {false, absl::StrCat("only ", in.window_tokens, " tokens in the window (need ",
                                config.min_tokens, ")")};
  }
  const double worst = WorstLayer(in.balancedness);
  if (worst >= config.threshold) {
    return {false, absl::StrFormat("balanced: worst layer %.3f >= %.3f", worst, config.threshold)};
  }
  const auto it = std::min_element(in.balancedness.begin(), in.balancedness.end());
  return {true,
          absl::StrFormat("layer %d balancedness %.3f < %.3f",
                          static_cast<int>(it - in.balancedness.begin()), worst, config.threshold)};
}

}  // namespace moe::scheduler
