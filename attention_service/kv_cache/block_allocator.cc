#include "attention_service/kv_cache/block_allocator.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace moe::attention {

BlockAllocator::BlockAllocator(int num_blocks) : allocated_(num_blocks > 0 ? num_blocks : 0) {
  MOE_CHECK(num_blocks >= 0);
  free_.reserve(num_blocks);
  for (BlockId id = num_blocks - 1; id >= 0; --id) free_.push_back(id);
}

absl::Status BlockAllocator::Allocate(int n, std::vector<BlockId>* out) {
  MOE_CHECK(n >= 0);
  if (n > num_free()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("KV cache: need ", n, " blocks, ", num_free(), " of ", num_blocks(), " free"));
  }
  out->reserve(out->size() + n);
  for (int i = 0; i < n; ++i) {
    BlockId id = free_.back();
    free_.pop_back();
    allocated_[id] = true;
    out->push_back(id);
  }
  return absl::OkStatus();
}

void BlockAllocator::Free(absl::Span<const BlockId> blocks) {
  for (BlockId id : blocks) {
    MOE_CHECK(IsAllocated(id));
    allocated_[id] = false;
    free_.push_back(id);
  }
}

bool BlockAllocator::IsAllocated(BlockId id) const {
  return id >= 0 && id < num_blocks() && allocated_[id];
}

double BlockAllocator::UsageFraction() const {
  if (num_blocks() == 0) return 0.0;
  return static_cast<double>(num_used()) / num_blocks();
}

}  // namespace moe::attention
