#include "common/shm_ring.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/flags.h"
#include "common/status.h"

namespace moe::shm {

// Every field is accessed through std::atomic_ref: the peer is another process that may write
// any field at any time, so even "plain" fields are read with (relaxed) atomic loads.
struct alignas(64) ShmRing::Header {
  uint64_t magic;
  uint32_t version;
  uint32_t slot_count;
  uint64_t slot_bytes;
  uint64_t slot_stride;
  uint64_t slots_offset;
  uint64_t nonce;
  int32_t client_pid;
  int32_t server_pid;
  uint32_t client_closed;
  uint32_t server_closed;
  // The server doorbell (futex word) on its own cache line: bumped by the client per Post.
  alignas(64) uint32_t bell;
  uint32_t server_sleeping;  // 1 while the server is (about to be) in FUTEX_WAIT on `bell`
};

struct alignas(64) ShmRing::SlotHeader {
  uint32_t state;  // SlotState; the client's futex word
  int32_t status_code;
  uint32_t flags;
  uint32_t reserved;
  uint64_t length;
  int64_t deadline_unix_ns;
};

namespace {

constexpr uint64_t kSlotsOffset = 128;

// Spin this long before sleeping: the machine's cores are shared with other processes.
constexpr absl::Duration kSpin = absl::Microseconds(2);

// After kSpin a waiter may stay runnable, calling sched_yield, for MOE_YIELD_SPIN_US (0, the
// default, sleeps at once; `moe up` sets it, see YieldUntil).
absl::Duration YieldSpin() {
  static const absl::Duration d =
      absl::Microseconds(EnvInt("MOE_YIELD_SPIN_US", 0, 0, 100000));
  return d;
}

// Yields the core while !done() for YieldSpin(): a thread that is runnable is handed the core
// as soon as the thread on it yields or blocks, where a sleeping one must be woken (on a VM a
// halted vCPU can take from tens of microseconds to a few milliseconds to run it again). Every
// other runnable thread goes first at each yield, so the cores are not taken from them.
template <typename Done>
void YieldUntil(Done done) {
  if (YieldSpin() <= absl::ZeroDuration()) return;
  const absl::Time until = absl::Now() + YieldSpin();
  while (!done() && absl::Now() < until) sched_yield();
}

// A waiting side re-checks the peer's liveness at least this often.
constexpr absl::Duration kLivenessPeriod = absl::Milliseconds(20);

template <typename T>
T Load(const T& field, std::memory_order order = std::memory_order_relaxed) {
  return std::atomic_ref<T>(const_cast<T&>(field)).load(order);
}
template <typename T>
void Store(T& field, T value, std::memory_order order = std::memory_order_relaxed) {
  std::atomic_ref<T>(field).store(value, order);
}
bool Cas(uint32_t& word, SlotState from, SlotState to) {
  uint32_t expected = static_cast<uint32_t>(from);
  return std::atomic_ref<uint32_t>(word).compare_exchange_strong(
      expected, static_cast<uint32_t>(to), std::memory_order_acq_rel, std::memory_order_acquire);
}
SlotState StateOf(const uint32_t& word) {
  return static_cast<SlotState>(Load(word, std::memory_order_acquire));
}

// Shared (not FUTEX_PRIVATE_FLAG) futex operations: the word lives in a MAP_SHARED mapping.
void FutexWait(uint32_t* word, uint32_t expected, absl::Duration timeout) {
  if (timeout <= absl::ZeroDuration()) return;
  timespec ts = absl::ToTimespec(timeout);
  syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, nullptr, 0);
}
void FutexWake(uint32_t* word) {
  syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

uint64_t RoundUp(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }
// One slot: a 64-byte SlotHeader, then the payload rounded up to a cache line.
uint64_t Stride(uint64_t slot_bytes) { return 64 + RoundUp(slot_bytes, 64); }

// Whether process `pid` exists (EPERM: it exists but belongs to someone else).
bool ProcessExists(pid_t pid) {
  if (pid <= 0) return false;
  return kill(pid, 0) == 0 || errno == EPERM;
}

absl::Status CheckGeometry(uint32_t slots, uint64_t slot_bytes) {
  if (slots < 1 || slots > kMaxSlots) {
    return absl::InvalidArgumentError(
        absl::StrCat("slot count ", slots, " not in [1, ", kMaxSlots, "]"));
  }
  if (slot_bytes < 1 || slot_bytes > kMaxSlotBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("slot size ", slot_bytes, " not in [1, ", kMaxSlotBytes, "]"));
  }
  return absl::OkStatus();
}

bool ValidName(const std::string& name) {
  if (name.size() < 6 || name.size() > 64 || name.rfind("/moe-", 0) != 0) return false;
  for (size_t i = 1; i < name.size(); ++i) {
    const char c = name[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-')) return false;
  }
  return true;
}

std::string Errno(const char* what) { return absl::StrCat(what, ": ", std::strerror(errno)); }

}  // namespace

uint64_t SegmentBytes(uint32_t slots, uint64_t slot_bytes) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return RoundUp(kSlotsOffset + uint64_t{slots} * Stride(slot_bytes), page);
}

