// ModelRunner: the dense part of a MoE model on one attention worker — embeddings, RMSNorms,
// attention over the paged KV cache, the router, shared experts, dense MLP layers and the LM
// head. Routed experts are reached only through an ExpertExecutor (local or remote).
//
// Weights are copied out of the safetensors mmap into anonymous memory at load (PackedLinear
// pre-packs the matrices; norms and biases become F32 vectors), so the hot path never touches
// file pages.
//
// Thread affinity: Forward is called from the engine loop only (it owns scratch buffers).
#ifndef MOE_ATTENTION_SERVICE_ENGINE_MODEL_RUNNER_H_
#define MOE_ATTENTION_SERVICE_ENGINE_MODEL_RUNNER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "attention_service/dispatch/expert_executor.h"
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
  absl::Status Forward(absl::Span<const ForwardChunk> chunks, KvCache* cache,
                       ExpertExecutor* experts, std::vector<float>* logits);

  // True if `name` is a tensor this runner (the dense part) reads: used to open only those.
  static bool IsDenseTensor(std::string_view name);

  const model::ModelConfig& config() const { return config_; }
  size_t weight_bytes() const { return weight_bytes_; }
  // Tokens routed per (layer, expert) since construction.
  const std::vector<int64_t>& expert_token_counts() const { return expert_tokens_; }

 private:
  struct Layer;
  explicit ModelRunner(const model::ModelConfig& config);
  absl::Status LoadLayer(const model::ModelArchitecture& arch, const model::WeightStore& weights,
                         int index, const kernels::PackedLinearOptions& opts);
  void Embed(absl::Span<const ForwardChunk> chunks);
  absl::Status Attention(const Layer& layer, int index, absl::Span<const ForwardChunk> chunks,
                         KvCache* cache);
  absl::Status Mlp(const Layer& layer, int index, ExpertExecutor* experts);

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

  // Scratch, sized per Forward.
  int rows_ = 0;
  std::vector<int> positions_;
  std::vector<float> h_, x_, qkv_, q_, attn_, tmp_, tmp2_, moe_out_, router_logits_, gate_;
  model::Routing routing_;
};

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], for `rows` rows of `n` (HF RMSNorm, F32).
// x and out may alias.
void RmsNorm(const float* x, const float* w, int rows, int n, double eps, float* out,
             int64_t stride = -1);

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_ENGINE_MODEL_RUNNER_H_
