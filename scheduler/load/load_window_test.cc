#include "scheduler/load/load_window.h"

#include <gtest/gtest.h>

#include "common/clock.h"

namespace moe::scheduler {
namespace {

TEST(LoadWindowTest, SumsAndExpiresOldBuckets) {
  FakeClock clock(absl::UnixEpoch() + absl::Seconds(1000));
  // 2 layers x 2 experts, 10 s window in 5 s buckets.
  LoadWindow w(2, 2, absl::Seconds(10), absl::Seconds(5));
  ASSERT_TRUE(w.Add({{1, 2, 3, 4}, {{0, 1, 0, 7}}}, clock.Now()).ok());
  clock.Advance(absl::Seconds(5));
  ASSERT_TRUE(w.Add({{10, 0, 0, 0}, {{0, 1, 0, 1}, {0, 0, 1, 2}}}, clock.Now()).ok());
  LoadSnapshot s = w.Totals(clock.Now());
  EXPECT_EQ(s.tokens, (std::vector<int64_t>{11, 2, 3, 4}));
  EXPECT_EQ(s.total_tokens, 20);
  ASSERT_EQ(s.coact.size(), 2u);
  EXPECT_EQ(s.coact[0].a, 0);  // sorted by (layer, a, b)
  EXPECT_EQ(s.coact[0].count, 2);
  EXPECT_EQ(s.coact[1].count, 8);
  // 10 s after the first report its bucket has left the window.
  clock.Advance(absl::Seconds(5));
  s = w.Totals(clock.Now());
  EXPECT_EQ(s.tokens, (std::vector<int64_t>{10, 0, 0, 0}));
  ASSERT_EQ(s.coact.size(), 2u);
  EXPECT_EQ(s.coact[1].count, 1);
  clock.Advance(absl::Seconds(5));
  s = w.Totals(clock.Now());
  EXPECT_EQ(s.total_tokens, 0);
  EXPECT_TRUE(s.coact.empty());
}

TEST(LoadWindowTest, RejectsMalformedReports) {
  FakeClock clock;
  LoadWindow w(2, 2, absl::Seconds(10), absl::Seconds(1));
  EXPECT_FALSE(w.Add({{1, 2, 3}, {}}, clock.Now()).ok()) << "wrong size";
  EXPECT_FALSE(w.Add({{1, -2, 3, 4}, {}}, clock.Now()).ok()) << "negative";
  EXPECT_FALSE(w.Add({{1, 2, 3, 4}, {{1, 0, 0, 1}}}, clock.Now()).ok()) << "no layer 2";
  EXPECT_FALSE(w.Add({{1, 2, 3, 4}, {{0, 2, 0, 1}}}, clock.Now()).ok()) << "expert 2";
  EXPECT_EQ(w.Totals(clock.Now()).total_tokens, 0) << "nothing added by a rejected report";
}

}  // namespace
}  // namespace moe::scheduler
