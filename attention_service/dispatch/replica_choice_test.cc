#include "attention_service/dispatch/replica_choice.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

namespace moe::attention {
namespace {

// Replicas per expert with their shares.
struct Table {
  std::map<int, std::vector<int>> instances;
  std::map<int, std::vector<double>> shares;
  ReplicaCandidates Fn() const {
    return [this](int e, std::vector<int>* i, std::vector<double>* s) {
      auto it = instances.find(e);
      if (it == instances.end()) return;
      *i = it->second;
      *s = shares.count(e) ? shares.at(e) : std::vector<double>(it->second.size(), 1.0);
    };
  }
};

// Routed pairs per expert in the output (checks each pair appears once).
std::map<int, std::vector<int>> Coverage(const std::vector<std::vector<Piece>>& out) {
  std::map<int, std::vector<int>> pairs;
  for (const auto& list : out) {
    for (const Piece& p : list) {
      for (int k = p.begin; k < p.end; ++k) pairs[p.expert].push_back(k);
    }
  }
  for (auto& [e, v] : pairs) std::sort(v.begin(), v.end());
  return pairs;
}


// One layer's routed pairs in ExpertGroups order (pair p of token pair_token[p]) with the
// positions ChooseReplicas permutes.
struct Layer {
  std::vector<int32_t> pair_token;
  std::vector<int32_t> order;
  explicit Layer(std::vector<int32_t> tokens) : pair_token(std::move(tokens)) {
    order.resize(pair_token.size());
    std::iota(order.begin(), order.end(), 0);
  }
  PairLocality Locality(const TokenHomes* homes) {
    return {absl::MakeSpan(order), pair_token, homes};
  }
  // The instance each pair went to (-1: none).
  std::vector<int32_t> PairInstance(const std::vector<std::vector<Piece>>& out) const {
    std::vector<int32_t> at(pair_token.size(), -1);
    for (size_t i = 0; i < out.size(); ++i) {
      for (const Piece& p : out[i]) {
        for (int pos = p.begin; pos < p.end; ++pos) {
          EXPECT_EQ(at[order[pos]], -1) << "pair " << order[pos] << " twice";
          at[order[pos]] = static_cast<int32_t>(i);
        }
      }
    }
    return at;
  }
};

// Tokens 0..n-1, one pair each.
std::vector<int32_t> Iota(int n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// Homes from a per-token instance list.
TokenHomes HomesOf(const std::vector<std::vector<int32_t>>& per_token) {
  std::vector<int32_t> pair_token, pair_home;
  for (size_t t = 0; t < per_token.size(); ++t) {
    for (int32_t i : per_token[t]) {
      pair_token.push_back(static_cast<int32_t>(t));
      pair_home.push_back(i);
    }
  }
  TokenHomes homes;
  BuildTokenHomes(static_cast<int>(per_token.size()), pair_token, pair_home, &homes);
  return homes;
}

// Pairs per instance.
std::vector<int> PairsPer(const std::vector<std::vector<Piece>>& out) {
  std::vector<int> n(out.size(), 0);
  for (size_t i = 0; i < out.size(); ++i) {
    for (const Piece& p : out[i]) n[i] += p.tokens();
  }
  return n;
}

TEST(ChooseReplicasTest, DecodePiecesSpreadEvenlyOverFullReplication) {
  // 10 experts with one token each, every expert on both instances, preference order always
  // instance 0 first: a first-replica rule would put all 10 on instance 0.
  Table t;
  std::vector<Piece> pieces;
  for (int e = 0; e < 10; ++e) {
    t.instances[e] = {0, 1};
    pieces.push_back({e, e, e + 1});
  }
  std::vector<std::vector<Piece>> out;
  std::vector<Piece> orphans;
  ChooseReplicas(pieces, 2, t.Fn(), {}, {}, &out, &orphans);
  EXPECT_TRUE(orphans.empty());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].size(), 5u);
  EXPECT_EQ(out[1].size(), 5u);
  EXPECT_EQ(Coverage(out).size(), 10u);
}

TEST(ChooseReplicasTest, PackPutsEveryShardOnFewestInstances) {
  // Experts 0-3 only on instance 1; 4-9 on both, half of them preferring instance 0; one
  // large shard of expert 10 on both. Packed, every shard joins instance 1 (already loaded by
  // the pinned ones), the large one whole.
  Table t;
  std::vector<Piece> pieces;
  for (int e = 0; e < 10; ++e) {
    t.instances[e] = e < 4   ? std::vector<int>{1}
                     : e % 2 ? std::vector<int>{1, 0}
                             : std::vector<int>{0, 1};
    pieces.push_back({e, e, e + 1});
  }
  t.instances[10] = {0, 1};
  pieces.push_back({10, 10, 50});
  std::vector<std::vector<Piece>> out;
  std::vector<Piece> orphans;
  ReplicaChoiceParams params;
  params.pack = true;
  ChooseReplicas(pieces, 2, t.Fn(), params, {}, &out, &orphans);
  EXPECT_TRUE(orphans.empty());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[0].empty());
  ASSERT_EQ(out[1].size(), 11u);  // all 10 small shards + the large one, whole
  EXPECT_EQ(out[1].back().expert, 10);
  EXPECT_EQ(out[1].back().tokens(), 40);
  EXPECT_EQ(PairsPer(out), (std::vector<int>{0, 50}));
  EXPECT_EQ(Coverage(out).size(), 11u);  // experts
  // Unpacked, the large shard is split by share.
  ChooseReplicas(pieces, 2, t.Fn(), {}, {}, &out, &orphans);
  ASSERT_FALSE(out[0].empty());
  EXPECT_EQ(out[0].back().expert, 10);
  EXPECT_EQ(out[0].back().tokens(), 20);

