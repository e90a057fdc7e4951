// Micro-batch overlap: the split, the lane threads, and ModelRunner/Engine with 2+ lanes on the
// golden tiny models giving the same tokens and logits as one batch, with an expert executor
// that "computes elsewhere" (a wrapper around the local executor that also watches whether the
// lanes overlapped).
#include "attention_service/engine/micro_batch.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "attention_service/engine/engine.h"
#include "attention_service/engine/local_model.h"

namespace moe::attention {
namespace {

TEST(SplitMicroBatchesTest, BalancesTokensWithoutSplittingChunks) {
  EXPECT_EQ(SplitMicroBatches({1, 1, 1, 1}, 2), (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(SplitMicroBatches({1, 1, 1, 1, 1, 1, 1, 1}, 2), (std::vector<int>{0, 4, 8}));
  EXPECT_EQ(SplitMicroBatches({1, 1, 1, 1, 1, 1, 1}, 3), (std::vector<int>{0, 2, 5, 7}));
  // Decode tokens first, then prefill chunks (the engine's order).
  EXPECT_EQ(SplitMicroBatches({1, 1, 1, 1, 100, 100}, 2), (std::vector<int>{0, 5, 6}));
  EXPECT_EQ(SplitMicroBatches({1, 1, 300}, 2), (std::vector<int>{0, 2, 3}));
  EXPECT_EQ(SplitMicroBatches({300, 1, 1}, 2), (std::vector<int>{0, 1, 3}));
  EXPECT_EQ(SplitMicroBatches({10, 10, 10, 10}, 4), (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(SplitMicroBatchesTest, FewerChunksThanMicroBatches) {
  EXPECT_EQ(SplitMicroBatches({5}, 2), (std::vector<int>{0, 1}));
  EXPECT_EQ(SplitMicroBatches({5, 7}, 4), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(SplitMicroBatches({}, 2), (std::vector<int>{}));
  EXPECT_EQ(SplitMicroBatches({3, 4}, 1), (std::vector<int>{0, 2}));
  EXPECT_EQ(SplitMicroBatches({3, 4}, 0), (std::vector<int>{0, 2}));
}

TEST(SplitMicroBatchesTest, MinTokensCapsTheGroups) {
  const std::vector<int> eight(8, 1);
  EXPECT_EQ(SplitMicroBatches(eight, 2, 16), (std::vector<int>{0, 8}));    // 8 < 2 x 16
  EXPECT_EQ(SplitMicroBatches(eight, 2, 4), (std::vector<int>{0, 4, 8}));  // 2 x 4 fit
  EXPECT_EQ(SplitMicroBatches(eight, 4, 3), (std::vector<int>{0, 4, 8}));  // only 2 x 3 fit
  EXPECT_EQ(SplitMicroBatches({100, 1, 1}, 2, 32), (std::vector<int>{0, 1, 3}));
  EXPECT_EQ(SplitMicroBatches({3, 4}, 2, 0), (std::vector<int>{0, 1, 2}));
}

TEST(SplitMicroBatchesTest, EveryGroupNonEmptyAndCoversAll) {
  for (int n = 1; n < 12; ++n) {
    for (int m = 1; m < 6; ++m) {
      std::vector<int> tokens(n);
      for (int i = 0; i < n; ++i) tokens[i] = 1 + (i * 37) % 13;
      std::vector<int> b = SplitMicroBatches(tokens, m);
      ASSERT_EQ(static_cast<int>(b.size()), std::min(n, m) + 1) << n << " " << m;
      EXPECT_EQ(b.front(), 0);
      EXPECT_EQ(b.back(), n);
      for (size_t g = 1; g < b.size(); ++g) EXPECT_LT(b[g - 1], b[g]);
    }
  }
}

std::string ThreadName() {
  char name[32] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

TEST(LaneThreadsTest, RunsEveryLaneOnItsOwnPersistentThread) {
  LaneThreads lanes;
  for (int n : {2, 3, 1, 3, 2}) {
    std::vector<std::thread::id> ids(n);
    std::vector<std::string> names(n);
    std::atomic<int> calls{0};
    lanes.Run(n, [&](int lane) {
      ids[lane] = std::this_thread::get_id();
      names[lane] = ThreadName();
      ++calls;
    });
    EXPECT_EQ(calls.load(), n);
    EXPECT_EQ(ids[0], std::this_thread::get_id());
    std::set<std::thread::id> distinct(ids.begin(), ids.end());
    EXPECT_EQ(static_cast<int>(distinct.size()), n);
    for (int i = 1; i < n; ++i) EXPECT_EQ(names[i], "mb-lane-" + std::to_string(i));
  }
  EXPECT_EQ(lanes.num_threads(), 2);  // created once, reused
}

TEST(LaneThreadsTest, LanesRunConcurrently) {
  // Each lane waits for the other: only concurrent lanes finish (bounded wait).
  LaneThreads lanes;
  absl::Mutex mu;
  int arrived = 0;
  bool both = true;
  lanes.Run(2, [&](int) {
    absl::MutexLock lock(&mu);
    ++arrived;
    auto two = [&arrived]() { return arrived == 2; };
    both &= mu.AwaitWithTimeout(absl::Condition(&two), absl::Seconds(10));
  });
  EXPECT_TRUE(both);
}

// An ExpertExecutor that "computes elsewhere": it wraps a local executor (called under its
// own mutex, so lanes may call Run concurrently when `thread_safe`) and records how lanes
// entered Run. With `rendezvous`, a Run for the first MoE layer waits (bounded) until another
// lane calls Run (or was inside Run already): the other lane can only get there by computing
// its embedding, attention and router while this one waits in Run, so `overlaps()` ==
// `rendezvous_calls()` proves that every Forward's lanes ping-ponged. (Later layers are not
// rendezvous points: the lanes may drift a layer apart, and the last lane's last Run has no
// partner.)
class ElsewhereExecutor final : public ExpertExecutor {
 public:
  struct Options {
    bool thread_safe = true;
    bool rendezvous = false;
    int rendezvous_layer = 0;  // the first MoE layer: every lane of a Forward calls Run for it
    absl::Duration delay = absl::ZeroDuration();  // simulated remote time per Run
  };
  ElsewhereExecutor(ExpertExecutor* inner, Options options) : inner_(inner), options_(options) {}

  absl::Status Run(int layer, const float* x, int hidden, const model::Routing& routing,
                   float* out, DispatchMemory* memory) override {
    {
      absl::MutexLock lock(&mu_);
      ++inside_;
      const int64_t me = ++calls_;
      threads_.insert(std::this_thread::get_id());
      max_inside_ = std::max(max_inside_, inside_);
      if (options_.rendezvous && layer == options_.rendezvous_layer) {
        ++rendezvous_calls_;
        // Met another lane: it was inside when this one came, or it came while this one waits.
        const bool met_at_entry = inside_ >= 2;
        auto other = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return met_at_entry || calls_ > me;
        };
        if (mu_.AwaitWithTimeout(absl::Condition(&other), absl::Seconds(5))) ++overlaps_;
      }
    }
    absl::SleepFor(options_.delay);
    absl::Status s;
    {
      absl::MutexLock lock(&inner_mu_);
      s = inner_->Run(layer, x, hidden, routing, out, memory);
    }
    absl::MutexLock lock(&mu_);
    --inside_;
    return s;
  }
  bool ComputesElsewhere() const override { return true; }
  bool RunIsThreadSafe() const override { return options_.thread_safe; }

  int max_inside() {
    absl::MutexLock lock(&mu_);
    return max_inside_;
  }
  int overlaps() {
    absl::MutexLock lock(&mu_);
    return overlaps_;
  }
  int rendezvous_calls() {
    absl::MutexLock lock(&mu_);
    return rendezvous_calls_;
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(calls_);
  }
  int threads() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(threads_.size());
  }

 private:
  ExpertExecutor* inner_;
  const Options options_;
  absl::Mutex inner_mu_;
  absl::Mutex mu_;
  int inside_ ABSL_GUARDED_BY(mu_) = 0;
  int max_inside_ ABSL_GUARDED_BY(mu_) = 0;
  int overlaps_ ABSL_GUARDED_BY(mu_) = 0;
  int rendezvous_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::thread::id> threads_ ABSL_GUARDED_BY(mu_);
};

// Largest |a - b| relative to max(1, |a|).
double MaxRelDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::abs(static_cast<double>(a[i]) - b[i]) /
                        std::max(1.0, std::abs(static_cast<double>(a[i]))));
  }
  return d;
}

std::unique_ptr<KvCache> NewCache(const model::ModelConfig& c) {
  KvCacheConfig kv;
  kv.num_layers = c.num_hidden_layers;
  kv.num_kv_heads = c.num_key_value_heads;
  kv.head_dim = c.head_dim;
  kv.block_size = 16;
  kv.num_blocks = 64;
  auto cache = KvCache::Create(kv);
  EXPECT_TRUE(cache.ok()) << cache.status();
  return cache.ok() ? std::move(*cache) : nullptr;
}

// Logits of a prefill step (5 sequences of different lengths, one wanting all rows) then
// `decodes` greedy decode steps, with `micro_batches` lanes.
std::vector<std::vector<float>> RunSteps(ModelRunner* runner, ExpertExecutor* experts,
                                         int micro_batches, int decodes) {
  const model::ModelConfig& c = runner->config();
  std::unique_ptr<KvCache> cache = NewCache(c);
  std::vector<std::vector<int32_t>> seqs = {
      {1, 17, 42, 9}, {3}, {100, 5, 6, 7, 8, 9, 10, 11, 12}, {250, 251}, {7, 7, 7, 7, 7, 7}};
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (int32_t& t : seqs[s]) t %= c.vocab_size;
    EXPECT_TRUE(cache->Reserve(s, static_cast<int>(seqs[s].size()) + decodes).ok());
  }
  std::vector<std::vector<float>> steps;
  std::vector<ForwardChunk> chunks;
  for (size_t s = 0; s < seqs.size(); ++s) {
    ForwardChunk ch;
    ch.seq = s;
    ch.start = 0;
    ch.tokens = seqs[s];
    ch.logits = s == 2 ? ForwardChunk::Logits::kAll : ForwardChunk::Logits::kLast;
    chunks.push_back(ch);
  }
  std::vector<float> logits;
  std::vector<std::vector<int32_t>> next(seqs.size(), std::vector<int32_t>(1));
  for (int step = 0; step <= decodes; ++step) {
    absl::Status st = runner->Forward(chunks, cache.get(), experts, &logits, micro_batches);
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok()) break;
    steps.push_back(logits);
    // Greedy next token per sequence, from its last logits row.
    size_t row = 0;
    for (size_t s = 0; s < chunks.size(); ++s) {
      row += chunks[s].logits == ForwardChunk::Logits::kAll ? chunks[s].tokens.size() : 1;
      const float* lr = &logits[(row - 1) * c.vocab_size];
      next[s][0] = static_cast<int32_t>(std::max_element(lr, lr + c.vocab_size) - lr);
    }
    for (size_t s = 0; s < chunks.size(); ++s) {
      chunks[s].start += static_cast<int>(chunks[s].tokens.size());
      chunks[s].tokens = next[s];
      chunks[s].logits = ForwardChunk::Logits::kLast;
    }
  }
  return steps;
}

class MicroBatchModelTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto m = LocalModel::Open(std::string(MOE_GOLDEN_DIR) + "/" + GetParam() + "/hf-f32");
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = std::move(*m);
  }
  std::unique_ptr<LocalModel> model_;
};

