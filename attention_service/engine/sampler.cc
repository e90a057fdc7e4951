#include "attention_service/engine/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "attention_service/kv_cache/fast_exp.h"
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
  bool operator()(TokenId a, TokenId b) const { return x[a] > x[b] || (x[a] == x[b] && a < b); }
};

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MOE_SAMPLER_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MOE_SAMPLER_CLONES
#endif

// The vocabulary-wide loops below are written for the vectoriser (-O3 -fopenmp-simd, clones
// per ISA chosen at load time): one row is 32k-150k logits per token.

MOE_SAMPLER_CLONES float MaxOf(const float* x, int n) {
  float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
  for (int i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;  // this form vectorises (maxps)
  return m;
}

// First index of the maximum (ties -> lowest id).
TokenId ArgMax(absl::Span<const float> x) {
  const float m = MaxOf(x.data(), static_cast<int>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] == m) return static_cast<TokenId>(i);
  }
  return 0;  // only if x holds NaNs
}

// w[i] = exp((x[i] - max) * inv_t) for i in [0, n) (w may be null); returns sum(w) in double.
MOE_SAMPLER_CLONES double ExpWeights(const float* x, int n, float max, float inv_t, float* w) {
  constexpr int kChunk = 1024;  // float partial sums of <= 1024 terms in [0, 1], then double
  double total = 0.0;
  for (int c = 0; c < n; c += kChunk) {
    const int end = std::min(n, c + kChunk);
    float sum = 0.0f;
    if (w != nullptr) {
#pragma omp simd reduction(+ : sum)
      for (int i = c; i < end; ++i) {
        w[i] = ExpNonPositive((x[i] - max) * inv_t);
        sum += w[i];
      }
    } else {
#pragma omp simd reduction(+ : sum)
      for (int i = c; i < end; ++i) sum += ExpNonPositive((x[i] - max) * inv_t);
    }
    total += sum;
  }
  return total;
}

// Index i of the draw: the first i with w[0] + ... + w[i] > u, skipping zero weights; u in
// [0, sum(w)). Sums blocks first so the scalar walk is short.
int WalkTo(const float* w, int n, double u) {
  constexpr int kBlock = 256;
  double cum = 0.0;
  int i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    float block = 0.0f;
#pragma omp simd reduction(+ : block)
    for (int j = i; j < i + kBlock; ++j) block += w[j];
    if (cum + block > u) break;
    cum += block;
  }
  int pick = -1;
  for (; i < n; ++i) {
    if (w[i] <= 0.0f) continue;
    pick = i;  // last positive weight: guards against rounding at the top end
    cum += w[i];
    if (u < cum) break;
  }
  if (pick < 0) {  // rounding pushed us past the end of the block sums: last positive weight
    for (int j = n - 1; j >= 0 && pick < 0; --j) {
      if (w[j] > 0.0f) pick = j;
    }
  }
  MOE_CHECK(pick >= 0);
  return pick;
}