  // Without pinned experts the first shard's preferred instance collects them all.
  Table both;
  std::vector<Piece> small;
  for (int e = 0; e < 6; ++e) {
    both.instances[e] = e % 2 ? std::vector<int>{1, 0} : std::vector<int>{0, 1};
    small.push_back({e, e, e + 1});
  }
  ChooseReplicas(small, 2, both.Fn(), params, {}, &out, &orphans);
  EXPECT_EQ(PairsPer(out), (std::vector<int>{6, 0}));
  // The default spreads the same shards evenly.
  ChooseReplicas(small, 2, both.Fn(), {}, {}, &out, &orphans);
  EXPECT_EQ(PairsPer(out), (std::vector<int>{3, 3}));
}

TEST(ChooseReplicasTest, PinnedExpertsCountTowardsBalance) {
  // Experts 0-3 live only on instance 0; 4-7 on both: those go to instance 1.
  Table t;
  std::vector<Piece> pieces;
  for (int e = 0; e < 8; ++e) {
    t.instances[e] = e < 4 ? std::vector<int>{0} : std::vector<int>{0, 1};
    pieces.push_back({e, 2 * e, 2 * e + 2});
  }
  std::vector<std::vector<Piece>> out;
  std::vector<Piece> orphans;
  ChooseReplicas(pieces, 2, t.Fn(), {}, {}, &out, &orphans);
  ASSERT_EQ(out[0].size(), 4u);
  ASSERT_EQ(out[1].size(), 4u);
  for (const Piece& p : out[1]) EXPECT_GE(p.expert, 4);
  // Sorted by expert within an instance.
  EXPECT_EQ(out[0][0].expert, 0);
  EXPECT_EQ(out[0][3].expert, 3);
}

TEST(ChooseReplicasTest, HeaviestFirstLongestProcessingTime) {
  Table t;
  for (int e = 0; e < 3; ++e) t.instances[e] = {0, 1};
  // Costs (fixed 6 + tokens): 6+10=16, 6+5=11, 6+5=11 -> {16} vs {11, 11}.
  std::vector<Piece> pieces = {{0, 0, 10}, {1, 10, 15}, {2, 15, 20}};
  std::vector<std::vector<Piece>> out;
  std::vector<Piece> orphans;
  ChooseReplicas(pieces, 2, t.Fn(), {}, {}, &out, &orphans);
  ASSERT_EQ(out[0].size(), 1u);
  EXPECT_EQ(out[0][0], (Piece{0, 0, 10}));
  EXPECT_EQ(out[1].size(), 2u);
}

