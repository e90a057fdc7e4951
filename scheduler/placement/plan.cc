#include "scheduler/placement/plan.h"

#include <cmath>
#include <exception>
#include <map>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace moe::scheduler {

int PlacementPlan::ReplicasOn(int instance) const {
  int n = 0;
  for (const auto& rs : replicas) {
    for (const Replica& r : rs) n += r.instance == instance ? 1 : 0;
  }
  return n;
}

absl::Status ValidatePlan(const PlacementPlan& plan) {
  if (plan.layers < 0 || plan.experts < 0 || plan.instances < 0) {
    return absl::InvalidArgumentError("negative plan shape");
  }
  if (plan.replicas.size() != static_cast<size_t>(plan.layers) * plan.experts) {
    return absl::InvalidArgumentError(absl::StrCat("plan has ", plan.replicas.size(),
                                                   " entries, want ", plan.layers, "x",
                                                   plan.experts));
  }
  if (!plan.instance_info.empty() && plan.instance_info.size() != size_t(plan.instances)) {
    return absl::InvalidArgumentError("instance_info size != instances");
  }
  for (int l = 0; l < plan.layers; ++l) {
    for (int e = 0; e < plan.experts; ++e) {
      const auto& rs = plan.At(l, e);
      const std::string where = absl::StrCat(l, ":", e);
      if (rs.empty()) return absl::InvalidArgumentError(absl::StrCat(where, " has no replica"));
      double sum = 0;
      std::vector<bool> seen(plan.instances, false);
      for (const Replica& r : rs) {
        if (r.instance < 0 || r.instance >= plan.instances) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": instance ", r.instance, " out of range"));
        }
        if (seen[r.instance]) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": two replicas on instance ", r.instance));
        }
        seen[r.instance] = true;
        if (!(r.share > 0.0) || r.share > 1.0 + 1e-9) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": share ", r.share));
        }
        sum += r.share;
      }
      if (std::fabs(sum - 1.0) > 1e-6) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": shares sum to ", sum));
      }
    }
  }
  return absl::OkStatus();
}

std::string PlanToJson(const PlacementPlan& plan) {
  nlohmann::ordered_json j;
  j["instances"] = plan.instances;
  j["epoch"] = plan.epoch;
  j["layers"] = plan.layers;
  j["experts"] = plan.experts;
  nlohmann::ordered_json reps = nlohmann::ordered_json::object();
  for (int l = 0; l < plan.layers; ++l) {
    for (int e = 0; e < plan.experts; ++e) {
      nlohmann::ordered_json list = nlohmann::ordered_json::array();
      for (const Replica& r : plan.At(l, e)) list.push_back({r.instance, r.share});
      reps[absl::StrCat(l, ":", e)] = std::move(list);
    }
  }
  j["replicas"] = std::move(reps);
  return j.dump();
}

namespace {

absl::StatusOr<PlacementPlan> ParsePlanJson(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("instances") || !j.contains("replicas") ||
      !j["instances"].is_number_integer() || !j["replicas"].is_object()) {
    return absl::InvalidArgumentError("plan JSON needs integer \"instances\" and object \"replicas\"");
  }
  PlacementPlan plan;
  plan.instances = j["instances"].get<int>();
  if (j.contains("epoch")) plan.epoch = j["epoch"].get<int64_t>();
  std::map<std::pair<int, int>, std::vector<Replica>> entries;
  int max_l = -1, max_e = -1;
  for (const auto& [key, value] : j["replicas"].items()) {
    std::vector<std::string> parts = absl::StrSplit(key, ':');
    int l = 0, e = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &l) || !absl::SimpleAtoi(parts[1], &e) ||
        l < 0 || e < 0) {
      return absl::InvalidArgumentError(absl::StrCat("bad replica key \"", key, "\""));
    }
    if (!value.is_array()) return absl::InvalidArgumentError(key + ": not an array");
    std::vector<Replica> rs;
    for (const auto& pair : value) {
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_integer() ||
          !pair[1].is_number()) {
        return absl::InvalidArgumentError(key + ": replicas are [instance, share] pairs");
      }
      rs.push_back({pair[0].get<int>(), pair[1].get<double>()});
    }
    max_l = std::max(max_l, l);
    max_e = std::max(max_e, e);
    entries[{l, e}] = std::move(rs);
  }
  plan.layers = j.contains("layers") ? j["layers"].get<int>() : max_l + 1;
  plan.experts = j.contains("experts") ? j["experts"].get<int>() : max_e + 1;
  if (plan.layers < 0 || plan.experts < 0 || max_l >= plan.layers || max_e >= plan.experts) {
    return absl::InvalidArgumentError("replica key outside layers x experts");
  }
  plan.replicas.resize(static_cast<size_t>(plan.layers) * plan.experts);
  for (auto& [le, rs] : entries) plan.At(le.first, le.second) = std::move(rs);
  if (absl::Status s = ValidatePlan(plan); !s.ok()) return s;
  return plan;
}

}  // namespace

absl::StatusOr<PlacementPlan> PlanFromJson(const std::string& json) {
  try {
    return ParsePlanJson(nlohmann::json::parse(json));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("plan JSON: ", e.what()));
  }
}

}  // namespace moe::scheduler
