// `moe expert`: an expert service (DESIGN.md section 2). Loads its assigned (layer, expert)
// weights, serves ExpertService over gRPC, /metrics /health /ready on the admin port, and
// stops gracefully on SIGTERM / SIGINT.
#include <pthread.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

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
#include "expert_service/executor/model_experts.h"
#include "expert_service/executor/shard_executor.h"
#include "expert_service/grpc/expert_server.h"
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
  std::string instance_id;
  std::string log_level = "info";
};

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
                  "the placement `moe attention --experts remote` uses)");
  flags.AddString("backend", &c.backend, "expert backend: cpu or cuda");
  flags.AddInt("threads", &c.threads, "compute threads; 0 = default");
  flags.AddInt("max-queue", &c.max_queue, "Forward calls waiting before RESOURCE_EXHAUSTED");
  flags.AddInt("max-tokens", &c.max_tokens, "tokens per Forward call (all shards)");
  flags.AddInt("max-message-mb", &c.max_message_mb, "gRPC message size limit, MiB");
  flags.AddString("scheduler", &c.scheduler, "scheduler address (not used yet: ignored)");
  flags.AddString("instance-id", &c.instance_id, "name reported by Describe; default host:port");
  flags.AddString("log-level", &c.log_level, "trace, debug, info, warn, error");
  if (std::optional<int> exit = flags.ParseCommandLine(argc, argv)) return *exit;
  InitLogging("expert", c.log_level);
  if (c.model.empty() || !flags.positional().empty() || c.port < 0 || c.max_queue < 1 ||
      c.max_tokens < 1 || c.max_message_mb < 1 || c.threads < 0) {
    std::fprintf(stderr, "moe expert: need --model; ports >= 0, limits >= 1\n\n%s",
                 flags.Usage().c_str());
    return 2;
  }
  MOE_LOG_INFO("config: {}", flags.Describe());
  if (!c.scheduler.empty()) {
    MOE_LOG_WARN("--scheduler {} ignored: the scheduler does not exist yet; serving the "
                 "--experts set as a fixed placement (epoch 0)",
                 c.scheduler);
  }
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
  auto list = expert::ParseExpertList(c.experts, (*source)->config());
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
  ao.ready = [&executor] { return !executor.Loaded().empty(); };
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
  (*server)->SetServing(true);
  MOE_LOG_INFO("admin on {}:{}", c.host, (*admin)->port());
  std::printf("listening on %s:%d\n", c.host.c_str(), (*server)->port());
  std::printf("admin on %s:%d\n", c.host.c_str(), (*admin)->port());
  std::fflush(stdout);

  int sig = stop_signals.Wait();
  MOE_LOG_INFO("signal {}: shutting down", sig);
  (*server)->Shutdown();
  (*admin)->Stop();
  MOE_LOG_INFO("stopped");
  return 0;
}

}  // namespace moe::tools
