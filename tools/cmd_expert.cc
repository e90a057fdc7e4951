// `moe expert`: an expert service (DESIGN.md section 2). Loads its assigned (layer, expert)
// weights, serves ExpertService over gRPC, /metrics /health /ready on the admin port, and
// stops gracefully on SIGTERM / SIGINT.
//
// Shutdown: SIGTERM drains: /ready 503 and gRPC health NOT_SERVING, heartbeats to the scheduler
// say "leaving" (it publishes a plan without the instance at once, made before break, as for a
// scale-down; unless it is the last expert instance), and Forward calls are still served until
// none arrived for --drain-idle-ms (the attention workers moved to the new plan), at most
// --drain-timeout-s; then heartbeats stop, queued calls finish and it exits. SIGINT stops at once (queued calls still finish). Exit codes: 0 stopped; 3 the drain
// timed out while calls were still arriving; 2 bad flags; 1 failed to start.
//
// With --scheduler ADDR it registers with `moe scheduler` (ROLE_EXPERT, its host:port) and
// holds whatever the committed placement plans give it (expert_service/control/plan_follower.h):
// it starts empty (not ready) unless --experts was given explicitly (then that set is served
// from the start as epoch 0 and replaced by the first plan), loads/drops experts per plan in
// the background, and reports applied epoch and readiness in its heartbeats.
#include <pthread.h>
#include <unistd.h>

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "attention_service/dispatch/placement.h"
#include "common/status.h"
#include "common/flags.h"
#include "common/process.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "expert_service/backend/expert_backend.h"
#include "expert_service/control/plan_follower.h"
#include "expert_service/executor/model_experts.h"
#include "expert_service/executor/shard_executor.h"
#include "expert_service/grpc/expert_server.h"
#include "scheduler/client/scheduler_client.h"
#include "tools/commands.h"

namespace moe::tools {

namespace {

// "round-robin:I/N/R" -> the expert list of instance I under attention::StaticPlacement;
// "" for any other spec.
absl::StatusOr<std::string> RoundRobinList(const std::string& spec,
                                           const model::ModelConfig& config) {
  constexpr absl::string_view kPrefix = "round-robin:";
  if (!absl::StartsWith(spec, kPrefix)) return std::string();
  std::vector<std::string> parts = absl::StrSplit(spec.substr(kPrefix.size()), '/');
  int i = 0, n = 0, r = 1;
  if (parts.size() < 2 || parts.size() > 3 || !absl::SimpleAtoi(parts[0], &i) ||
      !absl::SimpleAtoi(parts[1], &n) || (parts.size() == 3 && !absl::SimpleAtoi(parts[2], &r)) ||
      i < 0 || i >= n) {
    return absl::InvalidArgumentError("--experts round-robin:I/N/R needs 0 <= I < N, R >= 1");
  }
  MOE_ASSIGN_OR_RETURN(attention::StaticPlacement p,
                       attention::StaticPlacement::RoundRobin(config, n, r));
  std::string list = p.ExpertList(i);
  if (list.empty()) return absl::InvalidArgumentError("this instance holds no experts");
  return list;
}

struct ExpertConfig {
  std::string model;
  std::string host = "127.0.0.1";
  int port = 50061;
  int admin_port = 0;  // 0: pick a free port (logged)
  std::string experts = "all";
  std::string backend = "cpu";
  int threads = 0;  // 0: kernel default (MOE_KERNEL_THREADS / OMP_NUM_THREADS / cores)
  int max_queue = 64;
  int max_tokens = 8192;
  int max_message_mb = 256;
  std::string scheduler;
  std::string advertise;
  int64_t scheduler_timeout_ms = 60000;
  int64_t drop_grace_ms = 5000;
  std::string instance_id;
  int64_t drain_idle_ms = 500;
  int64_t drain_timeout_s = 20;
  std::string log_level = "info";
};

constexpr int kExitDrainTimeout = 3;

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "moe expert: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int RunExpert(int argc, const char* const* argv) {
  ExpertConfig c;
  FlagSet flags("moe expert", "Serve a set of (layer, expert) FFNs over gRPC.");
  flags.AddString("model", &c.model, "model folder (config.json, safetensors)");
  flags.AddString("host", &c.host, "address to listen on");
  flags.AddInt("port", &c.port, "gRPC port; 0 picks a free one (printed)");
  flags.AddInt("admin-port", &c.admin_port, "HTTP admin port (/metrics /health /ready); 0 = free");
  flags.AddString("experts", &c.experts,
                  "'all', LAYER:EXPERT,..., or round-robin:I/N/R (instance I of N, R replicas: "
                  "the placement `moe attention --experts remote` uses); with --scheduler: "
                  "only an initial set until the first plan (default: start empty)");
  flags.AddString("backend", &c.backend, "expert backend: cpu or cuda");
  flags.AddInt("threads", &c.threads, "compute threads; 0 = default");
  flags.AddInt("max-queue", &c.max_queue, "Forward calls waiting before RESOURCE_EXHAUSTED");
  flags.AddInt("max-tokens", &c.max_tokens, "tokens per Forward call (all shards)");
  flags.AddInt("max-message-mb", &c.max_message_mb, "gRPC message size limit, MiB");
  flags.AddString("scheduler", &c.scheduler,
                  "scheduler host:port: register and hold the experts its plans place here");
  flags.AddString("advertise-address", &c.advertise,
                  "with --scheduler: host:port the others reach this service at (default "
                  "--host:the listening port)");
  flags.AddInt("scheduler-timeout-ms", &c.scheduler_timeout_ms,
               "with --scheduler: give up registering after this long at startup");
  flags.AddInt("drop-grace-ms", &c.drop_grace_ms,
               "with --scheduler: keep experts no longer placed here this long");
  flags.AddString("instance-id", &c.instance_id, "name reported by Describe; default host:port");
  flags.AddInt("drain-idle-ms", &c.drain_idle_ms,
               "on SIGTERM: stop once no Forward call arrived for this long");
  flags.AddInt("drain-timeout-s", &c.drain_timeout_s,
               "on SIGTERM: stop after this long even if calls still arrive (keep it under "
               "Kubernetes' terminationGracePeriodSeconds)");
  flags.AddString("log-level", &c.log_level, "trace, debug, info, warn, error");
  if (std::optional<int> exit = flags.ParseCommandLine(argc, argv)) return *exit;
  InitLogging("expert", c.log_level);
  if (c.model.empty() || !flags.positional().empty() || c.port < 0 || c.max_queue < 1 ||
      c.max_tokens < 1 || c.max_message_mb < 1 || c.threads < 0 || c.drain_idle_ms < 0 ||
      c.drain_timeout_s < 0) {
    std::fprintf(stderr, "moe expert: need --model; ports >= 0, limits >= 1\n\n%s",
                 flags.Usage().c_str());
    return 2;
  }
  MOE_LOG_INFO("config: {}", flags.Describe());
  if (c.threads > 0) {
    // Read by the kernels' thread pool and oneDNN at first use, which is after this point.
    setenv("MOE_KERNEL_THREADS", std::to_string(c.threads).c_str(), 1);
    setenv("OMP_NUM_THREADS", std::to_string(c.threads).c_str(), 1);
  }

