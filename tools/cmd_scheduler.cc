// `moe scheduler`: the placement scheduler (DESIGN.md section 5). Instances register and
// heartbeat; it publishes versioned placement plans over WatchPlan, re-places the experts of a
// dead expert instance, and collects load reports. /metrics /health /ready on the admin port;
// graceful stop on SIGTERM / SIGINT.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <optional>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include "common/clock.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "model/config.h"
#include "scheduler/core/scheduler_core.h"
#include "scheduler/core/scheduler_loop.h"
#include "scheduler/grpc/scheduler_server.h"
#include "tools/commands.h"

namespace moe::tools {

namespace {

struct SchedulerFlags {
  std::string host = "127.0.0.1";
  int port = 50051;
  int admin_port = 0;
  std::string model;
  int layers = 0;
  int experts = 0;
  int replicas = 1;
  int min_experts = 1;
  double replication = 0;  // 0: = replicas
  std::string policy = "greedy";
  int64_t bytes_per_expert = 0;
  int heartbeat_interval_ms = 500;
  int heartbeat_timeout_ms = 3000;
  int load_window_s = 60;
  std::string log_level = "info";
};

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "moe scheduler: %s\n", s.ToString().c_str());
  return 1;
}

// Scheduler metrics (DESIGN.md section 7), updated on the scheduling thread after each tick.
struct SchedulerMetrics {
  prometheus::Gauge* epoch;
  prometheus::Gauge* expert_instances;
  prometheus::Gauge* attention_instances;
  prometheus::Counter* deaths;
  prometheus::Counter* failovers;
  prometheus::Counter* plans;

  static SchedulerMetrics Create(prometheus::Registry& r) {
    auto gauge = [&r](const char* name, const char* help) {
      return &prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
    };
    auto counter = [&r](const char* name, const char* help) {
      return &prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
    };
    return {gauge("moe_placement_epoch", "Epoch of the newest published placement plan"),
            gauge("moe_expert_instances", "Live expert-service instances"),
            gauge("moe_attention_instances", "Live attention-worker instances"),
            counter("moe_instance_deaths_total", "Instances declared dead (missed heartbeats)"),
            counter("moe_failovers_total",
                    "Plans published because an expert instance of the plan died"),
            counter("moe_placement_plans_total", "Placement plans published")};
  }
  void Update(const scheduler::SchedulerStats& s) {
    epoch->Set(static_cast<double>(s.epoch));
    expert_instances->Set(s.expert_instances);
    attention_instances->Set(s.attention_instances);
    // Counters only move forward: add the difference to what they show.
    deaths->Increment(static_cast<double>(s.instance_deaths) - deaths->Value());
    failovers->Increment(static_cast<double>(s.failovers) - failovers->Value());
    plans->Increment(static_cast<double>(s.plans_published) - plans->Value());
  }
};

}  // namespace

