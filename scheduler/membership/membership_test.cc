#include "scheduler/membership/membership.h"

#include <gtest/gtest.h>

#include "common/clock.h"

namespace moe::scheduler {
namespace {

MemberInfo Expert(const std::string& addr) {
  MemberInfo m;
  m.role = Role::kExpert;
  m.address = addr;
  return m;
}

TEST(MembershipTest, RegisterAssignsDistinctIdsInOrder) {
  FakeClock clock;
  MembershipTable t;
  auto a = t.Register(Expert("h:1"), clock.Now());
  MemberInfo att;
  att.role = Role::kAttention;
  auto b = t.Register(att, clock.Now());
  auto c = t.Register(Expert("h:2"), clock.Now());
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, "expert-1");
  EXPECT_EQ(*b, "attention-2");
  EXPECT_EQ(*c, "expert-3");
  ASSERT_EQ(t.WithRole(Role::kExpert).size(), 2u);
  EXPECT_EQ(t.WithRole(Role::kExpert)[1].info.address, "h:2");
  EXPECT_EQ(t.All().size(), 3u);
  EXPECT_FALSE(t.Register(Expert(""), clock.Now()).ok()) << "expert without address";
}

TEST(MembershipTest, HeartbeatUpdatesAndUnknownIsNotFound) {
  FakeClock clock;
  MembershipTable t;
  auto id = t.Register(Expert("h:1"), clock.Now());
  ASSERT_TRUE(id.ok());
  clock.Advance(absl::Seconds(2));
  ASSERT_TRUE(t.Heartbeat(*id, {.applied_epoch = 4, .loaded_epoch = 5, .ready = true},
                          clock.Now())
                  .ok());
  const Member* m = t.Find(*id);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->applied_epoch, 4);
  EXPECT_EQ(m->loaded_epoch, 5);
  EXPECT_TRUE(m->ready);
  EXPECT_EQ(m->last_heartbeat, clock.Now());
  EXPECT_EQ(t.Heartbeat("expert-99", {}, clock.Now()).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(t.Remove(*id));
  EXPECT_EQ(t.Heartbeat(*id, {}, clock.Now()).code(), absl::StatusCode::kNotFound);
  // Ids are never reused.
  auto again = t.Register(Expert("h:1"), clock.Now());
  ASSERT_TRUE(again.ok());
  EXPECT_NE(*again, *id);
}

TEST(DecideLivenessTest, DeadAfterTimeout) {
  FakeClock clock;
  MembershipTable t;
  auto a = t.Register(Expert("h:1"), clock.Now());
  auto b = t.Register(Expert("h:2"), clock.Now());
  ASSERT_TRUE(a.ok() && b.ok());
  const absl::Duration timeout = absl::Seconds(3);
  clock.Advance(absl::Seconds(2));
  ASSERT_TRUE(t.Heartbeat(*a, {}, clock.Now()).ok());
  EXPECT_TRUE(DecideLiveness(t.All(), clock.Now(), timeout).empty());
  clock.Advance(absl::Seconds(1));  // b silent for exactly 3 s: still alive
  EXPECT_TRUE(DecideLiveness(t.All(), clock.Now(), timeout).empty());
  clock.Advance(absl::Milliseconds(1));
  EXPECT_EQ(DecideLiveness(t.All(), clock.Now(), timeout), std::vector<std::string>{*b});
  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(DecideLiveness(t.All(), clock.Now(), timeout),
            (std::vector<std::string>{*a, *b}));
}

}  // namespace
}  // namespace moe::scheduler
