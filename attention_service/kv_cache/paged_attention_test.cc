#include "attention_service/kv_cache/paged_attention.h"

#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"

namespace moe::attention {
namespace {

struct SeqSpec {
  SeqId id;
  int start;  // tokens already cached before this step
  int n_new;  // query rows this step
};

// A cache holding random K/V for every position of every sequence, plus random queries and the
// float64 reference output.
class Fixture {
 public:
  Fixture(int num_heads, int num_kv_heads, int head_dim, int block_size,
          const std::vector<SeqSpec>& seqs, uint32_t seed)
      : num_heads_(num_heads), kvh_(num_kv_heads), d_(head_dim), seqs_(seqs), rng_(seed) {
    KvCacheConfig c;
    c.num_layers = 2;
    c.num_kv_heads = num_kv_heads;
    c.head_dim = head_dim;
    c.block_size = block_size;
    c.num_blocks = 256;
    cache_ = *KvCache::Create(c);
    // Sequences share the pool; interleave their reservations so their blocks interleave too.
    std::normal_distribution<float> normal(0.0f, 1.0f);
    int total_rows = 0;
    for (const SeqSpec& s : seqs) total_rows += s.n_new;
    const int row = num_kv_heads * head_dim;
    for (int step = 1;; ++step) {
      bool any = false;
      for (const SeqSpec& s : seqs) {
        const int want = std::min(s.start + s.n_new, step * block_size);
        if (cache_->Table(s.id) == nullptr || cache_->Table(s.id)->num_tokens < want) {
          EXPECT_TRUE(cache_->Reserve(s.id, want).ok());
          any = true;
        }
      }
      if (!any) break;
    }
    for (const SeqSpec& s : seqs) {
      const int len = s.start + s.n_new;
      std::vector<float> k(static_cast<size_t>(len) * row), v(k.size());
      for (float& x : k) x = normal(rng_);
      for (float& x : v) x = normal(rng_);
      // Layer 0 gets unrelated data; the test reads layer 1.
      std::vector<float> junk(k.size(), 1e3f);
      cache_->AppendRows(0, s.id, 0, len, junk.data(), junk.data());
      cache_->AppendRows(1, s.id, 0, len, k.data(), v.data());
      k_.push_back(std::move(k));
      v_.push_back(std::move(v));
    }
    q_.resize(static_cast<size_t>(total_rows) * num_heads * head_dim);
    // Scale queries up so softmax weights are far from uniform (exercises max subtraction).
    for (float& x : q_) x = 3.0f * normal(rng_);
    int offset = 0;
    for (const SeqSpec& s : seqs) {
      chunks_.push_back({s.id, s.start, s.n_new, offset});
      offset += s.n_new;
    }
  }

  std::vector<double> Reference() const {
    std::vector<double> out(q_.size());
    const int group = num_heads_ / kvh_;
    const double scale = 1.0 / std::sqrt(static_cast<double>(d_));
    for (size_t c = 0; c < seqs_.size(); ++c) {
      const SeqSpec& s = seqs_[c];
      for (int r = 0; r < s.n_new; ++r) {
        const int pos = s.start + r;
        for (int h = 0; h < num_heads_; ++h) {
          const int kh = h / group;
          const float* qv = &q_[((chunks_[c].row_offset + r) * num_heads_ + h) * d_];
          std::vector<double> sc(pos + 1);
          double mx = -1e300;
          for (int t = 0; t <= pos; ++t) {
            const float* kv = &k_[c][(t * kvh_ + kh) * d_];
            double dot = 0;
            for (int j = 0; j < d_; ++j) dot += static_cast<double>(qv[j]) * kv[j];
            sc[t] = dot * scale;
            mx = std::max(mx, sc[t]);
          }
          double sum = 0;
          for (double& x : sc) sum += (x = std::exp(x - mx));
          double* o = &out[((chunks_[c].row_offset + r) * num_heads_ + h) * d_];
          for (int t = 0; t <= pos; ++t) {
            const float* vv = &v_[c][(t * kvh_ + kh) * d_];
            for (int j = 0; j < d_; ++j) o[j] += sc[t] / sum * vv[j];
          }
        }
      }
    }
    return out;
  }

  std::vector<float> Run(const PagedAttentionOptions& options = {}) const {
    std::vector<float> out(q_.size(), std::nanf(""));
    PagedAttention(*cache_, 1, chunks_, num_heads_, q_.data(), out.data(), options);
    return out;
  }

