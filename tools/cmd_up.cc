// `moe up`: the whole system on one machine. Starts the scheduler, N expert services, M
// attention workers and a gateway as child processes of this one on loopback with ports chosen
// at run time, waits for each to be ready, prints the endpoint, and stops every child on Ctrl-C
// / SIGTERM. A dying expert service is survivable (the scheduler re-places its experts and the
// attention workers fail over to replicas), so moe up reports it and keeps serving while at
// least one expert service lives; any other role dying stops everything (with a clear
// message). Without --model it writes and serves the built-in demo model.
//
// Threads: every role shares this machine's cores. Each role gets a thread budget
// (--attention-threads, --expert-threads) and idle roles sleep: OMP_WAIT_POLICY=passive for
// oneDNN's OpenMP and a short spin for our kernel pool (MOE_KERNEL_SPIN_US), unless set. A
// waiting thread first stays runnable, yielding, for MOE_YIELD_SPIN_US (3 ms), and on a machine
// with no more cores than a role's threads each role's pool threads are pinned one per core
// (MOE_KERNEL_PIN=1): the cores change hands between the roles in every layer.
// The scheduler places whole layers per expert service (--policy layer-blocks) and attention
// workers run with --pack-replicas (with --replicas > 1 a layer's experts go to as few expert
// services as possible): here a second service adds no cores, so a layer split over two
// services only makes their threads time-slice the same cores.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/subprocess.h"
#include "model/demo_model.h"
#include "tools/commands.h"

namespace moe::tools {
namespace {

// The CPUs this process may run on (its children inherit the set).
int AllowedCores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return CPU_COUNT(&set);
}

struct UpConfig {
  std::string model;
  int experts = 2;
  int attention = 1;
  int replicas = 1;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;
  int64_t kv_cache_mb = 512;
  int attention_threads = 2;  // the attention worker computes while the experts wait...
  // ...and the expert services compute while it waits: each may use every core, since a
  // service's kernel pool spreads a layer's experts over its threads in pieces, so one that
  // finishes early leaves its core to the other (bench/README.md: +2-16% at 1-8 concurrent
  // requests over one thread per service on 2 cores).
  int expert_threads = 2;
  // Every role runs on this host, so the data plane defaults to shared memory (an attention
  // worker falls back to gRPC per service when a ring cannot be set up).
  std::string transport = "shm";
  int micro_batches = 1;
  // Whole layers per expert service: every service here shares the same cores, so a layer
  // computed by one service at a time beats one split over services that time-slice the cores.
  std::string policy = "layer-blocks";
  bool elastic = false;  // the scheduler starts the expert services and scales them
  int min_experts = 1;   // with elastic
  int max_experts = 3;   // with elastic
  std::string scheduler_args;  // extra `moe scheduler` flags, split on spaces
  int64_t startup_timeout_s = 300;
  std::string log_level = "warn";
};

// The path of this binary, to start the roles with.
std::string SelfPath() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "moe" : p.string();
}

std::string DemoModelDir() {
  const char* cache = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  std::string base = cache ? cache : (home ? std::string(home) + "/.cache" : "/tmp");
  return base + "/moe/demo-model";
}

// The HTTP status of GET http://host_port/path (HTTP/1.0, 2 s timeouts), or -1.
int HttpStatus(const std::string& host_port, const std::string& path) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) return -1;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::atoi(host_port.c_str() + colon + 1)));
  if (inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &sa.sin_addr) != 1) return -1;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int status = -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0) {
    const std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + host_port + "\r\n\r\n";
    char buf[64] = {};
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      size_t got = 0;
      while (got < sizeof(buf) - 1) {
        const ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n <= 0) break;
        got += static_cast<size_t>(n);
      }
      // "HTTP/1.1 200 OK"
      if (got > 12 && std::strncmp(buf, "HTTP/1.", 7) == 0) status = std::atoi(buf + 9);
    }
  }
  close(fd);
  return status;
}

class Cluster {
 public:
  explicit Cluster(const UpConfig& c) : c_(c), self_(SelfPath()) {}

  // Starts one role; returns its "listening on" address or "" (after printing why). With
  // `admin`, also reads the role's "admin on" address (printed right after) into it.
  std::string Start(const std::string& what, std::vector<std::string> args,
                    std::string* admin = nullptr) {
    args.insert(args.begin(), self_);
    children_.push_back(std::make_unique<Subprocess>(args));
    Subprocess& p = *children_.back();
    names_.push_back(what);
    std::string addr =
        p.WaitForLine("listening on ", std::chrono::seconds(c_.startup_timeout_s));
    if (!addr.empty() && admin != nullptr) {
      *admin = p.WaitForLine("admin on ", std::chrono::seconds(10));
      if (admin->empty()) addr.clear();
    }
    if (addr.empty()) {
      int code = 0;
      std::fprintf(stderr, "moe up: %s did not become ready%s\n", what.c_str(),
                   p.Exited(&code) ? absl::StrCat(" (exited with ", code, ")").c_str() : "");
    }
    return addr;
  }

