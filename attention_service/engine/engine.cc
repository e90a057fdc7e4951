#include "attention_service/engine/engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace moe::attention {

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
  }
  return "";
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options,
                                                       ModelRunner* runner,
                                                       ExpertExecutor* experts) {
  const model::ModelConfig& cfg = runner->config();
  if (options.max_batch_tokens <= 0 || options.max_running <= 0) {
    return absl::InvalidArgumentError("engine: max_batch_tokens and max_running must be > 0");
  }
  if (options.micro_batches < 1 || options.micro_batch_min_tokens < 1) {
    return absl::InvalidArgumentError(
        "engine: micro_batches and micro_batch_min_tokens must be >= 1");
  }
  KvCacheConfig kv;
  kv.num_layers = cfg.num_hidden_layers;
  kv.num_kv_heads = cfg.num_key_value_heads;
  kv.head_dim = cfg.head_dim;
  kv.block_size = options.kv_block_size;
  kv.budget_bytes = options.kv_cache_bytes;
  MOE_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache, KvCache::Create(kv));
  EngineOptions o = options;
  if (o.max_context <= 0 || o.max_context > cfg.max_position_embeddings) {
    o.max_context = cfg.max_position_embeddings;
  }
  return std::unique_ptr<Engine>(new Engine(o, runner, experts, std::move(cache)));
}

Engine::Engine(const EngineOptions& options, ModelRunner* runner, ExpertExecutor* experts,
               std::unique_ptr<KvCache> cache)
    : options_(options),
      runner_(runner),
      experts_(experts),
      cache_(std::move(cache)),
      eos_(runner->config().eos_token_ids) {}

absl::Status Engine::Add(SeqId id, SequenceRequest req) {
  const int vocab = runner_->config().vocab_size;
  if (req.prompt.empty()) return absl::InvalidArgumentError("prompt is empty");
  for (int32_t t : req.prompt) {
    if (t < 0 || t >= vocab) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt token id ", t, " is outside the vocabulary [0, ", vocab, ")"));
    }
  }
  if (req.max_tokens < 0 || (req.max_tokens == 0 && !req.prompt_logprobs)) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens must be > 0 (0 only with prompt logprobs), got ", req.max_tokens));
  }
  const int64_t total = static_cast<int64_t>(req.prompt.size()) + req.max_tokens;
  if (total > options_.max_context) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt (", req.prompt.size(), " tokens) + max_tokens (", req.max_tokens,
        ") exceeds the context length ", options_.max_context));
  }
  MOE_RETURN_IF_ERROR(ValidateSamplingParams(req.sampling));
  if (cache_->BlocksForTokens(static_cast<int>(total)) > cache_->allocator().num_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "sequence of ", total, " tokens can never fit in the KV cache (",
        cache_->allocator().num_blocks() * cache_->block_size(), " tokens)"));
  }
  if (static_cast<int>(waiting_.size()) >= options_.max_waiting) {
    return absl::ResourceExhaustedError("engine queue is full");
  }
  for (const auto& s : waiting_) {
    if (s->id == id) return absl::InvalidArgumentError(absl::StrCat("duplicate sequence ", id));
  }
  for (const auto& s : running_) {
    if (s->id == id) return absl::InvalidArgumentError(absl::StrCat("duplicate sequence ", id));
  }
  auto s = std::make_unique<Sequence>();
  s->id = id;
  s->tokens = req.prompt;
  s->sampler = std::make_unique<SequenceSamplerState>(req.sampling.seed, req.sampler_stream);
  s->req = std::move(req);
  waiting_.push_back(std::move(s));
  return absl::OkStatus();
}

void Engine::Cancel(SeqId id) {
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if ((*it)->id == id) {
      waiting_.erase(it);
      return;
    }
  }
  for (auto it = running_.begin(); it != running_.end(); ++it) {
    if ((*it)->id == id) {
      cache_->Release(id);
      running_.erase(it);
      return;
    }
  }
}

