#include "attention_service/dispatch/replica_choice.h"

#include <algorithm>
#include <cmath>

namespace moe::attention {

namespace {

// Per-replica quotas of a shard of `n` pairs: round(n * C_k) - round(n * C_{k-1}) with C_k the
// normalised cumulative share (equal shares when none is positive); the last takes the rest.
std::vector<int> Quotas(int n, absl::Span<const double> shares, size_t replicas) {
  auto share_of = [&](size_t k) { return k < shares.size() && shares[k] > 0 ? shares[k] : 0.0; };
  double total = 0;
  for (size_t k = 0; k < replicas; ++k) total += share_of(k);
  std::vector<int> quota(replicas, 0);
  double cumulative = 0;
  int start = 0;
  for (size_t k = 0; k < replicas; ++k) {
    cumulative += total > 0 ? share_of(k) : 1.0;
    const double whole = total > 0 ? total : static_cast<double>(replicas);
    const int end = k + 1 == replicas ? n : static_cast<int>(std::lround(n * cumulative / whole));
    quota[k] = std::max(end - start, 0);
    start = std::max(start, end);
  }
  return quota;
}

// Which replica (index into `instances`) each position of `p` goes to, filling `quota`
// locality-first (the three passes of replica_choice.h).
std::vector<int> FillQuotas(const Piece& p, absl::Span<const int> instances,
                            std::vector<int> quota, const PairLocality& locality) {
  const int n = p.tokens();
  std::vector<int> replica_of(n, -1);
  // local[j * R + k]: position j's token has a home on replica k's instance (quota > 0 only).
  const size_t r = instances.size();
  std::vector<uint8_t> local(static_cast<size_t>(n) * r, 0);
  std::vector<int> local_count(n, 0);
  for (int j = 0; j < n; ++j) {
    const int32_t token = locality.pair_token[locality.order[p.begin + j]];
    for (size_t k = 0; k < r; ++k) {
      if (quota[k] > 0 && locality.homes->Contains(token, instances[k])) {
        local[j * r + k] = 1;
        ++local_count[j];
      }
    }
  }
  for (int j = 0; j < n; ++j) {  // pass 1: one local replica
    if (local_count[j] != 1) continue;
    for (size_t k = 0; k < r; ++k) {
      if (local[j * r + k] && quota[k] > 0) {
        replica_of[j] = static_cast<int>(k);
        --quota[k];
      }
    }
  }
  for (int j = 0; j < n; ++j) {  // pass 2: several local replicas: the most quota left
    if (local_count[j] < 2) continue;
    int best = -1;
    for (size_t k = 0; k < r; ++k) {
      if (local[j * r + k] && quota[k] > 0 && (best < 0 || quota[k] > quota[best])) {
        best = static_cast<int>(k);
      }
    }
    if (best >= 0) {
      replica_of[j] = best;
      --quota[best];
    }
  }
  size_t k = 0;  // pass 3: the rest, in replica order
  for (int j = 0; j < n; ++j) {
    if (replica_of[j] >= 0) continue;
    while (quota[k] == 0) ++k;  // quotas sum to n: never runs past the end
    replica_of[j] = static_cast<int>(k);
    --quota[k];
  }
  return replica_of;
}

// Splits the large shard `p` over `instances` by share; calls pin(piece, instance) per replica
// that gets pairs.
template <typename Pin>
void SplitByShare(const Piece& p, absl::Span<const int> instances,
                  absl::Span<const double> shares, const PairLocality& locality, Pin pin) {
  const std::vector<int> quota = Quotas(p.tokens(), shares, instances.size());
  if (locality.homes != nullptr) {
    const std::vector<int> replica_of = FillQuotas(p, instances, quota, locality);
    // Stable regroup of the piece's positions by replica.
    std::vector<int32_t> regrouped;
    regrouped.reserve(p.tokens());
    for (size_t k = 0; k < instances.size(); ++k) {
      for (int j = 0; j < p.tokens(); ++j) {
        if (replica_of[j] == static_cast<int>(k)) regrouped.push_back(locality.order[p.begin + j]);
      }
    }
    std::copy(regrouped.begin(), regrouped.end(), locality.order.begin() + p.begin);
  }
  int start = p.begin;
  for (size_t k = 0; k < instances.size(); ++k) {
    if (quota[k] > 0) pin(Piece{p.expert, start, start + quota[k]}, instances[k]);
    start += quota[k];
  }
}

// How many positions of `p` have a home on `instance`.
int LocalPairs(const Piece& p, int instance, const PairLocality& locality) {
  int count = 0;
  for (int pos = p.begin; pos < p.end; ++pos) {
    count += locality.homes->Contains(locality.pair_token[locality.order[pos]], instance);
  }
  return count;
}

}  // namespace

void ChooseReplicas(absl::Span<const Piece> pieces, int num_instances,
                    const ReplicaCandidates& candidates, const ReplicaChoiceParams& params,
                    const PairLocality& locality, std::vector<std::vector<Piece>>* out,
                    std::vector<Piece>* orphans) {
  out->assign(static_cast<size_t>(num_instances), {});
  orphans->clear();
  std::vector<double> load(static_cast<size_t>(num_instances), 0.0);
  auto pin = [&](const Piece& p, int instance) {
    (*out)[instance].push_back(p);
    load[instance] += params.fixed_cost + p.tokens();
  };
  struct Flexible {
    Piece piece;
    std::vector<int> instances;
  };
  std::vector<Flexible> flexible;
  std::vector<int> instances;
  std::vector<double> shares;
  for (const Piece& p : pieces) {
    if (p.tokens() <= 0) continue;
    instances.clear();
    shares.clear();
    candidates(p.expert, &instances, &shares);
    if (instances.empty()) {
      orphans->push_back(p);
    } else if (instances.size() == 1) {
      pin(p, instances[0]);
    } else if (p.tokens() >= params.split_min_tokens && !params.pack) {
      SplitByShare(p, instances, shares, locality, pin);
    } else {
      flexible.push_back({p, instances});
    }
  }
  // Heaviest first onto the least-loaded usable replica (LPT; stable for equal sizes),
  // preferring a home of the shard's tokens within fixed_cost of the least load.
  std::stable_sort(flexible.begin(), flexible.end(), [](const Flexible& a, const Flexible& b) {
    return a.piece.tokens() > b.piece.tokens();
  });
  for (const Flexible& f : flexible) {
    int best = f.instances[0];
    if (params.pack) {
      for (int i : f.instances) {
        if (load[i] > load[best]) best = i;
      }
      pin(f.piece, best);
      continue;
    }
    for (int i : f.instances) {
      if (load[i] < load[best]) best = i;
    }
    if (locality.homes != nullptr) {
      const double window = load[best] + params.fixed_cost;
      int best_local = 0;
      for (int i : f.instances) {
        if (load[i] > window) continue;
        const int local = LocalPairs(f.piece, i, locality);
        if (local > best_local || (local > 0 && local == best_local && load[i] < load[best])) {
          best = i;
          best_local = local;
        }
      }
    }
    pin(f.piece, best);
  }
  for (auto& list : *out) {
    std::sort(list.begin(), list.end(), [](const Piece& a, const Piece& b) {
      return a.expert != b.expert ? a.expert < b.expert : a.begin < b.begin;
    });
  }
}

}  // namespace moe::attention
