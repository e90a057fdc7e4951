#include "scheduler/core/rebalance.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace moe::scheduler {

std::vector<double> LayerBalancedness(const PlacementProblem& problem, const PlacementPlan& plan,
                                      const std::vector<double>& speeds) {
  std::vector<double> out(static_cast<size_t>(problem.layers), 1.0);
  if (plan.instances <= 0 || plan.layers != problem.layers || plan.experts != problem.experts) {
    return out;
  }
  std::vector<double> load(static_cast<size_t>(plan.instances));
  for (int l = 0; l < problem.layers; ++l) {
    std::fill(load.begin(), load.end(), 0.0);
    for (int e = 0; e < problem.experts; ++e) {
      const double tokens = problem.Load(l, e);
      for (const Replica& r : plan.At(l, e)) {
        if (r.instance < 0 || r.instance >= plan.instances) continue;
        load[r.instance] += tokens * r.share;
      }
    }
    double sum = 0, max = 0;
    for (int i = 0; i < plan.instances; ++i) {
      const double speed = i < static_cast<int>(speeds.size()) && speeds[i] > 0 ? speeds[i] : 1.0;
      const double weighted = load[i] / speed;
      sum += weighted;
      max = std::max(max, weighted);
    }
    if (max > 0) out[l] = (sum / plan.instances) / max;
  }
  return out;
}

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