  StopSignals stop_signals;

  auto source = expert::ModelExpertSource::Open(c.model);
  if (!source.ok()) return Fail(source.status());
  if (absl::StatusOr<std::string> rr = RoundRobinList(c.experts, (*source)->config()); !rr.ok()) {
    return Fail(rr.status());
  } else if (!rr->empty()) {
    c.experts = *rr;
  }
  // With a scheduler and no explicit --experts: start empty, the plans say what to hold.
  const bool follow = !c.scheduler.empty();
  const bool initial_set = !follow || flags.WasSet("experts");
  auto list = initial_set ? expert::ParseExpertList(c.experts, (*source)->config())
                          : absl::StatusOr<std::vector<std::pair<int, int>>>(
                                std::vector<std::pair<int, int>>());
  if (!list.ok()) return Fail(list.status());
  auto backend = expert::CreateExpertBackend(c.backend, expert::BackendOptions{});
  if (!backend.ok()) return Fail(backend.status());
  expert::ShardExecutorConfig ec = (*source)->ExecutorConfig();
  ec.max_tokens = c.max_tokens;
  expert::ShardExecutor executor(ec, std::move(*backend));
  if (absl::Status s = (*source)->LoadInto(*list, /*epoch=*/0, &executor); !s.ok()) {
    return Fail(s);
  }
  MOE_LOG_INFO("loaded {} experts ({} MiB on {})", list->size(),
               executor.Describe().weight_bytes >> 20, executor.Describe().name);

  AdminServerOptions ao;
  ao.host = c.host;
  ao.port = c.admin_port;
  std::unique_ptr<expert::PlanFollower> follower;  // with --scheduler
  std::atomic<bool> follower_ready{false};
  std::atomic<bool> draining{false};
  std::atomic<bool> leaving{false};  // SIGTERM with a scheduler: heartbeats say "leaving"
  ao.ready = [&executor, follow, &follower_ready, initial_set, &draining] {
    if (draining.load()) return false;
    if (follow) return follower_ready.load() || (initial_set && !executor.Loaded().empty());
    return !executor.Loaded().empty();
  };
  auto admin = AdminServer::Start(ao);
  if (!admin.ok()) return Fail(admin.status());