// Tolerance for logits of a different batch grouping: the GEMMs may block rows differently.
constexpr double kLogitTol = 1e-5;

TEST_P(MicroBatchModelTest, TwoLanesMatchOneBatchAndOverlap) {
  const int decodes = 4;
  const auto base = RunSteps(model_->runner(), model_->experts(), 1, decodes);
  ElsewhereExecutor::Options o;
  o.rendezvous = true;
  while (!model_->config().IsMoeLayer(o.rendezvous_layer)) ++o.rendezvous_layer;
  ElsewhereExecutor elsewhere(model_->experts(), o);
  const int64_t overlaps_before = model_->runner()->micro_batch_overlaps();
  const auto mb = RunSteps(model_->runner(), &elsewhere, 2, decodes);
  ASSERT_EQ(mb.size(), base.size());
  for (size_t s = 0; s < base.size(); ++s) {
    ASSERT_EQ(mb[s].size(), base[s].size()) << "step " << s;
    EXPECT_LT(MaxRelDiff(base[s], mb[s]), kLogitTol) << "step " << s;
  }
  // In every Forward, one lane computed while the other waited in Run.
  EXPECT_EQ(elsewhere.threads(), 2);
  EXPECT_EQ(elsewhere.max_inside(), 2);
  EXPECT_EQ(elsewhere.rendezvous_calls(), 2 * (decodes + 1));
  EXPECT_EQ(elsewhere.overlaps(), elsewhere.rendezvous_calls());
  EXPECT_GT(model_->runner()->micro_batch_overlaps(), overlaps_before);
}

