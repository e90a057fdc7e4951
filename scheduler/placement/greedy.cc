#include "scheduler/placement/greedy.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "scheduler/placement/objective.h"

namespace moe::scheduler {
namespace {

absl::Status CheckProblem(const PlacementProblem& p) {
  if (p.layers <= 0 || p.experts <= 0) {
    return absl::InvalidArgumentError("placement needs layers > 0 and experts > 0");
  }
  if (p.instances <= 0) return absl::FailedPreconditionError("no expert instance to place on");
  if (!p.load.empty() && p.load.size() != static_cast<size_t>(p.layers) * p.experts) {
    return absl::InvalidArgumentError("load must have layers * experts entries");
  }
  int64_t total = 0;
  for (int i = 0; i < p.instances; ++i) total += p.Capacity(i);
  if (total < static_cast<int64_t>(p.layers) * p.experts) {
    return absl::FailedPreconditionError(
        absl::StrCat("capacity ", total, " copies < ", p.layers * p.experts, " experts"));
  }
  return absl::OkStatus();
}

PlacementPlan EmptyPlan(const PlacementProblem& p) {
  PlacementPlan plan;
  plan.instances = p.instances;
  plan.layers = p.layers;
  plan.experts = p.experts;
  plan.replicas.resize(static_cast<size_t>(p.layers) * p.experts);
  return plan;
}

void EqualShares(PlacementPlan& plan) {
  for (auto& rs : plan.replicas) {
    for (Replica& r : rs) r.share = 1.0 / static_cast<double>(rs.size());
    std::sort(rs.begin(), rs.end(),
              [](const Replica& a, const Replica& b) { return a.instance < b.instance; });
  }
}

// True when `rs` has a copy on instance i.
bool Holds(const std::vector<Replica>& rs, int i) {
  return std::any_of(rs.begin(), rs.end(), [i](const Replica& r) { return r.instance == i; });
}

// AffinityPlacement and StickyPlacement re-pack `target`'s copies: same shape as the problem.
absl::Status CheckTarget(const PlacementProblem& p, const PlacementPlan& target) {
  if (absl::Status s = CheckProblem(p); !s.ok()) return s;
  if (target.layers != p.layers || target.experts != p.experts ||
      target.instances != p.instances ||
      target.replicas.size() != static_cast<size_t>(p.layers) * p.experts) {
    return absl::InvalidArgumentError("target plan's shape differs from the problem");
  }
  return absl::OkStatus();
}

// The load one copy of (l, e) carries with `target`'s copy count and equal shares.
double CopyWeight(const PlacementProblem& p, const PlacementPlan& target, int l, int e) {
  return p.Load(l, e) / static_cast<double>(target.At(l, e).size());
}

// The busiest instance's speed-weighted load in layer l of `target`, with a relative 1e-9 of
// slack for rounding: the bound AffinityPlacement and StickyPlacement keep.
double LayerCap(const PlacementProblem& p, const PlacementPlan& target, int l) {
  return LayerMaxLoad(p, target, l) * (1 + 1e-9);
}

// Moves and swaps copies of layer l until its busiest instance is <= cap (speed-weighted):
// each step takes the busiest instance h and the move of one of its copies to an instance with
// a free slot, or its swap with a lighter copy of another instance, that gives the smallest
// max(load of h, load of the other). `load` and `on` (experts per instance) describe layer l
// with copy weights weight(e); `free` are the free slots. FAILED_PRECONDITION when no step
// lowers the maximum.
template <typename Weight>
absl::Status BringUnderCap(const PlacementProblem& p, int l, double cap, const Weight& weight,
                           PlacementPlan& plan, std::vector<int>& free, std::vector<double>& load,
                           std::vector<std::vector<int>>& on) {
  const int n = p.instances;
  auto holds = [&](int e, int i) { return Holds(plan.At(l, e), i); };
  const int max_steps = 4 * p.experts + 4 * n;
  for (int step = 0;; ++step) {
    int h = 0;
    for (int i = 1; i < n; ++i) {
      if (load[i] / p.Speed(i) > load[h] / p.Speed(h)) h = i;
    }
    const double lh = load[h] / p.Speed(h);
    if (lh <= cap) return absl::OkStatus();
    if (step >= max_steps) break;
    double best_peak = lh;
    int best_j = -1, best_u = -1, best_v = -1;  // v < 0: a move
    for (int u : on[h]) {
      const double wu = weight(u);
      for (int j = 0; j < n; ++j) {
        if (j == h || holds(u, j)) continue;
        if (free[j] > 0) {
          const double peak = std::max((load[h] - wu) / p.Speed(h), (load[j] + wu) / p.Speed(j));
          if (peak < best_peak - 1e-12) best_peak = peak, best_j = j, best_u = u, best_v = -1;
        }
        for (int v : on[j]) {
          const double wv = weight(v);
          if (wv >= wu || holds(v, h)) continue;
          const double peak = std::max((load[h] - wu + wv) / p.Speed(h),
                                       (load[j] - wv + wu) / p.Speed(j));
          if (peak < best_peak - 1e-12) best_peak = peak, best_j = j, best_u = u, best_v = v;
        }
      }
    }
    if (best_j < 0) break;
    auto relocate = [&](int e, int from, int to) {
      for (Replica& r : plan.At(l, e)) r.instance = r.instance == from ? to : r.instance;
      on[from].erase(std::find(on[from].begin(), on[from].end(), e));
      on[to].push_back(e);
      load[from] -= weight(e);
      load[to] += weight(e);
    };
    relocate(best_u, h, best_j);
    if (best_v >= 0) {
      relocate(best_v, best_j, h);
    } else {
      ++free[h];
      --free[best_j];
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat("layer ", l, " stays over the target's busiest instance"));
}

}  // namespace

absl::StatusOr<PlacementPlan> GreedyPlacement(const PlacementProblem& p,
                                              const ReplicationParams& params) {
  if (absl::Status s = CheckProblem(p); !s.ok()) return s;
  const int n = p.instances;
  const int min_r = std::clamp(params.min_replicas, 1, n);
  std::vector<int> free(n);
  int64_t total_cap = 0;
  for (int i = 0; i < n; ++i) total_cap += free[i] = p.Capacity(i);
  // Even per-layer share of the capacity, so early layers cannot starve later ones.
  const int64_t layer_cap = total_cap / p.layers;
  const int64_t wanted = std::max<int64_t>(
      static_cast<int64_t>(std::ceil(p.experts * std::max(params.replication, 1.0) - 1e-9)),
      static_cast<int64_t>(p.experts) * min_r);
  PlacementPlan plan = EmptyPlan(p);
  std::vector<double> total_load(n, 0.0);  // across layers: secondary tie-break
  for (int l = 0; l < p.layers; ++l) {
    // 1. Replica counts.
    const int64_t budget = std::min(wanted, std::max<int64_t>(layer_cap, p.experts));
    std::vector<int> count(p.experts, 1);
    int64_t used = p.experts;
    for (int r = 1; r < min_r && used < budget; ++r) {
      for (int e = 0; e < p.experts && used < budget; ++e, ++used) ++count[e];
    }
    while (used < budget) {
      int best = -1;
      double best_per = -1;
      for (int e = 0; e < p.experts; ++e) {
        if (count[e] >= n) continue;
        const double per = p.Load(l, e) / count[e];
        if (per > best_per) best_per = per, best = e;
      }
      if (best < 0) break;
      ++count[best];
      ++used;
    }
    // 2. Pack replicas heaviest first (stable: ties by expert index).
    std::vector<int> order(p.experts);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return p.Load(l, a) / count[a] > p.Load(l, b) / count[b];
    });
    std::vector<double> layer_load(n, 0.0);
    // Round by round: first every expert's first replica (so each expert surely gets one),
    // then second replicas, ...
    const int max_count = *std::max_element(count.begin(), count.end());
    for (int round = 0; round < max_count; ++round) {
      for (int e : order) {
        if (round >= count[e]) continue;
        const double w = p.Load(l, e) / count[e];
        auto& rs = plan.At(l, e);
        int best = -1;
        for (int i = 0; i < n; ++i) {
          if (free[i] <= 0) continue;
          if (Holds(rs, i)) continue;
          // Speed-weighted (p.Speed is 1 unless the problem says otherwise).
          const double li = layer_load[i] / p.Speed(i),
                       lb = best < 0 ? 0 : layer_load[best] / p.Speed(best);
          if (best < 0 || li < lb ||
              (li == lb && total_load[i] / p.Speed(i) < total_load[best] / p.Speed(best))) {
            best = i;
          }
        }
        if (best < 0) {
          if (round == 0) {
            return absl::ResourceExhaustedError(
                absl::StrCat("no instance has room for expert ", l, ":", e));
          }
          continue;  // an extra replica that does not fit: dropped
        }
        rs.push_back({best, 0.0});
        --free[best];
        layer_load[best] += w;
        total_load[best] += w;
      }
    }
  }
  EqualShares(plan);
  return plan;
}

