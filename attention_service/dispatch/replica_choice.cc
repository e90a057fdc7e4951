#include "attention_service/dispatch/replica_choice.h"

#include <algorithm>
#include <cmath>

namespace moe::attention {

void ChooseReplicas(absl::Span<const Piece> pieces, int num_instances,
                    const ReplicaCandidates& candidates, const ReplicaChoiceParams& params,
                    std::vector<std::vector<Piece>>* out, std::vector<Piece>* orphans) {
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
    } else if (p.tokens() >= params.split_min_tokens) {
      // Split by share: chunk k ends at round(tokens * cumulative share through k).
      double total = 0;
      for (size_t k = 0; k < instances.size(); ++k) {
        total += k < shares.size() && shares[k] > 0 ? shares[k] : 0.0;
      }
      double cumulative = 0;
      int start = p.begin;
      for (size_t k = 0; k < instances.size(); ++k) {
        const double share =
            total > 0 ? (k < shares.size() && shares[k] > 0 ? shares[k] : 0.0) : 1.0;
        cumulative += share;
        const double whole = total > 0 ? total : static_cast<double>(instances.size());
        const int end =
            k + 1 == instances.size()
                ? p.end
                : p.begin + static_cast<int>(std::lround(p.tokens() * cumulative / whole));
        if (end > start) pin({p.expert, start, end}, instances[k]);
        start = std::max(start, end);
      }
    } else {
      flexible.push_back({p, instances});
    }
  }
  // Heaviest first onto the least-loaded usable replica (LPT); stable for equal sizes.
  std::stable_sort(flexible.begin(), flexible.end(), [](const Flexible& a, const Flexible& b) {
    return a.piece.tokens() > b.piece.tokens();
  });
  for (const Flexible& f : flexible) {
    int best = f.instances[0];
    for (int i : f.instances) {
      if (load[i] < load[best]) best = i;
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