TEST_P(MicroBatchModelTest, SerialisesRunForAThreadUnsafeExecutor) {
  const int decodes = 2;
  const auto base = RunSteps(model_->runner(), model_->experts(), 1, decodes);
  ElsewhereExecutor::Options o;
  o.thread_safe = false;
  o.delay = absl::Milliseconds(1);
  ElsewhereExecutor elsewhere(model_->experts(), o);
  const auto mb = RunSteps(model_->runner(), &elsewhere, 3, decodes);
  ASSERT_EQ(mb.size(), base.size());
  for (size_t s = 0; s < base.size(); ++s) {
    ASSERT_EQ(mb[s].size(), base[s].size()) << "step " << s;
    EXPECT_LT(MaxRelDiff(base[s], mb[s]), kLogitTol) << "step " << s;
  }
  EXPECT_EQ(elsewhere.threads(), 3);
  EXPECT_EQ(elsewhere.max_inside(), 1);  // never two Runs at once
}

TEST_P(MicroBatchModelTest, LocalExecutorWithLanesMatches) {
  // ComputesElsewhere() is false: the lanes take turns for whole forwards; same results.
  const auto base = RunSteps(model_->runner(), model_->experts(), 1, 2);
  const auto mb = RunSteps(model_->runner(), model_->experts(), 2, 2);
  ASSERT_EQ(mb.size(), base.size());
  for (size_t s = 0; s < base.size(); ++s) {
    EXPECT_LT(MaxRelDiff(base[s], mb[s]), kLogitTol) << "step " << s;
  }
}