namespace {

// Replica k < min(min_replicas, instances) of expert g = l * experts + e goes on instance
// (first(g) + k) % instances. FAILED_PRECONDITION when that exceeds an instance's capacity.
template <typename First>
absl::StatusOr<PlacementPlan> PlaceFromFirst(const PlacementProblem& p,
                                             const ReplicationParams& params, const char* name,
                                             First first) {
  if (absl::Status s = CheckProblem(p); !s.ok()) return s;
  const int n = p.instances;
  const int r = std::clamp(params.min_replicas, 1, n);
  PlacementPlan plan = EmptyPlan(p);
  std::vector<int> free(n);
  for (int i = 0; i < n; ++i) free[i] = p.Capacity(i);
  for (int l = 0; l < p.layers; ++l) {
    for (int e = 0; e < p.experts; ++e) {
      const int64_t g = static_cast<int64_t>(l) * p.experts + e;
      for (int k = 0; k < r; ++k) {
        const int i = (first(g) + k) % n;
        if (--free[i] < 0) {
          return absl::FailedPreconditionError(
              absl::StrCat(name, " placement exceeds instance ", i, "'s capacity"));
        }
        plan.At(l, e).push_back({i, 0.0});
      }
    }
  }
  EqualShares(plan);
  return plan;
}

}  // namespace