TEST(ChooseReplicasTest, LargeShardsSplitByShare) {
  Table t;
  t.instances[3] = {1, 0, 2};
  t.shares[3] = {0.5, 0.25, 0.25};
  std::vector<Piece> pieces = {{3, 100, 200}};  // 100 tokens
  std::vector<std::vector<Piece>> out;
  std::vector<Piece> orphans;
  ChooseReplicas(pieces, 3, t.Fn(), {.split_min_tokens = 32}, {}, &out, &orphans);
  ASSERT_EQ(out[1].size(), 1u);
  EXPECT_EQ(out[1][0], (Piece{3, 100, 150}));
  ASSERT_EQ(out[0].size(), 1u);
  EXPECT_EQ(out[0][0], (Piece{3, 150, 175}));
  ASSERT_EQ(out[2].size(), 1u);
  EXPECT_EQ(out[2][0], (Piece{3, 175, 200}));
  std::vector<int> all(100);
  for (int k = 0; k < 100; ++k) all[k] = 100 + k;
  EXPECT_EQ(Coverage(out)[3], all) << "every routed pair exactly once";
}

TEST(ChooseReplicasTest, SplitNeverLosesOrDuplicatesPairs) {
  Table t;
  t.instances[0] = {0, 1, 2};
  t.shares[0] = {0.333, 0.0, 0.667};  // a zero share gets nothing
  for (int tokens = 32; tokens < 80; ++tokens) {
    std::vector<Piece> pieces = {{0, 7, 7 + tokens}};
    std::vector<std::vector<Piece>> out;
    std::vector<Piece> orphans;
    ChooseReplicas(pieces, 3, t.Fn(), {.split_min_tokens = 32}, {}, &out, &orphans);
    EXPECT_TRUE(out[1].empty()) << tokens;
    std::vector<int> all(tokens);
    for (int k = 0; k < tokens; ++k) all[k] = 7 + k;
    EXPECT_EQ(Coverage(out)[0], all) << tokens;
  }
}

TEST(ChooseReplicasTest, ExpertsWithoutReplicaAreOrphans) {
  Table t;
  t.instances[1] = {0};
  std::vector<Piece> pieces = {{0, 0, 1}, {1, 1, 3}, {2, 3, 4}};
  std::vector<std::vector<Piece>> out;
  std::vector<Piece> orphans;
  ChooseReplicas(pieces, 1, t.Fn(), {}, {}, &out, &orphans);
  EXPECT_EQ(orphans, (std::vector<Piece>{{0, 0, 1}, {2, 3, 4}}));
  EXPECT_EQ(out[0], (std::vector<Piece>{{1, 1, 3}}));
}

TEST(TokenHomesTest, BuildSortsAndDeduplicatesPerToken) {
  TokenHomes homes;
  // Token 0: instances 2, 0, 2; token 1: none known; token 2: 1.
  BuildTokenHomes(3, std::vector<int32_t>{0, 2, 0, 1, 0}, std::vector<int32_t>{2, 1, 0, -1, 2},
                  &homes);
  EXPECT_EQ(homes.tokens(), 3);
  EXPECT_EQ(std::vector<int32_t>(homes.Of(0).begin(), homes.Of(0).end()),
            (std::vector<int32_t>{0, 2}));
  EXPECT_TRUE(homes.Of(1).empty());
  EXPECT_EQ(std::vector<int32_t>(homes.Of(2).begin(), homes.Of(2).end()),
            (std::vector<int32_t>{1}));
  EXPECT_TRUE(homes.Contains(0, 2));
  EXPECT_FALSE(homes.Contains(0, 1));
  EXPECT_FALSE(homes.Contains(7, 0));  // beyond the tokens: unknown
}

