// ShmRing: a ring of fixed-size request/response slots in a named POSIX shared-memory segment,
// shared by exactly one client process (which creates it) and one server process (which
// attaches to it by name). The data plane of the shared-memory ExpertTransport (DESIGN.md
// section 4); the format knows nothing about what the payloads are.
//
// Layout (all offsets 64-byte aligned): a Header (magic, version, slot count, slot size,
// nonce, both pids, close flags, the server doorbell) then `slots` slots, each a SlotHeader
// (state word, status, length, deadline) followed by `slot_bytes` of payload.
//
// Slot states and who moves them (every move is a compare-and-swap on the state word):
//   FREE --client claims--> WRITING --client posts--> REQUEST --server claims--> SERVING
//   SERVING --server responds--> RESPONSE --client releases--> FREE
//   REQUEST --client times out--> FREE            (the server never saw it)
//   SERVING --client times out--> ABANDONED --server finishes--> FREE
// so a slot is never reused while the other side may still touch its payload.
//
// Doorbells are Linux futexes on the shared words (FUTEX_WAIT/FUTEX_WAKE without
// FUTEX_PRIVATE_FLAG, so they work across processes on the MAP_SHARED mapping): the client
// bumps the header's bell word after posting; the server wakes the slot's state word after
// responding. Waiters spin for at most kSpin (a couple of microseconds), then stay runnable
// calling sched_yield for MOE_YIELD_SPIN_US microseconds if that is set (`moe up` sets it: its
// roles hand the same cores back and forth every layer), and then sleep; every wait is bounded
// and periodically checks that the peer process still exists.
//
// Trust: each side validates what it reads from the segment (states, lengths, status codes)
// against the geometry it recorded privately at create/attach time; the header is never
// re-read for sizes. A client that shrinks the file under a server's mapping can still make
// the server fault (SIGBUS): named POSIX shm cannot be sealed, so peers must be processes of
// the same user on the same host (the segment is created 0600).
//
// Thread safety: the client side may be used from several threads at once (slots are claimed
// by CAS); the server side by one serving thread plus any threads that Respond().
#ifndef MOE_COMMON_SHM_RING_H_
#define MOE_COMMON_SHM_RING_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace moe::shm {

inline constexpr uint64_t kMagic = 0x31304d4853454f4dULL;  // "MOESHM01" little-endian
inline constexpr uint32_t kVersion = 1;
inline constexpr uint32_t kMaxSlots = 1024;
inline constexpr uint64_t kMaxSlotBytes = uint64_t{1} << 30;

// Slot flag set by the server: the response did not fit the slot (status RESOURCE_EXHAUSTED);
// the client may retry the call another way.
inline constexpr uint32_t kFlagResponseTooLarge = 1;

enum class SlotState : uint32_t {
  kFree = 0,
  kWriting = 1,
  kRequest = 2,
  kServing = 3,
  kResponse = 4,
  kAbandoned = 5,
};

// What the server reads from a posted slot (validated).
struct SlotRequest {
  absl::Span<const char> payload;  // inside the mapping
  int64_t deadline_unix_ns = 0;    // CLOCK_REALTIME; 0 = none
};

// What the client reads from an answered slot (validated).
struct SlotResponse {
  absl::StatusCode code = absl::StatusCode::kOk;
  uint32_t flags = 0;
  absl::Span<const char> payload;  // inside the mapping: the response or the error message
};

class ShmRing {
 public:
  // The shared layouts (defined in shm_ring.cc).
  struct Header;
  struct SlotHeader;

  // Client: creates a new segment "/moe-<pid>-<counter>" (O_EXCL, mode 0600), reserves its
  // memory (posix_fallocate: a full /dev/shm fails here, not with SIGBUS later), maps it and
  // writes the header with a random nonce. 1 <= slots <= kMaxSlots, 1 <= slot_bytes <=
  // kMaxSlotBytes. The name stays linked until Unlink() or destruction.
  static absl::StatusOr<std::unique_ptr<ShmRing>> Create(uint32_t slots, uint64_t slot_bytes);