absl::StatusOr<PlacementPlan> RoundRobinPlacement(const PlacementProblem& p,
                                                  const ReplicationParams& params) {
  return PlaceFromFirst(p, params, "round-robin",
                        [&p](int64_t g) { return static_cast<int>(g % p.instances); });
}

absl::StatusOr<PlacementPlan> LayerBlockPlacement(const PlacementProblem& p,
                                                  const ReplicationParams& params) {
  const int64_t total = static_cast<int64_t>(p.layers) * p.experts;
  return PlaceFromFirst(p, params, "layer-block", [&p, total](int64_t g) {
    return static_cast<int>(g * p.instances / total);
  });
}

absl::StatusOr<PlacementPlan> RepairPlacement(const PlacementProblem& p,
                                              const PlacementPlan& survivors,
                                              const ReplicationParams& params) {
  if (absl::Status s = CheckProblem(p); !s.ok()) return s;
  if (survivors.layers != p.layers || survivors.experts != p.experts ||
      survivors.replicas.size() != static_cast<size_t>(p.layers) * p.experts) {
    return absl::InvalidArgumentError("survivor plan shape differs from the problem");
  }
  const int n = p.instances;
  const int min_r = std::clamp(params.min_replicas, 1, n);
  PlacementPlan plan = EmptyPlan(p);
  plan.replicas = survivors.replicas;
  std::vector<int> free(n);
  for (int i = 0; i < n; ++i) free[i] = p.Capacity(i);
  for (const auto& rs : plan.replicas) {
    for (const Replica& r : rs) {
      if (r.instance < 0 || r.instance >= n) {
        return absl::InvalidArgumentError("survivor replica on an unknown instance");
      }
      --free[r.instance];
    }
  }
  for (int l = 0; l < p.layers; ++l) {
    std::vector<double> layer_load(n, 0.0);
    for (int e = 0; e < p.experts; ++e) {
      const auto& rs = plan.At(l, e);
      for (const Replica& r : rs) layer_load[r.instance] += p.Load(l, e) / rs.size();
    }
    std::vector<int> order(p.experts);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return p.Load(l, a) > p.Load(l, b); });
    for (int e : order) {
      auto& rs = plan.At(l, e);
      while (static_cast<int>(rs.size()) < min_r) {
        int best = -1;
        for (int i = 0; i < n; ++i) {
          if (free[i] <= 0) continue;
          if (Holds(rs, i)) continue;
          if (best < 0 || layer_load[i] / p.Speed(i) < layer_load[best] / p.Speed(best)) best = i;
        }
        if (best < 0) {
          if (rs.empty()) {
            return absl::ResourceExhaustedError(
                absl::StrCat("no surviving instance has room for expert ", l, ":", e));
          }
          break;
        }
        rs.push_back({best, 0.0});
        --free[best];
        layer_load[best] += p.Load(l, e) / min_r;
      }
    }
  }
  EqualShares(plan);
  return plan;
}

