#include "attention_service/engine/micro_batch.h"

#include <pthread.h>

#include <algorithm>
#include <cstdlib>
#include <string>

namespace moe::attention {

std::vector<int> SplitMicroBatches(absl::Span<const int> tokens_per_chunk, int micro_batches,
                                   int min_tokens) {
  const int n = static_cast<int>(tokens_per_chunk.size());
  std::vector<int> bounds;
  if (n == 0) return bounds;
  int64_t total = 0;
  for (int t : tokens_per_chunk) total += t;
  const int64_t by_size = std::max<int64_t>(1, total / std::max(min_tokens, 1));
  const int k = static_cast<int>(std::min<int64_t>({std::max(micro_batches, 1), n, by_size}));
  bounds.push_back(0);
  int end = 0;      // chunks consumed
  int64_t sum = 0;  // their tokens
  for (int g = 1; g < k; ++g) {
    // Cut where the prefix sum is closest to g/k of the total, leaving at least one chunk for
    // this group and for each group after it.
    const double target = static_cast<double>(total) * g / k;
    const int lo = bounds.back() + 1, hi = n - (k - g);
    while (end < lo) sum += tokens_per_chunk[end++];
    while (end < hi && std::abs(static_cast<double>(sum + tokens_per_chunk[end]) - target) <=
                           std::abs(static_cast<double>(sum) - target)) {
      sum += tokens_per_chunk[end++];
    }
    bounds.push_back(end);
  }
  bounds.push_back(n);
  return bounds;
}

LaneThreads::~LaneThreads() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    start_.SignalAll();
  }
  for (std::thread& t : threads_) t.join();
}

void LaneThreads::Run(int n, absl::FunctionRef<void(int)> fn) {
  if (n <= 1) {
    if (n == 1) fn(0);
    return;
  }
  while (static_cast<int>(threads_.size()) < n - 1) {
    const int lane = static_cast<int>(threads_.size()) + 1;
    uint64_t generation;
    {
      absl::MutexLock lock(&mu_);
      generation = generation_;
    }
    threads_.emplace_back([this, lane, generation] { Loop(lane, generation); });
    const std::string name = "mb-lane-" + std::to_string(lane);
    pthread_setname_np(threads_.back().native_handle(), name.c_str());
  }
  {
    absl::MutexLock lock(&mu_);
    fn_ = &fn;
    lanes_ = n;
    pending_ = n - 1;
    ++generation_;
    start_.SignalAll();
  }
  fn(0);
  absl::MutexLock lock(&mu_);
  while (pending_ > 0) done_.Wait(&mu_);
  fn_ = nullptr;
}

void LaneThreads::Loop(int lane, uint64_t seen) {
  for (;;) {
    absl::FunctionRef<void(int)>* fn = nullptr;
    {
      absl::MutexLock lock(&mu_);
      while (!stop_ && (generation_ == seen || lane >= lanes_)) start_.Wait(&mu_);
      if (stop_) return;
      seen = generation_;
      fn = fn_;
    }
    (*fn)(lane);
    absl::MutexLock lock(&mu_);
    if (--pending_ == 0) done_.Signal();
  }
}

}  // namespace moe::attention
