// Greedy (EPLB) vs the ILP placement on synthetic traces with Zipf-skewed expert popularity and
// layer-to-layer affinity, at real models' shapes; prints one table (bench/README.md).
//
//   placement_benchmark [--shapes mixtral,qwen3,deepseek] [--instances 8,32,64,256]
//                       [--time-limit 10] [--engine cbc|glpk] [--zipf 1.0] [--affinity 0.6]
//
// Per (shape, instances): plan the trace with greedy and with the ILP; then the popularity
// ranking shifts (same partners) and the cluster re-plans: greedy from scratch vs the ILP with
// the deployed ILP plan as --current. Every figure comes from EvaluatePlan.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/flags.h"
#include "scheduler/placement/objective.h"
#include "scheduler/placement/solver.h"
#include "scheduler/placement/trace.h"

namespace {

using moe::scheduler::PlacementProblem;
using moe::scheduler::PlanObjective;
using moe::scheduler::SolveReport;

struct Shape {
  std::string name;
  int layers, experts, top_k;
  int64_t bytes_per_expert;  // gate + up + down of one expert
};

// Mixtral 8x7B: 3 x 4096 x 14336 bf16; Qwen3-235B-A22B: 3 x 4096 x 1536 bf16; DeepSeek-V3:
// 3 x 7168 x 2048 fp8 (its 58 MoE layers; the first 3 are dense).
const Shape kShapes[] = {
    {"mixtral", 32, 8, 2, 3LL * 4096 * 14336 * 2},
    {"qwen3", 94, 128, 8, 3LL * 4096 * 1536 * 2},
    {"deepseek", 58, 256, 8, 3LL * 7168 * 2048},
};

std::vector<int> ParseInts(const std::string& s) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(s, ',')) {
    int v = 0;
    if (absl::SimpleAtoi(part, &v) && v > 0) out.push_back(v);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string shapes = "mixtral,qwen3,deepseek", instances = "8,32,64,256", engine = "cbc";
  double time_limit = 10, zipf = 1.0, affinity = 0.6, replication = 1.25, headroom = 0.03;
  moe::FlagSet flags("placement_benchmark", "Greedy vs ILP placement on synthetic traces.");
  flags.AddString("shapes", &shapes, "mixtral,qwen3,deepseek");
  flags.AddString("instances", &instances, "instance counts");
  flags.AddDouble("time-limit", &time_limit, "ILP time limit per solve, seconds");
  flags.AddString("engine", &engine, "cbc | glpk");
  flags.AddDouble("zipf", &zipf, "popularity skew exponent");
  flags.AddDouble("affinity", &affinity, "fraction of an expert's tokens going to its partner");
  flags.AddDouble("replication", &replication, "copies per layer / experts");
  flags.AddDouble("headroom", &headroom, "slots beyond the replication budget (fraction; + 1)");
  if (std::optional<int> exit = flags.ParseCommandLine(argc - 1, argv + 1)) return *exit;
  const moe::scheduler::SolverKind kind =
      engine == "glpk" ? moe::scheduler::SolverKind::kIlpGlpk : moe::scheduler::SolverKind::kIlpCbc;
  std::printf(
      "zipf %.2f, affinity %.2f, replication %.2f, slot headroom %.2f + 1, ILP %s with a %.0f s "
      "limit per solve\n\n",
      zipf, affinity, replication, headroom, engine.c_str(), time_limit);
  std::printf(
      "| shape | N | slots | max/mean greedy | max/mean ILP | cross/token greedy | ILP | ratio "
      "| re-plan GB moved: scratch | ILP | ratio | re-plan max/mean greedy | ILP | ILP s plan | "
      "re-plan |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (absl::string_view shape_name : absl::StrSplit(shapes, ',')) {
    const Shape* shape = nullptr;
    for (const Shape& s : kShapes) shape = s.name == shape_name ? &s : shape;
    if (shape == nullptr) {
      std::fprintf(stderr, "unknown shape %s\n", std::string(shape_name).c_str());
      return 2;
    }
    for (int n : ParseInts(instances)) {
      const int64_t copies = static_cast<int64_t>(shape->layers) * shape->experts;
      if (n * 2 > copies) {
        std::printf(
            "| %s | %d | - | skipped: %lld expert copies on %d instances is under 2 per "
            "instance (a placement has nothing to choose) |\n",
            shape->name.c_str(), n, static_cast<long long>(copies), n);
        continue;
      }
      moe::scheduler::SyntheticTraceParams t{.layers = shape->layers,
                                             .experts = shape->experts,
                                             .top_k = shape->top_k,
                                             .tokens = 1 << 16,
                                             .zipf = zipf,
                                             .affinity = affinity,
                                             .successors = 4,
                                             .seed = 1};
      PlacementProblem p = moe::scheduler::SyntheticTrace(t);
      p.instances = n;
      p.bytes_per_expert = shape->bytes_per_expert;
      // The replication budget plus a little headroom (--headroom, default 3% + 1 slot), as
      // memory sizing would leave; without any, every slot is taken and a re-plan can only
      // swap copies pairwise within a layer.
      const int slots = static_cast<int>(std::ceil(copies * replication * (1 + headroom) / n)) + 1;
      p.slots.assign(n, slots);
      moe::scheduler::SolverParams params{.solver = kind,
                                          .replication = {.replication = replication},
                                          .time_limit_seconds = time_limit};
      absl::StatusOr<SolveReport> plan = SolvePlacementWithReport(p, params);
      if (!plan.ok()) {
        std::printf("| %s | %d | %d | error: %s |\n", shape->name.c_str(), n, slots,
                    std::string(plan.status().message()).c_str());
        continue;
      }
      // The skew shifts; re-plan from the deployed ILP plan.
      t.popularity_seed = 2;
      PlacementProblem q = moe::scheduler::SyntheticTrace(t);
      q.instances = n;
      q.bytes_per_expert = p.bytes_per_expert;
      q.slots = p.slots;
      q.current = plan->plan;
      absl::StatusOr<SolveReport> replan = SolvePlacementWithReport(q, params);
      if (!replan.ok()) {
        std::printf("| %s | %d | %d | re-plan error: %s |\n", shape->name.c_str(), n, slots,
                    std::string(replan.status().message()).c_str());
        continue;
      }
      const PlanObjective &g = plan->greedy_objective, &o = plan->objective;
      const PlanObjective &rg = replan->greedy_objective, &ro = replan->objective;
      const double gb = 1e9;
      std::printf(
          "| %s | %d | %d | %.0f/%.0f | %.0f/%.0f | %.3f | %.3f | %.2f | %.1f | %.1f | %.2f | "
          "%.0f/%.0f | %.0f/%.0f | %.1f | %.1f |\n",
          shape->name.c_str(), n, slots, g.max_load, g.mean_load, o.max_load, o.mean_load,
          g.cross_per_token, o.cross_per_token,
          g.cross_per_token > 0 ? o.cross_per_token / g.cross_per_token : 0.0, rg.bytes_moved / gb,
          ro.bytes_moved / gb,
          rg.bytes_moved > 0 ? static_cast<double>(ro.bytes_moved) / rg.bytes_moved : 0.0,
          rg.max_load, rg.mean_load, ro.max_load, ro.mean_load, plan->seconds, replan->seconds);
      std::fprintf(stderr,
                   "%s/%d: plan from %s, %d MIPs (%d improved, %d passes); re-plan from %s, "
                   "%d (%d, %d)\n",
                   shape->name.c_str(), n, plan->start.c_str(), plan->ilp.subproblems,
                   plan->ilp.improved, plan->ilp.passes, replan->start.c_str(),
                   replan->ilp.subproblems, replan->ilp.improved, replan->ilp.passes);
      std::fflush(stdout);
    }
  }
  return 0;
}
