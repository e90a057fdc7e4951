// Replica choice at dispatch time (DESIGN.md section 5; issue 6 "per-token replica choice"):
// which expert-service instance computes which of a layer's routed pairs when experts have
// several replicas. Pure function; RemoteExpertExecutor calls it once per dispatch round.
// The placement scheduler scores plans with this model (scheduler/placement/objective.h).
//
// Locality-first within shares. A token's "homes" are the instances its routed experts ran on
// in the previous MoE layer of the same forward pass (PairLocality; none in the first layer).
//
// - Large shards: a shard of at least `split_min_tokens` routed pairs whose expert has several
//   usable replicas is split over them by the plan's traffic shares (prefill of a hot expert
//   runs on every replica at once, as SGLang's EPLB dispatch does). Replica k (in the
//   snapshot's preference order) gets the quota round(n * C_k) - round(n * C_{k-1}) of the n
//   pairs, C_k being the normalised cumulative share of replicas 0..k (std::lround; the last
//   replica gets the rest), so the quotas depend on the shares only. Locality decides only
//   which pairs fill which quota, in three passes over the shard's pairs in order:
//     1. a pair whose token has a home on exactly one of the replicas' instances goes to that
//        replica while it has quota left;
//     2. a pair whose token has homes on several of them goes to the one of those with the
//        most quota left (ties: the earlier replica), if any has quota left;
//     3. the remaining pairs fill the remaining quotas in replica order.
//   Each replica's pairs keep their relative order. Without homes this is today's contiguous
//   split: replica k gets the k-th run of pairs.
// - Smaller shards (decode: one or a few pairs per expert, bound by streaming the expert's
//   weights) stay whole and go, heaviest first, to a usable replica by longest processing time
//   (cost = fixed_cost + pairs assigned in this dispatch): among the replicas whose cost so far
//   is at most the least one's + fixed_cost, the one whose instance is a home of the most of
//   the shard's pairs' tokens (ties: the less loaded, then the earlier in preference order);
//   if none of them is a home, the least-loaded replica (ties: the earlier).
// - A shard of an expert with one usable replica goes there whole.
// - With ReplicaChoiceParams::pack (instances sharing one host's cores, as under `moe up`),
//   every shard instead goes whole, heaviest first, to the usable replica whose instance is
//   already the most loaded in this dispatch (ties: the earlier in preference order), so a
//   layer runs on as few instances as possible: on one host a second instance adds no cores or
//   memory bandwidth, only another wake-up and a fight for the cores (two instances computing
//   at once time-slice the cores between their threads; bench/README.md). Large shards are
//   not split either: one instance already computes them on every core.
#ifndef MOE_ATTENTION_SERVICE_DISPATCH_REPLICA_CHOICE_H_
#define MOE_ATTENTION_SERVICE_DISPATCH_REPLICA_CHOICE_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/types/span.h"
#include "attention_service/dispatch/expert_executor.h"

namespace moe::attention {

// Routed pairs at positions [begin, end) of one expert (positions in PairLocality::order; the
// ExpertGroups index itself when there is no order).
struct Piece {
  int expert = 0;
  int begin = 0;
  int end = 0;
  int tokens() const { return end - begin; }
  bool operator==(const Piece&) const = default;
};

struct ReplicaChoiceParams {
  int split_min_tokens = 32;  // split shards at least this large over replicas by share
  double fixed_cost = 6.0;    // cost of one expert call, in tokens (weight streaming at small M)
  bool pack = false;          // every shard whole onto the most-loaded usable replica (above)
};

// The usable replicas of `expert` (instance indices in preference order) and their shares
// (any positive scale; normalised here). Empty: no usable replica.
using ReplicaCandidates =
    std::function<void(int expert, std::vector<int>* instances, std::vector<double>* shares)>;

// Where the routed pairs' tokens ran in the previous MoE layer. Position p of a piece holds
// routed pair order[p] (an ExpertGroups index), of token pair_token[order[p]], whose homes are
// homes->Of(that token) as instance indices (the same indices as ReplicaCandidates').
// ChooseReplicas permutes `order` only within the input pieces' ranges.
// Default (homes == nullptr): no previous layer; `order` is neither read nor written.
struct PairLocality {
  absl::Span<int32_t> order;
  absl::Span<const int32_t> pair_token;
  const TokenHomes* homes = nullptr;
};

// Assigns `pieces` to `num_instances` instances: `out[i]` gets instance i's pieces sorted by
// (expert, begin); pieces of experts without a usable replica go to `orphans`. Every position
// of every input piece ends up in exactly one output piece (after the permutation of
// `locality.order`).
void ChooseReplicas(absl::Span<const Piece> pieces, int num_instances,
                    const ReplicaCandidates& candidates, const ReplicaChoiceParams& params,
                    const PairLocality& locality, std::vector<std::vector<Piece>>* out,
                    std::vector<Piece>* orphans);

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_DISPATCH_REPLICA_CHOICE_H_
