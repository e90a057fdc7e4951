#include "scheduler/placement/replica_split.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moe::scheduler {

std::vector<int> SplitByShares(int tokens, const std::vector<Replica>& replicas, uint64_t offset) {
  const size_t n = replicas.size();
  std::vector<int> out(n, 0);
  if (n == 0 || tokens <= 0) return out;
  double total = 0;
  for (const Replica& r : replicas) total += std::max(0.0, r.share);
  std::vector<double> frac(n);
  int given = 0;
  for (size_t k = 0; k < n; ++k) {
    const double exact = total > 0 ? tokens * std::max(0.0, replicas[k].share) / total
                                   : static_cast<double>(tokens) / n;
    out[k] = static_cast<int>(std::floor(exact));
    frac[k] = exact - out[k];
    given += out[k];
  }
  // Positions in tie-break order starting at offset, then stable by fractional part.
  std::vector<size_t> order(n);
  for (size_t k = 0; k < n; ++k) order[k] = (offset + k) % n;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return frac[a] > frac[b] + 1e-12; });
  for (size_t k = 0; given < tokens; k = (k + 1) % n, ++given) ++out[order[k]];
  return out;
}

int PickReplica(const std::vector<Replica>& replicas, double u) {
  if (replicas.empty()) return -1;
  double total = 0;
  for (const Replica& r : replicas) total += std::max(0.0, r.share);
  if (!(total > 0)) {
    return std::min(static_cast<int>(u * replicas.size()), static_cast<int>(replicas.size()) - 1);
  }
  const double target = std::clamp(u, 0.0, 1.0) * total;
  double acc = 0;
  for (size_t k = 0; k < replicas.size(); ++k) {
    acc += std::max(0.0, replicas[k].share);
    if (target < acc) return static_cast<int>(k);
  }
  return static_cast<int>(replicas.size()) - 1;
}

}  // namespace moe::scheduler
