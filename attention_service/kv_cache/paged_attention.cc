#include "attention_service/kv_cache/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "attention_service/kv_cache/fast_exp.h"
#include "common/status.h"

namespace moe::attention {
namespace {

// Query rows handled by one work item; together with the GQA group this bounds the online
// softmax state (rows * group * head_dim floats) so it stays in L1/L2 while a K/V block is
// reused for all of them.
constexpr int kMaxQueryVectorsPerTile = 32;

struct WorkItem {
  int chunk;
  int kv_head;
  int row_begin;  // rows of the chunk, [row_begin, row_end)
  int row_end;
};

// Scores are computed for this many tokens at once (one AVX-512 register).
constexpr int kTokenLanes = 16;
int PaddedBlock(int block_size) {
  return (block_size + kTokenLanes - 1) / kTokenLanes * kTokenLanes;
}

// Everything one tile needs; plain pointers so the hot function can be cloned per ISA.
struct TileArgs {
  const float* k_layer;  // K of block 0, slot 0, kv head 0 of this layer
  const float* v_layer;
  int64_t block_floats;   // floats per block
  int64_t token_stride;   // floats between slots
  const BlockId* blocks;  // the sequence's block table
  int block_size;
  int head_dim;
  int group;  // query heads per kv head
  int kv_head;
  int start;  // position of row 0 of the chunk
  int row_begin, row_end;
  const float* q;  // row 0 of the chunk, head 0
  float* out;
  int64_t row_floats;  // num_heads * head_dim
  float scale;
  bool transpose_k;  // score through a transposed copy of K (see AttendTile)
  // Scratch, sized by the caller: m/l [rows*group], acc [rows*group*head_dim],
  // s [group * PaddedBlock(block_size)], kt [head_dim * PaddedBlock(block_size)].
  float* m;
  float* l;
  float* acc;
  float* s;
  float* kt;
};

// acc[0, 16*NV) += sum over t < nt of w[t] * v[t * stride + (0, 16*NV)], token by token in
// order (the same operations as the generic loop), with the accumulator held in NV vector
// registers instead of going through memory once per token. Vector extensions, so each
// AttendTile clone compiles it for its own ISA.
typedef float Float16x __attribute__((vector_size(64)));

template <int NV>
inline __attribute__((always_inline)) void AccumulateV(const float* w, int nt, const float* v,
                                                       int64_t stride, float* acc) {
  Float16x a[NV];
  for (int i = 0; i < NV; ++i) std::memcpy(&a[i], acc + 16 * i, sizeof(Float16x));
  for (int t = 0; t < nt; ++t) {
    const float* vv = v + t * stride;
    const float wt = w[t];
    for (int i = 0; i < NV; ++i) {
      Float16x x;
      std::memcpy(&x, vv + 16 * i, sizeof(Float16x));
      a[i] += wt * x;
    }
  }
  for (int i = 0; i < NV; ++i) std::memcpy(acc + 16 * i, &a[i], sizeof(Float16x));
}

// out[g * out_stride + (0, 16)] = sum over j < d of q[g * d + j] * kt[j * kt_stride + (0, 16)]
// for g < G, each sum accumulated over j in order (G independent register chains).
template <int G>
inline __attribute__((always_inline)) void ScoreTransposed(const float* q, int d,
                                                           const float* kt, int kt_stride,
                                                           float* out) {
  Float16x v[G];
  for (int g = 0; g < G; ++g) v[g] = Float16x{};
  for (int j = 0; j < d; ++j) {
    Float16x k;
    std::memcpy(&k, kt + static_cast<int64_t>(j) * kt_stride, sizeof(Float16x));
    for (int g = 0; g < G; ++g) v[g] += q[g * d + j] * k;
  }
  for (int g = 0; g < G; ++g) {
    std::memcpy(out + static_cast<int64_t>(g) * kt_stride, &v[g], sizeof(Float16x));
  }
}

// Online-softmax attention for one tile: the tile's query vectors (rows x GQA group) against
// the sequence's K/V one block at a time. Scores are either dot products per token (a
// horizontal reduction each), or, with transpose_k, vertical multiply-adds over 16 tokens at a
// time from a copy of the block's K transposed to kt[head_dim][padded block_size]. The copy
// costs about as much as scoring one query vector, so it pays off when many query vectors
// share it (prefill, wide GQA groups) or when head_dim is small (reductions dominate). Cloned for
// AVX-512 / AVX2 / baseline x86-64 and dispatched at load time (ifunc), so the binary runs on any
// x86-64.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void AttendTile(const TileArgs& a) {
  const int d = a.head_dim;
  const int bs = a.block_size;
  const int bs_pad = PaddedBlock(bs);
  const int g_count = a.group;
  const int rows = a.row_end - a.row_begin;
  const int nq = rows * g_count;
  for (int i = 0; i < nq; ++i) {
    a.m[i] = -std::numeric_limits<float>::infinity();
    a.l[i] = 0.0f;
  }
  std::fill(a.acc, a.acc + static_cast<int64_t>(nq) * d, 0.0f);

