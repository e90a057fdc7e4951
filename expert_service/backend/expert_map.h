// The (layer, expert) -> loaded expert map every ExpertBackend keeps, with its byte accounting
// and make-before-break safety: Acquire hands out shared references, so an expert unloaded
// while a Run uses it is freed only when that Run drops it. Thread-safe.
// E is the backend's packed expert type; it must have `int64_t bytes() const`.
#ifndef MOE_EXPERT_SERVICE_BACKEND_EXPERT_MAP_H_
#define MOE_EXPERT_SERVICE_BACKEND_EXPERT_MAP_H_

#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "expert_service/backend/expert_backend.h"

namespace moe::expert {

template <typename E>
class ExpertMap {
 public:
  using Key = std::pair<int, int>;  // (layer, expert)
  using Entry = std::pair<Key, std::shared_ptr<const E>>;

  // `name` prefixes error messages ("cpu backend"); memory_limit <= 0 means none.
  ExpertMap(std::string_view name, int64_t memory_limit)
      : name_(name), memory_limit_(memory_limit) {}

  // Installs every entry (replacing ones with the same key), or none: RESOURCE_EXHAUSTED when
  // the weights would pass the memory limit.
  absl::Status Install(std::vector<Entry> entries) {
    std::vector<std::shared_ptr<const E>> replaced_entries;  // freed after the lock
    absl::MutexLock lock(&mu_);
    int64_t delta = 0;
    for (const auto& [key, e] : entries) {
      delta += e->bytes();
      auto it = map_.find(key);
      if (it != map_.end()) delta -= it->second->bytes();
    }
    if (memory_limit_ > 0 && bytes_ + delta > memory_limit_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          name_, ": loading ", entries.size(), " experts needs ", bytes_ + delta,
          " bytes of weights, over the limit of ", memory_limit_));
    }
    for (auto& [key, e] : entries) {
      auto& slot = map_[key];
      if (slot) replaced_entries.push_back(std::move(slot));
      slot = std::move(e);
    }
    bytes_ += delta;
    return absl::OkStatus();
  }

  // Drops the keys; unknown keys are ignored.
  void Remove(absl::Span<const std::pair<int, int>> keys) {
    std::vector<std::shared_ptr<const E>> dropped;  // freed after the lock
    absl::MutexLock lock(&mu_);
    for (const auto& key : keys) {
      auto it = map_.find(key);
      if (it == map_.end()) continue;
      bytes_ -= it->second->bytes();
      dropped.push_back(std::move(it->second));
      map_.erase(it);
    }
  }

  bool Contains(int layer, int expert) const {
    absl::MutexLock lock(&mu_);
    return map_.contains(Key{layer, expert});
  }

  // The experts of every shard, in shard order; NOT_FOUND naming the first one not loaded.
  absl::StatusOr<std::vector<std::shared_ptr<const E>>> Acquire(
      int layer, absl::Span<const ExpertShard> shards) const {
    std::vector<std::shared_ptr<const E>> out(shards.size());
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < shards.size(); ++i) {
      auto it = map_.find(Key{layer, shards[i].expert});
      if (it == map_.end()) {
        return absl::NotFoundError(absl::StrCat(name_, ": expert (layer ", layer, ", expert ",
                                                shards[i].expert, ") is not loaded"));
      }
      out[i] = it->second;
    }
    return out;
  }

  // Weight bytes held and experts loaded, read together.
  std::pair<int64_t, int> Totals() const {
    absl::MutexLock lock(&mu_);
    return {bytes_, static_cast<int>(map_.size())};
  }

 private:
  const std::string name_;
  const int64_t memory_limit_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<Key, std::shared_ptr<const E>> map_ ABSL_GUARDED_BY(mu_);
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace moe::expert

#endif  // MOE_EXPERT_SERVICE_BACKEND_EXPERT_MAP_H_
