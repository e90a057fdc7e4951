// Rebalancing decisions (DESIGN.md section 5 "Zero-downtime rebalancing"): whether the scheduler
// should look for a new plan, given each layer's balancedness (EvaluatePlan's
// layer_balancedness, scheduler/placement/objective.h) of the committed plan. Pure
// functions of their inputs; the scheduler core calls them on its loop thread, tests call them
// with made-up numbers and times.
#ifndef MOE_SCHEDULER_CORE_REBALANCE_H_
#define MOE_SCHEDULER_CORE_REBALANCE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace moe::scheduler {

struct RebalanceConfig {
  bool enabled = true;
  // Rebalance when some layer's balancedness (mean / max instance load) is below this.
  double threshold = 0.8;
  // A new plan is published only if its worst layer beats the current plan's worst layer by
  // at least this much (a solver that cannot do better does not cause churn).
  double min_improvement = 0.05;
  // At least this long since the last committed plan (and the last attempt) before judging.
  absl::Duration min_interval = absl::Seconds(30);
  // Tokens the load window must hold before its balance means anything.
  int64_t min_tokens = 2000;
  // A pending plan not loaded by every instance within this long is abandoned.
  absl::Duration commit_timeout = absl::Seconds(60);
};

// The smallest entry (1.0 for an empty vector).
double WorstLayer(const std::vector<double>& balancedness);

struct RebalanceInputs {
  std::vector<double> balancedness;  // the committed plan's, under the window's load
  int64_t window_tokens = 0;
  absl::Time now;
  absl::Time last_change;  // when the last plan was committed or a rebalance was last tried
};

struct RebalanceDecision {
  bool rebalance = false;
  std::string why;  // human-readable, for the log
};

// Whether to look for a better plan now (the caller still compares the candidate's worst layer
// with the current one using `min_improvement` before publishing it).
RebalanceDecision DecideRebalance(const RebalanceInputs& in, const RebalanceConfig& config);

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_CORE_REBALANCE_H_
