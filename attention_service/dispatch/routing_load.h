// RoutingLoadRecorder: what the attention worker reports to the scheduler (ReportLoad): tokens
// routed per (layer, expert) and co-activation counts of consecutive layers (a token that
// chose expert a in layer l and expert b in layer l + 1), counted from the Routing every
// ExpertExecutor::Run receives.
//
// Co-activations pair a thread's Run(layer l + 1) with the same thread's previous Run(layer l)
// of the same token count (the engine runs one batch's layers in order on one thread; two
// batches run concurrently on two threads).
//
// Thread-safety: every method is thread-safe.
#ifndef MOE_ATTENTION_SERVICE_DISPATCH_ROUTING_LOAD_H_
#define MOE_ATTENTION_SERVICE_DISPATCH_ROUTING_LOAD_H_

#include <algorithm>
#include <cstdint>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "model/arch/router.h"

namespace moe::attention {

struct CoActivationCount {
  int layer = 0;  // `a` in layer, `b` in layer + 1
  int a = 0;
  int b = 0;
  int64_t count = 0;
};

struct RoutingLoad {
  std::vector<int64_t> tokens;            // [layers * experts]
  std::vector<CoActivationCount> coact;   // the largest counts, count-descending
  int64_t total_tokens = 0;               // sum of tokens
};

class RoutingLoadRecorder {
 public:
  // `max_pairs`: co-activation pairs kept per Take (the top counts).
  RoutingLoadRecorder(int layers, int experts, int max_pairs = 256);

  int layers() const { return layers_; }
  int experts() const { return experts_; }

  // Counts `routing` (of `layer`). Out-of-range layers or expert ids are ignored.
  void Record(int layer, const model::Routing& routing);
  // Everything counted since the previous Take (or construction), and resets the counts.
  RoutingLoad Take();

 private:
  struct Last {
    int layer = -1;
    int tokens = 0;
    int top_k = 0;
    std::vector<int> experts;
  };
  const int layers_;
  const int experts_;
  const int max_pairs_;
  absl::Mutex mu_;
  std::vector<int64_t> tokens_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int64_t, int64_t> coact_ ABSL_GUARDED_BY(mu_);  // (l*E + a)*E + b
  absl::flat_hash_map<std::thread::id, Last> last_ ABSL_GUARDED_BY(mu_);
};

// Header-only (inline) so that it needs no build-file change of its own.
inline RoutingLoadRecorder::RoutingLoadRecorder(int layers, int experts, int max_pairs)
    : layers_(layers),
      experts_(experts),
      max_pairs_(max_pairs),
      tokens_(static_cast<size_t>(layers) * experts, 0) {}

inline void RoutingLoadRecorder::Record(int layer, const model::Routing& routing) {
  if (layer < 0 || layer >= layers_) return;
  const int n = routing.tokens * routing.top_k;
  if (n <= 0 || static_cast<int>(routing.experts.size()) < n) return;
  const std::thread::id self = std::this_thread::get_id();
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < n; ++i) {
    const int e = routing.experts[i];
    if (e >= 0 && e < experts_) ++tokens_[static_cast<size_t>(layer) * experts_ + e];
  }
  Last& last = last_[self];
  if (last.layer == layer - 1 && last.tokens == routing.tokens) {
    for (int t = 0; t < routing.tokens; ++t) {
      for (int j = 0; j < last.top_k; ++j) {
        const int a = last.experts[static_cast<size_t>(t) * last.top_k + j];
        if (a < 0 || a >= experts_) continue;
        for (int k = 0; k < routing.top_k; ++k) {
          const int b = routing.experts[static_cast<size_t>(t) * routing.top_k + k];
          if (b < 0 || b >= experts_) continue;
          ++coact_[(static_cast<int64_t>(layer - 1) * experts_ + a) * experts_ + b];
        }
      }
    }
  }
  last.layer = layer;
  last.tokens = routing.tokens;
  last.top_k = routing.top_k;
  last.experts.assign(routing.experts.begin(), routing.experts.begin() + n);
}

inline RoutingLoad RoutingLoadRecorder::Take() {
  RoutingLoad out;
  absl::flat_hash_map<int64_t, int64_t> coact;
  {
    absl::MutexLock lock(&mu_);
    out.tokens.assign(tokens_.size(), 0);
    out.tokens.swap(tokens_);
    coact.swap(coact_);
  }
  for (int64_t t : out.tokens) out.total_tokens += t;
  out.coact.reserve(coact.size());
  for (const auto& [key, count] : coact) {
    CoActivationCount c;
    c.b = static_cast<int>(key % experts_);
    c.a = static_cast<int>((key / experts_) % experts_);
    c.layer = static_cast<int>(key / experts_ / experts_);
    c.count = count;
    out.coact.push_back(c);
  }
  auto order = [](const CoActivationCount& x, const CoActivationCount& y) {
    if (x.count != y.count) return x.count > y.count;
    return std::tie(x.layer, x.a, x.b) < std::tie(y.layer, y.a, y.b);
  };
  if (static_cast<int>(out.coact.size()) > max_pairs_) {
    std::partial_sort(out.coact.begin(), out.coact.begin() + max_pairs_, out.coact.end(), order);
    out.coact.resize(max_pairs_);
  } else {
    std::sort(out.coact.begin(), out.coact.end(), order);
  }
  return out;
}

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_DISPATCH_ROUTING_LOAD_H_
