// `moe attention`: an attention worker. Loads the dense weights, runs the continuous-batching
// loop on its own thread, and serves AttentionService.Generate over gRPC. Experts run in this
// process (`--experts local`) or in expert services reached over gRPC (`--experts remote
// --expert-addrs A,B,... --replicas R`, placed round-robin: instance i must serve
// StaticPlacement::ExpertList(i)); stops on SIGTERM/SIGINT. With `--scheduler ADDR` it
// registers with `moe scheduler`, routes with its newest committed placement plan (the
// --expert-addrs table, if given, until the first plan), waits up to --placement-wait-ms for a
// newer plan when an expert has no live replica, and reports routed load every second.
//
// Shutdown (Kubernetes sends SIGTERM, then SIGKILL after the grace period):
//   SIGTERM  drain: /ready answers 503 and gRPC health NOT_SERVING, new Generate calls get
//            UNAVAILABLE, every accepted call runs to its last token (bounded by
//            --drain-timeout-s), then the server stops and the scheduler registration ends;
//   SIGINT   (or a second signal during a drain) stop now: live calls end with UNAVAILABLE.
// Exit codes: 0 stopped and no accepted request was cut short; 3 stopped with requests aborted
// (SIGINT with calls in flight, or the drain timed out); 2 bad flags; 1 failed to start.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "attention_service/control/placement_follower.h"
#include "attention_service/dispatch/grpc_transport.h"
#include "attention_service/dispatch/placement.h"
#include "attention_service/dispatch/remote_expert_executor.h"
#include "attention_service/dispatch/shm_transport.h"
#include "attention_service/engine/engine_loop.h"
#include "attention_service/engine/local_model.h"
#include "attention_service/grpc/attention_server.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/process.h"
#include "common/status.h"
#include "tools/commands.h"

namespace moe::tools {
namespace {

struct AttentionConfig {
  std::string model;
  std::string host = "127.0.0.1";
  int port = 50051;
  int admin_port = 0;
  std::string experts = "local";
  std::string expert_addrs;
  std::string scheduler;
  int64_t placement_wait_ms = 10000;
  std::string transport = "grpc";
  int replicas = 1;
  int64_t dispatch_timeout_ms = 10000;
  bool pack_replicas = false;  // ReplicaChoiceParams::pack
  std::string backend = "cpu";
  int64_t kv_cache_mb = 512;
  int max_batch_tokens = 512;
  int max_running = 64;
  int micro_batches = 1;
  int micro_batch_min_tokens = 1;
  int threads = 0;
  int64_t drain_timeout_s = 30;
  std::string log_level = "info";
};

constexpr int kExitAborted = 3;  // stopped, but some accepted requests were cut short

// The dense part of the model plus the remote data plane to the expert services.
struct RemoteParts {
  model::ModelConfig config;
  std::unique_ptr<model::ModelArchitecture> arch;
  std::unique_ptr<attention::ModelRunner> runner;
  attention::PlacementHolder placement;  // static table and/or the scheduler's plans
  std::unique_ptr<attention::RoutingLoadRecorder> load;
  absl::Duration placement_wait = absl::ZeroDuration();
  std::unique_ptr<attention::ExpertTransport> transport;
  std::string transport_kind = "grpc";  // --transport: grpc or shm
  int max_batch_tokens = 512;           // sizes the shm slots
  bool pack_replicas = false;           // --pack-replicas
  std::unique_ptr<attention::RemoteExpertExecutor> executor;

