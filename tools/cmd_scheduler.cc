// `moe scheduler`: the placement scheduler (DESIGN.md section 5). Instances register and
// heartbeat; it publishes versioned placement plans over WatchPlan, re-places the experts of a
// dead expert instance, and collects load reports. /metrics /health /ready on the admin port;
// graceful stop on SIGTERM / SIGINT.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "model/config.h"
#include "scheduler/core/scheduler_core.h"
#include "scheduler/core/scheduler_loop.h"
#include "scheduler/grpc/scheduler_server.h"
#include "scheduler/scaling/core_target.h"
#include "scheduler/scaling/kubernetes_provider.h"
#include "scheduler/scaling/local_process_provider.h"
#include "scheduler/scaling/scale_controller.h"
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
  bool rebalance = true;
  double rebalance_threshold = 0.8;
  double rebalance_min_improvement = 0.05;
  int rebalance_interval_s = 30;
  int64_t rebalance_min_tokens = 2000;
  int commit_timeout_ms = 60000;
  std::string rebalance_solver = "ilp";
  double solve_time_limit_s = 2.0;
  bool expert_token_metrics = false;
  std::string log_level = "info";
};

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "moe scheduler: %s\n", s.ToString().c_str());
  return 1;
}

// Scheduler metrics (DESIGN.md section 7), updated on the scheduling thread after each tick.
struct SchedulerMetrics {
  prometheus::Gauge* epoch;
  prometheus::Gauge* pending_epoch;
  prometheus::Gauge* expert_instances;
  prometheus::Gauge* attention_instances;
  prometheus::Counter* deaths;
  prometheus::Counter* failovers;
  prometheus::Counter* plans;
  prometheus::Counter* rebalances;
  prometheus::Counter* abandoned;
  prometheus::Histogram* rebalance_seconds;
  prometheus::Family<prometheus::Gauge>* balancedness;
  prometheus::Family<prometheus::Counter>* expert_tokens;  // null unless switched on
  std::vector<prometheus::Gauge*> layer_gauges;
  std::vector<prometheus::Counter*> token_counters;  // [layers * experts]
  prometheus::Gauge* solve_seconds = nullptr;
  prometheus::Counter* solves = nullptr;
  prometheus::Family<prometheus::Gauge>* objective = nullptr;