ShmRing::ShmRing(std::string name, bool client, void* base, size_t size, uint32_t slots,
                 uint64_t slot_bytes, uint64_t nonce)
    : name_(std::move(name)),
      client_(client),
      base_(base),
      size_(size),
      slots_(slots),
      slot_bytes_(slot_bytes),
      stride_(Stride(slot_bytes)),
      nonce_(nonce) {}

ShmRing::Header* ShmRing::header() const { return static_cast<Header*>(base_); }

ShmRing::SlotHeader* ShmRing::slot_header(int slot) const {
  MOE_CHECK(ValidSlot(slot));
  return reinterpret_cast<SlotHeader*>(static_cast<char*>(base_) + kSlotsOffset +
                                       static_cast<uint64_t>(slot) * stride_);
}

char* ShmRing::payload(int slot) { return reinterpret_cast<char*>(slot_header(slot)) + 64; }

absl::StatusOr<std::unique_ptr<ShmRing>> ShmRing::Create(uint32_t slots, uint64_t slot_bytes) {
  static_assert(sizeof(Header) <= kSlotsOffset);
  static_assert(sizeof(SlotHeader) == 64);
  MOE_RETURN_IF_ERROR(CheckGeometry(slots, slot_bytes));
  static std::atomic<uint64_t> counter{0};
  const uint64_t size = SegmentBytes(slots, slot_bytes);
  std::string name;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    name = absl::StrCat("/moe-", getpid(), "-", counter.fetch_add(1));
    fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) return absl::UnavailableError(Errno("shm_open"));
  }
  if (fd < 0) return absl::UnavailableError("shm_open: no free segment name");
  auto fail = [&](absl::Status s) {
    close(fd);
    shm_unlink(name.c_str());
    return s;
  };
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    return fail(absl::ResourceExhaustedError(Errno("ftruncate")));
  }
  // Reserve the pages now: a full tmpfs must fail here rather than SIGBUS on first touch.
  if (int err = posix_fallocate(fd, 0, static_cast<off_t>(size)); err != 0) {
    return fail(absl::ResourceExhaustedError(
        absl::StrCat("posix_fallocate ", size, " bytes: ", std::strerror(err))));
  }
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return fail(absl::ResourceExhaustedError(Errno("mmap")));
  close(fd);
  uint64_t nonce = 0;
  if (getrandom(&nonce, sizeof(nonce), 0) != static_cast<ssize_t>(sizeof(nonce))) {
    nonce = absl::ToUnixNanos(absl::Now()) ^ (uint64_t{static_cast<uint32_t>(getpid())} << 32);
  }
  nonce |= 1;  // never 0
  auto ring =
      std::unique_ptr<ShmRing>(new ShmRing(name, true, base, size, slots, slot_bytes, nonce));
  Header* h = ring->header();
  h->version = kVersion;
  h->slot_count = slots;
  h->slot_bytes = slot_bytes;
  h->slot_stride = ring->stride_;
  h->slots_offset = kSlotsOffset;
  h->nonce = nonce;
  h->client_pid = getpid();
  // (The file is zero-filled: every slot starts FREE, pids and flags 0.) Magic last.
  Store(h->magic, kMagic, std::memory_order_release);
  return ring;
}

