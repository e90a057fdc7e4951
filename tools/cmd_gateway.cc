// `moe gateway`: the OpenAI-compatible HTTP front door. Tokenizes with the model folder's
// tokenizer (chat: after its chat template), admits each request into a bounded per-worker
// queue (429 when all are full), sends it to the attention worker with the fewest outstanding
// tokens (gRPC callback API, no thread per request) and answers in OpenAI's JSON or as
// Server-Sent Events; serves /tokenize, /detokenize, /health, /ready, /metrics on the same
// port. SIGTERM drains (/ready and new API requests 503, requests in progress finish, at most
// --drain-timeout-s; exit 0, or 3 if some were cut off); SIGINT or a second signal stops now.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpc/grpc.h>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/process.h"
#include "gateway/api_handler.h"
#include "gateway/http/http_server.h"
#include "gateway/routing/worker_pool.h"
#include "tools/commands.h"

namespace moe::tools {
namespace {

struct GatewayConfig {
  std::string model;
  std::string attention;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;
  int64_t max_body_bytes = 1 << 20;
  int http_threads = 2;
  int64_t request_timeout_s = 600;
  int max_running = 64;
  int max_queue = 64;
  int64_t http_read_timeout_s = 30;
  int64_t http_write_timeout_s = 60;
  std::string served_model_name;
  int drain_timeout_s = 30;
  std::string log_level = "info";
};

}  // namespace

int RunGateway(int argc, const char* const* argv) {
  GatewayConfig c;
  FlagSet flags("moe gateway",
                "Serve the OpenAI-compatible HTTP API in front of attention workers.");
  flags.AddString("model", &c.model, "model folder (tokenizer, configs; its name is the model id)");
  flags.AddString("attention", &c.attention, "attention worker addresses host:port,...");
  flags.AddString("host", &c.host, "address to listen on");
  flags.AddInt("port", &c.port, "HTTP port (0 = any free port)");
  flags.AddString("api-key", &c.api_key, "require 'Authorization: Bearer KEY' on /v1/*");
  flags.AddInt("max-body-bytes", &c.max_body_bytes, "largest request body (413 above)");
  flags.AddInt("http-threads", &c.http_threads, "HTTP event-loop threads");
  flags.AddInt("request-timeout-s", &c.request_timeout_s,
               "deadline of one request (queued and generating)");
  flags.AddInt("max-running-per-worker", &c.max_running,
               "Generate calls in flight per attention worker");
  flags.AddInt("max-queue-per-worker", &c.max_queue,
               "calls waiting at the gateway per attention worker (429 when all are full)");
  flags.AddInt("http-read-timeout-s", &c.http_read_timeout_s,
               "reading one request, and idle keep-alive connections");
  flags.AddInt("http-write-timeout-s", &c.http_write_timeout_s,
               "writing one response or streamed chunk (slow readers are dropped)");
  flags.AddString("served-model-name", &c.served_model_name, "model id (default: folder name)");
  flags.AddInt("drain-timeout-s", &c.drain_timeout_s,
               "on SIGTERM, how long requests being answered may take to finish");
  flags.AddString("log-level", &c.log_level, "trace, debug, info, warn, error");
  if (std::optional<int> exit = flags.ParseCommandLine(argc, argv)) return *exit;
  std::vector<std::string> addrs = absl::StrSplit(c.attention, ',', absl::SkipWhitespace());
  if (c.model.empty() || addrs.empty() || c.max_body_bytes <= 0 || c.http_threads <= 0 ||
      c.request_timeout_s <= 0 || c.max_running <= 0 || c.max_queue < 0 ||
      c.http_read_timeout_s <= 0 || c.http_write_timeout_s <= 0) {
    std::fprintf(stderr, "moe gateway: need --model and --attention HOST:PORT[,...]\n\n%s",
                 flags.Usage().c_str());
    return 2;
  }
  InitLogging("gateway", c.log_level);
  MOE_LOG_INFO("config: {}", flags.Describe());
  StopSignals stop_signals;
  // gRPC's runtime is held for the whole run and shut down at the end on this thread: when the
  // last channel went away on a gRPC callback thread instead, gRPC shut itself down on a
  // detached thread that raced the process exit ("assertion failed: prior > 0", SIGABRT).
  grpc_init();
  struct GrpcShutdown {
    ~GrpcShutdown() { grpc_shutdown_blocking(); }
  } grpc_shutdown_at_exit;

  gateway::WorkerPoolOptions po;
  po.max_running = c.max_running;
  po.max_queue = c.max_queue;
  auto pool = std::make_unique<gateway::WorkerPool>(addrs, po);
  gateway::ApiOptions ao;
  ao.model_dir = c.model;
  ao.model_id = c.served_model_name;
  ao.api_key = c.api_key;
  ao.request_timeout = absl::Seconds(c.request_timeout_s);
  auto api = gateway::ApiHandler::Create(ao, pool.get());
  if (!api.ok()) {
    std::fprintf(stderr, "moe gateway: %s\n", api.status().ToString().c_str());
    return 1;
  }
  gateway::ApiHandler* handler = api->get();
  gateway::HttpServerOptions so;
  so.host = c.host;
  so.port = c.port;
  so.threads = c.http_threads;
  so.max_body_bytes = static_cast<size_t>(c.max_body_bytes);
  so.read_timeout = std::chrono::seconds(c.http_read_timeout_s);
  so.write_timeout = std::chrono::seconds(c.http_write_timeout_s);
  auto server = gateway::HttpServer::Start(
      so,
      [handler](const gateway::HttpRequest& r, gateway::ResponseStream& s) {
        return handler->Handle(r, s);
      },
      [handler](int status, const std::string& message) {
        return handler->ServerError(status, message);
      });
  if (!server.ok()) {
    std::fprintf(stderr, "moe gateway: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::printf("listening on %s:%d\n", c.host.c_str(), (*server)->port());
  std::fflush(stdout);
  MOE_LOG_INFO("serving model {} on {}:{}", handler->model_id(), c.host, (*server)->port());

  const int sig = stop_signals.Wait();
  bool drained = true;
  if (sig == SIGTERM) {
    // Drain: /ready 503 (the pod leaves its Service), new API requests 503, requests being
    // answered (streams included) finish, at most --drain-timeout-s; a second signal stops now.
    handler->StartDraining();
    MOE_LOG_INFO("SIGTERM: draining {} requests (at most {} s)", handler->active_requests(),
                 c.drain_timeout_s);
    auto again = std::make_shared<std::atomic<bool>>(false);
    std::thread([again, &stop_signals] {
      stop_signals.Wait();
      *again = true;
    }).detach();
    const absl::Time deadline = absl::Now() + absl::Seconds(c.drain_timeout_s);
    while (handler->active_requests() > 0 && !*again && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    drained = handler->active_requests() == 0;
    if (!drained) MOE_LOG_WARN("stopping with {} requests live", handler->active_requests());
  } else {
    MOE_LOG_INFO("signal {}: stopping now", sig);
  }
  (*server)->Stop();  // no handler runs after this
  pool.reset();  // cancels and waits for live calls (their completions post to the stopped loop)
  server->reset();
  MOE_LOG_INFO("stopped");
  return drained ? 0 : 3;  // 3: requests were cut off (as moe attention)
}

}  // namespace moe::tools