  const int last_pos = a.start + a.row_end - 1;
  const int num_blocks = last_pos / bs + 1;
  const int64_t head_offset = static_cast<int64_t>(a.kv_head) * d;
  for (int b = 0; b < num_blocks; ++b) {
    const int base = b * bs;
    const float* kb = a.k_layer + a.blocks[b] * a.block_floats + head_offset;
    const float* vb = a.v_layer + a.blocks[b] * a.block_floats + head_offset;
    // Tokens of this block that any row of the tile sees.
    const int block_tokens = std::min(bs, last_pos - base + 1);
    if (a.transpose_k) {
      for (int t = 0; t < block_tokens; ++t) {
        const float* kv = kb + t * a.token_stride;
        for (int j = 0; j < d; ++j) a.kt[j * bs_pad + t] = kv[j];
      }
    }
    // Rows whose position is < base see nothing of this block.
    const int first_row = std::max(a.row_begin, base - a.start);
    for (int r = first_row; r < a.row_end; ++r) {
      const int pos = a.start + r;
      const int nt = std::min(bs, pos - base + 1);
      if (a.transpose_k) {
        // Scores of all the row's query vectors: s[g][t], 16 tokens at a time in registers (kt
        // rows are padded to a multiple of 16), four query vectors at once so their
        // multiply-add chains overlap.
        const float* q0 = a.q + r * a.row_floats + static_cast<int64_t>(a.kv_head) * g_count * d;
        for (int t0 = 0; t0 < nt; t0 += kTokenLanes) {
          int g = 0;
          for (; g + 4 <= g_count; g += 4) {
            ScoreTransposed<4>(q0 + g * d, d, a.kt + t0, bs_pad, a.s + g * bs_pad + t0);
          }
          for (; g < g_count; ++g) {
            ScoreTransposed<1>(q0 + g * d, d, a.kt + t0, bs_pad, a.s + g * bs_pad + t0);
          }
        }
      }
      for (int g = 0; g < g_count; ++g) {
        const int qi = (r - a.row_begin) * g_count + g;
        const float* qv =
            a.q + r * a.row_floats + (static_cast<int64_t>(a.kv_head) * g_count + g) * d;
        float* sc = a.transpose_k ? a.s + g * bs_pad : a.s;
        for (int t = 0; !a.transpose_k && t < nt; ++t) {
          const float* kv = kb + t * a.token_stride;
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int j = 0; j < d; ++j) dot += qv[j] * kv[j];
          sc[t] = dot;
        }
        float block_max = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : block_max)
        for (int t = 0; t < nt; ++t) {
          sc[t] *= a.scale;
          block_max = sc[t] > block_max ? sc[t] : block_max;
        }
        float* acc = a.acc + static_cast<int64_t>(qi) * d;
        const float m_new = std::max(a.m[qi], block_max);
        if (m_new > a.m[qi]) {
          const float corr = ExpNonPositive(a.m[qi] - m_new);  // 0 when m was -inf
          a.l[qi] *= corr;
#pragma omp simd
          for (int j = 0; j < d; ++j) acc[j] *= corr;
          a.m[qi] = m_new;
        }
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int t = 0; t < nt; ++t) {
          sc[t] = ExpNonPositive(sc[t] - m_new);
          sum += sc[t];
        }
        a.l[qi] += sum;
        switch (d) {  // accumulator in registers for common head sizes (same arithmetic)
          case 64: AccumulateV<4>(sc, nt, vb, a.token_stride, acc); break;
          case 128: AccumulateV<8>(sc, nt, vb, a.token_stride, acc); break;
          default:
            for (int t = 0; t < nt; ++t) {
              const float w = sc[t];
              const float* vv = vb + t * a.token_stride;
#pragma omp simd
              for (int j = 0; j < d; ++j) acc[j] += w * vv[j];
            }
        }
      }
    }
  }
  for (int r = a.row_begin; r < a.row_end; ++r) {
    for (int g = 0; g < g_count; ++g) {
      const int qi = (r - a.row_begin) * g_count + g;
      const float inv = 1.0f / a.l[qi];  // l >= 1: the max term contributes exp(0)
      const float* acc = a.acc + static_cast<int64_t>(qi) * d;
      float* o = a.out + r * a.row_floats + (static_cast<int64_t>(a.kv_head) * g_count + g) * d;
#pragma omp simd
      for (int j = 0; j < d; ++j) o[j] = acc[j] * inv;
    }
  }
}

}  // namespace

