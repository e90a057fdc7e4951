// Engine: the continuous-batching loop's state machine, driven one step at a time.
//
//   engine.Add(id, request)        validates and queues a sequence
//   engine.Step()                  one forward pass for the running batch: chunked prefill under
//                                  a token budget plus one decode token per running sequence;
//                                  returns the new tokens (with logprobs) and finished sequences
//   engine.Cancel(id)              drops a sequence and frees its KV blocks
//
// KV blocks for a sequence's whole budget (prompt + max_tokens) are reserved when it is admitted,
// so a running sequence can never run out of blocks mid-generation: a new sequence that does not
// fit waits (RESOURCE_EXHAUSTED at Add if it could never fit even in an empty cache).
//
// Thread affinity: one thread (the engine loop) calls every method.
#ifndef MOE_ATTENTION_SERVICE_ENGINE_ENGINE_H_
#define MOE_ATTENTION_SERVICE_ENGINE_ENGINE_H_

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "attention_service/engine/model_runner.h"
#include "attention_service/engine/sampler.h"

namespace moe::attention {

struct SequenceRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int max_tokens = 16;      // >= 0; 0 only with prompt_logprobs (scoring / echo)
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;  // in addition to the model's EOS ids
  // Log-probability (and sampling.top_logprobs alternatives) of every prompt token after the
  // first, given the tokens before it (teacher forcing; OpenAI echo + logprobs).
  bool prompt_logprobs = false;
  uint64_t sampler_stream = 0;  // separates the choices of one request (n > 1)
};

enum class FinishReason : uint8_t { kNone, kStop, kLength, kAbort };
const char* FinishReasonName(FinishReason r);

struct GeneratedToken {
  int32_t id = 0;
  float logprob = 0.0f;
  std::vector<TokenLogprob> top;
};

struct SequenceUpdate {
  SeqId id = 0;
  std::vector<GeneratedToken> tokens;           // new tokens this step
  std::vector<GeneratedToken> prompt_logprobs;  // once, when the prompt is done (if asked)
  FinishReason finish = FinishReason::kNone;
  absl::Status error;  // non-OK: the sequence failed (finish is kAbort)
};

struct EngineOptions {
  int max_batch_tokens = 512;  // token budget per step (prefill chunks + decode tokens)
  int max_running = 64;        // sequences in the running batch
  int max_waiting = 1024;      // queued sequences; Add fails RESOURCE_EXHAUSTED past it
  int kv_block_size = 16;
  int64_t kv_cache_bytes = 256ll << 20;
  int max_context = 0;         // 0: the model's max_position_embeddings
  // Micro-batches per step (>= 1): with M > 1 each step's chunks run as up to M overlapping
  // lanes (ModelRunner::Forward), hiding remote expert time behind another lane's attention.
  int micro_batches = 1;
  // A step is split only into micro-batches of at least this many tokens (>= 1): small decode
  // steps are weight-bandwidth bound, and each micro-batch re-reads the dense and expert weights.
  int micro_batch_min_tokens = 1;
};

class Engine {
 public:
  // `runner` and `experts` must outlive the engine.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const EngineOptions& options,
                                                        ModelRunner* runner,
                                                        ExpertExecutor* experts);

  // INVALID_ARGUMENT for a bad request (empty prompt, ids out of vocabulary, prompt + max_tokens
  // past the context, bad sampling params, duplicate id); RESOURCE_EXHAUSTED if the queue is
  // full or the sequence could never fit in the KV cache.
  absl::Status Add(SeqId id, SequenceRequest request);
  // Runs one step. Returns an update for every sequence that produced tokens or finished.
  absl::StatusOr<std::vector<SequenceUpdate>> Step();
  // Drops the sequence (waiting or running); no further updates for it. Unknown ids are ignored.
  void Cancel(SeqId id);

  bool HasWork() const { return !running_.empty() || !waiting_.empty(); }
  int num_running() const { return static_cast<int>(running_.size()); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  double kv_cache_usage() const { return cache_->UsageFraction(); }
  const KvCache& cache() const { return *cache_; }

 private:
  struct Sequence {
    SeqId id;
    SequenceRequest req;
    std::vector<int32_t> tokens;  // prompt + generated
    int computed = 0;             // tokens whose K/V are in the cache
    int generated = 0;
    std::unique_ptr<SequenceSamplerState> sampler;
    std::vector<GeneratedToken> prompt_logprobs;
  };
  Engine(const EngineOptions& options, ModelRunner* runner, ExpertExecutor* experts,
         std::unique_ptr<KvCache> cache);
  void Admit();
  bool IsStop(const Sequence& s, int32_t token) const;

  EngineOptions options_;
  ModelRunner* runner_;
  ExpertExecutor* experts_;
  std::unique_ptr<KvCache> cache_;
  Sampler sampler_;
  std::vector<int32_t> eos_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;
  std::vector<float> logits_;
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_ENGINE_ENGINE_H_
