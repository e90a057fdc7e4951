// ShmRing: round trips in one process and across a fork, header validation on Attach, bounded
// waits (deadline, a server that dies or closes, a client that dies or closes), and lengths /
// status codes a misbehaving peer writes into the segment.
#include "common/shm_ring.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <string>
#include <vector>

namespace moe::shm {
namespace {

// The slot header's offsets as documented in shm_ring.h / shm_ring.cc (for corrupting them
// the way a misbehaving peer would).
constexpr size_t kSlotsOffset = 128;
constexpr size_t kLengthOffset = 16;
constexpr size_t kStatusOffset = 4;

// A second, raw mapping of a ring's segment (what another process sees).
class RawMapping {
 public:
  explicit RawMapping(const ShmRing& ring) : size_(SegmentBytes(ring.slots(), ring.slot_bytes())) {
    const int fd = shm_open(ring.name().c_str(), O_RDWR, 0);
    EXPECT_GE(fd, 0);
    base_ = static_cast<char*>(mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    close(fd);
    EXPECT_NE(base_, MAP_FAILED);
    stride_ = 64 + (ring.slot_bytes() + 63) / 64 * 64;
  }
  ~RawMapping() { munmap(base_, size_); }
  char* base() { return base_; }
  char* slot(int i) { return base_ + kSlotsOffset + i * stride_; }

 private:
  size_t size_;
  size_t stride_;
  char* base_;
};

std::string Str(absl::Span<const char> s) { return std::string(s.data(), s.size()); }

TEST(ShmRingTest, RoundTripInOneProcess) {
  auto client = ShmRing::Create(4, 256);
  ASSERT_TRUE(client.ok()) << client.status();
  auto server = ShmRing::Attach((*client)->name(), 4, 256, (*client)->nonce());
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*client)->server_pid(), getpid());
  EXPECT_TRUE((*client)->ServerAlive());
  EXPECT_FALSE((*server)->ClientGone());

