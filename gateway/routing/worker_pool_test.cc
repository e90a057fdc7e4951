#include "gateway/routing/worker_pool.h"

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"

namespace moe::gateway {
namespace {

TEST(PickLeastLoadedTest, FewestInFlightWinsTiesGoToTheLowestIndex) {
  EXPECT_EQ(PickLeastLoaded(std::vector<int>{3, 1, 2}), 1u);
  EXPECT_EQ(PickLeastLoaded(std::vector<int>{2, 2, 2}), 0u);
  EXPECT_EQ(PickLeastLoaded(std::vector<int>{5, 4, 0, 0}), 2u);
  EXPECT_EQ(PickLeastLoaded(std::vector<int>{7}), 0u);
}

TEST(WorkerPoolTest, UnreachableWorkerIsUnavailableAndCountersReturnToZero) {
  // Port 1 on loopback: nothing listens there; the call fails fast or at its deadline.
  WorkerPool pool({"127.0.0.1:1"});
  absl::Notification done;
  absl::Status status;
  attention::v1::GenerateRequest req;
  req.add_prompt_ids(1);
  pool.Generate(req, absl::Seconds(5), [&](absl::StatusOr<GenerateStream> s) {
    status = s.status();
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_TRUE(status.code() == absl::StatusCode::kUnavailable ||
              status.code() == absl::StatusCode::kDeadlineExceeded)
      << status;
  EXPECT_EQ(pool.InFlight(), std::vector<int>{0});
}

}  // namespace
}  // namespace moe::gateway
