#include "gateway/routing/worker_pool.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"

namespace moe::gateway {
namespace {

TEST(PickWorkerTest, FewestOutstandingTokensWithAFreeSlotWins) {
  std::vector<WorkerLoad> l = {{1, 0, 300}, {1, 0, 100}, {1, 0, 200}};
  auto p = PickWorker(l, 2, 2);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->worker, 1u);
  EXPECT_FALSE(p->queued);
  // Ties go to the lowest index.
  l = {{0, 0, 5}, {0, 0, 5}};
  EXPECT_EQ(PickWorker(l, 1, 0)->worker, 0u);
}

TEST(PickWorkerTest, AFullWorkerIsSkippedThenQueuesThenNothing) {
  // Worker 0 has the fewest tokens but no running slot: worker 1 runs it.
  std::vector<WorkerLoad> l = {{2, 0, 10}, {1, 0, 500}};
  auto p = PickWorker(l, 2, 1);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->worker, 1u);
  EXPECT_FALSE(p->queued);
  // No running slot anywhere: the queue of the fewest tokens.
  l = {{2, 0, 700}, {2, 0, 500}};
  p = PickWorker(l, 2, 1);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->worker, 1u);
  EXPECT_TRUE(p->queued);
  l = {{2, 0, 700}, {2, 1, 500}};
  p = PickWorker(l, 2, 1);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->worker, 0u);
  EXPECT_TRUE(p->queued);
  // Everything full.
  l = {{2, 1, 700}, {2, 1, 500}};
  EXPECT_FALSE(PickWorker(l, 2, 1).has_value());
  EXPECT_FALSE(PickWorker({}, 2, 1).has_value());
}

// A TCP port that accepts connections (the kernel's backlog) but never speaks HTTP/2: a gRPC
// call to it stays pending until cancelled or its deadline.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(fd_, 16);
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~SilentListener() { close(fd_); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

struct Recorder {
  absl::Notification done;
  absl::Status status;
  bool started = false;
  GenerateCallbacks Callbacks() {
    GenerateCallbacks cb;
    cb.on_start = [this](absl::Duration) { started = true; };
    cb.on_done = [this](absl::Status s) {
      status = s;
      done.Notify();
    };
    return cb;
  }
};

TEST(WorkerPoolTest, BoundedQueueRejectsThenCancelsQueuedAndRunningCalls) {
  SilentListener silent;
  WorkerPool pool({silent.address()}, WorkerPoolOptions{1, 1});
  attention::v1::GenerateRequest req;
  req.add_prompt_ids(1);
  Recorder running, queued;
  auto h1 = pool.Submit(req, 10, absl::Now() + absl::Seconds(30), running.Callbacks());
  ASSERT_TRUE(h1.ok()) << h1.status();
  auto h2 = pool.Submit(req, 7, absl::Now() + absl::Seconds(30), queued.Callbacks());
  ASSERT_TRUE(h2.ok()) << h2.status();
  std::vector<WorkerLoad> loads = pool.Loads();
  EXPECT_EQ(loads[0].running, 1);
  EXPECT_EQ(loads[0].queued, 1);
  EXPECT_EQ(loads[0].outstanding_tokens, 17);
  // One running and one queued: the third finds everything full.
  auto h3 = pool.Submit(req, 1, absl::Now() + absl::Seconds(30), {});
  EXPECT_EQ(h3.status().code(), absl::StatusCode::kResourceExhausted);
  // Cancelling the queued call reports CANCELLED at once, without starting it.
  (*h2)->Cancel();
  ASSERT_TRUE(queued.done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_EQ(queued.status.code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(queued.started);
  // Cancelling the running call ends it (bounded) long before its deadline.
  (*h1)->Cancel();
  ASSERT_TRUE(running.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(running.status.code(), absl::StatusCode::kCancelled) << running.status;
  EXPECT_TRUE(running.started);
  loads = pool.Loads();
  EXPECT_EQ(loads[0].running, 0);
  EXPECT_EQ(loads[0].queued, 0);
  EXPECT_EQ(loads[0].outstanding_tokens, 0);
}

TEST(WorkerPoolTest, UnreachableWorkerIsUnavailable) {
  // Port 1 on loopback: nothing listens there; the call fails fast or at its deadline.
  WorkerPool pool({"127.0.0.1:1"});
  Recorder r;
  attention::v1::GenerateRequest req;
  req.add_prompt_ids(1);
  auto h = pool.Submit(req, 3, absl::Now() + absl::Seconds(5), r.Callbacks());
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_TRUE(r.done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_TRUE(r.status.code() == absl::StatusCode::kUnavailable ||
              r.status.code() == absl::StatusCode::kDeadlineExceeded)
      << r.status;
  EXPECT_EQ(pool.Loads()[0].outstanding_tokens, 0);
}

}  // namespace
}  // namespace moe::gateway
