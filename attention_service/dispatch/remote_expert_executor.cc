#include "attention_service/dispatch/remote_expert_executor.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/metrics.h"

namespace moe::attention {

namespace {

namespace cv1 = ::moe::common::v1;

struct DispatchMetrics {
  prometheus::Counter& failovers;
  prometheus::Histogram& dispatch_seconds;
  prometheus::Counter& pairs;
  prometheus::Counter& local_pairs;

  static DispatchMetrics& Get() {
    static DispatchMetrics* m = [] {
      prometheus::Registry& r = MetricsRegistry();
      return new DispatchMetrics{
          prometheus::BuildCounter()
              .Name("moe_failovers_total")
              .Help("Expert shards resent to another replica after a failed dispatch")
              .Register(r)
              .Add({}),
          prometheus::BuildHistogram()
              .Name("moe_expert_dispatch_seconds")
              .Help("Time to dispatch one MoE layer to the expert services and combine, seconds")
              .Register(r)
              .Add({}, ExponentialBuckets(1e-5, 2, 22)),
          prometheus::BuildCounter()
              .Name("moe_dispatch_pairs_total")
              .Help("Routed (token, expert) pairs dispatched in a MoE layer that followed another "
                    "MoE layer of the same forward pass (their tokens' previous instances known)")
              .Register(r)
              .Add({}),
          prometheus::BuildCounter()
              .Name("moe_dispatch_local_pairs_total")
              .Help("Of moe_dispatch_pairs_total, the pairs computed on an instance that ran one "
                    "of the token's experts in the previous MoE layer")
              .Register(r)
              .Add({}),
      };
    }();
    return *m;
  }
};

// Errors that say the request itself is wrong: another replica would refuse it too.
bool Retryable(const absl::Status& s) { return s.code() != absl::StatusCode::kInvalidArgument; }

// Where one Run's routed pairs were computed.
struct RanOn {
  std::vector<int32_t> pair;           // per routed pair: index into `addresses`; -1: not yet
  std::vector<std::string> addresses;  // instances that computed pairs in this Run
};

// Records that `address` computed `pieces` (positions in `order`).
void MarkRan(absl::Span<const Piece> pieces, absl::Span<const int32_t> order,
             const std::string& address, RanOn* ran) {
  auto it = std::find(ran->addresses.begin(), ran->addresses.end(), address);
  const int32_t id = static_cast<int32_t>(it - ran->addresses.begin());
  if (it == ran->addresses.end()) ran->addresses.push_back(address);
  for (const Piece& piece : pieces) {
    for (int pos = piece.begin; pos < piece.end; ++pos) ran->pair[order[pos]] = id;
  }
}

// Routed pairs of `ran` computed on an instance (same address) that ran one of their token's
// experts in `previous`'s layer.
int64_t LocalPairs(const DispatchMemory& previous, const RanOn& ran,
                   absl::Span<const int32_t> pair_token) {
  std::vector<int32_t> previous_id(ran.addresses.size(), -1);
  for (size_t id = 0; id < ran.addresses.size(); ++id) {
    auto it = std::find(previous.instances.begin(), previous.instances.end(), ran.addresses[id]);
    if (it != previous.instances.end()) {
      previous_id[id] = static_cast<int32_t>(it - previous.instances.begin());
    }
  }
  int64_t local = 0;
  for (size_t p = 0; p < ran.pair.size(); ++p) {
    const int32_t id = ran.pair[p] >= 0 ? previous_id[ran.pair[p]] : -1;
    local += id >= 0 && previous.homes.Contains(pair_token[p], id);
  }
  return local;
}

// `memory`'s homes with ids translated to `snap`'s instance indices (by address; instances not
// in `snap` dropped).
void HomesInSnapshot(const DispatchMemory& memory, const PlacementSnapshot& snap,
                     TokenHomes* homes) {
  std::vector<int32_t> index(memory.instances.size(), -1);
  for (size_t id = 0; id < memory.instances.size(); ++id) {
    for (int i = 0; i < snap.num_instances(); ++i) {
      if (snap.address(i) == memory.instances[id]) index[id] = i;
    }
  }
  const int tokens = memory.homes.tokens();
  homes->offsets.assign(static_cast<size_t>(tokens) + 1, 0);
  homes->ids.clear();
  for (int t = 0; t < tokens; ++t) {
    for (int32_t id : memory.homes.Of(t)) {
      if (index[id] >= 0) homes->ids.push_back(index[id]);
    }
    const auto begin = homes->ids.begin() + homes->offsets[t];
    std::sort(begin, homes->ids.end());  // a snapshot may order instances differently
    homes->offsets[t + 1] = static_cast<int32_t>(homes->ids.size());
  }
}

}  // namespace

RemoteExpertExecutor::RemoteExpertExecutor(const PlacementHolder* placement,
                                           ExpertTransport* transport,
                                           RemoteExecutorOptions options)
    : placement_(placement), transport_(transport), options_(options) {
  DispatchMetrics::Get();  // register the families with the process registry up front
}

RemoteExpertExecutor::RemoteExpertExecutor(const StaticPlacement* placement,
                                           std::vector<std::string> instances,
                                           ExpertTransport* transport,
                                           RemoteExecutorOptions options)
    : owned_(std::make_unique<PlacementHolder>()),
      placement_(owned_.get()),
      transport_(transport),
      options_(options) {
  DispatchMetrics::Get();
  auto snapshot = PlacementSnapshot::FromStatic(*placement, std::move(instances), options.epoch);
  if (snapshot.ok()) {
    owned_->Set(*std::move(snapshot));
  } else {
    static_error_ = absl::FailedPreconditionError(absl::StrCat(
        "instance addresses do not match the placement: ", snapshot.status().message()));
  }
}

bool RemoteExpertExecutor::Healthy(const std::string& address, absl::Time now) const {
  absl::MutexLock lock(&health_mu_);
  auto it = unhealthy_until_.find(address);
  return it == unhealthy_until_.end() || it->second <= now;
}

void RemoteExpertExecutor::MarkUnhealthy(const std::string& address, absl::Time until) {
  absl::MutexLock lock(&health_mu_);
  absl::Time& t = unhealthy_until_[address];
  t = std::max(t, until);
}

absl::Status RemoteExpertExecutor::Run(int layer, const float* x, int hidden,
                                       const model::Routing& routing, float* out,
                                       DispatchMemory* memory) {
  if (!static_error_.ok()) return static_error_;
  const absl::Time start = absl::Now();
  const absl::Time wait_deadline = start + options_.placement_wait;
  std::shared_ptr<const PlacementSnapshot> snap = placement_->Get();
  if (snap == nullptr) {
    // No placement yet (a scheduler-driven worker before its first plan): wait for one.
    snap = placement_->WaitForNewerThan(-1, options_.placement_wait);
    if (snap == nullptr) return absl::UnavailableError("no expert placement yet");
  }
  if (layer < 0 || layer >= snap->num_layers()) {
    return absl::InvalidArgumentError(absl::StrCat("layer ", layer, " out of range"));
  }
  if (options_.load != nullptr) options_.load->Record(layer, routing);
  const int num_experts = snap->num_experts();
  const int tokens = routing.tokens;
  ExpertGroups groups;  // per call: Run may run on several threads at once
  GroupByExpert(routing, num_experts, &groups);
  std::fill(out, out + static_cast<size_t>(tokens) * hidden, 0.0f);

  // Pieces index `order`: position p holds routed pair order[p] (ChooseReplicas permutes it
  // within pieces to fill share quotas locality-first).
  const int num_pairs = static_cast<int>(groups.tokens.size());
  std::vector<int32_t> order(num_pairs);
  for (int p = 0; p < num_pairs; ++p) order[p] = p;
  std::vector<Piece> pending;  // positions still to compute
  for (int e = 0; e < num_experts; ++e) {
    if (groups.offsets[e] != groups.offsets[e + 1]) {
      pending.push_back({e, groups.offsets[e], groups.offsets[e + 1]});
    }
  }
  // The previous MoE layer of this forward pass, if `memory` has it for these tokens.
  const bool has_previous = memory != nullptr && memory->layer >= 0 && memory->layer < layer &&
                            memory->homes.tokens() == tokens;
  TokenHomes homes;  // memory's homes in `homes_snap`'s instance indices
  std::shared_ptr<const PlacementSnapshot> homes_snap;
  RanOn ran;  // where each pair was computed (only with `memory`)
  ran.pair.assign(memory != nullptr ? num_pairs : 0, -1);
  // Addresses that failed during this Run (kept across a placement change: same services).
  absl::flat_hash_map<std::string, bool> failed;
  std::vector<std::string> not_ready;  // failed with FAILED_PRECONDITION in this Run
  std::vector<std::vector<Piece>> pieces_of;
  std::vector<Piece> orphans;  // no replica left in this snapshot
  std::vector<ExpertCall> calls;
  std::vector<int> call_instance;
  std::vector<std::vector<int32_t>> token_of_row;  // per call: token index of each output row
  std::vector<int32_t> row_of_token(tokens, -1);   // compact output row per token, per call

  while (!pending.empty()) {
    // Usable replicas per expert: the healthy ones not failed in this Run, else the first one
    // not failed in this Run (a stale "unhealthy" mark is only a hint). ChooseReplicas splits
    // large shards by share and balances the rest over them.
    const absl::Time now = absl::Now();
    const int n = snap->num_instances();
    auto usable = [&](int e, std::vector<int>* instances, std::vector<double>* shares) {
      absl::Span<const int> replicas = snap->Replicas(layer, e);
      absl::Span<const double> share = snap->Shares(layer, e);
      int fallback = -1;
      double fallback_share = 0;
      for (size_t k = 0; k < replicas.size(); ++k) {
        const std::string& address = snap->address(replicas[k]);
        if (failed.contains(address)) continue;
        if (Healthy(address, now)) {
          instances->push_back(replicas[k]);
          shares->push_back(k < share.size() ? share[k] : 1.0);
        } else if (fallback < 0) {
          fallback = replicas[k];
          fallback_share = k < share.size() ? share[k] : 1.0;
        }
      }
      if (instances->empty() && fallback >= 0) {
        instances->push_back(fallback);
        shares->push_back(fallback_share);
      }
    };
    PairLocality locality;
    if (has_previous) {
      if (homes_snap != snap) {
        HomesInSnapshot(*memory, *snap, &homes);
        homes_snap = snap;
      }
      locality = {absl::MakeSpan(order), groups.tokens, &homes};
    }
    ChooseReplicas(pending, n, usable, options_.replica_choice, locality, &pieces_of, &orphans);
    if (!orphans.empty()) {
      // Wait (bounded) for a newer placement, then route every pending expert with it.
      // Calls of this round are not sent: their experts are routed with the new snapshot too.
      // An instance that answered FAILED_PRECONDITION is alive but not (yet) holding the
      // expert (it is loading a new plan): poll it again every 100 ms within the budget.
      const absl::Duration left = wait_deadline - absl::Now();
      std::shared_ptr<const PlacementSnapshot> next = placement_->WaitForNewerThan(
          snap->epoch(), not_ready.empty() ? left : std::min(left, absl::Milliseconds(100)));
      const bool changed = next != nullptr && next != snap;  // newer, or a scheduler restart
      if (!changed && !not_ready.empty() && absl::Now() < wait_deadline) {
        for (const std::string& a : not_ready) failed.erase(a);
        not_ready.clear();
        continue;
      }
      if (!changed) {
        return absl::UnavailableError(absl::StrCat("no live replica of expert ", layer, ":",
                                                   orphans.front().expert, " in placement epoch ",
                                                   snap->epoch()));
      }
      if (next->num_experts() != num_experts || layer >= next->num_layers()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "placement epoch ", next->epoch(), " has another shape than epoch ", snap->epoch()));
      }
      snap = std::move(next);
      placement_waits_.fetch_add(1);
      continue;
    }
    calls.clear();
    call_instance.clear();
    token_of_row.clear();
    for (int i = 0; i < n; ++i) {
      if (pieces_of[i].empty()) continue;
      ExpertCall& call = calls.emplace_back();
      call.instance = snap->address(i);
      call_instance.push_back(i);
      std::vector<int32_t>& rows_to_tokens = token_of_row.emplace_back();
      auto& req = call.request;
      req.set_layer(layer);
      req.set_epoch(snap->epoch());
      req.set_combine(true);
      for (const Piece& piece : pieces_of[i]) {
        const int begin = piece.begin;
        const int count = piece.tokens();
        auto* shard = req.add_shards();
        shard->set_expert(piece.expert);
        cv1::Tensor* h = shard->mutable_hidden();
        h->set_dtype(cv1::DTYPE_F32);
        h->add_shape(count);
        h->add_shape(hidden);
        std::string* bytes = h->mutable_data();
        bytes->resize(static_cast<size_t>(count) * hidden * sizeof(float));
        cv1::Tensor* w = shard->mutable_weights();
        w->set_dtype(cv1::DTYPE_F32);
        w->add_shape(count);
        w->mutable_data()->resize(static_cast<size_t>(count) * sizeof(float));
        cv1::Tensor* r = shard->mutable_rows();
        r->set_dtype(cv1::DTYPE_I32);
        r->add_shape(count);
        r->mutable_data()->resize(static_cast<size_t>(count) * sizeof(int32_t));
        char* hdst = bytes->data();
        char* wdst = w->mutable_data()->data();
        char* rdst = r->mutable_data()->data();
        for (int k = 0; k < count; ++k) {
          const int32_t pair = order[begin + k];
          const int32_t t = groups.tokens[pair];
          std::memcpy(hdst + static_cast<size_t>(k) * hidden * sizeof(float),
                      x + static_cast<size_t>(t) * hidden, hidden * sizeof(float));
          std::memcpy(wdst + k * sizeof(float), &groups.weights[pair], sizeof(float));
          if (row_of_token[t] < 0) {
            row_of_token[t] = static_cast<int32_t>(rows_to_tokens.size());
            rows_to_tokens.push_back(t);
          }
          std::memcpy(rdst + k * sizeof(int32_t), &row_of_token[t], sizeof(int32_t));
        }
      }
      req.set_combined_rows(static_cast<int32_t>(rows_to_tokens.size()));
      for (int32_t t : rows_to_tokens) row_of_token[t] = -1;
    }