void Engine::Admit() {
  while (!waiting_.empty() && static_cast<int>(running_.size()) < options_.max_running) {
    Sequence& s = *waiting_.front();
    int total = static_cast<int>(s.req.prompt.size()) + s.req.max_tokens;
    if (!cache_->Reserve(s.id, total).ok()) break;  // wait for running sequences to finish
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

bool Engine::IsStop(const Sequence& s, int32_t token) const {
  if (!s.req.ignore_eos && std::find(eos_.begin(), eos_.end(), token) != eos_.end()) return true;
  return std::find(s.req.stop_token_ids.begin(), s.req.stop_token_ids.end(), token) !=
         s.req.stop_token_ids.end();
}

absl::StatusOr<std::vector<SequenceUpdate>> Engine::Step() {
  Admit();
  std::vector<SequenceUpdate> updates;
  if (running_.empty()) return updates;
  // Decode tokens first (one each), then prefill chunks in admission order, within the budget.
  std::vector<ForwardChunk> chunks;
  std::vector<Sequence*> owners;
  int budget = options_.max_batch_tokens;
  for (int pass = 0; pass < 2 && budget > 0; ++pass) {
    for (auto& sp : running_) {
      Sequence& s = *sp;
      const int pending = static_cast<int>(s.tokens.size()) - s.computed;
      const bool decode = s.computed >= static_cast<int>(s.req.prompt.size());
      if (pending <= 0 || decode != (pass == 0) || budget <= 0) continue;
      const int n = std::min(pending, budget);
      budget -= n;
      ForwardChunk c;
      c.seq = s.id;
      c.start = s.computed;
      c.tokens = absl::MakeConstSpan(s.tokens).subspan(s.computed, n);
      const bool completes = s.computed + n == static_cast<int>(s.tokens.size());
      const bool scoring = s.req.prompt_logprobs && !decode;
      c.logits = scoring ? ForwardChunk::Logits::kAll
                 : completes ? ForwardChunk::Logits::kLast : ForwardChunk::Logits::kNone;
      chunks.push_back(c);
      owners.push_back(&s);
    }
  }
  absl::Status st = runner_->Forward(chunks, cache_.get(), experts_, &logits_,
                                     options_.micro_batches, options_.micro_batch_min_tokens);
  if (!st.ok()) {
    // The batch is lost: fail its sequences (they are answered, not dropped).
    for (Sequence* s : owners) {
      SequenceUpdate u;
      u.id = s->id;
      u.finish = FinishReason::kAbort;
      u.error = st;
      updates.push_back(std::move(u));
      Cancel(s->id);
    }
    return updates;
  }
  const int vocab = runner_->config().vocab_size;
  size_t row = 0;
  std::vector<SeqId> finished;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const ForwardChunk& c = chunks[i];
    Sequence& s = *owners[i];
    const int n = static_cast<int>(c.tokens.size());
    const int prompt_len = static_cast<int>(s.req.prompt.size());
    SequenceUpdate u;
    u.id = s.id;
    const float* last = nullptr;
    if (c.logits == ForwardChunk::Logits::kAll) {
      for (int j = 0; j < n; ++j, ++row) {
        const float* lr = &logits_[row * vocab];
        const int next = c.start + j + 1;
        if (next < prompt_len) {
          SampleResult r = sampler_.Logprobs(absl::MakeConstSpan(lr, vocab), s.req.prompt[next],
                                             s.req.sampling.top_logprobs);
          s.prompt_logprobs.push_back({r.token, r.logprob, std::move(r.top)});
        }
        last = lr;
      }
    } else if (c.logits == ForwardChunk::Logits::kLast) {
      last = &logits_[row * vocab];
      ++row;
    }
    s.computed += n;
    const bool prompt_done_now = c.start < prompt_len && s.computed >= prompt_len;
    if (prompt_done_now && s.req.prompt_logprobs) u.prompt_logprobs = std::move(s.prompt_logprobs);
    if (s.computed == static_cast<int>(s.tokens.size())) {
      if (s.generated >= s.req.max_tokens) {
        u.finish = FinishReason::kLength;  // max_tokens == 0: scoring only
      } else {
        SamplingParams p = s.req.sampling;
        SampleResult r = sampler_.Sample(absl::MakeConstSpan(last, vocab), p, s.sampler.get());
        s.tokens.push_back(r.token);
        ++s.generated;
        u.tokens.push_back({r.token, r.logprob, std::move(r.top)});
        if (IsStop(s, r.token)) {
          u.finish = FinishReason::kStop;
        } else if (s.generated >= s.req.max_tokens ||
                   static_cast<int>(s.tokens.size()) >= options_.max_context) {
          u.finish = FinishReason::kLength;
        }
      }
    }
    if (u.finish != FinishReason::kNone) finished.push_back(s.id);
    if (u.finish != FinishReason::kNone || !u.tokens.empty() || !u.prompt_logprobs.empty()) {
      updates.push_back(std::move(u));
    }
  }
  for (SeqId id : finished) Cancel(id);
  return updates;
}

}  // namespace moe::attention
