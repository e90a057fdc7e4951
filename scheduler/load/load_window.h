// LoadWindow: per-(layer, expert) token counts and consecutive-layer co-activation counts over
// a sliding time window, kept as a ring of fixed-width buckets. Time is passed in (`now`), so
// tests drive it with a FakeClock.
//
// Thread-safety: not thread-safe; its owner (SchedulerCore) guards it.
#ifndef MOE_SCHEDULER_LOAD_LOAD_WINDOW_H_
#define MOE_SCHEDULER_LOAD_LOAD_WINDOW_H_

#include <cstdint>
#include <deque>
#include <map>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "scheduler/placement/problem.h"

namespace moe::scheduler {

struct LoadReport {
  std::vector<int64_t> tokens;  // [layers * experts], counts since the reporter's last report
  std::vector<CoActivation> coact;
};

struct LoadSnapshot {
  std::vector<int64_t> tokens;       // [layers * experts] summed over the window
  std::vector<CoActivation> coact;   // summed per (layer, a, b), sorted
  int64_t total_tokens = 0;
};

class LoadWindow {
 public:
  // window: how far back counts are kept; bucket: granularity (window is rounded up to whole
  // buckets). Both > 0.
  LoadWindow(int layers, int experts, absl::Duration window, absl::Duration bucket);

  // INVALID_ARGUMENT on a wrong size, a negative count or an out-of-range co-activation;
  // nothing is added then.
  absl::Status Add(const LoadReport& report, absl::Time now);
  // Sum over the buckets that overlap (now - window, now].
  LoadSnapshot Totals(absl::Time now);

 private:
  struct Bucket {
    int64_t index = 0;  // floor((time - epoch) / bucket)
    std::vector<int64_t> tokens;
    std::map<std::tuple<int, int, int>, int64_t> coact;
  };
  int64_t IndexOf(absl::Time t) const;
  void Expire(absl::Time now);

  int layers_;
  int experts_;
  int64_t buckets_;  // window / bucket, rounded up
  absl::Duration bucket_;
  std::deque<Bucket> ring_;  // oldest first
};

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_LOAD_LOAD_WINDOW_H_