// Expert a (layer 0) and its partner b (layer 1) on instances {0, 1} with shares .5/.5; b lists
// them in the other preference order, so a contiguous split would move every token. 64 tokens
// choose a then b: each token's b runs where its a ran, 32 pairs per replica.
TEST(ChooseReplicasTest, LargeShardFollowsPreviousLayer) {
  Table layer0, layer1;
  layer0.instances[0] = {0, 1};
  layer1.instances[1] = {1, 0};
  Layer a(Iota(64));
  std::vector<std::vector<Piece>> out;
  std::vector<Piece> orphans;
  ChooseReplicas(std::vector<Piece>{{0, 0, 64}}, 2, layer0.Fn(), {}, a.Locality(nullptr), &out,
                 &orphans);
  EXPECT_EQ(out[0], (std::vector<Piece>{{0, 0, 32}}));
  EXPECT_EQ(out[1], (std::vector<Piece>{{0, 32, 64}}));
  const std::vector<int32_t> a_at = a.PairInstance(out);
  TokenHomes homes;
  BuildTokenHomes(64, a.pair_token, a_at, &homes);

  Layer b(Iota(64));
  ChooseReplicas(std::vector<Piece>{{1, 0, 64}}, 2, layer1.Fn(), {}, b.Locality(&homes), &out,
                 &orphans);
  EXPECT_TRUE(orphans.empty());
  EXPECT_EQ(PairsPer(out), (std::vector<int>{32, 32}));
  EXPECT_EQ(b.PairInstance(out), a_at);
  // Without homes: the contiguous split, every token on the other instance.
  Layer b_blind(Iota(64));
  ChooseReplicas(std::vector<Piece>{{1, 0, 64}}, 2, layer1.Fn(), {}, b_blind.Locality(nullptr),
                 &out, &orphans);
  const std::vector<int32_t> blind = b_blind.PairInstance(out);
  for (int k = 0; k < 64; ++k) EXPECT_NE(blind[k], a_at[k]) << k;
}

// Shares .75/.25 keep the 48/16 quotas: the 32 tokens from instance 0 stay there, the first 16
// from instance 1 stay there, and the other 16 fill instance 0's remaining quota.
TEST(ChooseReplicasTest, UnequalSharesKeepQuotas) {
  Table t;
  t.instances[1] = {0, 1};
  t.shares[1] = {0.75, 0.25};
  std::vector<std::vector<int32_t>> per_token(64);
  for (int k = 0; k < 64; ++k) per_token[k] = {k < 32 ? 0 : 1};
  const TokenHomes homes = HomesOf(per_token);
  Layer b(Iota(64));
  std::vector<std::vector<Piece>> out;
  std::vector<Piece> orphans;
  ChooseReplicas(std::vector<Piece>{{1, 0, 64}}, 2, t.Fn(), {}, b.Locality(&homes), &out,
                 &orphans);
  EXPECT_EQ(out[0], (std::vector<Piece>{{1, 0, 48}}));
  EXPECT_EQ(out[1], (std::vector<Piece>{{1, 48, 64}}));
  const std::vector<int32_t> at = b.PairInstance(out);
  for (int k = 0; k < 64; ++k) EXPECT_EQ(at[k], k < 32 || k >= 48 ? 0 : 1) << k;
  // Pairs keep their relative order within a replica.
  EXPECT_TRUE(std::is_sorted(b.order.begin(), b.order.begin() + 48));
  EXPECT_TRUE(std::is_sorted(b.order.begin() + 48, b.order.end()));
}

// Tokens with no home among the replicas fill the quotas the local ones left, in replica order.
TEST(ChooseReplicasTest, TokensWithoutLocalReplicaFillRemainingQuota) {
  Table t;
  t.instances[2] = {1, 2};  // quotas 20 / 20 of 40
  std::vector<std::vector<int32_t>> per_token(40);
  for (int k = 0; k < 40; ++k) per_token[k] = {k % 4 == 0 ? 1 : 0};  // 10 on 1, 30 on 0
  const TokenHomes homes = HomesOf(per_token);
  Layer b(Iota(40));
  std::vector<std::vector<Piece>> out;
  std::vector<Piece> orphans;
  ChooseReplicas(std::vector<Piece>{{2, 0, 40}}, 3, t.Fn(), {}, b.Locality(&homes), &out,
                 &orphans);
  EXPECT_EQ(PairsPer(out), (std::vector<int>{0, 20, 20}));
  const std::vector<int32_t> at = b.PairInstance(out);
  int homeless = 0;
  for (int k = 0; k < 40; ++k) {
    if (k % 4 == 0) {
      EXPECT_EQ(at[k], 1) << k;
    } else {
      // The first 10 homeless tokens fill instance 1's remaining quota, the other 20 instance 2.
      EXPECT_EQ(at[k], homeless < 10 ? 1 : 2) << k;
      ++homeless;
    }
  }
}