  const std::vector<AttentionChunk>& chunks() const { return chunks_; }
  const KvCache& cache() const { return *cache_; }

 private:
  int num_heads_, kvh_, d_;
  std::vector<SeqSpec> seqs_;
  std::mt19937 rng_;
  std::unique_ptr<KvCache> cache_;
  std::vector<std::vector<float>> k_, v_;
  std::vector<float> q_;
  std::vector<AttentionChunk> chunks_;
};

void ExpectClose(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  double max_err = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << "element " << i;
    // Outputs are convex combinations of N(0,1) values (scale ~1); near-zero outputs are
    // judged against that scale, as F32 scores carry ~1e-6 absolute error whatever the output.
    const double err = std::abs(got[i] - want[i]) / std::max(std::abs(want[i]), 1.0);
    max_err = std::max(max_err, err);
  }
  EXPECT_LT(max_err, 1e-5);
  ::testing::Test::RecordProperty("max_rel_err", std::to_string(max_err));
}

// (num_heads, num_kv_heads, head_dim, block_size)
class PagedAttentionTest : public ::testing::TestWithParam<std::tuple<int, int, int, int>> {};

TEST_P(PagedAttentionTest, MixedPrefillAndDecodeMatchesFloat64Reference) {
  const auto [heads, kv_heads, head_dim, block_size] = GetParam();
  const std::vector<SeqSpec> seqs = {
      {
          11,
          0,
          37,
      },            // fresh prefill spanning several blocks
      {12, 50, 1},  // decode with a long history
      {13, 20, 9},  // a later prefill chunk starting mid-block
      {14, 0, 1},   // first token
      {15, 15, 1},  // decode exactly at a block boundary
  };
  Fixture f(heads, kv_heads, head_dim, block_size, seqs, 1234 + heads * 7 + head_dim);
  ExpectClose(f.Run(), f.Reference());
}

TEST_P(PagedAttentionTest, ParallelForGivesIdenticalResults) {
  const auto [heads, kv_heads, head_dim, block_size] = GetParam();
  Fixture f(heads, kv_heads, head_dim, block_size, {{1, 0, 70}, {2, 33, 1}, {3, 5, 3}}, 99);
  const std::vector<float> serial = f.Run();
  PagedAttentionOptions options;
  int calls = 0;
  options.parallel_for = [&calls](int n, const std::function<void(int)>& fn) {
    ++calls;
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, t] {
        for (int i = t; i < n; i += 2) fn(i);
      });
    }
    for (auto& th : threads) th.join();
  };
  const std::vector<float> parallel = f.Run(options);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(serial, parallel);  // same work items, same arithmetic: bit-identical
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PagedAttentionTest,
    ::testing::Values(std::make_tuple(4, 4, 16, 16),  // GQA ratio 1
                      std::make_tuple(4, 2, 16, 16),  // ratio 2 (the golden models)
                      std::make_tuple(8, 2, 64, 16),  // ratio 4
                      std::make_tuple(8, 2, 128, 16),
                      std::make_tuple(16, 4, 128, 8),  // smaller blocks
                      std::make_tuple(32, 4, 64, 32),  // ratio 8: tiles of fewer rows
                      std::make_tuple(2, 1, 16, 1)));  // one token per block

TEST(PagedAttentionScaleTest, ExplicitScaleIsUsed) {
  // One key/value per position; a zero scale would give uniform weights, a big one argmax.
  Fixture f(1, 1, 16, 4, {{1, 0, 6}}, 5);
  PagedAttentionOptions options;
  options.scale = 1.0f / std::sqrt(16.0f);
  EXPECT_EQ(f.Run(options), f.Run());
  options.scale = 1.0f;
  EXPECT_NE(f.Run(options), f.Run());
}

TEST(PagedAttentionTest, RowZeroAttendsOnlyToItself) {
  Fixture f(2, 1, 16, 4, {{1, 0, 5}}, 6);
  const std::vector<float> out = f.Run();
  // Position 0 sees only its own value: softmax over one key is exactly 1.
  const BlockId b = f.cache().Table(1)->blocks[0];
  const float* v0 = f.cache().ValueAt(1, b, 0);
  for (int h = 0; h < 2; ++h) {
    for (int j = 0; j < 16; ++j) EXPECT_FLOAT_EQ(out[h * 16 + j], v0[j]);
  }
}

}  // namespace
}  // namespace moe::attention