    transport_->ForwardAll(absl::MakeSpan(calls), options_.timeout);

    pending.clear();
    for (size_t c = 0; c < calls.size(); ++c) {
      const int i = call_instance[c];
      ExpertCall& call = calls[c];
      const std::vector<int32_t>& rows_to_tokens = token_of_row[c];
      absl::Status status = call.status;
      if (status.ok()) {
        const cv1::Tensor& combined = call.response.combined();
        const size_t want = rows_to_tokens.size() * hidden * sizeof(float);
        if (combined.dtype() != cv1::DTYPE_F32 || combined.data().size() != want) {
          status = absl::DataLossError(absl::StrCat("malformed response from ", call.instance));
        }
      }
      if (!status.ok()) {
        if (!Retryable(status)) return status;
        failed[call.instance] = true;
        if (status.code() == absl::StatusCode::kFailedPrecondition) {
          not_ready.push_back(call.instance);  // alive: expert not loaded or epoch refused
        } else {
          MarkUnhealthy(call.instance, absl::Now() + options_.unhealthy_for);
        }
        failovers_.fetch_add(static_cast<int64_t>(pieces_of[i].size()));
        DispatchMetrics::Get().failovers.Increment(static_cast<double>(pieces_of[i].size()));
        pending.insert(pending.end(), pieces_of[i].begin(), pieces_of[i].end());
        continue;
      }
      if (memory != nullptr) MarkRan(pieces_of[i], order, call.instance, &ran);
      const char* src = call.response.combined().data().data();
      for (size_t row = 0; row < rows_to_tokens.size(); ++row) {
        float* dst = out + static_cast<size_t>(rows_to_tokens[row]) * hidden;
        const float* p = reinterpret_cast<const float*>(src) + row * hidden;
        float tmp[256];
        for (int h0 = 0; h0 < hidden; h0 += 256) {
          const int len = std::min(256, hidden - h0);
          std::memcpy(tmp, p + h0, len * sizeof(float));  // bytes may be unaligned
          for (int k = 0; k < len; ++k) dst[h0 + k] += tmp[k];
        }
      }
    }
  }
  if (has_previous) {
    const int64_t local = LocalPairs(*memory, ran, groups.tokens);
    pairs_after_previous_.fetch_add(num_pairs);
    local_pairs_.fetch_add(local);
    DispatchMetrics::Get().pairs.Increment(static_cast<double>(num_pairs));
    DispatchMetrics::Get().local_pairs.Increment(static_cast<double>(local));
  }
  if (memory != nullptr) {
    memory->layer = layer;
    memory->instances = std::move(ran.addresses);
    BuildTokenHomes(tokens, groups.tokens, ran.pair, &memory->homes);
  }
  DispatchMetrics::Get().dispatch_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

}  // namespace moe::attention