  for (int round = 0; round < 3; ++round) {
    const int slot = (*client)->TryClaim();
    ASSERT_EQ(slot, 0) << "a released slot is reused";
    std::memcpy((*client)->payload(slot), "hello", 5);
    (*client)->Post(slot, 5, absl::Now() + absl::Seconds(5));

    std::vector<int> claimed;
    (*server)->AwaitRequests(absl::Seconds(5), &claimed);
    ASSERT_EQ(claimed, std::vector<int>{slot});
    auto req = (*server)->ReadRequest(slot);
    ASSERT_TRUE(req.ok()) << req.status();
    EXPECT_EQ(Str(req->payload), "hello");
    EXPECT_GT(req->deadline_unix_ns, absl::ToUnixNanos(absl::Now()));
    std::memcpy((*server)->response_payload(slot), "world!", 6);
    (*server)->Respond(slot, absl::StatusCode::kOk, 0, 6);

    ASSERT_TRUE((*client)->AwaitResponse(slot, absl::Now() + absl::Seconds(5)).ok());
    auto resp = (*client)->ReadResponse(slot);
    ASSERT_TRUE(resp.ok()) << resp.status();
    EXPECT_EQ(resp->code, absl::StatusCode::kOk);
    EXPECT_EQ(Str(resp->payload), "world!");
    (*client)->Release(slot);
  }
  // Error responses carry the message.
  const int slot = (*client)->TryClaim();
  (*client)->Post(slot, 0, absl::Now() + absl::Seconds(5));
  std::vector<int> claimed;
  (*server)->AwaitRequests(absl::Seconds(5), &claimed);
  ASSERT_EQ(claimed.size(), 1u);
  (*server)->RespondError(slot, absl::ResourceExhaustedError("queue full"), kFlagResponseTooLarge);
  ASSERT_TRUE((*client)->AwaitResponse(slot, absl::Now() + absl::Seconds(5)).ok());
  auto resp = (*client)->ReadResponse(slot);
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->code, absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(resp->flags, kFlagResponseTooLarge);
  EXPECT_EQ(Str(resp->payload), "queue full");
}

TEST(ShmRingTest, ClaimsEverySlotThenNone) {
  auto ring = ShmRing::Create(3, 64);
  ASSERT_TRUE(ring.ok());
  EXPECT_EQ((*ring)->TryClaim(), 0);
  EXPECT_EQ((*ring)->TryClaim(), 1);
  EXPECT_EQ((*ring)->TryClaim(), 2);
  EXPECT_EQ((*ring)->TryClaim(), -1);
  (*ring)->Release(1);
  EXPECT_EQ((*ring)->TryClaim(), 1);
}

TEST(ShmRingTest, RejectsBadGeometryAndNames) {
  EXPECT_EQ(ShmRing::Create(0, 64).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShmRing::Create(kMaxSlots + 1, 64).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShmRing::Create(2, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShmRing::Create(2, kMaxSlotBytes + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  for (const char* name : {"", "/etc", "/moe-../x", "/moe-a/b", "moe-1-2", "/moe-1-2\n"}) {
    EXPECT_EQ(ShmRing::Attach(name, 2, 64, 1).status().code(), absl::StatusCode::kInvalidArgument)
        << name;
  }
  EXPECT_EQ(ShmRing::Attach("/moe-no-such-segment", 2, 64, 1).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ShmRingTest, AttachValidatesTheHeader) {
  auto client = ShmRing::Create(4, 1000);
  ASSERT_TRUE(client.ok());
  const std::string name = (*client)->name();
  const uint64_t nonce = (*client)->nonce();
  // Wrong nonce, slot count, slot size (smaller: geometry; much larger: the file is too small).
  EXPECT_EQ(ShmRing::Attach(name, 4, 1000, nonce + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShmRing::Attach(name, 3, 1000, nonce).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShmRing::Attach(name, 4, 900, nonce).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShmRing::Attach(name, 4, 1 << 20, nonce).status().code(),
            absl::StatusCode::kInvalidArgument);
  {
    RawMapping raw(**client);
    uint64_t magic;
    std::memcpy(&magic, raw.base(), 8);
    const uint64_t bad = magic ^ 0xff;
    std::memcpy(raw.base(), &bad, 8);
    EXPECT_EQ(ShmRing::Attach(name, 4, 1000, nonce).status().code(),
              absl::StatusCode::kInvalidArgument);
    std::memcpy(raw.base(), &magic, 8);
  }
  auto server = ShmRing::Attach(name, 4, 1000, nonce);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(ShmRing::Attach(name, 4, 1000, nonce).status().code(),
            absl::StatusCode::kFailedPrecondition)
      << "one server per segment";
  (*client)->Unlink();
  EXPECT_EQ(ShmRing::Attach(name, 4, 1000, nonce).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ShmRingTest, DeadlineHandsTheSlotBack) {
  auto client = ShmRing::Create(1, 64);
  ASSERT_TRUE(client.ok());
  auto server = ShmRing::Attach((*client)->name(), 1, 64, (*client)->nonce());
  ASSERT_TRUE(server.ok());
  // Nobody serves: DEADLINE_EXCEEDED, and the slot is FREE again.
  int slot = (*client)->TryClaim();
  (*client)->Post(slot, 1, absl::Now());
  EXPECT_EQ((*client)->AwaitResponse(slot, absl::Now() + absl::Milliseconds(30)).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ((*client)->TryClaim(), slot);
  std::vector<int> claimed;
  (*server)->AwaitRequests(absl::ZeroDuration(), &claimed);
  EXPECT_TRUE(claimed.empty()) << "a cancelled request is not served";

  // The server claimed it but answers late: the slot is abandoned, and freed by the answer.
  (*client)->Post(slot, 1, absl::Now());
  (*server)->AwaitRequests(absl::Seconds(1), &claimed);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ((*client)->AwaitResponse(slot, absl::Now() + absl::Milliseconds(30)).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE((*server)->Abandoned(slot));
  EXPECT_EQ((*client)->TryClaim(), -1) << "not reusable while the server still owns it";
  (*server)->Respond(slot, absl::StatusCode::kOk, 0, 0);
  EXPECT_EQ((*client)->TryClaim(), slot);
}

TEST(ShmRingTest, RejectsLengthsAndCodesFromAMisbehavingPeer) {
  auto client = ShmRing::Create(2, 64);
  ASSERT_TRUE(client.ok());
  auto server = ShmRing::Attach((*client)->name(), 2, 64, (*client)->nonce());
  ASSERT_TRUE(server.ok());
  RawMapping raw(**client);
  const int slot = (*client)->TryClaim();
  (*client)->Post(slot, 8, absl::Now() + absl::Seconds(5));
  const uint64_t huge = uint64_t{1} << 40;
  std::memcpy(raw.slot(slot) + kLengthOffset, &huge, 8);  // the "client" lies about the length
  std::vector<int> claimed;
  (*server)->AwaitRequests(absl::Seconds(1), &claimed);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ((*server)->ReadRequest(slot).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*server)->ReadRequest(99).status().code(), absl::StatusCode::kInvalidArgument);

  (*server)->Respond(slot, absl::StatusCode::kOk, 0, 4);
  ASSERT_TRUE((*client)->AwaitResponse(slot, absl::Now() + absl::Seconds(5)).ok());
  std::memcpy(raw.slot(slot) + kLengthOffset, &huge, 8);  // the "server" lies
  EXPECT_EQ((*client)->ReadResponse(slot).status().code(), absl::StatusCode::kInternal);
  const uint64_t four = 4;
  std::memcpy(raw.slot(slot) + kLengthOffset, &four, 8);
  const int32_t bad_code = 1234;
  std::memcpy(raw.slot(slot) + kStatusOffset, &bad_code, 4);
  EXPECT_EQ((*client)->ReadResponse(slot).status().code(), absl::StatusCode::kInternal);
  (*client)->Release(slot);
  // A slot state the protocol never produces is an error, not a hang.
  const int other = (*client)->TryClaim();
  (*client)->Post(other, 0, absl::Now() + absl::Seconds(5));
  const uint32_t garbage = 77;
  std::memcpy(raw.slot(other), &garbage, 4);
  EXPECT_EQ((*client)->AwaitResponse(other, absl::Now() + absl::Seconds(5)).code(),
            absl::StatusCode::kInternal);
}

TEST(ShmRingTest, ClientCloseIsSeenByTheServer) {
  auto client = ShmRing::Create(2, 64);
  ASSERT_TRUE(client.ok());
  auto server = ShmRing::Attach((*client)->name(), 2, 64, (*client)->nonce());
  ASSERT_TRUE(server.ok());
  (*client)->Unlink();
  EXPECT_FALSE((*server)->ClientGone());
  client->reset();
  EXPECT_TRUE((*server)->ClientGone());
  std::vector<int> claimed;
  (*server)->AwaitRequests(absl::Milliseconds(1), &claimed);  // still mapped: no fault
  EXPECT_TRUE(claimed.empty());
}

TEST(ShmRingTest, ServerCloseEndsTheClientsWait) {
  auto client = ShmRing::Create(1, 64);
  ASSERT_TRUE(client.ok());
  auto server = ShmRing::Attach((*client)->name(), 1, 64, (*client)->nonce());
  ASSERT_TRUE(server.ok());
  const int slot = (*client)->TryClaim();
  (*client)->Post(slot, 0, absl::InfiniteFuture());
  (*server)->CloseServer();
  EXPECT_FALSE((*client)->ServerAlive());
  EXPECT_EQ((*client)->AwaitResponse(slot, absl::Now() + absl::Seconds(60)).code(),
            absl::StatusCode::kUnavailable);
}

// A forked server echoes requests reversed: the futex doorbells work across processes.
TEST(ShmRingTest, ServesAcrossProcesses) {
  auto client = ShmRing::Create(2, 128);
  ASSERT_TRUE(client.ok());
  const std::string name = (*client)->name();
  const uint64_t nonce = (*client)->nonce();
  constexpr int kRequests = 200;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto server = ShmRing::Attach(name, 2, 128, nonce);
    if (!server.ok()) _exit(3);
    int served = 0;
    std::vector<int> claimed;
    while (!(*server)->ClientGone()) {
      claimed.clear();
      (*server)->AwaitRequests(absl::Milliseconds(100), &claimed);
      for (int slot : claimed) {
        auto req = (*server)->ReadRequest(slot);
        if (!req.ok()) _exit(4);
        std::string s = Str(req->payload);
        std::reverse(s.begin(), s.end());
        std::memcpy((*server)->response_payload(slot), s.data(), s.size());
        (*server)->Respond(slot, absl::StatusCode::kOk, 0, s.size());
        ++served;
      }
    }
    _exit(served == kRequests ? 0 : 5);
  }
  for (int i = 0; i < kRequests; ++i) {
    const std::string msg = "request-" + std::to_string(i);
    const int slot = (*client)->TryClaim();
    ASSERT_GE(slot, 0);
    std::memcpy((*client)->payload(slot), msg.data(), msg.size());
    (*client)->Post(slot, msg.size(), absl::Now() + absl::Seconds(20));
    ASSERT_TRUE((*client)->AwaitResponse(slot, absl::Now() + absl::Seconds(20)).ok()) << i;
    auto resp = (*client)->ReadResponse(slot);
    ASSERT_TRUE(resp.ok());
    EXPECT_EQ(Str(resp->payload), std::string(msg.rbegin(), msg.rend()));
    (*client)->Release(slot);
  }
  client->reset();  // closes: the child's loop ends
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// The server process dies while it owns a request: the client's wait ends UNAVAILABLE long
// before its (one minute) deadline instead of hanging.
TEST(ShmRingTest, ServerDeathEndsTheWait) {
  auto client = ShmRing::Create(1, 64);
  ASSERT_TRUE(client.ok());
  const int slot = (*client)->TryClaim();
  (*client)->Post(slot, 0, absl::InfiniteFuture());
  const std::string name = (*client)->name();
  const uint64_t nonce = (*client)->nonce();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto server = ShmRing::Attach(name, 1, 64, nonce);
    if (!server.ok()) _exit(3);
    std::vector<int> claimed;
    (*server)->AwaitRequests(absl::Seconds(10), &claimed);
    _exit(claimed.size() == 1 ? 0 : 4);  // dies without answering
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ((*client)->AwaitResponse(slot, absl::Now() + absl::Minutes(1)).code(),
            absl::StatusCode::kUnavailable);
}

// The client process dies without closing: the server notices.
TEST(ShmRingTest, ClientDeathIsSeenByTheServer) {
  int to_parent[2];
  ASSERT_EQ(pipe(to_parent), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(to_parent[0]);
    auto ring = ShmRing::Create(1, 64);
    if (!ring.ok()) _exit(3);
    const std::string line = (*ring)->name() + " " + std::to_string((*ring)->nonce()) + "\n";
    if (write(to_parent[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      _exit(4);
    }
    for (;;) pause();  // until SIGKILL
  }
  close(to_parent[1]);
  std::string line;
  char c;
  while (read(to_parent[0], &c, 1) == 1 && c != '\n') line += c;
  close(to_parent[0]);
  const std::string name = line.substr(0, line.find(' '));
  const uint64_t nonce = std::stoull(line.substr(line.find(' ') + 1));
  auto server = ShmRing::Attach(name, 1, 64, nonce);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_FALSE((*server)->ClientGone());
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE((*server)->ClientGone());
  shm_unlink(name.c_str());  // the killed client could not
}

}  // namespace
}  // namespace moe::shm
