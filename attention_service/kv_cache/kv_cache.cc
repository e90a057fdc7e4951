#include "attention_service/kv_cache/kv_cache.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace moe::attention {

int64_t KvCache::BytesPerBlock(const KvCacheConfig& c) {
  return int64_t{2} * c.num_layers * c.block_size * c.num_kv_heads * c.head_dim *
         static_cast<int64_t>(sizeof(float));
}

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::Create(const KvCacheConfig& config) {
  if (config.num_layers <= 0 || config.num_kv_heads <= 0 || config.head_dim <= 0 ||
      config.block_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV cache: num_layers, num_kv_heads, head_dim and block_size must be positive, got ",
        config.num_layers, ", ", config.num_kv_heads, ", ", config.head_dim, ", ",
        config.block_size));
  }
  KvCacheConfig c = config;
  const int64_t per_block = BytesPerBlock(c);
  if (c.num_blocks <= 0) {
    const int64_t blocks = c.budget_bytes / per_block;
    if (blocks < 1) {
      return absl::InvalidArgumentError(absl::StrCat("KV cache: budget of ", c.budget_bytes,
                                                     " bytes is less than one block (", per_block,
                                                     " bytes)"));
    }
    c.num_blocks = static_cast<int>(std::min<int64_t>(blocks, std::numeric_limits<int32_t>::max()));
  }
  const size_t bytes = static_cast<size_t>(per_block) * c.num_blocks;
  // Anonymous private mapping: zero pages, physical memory only as blocks are first written.
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return absl::ResourceExhaustedError(
        absl::StrCat("KV cache: cannot map ", bytes, " bytes: ", std::strerror(errno)));
  }
  madvise(p, bytes, MADV_HUGEPAGE);  // best effort
  return std::unique_ptr<KvCache>(new KvCache(c, static_cast<float*>(p), bytes));
}

KvCache::KvCache(const KvCacheConfig& config, float* pool, size_t pool_bytes)
    : config_(config),
      pool_(pool),
      pool_bytes_(pool_bytes),
      token_stride_(static_cast<int64_t>(config.num_kv_heads) * config.head_dim),
      block_floats_(token_stride_ * config.block_size),
      allocator_(config.num_blocks) {}

KvCache::~KvCache() { munmap(pool_, pool_bytes_); }

int KvCache::BlocksForTokens(int num_tokens) const {
  return (num_tokens + config_.block_size - 1) / config_.block_size;
}

absl::Status KvCache::Reserve(SeqId seq, int new_total_tokens) {
  auto it = tables_.find(seq);
  const int current = it == tables_.end() ? 0 : it->second.num_tokens;
  if (new_total_tokens < current) {
    return absl::InvalidArgumentError(absl::StrCat("KV cache: cannot shrink sequence ", seq,
                                                   " from ", current, " to ", new_total_tokens,
                                                   " tokens"));
  }
  const int have = it == tables_.end() ? 0 : static_cast<int>(it->second.blocks.size());
  const int need = BlocksForTokens(new_total_tokens) - have;
  std::vector<BlockId> fresh;
  if (need > 0) MOE_RETURN_IF_ERROR(allocator_.Allocate(need, &fresh));
  BlockTable& table = it == tables_.end() ? tables_[seq] : it->second;
  table.blocks.insert(table.blocks.end(), fresh.begin(), fresh.end());
  table.num_tokens = new_total_tokens;
  return absl::OkStatus();
}

void KvCache::Release(SeqId seq) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  allocator_.Free(it->second.blocks);
  tables_.erase(it);
}

const BlockTable* KvCache::Table(SeqId seq) const {
  auto it = tables_.find(seq);
  return it == tables_.end() ? nullptr : &it->second;
}

int64_t KvCache::Offset(int layer, int kind, BlockId block, int slot) const {
  MOE_CHECK(layer >= 0 && layer < config_.num_layers);
  MOE_CHECK(block >= 0 && block < config_.num_blocks);
  MOE_CHECK(slot >= 0 && slot < config_.block_size);
  return ((static_cast<int64_t>(layer) * 2 + kind) * config_.num_blocks + block) * block_floats_ +
         slot * token_stride_;
}

float* KvCache::KeyAt(int layer, BlockId block, int slot) {
  return pool_ + Offset(layer, 0, block, slot);
}
float* KvCache::ValueAt(int layer, BlockId block, int slot) {
  return pool_ + Offset(layer, 1, block, slot);
}
const float* KvCache::KeyAt(int layer, BlockId block, int slot) const {
  return pool_ + Offset(layer, 0, block, slot);
}
const float* KvCache::ValueAt(int layer, BlockId block, int slot) const {
  return pool_ + Offset(layer, 1, block, slot);
}

void KvCache::Append(int layer, SeqId seq, int position, const float* k, const float* v) {
  AppendRows(layer, seq, position, 1, k, v);
}

void KvCache::AppendRows(int layer, SeqId seq, int first_position, int n, const float* k,
                         const float* v) {
  auto it = tables_.find(seq);
  MOE_CHECK(it != tables_.end());
  const BlockTable& table = it->second;
  MOE_CHECK(first_position >= 0 && n >= 0 && first_position + n <= table.num_tokens);
  const size_t row_bytes = static_cast<size_t>(token_stride_) * sizeof(float);
  for (int i = 0; i < n; ++i) {
    const int pos = first_position + i;
    const BlockId block = table.blocks[pos / config_.block_size];
    const int slot = pos % config_.block_size;
    std::memcpy(KeyAt(layer, block, slot), k + i * token_stride_, row_bytes);
    std::memcpy(ValueAt(layer, block, slot), v + i * token_stride_, row_bytes);
  }
}

}  // namespace moe::attention
