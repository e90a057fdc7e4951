#include "attention_service/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace moe::attention {
namespace {

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// Ranking used everywhere: higher value first, then lower id.
struct Better {
  const float* x;
  bool operator()(TokenId a, TokenId b) const {
    return x[a] > x[b] || (x[a] == x[b] && a < b);
  }
};

TokenId ArgMax(absl::Span<const float> x) {
  TokenId best = 0;
  for (size_t i = 1; i < x.size(); ++i) {
    if (x[i] > x[best]) best = static_cast<TokenId>(i);
  }
  return best;
}

float MaxOf(absl::Span<const float> x) { return *std::max_element(x.begin(), x.end()); }

// Fills result->logprob (if asked) and result->top from the raw logits.
void FillLogprobs(absl::Span<const float> logits, TokenId token, int top_logprobs,
                  std::vector<TokenId>* ids, SampleResult* result) {
  const double lse = LogSumExp(logits);
  result->logprob = static_cast<float>(logits[token] - lse);
  result->top.clear();
  if (top_logprobs <= 0) return;
  TopKIndices(logits, top_logprobs, ids);
  for (TokenId id : *ids) {
    result->top.push_back({id, static_cast<float>(logits[id] - lse)});
  }
}

}  // namespace

absl::Status ValidateSamplingParams(const SamplingParams& p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0.0f) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be a finite number >= 0, got ", p.temperature));
  }
  if (p.top_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k must be >= 0 (0 disables it), got ", p.top_k));
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", p.top_p));
  }
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("min_p must be in [0, 1], got ", p.min_p));
  }
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("presence_penalty must be in [-2, 2], got ", p.presence_penalty));
  }
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("frequency_penalty must be in [-2, 2], got ", p.frequency_penalty));
  }
  if (p.top_logprobs < 0 || p.top_logprobs > kMaxTopLogprobs) {
    return absl::InvalidArgumentError(absl::StrCat("top_logprobs must be in [0, ",
                                                   kMaxTopLogprobs, "], got ", p.top_logprobs));
  }
  return absl::OkStatus();
}