absl::StatusOr<PlacementPlan> AffinityPlacement(const PlacementProblem& p,
                                                const PlacementPlan& target) {
  if (absl::Status s = CheckTarget(p, target); !s.ok()) return s;
  const int n = p.instances;
  const std::vector<std::vector<std::pair<int, double>>> pred = Predecessors(p);
  PlacementPlan plan = EmptyPlan(p);
  std::vector<int> free(n);
  for (int i = 0; i < n; ++i) free[i] = p.Capacity(i);
  std::vector<double> total_load(n, 0.0);
  std::vector<double> in(n);
  for (int l = 0; l < p.layers; ++l) {
    const double cap = LayerCap(p, target, l);
    struct Copy {
      int expert;
      double weight;
    };
    std::vector<Copy> copies;
    for (int e = 0; e < p.experts; ++e) {
      const int k = static_cast<int>(target.At(l, e).size());
      for (int c = 0; c < k; ++c) copies.push_back({e, CopyWeight(p, target, l, e)});
    }
    std::stable_sort(copies.begin(), copies.end(),
                     [](const Copy& a, const Copy& b) { return a.weight > b.weight; });
    std::vector<double> layer_load(n, 0.0);
    std::vector<std::vector<int>> on(n);
    // Slots for this layer: an even part of what is left (rounded up), so the affinity chains
    // of early layers cannot fill the instances that later layers need for balance.
    std::vector<int> allow(n);
    for (int i = 0; i < n; ++i) {
      allow[i] = std::min(free[i], (free[i] + p.layers - l - 1) / (p.layers - l));
    }
    for (const Copy& copy : copies) {
      const int e = copy.expert;
      auto& rs = plan.At(l, e);
      const size_t g = static_cast<size_t>(l) * p.experts + e;
      std::fill(in.begin(), in.end(), 0.0);
      double total_in = 0;
      for (const auto& [a, count] : pred[g]) {
        total_in += count;
        const auto& ra = plan.At(l - 1, a);
        for (const Replica& r : ra) in[r.instance] += count / static_cast<double>(ra.size());
      }
      const double quota = total_in / static_cast<double>(target.At(l, e).size());
      int best = -1, lightest = -1;
      double best_gain = -1;
      for (int i = 0; i < n; ++i) {
        if (allow[i] <= 0) continue;
        if (Holds(rs, i)) continue;
        const double li = (layer_load[i] + copy.weight) / p.Speed(i);
        if (lightest < 0 || li < (layer_load[lightest] + copy.weight) / p.Speed(lightest)) {
          lightest = i;
        }
        if (li > cap) continue;
        const double gain = std::min(in[i], quota);
        if (best < 0 || gain > best_gain ||
            (gain == best_gain &&
             (li < (layer_load[best] + copy.weight) / p.Speed(best) ||
              (li == (layer_load[best] + copy.weight) / p.Speed(best) &&
               total_load[i] / p.Speed(i) < total_load[best] / p.Speed(best))))) {
          best = i;
          best_gain = gain;
        }
      }
      if (best < 0) best = lightest;  // over the bound: BringUnderCap below repairs it
      if (best < 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("no room for a copy of expert ", l, ":", e));
      }
      rs.push_back({best, 0.0});
      --allow[best];
      layer_load[best] += copy.weight;
      on[best].push_back(e);
    }
    auto weight = [&](int e) { return CopyWeight(p, target, l, e); };
    if (absl::Status st = BringUnderCap(p, l, cap, weight, plan, allow, layer_load, on);
        !st.ok()) {
      return st;
    }
    for (int i = 0; i < n; ++i) {
      free[i] -= static_cast<int>(on[i].size());
      total_load[i] += layer_load[i];
    }
  }
  EqualShares(plan);
  return plan;
}