  // Server: opens `name` (must look like "/moe-..."), checks the file size, maps it, and checks
  // the header against what the client announced out of band (slots, slot_bytes, nonce).
  // Records this process's pid in the header. FAILED_PRECONDITION when the name does not exist
  // (e.g. the client is on another host), INVALID_ARGUMENT on any mismatch.
  static absl::StatusOr<std::unique_ptr<ShmRing>> Attach(const std::string& name, uint32_t slots,
                                                         uint64_t slot_bytes, uint64_t nonce);

  // Client: marks the segment closed (the server's serving loop ends) and unlinks the name.
  // Both: unmaps.
  ~ShmRing();
  ShmRing(const ShmRing&) = delete;
  ShmRing& operator=(const ShmRing&) = delete;

  const std::string& name() const { return name_; }
  uint64_t nonce() const { return nonce_; }
  uint32_t slots() const { return slots_; }
  uint64_t slot_bytes() const { return slot_bytes_; }
  bool is_client() const { return client_; }

  // Client: removes the name from /dev/shm (existing mappings stay valid). Call once the server
  // has attached, so nothing is left behind if either process dies. Idempotent.
  void Unlink();

  // ---- Client side.
  // A FREE slot, now WRITING and owned by the caller, or -1 when every slot is busy.
  int TryClaim();
  // The payload area of a slot the caller owns (slot_bytes() bytes).
  char* payload(int slot);
  // WRITING -> REQUEST with `length` payload bytes (<= slot_bytes()), then rings the server.
  void Post(int slot, uint64_t length, absl::Time deadline);
  // Waits until the slot holds a RESPONSE (OK: read it with ReadResponse, then Release), or
  // `deadline` passes (DEADLINE_EXCEEDED; the slot is handed back, do not touch it again), or
  // the server process is gone or closed the segment (UNAVAILABLE; likewise).
  absl::Status AwaitResponse(int slot, absl::Time deadline);
  // The validated response of a slot in RESPONSE state (INTERNAL if the server wrote garbage).
  absl::StatusOr<SlotResponse> ReadResponse(int slot);
  // RESPONSE or WRITING -> FREE.
  void Release(int slot);
  // Whether the server process still exists and has not closed the segment.
  bool ServerAlive() const;
  pid_t server_pid() const;

  // ---- Server side.
  // Claims every posted slot (REQUEST -> SERVING) into `claimed`, waiting up to `timeout` for
  // the doorbell when none is posted. Returns early (possibly with none) on Wake().
  void AwaitRequests(absl::Duration timeout, std::vector<int>* claimed);
  // Rings the server doorbell (e.g. to make AwaitRequests return for shutdown).
  void Wake();
  // The validated request of a slot this side claimed (INVALID_ARGUMENT on a bad length).
  absl::StatusOr<SlotRequest> ReadRequest(int slot);
  // True once the client gave up on a slot this side is serving.
  bool Abandoned(int slot);
  // The payload area of a claimed slot, for writing the response.
  char* response_payload(int slot) { return payload(slot); }
  // Publishes `length` payload bytes (<= slot_bytes()) with `code` and `flags`: SERVING ->
  // RESPONSE and wakes the client; if the client abandoned the slot, frees it instead.
  void Respond(int slot, absl::StatusCode code, uint32_t flags, uint64_t length);
  // Convenience: an error status with its message (truncated to the slot) as the payload.
  void RespondError(int slot, const absl::Status& status, uint32_t flags = 0);
  // Whether the client has closed the segment or its process no longer exists.
  bool ClientGone() const;
  // Server: marks the segment closed by the server and wakes every waiting client.
  void CloseServer();

 private:
  ShmRing(std::string name, bool client, void* base, size_t size, uint32_t slots,
          uint64_t slot_bytes, uint64_t nonce);
  Header* header() const;
  SlotHeader* slot_header(int slot) const;
  bool ValidSlot(int slot) const { return slot >= 0 && static_cast<uint32_t>(slot) < slots_; }

  const std::string name_;
  const bool client_;
  void* const base_;
  const size_t size_;
  const uint32_t slots_;
  const uint64_t slot_bytes_;
  const uint64_t stride_;
  const uint64_t nonce_;
  pid_t client_pid_ = 0;  // server side: recorded at Attach
  bool unlinked_ = false;
};

// Bytes a segment of this geometry occupies (header + slots, page-rounded).
uint64_t SegmentBytes(uint32_t slots, uint64_t slot_bytes);

}  // namespace moe::shm

#endif  // MOE_COMMON_SHM_RING_H_
