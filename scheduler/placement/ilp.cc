#include "scheduler/placement/ilp.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "scheduler/placement/objective.h"

namespace moe::scheduler {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

uint64_t Mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Everything the layer and monolithic models share, computed once.
struct Context {
  const PlacementProblem& p;
  const IlpParams& params;
  int n = 0;
  double lambda = 0, mu = 0, eps = 0, delta = 0;
  int min_r = 1;
  std::vector<int64_t> budget;   // per layer: copies in the start plan
  std::vector<double> load_cap;  // per layer: bound on M_l (inf = none)
  // Merged co-activation: succ[g] = (b, count) for g = l * E + a; pred[g] = (a, count) for
  // g = (l + 1) * E + b.
  std::vector<std::vector<std::pair<int, double>>> succ, pred;
  bool current_same_shape = false;

  Context(const PlacementProblem& problem, const IlpParams& ilp) : p(problem), params(ilp) {}

  bool InCurrent(size_t g, int i) const {
    if (!current_same_shape) return false;
    for (const Replica& r : p.current->replicas[g]) {
      if (r.instance == i) return true;
    }
    return false;
  }
  double MoveCost(size_t g, int i) const {
    return (p.current.has_value() && !InCurrent(g, i) ? mu : 0.0) + eps;
  }
};

void FinishShares(std::vector<Replica>& rs, double delta) {
  double sum = 0;
  for (Replica& r : rs) sum += r.share = std::max(r.share, delta);
  for (Replica& r : rs) r.share /= sum;
  std::sort(rs.begin(), rs.end(),
            [](const Replica& a, const Replica& b) { return a.instance < b.instance; });
}

// ---- Decomposed: one layer with its neighbours fixed. ----

// Returns true when layer l of `plan` was replaced by a better one; `used` = copies per
// instance over all layers (kept in step).
// With `fix_multi`, replicated experts keep their instances (their shares stay free): the MIP is
// then an assignment of the single-copy experts with load rows, which CBC solves at the root in
// tens of milliseconds even at 256 x 256; without it every copy may move (slower, weaker LP).
absl::StatusOr<bool> SolveLayer(const Context& c, int l, int pass, bool fix_multi, double seconds,
                                PlacementPlan& plan, std::vector<int>& used) {
  const PlacementProblem& p = c.p;
  const int n = c.n, experts = p.experts;
  std::vector<int> in_layer(n, 0);
  std::vector<double> layer_load(n, 0.0);
  for (int e = 0; e < experts; ++e) {
    for (const Replica& r : plan.At(l, e)) {
      ++in_layer[r.instance];
      layer_load[r.instance] += p.Load(l, e) * r.share;
    }
  }
  std::vector<int> avail(n);
  for (int i = 0; i < n; ++i) avail[i] = p.Capacity(i) - (used[i] - in_layer[i]);
  // Inflow of each expert of this layer from layer l - 1 (fixed): in[e * n + i] tokens of e's
  // co-activations whose predecessor ran on i (by share), of inflow_total[e] in all.
  std::vector<double> in(static_cast<size_t>(experts) * n, 0.0), inflow_total(experts, 0.0);
  // Affinity for choosing candidates: w[e * n + i] = in[e * n + i] plus the tokens of e's
  // co-activations whose successor has a copy on i.
  std::vector<double> w(static_cast<size_t>(experts) * n, 0.0);
  for (int e = 0; e < experts; ++e) {
    double* ie = &in[static_cast<size_t>(e) * n];
    double* we = &w[static_cast<size_t>(e) * n];
    const size_t g = static_cast<size_t>(l) * experts + e;
    if (l > 0) {
      for (const auto& [a, count] : c.pred[g]) {
        inflow_total[e] += count;
        for (const Replica& r : plan.At(l - 1, a)) ie[r.instance] += count * r.share;
      }
    }
    for (int i = 0; i < n; ++i) we[i] = ie[i];
    if (l + 1 < p.layers) {
      for (const auto& [b, count] : c.succ[g]) {
        for (const Replica& r : plan.At(l + 1, b)) we[r.instance] += count;
      }
    }
  }
  // Candidates.
  const bool all = static_cast<int64_t>(experts) * n <= c.params.all_candidates_below;
  const int k_aff = c.params.affinity_candidates, k_load = c.params.load_candidates,
            k_rand = c.params.random_candidates;
  std::vector<int> by_load;
  for (int i = 0; i < n; ++i) {
    if (p.Capacity(i) > 0) by_load.push_back(i);
  }
  std::stable_sort(by_load.begin(), by_load.end(), [&](int a, int b) {
    return layer_load[a] / p.Speed(a) < layer_load[b] / p.Speed(b);
  });
  std::vector<std::vector<int>> cand(experts);
  std::vector<char> mark(n, 0);
  for (int e = 0; e < experts; ++e) {
    auto& ce = cand[e];
    auto add = [&](int i) {
      if (i >= 0 && i < n && !mark[i] && p.Capacity(i) > 0) mark[i] = 1, ce.push_back(i);
    };
    const size_t g = static_cast<size_t>(l) * experts + e;
    if (all) {
      for (int i : by_load) add(i);
    } else {
      for (const Replica& r : plan.At(l, e)) add(r.instance);
      if (c.current_same_shape) {
        for (const Replica& r : p.current->replicas[g]) add(r.instance);
      }
      const double* we = &w[static_cast<size_t>(e) * n];
      std::vector<int> order(n);
      std::iota(order.begin(), order.end(), 0);
      const int k = std::min(n, k_aff);
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [&](int a, int b) { return we[a] > we[b]; });
      for (int j = 0; j < k && we[order[j]] > 0; ++j) add(order[j]);
      for (int j = 0; j < k_load && j < static_cast<int>(by_load.size()); ++j) {
        add(by_load[j]);
      }
      for (int j = 0; j < k_rand; ++j) {
        add(static_cast<int>(Mix((g * 131 + j) * 977 + pass) % static_cast<uint64_t>(n)));
      }
    }
    for (int i : ce) mark[i] = 0;
  }
  // Model.
  MipModel m;
  std::vector<double> start;
  const double start_max = LayerMaxLoad(p, plan, l);
  const int col_m = m.AddCol(0, c.load_cap[l], 1.0, false);
  start.push_back(start_max);
  std::vector<std::vector<std::pair<int, double>>> inst_x(n), inst_load(n);
  std::vector<std::vector<std::pair<int, int>>> cols(experts);  // (x col, y col) per candidate
  std::vector<std::pair<int, double>> budget_row;
  std::vector<int> ycol(static_cast<size_t>(experts) * n, -1);  // share column of (e, i)
  for (int e = 0; e < experts; ++e) {
    const size_t g = static_cast<size_t>(l) * experts + e;
    // An expert with one copy keeps one (share 1): x alone, an assignment row, so the LP
    // relaxation stays tight. Replicated experts get shares y with delta * x <= y <= x.
    const bool single = plan.At(l, e).size() == 1 && c.min_r <= 1;
    std::vector<std::pair<int, double>> sum_y, sum_x;
    for (int i : cand[e]) {
      double share = 0;
      for (const Replica& r : plan.At(l, e)) share = r.instance == i ? r.share : share;
      // Tokens arriving from layer l - 1 that stay on i (objective.h): with one copy
      // min(in, C * x) = in * x, linear in x; with shares min(in, C * y) needs a column t.
      const double in_ei = in[static_cast<size_t>(e) * n + i];
      const double xlb = (!single && fix_multi && share > 0) ? 1.0 : 0.0;
      const double xub = (!single && fix_multi && share <= 0) ? 0.0 : 1.0;
      const int x =
          m.AddCol(xlb, xub, c.MoveCost(g, i) - (single ? c.lambda * in_ei : 0.0), true);
      start.push_back(share > 0 ? 1.0 : 0.0);
      int y = x;
      if (!single) {
        y = m.AddCol(0, 1, 0.0, false);
        start.push_back(share);
        m.AddRow({{y, 1.0}, {x, -1.0}}, -kMipInf, 0.0);
        m.AddRow({{y, 1.0}, {x, -c.delta}}, 0.0, kMipInf);
        if (in_ei > 0 && c.lambda > 0) {
          const int t = m.AddCol(0, in_ei, -c.lambda, false);
          start.push_back(std::min(in_ei, share * inflow_total[e]));
          m.AddRow({{t, 1.0}, {y, -inflow_total[e]}}, -kMipInf, 0.0);
        }
      }
      ycol[static_cast<size_t>(e) * n + i] = y;
      cols[e].push_back({x, y});
      sum_y.push_back({y, 1.0});
      sum_x.push_back({x, 1.0});
      budget_row.push_back({x, 1.0});
      inst_x[i].push_back({x, 1.0});
      if (p.Load(l, e) > 0) inst_load[i].push_back({y, p.Load(l, e)});
    }
    m.AddRow(sum_y, 1.0, 1.0);
    if (c.min_r > 1) m.AddRow(sum_x, std::min<int>(c.min_r, cand[e].size()), kMipInf);
  }
  // Tokens going on to layer l + 1 (fixed) that stay on their instance: for each copy of a
  // successor b on instance j, t <= share(b, j) * C_b and t <= sum over b's predecessors a in
  // this layer of count(a, b) * y(a, j) (objective.h).
  if (l + 1 < p.layers && c.lambda > 0) {
    for (int b = 0; b < experts; ++b) {
      const size_t gb = static_cast<size_t>(l + 1) * experts + b;
      if (c.pred[gb].empty()) continue;
      double total = 0;
      for (const auto& [a, count] : c.pred[gb]) total += count;
      for (const Replica& r : plan.At(l + 1, b)) {
        std::vector<std::pair<int, double>> row;
        double start_in = 0;
        for (const auto& [a, count] : c.pred[gb]) {
          const int y = ycol[static_cast<size_t>(a) * n + r.instance];
          if (y < 0) continue;
          row.push_back({y, -count});
          start_in += count * start[y];
        }
        if (row.empty()) continue;
        const double cap = r.share * total;
        const int t = m.AddCol(0, cap, -c.lambda, false);
        start.push_back(std::min(cap, start_in));
        row.push_back({t, 1.0});
        m.AddRow(row, -kMipInf, 0.0);
      }
    }
  }
  m.AddRow(budget_row, -kMipInf, static_cast<double>(c.budget[l]));
  for (int i = 0; i < n; ++i) {
    if (inst_x[i].empty()) continue;
    m.AddRow(inst_x[i], -kMipInf, avail[i]);
    inst_load[i].push_back({col_m, -p.Speed(i)});
    m.AddRow(inst_load[i], -kMipInf, 0.0);
  }
  const double start_obj = m.Objective(start);
  MOE_ASSIGN_OR_RETURN(MipResult res,
                       SolveMip(m, c.params.engine, start, seconds, c.params.layer_gap));
  if (!res.has_solution ||
      !(res.objective < start_obj - 1e-9 * std::max(1.0, std::fabs(start_obj)))) {
    return false;
  }
  for (int e = 0; e < experts; ++e) {
    std::vector<Replica> rs;
    for (size_t k = 0; k < cand[e].size(); ++k) {
      if (res.x[cols[e][k].first] > 0.5) rs.push_back({cand[e][k], res.x[cols[e][k].second]});
    }
    if (rs.empty())
      return absl::InternalError(absl::StrCat("layer MIP left ", l, ":", e, " empty"));
    FinishShares(rs, c.delta);
    for (const Replica& r : plan.At(l, e)) --used[r.instance];
    for (const Replica& r : rs) ++used[r.instance];
    plan.At(l, e) = std::move(rs);
  }
  return true;
}

