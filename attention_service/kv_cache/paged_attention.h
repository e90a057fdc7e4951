// Causal grouped-query attention over the paged KV cache, F32, CPU.
//
// One call handles one layer for a whole batch that mixes prefill chunks and decode tokens.
// Each chunk is one sequence's new query rows at positions [start, start + n_new); they attend
// to that sequence's cached K/V at positions [0, start + n_new) with a causal mask (row at
// position p sees positions <= p). The new rows' K/V must already be in the cache
// (KvCache::Append) and reserved (start + n_new <= table.num_tokens).
//
// Grouped-query attention: query head h reads kv head h / (num_heads / num_kv_heads).
// Softmax is computed in F32 with max subtraction (online, one pass over the keys).
//
// Thread affinity: called from the engine loop; uses the caller's thread, plus the threads of
// `options.parallel_for` if one is given. Reads the cache only.
#ifndef MOE_ATTENTION_SERVICE_KV_CACHE_PAGED_ATTENTION_H_
#define MOE_ATTENTION_SERVICE_KV_CACHE_PAGED_ATTENTION_H_

#include <functional>

#include "absl/types/span.h"
#include "attention_service/kv_cache/kv_cache.h"

namespace moe::attention {

// One sequence's rows in a batch.
struct AttentionChunk {
  SeqId seq = 0;
  int start = 0;       // position of the chunk's first query row
  int n_new = 0;       // number of query rows (1 for a decode token)
  int row_offset = 0;  // index of the chunk's first row in `q` / `out`
};

// Runs fn(i) for every i in [0, n), possibly concurrently, and returns when all have finished.
using ParallelForFn = std::function<void(int n, const std::function<void(int)>& fn)>;

struct PagedAttentionOptions {
  // Softmax scale; <= 0 means 1 / sqrt(head_dim).
  float scale = 0.0f;
  // If set, independent work items (chunk, kv head, block of query rows) are spread over it;
  // otherwise everything runs on the calling thread.
  ParallelForFn parallel_for;
};

// q:   [total_rows, num_heads, head_dim] (rows of all chunks, at their row_offset)
// out: [total_rows, num_heads, head_dim]; only the chunks' rows are written.
// num_heads must be a positive multiple of cache.num_kv_heads(); head_dim is the cache's.
// Unknown sequences or rows past the reservation abort (broken invariants of the engine).
void PagedAttention(const KvCache& cache, int layer, absl::Span<const AttentionChunk> chunks,
                    int num_heads, const float* q, float* out,
                    const PagedAttentionOptions& options = {});

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_KV_CACHE_PAGED_ATTENTION_H_