// Tokens at home on one replica's instance only are placed before tokens at home on both, which
// then take the replica with quota left: every pair stays local.
TEST(ChooseReplicasTest, SingleHomeTokensBeforeMultiHome) {
  Table t;
  t.instances[0] = {0, 1};
  std::vector<std::vector<int32_t>> per_token(32);
  for (int k = 0; k < 32; ++k) {
    per_token[k] = k < 16 ? std::vector<int32_t>{0, 1} : std::vector<int32_t>{0};
  }
  const TokenHomes homes = HomesOf(per_token);
  Layer b(Iota(32));
  std::vector<std::vector<Piece>> out;
  std::vector<Piece> orphans;
  ChooseReplicas(std::vector<Piece>{{0, 0, 32}}, 2, t.Fn(), {}, b.Locality(&homes), &out,
                 &orphans);
  const std::vector<int32_t> at = b.PairInstance(out);
  for (int k = 0; k < 32; ++k) EXPECT_EQ(at[k], k < 16 ? 1 : 0) << k;
}

// Decode shards: LPT, but a replica on a home of the shard's tokens wins when its load is
// within fixed_cost of the least-loaded replica's.
TEST(ChooseReplicasTest, SmallShardPrefersHomeWithinFixedCost) {
  // Expert 0 pinned on instance 0 with n0 pairs (load 6 + n0), expert 1 pinned on instance 1
  // with one pair (load 7); expert 2 (one pair, token at home on 0) lists instance 1 first.
  auto place = [](int n0, bool with_homes) {
    Table t;
    t.instances[0] = {0};
    t.instances[1] = {1};
    t.instances[2] = {1, 0};
    std::vector<std::vector<int32_t>> per_token(n0 + 2);
    per_token[n0 + 1] = {0};
    const TokenHomes homes = HomesOf(per_token);
    Layer l(Iota(n0 + 2));
    std::vector<std::vector<Piece>> out;
    std::vector<Piece> orphans;
    ChooseReplicas(std::vector<Piece>{{0, 0, n0}, {1, n0, n0 + 1}, {2, n0 + 1, n0 + 2}}, 2,
                   t.Fn(), {.fixed_cost = 6.0}, l.Locality(with_homes ? &homes : nullptr), &out,
                   &orphans);
    return l.PairInstance(out)[n0 + 1];
  };
  EXPECT_EQ(place(7, true), 0) << "home load 13 <= 7 + 6";
  EXPECT_EQ(place(8, true), 1) << "home load 14 > 7 + 6: least loaded";
  EXPECT_EQ(place(7, false), 1) << "no homes: least loaded";
  EXPECT_EQ(place(1, true), 0) << "equal loads: the home, though listed second";
}

// Among homes within the window, the one holding the most of the shard's tokens.
TEST(ChooseReplicasTest, SmallShardPrefersHomeOfMostTokens) {
  Table t;
  t.instances[0] = {0, 1, 2};
  const TokenHomes homes = HomesOf({{0}, {1}, {1, 2}});
  Layer l(Iota(3));
  std::vector<std::vector<Piece>> out;
  std::vector<Piece> orphans;
  ChooseReplicas(std::vector<Piece>{{0, 0, 3}}, 3, t.Fn(), {}, l.Locality(&homes), &out,
                 &orphans);
  EXPECT_EQ(l.PairInstance(out), (std::vector<int32_t>{1, 1, 1}));
}

