#include "expert_service/grpc/work_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace moe::expert {
namespace {

TEST(WorkQueueTest, RefusesPastCapacityAndRunsEveryAcceptedJobInOrder) {
  absl::Notification started, release;
  std::vector<int> ran;  // written by the queue's thread only, read after Stop
  std::atomic<size_t> max_depth{0};
  WorkQueue q("test-queue", 2, [&](size_t d) {
    if (d > max_depth.load()) max_depth.store(d);
  });
  ASSERT_TRUE(q.TryPush([&] {
    started.Notify();
    release.WaitForNotification();
    ran.push_back(0);
  }));
  started.WaitForNotification();  // the worker holds job 0; the queue is empty again
  EXPECT_TRUE(q.TryPush([&] { ran.push_back(1); }));
  EXPECT_TRUE(q.TryPush([&] { ran.push_back(2); }));
  EXPECT_FALSE(q.TryPush([&] { ran.push_back(3); }));  // full: the caller answers 429
  release.Notify();
  q.Stop();
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(max_depth.load(), 2u);
  EXPECT_FALSE(q.TryPush([] {}));  // stopped
}

TEST(WorkQueueTest, RunsInlineOnlyWhenIdleAndKeepsOneJobAtATime) {
  WorkQueue q("test-queue", 4);
  const std::thread::id me = std::this_thread::get_id();
  std::thread::id ran_on;
  EXPECT_TRUE(q.TryRunInline([&] { ran_on = std::this_thread::get_id(); }));  // idle: runs here
  EXPECT_EQ(ran_on, me);

  // A job running on the queue's thread: inline refused (the caller queues instead).
  absl::Notification started, release;
  std::atomic<int> running{0}, max_running{0};
  auto track = [&] {
    const int now = running.fetch_add(1) + 1;
    if (now > max_running.load()) max_running.store(now);
  };
  ASSERT_TRUE(q.TryPush([&] {
    track();
    started.Notify();
    release.WaitForNotification();
    running.fetch_sub(1);
  }));
  started.WaitForNotification();
  bool ran = false;
  EXPECT_FALSE(q.TryRunInline([&] { ran = true; }));
  EXPECT_FALSE(ran);
  // Queued behind it: refused too, so queued jobs keep their turn.
  ASSERT_TRUE(q.TryPush([&] {
    track();
    running.fetch_sub(1);
  }));
  release.Notify();

  // While an inline job runs, the queue's thread does not start a newly queued one.
  for (int i = 0; i < 200 && !q.TryRunInline([] {}); ++i) absl::SleepFor(absl::Milliseconds(5));
  absl::Notification inline_started, inline_release;
  std::thread inliner([&] {
    EXPECT_TRUE(q.TryRunInline([&] {
      track();
      inline_started.Notify();
      inline_release.WaitForNotification();
      running.fetch_sub(1);
    }));
  });
  inline_started.WaitForNotification();
  std::atomic<bool> queued_ran{false};
  ASSERT_TRUE(q.TryPush([&] {
    track();
    queued_ran.store(true);
    running.fetch_sub(1);
  }));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(queued_ran.load());  // waits for the inline job
  inline_release.Notify();
  inliner.join();
  q.Stop();
  EXPECT_TRUE(queued_ran.load());
  EXPECT_EQ(max_running.load(), 1);
  EXPECT_FALSE(q.TryRunInline([] {}));  // stopped
}

}  // namespace
}  // namespace moe::expert