absl::StatusOr<std::unique_ptr<ShmRing>> ShmRing::Attach(const std::string& name, uint32_t slots,
                                                         uint64_t slot_bytes, uint64_t nonce) {
  if (!ValidName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad shared-memory segment name \"", name, "\""));
  }
  MOE_RETURN_IF_ERROR(CheckGeometry(slots, slot_bytes));
  const uint64_t size = SegmentBytes(slots, slot_bytes);
  const int fd = shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) {
    return absl::FailedPreconditionError(Errno(absl::StrCat("shm_open ", name).c_str()));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) < size) {
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("segment ", name, " is smaller than ", size, " bytes"));
  }
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (base == MAP_FAILED) return absl::ResourceExhaustedError(Errno("mmap"));
  auto ring =
      std::unique_ptr<ShmRing>(new ShmRing(name, false, base, size, slots, slot_bytes, nonce));
  Header* h = ring->header();
  if (Load(h->magic, std::memory_order_acquire) != kMagic || Load(h->version) != kVersion) {
    return absl::InvalidArgumentError(absl::StrCat("segment ", name, ": bad magic or version"));
  }
  if (Load(h->slot_count) != slots || Load(h->slot_bytes) != slot_bytes ||
      Load(h->slot_stride) != ring->stride_ || Load(h->slots_offset) != kSlotsOffset) {
    return absl::InvalidArgumentError(
        absl::StrCat("segment ", name, ": header geometry differs from the request"));
  }
  if (Load(h->nonce) != nonce) {
    return absl::InvalidArgumentError(absl::StrCat("segment ", name, ": nonce mismatch"));
  }
  ring->client_pid_ = Load(h->client_pid);
  if (!ProcessExists(ring->client_pid_)) {
    return absl::FailedPreconditionError(absl::StrCat("segment ", name, ": client process ",
                                                      ring->client_pid_, " not visible from here"));
  }
  if (Load(h->client_closed) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("segment ", name, " already closed"));
  }
  int32_t none = 0;
  if (!std::atomic_ref<int32_t>(h->server_pid)
           .compare_exchange_strong(none, static_cast<int32_t>(getpid()))) {
    return absl::FailedPreconditionError(absl::StrCat("segment ", name, " already has a server"));
  }
  return ring;
}

ShmRing::~ShmRing() {
  if (client_) {
    Store(header()->client_closed, 1u, std::memory_order_release);
    Wake();
    Unlink();
  }
  munmap(base_, size_);
}

void ShmRing::Unlink() {
  if (!client_ || unlinked_) return;
  unlinked_ = true;
  shm_unlink(name_.c_str());
}

// ---- Client side.