// Mass the nucleus must reach. The relative slack keeps float rounding of top_p (0.05f is
// 0.0500000007) from adding one more token when a prefix's mass is exactly top_p.
double TopPTarget(float top_p, double total) { return top_p * total * (1.0 - 1e-6); }

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
    return absl::InvalidArgumentError(
        absl::StrCat("top_logprobs must be in [0, ", kMaxTopLogprobs, "], got ", p.top_logprobs));
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
  const int n = static_cast<int>(x.size());
  const float m = MaxOf(x.data(), n);
  if (!std::isfinite(m)) return m;
  return m + std::log(ExpWeights(x.data(), n, m, 1.0f, nullptr));
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
  // Heap of the k best so far with the worst on top. Blocks whose maximum does not beat the
  // current k-th best are skipped after one vectorisable pass (most of them, once the heap
  // holds large values). A later id never beats an equal value already held.
  out->reserve(k);
  for (TokenId i = 0; i < k; ++i) out->push_back(i);
  std::make_heap(out->begin(), out->end(), better);
  constexpr int kBlock = 64;
  for (int i = k; i < n; i += kBlock) {
    const int end = std::min(n, i + kBlock);
    float block_max = -std::numeric_limits<float>::infinity();
    for (int j = i; j < end; ++j) block_max = x[j] > block_max ? x[j] : block_max;
    if (!(block_max > x[out->front()])) continue;
    for (TokenId j = i; j < end; ++j) {
      if (x[j] > x[out->front()]) {
        std::pop_heap(out->begin(), out->end(), better);
        out->back() = j;
        std::push_heap(out->begin(), out->end(), better);
      }
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
  const float max = MaxOf(x.data(), n);
  const float inv_t = 1.0f / params.temperature;

  // Candidates go to cand_, their weights exp((x - max) / T) (in [0, 1], 1 for the best) to
  // cand_probs_.
  if (params.top_k > 0 && params.top_k < n) {
    // Ranked top-k, then the ranked prefix reaching top_p of its mass.
    TopKIndices(x, params.top_k, &cand_);
    cand_probs_.resize(cand_.size());
    double total = 0.0;
    for (size_t i = 0; i < cand_.size(); ++i) {
      total += cand_probs_[i] = ExpNonPositive((x[cand_[i]] - max) * inv_t);
    }
    if (params.top_p < 1.0f) {
      const double target = TopPTarget(params.top_p, total);
      double cum = 0.0;
      size_t keep = 0;
      while (keep < cand_.size() && cum < target) cum += cand_probs_[keep++];
      cand_.resize(std::max<size_t>(keep, 1));
    }
  } else {
    // The whole vocabulary: per-id weights in one vectorised pass.
    probs_.resize(n);
    const double total = ExpWeights(x.data(), n, max, inv_t, probs_.data());
    if (params.top_p < 1.0f) {
      NucleusOfAll(x, TopPTarget(params.top_p, total));
    } else if (params.min_p > 0.0f) {
      cand_.clear();
      for (TokenId i = 0; i < n; ++i) {
        if (probs_[i] >= params.min_p) cand_.push_back(i);
      }
    } else {
      return WalkTo(probs_.data(), n, state->NextUniform() * total);
    }
    cand_probs_.resize(cand_.size());
    for (size_t i = 0; i < cand_.size(); ++i) cand_probs_[i] = probs_[cand_[i]];
  }
  cand_probs_.resize(cand_.size());
  if (params.min_p > 0.0f) {
    // p / p_max = weight >= min_p; the best token (weight 1) always stays.
    size_t kept = 0;
    for (size_t i = 0; i < cand_.size(); ++i) {
      if (cand_probs_[i] >= params.min_p) {
        cand_[kept] = cand_[i];
        cand_probs_[kept++] = cand_probs_[i];
      }
    }
    cand_.resize(kept);
    cand_probs_.resize(kept);
  }
  double total = 0.0;
  for (float w : cand_probs_) total += w;
  const double u = state->NextUniform() * total;
  return cand_[WalkTo(cand_probs_.data(), static_cast<int>(cand_probs_.size()), u)];
}

void Sampler::NucleusOfAll(absl::Span<const float> x, double target) {
  // O(n). Positive float bit patterns are ordered like the values, so the top bits of a
  // weight's pattern give a monotone bucket (about 3% wide). Pass 1 sums the mass per bucket;
  // walking buckets from the best finds the one where the cumulative mass reaches `target`.
  // Pass 2 keeps every id of better buckets and collects the cut bucket's ids, of which only
  // the best few are needed: found by splitting that set with nth_element (expected linear) and
  // ranking the last small range with Better, so ties are still broken by lower id (equal
  // logits share a weight, hence a bucket). probs_ holds per-id weights in [0, 1].
  constexpr int kShift = 18;
  constexpr uint32_t kOne = 0x3F800000u;  // bits of 1.0f, the largest weight
  const int n = static_cast<int>(x.size());
  auto bucket = [&](int id) { return (kOne - std::bit_cast<uint32_t>(probs_[id])) >> kShift; };
  bucket_mass_.assign((kOne >> kShift) + 1, 0.0);
  for (int i = 0; i < n; ++i) {
    if (probs_[i] > 0.0f) bucket_mass_[bucket(i)] += probs_[i];
  }
  uint32_t cut = 0;
  double kept = 0.0;
  while (cut + 1 < bucket_mass_.size() && kept + bucket_mass_[cut] < target) {
    kept += bucket_mass_[cut++];
  }
  cand_.clear();
  ties_.clear();
  for (int i = 0; i < n; ++i) {
    if (!(probs_[i] > 0.0f)) continue;
    const uint32_t b = bucket(i);
    if (b < cut) {
      cand_.push_back(i);
    } else if (b == cut) {
      ties_.push_back(i);
    }
  }
  // Smallest ranked prefix of ties_ with mass >= target - kept (at least one id overall).
  const Better better{x.data()};
  size_t lo = 0, hi = ties_.size();
  while (hi - lo > 32) {
    const size_t mid = lo + (hi - lo) / 2;
    std::nth_element(ties_.begin() + lo, ties_.begin() + mid, ties_.begin() + hi, better);
    double upper = 0.0;
    for (size_t i = lo; i < mid; ++i) upper += probs_[ties_[i]];
    if (kept + upper >= target) {
      hi = mid;
    } else {
      kept += upper;
      lo = mid;
    }
  }
  std::sort(ties_.begin() + lo, ties_.begin() + hi, better);
  size_t take = lo;
  while (take < hi && (kept < target || (cand_.empty() && take == 0))) {
    kept += probs_[ties_[take++]];
  }
  cand_.insert(cand_.end(), ties_.begin(), ties_.begin() + take);
  if (cand_.empty()) cand_.push_back(ArgMax(x));  // unreachable: the best has weight 1
}

}  // namespace moe::attention
