// A fixed pool of KV-cache blocks with a free list.
//
// Thread affinity: not thread-safe. Owned by the attention worker's engine loop (through
// KvCache); callers on other threads must synchronise externally.
#ifndef MOE_ATTENTION_SERVICE_KV_CACHE_BLOCK_ALLOCATOR_H_
#define MOE_ATTENTION_SERVICE_KV_CACHE_BLOCK_ALLOCATOR_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace moe::attention {

// Index of a block in the pool, in [0, num_blocks).
using BlockId = int32_t;

class BlockAllocator {
 public:
  // A pool of `num_blocks` (>= 0) blocks, all free. Blocks are handed out lowest id first.
  explicit BlockAllocator(int num_blocks);

  BlockAllocator(const BlockAllocator&) = delete;
  BlockAllocator& operator=(const BlockAllocator&) = delete;

  // Appends `n` (>= 0) free block ids to `*out`. All-or-nothing: if fewer than `n` blocks are
  // free, returns RESOURCE_EXHAUSTED and neither the pool nor `*out` changes.
  absl::Status Allocate(int n, std::vector<BlockId>* out);

  // Returns blocks to the pool. Freeing a block that is not allocated (double free, out of range)
  // is a broken invariant and aborts.
  void Free(absl::Span<const BlockId> blocks);

  int num_blocks() const { return static_cast<int>(allocated_.size()); }
  int num_free() const { return static_cast<int>(free_.size()); }
  int num_used() const { return num_blocks() - num_free(); }
  bool IsAllocated(BlockId id) const;

  // Fraction of blocks in use, in [0, 1] (0 for an empty pool). Feeds moe_kv_cache_usage_perc.
  double UsageFraction() const;

 private:
  // Free ids as a stack; the back is handed out next (kept so the lowest ids go first).
  std::vector<BlockId> free_;
  std::vector<bool> allocated_;
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_KV_CACHE_BLOCK_ALLOCATOR_H_