// Engine level: several concurrent sequences (staggered lengths, chunked prefill, prompt
// logprobs, one finishing early) give the same tokens and logprobs with 1, 2 and 3 micro-batches.
struct EngineRun {
  std::map<SeqId, std::vector<GeneratedToken>> tokens;
  std::map<SeqId, std::vector<GeneratedToken>> prompt_logprobs;
};

EngineRun RunEngine(LocalModel* model, ExpertExecutor* experts, int micro_batches) {
  EngineOptions eo;
  eo.max_batch_tokens = 24;  // forces chunked prefill mixed with decode
  eo.kv_cache_bytes = 32ll << 20;
  eo.micro_batches = micro_batches;
  auto engine = Engine::Create(eo, model->runner(), experts);
  EXPECT_TRUE(engine.ok()) << engine.status();
  EngineRun out;
  if (!engine.ok()) return out;
  const int vocab = model->config().vocab_size;
  for (int i = 0; i < 7; ++i) {
    SequenceRequest r;
    for (int j = 0; j < 3 + 5 * i; ++j) r.prompt.push_back((11 + 31 * i + 7 * j) % vocab);
    r.max_tokens = 6 + 2 * (i % 3);
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    r.sampling.top_logprobs = 2;
    r.prompt_logprobs = i == 3;
    EXPECT_TRUE((*engine)->Add(100 + i, std::move(r)).ok());
  }
  for (int step = 0; step < 1000 && (*engine)->HasWork(); ++step) {
    auto ups = (*engine)->Step();
    EXPECT_TRUE(ups.ok()) << ups.status();
    if (!ups.ok()) break;
    for (auto& u : *ups) {
      EXPECT_TRUE(u.error.ok()) << u.error;
      for (auto& t : u.tokens) out.tokens[u.id].push_back(t);
      for (auto& t : u.prompt_logprobs) out.prompt_logprobs[u.id].push_back(t);
    }
  }
  return out;
}