  expert::ExpertServerOptions so;
  so.host = c.host;
  so.port = c.port;
  so.max_queue = c.max_queue;
  so.max_message_bytes = c.max_message_mb * 1024 * 1024;
  so.instance_id = c.instance_id;
  auto server = expert::ExpertServer::Start(so, &executor, source->get());
  if (!server.ok()) return Fail(server.status());
  (*server)->SetServing(initial_set);
  std::unique_ptr<scheduler::SchedulerClient> sched;
  if (follow) {
    expert::PlanFollowerOptions fo;
    fo.drop_grace = absl::Milliseconds(c.drop_grace_ms);
    expert::ExpertServer* srv = server->get();
    fo.on_ready_change = [srv, &follower_ready](bool ready) {
      follower_ready.store(ready);
      srv->SetServing(ready);
    };
    follower = std::make_unique<expert::PlanFollower>(&executor, source->get(), fo);
    scheduler::SchedulerClientOptions sco;
    sco.scheduler = c.scheduler;
    sco.role = scheduler::v1::ROLE_EXPERT;
    sco.address =
        c.advertise.empty() ? absl::StrCat(c.host, ":", (*server)->port()) : c.advertise;
    sco.name = c.instance_id.empty() ? sco.address : c.instance_id;
    sco.startup_timeout = absl::Milliseconds(c.scheduler_timeout_ms);
    // With an initial set there is something to serve meanwhile: register in the background.
    sco.register_in_background = initial_set;
    expert::PlanFollower* f = follower.get();
    // Measured capacity for elastic scaling: rows computed per second since the previous
    // heartbeat (the status provider runs on sched-heartbeat only, so this state is its own).
    struct Rate {
      int64_t tokens = 0;
      std::chrono::steady_clock::time_point at = std::chrono::steady_clock::now();
    };
    auto rate = std::make_shared<Rate>();
    auto started = scheduler::SchedulerClient::Start(
        sco,
        [f](const scheduler::v1::PlacementPlan& plan, const std::string& self) {
          f->OnPlan(plan, self);
        },
        [f, srv, rate, &leaving] {
          scheduler::InstanceStatus st;
          st.leaving = leaving.load();
          st.applied_epoch = f->applied_epoch();
          st.ready = f->ready();
          st.loaded_epoch = f->loaded_epoch();
          const int64_t tokens = srv->tokens_computed();
          const auto now = std::chrono::steady_clock::now();
          const double seconds = std::chrono::duration<double>(now - rate->at).count();
          if (seconds > 0) st.tokens_per_second = (tokens - rate->tokens) / seconds;
          rate->tokens = tokens;
          rate->at = now;
          return st;
        });
    if (!started.ok()) {
      follower->Stop();
      (*server)->Shutdown();
      (*admin)->Stop();
      return Fail(started.status());
    }
    sched = std::move(*started);
  }
  MOE_LOG_INFO("admin on {}:{}", c.host, (*admin)->port());
  std::printf("listening on %s:%d\n", c.host.c_str(), (*server)->port());
  std::printf("admin on %s:%d\n", c.host.c_str(), (*admin)->port());
  std::fflush(stdout);

  const int sig = stop_signals.Wait();
  draining = true;
  (*server)->SetServing(false);
  if (follower != nullptr) follower->Stop();  // keep every expert held for the stragglers
  if (sched != nullptr) {
    if (sig == SIGTERM) {
      // Heartbeats go on, saying "leaving": the scheduler publishes a plan without this
      // instance at once (made before break) instead of after its heartbeat timeout.
      leaving = true;
      sched->HeartbeatNow();
    } else {
      sched->Stop();
    }
  }
  int code = 0;
  if (sig == SIGTERM) {
    // Serve while the attention workers still route here; stop once idle.
    MOE_LOG_INFO("SIGTERM: draining (until {} ms without calls, at most {} s)", c.drain_idle_ms,
                 c.drain_timeout_s);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(c.drain_timeout_s);
    int64_t seen = (*server)->tokens_computed();
    auto quiet_since = std::chrono::steady_clock::now();
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      if (now - quiet_since >= std::chrono::milliseconds(c.drain_idle_ms)) break;
      if (now >= deadline) {
        MOE_LOG_WARN("drain timed out with calls still arriving");
        code = kExitDrainTimeout;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      const int64_t tokens = (*server)->tokens_computed();
      if (tokens != seen) {
        seen = tokens;
        quiet_since = std::chrono::steady_clock::now();
      }
    }
  } else {
    MOE_LOG_INFO("signal {}: stopping now", sig);
  }
  if (sched != nullptr) sched->Stop();  // heartbeats end: gone after the heartbeat timeout
  (*server)->Shutdown();  // queued calls finish (bounded), then the threads end
  (*admin)->Stop();
  MOE_LOG_INFO("stopped");
  return code;
}

}  // namespace moe::tools
