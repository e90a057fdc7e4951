#include "attention_service/dispatch/replica_choice.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
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
  ChooseReplicas(pieces, 2, t.Fn(), {}, &out, &orphans);
  EXPECT_TRUE(orphans.empty());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].size(), 5u);
  EXPECT_EQ(out[1].size(), 5u);
  EXPECT_EQ(Coverage(out).size(), 10u);
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
  ChooseReplicas(pieces, 2, t.Fn(), {}, &out, &orphans);
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
  ChooseReplicas(pieces, 2, t.Fn(), {}, &out, &orphans);
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
  ChooseReplicas(pieces, 3, t.Fn(), {.split_min_tokens = 32}, &out, &orphans);
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
    ChooseReplicas(pieces, 3, t.Fn(), {.split_min_tokens = 32}, &out, &orphans);
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
  ChooseReplicas(pieces, 1, t.Fn(), {}, &out, &orphans);
  EXPECT_EQ(orphans, (std::vector<Piece>{{0, 0, 1}, {2, 3, 4}}));
  EXPECT_EQ(out[0], (std::vector<Piece>{{1, 1, 3}}));
}

}  // namespace
}  // namespace moe::attention
