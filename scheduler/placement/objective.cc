#include "scheduler/placement/objective.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace moe::scheduler {

double ResolvedMu(const PlacementProblem& p) {
  if (p.weights.mu >= 0) return p.weights.mu;
  const int64_t n = static_cast<int64_t>(p.layers) * p.experts;
  if (n <= 0) return 0;
  double total = 0;
  for (int l = 0; l < p.layers; ++l) {
    for (int e = 0; e < p.experts; ++e) total += p.Load(l, e);
  }
  return total / static_cast<double>(n);
}

std::vector<std::vector<std::pair<int, double>>> Predecessors(const PlacementProblem& p) {
  std::vector<std::vector<std::pair<int, double>>> pred(static_cast<size_t>(p.layers) *
                                                        std::max(0, p.experts));
  for (const CoActivation& c : p.coact) {
    if (c.layer < 0 || c.layer + 1 >= p.layers || c.a < 0 || c.a >= p.experts || c.b < 0 ||
        c.b >= p.experts || c.count <= 0) {
      continue;
    }
    auto& list = pred[static_cast<size_t>(c.layer + 1) * p.experts + c.b];
    auto it = std::find_if(list.begin(), list.end(), [&](const auto& x) { return x.first == c.a; });
    if (it == list.end()) {
      list.push_back({c.a, static_cast<double>(c.count)});
    } else {
      it->second += static_cast<double>(c.count);
    }
  }
  return pred;
}

double LayerMaxLoad(const PlacementProblem& p, const PlacementPlan& plan, int layer) {
  std::vector<double> load(plan.instances, 0.0);
  for (int e = 0; e < plan.experts; ++e) {
    for (const Replica& r : plan.At(layer, e)) load[r.instance] += p.Load(layer, e) * r.share;
  }
  double worst = 0;
  for (int i = 0; i < plan.instances; ++i) worst = std::max(worst, load[i] / p.Speed(i));
  return worst;
}

PlanObjective EvaluatePlan(const PlacementProblem& p, const PlacementPlan& plan) {
  PlanObjective o;
  const int n = plan.instances;
  double live_speed = 0;
  for (int i = 0; i < n; ++i) live_speed += p.Live(i) ? p.Speed(i) : 0.0;
  if (live_speed <= 0) live_speed = 1;
  for (int l = 0; l < plan.layers; ++l) {
    double total = 0;
    for (int e = 0; e < plan.experts; ++e) total += p.Load(l, e);
    const double worst = LayerMaxLoad(p, plan, l);
    const double mean = total / live_speed;
    o.layer_max_load.push_back(worst);
    o.layer_mean_load.push_back(mean);
    o.layer_balancedness.push_back(worst > 0 ? mean / worst : 1.0);
    o.load_term += worst;
    o.mean_load += mean;
  }
  if (plan.layers > 0) {
    o.max_load = o.load_term / plan.layers;
    o.mean_load /= plan.layers;
    o.balancedness = o.max_load > 0 ? o.mean_load / o.max_load : 1.0;
    o.min_balancedness =
        *std::min_element(o.layer_balancedness.begin(), o.layer_balancedness.end());
  }
  // Cross-instance transitions, per expert b of layer l + 1 (see the header): its known inflow
  // C_b = sum of its co-activation counts arrives on instance i as in_b(i) = sum over a of
  // count(a, b) * share(l, a, i); the replica of b on i takes min(in_b(i), share(b, i) * C_b)
  // of it locally; the rest changes instance.
  std::vector<std::vector<std::pair<int, double>>> inflow = Predecessors(p);
  if (inflow.size() != plan.replicas.size()) inflow.clear();  // not the problem's shape
  std::vector<double> in(n, 0.0);
  for (size_t g = 0; g < inflow.size(); ++g) {
    if (inflow[g].empty()) continue;
    const int prev = static_cast<int>(g / plan.experts) - 1;
    double total = 0;
    for (const auto& [a, count] : inflow[g]) {
      total += count;
      for (const Replica& r : plan.At(prev, a)) in[r.instance] += count * r.share;
    }
    double local = 0;
    for (const Replica& r : plan.replicas[g]) local += std::min(in[r.instance], r.share * total);
    for (const auto& [a, count] : inflow[g]) {
      for (const Replica& r : plan.At(prev, a)) in[r.instance] = 0;
    }
    o.transitions += total;
    o.cross_transitions += std::max(0.0, total - local);
  }
  double tokens = 0;
  for (int e = 0; e < plan.experts && plan.layers > 0; ++e) tokens += p.Load(0, e);
  tokens /= std::max(1, p.top_k);
  o.cross_per_token = tokens > 0 ? o.cross_transitions / tokens : 0;
  // Moves.
  const bool same_shape = p.current.has_value() && p.current->layers == plan.layers &&
                          p.current->experts == plan.experts &&
                          p.current->replicas.size() == plan.replicas.size();
  for (size_t g = 0; g < plan.replicas.size(); ++g) {
    for (const Replica& r : plan.replicas[g]) {
      ++o.copies;
      if (!p.current.has_value()) continue;
      bool had = false;
      if (same_shape) {
        for (const Replica& c : p.current->replicas[g]) had |= c.instance == r.instance;
      }
      if (!had) ++o.copies_moved;
    }
  }
  o.bytes_moved = o.copies_moved * p.bytes_per_expert;
  o.lambda = p.weights.lambda;
  o.mu = ResolvedMu(p);
  o.cost =
      o.load_term + o.lambda * o.cross_transitions + o.mu * static_cast<double>(o.copies_moved);
  return o;
}

absl::Status CheckCapacity(const PlacementProblem& p, const PlacementPlan& plan) {
  std::vector<int> used(plan.instances, 0);
  for (const auto& rs : plan.replicas) {
    for (const Replica& r : rs) {
      if (r.instance >= 0 && r.instance < plan.instances) ++used[r.instance];
    }
  }
  for (int i = 0; i < plan.instances; ++i) {
    if (used[i] > p.Capacity(i)) {
      return absl::FailedPreconditionError(
          absl::StrCat("instance ", i, " holds ", used[i], " copies, capacity ", p.Capacity(i)));
    }
  }
  return absl::OkStatus();
}

std::string ObjectiveSummary(const PlanObjective& o) {
  return absl::StrFormat(
      "max_load=%.1f mean_load=%.1f balancedness=%.3f cross_per_token=%.3f copies_moved=%d "
      "bytes_moved=%d cost=%.1f",
      o.max_load, o.mean_load, o.balancedness, o.cross_per_token, o.copies_moved, o.bytes_moved,
      o.cost);
}

}  // namespace moe::scheduler