  // Polls the last started role's admin /ready until it answers 200 (true), the role exits or
  // the startup timeout passes (false, after printing why). `index` is the role's start index.
  bool WaitReady(int index, const std::string& admin) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(c_.startup_timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
      if (!Alive(index)) break;
      if (HttpStatus(admin, "/ready") == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::fprintf(stderr, "moe up: %s is not ready (/ready on %s)\n", names_[index].c_str(),
                 admin.c_str());
    return false;
  }

  // Returns the index of a child that has exited since the last call (reported once), or -1.
  int NewlyDead(int* code) {
    reported_.resize(children_.size(), false);
    for (size_t i = 0; i < children_.size(); ++i) {
      if (!reported_[i] && children_[i]->Exited(code)) {
        reported_[i] = true;
        return static_cast<int>(i);
      }
    }
    return -1;
  }
  const std::string& name(int i) const { return names_[i]; }
  bool Alive(int i) { return !children_[i]->Exited(); }

  // Stops in reverse start order (gateway first, expert services last).
  void StopAll() {
    for (size_t i = children_.size(); i-- > 0;) children_[i]->Stop(std::chrono::seconds(10));
  }

 private:
  const UpConfig& c_;
  std::string self_;
  std::vector<std::unique_ptr<Subprocess>> children_;
  std::vector<std::string> names_;
  std::vector<bool> reported_;
};

int Run(const UpConfig& c) {
  std::string model = c.model;
  if (model.empty()) {
    model = DemoModelDir();
    if (!std::filesystem::exists(model + "/config.json")) {
      std::fprintf(stderr, "moe up: writing the demo model to %s\n", model.c_str());
      model::DemoModelParams p;
      p.out_dir = model;
      p.arch = model::Architecture::kQwen3Moe;
      if (auto s = model::WriteDemoModel(p); !s.ok()) {
        std::fprintf(stderr, "moe up: %s\n", s.status().ToString().c_str());
        return 1;
      }
    }
  }
  // Children inherit these: idle roles sleep instead of spinning on the shared cores.
  setenv("OMP_WAIT_POLICY", "passive", /*overwrite=*/0);
  setenv("MOE_KERNEL_SPIN_US", "20", /*overwrite=*/0);
  // Every layer hands the cores from the attention worker to an expert service and back. A
  // waiting thread stays runnable for 3 ms, yielding to any other runnable thread, before it
  // sleeps: a runnable thread gets a core as soon as the one on it yields or blocks, where a
  // sleeping one must be woken (up to milliseconds on a VM's halted vCPU; bench/README.md).
  setenv("MOE_YIELD_SPIN_US", "3000", /*overwrite=*/0);
  // When every role's threads span all the cores anyway, pin each role's pool caller to the
  // first core and its workers to the next ones, so one role's threads never queue on one core.
  // Not with micro-batches: the lane threads a pinned caller starts would inherit its core.
  if (c.micro_batches == 1 && AllowedCores() <= std::max(c.attention_threads, c.expert_threads)) {
    setenv("MOE_KERNEL_PIN", "1", /*overwrite=*/0);
  }
  StopSignals stop_signals;
  Cluster cluster(c);
  auto fail = [&](const std::string& why) {
    if (!why.empty()) std::fprintf(stderr, "moe up: %s\n", why.c_str());
    cluster.StopAll();
    return 1;
  };
  // Child 0: the scheduler. It publishes the first plan once all N expert services registered.
  std::vector<std::string> scheduler_args = {
      "scheduler", "--model", model, "--host", c.host, "--port", "0", "--admin-port", "0",
      "--replicas", std::to_string(c.replicas), "--min-experts", std::to_string(c.experts),
      "--policy", c.policy, "--log-level", c.log_level};
  // The load rebalancer balances a layer's load over the instances: it would split the blocks.
  if (c.policy == "layer-blocks") scheduler_args.emplace_back("--no-rebalance");
  for (absl::string_view a : absl::StrSplit(c.scheduler_args, ' ', absl::SkipEmpty())) {
    scheduler_args.emplace_back(a);
  }
  if (c.elastic) {
    // The scheduler owns the expert services (LocalProcessProvider): it starts --min-experts
    // of them and scales between the bounds with the load; this process starts none.
    scheduler_args.insert(
        scheduler_args.end(),
        {"--elastic", "--provider", "local", "--min-experts", std::to_string(c.min_experts),
         "--max-experts", std::to_string(c.max_experts), "--expert-args",
         absl::StrCat("--threads ", c.expert_threads, " --log-level ", c.log_level)});
  }
  std::string scheduler_admin;
  const std::string scheduler = cluster.Start("scheduler", scheduler_args, &scheduler_admin);
  if (scheduler.empty()) return fail("");
  // Children 1..N: expert services. Their experts come from the scheduler's plan.
  std::vector<std::string> experts, expert_admins;
  for (int i = 0; i < c.experts; ++i) {
    std::string& admin = expert_admins.emplace_back();
    std::string addr = cluster.Start(
        absl::StrCat("expert service ", i),
        {"expert", "--model", model, "--host", c.host, "--port", "0", "--admin-port", "0",
         "--scheduler", scheduler, "--instance-id", absl::StrCat("expert-", i), "--threads",
         std::to_string(c.expert_threads), "--log-level", c.log_level},
        &admin);
    if (addr.empty()) return fail("");
    experts.push_back(addr);
  }
  // Each expert service is ready once the scheduler's first plan placed experts there and it
  // loaded them.
  for (int i = 0; i < c.experts; ++i) {
    if (!cluster.WaitReady(1 + i, expert_admins[i])) return fail("");
  }
  std::vector<std::string> workers, worker_admins;
  for (int i = 0; i < c.attention; ++i) {
    std::string& admin = worker_admins.emplace_back();
    // Flag/value pairs kept together (clang-format would put each on its own line).
    // clang-format off
    std::vector<std::string> args = {
        "attention", "--model", model, "--host", c.host, "--port", "0", "--admin-port", "0",
        "--experts", "remote", "--scheduler", scheduler, "--transport", c.transport,
        "--micro-batches", std::to_string(c.micro_batches), "--kv-cache-mb",
        std::to_string(c.kv_cache_mb), "--threads", std::to_string(c.attention_threads),
        "--log-level", c.log_level, "--pack-replicas"};
    // clang-format on
    std::string addr = cluster.Start(absl::StrCat("attention worker ", i), args, &admin);
    if (addr.empty()) return fail("");
    if (!cluster.WaitReady(1 + c.experts + i, admin)) return fail("");
    workers.push_back(addr);
  }
  std::vector<std::string> gw = {"gateway", "--model", model, "--host", c.host, "--port",
                                 std::to_string(c.port), "--attention",
                                 absl::StrJoin(workers, ","), "--log-level", c.log_level};
  if (!c.api_key.empty()) gw.insert(gw.end(), {"--api-key", c.api_key});
  std::string gateway = cluster.Start("gateway", gw);
  if (gateway.empty()) return fail("");
  // The gateway's /ready passes once a test generation went through a worker and its experts.
  {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(c.startup_timeout_s);
    while (HttpStatus(gateway, "/ready") != 200) {
      if (std::chrono::steady_clock::now() > deadline) {
        return fail("the gateway is not ready (/ready on " + gateway + ")");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  std::printf("moe up: serving %s (transport %s, %d micro-batch%s)\n  OpenAI API   http://%s/v1\n"
              "  scheduler %s\n  scheduler admin %s\n  expert services %s\n  expert admin %s\n  attention workers %s\n"
              "  attention admin %s\n(Ctrl-C stops everything)\n",
              model.c_str(), c.transport.c_str(), c.micro_batches,
              c.micro_batches == 1 ? "" : "es", gateway.c_str(), scheduler.c_str(), scheduler_admin.c_str(),
              absl::StrJoin(experts, " ").c_str(), absl::StrJoin(expert_admins, " ").c_str(),
              absl::StrJoin(workers, " ").c_str(), absl::StrJoin(worker_admins, " ").c_str());
  // A request that works right away (the demo model and golden models alike).
  const std::string auth =
      c.api_key.empty() ? "" : " -H 'Authorization: Bearer YOUR_API_KEY'";
  std::printf("Try:\n  curl http://%s/v1/completions -H 'Content-Type: application/json'%s "
              "-d '{\"prompt\": \"Hello\", \"max_tokens\": 16}'\n"
              "  curl -N http://%s/v1/chat/completions -H 'Content-Type: application/json'%s "
              "-d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], "
              "\"max_tokens\": 16, \"stream\": true}'\n",
              gateway.c_str(), auth.c_str(), gateway.c_str(), auth.c_str());
  std::printf("listening on %s\n", gateway.c_str());
  std::fflush(stdout);

  // Supervise: a stop signal ends the whole cluster; so does a dying scheduler, attention
  // worker or gateway, or the last expert service. An expert service alone may die: the
  // scheduler re-places its experts on the survivors.
  std::atomic<int> got_signal{0};
  std::thread waiter([&] { got_signal = stop_signals.Wait(); });
  waiter.detach();
  for (;;) {
    if (got_signal != 0) {
      std::fprintf(stderr, "moe up: signal %d: stopping every role\n", got_signal.load());
      cluster.StopAll();
      return 0;
    }
    int code = 0;
    const int dead = cluster.NewlyDead(&code);
    if (dead >= 0) {
      const bool expert = dead >= 1 && dead <= c.experts;
      int alive_experts = 0;
      for (int i = 1; i <= c.experts; ++i) alive_experts += cluster.Alive(i) ? 1 : 0;
      if (!expert || alive_experts == 0) {
        return fail(absl::StrCat(cluster.name(dead), " exited unexpectedly (code ", code,
                                 "): stopping every role"));
      }
      std::fprintf(stderr,
                   "moe up: %s exited unexpectedly (code %d); %d expert service(s) left: the "
                   "scheduler re-places its experts, requests fail over to replicas\n",
                   cluster.name(dead).c_str(), code, alive_experts);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace

int RunUp(int argc, const char* const* argv) {
  UpConfig c;
  FlagSet flags("moe up",
                "Run the whole system on this machine: expert services, attention workers and "
                "a gateway on loopback.\nWithout --model it serves the built-in demo model.");
  flags.AddString("model", &c.model, "model folder (default: the demo model)");
  flags.AddInt("experts", &c.experts, "expert services");
  flags.AddInt("attention", &c.attention, "attention workers");
  flags.AddInt("replicas", &c.replicas, "replicas per expert");
  flags.AddString("host", &c.host, "address every role listens on");
  flags.AddInt("port", &c.port, "gateway HTTP port (0 = any free port)");
  flags.AddString("api-key", &c.api_key, "require this API key at the gateway");
  flags.AddInt("kv-cache-mb", &c.kv_cache_mb, "KV cache per attention worker, MiB");
  flags.AddInt("attention-threads", &c.attention_threads, "compute threads per attention worker");
  flags.AddInt("expert-threads", &c.expert_threads, "compute threads per expert service");
  flags.AddString("transport", &c.transport,
                  "attention -> expert data plane: shm (shared memory; falls back to gRPC per service "
                  "when a ring cannot be set up) or grpc");
  flags.AddInt("micro-batches", &c.micro_batches,
               "micro-batches per attention step (2: one's attention overlaps the other's "
               "experts)");
  flags.AddString("policy", &c.policy,
                  "expert placement: layer-blocks (whole layers per expert service, no load "
                  "rebalancing), round-robin or greedy (these two rebalance with the load)");
  flags.AddString("scheduler-args", &c.scheduler_args,
                  "extra flags for `moe scheduler`, e.g. \"--rebalance-interval-s 10\"");
  flags.AddBool("elastic", &c.elastic,
                "the scheduler starts the expert services and scales them with the load between "
                "--min-experts and --max-experts (instead of --experts)");
  flags.AddInt("min-experts", &c.min_experts, "with --elastic: fewest expert services");
  flags.AddInt("max-experts", &c.max_experts, "with --elastic: most expert services");
  flags.AddInt("startup-timeout-s", &c.startup_timeout_s, "seconds each role may take to start");
  flags.AddString("log-level", &c.log_level, "log level of the roles");
  if (std::optional<int> exit = flags.ParseCommandLine(argc, argv)) return *exit;
  if (c.elastic) {
    if (c.min_experts < 1 || c.max_experts < c.min_experts) {
      std::fprintf(stderr, "moe up: --elastic needs 1 <= --min-experts <= --max-experts\n");
      return 2;
    }
    c.experts = c.min_experts;  // for the checks below; the scheduler starts them
  }
  if (c.experts < 1 || c.attention < 1 || c.replicas < 1 || c.replicas > c.experts ||
      c.attention_threads < 1 || c.expert_threads < 1 || c.micro_batches < 1 ||
      (c.transport != "grpc" && c.transport != "shm")) {
    std::fprintf(stderr,
                 "moe up: need --experts >= 1, --attention >= 1, 1 <= --replicas <= --experts, "
                 "threads and --micro-batches >= 1, --transport grpc or shm\n\n%s",
                 flags.Usage().c_str());
    return 2;
  }
  InitLogging("up", c.log_level);
  if (c.elastic) c.experts = 0;  // none started here
  return Run(c);
}

}  // namespace moe::tools