  static SchedulerMetrics Create(prometheus::Registry& r, bool expert_tokens) {
    auto gauge = [&r](const char* name, const char* help) {
      return &prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
    };
    auto counter = [&r](const char* name, const char* help) {
      return &prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
    };
    SchedulerMetrics m{
        gauge("moe_placement_epoch", "Epoch of the committed placement plan"),
        gauge("moe_placement_pending_epoch", "Epoch of the pending plan being loaded; 0 = none"),
        gauge("moe_expert_instances", "Live expert-service instances"),
        gauge("moe_attention_instances", "Live attention-worker instances"),
        counter("moe_instance_deaths_total", "Instances declared dead (missed heartbeats)"),
        counter("moe_failovers_total",
                "Plans published because an expert instance of the plan died"),
        counter("moe_placement_plans_total", "Placement plans published (pending and committed)"),
        counter("moe_rebalances_total", "Rebalance plans committed"),
        counter("moe_placement_abandoned_total", "Pending plans abandoned (not loaded in time)"),
        &prometheus::BuildHistogram()
             .Name("moe_rebalance_seconds")
             .Help("Time from publishing a rebalance plan as pending to committing it")
             .Register(r)
             .Add({}, prometheus::Histogram::BucketBoundaries{0.25, 0.5, 1, 2, 5, 10, 30, 60}),
        &prometheus::BuildGauge()
             .Name("moe_layer_balancedness")
             .Help("Mean / max expert-instance load per layer under the committed plan")
             .Register(r),
        expert_tokens ? &prometheus::BuildCounter()
                             .Name("moe_expert_tokens_total")
                             .Help("Tokens routed to each (layer, expert), from load reports")
                             .Register(r)
                      : nullptr,
        {},
        {}};
    m.solve_seconds = gauge("moe_placement_solve_seconds", "Duration of the newest rebalance solve");
    m.solves = counter("moe_placement_solves_total", "Rebalance solves run");
    m.objective = &prometheus::BuildGauge()
                       .Name("moe_placement_objective")
                       .Help("Objective parts of the newest rebalance solve's plan")
                       .Register(r);
    return m;
  }
  void Update(const scheduler::SchedulerStats& s) {
    epoch->Set(static_cast<double>(s.epoch));
    pending_epoch->Set(static_cast<double>(s.pending_epoch));
    expert_instances->Set(s.expert_instances);
    attention_instances->Set(s.attention_instances);
    // Counters only move forward: add the difference to what they show.
    deaths->Increment(static_cast<double>(s.instance_deaths) - deaths->Value());
    failovers->Increment(static_cast<double>(s.failovers) - failovers->Value());
    plans->Increment(static_cast<double>(s.plans_published) - plans->Value());
    abandoned->Increment(static_cast<double>(s.abandoned) - abandoned->Value());
    if (static_cast<double>(s.rebalances) > rebalances->Value()) {
      rebalances->Increment(static_cast<double>(s.rebalances) - rebalances->Value());
      rebalance_seconds->Observe(s.last_rebalance_seconds);
    }
    for (size_t l = layer_gauges.size(); l < s.balancedness.size(); ++l) {
      layer_gauges.push_back(&balancedness->Add({{"layer", std::to_string(l)}}));
    }
    for (size_t l = 0; l < s.balancedness.size(); ++l) layer_gauges[l]->Set(s.balancedness[l]);
    if (static_cast<double>(s.solves) > solves->Value()) {
      solves->Increment(static_cast<double>(s.solves) - solves->Value());
      solve_seconds->Set(s.last_solve_seconds);
      const scheduler::PlanObjective& o = s.last_objective;
      objective->Add({{"part", "cost"}}).Set(o.cost);
      objective->Add({{"part", "max_load"}}).Set(o.max_load);
      objective->Add({{"part", "min_balancedness"}}).Set(o.min_balancedness);
      objective->Add({{"part", "cross_per_token"}}).Set(o.cross_per_token);
      objective->Add({{"part", "bytes_moved"}}).Set(static_cast<double>(o.bytes_moved));
    }
    if (expert_tokens != nullptr && !s.expert_tokens.empty()) {
      if (token_counters.empty()) {
        for (int l = 0; l < s.layers; ++l) {
          for (int e = 0; e < s.experts; ++e) {
            token_counters.push_back(&expert_tokens->Add(
                {{"layer", std::to_string(l)}, {"expert", std::to_string(e)}}));
          }
        }
      }
      for (size_t g = 0; g < s.expert_tokens.size() && g < token_counters.size(); ++g) {
        const double delta = static_cast<double>(s.expert_tokens[g]) - token_counters[g]->Value();
        if (delta > 0) token_counters[g]->Increment(delta);
      }
    }
  }
};

// Elastic scaling of the expert pool (--elastic; scheduler/scaling/).
struct ElasticFlags {
  bool elastic = false;
  std::string provider = "local";
  int max_experts = 0;  // 0: = --min-experts
  int scale_interval_ms = 1000;
  int scale_up_cooldown_ms = 30000;
  int scale_down_cooldown_ms = 120000;
  double expert_capacity_tps = 2000;
  double scale_target = 0.6;
  double scale_high_water = 0.8;
  double scale_low_water = 0.3;
  int scale_step_up = 2;
  int scale_step_down = 1;
  int drain_timeout_ms = 60000;
  std::string expert_args;
  std::string expert_binary;
  std::string k8s_statefulset = "moe-expert";
  std::string k8s_namespace;
  std::string k8s_api_server;
  std::string k8s_token_file = std::string(scheduler::kServiceAccountDir) + "/token";
  std::string k8s_ca_file = std::string(scheduler::kServiceAccountDir) + "/ca.crt";
};