  absl::Status Open(const std::string& dir, const std::vector<std::string>& addrs, int replicas,
                    absl::Duration timeout) {
    MOE_ASSIGN_OR_RETURN(config, model::LoadModelConfig(dir));
    MOE_ASSIGN_OR_RETURN(arch, model::CreateArchitecture(config));
    MOE_ASSIGN_OR_RETURN(std::unique_ptr<model::WeightStore> dense,
                         model::WeightStore::Open(dir, attention::ModelRunner::IsDenseTensor));
    MOE_ASSIGN_OR_RETURN(runner, attention::ModelRunner::Load(config, *arch, *dense));
    if (!addrs.empty()) {
      MOE_ASSIGN_OR_RETURN(attention::StaticPlacement p,
                           attention::StaticPlacement::RoundRobin(
                               config, static_cast<int>(addrs.size()), replicas));
      MOE_ASSIGN_OR_RETURN(auto snapshot, attention::PlacementSnapshot::FromStatic(p, addrs));
      placement.Set(std::move(snapshot));
    }
    load = std::make_unique<attention::RoutingLoadRecorder>(config.num_hidden_layers,
                                                            config.num_experts);
    if (transport_kind == "shm") {
      // A slot holds the largest layer request (every token of a full step routed to one
      // instance: F32 activations, weight and row per routed token), so no call falls back.
      attention::ShmTransportOptions so;
      const uint64_t routed = static_cast<uint64_t>(max_batch_tokens) *
                              static_cast<uint64_t>(std::max(1, config.num_experts_per_tok));
      so.slot_bytes = std::min<uint64_t>(
          routed * (static_cast<uint64_t>(config.hidden_size) * 4 + 16) +
              64 * static_cast<uint64_t>(config.num_experts) + 4096,
          uint64_t{256} << 20);
      so.slots = 4;  // two micro-batches in flight, plus slack for abandoned slots
      transport = std::make_unique<attention::ShmExpertTransport>(so);
    } else {
      transport = std::make_unique<attention::GrpcExpertTransport>();
    }
    attention::RemoteExecutorOptions ro;
    ro.timeout = timeout;
    ro.placement_wait = placement_wait;
    ro.load = load.get();
    ro.replica_choice.pack = pack_replicas;
    executor = std::make_unique<attention::RemoteExpertExecutor>(&placement, transport.get(), ro);
    return absl::OkStatus();
  }
};

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "moe attention: %s\n", s.ToString().c_str());
  return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

int RunAttention(int argc, const char* const* argv) {
  AttentionConfig c;
  FlagSet flags("moe attention",
                "Serve an attention worker: dense layers, KV cache, batching loop, sampling.");
  flags.AddString("model", &c.model, "model folder");
  flags.AddString("host", &c.host, "address to listen on");
  flags.AddInt("port", &c.port, "gRPC port (0 = any free port)");
  flags.AddInt("admin-port", &c.admin_port, "HTTP admin port for /metrics /health /ready");
  flags.AddString("experts", &c.experts, "where routed experts run: local or remote");
  flags.AddString("expert-addrs", &c.expert_addrs,
                  "remote: expert service addresses host:port,... (placement instance order)");
  flags.AddString("transport", &c.transport,
                  "remote: data plane to the expert services: grpc, or shm (shared memory with "
                  "same-host services, gRPC for the others)");
  flags.AddString("scheduler", &c.scheduler,
                  "remote: scheduler host:port: route with its placement plans, report load");
  flags.AddInt("placement-wait-ms", &c.placement_wait_ms,
               "remote + scheduler: wait this long for a new plan when an expert has no live "
               "replica");
  flags.AddInt("replicas", &c.replicas, "remote: replicas per expert (round-robin placement)");
  flags.AddInt("dispatch-timeout-ms", &c.dispatch_timeout_ms, "remote: deadline per layer dispatch");
  flags.AddBool("pack-replicas", &c.pack_replicas,
                "remote: send a layer's shards whole to as few expert services as their replicas "
                "allow (expert services sharing this host's cores; moe up sets it)");
  flags.AddString("backend", &c.backend, "expert backend for --experts local");
  flags.AddInt("kv-cache-mb", &c.kv_cache_mb, "KV cache size in MiB");
  flags.AddInt("max-batch-tokens", &c.max_batch_tokens, "token budget per engine step");
  flags.AddInt("max-running", &c.max_running, "sequences in the running batch");
  flags.AddInt("micro-batches", &c.micro_batches,
               "micro-batches per step (>= 1); 2 overlaps attention with remote experts");
  flags.AddInt("micro-batch-min-tokens", &c.micro_batch_min_tokens,
               "split a step only into micro-batches of about this many tokens or more");
  flags.AddInt("threads", &c.threads, "compute threads (0 = all cores)");
  flags.AddInt("drain-timeout-s", &c.drain_timeout_s,
               "on SIGTERM: let accepted requests finish for at most this long (keep it under "
               "Kubernetes' terminationGracePeriodSeconds)");
  flags.AddString("log-level", &c.log_level, "trace, debug, info, warn, error");
  if (std::optional<int> exit = flags.ParseCommandLine(argc, argv)) return *exit;
  if (c.drain_timeout_s < 0) {
    std::fprintf(stderr, "moe attention: --drain-timeout-s must be >= 0\n");
    return 2;
  }
  const bool remote = c.experts == "remote";
  if (c.model.empty() || (c.experts != "local" && !remote) || (remote && c.expert_addrs.empty() && c.scheduler.empty())) {
    std::fprintf(stderr,
                 "moe attention: need --model, and --experts local or --experts remote with "
                 "--expert-addrs and/or --scheduler\n\n%s",
                 flags.Usage().c_str());
    return 2;
  }
  if (c.transport != "grpc" && c.transport != "shm") {
    std::fprintf(stderr, "moe attention: --transport must be grpc or shm\n");
    return 2;
  }
  InitLogging("attention", c.log_level);
  MOE_LOG_INFO("config: {}", flags.Describe());
  if (c.threads > 0) {
    setenv("MOE_KERNEL_THREADS", std::to_string(c.threads).c_str(), 1);
    setenv("OMP_NUM_THREADS", std::to_string(c.threads).c_str(), 1);
  }
  StopSignals stop_signals;

  attention::EngineOptions eo;
  eo.kv_cache_bytes = c.kv_cache_mb << 20;
  eo.max_batch_tokens = c.max_batch_tokens;
  eo.max_running = c.max_running;
  eo.micro_batches = c.micro_batches;
  eo.micro_batch_min_tokens = c.micro_batch_min_tokens;
  // Local: the whole model here. Remote: dense weights only, experts over the data plane.
  std::unique_ptr<attention::LocalModel> local;
  RemoteParts parts;
  absl::StatusOr<std::unique_ptr<attention::Engine>> engine;
  if (remote) {
    std::vector<std::string> addrs = absl::StrSplit(c.expert_addrs, ',', absl::SkipWhitespace());
    parts.transport_kind = c.transport;
    if (!c.scheduler.empty()) parts.placement_wait = absl::Milliseconds(c.placement_wait_ms);
    parts.max_batch_tokens = c.max_batch_tokens;
    parts.pack_replicas = c.pack_replicas;
    if (absl::Status s = parts.Open(c.model, addrs, c.replicas,
                                    absl::Milliseconds(c.dispatch_timeout_ms));
        !s.ok()) {
      return Fail(s);
    }
    engine = attention::Engine::Create(eo, parts.runner.get(), parts.executor.get());
  } else {
    attention::LocalModelOptions lo;
    lo.backend = c.backend;
    auto model = attention::LocalModel::Open(c.model, lo);
    if (!model.ok()) return Fail(model.status());
    local = std::move(*model);
    engine = local->NewEngine(eo);
  }
  if (!engine.ok()) return Fail(engine.status());
  attention::EngineLoop loop(std::move(*engine));

  std::atomic<bool> draining{false};
  AdminServerOptions ao;
  ao.host = c.host;
  ao.port = c.admin_port;
  // Ready: the weights are loaded (before this point), remote experts have a placement (the
  // static table or a scheduler plan) to route with, and no drain has begun.
  ao.ready = [&draining, remote, &parts] {
    return !draining.load() && (!remote || parts.placement.Get() != nullptr);
  };
  auto admin = AdminServer::Start(ao);
  if (!admin.ok()) return Fail(admin.status());
  attention::AttentionServerOptions so;
  so.host = c.host;
  so.port = c.port;
  auto server = attention::AttentionServer::Start(so, &loop);
  if (!server.ok()) return Fail(server.status());
  std::unique_ptr<attention::PlacementFollower> follower;
  if (remote && !c.scheduler.empty()) {
    attention::PlacementFollowerOptions po;
    po.scheduler = c.scheduler;
    po.address = absl::StrCat(c.host, ":", (*server)->port());
    po.register_in_background = !c.expert_addrs.empty();  // routes statically meanwhile
    auto f = attention::PlacementFollower::Start(po, parts.config, &parts.placement,
                                                 parts.load.get());
    if (!f.ok()) {
      loop.Stop();
      (*server)->Shutdown();
      (*admin)->Stop();
      return Fail(f.status());
    }
    follower = std::move(*f);
  }
  std::printf("listening on %s:%d\n", c.host.c_str(), (*server)->port());
  std::printf("admin on %s:%d\n", c.host.c_str(), (*admin)->port());
  std::fflush(stdout);

  const int sig = stop_signals.Wait();
  loop.StopAdmitting();  // before readiness turns: whoever sees 503 is refused from then on
  draining = true;       // /ready 503: Kubernetes takes the pod out of its Services
  (*server)->SetServing(false);
  bool drained = true;
  if (sig == SIGTERM) {
    MOE_LOG_INFO("SIGTERM: draining {} live requests (at most {} s)", loop.live(),
                 c.drain_timeout_s);
    // A second stop signal during the drain stops at once. The watcher outlives this scope
    // (it blocks on the signal pipe), so it reaches the loop only through `hard_stop`.
    struct HardStop {
      absl::Mutex mu;
      attention::EngineLoop* loop ABSL_GUARDED_BY(mu) = nullptr;
    };
    auto hard_stop = std::make_shared<HardStop>();
    {
      absl::MutexLock lock(&hard_stop->mu);
      hard_stop->loop = &loop;
    }
    std::thread([hard_stop, &stop_signals] {
      const int again = stop_signals.Wait();
      absl::MutexLock lock(&hard_stop->mu);
      if (hard_stop->loop == nullptr) return;
      MOE_LOG_WARN("signal {} during the drain: stopping now", again);
      hard_stop->loop->Stop();
    }).detach();
    drained = loop.Drain(absl::Seconds(c.drain_timeout_s));
    absl::MutexLock lock(&hard_stop->mu);
    hard_stop->loop = nullptr;
  } else {
    MOE_LOG_INFO("signal {}: stopping now ({} live requests end with UNAVAILABLE)", sig,
                 loop.live());
  }
  loop.Stop();  // aborts whatever is still live (UNAVAILABLE) so the calls can finish
  (*server)->Shutdown();  // the last messages are written, then the listener closes
  if (follower != nullptr) follower->Stop();  // routes with the plans until here
  (*admin)->Stop();
  const int aborted = loop.aborted();
  if (!drained || aborted > 0) {
    MOE_LOG_WARN("stopped; {} requests aborted", aborted);
    return kExitAborted;
  }
  MOE_LOG_INFO("stopped; every accepted request finished");
  return 0;
}

}  // namespace moe::tools