SequenceSamplerState::SequenceSamplerState(std::optional<uint64_t> seed, uint64_t stream) {
  uint64_t x;
  if (seed.has_value()) {
    x = *seed;
  } else {
    std::random_device rd;
    x = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  uint64_t y = stream ^ 0xD1B54A32D192ED03ull;
  x ^= SplitMix64(y);
  for (uint64_t& s : s_) s = SplitMix64(x);
}

double SequenceSamplerState::NextUniform() {
  // xoshiro256** (Blackman & Vigna).
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return static_cast<double>(result >> 11) * 0x1.0p-53;
}

double LogSumExp(absl::Span<const float> x) {
  if (x.empty()) return -std::numeric_limits<double>::infinity();
  const float m = MaxOf(x);
  if (!std::isfinite(m)) return m;
  double sum = 0.0;
  for (float v : x) sum += std::exp(v - m);
  return m + std::log(sum);
}

void TopKIndices(absl::Span<const float> x, int k, std::vector<TokenId>* out) {
  out->clear();
  const int n = static_cast<int>(x.size());
  k = std::clamp(k, 0, n);
  if (k == 0) return;
  const Better better{x.data()};
  if (static_cast<int64_t>(k) * 8 >= n) {
    out->resize(n);
    std::iota(out->begin(), out->end(), 0);
    std::partial_sort(out->begin(), out->begin() + k, out->end(), better);
    out->resize(k);
    return;
  }
  // Heap of the k best so far with the worst on top; most elements are rejected by one compare.
  out->reserve(k);
  for (TokenId i = 0; i < k; ++i) out->push_back(i);
  std::make_heap(out->begin(), out->end(), better);
  for (TokenId i = k; i < n; ++i) {
    if (better(i, out->front())) {
      std::pop_heap(out->begin(), out->end(), better);
      out->back() = i;
      std::push_heap(out->begin(), out->end(), better);
    }
  }
  std::sort_heap(out->begin(), out->end(), better);
}

SampleResult Sampler::Logprobs(absl::Span<const float> logits, TokenId token, int k) {
  MOE_CHECK(!logits.empty() && token >= 0 && static_cast<size_t>(token) < logits.size());
  SampleResult result;
  result.token = token;
  FillLogprobs(logits, token, k, &cand_, &result);
  return result;
}

SampleResult Sampler::Sample(absl::Span<const float> logits, const SamplingParams& params,
                             SequenceSamplerState* state) {
  MOE_CHECK(!logits.empty());
  const int n = static_cast<int>(logits.size());

  // 1. Penalties, on a copy (only the generated tokens change).
  absl::Span<const float> x = logits;
  if ((params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f) &&
      !state->token_counts().empty()) {
    work_.assign(logits.begin(), logits.end());
    for (const auto& [id, count] : state->token_counts()) {
      MOE_CHECK(id >= 0 && id < n);
      work_[id] -= params.frequency_penalty * count + (count > 0 ? params.presence_penalty : 0.0f);
    }
    x = work_;
  }

  TokenId token;
  if (params.temperature == 0.0f) {
    token = ArgMax(x);  // first maximum: ties go to the lowest id
  } else {
    token = Draw(x, params, state);
  }

  SampleResult result;
  result.token = token;
  result.logprob = std::numeric_limits<float>::quiet_NaN();
  if (params.return_logprob || params.top_logprobs > 0) {
    FillLogprobs(logits, token, params.top_logprobs, &cand_, &result);
  }
  state->RecordToken(token);
  return result;
}

TokenId Sampler::Draw(absl::Span<const float> x, const SamplingParams& params,
                      SequenceSamplerState* state) {
  const int n = static_cast<int>(x.size());
  const float max = MaxOf(x);
  const float inv_t = 1.0f / params.temperature;
  // Weight of a logit relative to the best one: exp((x - max) / T), in (0, 1].
  auto weight = [&](float v) { return std::exp((v - max) * inv_t); };

  // Candidates: all ids (in id order) unless top-k / top-p select a ranked prefix.
  bool all = true;
  if (params.top_k > 0 && params.top_k < n) {
    TopKIndices(x, params.top_k, &cand_);
    all = false;
  }
  if (params.top_p < 1.0f) {
    double total = 0.0;  // mass of the current candidate set
    if (all) {
      for (int i = 0; i < n; ++i) total += weight(x[i]);
    } else {
      for (TokenId id : cand_) total += weight(x[id]);
    }
    const double target = static_cast<double>(params.top_p) * total;
    // Ranked prefix whose mass reaches top_p; without top-k, grow the ranked set until it does.
    int k = all ? std::min(n, 64) : static_cast<int>(cand_.size());
    while (true) {
      if (all) TopKIndices(x, k, &cand_);
      double cum = 0.0;
      size_t keep = 0;
      while (keep < cand_.size() && cum < target) cum += weight(x[cand_[keep++]]);
      if (cum >= target || static_cast<int>(cand_.size()) >= (all ? n : k)) {
        cand_.resize(std::max<size_t>(keep, 1));
        break;
      }
      k = std::min(n, k * 8);
    }
    all = false;
  }
  if (params.min_p > 0.0f) {
    // p / p_max = weight >= min_p.
    const float min_w = params.min_p;
    if (all) {
      cand_.clear();
      for (TokenId i = 0; i < n; ++i) {
        if (weight(x[i]) >= min_w) cand_.push_back(i);
      }
      all = false;
    } else {
      cand_.erase(std::remove_if(cand_.begin() + 1, cand_.end(),
                                 [&](TokenId id) { return weight(x[id]) < min_w; }),
                  cand_.end());
    }
  }

  // Draw from the renormalised weights of the candidates.
  const int m = all ? n : static_cast<int>(cand_.size());
  probs_.resize(m);
  double total = 0.0;
  for (int i = 0; i < m; ++i) {
    probs_[i] = weight(x[all ? i : cand_[i]]);
    total += probs_[i];
  }
  const double u = state->NextUniform() * total;
  double cum = 0.0;
  int pick = -1;
  for (int i = 0; i < m; ++i) {
    if (probs_[i] <= 0.0f) continue;
    pick = i;  // last positive weight: guards against rounding at the top end
    cum += probs_[i];
    if (u < cum) break;
  }
  MOE_CHECK(pick >= 0);
  return all ? pick : cand_[pick];
}

}  // namespace moe::attention
