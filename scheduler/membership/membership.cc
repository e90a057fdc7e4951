#include "scheduler/membership/membership.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace moe::scheduler {

std::vector<std::string> DecideLiveness(const std::vector<Member>& members, absl::Time now,
                                        absl::Duration timeout) {
  std::vector<std::string> dead;
  for (const Member& m : members) {
    if (now - m.last_heartbeat > timeout) dead.push_back(m.id);
  }
  std::sort(dead.begin(), dead.end());
  return dead;
}

absl::StatusOr<std::string> MembershipTable::Register(const MemberInfo& info, absl::Time now) {
  if (info.address.empty() && info.role == Role::kExpert) {
    return absl::InvalidArgumentError("an expert instance must give its address");
  }
  if (info.memory_bytes < 0 || info.expert_slots < 0 || info.speed < 0) {
    return absl::InvalidArgumentError("memory, slots and speed must be >= 0");
  }
  Member m;
  m.seq = next_seq_++;
  m.id = absl::StrCat(info.role == Role::kExpert ? "expert-" : "attention-", m.seq);
  m.info = info;
  if (m.info.speed == 0) m.info.speed = 1.0;
  m.registered = now;
  m.last_heartbeat = now;
  const std::string id = m.id;
  members_.emplace(id, std::move(m));
  return id;
}

absl::Status MembershipTable::Heartbeat(const std::string& id, const HeartbeatInfo& hb,
                                        absl::Time now) {
  auto it = members_.find(id);
  if (it == members_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown instance \"", id, "\": register again"));
  }
  Member& m = it->second;
  m.last_heartbeat = std::max(m.last_heartbeat, now);
  m.applied_epoch = hb.applied_epoch;
  m.loaded_epoch = hb.loaded_epoch;
  m.ready = hb.ready;
  m.tokens_per_second = hb.tokens_per_second;
  return absl::OkStatus();
}

bool MembershipTable::Remove(const std::string& id) { return members_.erase(id) > 0; }

const Member* MembershipTable::Find(const std::string& id) const {
  auto it = members_.find(id);
  return it == members_.end() ? nullptr : &it->second;
}

std::vector<Member> MembershipTable::All() const {
  std::vector<Member> out;
  for (const auto& [id, m] : members_) out.push_back(m);
  std::sort(out.begin(), out.end(), [](const Member& a, const Member& b) { return a.seq < b.seq; });
  return out;
}

std::vector<Member> MembershipTable::WithRole(Role role) const {
  std::vector<Member> out;
  for (const Member& m : All()) {
    if (m.info.role == role) out.push_back(m);
  }
  return out;
}

}  // namespace moe::scheduler
