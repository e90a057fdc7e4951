// Token sampling from one row of logits: penalties, temperature, top-k, top-p, min-p, and
// log-probabilities for the API.
//
// Order of operations on the logits (all in F32):
//   1. presence / frequency penalties (OpenAI semantics) over the sequence's generated tokens:
//      logit[t] -= frequency_penalty * count[t] + presence_penalty * (count[t] > 0);
//   2. temperature == 0: greedy argmax of the penalised logits (ties -> lowest id); else
//   3. divide by temperature, keep the top_k largest (0 = all), then the smallest prefix of those
//      (by probability, best first) whose mass reaches top_p (less 1e-6 relative, for float
//      rounding), then drop tokens whose probability is below min_p * (largest probability);
//      draw from the renormalised rest with the sequence's PRNG.
// Weights use a vectorised float exp (relative error ~2e-7); no step sorts the whole vocabulary
// (top-k: heap with block skipping; top-p alone: a linear bucketed selection by mass).
// Ranking is always by value, ties broken by lower id, so results do not depend on the order
// of equal logits in memory.
//
// Reported log-probabilities (`SampleResult::logprob`, `top`) are the natural log of the full
// softmax over the vocabulary of the RAW logits (before penalties, temperature and filtering),
// as OpenAI and vLLM (default logprobs mode) report them and as the golden files store them.
#ifndef MOE_ATTENTION_SERVICE_ENGINE_SAMPLER_H_
#define MOE_ATTENTION_SERVICE_ENGINE_SAMPLER_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/types/span.h"

namespace moe::attention {

using TokenId = int32_t;

struct SamplingParams {
  float temperature = 1.0f;        // >= 0; 0 = greedy
  int top_k = 0;                   // >= 0; 0 = no limit
  float top_p = 1.0f;              // (0, 1]
  float min_p = 0.0f;              // [0, 1]; 0 = off
  std::optional<uint64_t> seed;    // unset: seeded from std::random_device
  float presence_penalty = 0.0f;   // [-2, 2]
  float frequency_penalty = 0.0f;  // [-2, 2]
  // Log-probabilities cost one pass of exp over the vocabulary; they are computed only if asked.
  bool return_logprob = false;  // fill SampleResult::logprob (implied by top_logprobs > 0)
  int top_logprobs = 0;         // number of alternatives, [0, kMaxTopLogprobs]
};

inline constexpr int kMaxTopLogprobs = 20;

// INVALID_ARGUMENT naming the offending field and its allowed range; OK otherwise.
absl::Status ValidateSamplingParams(const SamplingParams& params);

struct TokenLogprob {
  TokenId id = 0;
  float logprob = 0.0f;
};

struct SampleResult {
  TokenId token = 0;
  // Of `token`, raw-logit log-softmax; NaN unless return_logprob or top_logprobs > 0.
  float logprob = 0.0f;
  std::vector<TokenLogprob> top;  // `top_logprobs` best, best first, ties by lower id
};

// Per-sequence sampling state: the PRNG and the counts of generated tokens (for penalties).
// Thread affinity: used by one thread at a time (the engine loop).
class SequenceSamplerState {
 public:
  // Same (seed, stream) -> same random sequence, independent of anything else in the process.
  // `stream` separates the choices of one request (e.g. the index of choice for n > 1).
  // Without a seed, the generator is seeded from std::random_device.
  explicit SequenceSamplerState(std::optional<uint64_t> seed, uint64_t stream = 0);

  // Uniform double in [0, 1), 53 random bits. Advances the PRNG.
  double NextUniform();

  // Counts a generated token (Sample does this for the token it returns).
  void RecordToken(TokenId token) { ++counts_[token]; }
  const absl::flat_hash_map<TokenId, int>& token_counts() const { return counts_; }

 private:
  uint64_t s_[4];  // xoshiro256** state
  absl::flat_hash_map<TokenId, int> counts_;
};

// Samples tokens from logits rows. Holds scratch buffers so steady-state sampling does not
// allocate. Thread affinity: one instance per thread (not thread-safe).
class Sampler {
 public:
  // Chooses a token from `logits` (one row, the whole vocabulary), records it in `state`, and
  // returns it with its log-probability and params.top_logprobs alternatives. `params` must be
  // valid (ValidateSamplingParams); `logits` non-empty.
  SampleResult Sample(absl::Span<const float> logits, const SamplingParams& params,
                      SequenceSamplerState* state);

  // Log-probability of `token` and the `k` best alternatives under the raw-logit softmax, with
  // no sampling (prompt logprobs for echo, teacher forcing).
  SampleResult Logprobs(absl::Span<const float> logits, TokenId token, int k);

 private:
  // Applies temperature / top-k / top-p / min-p to `x` (penalised logits) and draws.
  TokenId Draw(absl::Span<const float> x, const SamplingParams& params,
               SequenceSamplerState* state);
  // Sets cand_ to the smallest prefix of the ranking of all ids whose weight (probs_[id]) reaches
  // `target`, in no particular order.
  void NucleusOfAll(absl::Span<const float> x, double target);

  std::vector<float> work_;          // penalised logits
  std::vector<TokenId> cand_;        // candidate ids
  std::vector<float> probs_;         // per-id weights
  std::vector<float> cand_probs_;    // weights of cand_
  std::vector<double> bucket_mass_;  // NucleusOfAll scratch
  std::vector<TokenId> ties_;        // NucleusOfAll scratch
};

// Indices of the k largest values of `x` (k clamped to x.size()), best first, ties by lower
// index. O(n log k); appends to `*out` after clearing it.
void TopKIndices(absl::Span<const float> x, int k, std::vector<TokenId>* out);

// log(sum(exp(x))): max-subtracted; vectorised float exp (fast_exp.h), partial sums of 1024
// terms in float, the total in double.
double LogSumExp(absl::Span<const float> x);

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_ENGINE_SAMPLER_H_