void AddElasticFlags(FlagSet* flags, ElasticFlags* e) {
  flags->AddBool("elastic", &e->elastic,
                 "scale the expert pool between --min-experts and --max-experts with the load");
  flags->AddString("provider", &e->provider,
                   "with --elastic: local (start `moe expert` children) or kubernetes (scale the "
                   "expert StatefulSet)");
  flags->AddInt("max-experts", &e->max_experts, "with --elastic: most expert instances");
  flags->AddInt("scale-interval-ms", &e->scale_interval_ms, "with --elastic: decision period");
  flags->AddInt("scale-up-cooldown-ms", &e->scale_up_cooldown_ms,
                "with --elastic: no growth sooner than this after a scale action");
  flags->AddInt("scale-down-cooldown-ms", &e->scale_down_cooldown_ms,
                "with --elastic: no shrink sooner than this after a scale action");
  flags->AddDouble("expert-capacity-tps", &e->expert_capacity_tps,
                   "with --elastic: expert-token rows/s one instance serves (a measured rate "
                   "above it wins)");
  flags->AddDouble("scale-target", &e->scale_target,
                   "with --elastic: utilisation a scale action aims at");
  flags->AddDouble("scale-high-water", &e->scale_high_water,
                   "with --elastic: grow above this utilisation");
  flags->AddDouble("scale-low-water", &e->scale_low_water,
                   "with --elastic: shrink below this utilisation");
  flags->AddInt("scale-step-up", &e->scale_step_up, "with --elastic: most instances added at once");
  flags->AddInt("scale-step-down", &e->scale_step_down,
                "with --elastic: most instances removed by one decision (drained one by one)");
  flags->AddInt("drain-timeout-ms", &e->drain_timeout_ms,
                "with --elastic: stop a draining instance after this even if not drained");
  flags->AddString("expert-args", &e->expert_args,
                   "with --provider local: extra `moe expert` arguments (space-separated)");
  flags->AddString("expert-binary", &e->expert_binary,
                   "with --provider local: the moe binary for the children (default: this one)");
  flags->AddString("k8s-statefulset", &e->k8s_statefulset,
                   "with --provider kubernetes: the expert StatefulSet");
  flags->AddString("k8s-namespace", &e->k8s_namespace,
                   "with --provider kubernetes: its namespace (default: the pod's)");
  flags->AddString("k8s-api-server", &e->k8s_api_server,
                   "with --provider kubernetes: https://host:port (default: "
                   "KUBERNETES_SERVICE_HOST/PORT)");
  flags->AddString("k8s-token-file", &e->k8s_token_file,
                   "with --provider kubernetes: service-account token");
  flags->AddString("k8s-ca-file", &e->k8s_ca_file,
                   "with --provider kubernetes: CA of the API server");
}

scheduler::ScaleControllerOptions ScaleOptions(const ElasticFlags& e, int min_experts,
                                               absl::Duration load_window) {
  scheduler::ScaleControllerOptions o;
  o.params.min_instances = min_experts;
  o.params.max_instances = e.max_experts > 0 ? e.max_experts : min_experts;
  o.params.instance_capacity_tps = e.expert_capacity_tps;
  o.params.target_utilisation = e.scale_target;
  o.params.high_water = e.scale_high_water;
  o.params.low_water = e.scale_low_water;
  o.params.up_cooldown = absl::Milliseconds(e.scale_up_cooldown_ms);
  o.params.down_cooldown = absl::Milliseconds(e.scale_down_cooldown_ms);
  o.params.max_step_up = e.scale_step_up;
  o.params.max_step_down = e.scale_step_down;
  o.interval = absl::Milliseconds(e.scale_interval_ms);
  o.load_window = load_window;
  o.drain_timeout = absl::Milliseconds(e.drain_timeout_ms);
  return o;
}

// The running elastic scaler: provider, controller on "sched-scale", its metrics.
class Elastic {
 public:
  static absl::StatusOr<std::unique_ptr<Elastic>> Start(
      const ElasticFlags& e, scheduler::ScaleControllerOptions options,
      scheduler::SchedulerCore* core, const std::string& model, const std::string& host,
      int port, const std::string& log_level) {
    auto el = std::unique_ptr<Elastic>(new Elastic(core));
    if (e.provider == "local") {
      scheduler::LocalProcessProviderOptions lo;
      lo.binary = e.expert_binary;
      lo.model = model;
      // Children reach the scheduler on loopback when it listens on every address.
      lo.host = host == "0.0.0.0" || host == "::" ? "127.0.0.1" : host;
      lo.scheduler = absl::StrCat(lo.host, ":", port);
      lo.extra_args = {"--log-level", log_level};
      for (absl::string_view a : absl::StrSplit(e.expert_args, ' ', absl::SkipEmpty())) {
        lo.extra_args.emplace_back(a);
      }
      lo.stop_grace = absl::Seconds(5);  // within moe up's 10 s for the scheduler itself
      el->local_ = new scheduler::LocalProcessProvider(lo);
      el->provider_.reset(el->local_);
    } else {
      scheduler::KubernetesProviderOptions ko;
      ko.statefulset = e.k8s_statefulset;
      ko.namespace_name = e.k8s_namespace;
      ko.api_server = e.k8s_api_server;
      ko.token_file = e.k8s_token_file;
      ko.ca_file = e.k8s_ca_file;
      auto k = scheduler::KubernetesProvider::Create(ko);
      if (!k.ok()) return k.status();
      el->provider_ = std::move(*k);
    }
    MOE_LOG_INFO("elastic scaling: {} to {} expert instances through {}",
                 options.params.min_instances, options.params.max_instances,
                 el->provider_->Describe());
    prometheus::Registry& r = MetricsRegistry();
    auto& events = prometheus::BuildCounter()
                       .Name("moe_scale_events_total")
                       .Help("Elastic scaling actions: up = instances asked for, down = an "
                             "instance drained and removed")
                       .Register(r);
    Elastic* raw = el.get();
    raw->ups_ = &events.Add({{"direction", "up"}});
    raw->downs_ = &events.Add({{"direction", "down"}});
    raw->desired_ = &prometheus::BuildGauge()
                         .Name("moe_desired_expert_instances")
                         .Help("Expert instances the elastic scaler wants")
                         .Register(r)
                         .Add({});
    raw->controller_ = std::make_unique<scheduler::ScaleController>(
        &raw->target_, raw->provider_.get(), Clock::Real(), std::move(options),
        [raw](const scheduler::ScaleStatus& s) {
          raw->desired_->Set(s.decision.desired);
          raw->ups_->Increment(static_cast<double>(s.scale_ups) - raw->ups_->Value());
          raw->downs_->Increment(static_cast<double>(s.scale_downs) - raw->downs_->Value());
        });
    raw->controller_->Start();
    return el;
  }
  // Stops deciding; local children are stopped (in parallel, bounded), a Kubernetes pool stays.
  void Stop() {
    controller_->Stop();
    if (local_ != nullptr) local_->StopAll(absl::Seconds(5));
  }