// ---- Monolithic: all layers, one replica per expert. ----

absl::StatusOr<PlacementPlan> SolveMonolithic(const Context& c, const PlacementPlan& start_plan,
                                              double seconds, IlpStats& stats) {
  const PlacementProblem& p = c.p;
  const int n = c.n, layers = p.layers, experts = p.experts;
  MipModel m;
  std::vector<double> start;
  std::vector<int> col_m(layers);
  for (int l = 0; l < layers; ++l) {
    col_m[l] = m.AddCol(0, c.load_cap[l], 1.0, false);
    start.push_back(LayerMaxLoad(p, start_plan, l));
  }
  auto on = [&](int l, int e, int i) { return start_plan.At(l, e)[0].instance == i; };
  // x[(l * E + e) * n + i], -1 when instance i can hold nothing.
  std::vector<int> x(static_cast<size_t>(layers) * experts * n, -1);
  std::vector<std::vector<std::pair<int, double>>> cap_rows(n);
  for (int l = 0; l < layers; ++l) {
    std::vector<std::vector<std::pair<int, double>>> load_rows(n);
    for (int e = 0; e < experts; ++e) {
      const size_t g = static_cast<size_t>(l) * experts + e;
      std::vector<std::pair<int, double>> one;
      for (int i = 0; i < n; ++i) {
        if (p.Capacity(i) <= 0) continue;
        const int col = m.AddCol(0, 1, c.MoveCost(g, i), true);
        x[g * n + i] = col;
        start.push_back(on(l, e, i) ? 1.0 : 0.0);
        one.push_back({col, 1.0});
        cap_rows[i].push_back({col, 1.0});
        if (p.Load(l, e) > 0) load_rows[i].push_back({col, p.Load(l, e)});
      }
      m.AddRow(one, 1.0, 1.0);
    }
    for (int i = 0; i < n; ++i) {
      if (p.Capacity(i) <= 0) continue;
      load_rows[i].push_back({col_m[l], -p.Speed(i)});
      m.AddRow(load_rows[i], -kMipInf, 0.0);
    }
  }
  for (int i = 0; i < n; ++i) {
    if (!cap_rows[i].empty()) m.AddRow(cap_rows[i], -kMipInf, p.Capacity(i));
  }
  for (int l = 0; l + 1 < layers; ++l) {
    for (int a = 0; a < experts; ++a) {
      const size_t ga = static_cast<size_t>(l) * experts + a;
      for (const auto& [b, count] : c.succ[ga]) {
        const size_t gb = static_cast<size_t>(l + 1) * experts + b;
        for (int i = 0; i < n; ++i) {
          if (x[ga * n + i] < 0) continue;
          const int z = m.AddCol(0, 1, -c.lambda * count, false);
          start.push_back(on(l, a, i) && on(l + 1, b, i) ? 1.0 : 0.0);
          m.AddRow({{z, 1.0}, {x[ga * n + i], -1.0}}, -kMipInf, 0.0);
          m.AddRow({{z, 1.0}, {x[gb * n + i], -1.0}}, -kMipInf, 0.0);
        }
      }
    }
  }
  ++stats.subproblems;
  MOE_ASSIGN_OR_RETURN(MipResult res, SolveMip(m, c.params.engine, start, seconds));
  PlacementPlan plan = start_plan;
  if (!res.has_solution) return plan;
  for (size_t g = 0; g < plan.replicas.size(); ++g) {
    for (int i = 0; i < n; ++i) {
      if (x[g * n + i] >= 0 && res.x[x[g * n + i]] > 0.5) plan.replicas[g] = {{i, 1.0}};
    }
  }
  ++stats.improved;
  return plan;
}

}  // namespace

