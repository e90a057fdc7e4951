#include "gateway/routing/worker_pool.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

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
  std::atomic<bool> started{false};
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
  Recorder running, queued;  // outlive the pool
  WorkerPool pool({silent.address()}, WorkerPoolOptions{1, 1});
  attention::v1::GenerateRequest req;
  req.add_prompt_ids(1);
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

TEST(WorkerPoolTest, CallsSpreadOverWorkersByOutstandingTokens) {
  SilentListener a, b;
  Recorder r1, r2, r3, r4, r5, r6;  // outlive the pool: its destructor reports to them
  WorkerPool pool({a.address(), b.address()}, WorkerPoolOptions{2, 1});
  attention::v1::GenerateRequest req;
  req.add_prompt_ids(1);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  // 100 tokens to worker 0; then worker 1 has fewer (0): 10 tokens there; then worker 1 again
  // (10 < 100): 10 more; now worker 1 is full (2 running), so worker 0 runs the next.
  std::vector<std::shared_ptr<GenerateHandle>> handles;
  for (auto [rec, cost] :
       std::vector<std::pair<Recorder*, int>>{{&r1, 100}, {&r2, 10}, {&r3, 10}, {&r4, 5}}) {
    auto h = pool.Submit(req, cost, deadline, rec->Callbacks());
    ASSERT_TRUE(h.ok()) << h.status();
    handles.push_back(*h);
  }
  std::vector<WorkerLoad> loads = pool.Loads();
  EXPECT_EQ(loads[0].running, 2);
  EXPECT_EQ(loads[0].outstanding_tokens, 105);
  EXPECT_EQ(loads[1].running, 2);
  EXPECT_EQ(loads[1].outstanding_tokens, 20);
  // Both full: the queue of the fewest tokens (worker 1) takes the next; then worker 0's.
  auto q1 = pool.Submit(req, 1, deadline, r5.Callbacks());
  ASSERT_TRUE(q1.ok());
  loads = pool.Loads();
  EXPECT_EQ(loads[1].queued, 1);
  auto q2 = pool.Submit(req, 1, deadline, r6.Callbacks());
  ASSERT_TRUE(q2.ok());
  EXPECT_EQ(pool.Loads()[0].queued, 1);
  EXPECT_EQ(pool.Submit(req, 1, deadline, {}).status().code(),
            absl::StatusCode::kResourceExhausted);
  // Ending a running call of worker 1 starts its queued one.
  handles[1]->Cancel();
  ASSERT_TRUE(r2.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  for (int i = 0; i < 500 && !r5.started; ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_TRUE(r5.started);
  EXPECT_EQ(pool.Loads()[1].queued, 0);
  // (The pool's destructor cancels the rest.)
}

TEST(WorkerPoolTest, UnreachableWorkerIsUnavailable) {
  // Port 1 on loopback: nothing listens there; the call fails fast or at its deadline.
  Recorder r;  // outlives the pool
  WorkerPool pool({"127.0.0.1:1"});
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
