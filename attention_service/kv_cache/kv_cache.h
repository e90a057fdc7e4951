// Paged KV cache for all layers of one attention worker, F32.
//
// Memory layout: one anonymous mmap for the whole pool, sized at construction:
//
//   pool[layer][kind][block][slot][kv_head][head_dim]      kind 0 = K, 1 = V
//
// i.e. per layer a K pool and a V pool of `num_blocks` blocks of
// [block_size, num_kv_heads, head_dim] floats. The token at position p of a sequence lives in
// block table.blocks[p / block_size], slot p % block_size, for every layer. Within a block, one
// token's K row (all kv heads) is contiguous, and one head's vector (head_dim floats) is
// contiguous; consecutive tokens of one head are `num_kv_heads * head_dim` floats apart.
//
// Thread affinity: not thread-safe. The engine loop owns it; the attention kernel may read it
// from worker threads while the engine loop waits for that kernel (no concurrent mutation).
#ifndef MOE_ATTENTION_SERVICE_KV_CACHE_KV_CACHE_H_
#define MOE_ATTENTION_SERVICE_KV_CACHE_KV_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "attention_service/kv_cache/block_allocator.h"

namespace moe::attention {

// Identifies one sequence (one choice of one request) in the cache.
using SeqId = uint64_t;

struct KvCacheConfig {
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 16;  // tokens per block
  // Pool size: `num_blocks` if > 0, else as many blocks as fit in `budget_bytes`.
  int num_blocks = 0;
  int64_t budget_bytes = 0;
};

// The blocks of one sequence, in position order, and how many token positions are reserved
// (valid positions are [0, num_tokens); capacity is blocks.size() * block_size >= num_tokens).
struct BlockTable {
  std::vector<BlockId> blocks;
  int num_tokens = 0;
};

class KvCache {
 public:
  // Validates `config` (all sizes positive; a budget too small for one block is
  // INVALID_ARGUMENT) and maps the pool (RESOURCE_EXHAUSTED if the mmap fails).
  static absl::StatusOr<std::unique_ptr<KvCache>> Create(const KvCacheConfig& config);

  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  // Bytes one block takes across all layers, K and V.
  static int64_t BytesPerBlock(const KvCacheConfig& config);

  // Grows `seq`'s table (creating it if new) so positions [0, new_total_tokens) are reserved,
  // allocating blocks as needed, and sets num_tokens = new_total_tokens. Never shrinks:
  // new_total_tokens < current num_tokens (or < 0) is INVALID_ARGUMENT. If the pool lacks
  // blocks, returns RESOURCE_EXHAUSTED and leaves the sequence (and everything else) untouched;
  // a new sequence is then not created.
  absl::Status Reserve(SeqId seq, int new_total_tokens);

  // Returns all of `seq`'s blocks to the pool and forgets it. No-op for an unknown sequence.
  void Release(SeqId seq);

  bool Contains(SeqId seq) const { return tables_.contains(seq); }
  // nullptr if `seq` is unknown. Valid until the next Reserve/Release of any sequence.
  const BlockTable* Table(SeqId seq) const;
  int num_sequences() const { return static_cast<int>(tables_.size()); }

  // Writes one token's K and V for layer `layer`: `k` and `v` are [num_kv_heads, head_dim].
  // `position` must be < the sequence's num_tokens (reserve first); violations abort.
  void Append(int layer, SeqId seq, int position, const float* k, const float* v);
  // Writes `n` consecutive tokens starting at `first_position`: `k`, `v` are
  // [n, num_kv_heads, head_dim] contiguous.
  void AppendRows(int layer, SeqId seq, int first_position, int n, const float* k, const float* v);

  // Start of the [num_kv_heads, head_dim] K / V row of (layer, block, slot).
  float* KeyAt(int layer, BlockId block, int slot);
  float* ValueAt(int layer, BlockId block, int slot);
  const float* KeyAt(int layer, BlockId block, int slot) const;
  const float* ValueAt(int layer, BlockId block, int slot) const;

  const KvCacheConfig& config() const { return config_; }
  int block_size() const { return config_.block_size; }
  int num_kv_heads() const { return config_.num_kv_heads; }
  int head_dim() const { return config_.head_dim; }
  int num_layers() const { return config_.num_layers; }
  // Floats between consecutive tokens (slots) of one block: num_kv_heads * head_dim.
  int64_t token_stride() const { return token_stride_; }

  const BlockAllocator& allocator() const { return allocator_; }
  int num_free_blocks() const { return allocator_.num_free(); }
  // Fraction of blocks in use, in [0, 1].
  double UsageFraction() const { return allocator_.UsageFraction(); }
  // Blocks needed to hold `num_tokens` tokens.
  int BlocksForTokens(int num_tokens) const;

 private:
  KvCache(const KvCacheConfig& config, float* pool, size_t pool_bytes);
  int64_t Offset(int layer, int kind, BlockId block, int slot) const;

  KvCacheConfig config_;  // num_blocks resolved
  float* pool_;
  size_t pool_bytes_;
  int64_t token_stride_;
  int64_t block_floats_;
  BlockAllocator allocator_;
  absl::flat_hash_map<SeqId, BlockTable> tables_;
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_KV_CACHE_KV_CACHE_H_