absl::StatusOr<PlacementPlan> IlpPlacement(const PlacementProblem& p, const PlacementPlan& start,
                                           const IlpParams& params, IlpStats* stats_out) {
  const Clock::time_point t0 = Clock::now();
  IlpStats stats;
  MOE_RETURN_IF_ERROR(ValidatePlan(start));
  if (start.layers != p.layers || start.experts != p.experts || start.instances != p.instances) {
    return absl::InvalidArgumentError("start plan's shape differs from the problem");
  }
  MOE_RETURN_IF_ERROR(CheckCapacity(p, start));
  if (!(params.time_limit_seconds > 0)) {
    return absl::InvalidArgumentError("the ILP needs a time limit > 0");
  }
  Context c(p, params);
  c.n = p.instances;
  c.lambda = std::max(0.0, p.weights.lambda);
  c.mu = ResolvedMu(p);
  c.delta = std::min(1e-3, 0.5 / c.n);
  c.current_same_shape = p.current.has_value() && p.current->layers == p.layers &&
                         p.current->experts == p.experts &&
                         p.current->replicas.size() == start.replicas.size();
  double total_load = 0;
  bool single = true;
  c.min_r = c.n;
  c.budget.assign(p.layers, 0);
  for (int l = 0; l < p.layers; ++l) {
    for (int e = 0; e < p.experts; ++e) {
      total_load += p.Load(l, e);
      const int k = static_cast<int>(start.At(l, e).size());
      c.budget[l] += k;
      c.min_r = std::min(c.min_r, k);
      single &= k == 1;
    }
  }
  // Tie-break against useless copies: far below any load difference that matters.
  c.eps = 1e-6 * std::max(1.0, total_load / std::max(1, p.layers * p.experts));
  if (!params.layer_load_cap.empty() &&
      static_cast<int>(params.layer_load_cap.size()) != p.layers) {
    return absl::InvalidArgumentError("layer_load_cap needs one entry per layer");
  }
  for (int l = 0; l < p.layers; ++l) {
    double cap = params.max_load_slack < 0
                     ? kMipInf
                     : LayerMaxLoad(p, start, l) * (1 + params.max_load_slack) * (1 + 1e-9);
    if (!params.layer_load_cap.empty()) {
      cap = params.layer_load_cap[l] * (1 + 1e-9);
      if (LayerMaxLoad(p, start, l) > cap) {
        return absl::InvalidArgumentError(
            absl::StrCat("the start plan's layer ", l, " is over layer_load_cap"));
      }
    }
    c.load_cap.push_back(cap);
  }
  const size_t groups = static_cast<size_t>(p.layers) * p.experts;
  c.pred = Predecessors(p);
  c.succ.resize(groups);
  for (size_t g = 0; g < groups; ++g) {
    if (g < static_cast<size_t>(p.experts)) continue;  // layer 0 has no predecessors
    const int b = static_cast<int>(g % p.experts);
    const size_t prev = g - static_cast<size_t>(b) - static_cast<size_t>(p.experts);
    for (const auto& [a, count] : c.pred[g]) c.succ[prev + a].push_back({b, count});
  }
  int64_t pairs = 0;
  for (const auto& s : c.succ) pairs += static_cast<int64_t>(s.size());
  PlacementPlan plan = start;
  const int64_t mono_cols = (static_cast<int64_t>(groups) + pairs) * c.n;
  if (single && mono_cols <= params.monolithic_max_columns) {
    stats.monolithic = true;
    MOE_ASSIGN_OR_RETURN(plan, SolveMonolithic(c, start, params.time_limit_seconds, stats));
  } else {
    std::vector<int> used(c.n, 0);
    for (const auto& rs : plan.replicas) {
      for (const Replica& r : rs) ++used[r.instance];
    }
    // Even passes move single-copy experts only (fast, optimal per layer), odd passes every
    // copy; stop after two passes in a row without an improvement.
    // A layer MIP may overrun its share by a few tens of ms (CBC checks the clock between
    // nodes): keep 3 % of the limit in reserve so the whole solve stays within it.
    const double budget = params.time_limit_seconds * 0.97;
    int idle = 0;
    for (int pass = 0; pass < params.max_passes && idle < 2; ++pass) {
      bool any = false;
      ++stats.passes;
      for (int l = 0; l < p.layers; ++l) {
        const double left = budget - SecondsSince(t0);
        if (left <= 0.01) break;
        const double seconds = std::max(0.01, left / (p.layers - l));
        ++stats.subproblems;
        MOE_ASSIGN_OR_RETURN(bool better,
                             SolveLayer(c, l, pass, pass % 2 == 0, seconds, plan, used));
        if (better) ++stats.improved, any = true;
      }
      idle = any ? 0 : idle + 1;
      if (SecondsSince(t0) >= budget) break;
    }
  }
  const double start_cost = EvaluatePlan(p, start).cost;
  const double cost = EvaluatePlan(p, plan).cost;
  stats.start_cost = start_cost;
  stats.cost = cost;
  const bool valid = ValidatePlan(plan).ok() && CheckCapacity(p, plan).ok();
  if (!valid || !(cost < start_cost - 1e-9 * std::max(1.0, std::fabs(start_cost)))) {
    stats.kept_start = true;
    stats.cost = start_cost;
    plan = start;
  }
  stats.seconds = SecondsSince(t0);
  if (stats_out != nullptr) *stats_out = stats;
  return plan;
}

}  // namespace moe::scheduler
