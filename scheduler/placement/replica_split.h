// Dispatch-time replica choice by the plan's shares (the ILP's shares are unequal on purpose:
// they balance instance load). Pure functions; an attention worker calls them per layer
// dispatch instead of always sending an expert's tokens to its first replica.
#ifndef MOE_SCHEDULER_PLACEMENT_REPLICA_SPLIT_H_
#define MOE_SCHEDULER_PLACEMENT_REPLICA_SPLIT_H_

#include <cstdint>
#include <vector>

#include "scheduler/placement/plan.h"

namespace moe::scheduler {

// Splits `tokens` tokens of one expert over `replicas` in proportion to their shares: each gets
// floor(tokens x share), the remainder goes one by one to the largest fractional parts (ties:
// the replica at position (offset + k) % size first, so a caller passing a running counter
// spreads rounding over replicas). Result: one count per replica, summing to `tokens`.
// Shares need not be normalised; all-zero shares split evenly.
std::vector<int> SplitByShares(int tokens, const std::vector<Replica>& replicas,
                               uint64_t offset = 0);

// The replica index for one token with a uniform draw `u` in [0, 1): the first whose
// cumulative share exceeds u x total share.
int PickReplica(const std::vector<Replica>& replicas, double u);

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_PLACEMENT_REPLICA_SPLIT_H_