// Random shards, shares and homes (several pairs per token): every pair in exactly one piece,
// `order` permuted only within each piece, per-instance counts equal to the split without
// homes, and with two replicas the most local pairs any assignment with those quotas allows.
TEST(ChooseReplicasTest, LocalitySplitNeverLosesOrDuplicatesPairs) {
  std::mt19937 rng(5);
  for (int round = 0; round < 200; ++round) {
    const int instances = 2 + static_cast<int>(rng() % 4);
    const int experts = 1 + static_cast<int>(rng() % 4);
    const int tokens = 1 + static_cast<int>(rng() % 120);
    Table t;
    std::vector<int32_t> pair_token;
    std::vector<Piece> pieces;
    for (int e = 0; e < experts; ++e) {
      std::vector<int> all(instances);
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.end(), rng);
      all.resize(1 + rng() % instances);
      t.instances[e] = all;
      for (size_t k = 0; k < all.size(); ++k) t.shares[e].push_back(rng() % 5 * 0.25);
      const int begin = static_cast<int>(pair_token.size());
      for (int k = 0; k < tokens; ++k) {
        if (rng() % 3 != 0) pair_token.push_back(k);
      }
      pieces.push_back({e, begin, static_cast<int>(pair_token.size())});
    }
    std::vector<std::vector<int32_t>> per_token(tokens);
    for (auto& h : per_token) {
      for (int k = static_cast<int>(rng() % 3); k > 0; --k) {
        h.push_back(static_cast<int32_t>(rng() % instances));
      }
    }
    const TokenHomes homes = HomesOf(per_token);
    const ReplicaChoiceParams params{.split_min_tokens = 1 + static_cast<int>(rng() % 40)};
    Layer local(pair_token), blind(pair_token);
    std::vector<std::vector<Piece>> out, out_blind;
    std::vector<Piece> orphans;
    ChooseReplicas(pieces, instances, t.Fn(), params, local.Locality(&homes), &out, &orphans);
    ChooseReplicas(pieces, instances, t.Fn(), params, blind.Locality(nullptr), &out_blind,
                   &orphans);
    const std::vector<int32_t> at = local.PairInstance(out);
    for (size_t p = 0; p < at.size(); ++p) ASSERT_GE(at[p], 0) << round << " pair " << p;
    for (const Piece& piece : pieces) {
      for (int pos = piece.begin; pos < piece.end; ++pos) {
        ASSERT_GE(local.order[pos], piece.begin) << round;
        ASSERT_LT(local.order[pos], piece.end) << round;
      }
      const std::vector<int>& replicas = t.instances[piece.expert];
      const bool split = replicas.size() > 1 && piece.tokens() >= params.split_min_tokens;
      // Split shards: pairs per (expert, instance) as without homes (the share quotas). Small
      // shards: whole, on one of the replicas.
      int holders = 0;
      for (int i = 0; i < instances; ++i) {
        int with = 0, without = 0;
        for (const Piece& q : out[i]) with += q.expert == piece.expert ? q.tokens() : 0;
        for (const Piece& q : out_blind[i]) without += q.expert == piece.expert ? q.tokens() : 0;
        if (split) {
          ASSERT_EQ(with, without) << round << " expert " << piece.expert << " instance " << i;
        } else if (with > 0) {
          ++holders;
          ASSERT_EQ(with, piece.tokens()) << round << " expert " << piece.expert;
          ASSERT_NE(std::find(replicas.begin(), replicas.end(), i), replicas.end()) << round;
        }
      }
      if (!split) {
        EXPECT_EQ(holders, piece.tokens() > 0 ? 1 : 0) << round << " expert " << piece.expert;
      }
      if (!split || replicas.size() != 2) continue;
      // Two replicas: pairs at home only on r0 (a), only on r1 (b), on both (c).
      int q[2] = {0, 0}, a = 0, b = 0, c = 0, got = 0;
      for (int pos = piece.begin; pos < piece.end; ++pos) {
        const int32_t pair = local.order[pos];
        const int32_t token = pair_token[pair];
        const bool h0 = homes.Contains(token, replicas[0]), h1 = homes.Contains(token, replicas[1]);
        a += h0 && !h1;
        b += h1 && !h0;
        c += h0 && h1;
        q[at[pair] == replicas[0] ? 0 : 1] += 1;
        got += homes.Contains(token, at[pair]);
      }
      const int fixed = std::min(a, q[0]) + std::min(b, q[1]);
      const int best = fixed + std::min(c, q[0] + q[1] - fixed);
      EXPECT_EQ(got, best) << round << " expert " << piece.expert;
    }
  }
}

}  // namespace
}  // namespace moe::attention