absl::StatusOr<PlacementPlan> StickyPlacement(const PlacementProblem& p,
                                              const PlacementPlan& target) {
  if (absl::Status s = CheckTarget(p, target); !s.ok()) return s;
  const size_t groups = static_cast<size_t>(p.layers) * p.experts;
  if (!p.current.has_value() || p.current->layers != p.layers ||
      p.current->experts != p.experts || p.current->replicas.size() != groups) {
    return absl::FailedPreconditionError("no current plan of the problem's shape");
  }
  const int n = p.instances;
  PlacementPlan plan = EmptyPlan(p);
  std::vector<int> free(n);
  for (int i = 0; i < n; ++i) free[i] = p.Capacity(i);
  // Keep what stays: current copies up to the target count.
  for (size_t g = 0; g < groups; ++g) {
    const size_t want = target.replicas[g].size();
    for (const Replica& r : p.current->replicas[g]) {
      if (plan.replicas[g].size() >= want) break;
      if (r.instance < 0 || r.instance >= n || free[r.instance] <= 0) continue;
      if (Holds(plan.replicas[g], r.instance)) continue;
      plan.replicas[g].push_back({r.instance, 0.0});
      --free[r.instance];
    }
  }
  for (int l = 0; l < p.layers; ++l) {
    auto weight = [&](int e) { return CopyWeight(p, target, l, e); };
    std::vector<double> load(n, 0.0);
    std::vector<std::vector<int>> on(n);  // experts of this layer on each instance
    for (int e = 0; e < p.experts; ++e) {
      for (const Replica& r : plan.At(l, e)) {
        load[r.instance] += weight(e);
        on[r.instance].push_back(e);
      }
    }
    const double cap = LayerCap(p, target, l);
    // Missing copies, heaviest first, on the least-loaded instance with room.
    std::vector<int> order(p.experts);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return weight(a) > weight(b); });
    for (int e : order) {
      auto& rs = plan.At(l, e);
      while (rs.size() < target.At(l, e).size()) {
        int best = -1;
        for (int i = 0; i < n; ++i) {
          if (free[i] <= 0 || Holds(rs, i)) continue;
          if (best < 0 || (load[i] + weight(e)) / p.Speed(i) <
                              (load[best] + weight(e)) / p.Speed(best)) {
            best = i;
          }
        }
        if (best < 0) {
          return absl::FailedPreconditionError(
              absl::StrCat("no room for a copy of expert ", l, ":", e));
        }
        rs.push_back({best, 0.0});
        --free[best];
        load[best] += weight(e);
        on[best].push_back(e);
      }
    }
    if (absl::Status st = BringUnderCap(p, l, cap, weight, plan, free, load, on); !st.ok()) {
      return st;
    }
  }
  EqualShares(plan);
  return plan;
}

std::vector<std::vector<double>> InstanceLoads(const PlacementProblem& problem,
                                               const PlacementPlan& plan) {
  std::vector<std::vector<double>> out(plan.layers, std::vector<double>(plan.instances, 0.0));
  for (int l = 0; l < plan.layers; ++l) {
    for (int e = 0; e < plan.experts; ++e) {
      for (const Replica& r : plan.At(l, e)) out[l][r.instance] += problem.Load(l, e) * r.share;
    }
  }
  return out;
}

}  // namespace moe::scheduler
