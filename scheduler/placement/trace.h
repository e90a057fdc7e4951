// Load traces (DESIGN.md section 5) and synthetic ones for tests and the benchmark.
//   {"layers": L, "experts": E, "top_k": k, "bytes_per_expert": B,
//    "load": [[tokens of expert e in layer l, ...], ...],      // L rows of E numbers >= 0
//    "coact": [[l, a, b, count], ...],                           // l + 1 < L, count >= 0
//    "speed": [relative speed of instance i, ...]}               // optional
#ifndef MOE_SCHEDULER_PLACEMENT_TRACE_H_
#define MOE_SCHEDULER_PLACEMENT_TRACE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "scheduler/placement/problem.h"

namespace moe::scheduler {

// Fills layers, experts, top_k, bytes_per_expert, load, coact and speed; the caller sets the
// instances and their limits. INVALID_ARGUMENT names what is wrong.
absl::StatusOr<PlacementProblem> ProblemFromTraceJson(const std::string& json);
std::string TraceToJson(const PlacementProblem& problem);

struct SyntheticTraceParams {
  int layers = 4;
  int experts = 8;
  int top_k = 2;
  int64_t tokens = 1 << 16;  // tokens in the window (each makes top_k choices per layer)
  double zipf = 1.0;         // popularity of the r-th most popular expert ~ 1 / (r + 1)^zipf
  // Fraction of an expert's tokens that go on to its one partner expert in the next layer
  // (a fixed random permutation); the rest follow the next layer's popularity.
  double affinity = 0.6;
  int successors = 4;            // co-activation pairs recorded per expert (partner + most popular)
  uint64_t seed = 1;             // partners and popularity ranks
  uint64_t popularity_seed = 0;  // != 0: re-rank popularity only (a skew shift; same partners)
};

// Expected counts (rounded): layer 0 is Zipf; layer l + 1's load is what layer l's tokens flow
// into (affinity * partner + (1 - affinity) * Zipf), so loads and co-activations agree.
PlacementProblem SyntheticTrace(const SyntheticTraceParams& params);

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_PLACEMENT_TRACE_H_