void PagedAttention(const KvCache& cache, int layer, absl::Span<const AttentionChunk> chunks,
                    int num_heads, const float* q, float* out,
                    const PagedAttentionOptions& options) {
  const int kv_heads = cache.num_kv_heads();
  const int d = cache.head_dim();
  MOE_CHECK(layer >= 0 && layer < cache.num_layers());
  MOE_CHECK(num_heads > 0 && num_heads % kv_heads == 0);
  const int group = num_heads / kv_heads;
  const int rows_per_tile = std::max(1, kMaxQueryVectorsPerTile / group);
  // Measured with paged_attention_benchmark (AVX-512): transposing wins for head_dim 16 even at
  // decode, and for head_dim 128 with a prefill tile (32 query vectors); loses at decode with GQA
  // 4-8.
  constexpr int kTransposeMinQueryVectors = 16;
  constexpr int kTransposeMaxReductionDim = 32;

  std::vector<const BlockTable*> tables(chunks.size());
  std::vector<WorkItem> items;
  for (size_t c = 0; c < chunks.size(); ++c) {
    const AttentionChunk& ch = chunks[c];
    const BlockTable* table = cache.Table(ch.seq);
    MOE_CHECK(table != nullptr);
    MOE_CHECK(ch.start >= 0 && ch.n_new >= 0 && ch.row_offset >= 0);
    MOE_CHECK(ch.start + ch.n_new <= table->num_tokens);
    tables[c] = table;
    for (int h = 0; h < kv_heads; ++h) {
      for (int r = 0; r < ch.n_new; r += rows_per_tile) {
        items.push_back({static_cast<int>(c), h, r, std::min(ch.n_new, r + rows_per_tile)});
      }
    }
  }
  if (items.empty()) return;

  // Block 0, slot 0 of this layer; blocks are block_floats apart within a layer (see
  // kv_cache.h). Computed from a real block id only when the pool has one.
  const float* k_layer = cache.KeyAt(layer, 0, 0);
  const float* v_layer = cache.ValueAt(layer, 0, 0);
  const int64_t block_floats = cache.token_stride() * cache.block_size();
  const int64_t row_floats = static_cast<int64_t>(num_heads) * d;
  const float scale = options.scale > 0 ? options.scale : 1.0f / std::sqrt(static_cast<float>(d));

  auto run = [&](int i) {
    thread_local std::vector<float> scratch;
    const int nq = rows_per_tile * group;
    const size_t need = static_cast<size_t>(nq) * (2 + d) +
                        static_cast<size_t>(PaddedBlock(cache.block_size())) * (group + d);
    if (scratch.size() < need) scratch.resize(need);
    const WorkItem& w = items[i];
    const AttentionChunk& ch = chunks[w.chunk];
    TileArgs a;
    a.k_layer = k_layer;
    a.v_layer = v_layer;
    a.block_floats = block_floats;
    a.token_stride = cache.token_stride();
    a.blocks = tables[w.chunk]->blocks.data();
    a.block_size = cache.block_size();
    a.head_dim = d;
    a.group = group;
    a.kv_head = w.kv_head;
    a.start = ch.start;
    a.row_begin = w.row_begin;
    a.row_end = w.row_end;
    a.q = q + ch.row_offset * row_floats;
    a.out = out + ch.row_offset * row_floats;
    a.row_floats = row_floats;
    a.scale = scale;
    a.transpose_k = d <= kTransposeMaxReductionDim ||
                    (w.row_end - w.row_begin) * group >= kTransposeMinQueryVectors;
    a.m = scratch.data();
    a.l = a.m + nq;
    a.acc = a.l + nq;
    a.s = a.acc + static_cast<size_t>(nq) * d;
    a.kt = a.s + static_cast<size_t>(group) * PaddedBlock(cache.block_size());
    AttendTile(a);
  };
  const int n = static_cast<int>(items.size());
  if (options.parallel_for && n > 1) {
    options.parallel_for(n, run);
  } else {
    for (int i = 0; i < n; ++i) run(i);
  }
}

}  // namespace moe::attention
