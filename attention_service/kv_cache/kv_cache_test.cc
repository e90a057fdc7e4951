#include "attention_service/kv_cache/kv_cache.h"

#include <algorithm>
#include <set>
#include <vector>

#include "attention_service/kv_cache/block_allocator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moe::attention {
namespace {

using ::testing::ElementsAre;

TEST(BlockAllocatorTest, AllocatesAndFreesWithAccounting) {
  BlockAllocator alloc(8);
  EXPECT_EQ(alloc.num_blocks(), 8);
  EXPECT_EQ(alloc.num_free(), 8);
  EXPECT_DOUBLE_EQ(alloc.UsageFraction(), 0.0);

  std::vector<BlockId> a;
  ASSERT_TRUE(alloc.Allocate(3, &a).ok());
  EXPECT_THAT(a, ElementsAre(0, 1, 2));
  EXPECT_EQ(alloc.num_used(), 3);
  EXPECT_DOUBLE_EQ(alloc.UsageFraction(), 3.0 / 8);

  std::vector<BlockId> b;
  ASSERT_TRUE(alloc.Allocate(5, &b).ok());
  EXPECT_EQ(alloc.num_free(), 0);
  EXPECT_DOUBLE_EQ(alloc.UsageFraction(), 1.0);
  std::set<BlockId> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  EXPECT_EQ(all.size(), 8u);  // no block handed out twice

  alloc.Free(a);
  EXPECT_EQ(alloc.num_free(), 3);
  for (BlockId id : a) EXPECT_FALSE(alloc.IsAllocated(id));
  for (BlockId id : b) EXPECT_TRUE(alloc.IsAllocated(id));
}

TEST(BlockAllocatorTest, ExhaustionIsAllOrNothing) {
  BlockAllocator alloc(4);
  std::vector<BlockId> a;
  ASSERT_TRUE(alloc.Allocate(3, &a).ok());
  std::vector<BlockId> b = {42};  // existing contents must survive a failed call
  absl::Status s = alloc.Allocate(2, &b);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(b, ElementsAre(42));
  EXPECT_EQ(alloc.num_free(), 1);
  ASSERT_TRUE(alloc.Allocate(1, &b).ok());
  EXPECT_THAT(b, ElementsAre(42, 3));
  EXPECT_TRUE(alloc.Allocate(0, &b).ok());
}

TEST(BlockAllocatorTest, FreedBlocksAreReused) {
  BlockAllocator alloc(2);
  std::vector<BlockId> a;
  ASSERT_TRUE(alloc.Allocate(2, &a).ok());
  alloc.Free({a[1]});
  std::vector<BlockId> b;
  ASSERT_TRUE(alloc.Allocate(1, &b).ok());
  EXPECT_THAT(b, ElementsAre(a[1]));
}

TEST(BlockAllocatorDeathTest, DoubleFreeAborts) {
  BlockAllocator alloc(2);
  std::vector<BlockId> a;
  ASSERT_TRUE(alloc.Allocate(1, &a).ok());
  alloc.Free(a);
  EXPECT_DEATH(alloc.Free(a), "MOE_CHECK");
}

KvCacheConfig SmallConfig(int num_blocks) {
  KvCacheConfig c;
  c.num_layers = 2;
  c.num_kv_heads = 2;
  c.head_dim = 4;
  c.block_size = 4;
  c.num_blocks = num_blocks;
  return c;
}

// A recognisable value for (layer, seq, position, kind, element).
float Tag(int layer, SeqId seq, int pos, int kind, int e) {
  return layer * 100000.0f + static_cast<float>(seq) * 10000.0f + pos * 10.0f + kind * 5.0f +
         e * 0.01f;
}

void WriteToken(KvCache& cache, int layer, SeqId seq, int pos) {
  const int row = cache.num_kv_heads() * cache.head_dim();
  std::vector<float> k(row), v(row);
  for (int e = 0; e < row; ++e) {
    k[e] = Tag(layer, seq, pos, 0, e);
    v[e] = Tag(layer, seq, pos, 1, e);
  }
  cache.Append(layer, seq, pos, k.data(), v.data());
}

void ExpectToken(const KvCache& cache, int layer, SeqId seq, int pos) {
  const BlockTable* t = cache.Table(seq);
  ASSERT_NE(t, nullptr);
  const BlockId block = t->blocks[pos / cache.block_size()];
  const float* k = cache.KeyAt(layer, block, pos % cache.block_size());
  const float* v = cache.ValueAt(layer, block, pos % cache.block_size());
  for (int e = 0; e < cache.num_kv_heads() * cache.head_dim(); ++e) {
    ASSERT_EQ(k[e], Tag(layer, seq, pos, 0, e)) << "layer " << layer << " pos " << pos;
    ASSERT_EQ(v[e], Tag(layer, seq, pos, 1, e)) << "layer " << layer << " pos " << pos;
  }
}

TEST(KvCacheTest, CreateValidatesAndSizesFromBudget) {
  KvCacheConfig c = SmallConfig(0);
  c.budget_bytes = KvCache::BytesPerBlock(c) * 5 + 7;
  auto cache = KvCache::Create(c);
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ((*cache)->config().num_blocks, 5);
  EXPECT_EQ(KvCache::BytesPerBlock(c), 2 * 2 * 4 * 2 * 4 * 4);

  c.budget_bytes = KvCache::BytesPerBlock(c) - 1;
  EXPECT_EQ(KvCache::Create(c).status().code(), absl::StatusCode::kInvalidArgument);
  KvCacheConfig bad = SmallConfig(4);
  bad.head_dim = 0;
  EXPECT_EQ(KvCache::Create(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(KvCacheTest, ReserveGrowsTablesAndReleaseReturnsBlocks) {
  auto cache = *KvCache::Create(SmallConfig(10));
  ASSERT_TRUE(cache->Reserve(1, 5).ok());  // 2 blocks
  EXPECT_EQ(cache->Table(1)->blocks.size(), 2u);
  EXPECT_EQ(cache->Table(1)->num_tokens, 5);
  ASSERT_TRUE(cache->Reserve(1, 8).ok());  // still 2 blocks
  EXPECT_EQ(cache->Table(1)->blocks.size(), 2u);
  ASSERT_TRUE(cache->Reserve(1, 9).ok());  // 3 blocks
  EXPECT_EQ(cache->Table(1)->blocks.size(), 3u);
  ASSERT_TRUE(cache->Reserve(2, 1).ok());
  EXPECT_EQ(cache->num_free_blocks(), 6);
  EXPECT_DOUBLE_EQ(cache->UsageFraction(), 0.4);
  EXPECT_EQ(cache->Reserve(1, 3).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(cache->Reserve(1, 9).ok());  // same size: no-op

  cache->Release(1);
  EXPECT_FALSE(cache->Contains(1));
  EXPECT_EQ(cache->Table(1), nullptr);
  EXPECT_EQ(cache->num_free_blocks(), 9);
  cache->Release(1);  // unknown: no-op
  cache->Release(2);
  EXPECT_EQ(cache->num_free_blocks(), 10);
  EXPECT_DOUBLE_EQ(cache->UsageFraction(), 0.0);
}

TEST(KvCacheTest, ExhaustionLeavesEverythingUntouched) {
  auto cache = *KvCache::Create(SmallConfig(4));
  ASSERT_TRUE(cache->Reserve(7, 6).ok());  // 2 blocks
  for (int layer = 0; layer < 2; ++layer) {
    for (int p = 0; p < 6; ++p) WriteToken(*cache, layer, 7, p);
  }
  ASSERT_TRUE(cache->Reserve(8, 3).ok());  // 1 block
  for (int p = 0; p < 3; ++p) WriteToken(*cache, 0, 8, p);
  const std::vector<BlockId> blocks7 = cache->Table(7)->blocks;
  const std::vector<BlockId> blocks8 = cache->Table(8)->blocks;

  // 13 tokens need 4 blocks, 2 more than seq 7 holds; only 1 is free.
  EXPECT_EQ(cache->Reserve(7, 13).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(cache->Table(7)->blocks, blocks7);
  EXPECT_EQ(cache->Table(7)->num_tokens, 6);
  // A new sequence that does not fit is not created.
  EXPECT_EQ(cache->Reserve(9, 9).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(cache->Contains(9));
  EXPECT_EQ(cache->num_free_blocks(), 1);
  EXPECT_EQ(cache->Table(8)->blocks, blocks8);
  for (int layer = 0; layer < 2; ++layer) {
    for (int p = 0; p < 6; ++p) ExpectToken(*cache, layer, 7, p);
  }
  for (int p = 0; p < 3; ++p) ExpectToken(*cache, 0, 8, p);
  // What does fit still works.
  EXPECT_TRUE(cache->Reserve(7, 12).ok());
  EXPECT_EQ(cache->num_free_blocks(), 0);
}

TEST(KvCacheTest, BlocksAreReusedAfterReleaseAndDataIsPerLayer) {
  auto cache = *KvCache::Create(SmallConfig(3));
  ASSERT_TRUE(cache->Reserve(1, 12).ok());
  EXPECT_EQ(cache->num_free_blocks(), 0);
  EXPECT_EQ(cache->Reserve(2, 1).code(), absl::StatusCode::kResourceExhausted);
  const std::vector<BlockId> old_blocks = cache->Table(1)->blocks;
  cache->Release(1);
  ASSERT_TRUE(cache->Reserve(2, 10).ok());
  std::vector<BlockId> got = cache->Table(2)->blocks;
  std::vector<BlockId> want = old_blocks;
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  for (int layer = 0; layer < 2; ++layer) {
    for (int p = 0; p < 10; ++p) WriteToken(*cache, layer, 2, p);
  }
  for (int layer = 0; layer < 2; ++layer) {
    for (int p = 0; p < 10; ++p) ExpectToken(*cache, layer, 2, p);
  }
}

TEST(KvCacheTest, AppendRowsMatchesAppendAndLayoutIsAsDocumented) {
  auto cache = *KvCache::Create(SmallConfig(4));
  ASSERT_TRUE(cache->Reserve(3, 7).ok());
  const int row = 8;
  std::vector<float> k(7 * row), v(7 * row);
  for (int p = 0; p < 7; ++p) {
    for (int e = 0; e < row; ++e) {
      k[p * row + e] = Tag(1, 3, p, 0, e);
      v[p * row + e] = Tag(1, 3, p, 1, e);
    }
  }
  cache->AppendRows(1, 3, 0, 7, k.data(), v.data());
  for (int p = 0; p < 7; ++p) ExpectToken(*cache, 1, 3, p);
  // Documented layout: slots token_stride apart; blocks of one layer block_size slots apart;
  // V after K of the same layer.
  const BlockId b = cache->Table(3)->blocks[1];
  EXPECT_EQ(cache->KeyAt(1, b, 1) - cache->KeyAt(1, b, 0), cache->token_stride());
  EXPECT_EQ(cache->KeyAt(1, b, 0) - cache->KeyAt(1, 0, 0), b * 4 * cache->token_stride());
  EXPECT_EQ(cache->ValueAt(1, 0, 0) - cache->KeyAt(1, 0, 0), 4 * 4 * cache->token_stride());
}

TEST(KvCacheDeathTest, AppendPastReservationAborts) {
  auto cache = *KvCache::Create(SmallConfig(4));
  ASSERT_TRUE(cache->Reserve(1, 4).ok());
  std::vector<float> row(8, 1.0f);
  EXPECT_DEATH(cache->Append(0, 1, 4, row.data(), row.data()), "MOE_CHECK");
  EXPECT_DEATH(cache->Append(0, 2, 0, row.data(), row.data()), "MOE_CHECK");
}

}  // namespace
}  // namespace moe::attention
