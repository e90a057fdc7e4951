#include "attention_service/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moe::attention {
namespace {

using ::testing::HasSubstr;

std::vector<float> RandomLogits(int n, uint32_t seed, float stddev = 3.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  return x;
}

std::vector<double> LogSoftmax64(const std::vector<float>& x) {
  double mx = *std::max_element(x.begin(), x.end());
  double sum = 0;
  for (float v : x) sum += std::exp(v - mx);
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] - mx - std::log(sum);
  return out;
}

// Ids sorted by (value desc, id asc).
std::vector<TokenId> FullRanking(const std::vector<float>& x) {
  std::vector<TokenId> ids(x.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](TokenId a, TokenId b) { return x[a] > x[b]; });
  return ids;
}

SamplingParams Greedy() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

TEST(ValidateSamplingParamsTest, AcceptsDefaultsAndRejectsEachBadField) {
  EXPECT_TRUE(ValidateSamplingParams(SamplingParams{}).ok());
  EXPECT_TRUE(ValidateSamplingParams(Greedy()).ok());
  struct Case {
    void (*mutate)(SamplingParams&);
    const char* field;
  };
  const Case cases[] = {
      {[](SamplingParams& p) { p.temperature = -0.5f; }, "temperature"},
      {[](SamplingParams& p) { p.temperature = std::nanf(""); }, "temperature"},
      {[](SamplingParams& p) { p.top_k = -1; }, "top_k"},
      {[](SamplingParams& p) { p.top_p = 0.0f; }, "top_p"},
      {[](SamplingParams& p) { p.top_p = 1.5f; }, "top_p"},
      {[](SamplingParams& p) { p.min_p = -0.1f; }, "min_p"},
      {[](SamplingParams& p) { p.presence_penalty = 2.5f; }, "presence_penalty"},
      {[](SamplingParams& p) { p.frequency_penalty = -3.0f; }, "frequency_penalty"},
      {[](SamplingParams& p) { p.top_logprobs = kMaxTopLogprobs + 1; }, "top_logprobs"},
  };
  for (const Case& c : cases) {
    SamplingParams p;
    c.mutate(p);
    absl::Status s = ValidateSamplingParams(p);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.field));
  }
}

TEST(TopKIndicesTest, MatchesFullSortWithTiesOnBothPaths) {
  std::vector<float> x = RandomLogits(1000, 1);
  for (int i = 0; i < 1000; i += 7) x[i] = 2.0f;  // many ties
  const std::vector<TokenId> want = FullRanking(x);
  std::vector<TokenId> got;
  for (int k : {1, 5, 20, 100, 200, 999, 1000, 5000}) {  // heap and partial_sort paths
    TopKIndices(x, k, &got);
    const int kk = std::min(k, 1000);
    ASSERT_EQ(got.size(), static_cast<size_t>(kk));
    EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin())) << "k=" << k;
  }
  TopKIndices(x, 0, &got);
  EXPECT_TRUE(got.empty());
}

TEST(SamplerTest, GreedyPicksArgmaxLowestIdOnTies) {
  Sampler sampler;
  SequenceSamplerState state(1);
  std::vector<float> x = RandomLogits(5000, 2);
  const TokenId best = FullRanking(x)[0];
  EXPECT_EQ(sampler.Sample(x, Greedy(), &state).token, best);
  x[4000] = x[best];
  x[300] = x[best];
  EXPECT_EQ(sampler.Sample(x, Greedy(), &state).token, std::min<TokenId>(best, 300));
}

TEST(SamplerTest, LogprobsEqualFloat64LogSoftmaxOfRawLogits) {
  Sampler sampler;
  const std::vector<float> x = RandomLogits(32000, 3);
  const std::vector<double> ref = LogSoftmax64(x);
  const std::vector<TokenId> rank = FullRanking(x);
  for (float temperature : {0.0f, 0.7f}) {
    SamplingParams p;
    p.temperature = temperature;
    p.top_logprobs = 5;
    p.frequency_penalty = 1.5f;  // penalties and temperature do not change reported logprobs
    SequenceSamplerState state(7);
    state.RecordToken(rank[0]);
    const SampleResult r = sampler.Sample(x, p, &state);
    EXPECT_NEAR(r.logprob, ref[r.token], 1e-5);
    ASSERT_EQ(r.top.size(), 5u);
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(r.top[i].id, rank[i]);
      EXPECT_NEAR(r.top[i].logprob, ref[rank[i]], 1e-5);
    }
  }
  // Without logprobs asked for, none are computed.
  SequenceSamplerState state(7);
  const SampleResult r = sampler.Sample(x, Greedy(), &state);
  EXPECT_TRUE(std::isnan(r.logprob));
  EXPECT_TRUE(r.top.empty());
  // Teacher-forced logprobs of an arbitrary token.
  const SampleResult t = sampler.Logprobs(x, 12345, 3);
  EXPECT_EQ(t.token, 12345);
  EXPECT_NEAR(t.logprob, ref[12345], 1e-5);
  ASSERT_EQ(t.top.size(), 3u);
  EXPECT_EQ(t.top[2].id, rank[2]);
}

