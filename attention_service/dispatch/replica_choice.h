// Replica choice at dispatch time (DESIGN.md section 5; issue 6 "per-token replica choice"):
// which expert-service instance computes which of a layer's expert shards when experts have
// several replicas. Pure function; RemoteExpertExecutor calls it once per dispatch round.
//
// - A shard of at least `split_min_tokens` tokens whose expert has several usable replicas is
//   split over them by the plan's traffic shares (prefill of a hot expert runs on every replica
//   at once, as SGLang's EPLB dispatch does).
// - Smaller shards (decode: one or a few tokens per expert, bound by streaming the expert's
//   weights) stay whole and go, heaviest first, to the usable replica with the least work
//   assigned in this dispatch (cost = fixed_cost + tokens), so each instance streams about the
//   same number of experts. Ties go to the earlier replica in the snapshot's preference order.
#ifndef MOE_ATTENTION_SERVICE_DISPATCH_REPLICA_CHOICE_H_
#define MOE_ATTENTION_SERVICE_DISPATCH_REPLICA_CHOICE_H_

#include <functional>
#include <vector>

#include "absl/types/span.h"

namespace moe::attention {

// Routed pairs [begin, end) of one expert, in ExpertGroups order.
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
};

// The usable replicas of `expert` (instance indices in preference order) and their shares
// (any positive scale; normalised here). Empty: no usable replica.
using ReplicaCandidates =
    std::function<void(int expert, std::vector<int>* instances, std::vector<double>* shares)>;

// Assigns `pieces` to `num_instances` instances: `out[i]` gets instance i's pieces sorted by
// (expert, begin); pieces of experts without a usable replica go to `orphans`. Every routed pair
// of every input piece ends up in exactly one output piece.
void ChooseReplicas(absl::Span<const Piece> pieces, int num_instances,
                    const ReplicaCandidates& candidates, const ReplicaChoiceParams& params,
                    std::vector<std::vector<Piece>>* out, std::vector<Piece>* orphans);

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_DISPATCH_REPLICA_CHOICE_H_
