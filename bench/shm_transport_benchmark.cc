// shm_transport_benchmark: round-trip latency of one ExpertTransport call (one layer's
// request to one expert service) over gRPC vs shared memory, against a real `moe expert`
// process on 127.0.0.1 serving the tiny demo model (hidden 64: a 1-token shard is 256 B of
// activations, a 64-token shard 16 KiB). Prints median / p90 / p99 wall time per call
// (median over --rounds rounds of --calls calls each) and client / server CPU time per call.
// The expert's compute is part of every round trip and the same for both transports.
//
//   shm_transport_benchmark [--moe PATH] [--calls N] [--rounds R]
// PATH defaults to $MOE_BIN, else <build>/tools/moe.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "attention_service/dispatch/grpc_transport.h"
#include "attention_service/dispatch/shm_transport.h"
#include "common/subprocess.h"

namespace moe {
namespace {

namespace v1 = ::moe::expert::v1;
namespace cv1 = ::moe::common::v1;
using Clock = std::chrono::steady_clock;

constexpr int kHidden = 64;  // the tiny preset

v1::ComputeRequest Request(int tokens) {
  std::mt19937 rng(tokens);
  std::normal_distribution<float> d(0, 1);
  v1::ComputeRequest req;
  req.set_layer(1);
  req.set_combine(true);
  req.set_combined_rows(tokens);
  v1::Shard* s = req.add_shards();
  s->set_expert(3);
  cv1::Tensor* h = s->mutable_hidden();
  h->set_dtype(cv1::DTYPE_F32);
  h->add_shape(tokens);
  h->add_shape(kHidden);
  std::vector<float> x(static_cast<size_t>(tokens) * kHidden);
  for (float& v : x) v = d(rng);
  h->set_data(reinterpret_cast<const char*>(x.data()), x.size() * 4);
  cv1::Tensor* w = s->mutable_weights();
  w->set_dtype(cv1::DTYPE_F32);
  w->add_shape(tokens);
  cv1::Tensor* r = s->mutable_rows();
  r->set_dtype(cv1::DTYPE_I32);
  r->add_shape(tokens);
  for (int t = 0; t < tokens; ++t) {
    const float wt = 0.5f;
    w->mutable_data()->append(reinterpret_cast<const char*>(&wt), 4);
    r->mutable_data()->append(reinterpret_cast<const char*>(&t), 4);
  }
  return req;
}

double SelfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields;
  size_t pos = close + 2;
  while (pos < stat.size()) {
    size_t end = stat.find(' ', pos);
    if (end == std::string::npos) end = stat.size();
    fields.push_back(stat.substr(pos, end - pos));
    pos = end + 1;
  }
  if (fields.size() < 13) return 0;  // fields[11] utime, fields[12] stime (state is [0])
  return (std::stod(fields[11]) + std::stod(fields[12])) / sysconf(_SC_CLK_TCK);
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

void Top(const char* when) {
  std::printf("---- top -bn1 (%s)\n", when);
  std::fflush(stdout);
  if (std::system("top -bn1 | head -12") != 0) std::printf("(top failed)\n");
}

int Main(int argc, char** argv) {
  std::string moe =
      std::getenv("MOE_BIN") ? std::getenv("MOE_BIN") : std::string(MOE_BINARY_DIR) + "/tools/moe";
  int calls = 2000, rounds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--moe") moe = argv[i + 1];
    if (a == "--calls") calls = std::atoi(argv[i + 1]);
    if (a == "--rounds") rounds = std::atoi(argv[i + 1]);
  }
  char tmpl[] = "/tmp/moe_shm_bench_XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  const std::string dir = tmpl;
  const std::string cmd = moe + " demo-model --preset tiny --arch mixtral --dtype f32 --out " +
                          dir + " --threads 1 > /dev/null";
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "failed: %s\n", cmd.c_str());
    return 1;
  }
  Subprocess expert({moe, "expert", "--model", dir, "--host", "127.0.0.1", "--port", "0",
                     "--admin-port", "0", "--experts", "all", "--threads", "1", "--log-level",
                     "warn"});
  const int port = PortOf(expert.WaitForLine("listening on ", std::chrono::seconds(60)));
  if (port <= 0) return 1;
  const std::string address = "127.0.0.1:" + std::to_string(port);

  Top("before");
  std::printf("\n%-6s %7s %11s %11s %11s %13s %13s\n", "path", "tokens", "median_us", "p90_us",
              "p99_us", "client_cpu_us", "server_cpu_us");
  attention::GrpcExpertTransport grpc;
  attention::ShmExpertTransport shm;
  if (!shm.UsesShm(address)) {
    std::fprintf(stderr, "shm negotiation failed\n");
    return 1;
  }
  for (int tokens : {1, 64}) {
    const v1::ComputeRequest req = Request(tokens);
    for (attention::ExpertTransport* t : std::vector<attention::ExpertTransport*>{&grpc, &shm}) {
      const char* name = t == &grpc ? "grpc" : "shm";
      std::vector<double> medians, p90s, p99s;
      double client_cpu = 0, server_cpu = 0;
      for (int round = 0; round < rounds + 1; ++round) {  // round 0 warms up
        std::vector<double> us;
        us.reserve(calls);
        const double c0 = SelfCpuSeconds(), s0 = ProcessCpuSeconds(expert.pid());
        for (int i = 0; i < calls; ++i) {
          attention::ExpertCall call;
          call.instance = address;
          call.request = req;
          const auto start = Clock::now();
          t->ForwardAll({&call, 1}, absl::Seconds(10));
          us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
          if (!call.status.ok()) {
            std::fprintf(stderr, "%s: %s\n", name, call.status.ToString().c_str());
            return 1;
          }
        }
        if (round == 0) continue;
        client_cpu += SelfCpuSeconds() - c0;
        server_cpu += ProcessCpuSeconds(expert.pid()) - s0;
        medians.push_back(Percentile(us, 0.5));
        p90s.push_back(Percentile(us, 0.9));
        p99s.push_back(Percentile(us, 0.99));
      }
      const double n = static_cast<double>(calls) * rounds;
      std::printf("%-6s %7d %11.1f %11.1f %11.1f %13.1f %13.1f\n", name, tokens,
                  Percentile(medians, 0.5), Percentile(p90s, 0.5), Percentile(p99s, 0.5),
                  1e6 * client_cpu / n, 1e6 * server_cpu / n);
      std::fflush(stdout);
    }
  }
  std::printf("\n(shm calls %lld, gRPC fallbacks %lld)\n", static_cast<long long>(shm.shm_calls()),
              static_cast<long long>(shm.grpc_calls()));
  Top("after");
  expert.Stop();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace moe

int main(int argc, char** argv) { return moe::Main(argc, argv); }
