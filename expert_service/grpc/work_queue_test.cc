#include "expert_service/grpc/work_queue.h"

#include <atomic>
#include <vector>

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"

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

}  // namespace
}  // namespace moe::expert
