// DecideScale: how many expert instances the pool needs, from the measured load, each live
// instance's measured throughput, the current count and the time of the last scale action.
// A pure function (no clock, no I/O): the ScaleController calls it every interval, tests call it
// with a FakeClock's time.
//
// Units: "tokens" here are expert-token rows, the unit both sides count: a token routed to k
// experts in each of L MoE layers is L * k rows. The load window (attention workers' load
// reports) sums rows per (layer, expert); an expert service's tokens_per_second is the rows it
// computed per second over its last heartbeat interval.
//
// Model: an instance's capacity is max(configured capacity, measured tokens/s). What an instance
// served is a lower bound of what it can serve (a pool that is not saturated serves exactly the
// demand), so the configured capacity is the prior and a measurement above it raises it.
// Utilisation = demand / (mean instance capacity * current count). Above `high_water` the pool
// grows to the count that brings utilisation to `target` (at most `max_step_up` at once); below
// `low_water` it shrinks towards that count (at most `max_step_down` at once), never to a count
// whose predicted utilisation would exceed `target`. low_water < target < high_water, so a
// decision never causes the opposite decision at the same load (no flapping). Cool-downs count
// from the last scale action in either direction: growing needs `up_cooldown`, shrinking
// `down_cooldown` (usually longer). The bounds [min, max] are restored without cool-down.
#ifndef MOE_SCHEDULER_SCALING_DECIDE_SCALE_H_
#define MOE_SCHEDULER_SCALING_DECIDE_SCALE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace moe::scheduler {

struct ScaleParams {
  int min_instances = 1;  // >= 1
  int max_instances = 1;  // >= min_instances
  double target_utilisation = 0.6;
  double high_water = 0.8;  // grow when utilisation > high_water
  double low_water = 0.3;   // shrink when utilisation < low_water
  absl::Duration up_cooldown = absl::Seconds(30);
  absl::Duration down_cooldown = absl::Seconds(120);
  int max_step_up = 2;    // instances added by one decision (>= 1)
  int max_step_down = 1;  // instances removed by one decision (>= 1)
  // Expert-token rows per second one instance serves at full load (the configured fallback for
  // instances that measured less or nothing yet). > 0.
  double instance_capacity_tps = 1000;
};

// INVALID_ARGUMENT unless 1 <= min <= max, 0 < low < target < high, steps >= 1, capacity > 0,
// cool-downs >= 0.
absl::Status ValidateScaleParams(const ScaleParams& p);

struct ScaleInput {
  double demand_tps = 0;  // rows per second routed over the load window
  // tokens_per_second each live (registered) expert instance reported; instances still starting
  // are counted in `current` but have no entry here.
  std::vector<double> measured_tps;
  int current = 0;  // instances the provider runs (registered or starting)
  absl::Time last_action = absl::InfinitePast();  // last scale action in either direction
};

enum class ScaleReason {
  kSteady,           // utilisation within [low_water, high_water]
  kBelowMin,         // current < min: grow to min (no cool-down)
  kAboveMax,         // current > max: shrink to max (no cool-down)
  kHighLoad,         // grow
  kLowLoad,          // shrink
  kUpCoolingDown,    // would grow, but the up cool-down has not passed
  kDownCoolingDown,  // would shrink, but the down cool-down has not passed
  kAtMax,            // would grow, already at max
  kAtMin,            // would shrink, already at min
  kNeeded,           // under low water, but one fewer would exceed the target utilisation
};

const char* ScaleReasonName(ScaleReason reason);

struct ScaleDecision {
  int desired = 0;
  ScaleReason reason = ScaleReason::kSteady;
  double utilisation = 0;        // demand / (instance_capacity * current); 0 when current == 0
  double instance_capacity = 0;  // mean per-instance capacity used, rows/s
  std::string Describe() const;  // for logs
};

ScaleDecision DecideScale(const ScaleInput& input, absl::Time now, const ScaleParams& params);

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_SCALING_DECIDE_SCALE_H_