 private:
  explicit Elastic(scheduler::SchedulerCore* core) : target_(core) {}
  scheduler::SchedulerCoreTarget target_;
  std::unique_ptr<scheduler::InstanceProvider> provider_;
  scheduler::LocalProcessProvider* local_ = nullptr;  // provider_, when local
  std::unique_ptr<scheduler::ScaleController> controller_;
  prometheus::Counter* ups_ = nullptr;
  prometheus::Counter* downs_ = nullptr;
  prometheus::Gauge* desired_ = nullptr;
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
  flags.AddString("policy", &f.policy,
                  "placement: greedy, round-robin or layer-blocks (whole layers per instance, "
                  "for instances sharing one host's cores; needs --no-rebalance)");
  flags.AddInt("bytes-per-expert", &f.bytes_per_expert,
               "weight bytes of one expert (with registered memory limits); 0 = ignore memory");
  flags.AddInt("heartbeat-interval-ms", &f.heartbeat_interval_ms,
               "heartbeat period asked of instances");
  flags.AddInt("heartbeat-timeout-ms", &f.heartbeat_timeout_ms,
               "silence after which an instance is dead");
  flags.AddInt("load-window-s", &f.load_window_s, "sliding window of load reports, seconds");
  flags.AddBool("rebalance", &f.rebalance, "rebalance when a layer's balance falls under the threshold");
  flags.AddDouble("rebalance-threshold", &f.rebalance_threshold,
                  "rebalance when some layer's mean/max instance load is below this (0, 1]");
  flags.AddDouble("rebalance-min-improvement", &f.rebalance_min_improvement,
                  "publish a rebalance only if the worst layer improves by this much");
  flags.AddInt("rebalance-interval-s", &f.rebalance_interval_s,
               "minimum seconds between plans before a rebalance");
  flags.AddInt("rebalance-min-tokens", &f.rebalance_min_tokens,
               "tokens the load window must hold before balance is judged");
  flags.AddInt("commit-timeout-ms", &f.commit_timeout_ms,
               "a pending plan not loaded by every expert instance in this long is abandoned");
  flags.AddString("rebalance-solver", &f.rebalance_solver,
                  "solver of rebalance plans: ilp (CBC), glpk or greedy");
  flags.AddDouble("solve-time-limit-s", &f.solve_time_limit_s,
                  "time limit of one rebalance solve, seconds");
  flags.AddBool("expert-token-metrics", &f.expert_token_metrics,
                "export moe_expert_tokens_total{layer,expert} (layers x experts series)");
  ElasticFlags elastic_flags;
  AddElasticFlags(&flags, &elastic_flags);
  flags.AddString("log-level", &f.log_level, "trace, debug, info, warn, error");
  if (std::optional<int> exit = flags.ParseCommandLine(argc, argv)) return *exit;
  InitLogging("scheduler", f.log_level);
  int top_k = 1;
  if (!f.model.empty()) {
    absl::StatusOr<model::ModelConfig> mc = model::LoadModelConfig(f.model);
    if (!mc.ok()) return Fail(mc.status());
    if (!flags.WasSet("layers")) f.layers = mc->num_hidden_layers;
    if (!flags.WasSet("experts")) f.experts = mc->num_experts;
    top_k = std::max(1, mc->num_experts_per_tok);
    for (int l = 0; l < mc->num_hidden_layers; ++l) {
      if (!mc->IsMoeLayer(l)) {
        MOE_LOG_WARN("layer {} is dense: its experts are placed but do not exist", l);
      }
    }
  }
  scheduler::SchedulerConfig config;
  config.top_k = top_k;
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
  config.rebalance.enabled = f.rebalance;
  config.rebalance.threshold = f.rebalance_threshold;
  config.rebalance.min_improvement = f.rebalance_min_improvement;
  config.rebalance.min_interval = absl::Seconds(f.rebalance_interval_s);
  config.rebalance.min_tokens = f.rebalance_min_tokens;
  config.rebalance.commit_timeout = absl::Milliseconds(f.commit_timeout_ms);
  config.solve_time_limit_s = f.solve_time_limit_s;
  if (absl::StatusOr<scheduler::SolverKind> kind = scheduler::ParseSolverKind(f.rebalance_solver);
      kind.ok()) {
    config.rebalance_solver = *kind;
  } else {
    std::fprintf(stderr, "moe scheduler: --rebalance-solver: %s\n",
                 std::string(kind.status().message()).c_str());
    return 2;
  }
  if (f.policy == "greedy") {
    config.policy = scheduler::PlacementPolicy::kGreedy;
  } else if (f.policy == "round-robin") {
    config.policy = scheduler::PlacementPolicy::kRoundRobin;
  } else if (f.policy == "layer-blocks") {
    config.policy = scheduler::PlacementPolicy::kLayerBlocks;
  } else {
    std::fprintf(stderr, "moe scheduler: --policy must be greedy, round-robin or layer-blocks\n");
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
  const scheduler::ScaleControllerOptions scale_options =
      ScaleOptions(elastic_flags, f.min_experts, config.load_window);
  if (elastic_flags.elastic) {
    absl::Status s = scheduler::ValidateScaleControllerOptions(scale_options);
    if (s.ok() && elastic_flags.provider != "local" && elastic_flags.provider != "kubernetes") {
      s = absl::InvalidArgumentError("--provider must be local or kubernetes");
    }
    if (s.ok() && elastic_flags.provider == "local" && f.model.empty()) {
      s = absl::InvalidArgumentError("--provider local needs --model (the children serve it)");
    }
    if (!s.ok()) {
      std::fprintf(stderr, "moe scheduler: --elastic: %s\n", std::string(s.message()).c_str());
      return 2;
    }
  }

  // Block the stop signals before any thread starts, so only sigwait below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  SchedulerMetrics metrics = SchedulerMetrics::Create(MetricsRegistry(), f.expert_token_metrics);
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
        if (!r.note.empty()) MOE_LOG_INFO("{}", r.note);
        if (r.published != nullptr) {
          MOE_LOG_INFO("published plan epoch {} ({}) on {} expert instances",
                       r.published->plan.epoch, r.published->pending ? "pending" : "committed",
                       r.published->plan.instances);
        } else if (!r.placement_status.ok() && s.plans_published == 0) {
          MOE_LOG_DEBUG("no initial plan yet: {}", r.placement_status.ToString());
        } else if (!r.placement_status.ok() && !r.dead.empty()) {
          MOE_LOG_ERROR("no new plan: {}", r.placement_status.ToString());
        }
        metrics.Update(s);
      });

  std::unique_ptr<Elastic> elastic;
  if (elastic_flags.elastic) {
    auto started = Elastic::Start(elastic_flags, scale_options, &core, f.model, f.host,
                                  (*server)->port(), f.log_level);
    if (!started.ok()) {
      loop.Stop();
      (*server)->Shutdown();
      (*admin)->Stop();
      return Fail(started.status());
    }
    elastic = std::move(*started);
  }
  std::printf("listening on %s:%d\n", f.host.c_str(), (*server)->port());
  std::printf("admin on %s:%d\n", f.host.c_str(), (*admin)->port());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  MOE_LOG_INFO("signal {}: shutting down", sig);
  if (elastic != nullptr) elastic->Stop();  // local children stop first
  loop.Stop();
  (*server)->Shutdown();
  (*admin)->Stop();
  MOE_LOG_INFO("stopped");
  return 0;
}

}  // namespace moe::tools