void ExpectSame(const std::map<SeqId, std::vector<GeneratedToken>>& a,
                const std::map<SeqId, std::vector<GeneratedToken>>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [id, ta] : a) {
    ASSERT_TRUE(b.contains(id)) << id;
    const auto& tb = b.at(id);
    ASSERT_EQ(ta.size(), tb.size()) << id;
    for (size_t k = 0; k < ta.size(); ++k) {
      EXPECT_EQ(ta[k].id, tb[k].id) << "seq " << id << " token " << k;
      EXPECT_NEAR(ta[k].logprob, tb[k].logprob, 1e-4) << "seq " << id << " token " << k;
      ASSERT_EQ(ta[k].top.size(), tb[k].top.size());
      for (size_t j = 0; j < ta[k].top.size(); ++j) {
        EXPECT_EQ(ta[k].top[j].id, tb[k].top[j].id);
        EXPECT_NEAR(ta[k].top[j].logprob, tb[k].top[j].logprob, 1e-4);
      }
    }
  }
}

TEST_P(MicroBatchModelTest, EngineSameTokensAndLogprobs) {
  const EngineRun base = RunEngine(model_.get(), model_->experts(), 1);
  ASSERT_EQ(base.tokens.size(), 7u);
  ASSERT_EQ(base.prompt_logprobs.size(), 1u);
  for (int m : {2, 3}) {
    ElsewhereExecutor::Options o;
    o.delay = absl::Microseconds(200);
    ElsewhereExecutor elsewhere(model_->experts(), o);
    const EngineRun mb = RunEngine(model_.get(), &elsewhere, m);
    ExpectSame(base.tokens, mb.tokens);
    ExpectSame(base.prompt_logprobs, mb.prompt_logprobs);
    EXPECT_EQ(elsewhere.threads(), m);
  }
}

TEST(MicroBatchEngineTest, RejectsZeroMicroBatches) {
  auto m = LocalModel::Open(std::string(MOE_GOLDEN_DIR) + "/tiny-mixtral/hf-f32");
  ASSERT_TRUE(m.ok()) << m.status();
  EngineOptions eo;
  eo.micro_batches = 0;
  EXPECT_EQ((*m)->NewEngine(eo).status().code(), absl::StatusCode::kInvalidArgument);
  eo.micro_batches = 2;
  eo.micro_batch_min_tokens = 0;
  EXPECT_EQ((*m)->NewEngine(eo).status().code(), absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Golden, MicroBatchModelTest,
                         testing::Values("tiny-mixtral", "tiny-qwen3moe"),
                         [](const testing::TestParamInfo<std::string>& p) {
                           std::string s = p.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

}  // namespace
}  // namespace moe::attention
