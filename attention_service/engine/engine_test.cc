// Engine behaviour on a real tiny model (the golden tiny-mixtral F32 folder): validation,
// KV exhaustion, cancellation, batching invariance and seeded sampling.
#include "attention_service/engine/engine.h"

#include <gtest/gtest.h>

#include "attention_service/engine/local_model.h"

namespace moe::attention {
namespace {

class EngineTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = LocalModel::Open(std::string(MOE_GOLDEN_DIR) + "/tiny-mixtral/hf-f32");
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = m->release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  std::unique_ptr<Engine> NewEngine(EngineOptions o = {}) {
    auto e = model_->NewEngine(o);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? std::move(*e) : nullptr;
  }
  // Steps until idle; returns the generated ids per sequence.
  static std::map<SeqId, std::vector<int32_t>> Drain(Engine* e, std::map<SeqId, FinishReason>* fin = nullptr) {
    std::map<SeqId, std::vector<int32_t>> out;
    for (int i = 0; i < 10000 && e->HasWork(); ++i) {
      auto ups = e->Step();
      EXPECT_TRUE(ups.ok());
      if (!ups.ok()) break;
      for (auto& u : *ups) {
        EXPECT_TRUE(u.error.ok()) << u.error;
        for (auto& t : u.tokens) out[u.id].push_back(t.id);
        if (fin && u.finish != FinishReason::kNone) (*fin)[u.id] = u.finish;
      }
    }
    return out;
  }
  static SequenceRequest Req(std::vector<int32_t> prompt, int max_tokens, float temperature = 0) {
    SequenceRequest r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.sampling.temperature = temperature;
    r.ignore_eos = true;
    return r;
  }
  static LocalModel* model_;
};
LocalModel* EngineTest::model_ = nullptr;

TEST_F(EngineTest, RejectsBadRequests) {
  auto e = NewEngine();
  EXPECT_EQ(e->Add(1, Req({}, 4)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Add(2, Req({1, 512}, 4)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Add(3, Req({1, -1}, 4)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Add(4, Req({1, 2}, 0)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Add(5, Req({1, 2}, -3)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Add(6, Req(std::vector<int32_t>(500, 7), 20)).code(),
            absl::StatusCode::kInvalidArgument);  // past the 512-token context
  SequenceRequest bad_t = Req({1, 2}, 4, -1.0f);
  EXPECT_EQ(e->Add(7, bad_t).code(), absl::StatusCode::kInvalidArgument);
  SequenceRequest bad_p = Req({1, 2}, 4, 1.0f);
  bad_p.sampling.top_p = 0;
  EXPECT_EQ(e->Add(8, bad_p).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(e->Add(9, Req({1, 2}, 4)).ok());
  EXPECT_EQ(e->Add(9, Req({1, 2}, 4)).code(), absl::StatusCode::kInvalidArgument);  // duplicate
  EXPECT_EQ(e->num_waiting(), 1);  // only the valid request was queued
}

TEST_F(EngineTest, BatchedGreedyEqualsAlone) {
  std::vector<std::vector<int32_t>> prompts = {{510, 84, 104, 101}, {510, 1, 2, 3, 4, 5, 6, 7, 8},
                                               {510, 300, 301}};
  std::map<SeqId, std::vector<int32_t>> alone;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto e = NewEngine();
    ASSERT_TRUE(e->Add(i, Req(prompts[i], 12)).ok());
    alone[i] = Drain(e.get())[i];
  }
  EngineOptions o;
  o.max_batch_tokens = 5;  // forces chunked prefill mixed with decode
  auto e = NewEngine(o);
  for (size_t i = 0; i < prompts.size(); ++i) ASSERT_TRUE(e->Add(i, Req(prompts[i], 12)).ok());
  auto batched = Drain(e.get());
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(batched[i], alone[i]) << "sequence " << i;
    EXPECT_EQ(batched[i].size(), 12u);
  }
  EXPECT_EQ(e->cache().num_sequences(), 0);
  EXPECT_EQ(e->kv_cache_usage(), 0.0);
}

TEST_F(EngineTest, SeededSamplingIsReproducible) {
  auto run = [&](uint64_t seed) {
    auto e = NewEngine();
    SequenceRequest r = Req({510, 84, 104}, 16, 1.0f);
    r.sampling.seed = seed;
    EXPECT_TRUE(e->Add(1, r).ok());
    return Drain(e.get())[1];
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST_F(EngineTest, KvExhaustionRejectsOnlyTheNewSequence) {
  EngineOptions o;
  o.kv_block_size = 16;
  // 4 layers x 2 kv heads x 16 dims x 2 (K,V) x 4 bytes x 16 slots = 16 KiB per block: 4 blocks.
  o.kv_cache_bytes = 4 * 16 * 1024;
  auto e = NewEngine(o);
  // Needs 5 blocks: can never fit.
  EXPECT_EQ(e->Add(1, Req(std::vector<int32_t>(70, 5), 10)).code(),
            absl::StatusCode::kResourceExhausted);
  // Two sequences of 3 blocks each: the second waits until the first finishes.
  ASSERT_TRUE(e->Add(2, Req(std::vector<int32_t>(30, 5), 10)).ok());
  ASSERT_TRUE(e->Add(3, Req(std::vector<int32_t>(30, 6), 10)).ok());
  auto first = e->Step();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(e->num_running(), 1);
  EXPECT_EQ(e->num_waiting(), 1);
  std::map<SeqId, FinishReason> fin;
  auto out = Drain(e.get(), &fin);
  EXPECT_EQ(out[3].size(), 10u);
  EXPECT_EQ(fin[2], FinishReason::kLength);
  EXPECT_EQ(fin[3], FinishReason::kLength);
}

TEST_F(EngineTest, CancelFreesBlocks) {
  auto e = NewEngine();
  ASSERT_TRUE(e->Add(1, Req({510, 1, 2, 3}, 50)).ok());
  ASSERT_TRUE(e->Step().ok());
  EXPECT_GT(e->kv_cache_usage(), 0.0);
  e->Cancel(1);
  EXPECT_FALSE(e->HasWork());
  EXPECT_EQ(e->kv_cache_usage(), 0.0);
}

TEST_F(EngineTest, StopsOnEosUnlessIgnored) {
  // Golden tiny-mixtral case 4: greedy decoding stops on EOS (509) after 21 tokens.
  std::vector<int32_t> prompt = {510, 67,  97,  102, 195, 169, 301, 97,  195, 175, 325,
                                 32,  114, 195, 169, 115, 117, 109, 195, 169, 32,  226,
                                 128, 148, 32,  230, 157, 177, 228, 186, 172, 32,  240,
                                 159, 154, 128, 466, 105, 120, 116, 117, 267, 45,  373,
                                 45,  69,  120, 112, 260, 116, 115, 33};
  auto e = NewEngine();
  SequenceRequest r = Req(prompt, 32);
  r.ignore_eos = false;
  ASSERT_TRUE(e->Add(1, r).ok());
  ASSERT_TRUE(e->Add(2, Req(prompt, 32)).ok());  // ignore_eos: runs to max_tokens
  std::map<SeqId, FinishReason> fin;
  auto out = Drain(e.get(), &fin);
  ASSERT_EQ(out[1].size(), 21u);
  EXPECT_EQ(out[1].back(), 509);
  EXPECT_EQ(fin[1], FinishReason::kStop);
  EXPECT_EQ(out[2].size(), 32u);
  EXPECT_EQ(fin[2], FinishReason::kLength);
  EXPECT_TRUE(std::equal(out[1].begin(), out[1].end(), out[2].begin()));
}

}  // namespace
}  // namespace moe::attention
