#include "scheduler/scaling/decide_scale.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace moe::scheduler {

absl::Status ValidateScaleParams(const ScaleParams& p) {
  if (p.min_instances < 1 || p.max_instances < p.min_instances) {
    return absl::InvalidArgumentError("need 1 <= min instances <= max instances");
  }
  if (!(p.low_water > 0 && p.low_water < p.target_utilisation &&
        p.target_utilisation < p.high_water)) {
    return absl::InvalidArgumentError(
        "need 0 < low water < target utilisation < high water (hysteresis)");
  }
  if (p.max_step_up < 1 || p.max_step_down < 1) {
    return absl::InvalidArgumentError("scale steps must be >= 1");
  }
  if (!(p.instance_capacity_tps > 0)) {
    return absl::InvalidArgumentError("instance capacity (tokens/s) must be > 0");
  }
  if (p.up_cooldown < absl::ZeroDuration() || p.down_cooldown < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("cool-downs must be >= 0");
  }
  return absl::OkStatus();
}

const char* ScaleReasonName(ScaleReason reason) {
  switch (reason) {
    case ScaleReason::kSteady:
      return "steady";
    case ScaleReason::kBelowMin:
      return "below-min";
    case ScaleReason::kAboveMax:
      return "above-max";
    case ScaleReason::kHighLoad:
      return "high-load";
    case ScaleReason::kLowLoad:
      return "low-load";
    case ScaleReason::kUpCoolingDown:
      return "up-cooling-down";
    case ScaleReason::kDownCoolingDown:
      return "down-cooling-down";
    case ScaleReason::kAtMax:
      return "at-max";
    case ScaleReason::kAtMin:
      return "at-min";
    case ScaleReason::kNeeded:
      return "needed";
  }
  return "?";
}

std::string ScaleDecision::Describe() const {
  return absl::StrFormat("desired %d (%s, utilisation %.2f, %.0f tokens/s per instance)", desired,
                         ScaleReasonName(reason), utilisation, instance_capacity);
}

ScaleDecision DecideScale(const ScaleInput& in, absl::Time now, const ScaleParams& p) {
  ScaleDecision d;
  d.desired = in.current;
  // Mean capacity of the registered instances; the configured value for a pool still starting.
  double sum = 0;
  for (double m : in.measured_tps) sum += std::max(p.instance_capacity_tps, m);
  d.instance_capacity =
      in.measured_tps.empty() ? p.instance_capacity_tps : sum / in.measured_tps.size();
  const double demand = std::max(0.0, in.demand_tps);
  if (in.current > 0) d.utilisation = demand / (d.instance_capacity * in.current);

  if (in.current < p.min_instances) {
    d.desired = p.min_instances;
    d.reason = ScaleReason::kBelowMin;
    return d;
  }
  if (in.current > p.max_instances) {
    d.desired = p.max_instances;
    d.reason = ScaleReason::kAboveMax;
    return d;
  }
  // The count at which utilisation would be the target.
  const double ideal = demand / (d.instance_capacity * p.target_utilisation);
  const int needed = static_cast<int>(std::min<double>(std::ceil(ideal), p.max_instances + 1.0));
  const absl::Duration since = now - in.last_action;
  if (d.utilisation > p.high_water) {
    const int want =
        std::min({p.max_instances, in.current + p.max_step_up, std::max(in.current + 1, needed)});
    if (want <= in.current) {
      d.reason = ScaleReason::kAtMax;
    } else if (since < p.up_cooldown) {
      d.reason = ScaleReason::kUpCoolingDown;
    } else {
      d.desired = want;
      d.reason = ScaleReason::kHighLoad;
    }
    return d;
  }
  if (d.utilisation < p.low_water) {
    if (in.current <= p.min_instances) {
      d.reason = ScaleReason::kAtMin;
      return d;
    }
    // Never below what keeps the predicted utilisation at or under the target.
    const int want = std::max({p.min_instances, in.current - p.max_step_down, needed});
    if (want >= in.current) {
      d.reason = ScaleReason::kNeeded;
    } else if (since < p.down_cooldown) {
      d.reason = ScaleReason::kDownCoolingDown;
    } else {
      d.desired = want;
      d.reason = ScaleReason::kLowLoad;
    }
    return d;
  }
  d.reason = ScaleReason::kSteady;
  return d;
}

}  // namespace moe::scheduler
