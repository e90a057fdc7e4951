// `moe up`: the whole system on one machine. Starts N expert services, M attention workers and
// a gateway as child processes of this one on loopback with ports chosen at run time, waits for
// each to be ready, prints the endpoint, and stops every child on Ctrl-C / SIGTERM or as soon as
// one of them dies (with a clear message). Without --model it writes and serves the built-in
// demo model.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/subprocess.h"
#include "model/demo_model.h"
#include "tools/commands.h"

namespace moe::tools {
namespace {

struct UpConfig {
  std::string model;
  int experts = 2;
  int attention = 1;
  int replicas = 1;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;
  int64_t kv_cache_mb = 512;
  int threads = 1;  // per role: the roles share the machine's cores
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

class Cluster {
 public:
  explicit Cluster(const UpConfig& c) : c_(c), self_(SelfPath()) {}

  // Starts one role; returns its "listening on" address or "" (after printing why).
  std::string Start(const std::string& what, std::vector<std::string> args) {
    args.insert(args.begin(), self_);
    children_.push_back(std::make_unique<Subprocess>(args));
    Subprocess& p = *children_.back();
    names_.push_back(what);
    std::string addr =
        p.WaitForLine("listening on ", std::chrono::seconds(c_.startup_timeout_s));
    if (addr.empty()) {
      int code = 0;
      std::fprintf(stderr, "moe up: %s did not become ready%s\n", what.c_str(),
                   p.Exited(&code) ? absl::StrCat(" (exited with ", code, ")").c_str() : "");
    }
    return addr;
  }

  // Returns the name of a child that has exited, or "".
  std::string Dead(int* code) {
    for (size_t i = 0; i < children_.size(); ++i) {
      if (children_[i]->Exited(code)) return names_[i];
    }
    return "";
  }

  // Stops in reverse start order (gateway first, expert services last).
  void StopAll() {
    for (size_t i = children_.size(); i-- > 0;) children_[i]->Stop(std::chrono::seconds(10));
  }

 private:
  const UpConfig& c_;
  std::string self_;
  std::vector<std::unique_ptr<Subprocess>> children_;
  std::vector<std::string> names_;
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
  StopSignals stop_signals;
  Cluster cluster(c);
  const std::string threads = std::to_string(c.threads);
  auto fail = [&](const std::string& why) {
    if (!why.empty()) std::fprintf(stderr, "moe up: %s\n", why.c_str());
    cluster.StopAll();
    return 1;
  };
  std::vector<std::string> experts;
  for (int i = 0; i < c.experts; ++i) {
    std::string addr = cluster.Start(
        absl::StrCat("expert service ", i),
        {"expert", "--model", model, "--host", c.host, "--port", "0", "--admin-port", "0",
         "--experts", absl::StrCat("round-robin:", i, "/", c.experts, "/", c.replicas),
         "--threads", threads, "--log-level", c.log_level});
    if (addr.empty()) return fail("");
    experts.push_back(addr);
  }
  std::vector<std::string> workers;
  for (int i = 0; i < c.attention; ++i) {
    std::string addr = cluster.Start(
        absl::StrCat("attention worker ", i),
        {"attention", "--model", model, "--host", c.host, "--port", "0", "--admin-port", "0",
         "--experts", "remote", "--expert-addrs", absl::StrJoin(experts, ","), "--replicas",
         std::to_string(c.replicas), "--kv-cache-mb", std::to_string(c.kv_cache_mb),
         "--threads", threads, "--log-level", c.log_level});
    if (addr.empty()) return fail("");
    workers.push_back(addr);
  }
  std::vector<std::string> gw = {"gateway", "--model", model, "--host", c.host, "--port",
                                 std::to_string(c.port), "--attention",
                                 absl::StrJoin(workers, ","), "--log-level", c.log_level};
  if (!c.api_key.empty()) gw.insert(gw.end(), {"--api-key", c.api_key});
  std::string gateway = cluster.Start("gateway", gw);
  if (gateway.empty()) return fail("");
  std::printf("moe up: serving %s\n  OpenAI API   http://%s/v1\n  expert services %s\n"
              "  attention workers %s\n(Ctrl-C stops everything)\n",
              model.c_str(), gateway.c_str(), absl::StrJoin(experts, " ").c_str(),
              absl::StrJoin(workers, " ").c_str());
  std::printf("listening on %s\n", gateway.c_str());
  std::fflush(stdout);

  // Supervise: a stop signal, or a child that dies, ends the whole cluster.
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
    std::string dead = cluster.Dead(&code);
    if (!dead.empty()) {
      return fail(absl::StrCat(dead, " exited unexpectedly (code ", code,
                               "): stopping every role"));
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
  flags.AddInt("threads", &c.threads, "compute threads per role");
  flags.AddInt("startup-timeout-s", &c.startup_timeout_s, "seconds each role may take to start");
  flags.AddString("log-level", &c.log_level, "log level of the roles");
  if (std::optional<int> exit = flags.ParseCommandLine(argc, argv)) return *exit;
  if (c.experts < 1 || c.attention < 1 || c.replicas < 1 || c.replicas > c.experts) {
    std::fprintf(stderr, "moe up: need --experts >= 1, --attention >= 1, 1 <= --replicas <= "
                         "--experts\n");
    return 2;
  }
  InitLogging("up", c.log_level);
  return Run(c);
}

}  // namespace moe::tools