int RunScheduler(int argc, const char* const* argv) {
  SchedulerFlags f;
  FlagSet flags("moe scheduler", "Serve expert placement plans, membership and load stats.");
  flags.AddString("host", &f.host, "address to listen on");
  flags.AddInt("port", &f.port, "gRPC port; 0 picks a free one (printed)");
  flags.AddInt("admin-port", &f.admin_port, "HTTP admin port (/metrics /health /ready); 0 = free");
  flags.AddString("model", &f.model, "model folder: layers and experts from its config.json");
  flags.AddInt("layers", &f.layers, "layers to place (instead of --model)");
  flags.AddInt("experts", &f.experts, "routed experts per layer (instead of --model)");
  flags.AddInt("replicas", &f.replicas, "minimum replicas per expert (on distinct instances)");
  flags.AddInt("min-experts", &f.min_experts,
               "expert instances to wait for before the first plan (e.g. the N of `moe up`)");
  flags.AddDouble("replication", &f.replication,
                  "replicas per expert on average (spares go to hot experts); 0 = --replicas");
  flags.AddString("policy", &f.policy, "placement: greedy or round-robin");
  flags.AddInt("bytes-per-expert", &f.bytes_per_expert,
               "weight bytes of one expert (with registered memory limits); 0 = ignore memory");
  flags.AddInt("heartbeat-interval-ms", &f.heartbeat_interval_ms,
               "heartbeat period asked of instances");
  flags.AddInt("heartbeat-timeout-ms", &f.heartbeat_timeout_ms,
               "silence after which an instance is dead");
  flags.AddInt("load-window-s", &f.load_window_s, "sliding window of load reports, seconds");
  flags.AddString("log-level", &f.log_level, "trace, debug, info, warn, error");
  if (std::optional<int> exit = flags.ParseCommandLine(argc, argv)) return *exit;
  InitLogging("scheduler", f.log_level);
  if (!f.model.empty()) {
    absl::StatusOr<model::ModelConfig> mc = model::LoadModelConfig(f.model);
    if (!mc.ok()) return Fail(mc.status());
    if (!flags.WasSet("layers")) f.layers = mc->num_hidden_layers;
    if (!flags.WasSet("experts")) f.experts = mc->num_experts;
    for (int l = 0; l < mc->num_hidden_layers; ++l) {
      if (!mc->IsMoeLayer(l)) {
        MOE_LOG_WARN("layer {} is dense: its experts are placed but do not exist", l);
      }
    }
  }
  scheduler::SchedulerConfig config;
  config.layers = f.layers;
  config.experts = f.experts;
  config.replication.min_replicas = f.replicas;
  config.replication.replication = f.replication > 0 ? f.replication : f.replicas;
  config.bytes_per_expert = f.bytes_per_expert;
  config.min_expert_instances = f.min_experts;
  config.heartbeat_interval = absl::Milliseconds(f.heartbeat_interval_ms);
  config.heartbeat_timeout = absl::Milliseconds(f.heartbeat_timeout_ms);
  config.load_window = absl::Seconds(f.load_window_s);
  config.load_bucket = config.load_window / 12;
  if (f.policy == "greedy") {
    config.policy = scheduler::PlacementPolicy::kGreedy;
  } else if (f.policy == "round-robin") {
    config.policy = scheduler::PlacementPolicy::kRoundRobin;
  } else {
    std::fprintf(stderr, "moe scheduler: --policy must be greedy or round-robin\n");
    return 2;
  }
  absl::Status valid = scheduler::ValidateSchedulerConfig(config);
  if (!valid.ok() || f.port < 0 || !flags.positional().empty()) {
    std::fprintf(stderr, "moe scheduler: %s (need --layers and --experts or --model)\n\n%s",
                 valid.ok() ? "bad arguments" : std::string(valid.message()).c_str(),
                 flags.Usage().c_str());
    return 2;
  }
  MOE_LOG_INFO("config: {}", flags.Describe());

  // Block the stop signals before any thread starts, so only sigwait below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  SchedulerMetrics metrics = SchedulerMetrics::Create(MetricsRegistry());
  // The listener runs on the loop thread, which starts after `server` is set.
  scheduler::SchedulerServer* server_ptr = nullptr;
  scheduler::SchedulerCore core(config, [&server_ptr](auto plan) {
    server_ptr->PublishPlan(*plan);
  });
  scheduler::SchedulerServerOptions so;
  so.host = f.host;
  so.port = f.port;
  auto server = scheduler::SchedulerServer::Start(so, &core, Clock::Real());
  if (!server.ok()) return Fail(server.status());
  server_ptr = server->get();

  AdminServerOptions ao;
  ao.host = f.host;
  ao.port = f.admin_port;
  ao.ready = [&core] { return core.Current() != nullptr; };
  auto admin = AdminServer::Start(ao);
  if (!admin.ok()) return Fail(admin.status());

  scheduler::SchedulerLoop loop(
      &core, Clock::Real(), config.heartbeat_interval / 2,
      [&metrics](const scheduler::TickResult& r, const scheduler::SchedulerStats& s) {
        for (const std::string& id : r.dead) MOE_LOG_WARN("instance {} is dead", id);
        if (r.published != nullptr) {
          MOE_LOG_INFO("published plan epoch {} on {} expert instances", r.published->plan.epoch,
                       r.published->plan.instances);
        } else if (!r.placement_status.ok() && s.plans_published == 0) {
          MOE_LOG_DEBUG("no initial plan yet: {}", r.placement_status.ToString());
        } else if (!r.placement_status.ok() && !r.dead.empty()) {
          MOE_LOG_ERROR("no new plan: {}", r.placement_status.ToString());
        }
        metrics.Update(s);
      });

  std::printf("listening on %s:%d\n", f.host.c_str(), (*server)->port());
  std::printf("admin on %s:%d\n", f.host.c_str(), (*admin)->port());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  MOE_LOG_INFO("signal {}: shutting down", sig);
  loop.Stop();
  (*server)->Shutdown();
  (*admin)->Stop();
  MOE_LOG_INFO("stopped");
  return 0;
}

}  // namespace moe::tools
