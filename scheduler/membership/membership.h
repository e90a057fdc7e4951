// Membership: the instances (expert services, attention workers) that registered with the
// scheduler, their heartbeats, and the pure liveness decision.
//
// Thread-safety: MembershipTable is not thread-safe; its owner (SchedulerCore) guards it.
// DecideLiveness is a pure function.
#ifndef MOE_SCHEDULER_MEMBERSHIP_MEMBERSHIP_H_
#define MOE_SCHEDULER_MEMBERSHIP_MEMBERSHIP_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace moe::scheduler {

enum class Role { kExpert, kAttention };

struct MemberInfo {
  Role role = Role::kExpert;
  std::string address;       // host:port
  int64_t memory_bytes = 0;  // 0 = unlimited
  int expert_slots = 0;      // 0 = no slot limit
  double speed = 1.0;
  std::string name;
};

struct Member {
  std::string id;
  MemberInfo info;
  int64_t seq = 0;  // registration order (ids sort by it); placement orders instances by it
  absl::Time registered;
  absl::Time last_heartbeat;  // registration counts as the first heartbeat
  int64_t applied_epoch = 0;
  int64_t loaded_epoch = 0;
  bool ready = false;
  double tokens_per_second = 0;
};

struct HeartbeatInfo {
  int64_t applied_epoch = 0;
  int64_t loaded_epoch = 0;
  bool ready = false;
  double tokens_per_second = 0;
};

// Ids of the members whose last heartbeat is more than `timeout` before `now`, in id order.
std::vector<std::string> DecideLiveness(const std::vector<Member>& members, absl::Time now,
                                        absl::Duration timeout);

class MembershipTable {
 public:
  // Adds a member; ids are "<role>-<n>" with n increasing over the table's life (never reused,
  // so a member declared dead that comes back registers as a new instance).
  absl::StatusOr<std::string> Register(const MemberInfo& info, absl::Time now);
  // NOT_FOUND for an unknown (or removed) id: the caller should register again.
  absl::Status Heartbeat(const std::string& id, const HeartbeatInfo& hb, absl::Time now);
  bool Remove(const std::string& id);
  const Member* Find(const std::string& id) const;

  // Members in registration order; optionally only one role.
  std::vector<Member> All() const;
  std::vector<Member> WithRole(Role role) const;

 private:
  int64_t next_seq_ = 1;
  std::map<std::string, Member> members_;
};

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_MEMBERSHIP_MEMBERSHIP_H_
