// ModelRunner: the dense part of a MoE model on one attention worker — embeddings, RMSNorms,
// attention over the paged KV cache, the router, shared experts, dense MLP layers and the LM
// head. Routed experts are reached only through an ExpertExecutor (local or remote); each lane
// passes its own DispatchMemory (reset per Forward) to every layer's Run, so a remote executor
// can keep a token's experts on the instances of its previous MoE layer.
//
// Weights are copied out of the safetensors mmap into anonymous memory at load (PackedLinear
// pre-packs the matrices; norms and biases become F32 vectors), so the hot path never touches
// file pages.
//
// Micro-batches (Forward's `micro_batches` > 1): the chunks are split into contiguous groups
// of about equal token count (micro_batch.h) that run as concurrent lanes, lane 0 on the
// calling thread and the others on persistent "mb-lane-<i>" threads, each with its own scratch
// buffers. A compute baton (a mutex) lets one lane at a time compute (norms, GEMMs, attention
// and KV-cache writes, router, shared expert: everything that touches the kernels' thread
// pool, the cache or the runner's counters); if the executor ComputesElsewhere(), a lane
// releases the baton exactly while it waits in ExpertExecutor::Run, so another lane's
// attention overlaps its remote experts. The final norm and LM head run once for all lanes
// after they finish (reading the head's weights once). Results equal a single batch up to
// float rounding (GEMMs with a different row count may round differently).
//
// Thread affinity: Forward is called from one thread at a time (the engine loop); it owns the
// scratch buffers and the lane threads.
#ifndef MOE_ATTENTION_SERVICE_ENGINE_MODEL_RUNNER_H_
#define MOE_ATTENTION_SERVICE_ENGINE_MODEL_RUNNER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "attention_service/dispatch/expert_executor.h"
#include "attention_service/engine/micro_batch.h"
#include "attention_service/kv_cache/kv_cache.h"
#include "attention_service/kv_cache/rope.h"
#include "model/arch/architecture.h"
#include "model/config.h"
#include "model/kernels/packed_linear.h"
#include "model/safetensors.h"

namespace moe::attention {

// One sequence's new tokens in a forward batch.
struct ForwardChunk {
  SeqId seq = 0;
  int start = 0;                       // position of tokens[0]
  absl::Span<const int32_t> tokens;    // the new tokens (prefill chunk or one decode token)
  enum class Logits : uint8_t { kNone, kLast, kAll } logits = Logits::kLast;
};

// Per-layer expert statistics of the last Forward (tokens routed per expert).
struct RoutingStats {
  std::vector<int64_t> tokens_per_expert;  // [layers * experts]
};

class ModelRunner {
 public:
  // Loads the dense weights named by `arch` from `weights` (which may hold only them).
  static absl::StatusOr<std::unique_ptr<ModelRunner>> Load(
      const model::ModelConfig& config, const model::ModelArchitecture& arch,
      const model::WeightStore& weights, const kernels::PackedLinearOptions& linear_options = {});

  ~ModelRunner();

  // Runs every layer for the chunks' tokens, appending their K/V to `cache` (positions must be
  // reserved there), and writes logits: for each chunk in order, its last row (kLast) or all its
  // rows (kAll), as consecutive [vocab] rows of *logits.
  // With micro_batches > 1 (and at least two chunks), the batch runs as up to that many
  // overlapping lanes of at least `micro_batch_min_tokens` tokens each (SplitMicroBatches; see
  // above); the output is the same.
  absl::Status Forward(absl::Span<const ForwardChunk> chunks, KvCache* cache,
                       ExpertExecutor* experts, std::vector<float>* logits,
                       int micro_batches = 1, int micro_batch_min_tokens = 1);

  // True if `name` is a tensor this runner (the dense part) reads: used to open only those.
  static bool IsDenseTensor(std::string_view name);

  const model::ModelConfig& config() const { return config_; }
  size_t weight_bytes() const { return weight_bytes_; }
  // Tokens routed per (layer, expert) since construction.
  const std::vector<int64_t>& expert_token_counts() const { return expert_tokens_; }
  // Times, since construction, that a micro-batch lane took the compute baton while another
  // lane was waiting in ExpertExecutor::Run (compute overlapped with remote experts).
  int64_t micro_batch_overlaps() const { return overlaps_; }

 private:
  struct Layer;
  explicit ModelRunner(const model::ModelConfig& config);
  absl::Status LoadLayer(const model::ModelArchitecture& arch, const model::WeightStore& weights,
                         int index, const kernels::PackedLinearOptions& opts);
  struct Lane;
  struct LaneSync;
  // Embedding and every layer for lane.chunks; writes the hidden rows that want logits to
  // head_rows ([LogitRows(lane.chunks), hidden]).
  absl::Status RunLane(Lane& lane, KvCache* cache, ExpertExecutor* experts, LaneSync* sync,
                       float* head_rows);
  void Embed(Lane& lane);
  absl::Status Attention(Lane& lane, const Layer& layer, int index, KvCache* cache);
  absl::Status Mlp(Lane& lane, const Layer& layer, int index, ExpertExecutor* experts,
                   LaneSync* sync);

  model::ModelConfig config_;
  model::RouterSpec router_;
  std::vector<std::unique_ptr<Layer>> layers_;
  DType embed_dtype_ = DType::kF32;
  std::vector<uint8_t> embed_;  // [vocab, hidden] in embed_dtype_
  std::vector<float> final_norm_;
  std::optional<kernels::PackedLinear> lm_head_;
  std::optional<RopeTable> rope_;
  size_t weight_bytes_ = 0;
  std::vector<int64_t> expert_tokens_;

  // Per-lane scratch (lane 0 also serves single-batch Forwards), sized per Forward.
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::unique_ptr<LaneThreads> lane_threads_;  // created at the first micro-batched Forward
  int64_t overlaps_ = 0;                       // written under the compute baton
  std::vector<float> head_rows_;  // [logits rows, hidden]: input of the final norm + LM head
};

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], for `rows` rows of `n` (HF RMSNorm, F32).
// x and out may alias.
void RmsNorm(const float* x, const float* w, int rows, int n, double eps, float* out,
             int64_t stride = -1);

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_ENGINE_MODEL_RUNNER_H_