int ShmRing::TryClaim() {
  for (uint32_t i = 0; i < slots_; ++i) {
    if (Cas(slot_header(static_cast<int>(i))->state, SlotState::kFree, SlotState::kWriting)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

void ShmRing::Post(int slot, uint64_t length, absl::Time deadline) {
  MOE_CHECK(length <= slot_bytes_);
  SlotHeader* s = slot_header(slot);
  Store(s->length, length);
  Store(s->deadline_unix_ns,
        deadline == absl::InfiniteFuture() ? int64_t{0} : absl::ToUnixNanos(deadline));
  Store(s->status_code, int32_t{0});
  Store(s->flags, 0u);
  Store(s->state, static_cast<uint32_t>(SlotState::kRequest), std::memory_order_release);
  Wake();
}

void ShmRing::Wake() {
  Header* h = header();
  std::atomic_ref<uint32_t>(h->bell).fetch_add(1, std::memory_order_seq_cst);
  // Dekker with AwaitRequests: either the server sees the new bell value or we see it asleep.
  if (Load(h->server_sleeping, std::memory_order_seq_cst) != 0) FutexWake(&h->bell);
}

pid_t ShmRing::server_pid() const { return Load(header()->server_pid); }

bool ShmRing::ServerAlive() const {
  if (Load(header()->server_closed, std::memory_order_acquire) != 0) return false;
  const pid_t pid = server_pid();
  return pid == 0 || ProcessExists(pid);  // 0: not attached yet
}

absl::Status ShmRing::AwaitResponse(int slot, absl::Time deadline) {
  SlotHeader* s = slot_header(slot);
  const absl::Time spin_until = absl::Now() + kSpin;
  while (StateOf(s->state) != SlotState::kResponse && absl::Now() < spin_until) CpuRelax();
  YieldUntil([&] { return StateOf(s->state) == SlotState::kResponse; });
  for (;;) {
    const uint32_t word = Load(s->state, std::memory_order_acquire);
    const SlotState state = static_cast<SlotState>(word);
    if (state == SlotState::kResponse) return absl::OkStatus();
    if (state != SlotState::kRequest && state != SlotState::kServing) {
      return absl::InternalError(absl::StrCat("shared-memory slot ", slot, " in state ", word));
    }
    const absl::Time now = absl::Now();
    absl::Status error;
    if (now >= deadline) {
      error = absl::DeadlineExceededError("no response from the expert service in time (shm)");
    } else if (!ServerAlive()) {
      error = absl::UnavailableError("expert service process gone or closed the shm segment");
    }
    if (!error.ok()) {
      // Hand the slot back: the server never saw it, or it frees the slot when done.
      if (!Cas(s->state, SlotState::kRequest, SlotState::kFree) &&
          !Cas(s->state, SlotState::kServing, SlotState::kAbandoned)) {
        Cas(s->state, SlotState::kResponse, SlotState::kFree);  // answered just now: drop it
      }
      return error;
    }
    FutexWait(&s->state, word, std::min(deadline - now, kLivenessPeriod));
  }
}

absl::StatusOr<SlotResponse> ShmRing::ReadResponse(int slot) {
  SlotHeader* s = slot_header(slot);
  if (StateOf(s->state) != SlotState::kResponse) {
    return absl::InternalError("shared-memory slot holds no response");
  }
  const int32_t code = Load(s->status_code);
  const uint64_t length = Load(s->length);
  if (code < 0 || code > static_cast<int32_t>(absl::StatusCode::kUnauthenticated)) {
    return absl::InternalError(absl::StrCat("shared-memory response: bad status code ", code));
  }
  if (length > slot_bytes_) {
    return absl::InternalError(absl::StrCat("shared-memory response: length ", length,
                                            " exceeds the slot (", slot_bytes_, " bytes)"));
  }
  SlotResponse r;
  r.code = static_cast<absl::StatusCode>(code);
  r.flags = Load(s->flags);
  r.payload = absl::Span<const char>(payload(slot), length);
  return r;
}

void ShmRing::Release(int slot) {
  SlotHeader* s = slot_header(slot);
  if (!Cas(s->state, SlotState::kResponse, SlotState::kFree)) {
    Cas(s->state, SlotState::kWriting, SlotState::kFree);
  }
}

// ---- Server side.

void ShmRing::AwaitRequests(absl::Duration timeout, std::vector<int>* claimed) {
  Header* h = header();
  auto scan = [&] {
    for (uint32_t i = 0; i < slots_; ++i) {
      if (Cas(slot_header(static_cast<int>(i))->state, SlotState::kRequest, SlotState::kServing)) {
        claimed->push_back(static_cast<int>(i));
      }
    }
    return !claimed->empty();
  };
  const uint32_t seen = Load(h->bell, std::memory_order_seq_cst);
  if (scan()) return;
  const absl::Time spin_until = absl::Now() + kSpin;
  while (Load(h->bell, std::memory_order_acquire) == seen && absl::Now() < spin_until) {
    CpuRelax();
  }
  YieldUntil([&] { return Load(h->bell, std::memory_order_acquire) != seen; });
  if (Load(h->bell, std::memory_order_acquire) == seen) {
    Store(h->server_sleeping, 1u, std::memory_order_seq_cst);
    if (Load(h->bell, std::memory_order_seq_cst) == seen) FutexWait(&h->bell, seen, timeout);
    Store(h->server_sleeping, 0u, std::memory_order_seq_cst);
  }
  scan();
}

absl::StatusOr<SlotRequest> ShmRing::ReadRequest(int slot) {
  if (!ValidSlot(slot)) return absl::InvalidArgumentError("bad slot index");
  SlotHeader* s = slot_header(slot);
  const uint64_t length = Load(s->length);
  if (length > slot_bytes_) {
    return absl::InvalidArgumentError(absl::StrCat("shared-memory request: length ", length,
                                                   " exceeds the slot (", slot_bytes_, " bytes)"));
  }
  SlotRequest r;
  r.payload = absl::Span<const char>(payload(slot), length);
  r.deadline_unix_ns = Load(s->deadline_unix_ns);
  return r;
}

bool ShmRing::Abandoned(int slot) {
  return StateOf(slot_header(slot)->state) == SlotState::kAbandoned;
}

void ShmRing::Respond(int slot, absl::StatusCode code, uint32_t flags, uint64_t length) {
  MOE_CHECK(length <= slot_bytes_);
  SlotHeader* s = slot_header(slot);
  Store(s->status_code, static_cast<int32_t>(code));
  Store(s->flags, flags);
  Store(s->length, length);
  if (Cas(s->state, SlotState::kServing, SlotState::kResponse)) {
    FutexWake(&s->state);
  } else {
    Cas(s->state, SlotState::kAbandoned, SlotState::kFree);
  }
}

void ShmRing::RespondError(int slot, const absl::Status& status, uint32_t flags) {
  const absl::string_view message = status.message();
  const uint64_t n = std::min<uint64_t>(message.size(), slot_bytes_);
  std::memcpy(payload(slot), message.data(), n);
  Respond(slot, status.code(), flags, n);
}

bool ShmRing::ClientGone() const {
  if (Load(header()->client_closed, std::memory_order_acquire) != 0) return true;
  return !ProcessExists(client_pid_);
}

void ShmRing::CloseServer() {
  Store(header()->server_closed, 1u, std::memory_order_release);
  for (uint32_t i = 0; i < slots_; ++i) FutexWake(&slot_header(static_cast<int>(i))->state);
}

}  // namespace moe::shm
