// `moe place`: offline expert placement from a load trace (DESIGN.md section 5). Runs the greedy
// (EPLB) solver and/or the ILP on the trace for N instances and prints, per plan, the figures of
// scheduler/placement/objective.h; --out writes the chosen plan (the ILP's when both ran).
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "absl/strings/str_format.h"
#include "common/file.h"
#include "common/flags.h"
#include "scheduler/placement/objective.h"
#include "scheduler/placement/plan.h"
#include "scheduler/placement/solver.h"
#include "scheduler/placement/trace.h"
#include "tools/commands.h"

namespace moe::tools {
namespace {

using scheduler::PlanObjective;

struct PlaceConfig {
  std::string trace;
  int instances = 0;
  int slots = 0;
  int64_t memory = 0;
  std::string current;
  std::string solver = "both";
  double time_limit = 10;
  std::string out;
  double replication = 1.0;
  int min_replicas = 1;
  double lambda = 0.5;
  double mu = -1;
};

void PrintRow(const std::string& name, const PlanObjective& o, double seconds) {
  std::printf("%-9s %10.1f %10.1f %8.3f %11.3f %7lld %7lld %12lld %12.1f %8.3f\n", name.c_str(),
              o.max_load, o.mean_load, o.balancedness, o.cross_per_token,
              static_cast<long long>(o.copies), static_cast<long long>(o.copies_moved),
              static_cast<long long>(o.bytes_moved), o.cost, seconds);
}

int Usage(const FlagSet& flags, const std::string& why) {
  std::fprintf(stderr, "moe place: %s\n\n%s", why.c_str(), flags.Usage().c_str());
  return 2;
}

}  // namespace

int RunPlace(int argc, const char* const* argv) {
  PlaceConfig c;
  FlagSet flags("moe place",
                "Place experts offline from a load trace: run greedy (EPLB) and/or the ILP and "
                "print max/mean load, cross-instance transitions per token, bytes moved from "
                "--current and solve time.");
  flags.AddString("trace", &c.trace, "load trace JSON (DESIGN.md section 5)");
  flags.AddInt("instances", &c.instances, "expert-service instances to place on");
  flags.AddInt("slots", &c.slots, "(layer, expert) copies per instance; 0 = no limit");
  flags.AddInt("memory", &c.memory, "bytes of expert weights per instance; 0 = no limit");
  flags.AddString("current", &c.current, "plan JSON in force (bytes moved are counted from it)");
  flags.AddString("solver", &c.solver, "greedy | ilp | ilp-glpk | both (greedy and ilp)");
  flags.AddDouble("time-limit", &c.time_limit, "ILP time limit, seconds");
  flags.AddString("out", &c.out, "write the plan JSON here (the ILP's with --solver both)");
  flags.AddDouble("replication", &c.replication, "copies per layer / experts (>= 1)");
  flags.AddInt("min-replicas", &c.min_replicas, "copies of every expert at least");
  flags.AddDouble("lambda", &c.lambda, "objective weight per cross-instance token");
  flags.AddDouble("mu", &c.mu, "objective weight per copy moved (tokens); < 0 = automatic");
  if (std::optional<int> exit = flags.ParseCommandLine(argc, argv)) return *exit;
  if (c.trace.empty()) return Usage(flags, "--trace is required");
  if (c.instances < 1) return Usage(flags, "--instances must be >= 1");
  if (c.slots < 0 || c.memory < 0) return Usage(flags, "--slots and --memory must be >= 0");
  if (!(c.time_limit > 0)) return Usage(flags, "--time-limit must be > 0");
  if (c.replication < 1 || c.min_replicas < 1) {
    return Usage(flags, "--replication must be >= 1 and --min-replicas >= 1");
  }
  const bool both = c.solver == "both";
  absl::StatusOr<scheduler::SolverKind> kind = scheduler::ParseSolverKind(both ? "ilp" : c.solver);
  if (!kind.ok()) return Usage(flags, std::string(kind.status().message()));

  std::optional<std::string> text = ReadFile(c.trace);
  if (!text) {
    std::fprintf(stderr, "moe place: cannot read trace %s\n", c.trace.c_str());
    return 2;
  }
  absl::StatusOr<scheduler::PlacementProblem> problem = scheduler::ProblemFromTraceJson(*text);
  if (!problem.ok()) {
    std::fprintf(stderr, "moe place: %s: %s\n", c.trace.c_str(),
                 std::string(problem.status().message()).c_str());
    return 2;
  }
  scheduler::PlacementProblem& p = *problem;
  p.instances = c.instances;
  if (!p.speed.empty() && static_cast<int>(p.speed.size()) != c.instances) {
    std::fprintf(stderr, "moe place: the trace's \"speed\" has %zu entries for %d instances\n",
                 p.speed.size(), c.instances);
    return 2;
  }
  if (c.slots > 0) p.slots.assign(c.instances, c.slots);
  if (c.memory > 0) p.memory_bytes.assign(c.instances, c.memory);
  p.weights.lambda = c.lambda;
  p.weights.mu = c.mu;
  p.time_limit_seconds = c.time_limit;
  if (!c.current.empty()) {
    std::optional<std::string> plan_text = ReadFile(c.current);
    if (!plan_text) {
      std::fprintf(stderr, "moe place: cannot read plan %s\n", c.current.c_str());
      return 2;
    }
    absl::StatusOr<scheduler::PlacementPlan> current = scheduler::PlanFromJson(*plan_text);
    if (!current.ok()) {
      std::fprintf(stderr, "moe place: %s: %s\n", c.current.c_str(),
                   std::string(current.status().message()).c_str());
      return 2;
    }
    if (current->layers != p.layers || current->experts != p.experts) {
      std::fprintf(stderr, "moe place: %s is a %dx%d plan, the trace is %dx%d\n", c.current.c_str(),
                   current->layers, current->experts, p.layers, p.experts);
      return 2;
    }
    p.current = *std::move(current);
  }
  scheduler::SolverParams params;
  params.solver = *kind;
  params.replication = {.min_replicas = c.min_replicas, .replication = c.replication};
  params.time_limit_seconds = c.time_limit;
  absl::StatusOr<scheduler::SolveReport> report = scheduler::SolvePlacementWithReport(p, params);
  if (!report.ok()) {
    const bool input = report.status().code() == absl::StatusCode::kFailedPrecondition ||
                       report.status().code() == absl::StatusCode::kInvalidArgument ||
                       report.status().code() == absl::StatusCode::kResourceExhausted;
    std::fprintf(stderr, "moe place: %s\n", std::string(report.status().message()).c_str());
    return input ? 2 : 1;
  }
  std::printf(
      "moe place: %d layers x %d experts (top_k %d), %d instances, %lld copies max each, "
      "lambda %.3g, mu %.3g%s\n",
      p.layers, p.experts, p.top_k, p.instances, static_cast<long long>(p.Capacity(0)),
      report->objective.lambda, report->objective.mu, p.current ? ", moves from --current" : "");
  std::printf("%-9s %10s %10s %8s %11s %7s %7s %12s %12s %8s\n", "solver", "max_load", "mean_load",
              "balance", "cross/token", "copies", "moved", "bytes_moved", "cost", "seconds");
  if (both || *kind == scheduler::SolverKind::kGreedy) {
    PrintRow("greedy", report->greedy_objective, report->greedy_seconds);
  }
  if (*kind != scheduler::SolverKind::kGreedy) {
    PrintRow(scheduler::SolverKindName(*kind), report->objective, report->seconds);
    std::printf("ilp: from the %s plan, %s, %d MIPs (%d improved) in %d passes%s\n",
                report->start.c_str(),
                report->ilp.monolithic ? "one MIP over all layers" : "per-layer MIPs",
                report->ilp.subproblems, report->ilp.improved, report->ilp.passes,
                report->ilp.kept_start ? "; did not beat its start, kept it" : "");
  }
  if (!c.out.empty()) {
    std::ofstream out(c.out);
    out << scheduler::PlanToJson(report->plan) << "\n";
    if (!out) {
      std::fprintf(stderr, "moe place: cannot write %s\n", c.out.c_str());
      return 1;
    }
    std::printf("wrote %s\n", c.out.c_str());
  }
  return 0;
}

}  // namespace moe::tools