std::vector<TokenId> Draws(const std::vector<float>& x, const SamplingParams& p, int n,
                           std::optional<uint64_t> seed) {
  Sampler sampler;
  SequenceSamplerState state(seed);
  std::vector<TokenId> out;
  for (int i = 0; i < n; ++i) out.push_back(sampler.Sample(x, p, &state).token);
  return out;
}

TEST(SamplerTest, SameSeedSameTokensDifferentSeedsDiffer) {
  const std::vector<float> x = RandomLogits(1000, 4, 0.5f);  // flat: many plausible tokens
  SamplingParams p;
  EXPECT_EQ(Draws(x, p, 100, 42), Draws(x, p, 100, 42));
  EXPECT_NE(Draws(x, p, 100, 42), Draws(x, p, 100, 43));
  EXPECT_NE(Draws(x, p, 100, std::nullopt), Draws(x, p, 100, std::nullopt));
  // Streams of one seed (choices of one request) differ from each other.
  Sampler sampler;
  SequenceSamplerState a(42, 0), b(42, 1);
  std::vector<TokenId> ta, tb;
  for (int i = 0; i < 100; ++i) {
    ta.push_back(sampler.Sample(x, p, &a).token);
    tb.push_back(sampler.Sample(x, p, &b).token);
  }
  EXPECT_EQ(ta, Draws(x, p, 100, 42));
  EXPECT_NE(ta, tb);
}

TEST(SamplerTest, ResultIndependentOfOtherSequencesInTheBatch) {
  const std::vector<float> x = RandomLogits(500, 5, 1.0f);
  const std::vector<float> y = RandomLogits(500, 6, 1.0f);
  SamplingParams p;
  p.top_p = 0.9f;
  const std::vector<TokenId> alone = Draws(x, p, 50, 9);
  Sampler sampler;  // shared scratch, as in one engine step
  SequenceSamplerState s1(9), s2(10), s3(9);
  std::vector<TokenId> batched;
  for (int i = 0; i < 50; ++i) {
    sampler.Sample(y, p, &s2);
    batched.push_back(sampler.Sample(x, p, &s1).token);
    if (i % 3 == 0) sampler.Sample(y, p, &s3);
  }
  EXPECT_EQ(batched, alone);
}

TEST(SamplerTest, TopKOneAndTinyTopPAreGreedy) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    const std::vector<float> x = RandomLogits(2000, 100 + seed, 1.0f);
    const TokenId best = FullRanking(x)[0];
    SamplingParams k1;
    k1.top_k = 1;
    SamplingParams p_tiny;
    p_tiny.top_p = 1e-6f;
    EXPECT_EQ(Draws(x, k1, 5, seed), std::vector<TokenId>(5, best));
    EXPECT_EQ(Draws(x, p_tiny, 5, seed), std::vector<TokenId>(5, best));
  }
}

// Pearson chi-square of observed counts against expected probabilities.
double ChiSquare(const std::vector<int>& counts, const std::vector<double>& probs, int n) {
  double chi2 = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " has zero probability";
      continue;
    }
    const double e = probs[i] * n;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  return chi2;
}

std::vector<int> Histogram(const std::vector<float>& x, const SamplingParams& p, int n) {
  std::vector<int> counts(x.size());
  for (TokenId t : Draws(x, p, n, 2024)) ++counts[t];
  return counts;
}

std::vector<double> Softmax(const std::vector<float>& x, double temperature,
                            const std::set<int>& keep) {
  std::vector<double> p(x.size());
  double sum = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (keep.count(static_cast<int>(i))) sum += p[i] = std::exp(x[i] / temperature);
  }
  for (double& v : p) v /= sum;
  return p;
}

// Critical values of chi-square at p = 0.001 for df = 3 and 7; with a fixed seed the test is
// deterministic, and a correct sampler passes at this level with probability 0.999.
constexpr double kChi2Df3 = 16.27;
constexpr double kChi2Df7 = 24.32;
const std::vector<float> kEight = {1.0f, 0.5f, 2.0f, -1.0f, 0.0f, 1.5f, -0.5f, 0.8f};
const std::set<int> kAllEight = {0, 1, 2, 3, 4, 5, 6, 7};

TEST(SamplerDistributionTest, TemperatureOneMatchesSoftmax) {
  SamplingParams p;
  const int n = 200000;
  EXPECT_LT(ChiSquare(Histogram(kEight, p, n), Softmax(kEight, 1.0, kAllEight), n), kChi2Df7);
  // A visibly wrong distribution (temperature 2) must fail the same bound.
  EXPECT_GT(ChiSquare(Histogram(kEight, p, n), Softmax(kEight, 2.0, kAllEight), n), 100.0);
}

TEST(SamplerDistributionTest, TemperatureScalesLogits) {
  SamplingParams p;
  p.temperature = 0.5f;
  const int n = 200000;
  EXPECT_LT(ChiSquare(Histogram(kEight, p, n), Softmax(kEight, 0.5, kAllEight), n), kChi2Df7);
}

TEST(SamplerDistributionTest, TopKTopPAndMinPRenormaliseOverTheKeptSet) {
  const int n = 100000;
  // Ranking of kEight: 2 (2.0), 5 (1.5), 0 (1.0), 7 (0.8), 1, 4, 6, 3.
  SamplingParams k4;
  k4.top_k = 4;
  EXPECT_LT(ChiSquare(Histogram(kEight, k4, n), Softmax(kEight, 1.0, {2, 5, 0, 7}), n), kChi2Df3);
  // top_p: probabilities 0.362, 0.219, 0.133, 0.109, ...: the first three sum to 0.714 < 0.75,
  // the first four to 0.823.
  SamplingParams p75;
  p75.top_p = 0.75f;
  EXPECT_LT(ChiSquare(Histogram(kEight, p75, n), Softmax(kEight, 1.0, {2, 5, 0, 7}), n), kChi2Df3);
  // min_p: keep p >= 0.25 * p_max, i.e. logit >= 2 + ln 0.25 = 0.614.
  SamplingParams m25;
  m25.min_p = 0.25f;
  EXPECT_LT(ChiSquare(Histogram(kEight, m25, n), Softmax(kEight, 1.0, {2, 5, 0, 7}), n), kChi2Df3);
  // top_k then top_p: top-2 renormalised is {0.62, 0.38}; top_p 0.5 keeps only the best.
  SamplingParams k2p50;
  k2p50.top_k = 2;
  k2p50.top_p = 0.5f;
  EXPECT_EQ(Histogram(kEight, k2p50, 1000)[2], 1000);
}

TEST(SamplerDistributionTest, TopPOverALargeFlatVocabularyKeepsTheNucleus) {
  // Nearly flat logits: the nucleus needs thousands of candidates (past the first ranked guess).
  const std::vector<float> x = RandomLogits(50000, 8, 0.3f);
  SamplingParams p;
  p.top_p = 0.5f;
  const std::vector<double> ref = LogSoftmax64(x);
  const std::vector<TokenId> rank = FullRanking(x);
  double cum = 0;
  std::set<int> nucleus;
  for (TokenId id : rank) {
    if (cum >= 0.5) break;
    cum += std::exp(ref[id]);
    nucleus.insert(id);
  }
  ASSERT_GT(nucleus.size(), 5000u);
  int outside = 0;
  for (TokenId t : Draws(x, p, 2000, 77)) outside += nucleus.count(t) == 0;
  EXPECT_EQ(outside, 0);
  // And without top_p, tokens outside that set do get drawn.
  int outside_full = 0;
  for (TokenId t : Draws(x, SamplingParams{}, 2000, 77)) outside_full += nucleus.count(t) == 0;
  EXPECT_GT(outside_full, 500);
}

TEST(SamplerDistributionTest, TopPCutAmongEqualLogitsGoesByLowerId) {
  // 1000 equal logits: the nucleus of mass 0.05 is exactly ids [0, 50).
  const std::vector<float> x(1000, 0.25f);
  SamplingParams p;
  p.top_p = 0.05f;
  std::set<TokenId> seen;
  for (TokenId t : Draws(x, p, 3000, 3)) {
    ASSERT_LT(t, 50);
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 50u);  // 3000 draws over 50 equal tokens reach them all
}

TEST(SamplerTest, PenaltiesChangeTheChosenToken) {
  Sampler sampler;
  const std::vector<float> x = {0.0f, 5.0f, 4.5f, 1.0f};
  {
    SamplingParams p = Greedy();
    p.frequency_penalty = 0.2f;
    SequenceSamplerState state(1);
    // 5.0 - 0.2 * count beats 4.5 until token 1 has been generated 3 times.
    std::vector<TokenId> got;
    for (int i = 0; i < 5; ++i) got.push_back(sampler.Sample(x, p, &state).token);
    EXPECT_EQ(got, (std::vector<TokenId>{1, 1, 1, 2, 1}));
    EXPECT_EQ(state.token_counts().at(1), 4);
    EXPECT_EQ(state.token_counts().at(2), 1);
  }
  {
    SamplingParams p = Greedy();
    p.presence_penalty = 1.0f;  // once generated, a token loses 1.0 whatever its count
    SequenceSamplerState state(1);
    std::vector<TokenId> got;
    for (int i = 0; i < 4; ++i) got.push_back(sampler.Sample(x, p, &state).token);
    EXPECT_EQ(got, (std::vector<TokenId>{1, 2, 1, 1}));
  }
  {
    SamplingParams p = Greedy();
    p.presence_penalty = -2.0f;  // negative: encourages repetition
    SequenceSamplerState state(1);
    state.RecordToken(2);
    EXPECT_EQ(sampler.Sample(x, p, &state).token, 2);
  }
}

}  // namespace
}  // namespace moe::attention
