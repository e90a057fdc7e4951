// Integration (issue 6, "done when"): `moe up` ($MOE_BIN) on the golden tiny-mixtral with 2
// expert services and one replica per expert.
//  - Under a skewed workload (one prompt over and over, so a few experts are hot) the scheduler
//    rebalances: a pending plan is loaded while the old one serves, then committed; the worst
//    layer's balancedness (moe_layer_balancedness) improves; every request during it gets the
//    golden tokens.
//  - SIGKILL of an expert service whose experts have no other replica: the attention worker
//    waits for the failover plan, the survivor loads the orphans, every request completes with
//    the golden tokens.
// Requests go to the attention worker's Generate RPC (the gateway is tested elsewhere). Every
// process is started on 127.0.0.1 with run-time ports and stopped by pid; every wait is bounded.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "moe/attention/v1/attention.grpc.pb.h"
#include "tests/testing/child_process.h"
#include "tests/testing/http_client.h"

namespace moe {
namespace {

namespace v1 = ::moe::attention::v1;
using test_util::ChildProcess;
using test_util::ChildrenOf;
using test_util::MoeBin;
using test_util::PortOf;
using Clock = std::chrono::steady_clock;

const std::string kGolden = std::string(MOE_GOLDEN_DIR) + "/tiny-mixtral";

// Every sample of `name` (exact name, any labels) in a /metrics body.
std::vector<double> Samples(const std::string& body, const std::string& name) {
  std::vector<double> out;
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (!absl::StartsWith(line, name)) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != ' ' && next != '{') continue;
    const size_t space = line.rfind(' ');
    out.push_back(std::stod(std::string(line.substr(space + 1))));
  }
  return out;
}

double Worst(const std::vector<double>& v) {
  double w = 1.0;
  for (double x : v) w = std::min(w, x);
  return w;
}

class Cluster {
 public:
  explicit Cluster(const std::string& scheduler_args) {
    up_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{MoeBin(), "up", "--model", kGolden + "/hf-f32", "--port", "0",
                                 "--experts", "2", "--replicas", "1", "--policy", "greedy",
                                 "--log-level", "warn", "--scheduler-args", scheduler_args});
    scheduler_admin_ = up_->WaitForLine("  scheduler admin ", std::chrono::seconds(120));
    worker_ = up_->WaitForLine("  attention workers ", std::chrono::seconds(60));
    ready_ = !up_->WaitForLine("listening on ", std::chrono::seconds(60)).empty();
    children_ = ChildrenOf(up_->pid());
  }
  ~Cluster() {
    if (up_) up_->Stop();
  }
  bool ready() const { return ready_ && !scheduler_admin_.empty() && !worker_.empty(); }
  const std::string& worker() const { return worker_; }
  std::string SchedulerMetrics() const {
    return test_util::Request(PortOf(scheduler_admin_), test_util::http::verb::get, "/metrics")
        .body;
  }
  const std::vector<pid_t>& children() const { return children_; }
  int Stop() { return up_->Stop(); }

 private:
  std::unique_ptr<ChildProcess> up_;
  std::string scheduler_admin_, worker_;
  bool ready_ = false;
  std::vector<pid_t> children_;
};

nlohmann::json Expected() {
  std::ifstream in(kGolden + "/expected-f32.json");
  return nlohmann::json::parse(in);
}

// One greedy Generate of golden case `c`; "" if the tokens are the golden ones, else why not.
std::string GenerateGolden(v1::AttentionService::Stub* stub, const nlohmann::json& c) {
  v1::GenerateRequest req;
  for (int id : c["prompt_ids"]) req.add_prompt_ids(id);
  req.mutable_sampling()->set_temperature(0);
  req.mutable_sampling()->set_max_tokens(32);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto reader = stub->Generate(&ctx, req);
  v1::GenerateResponse resp;
  std::vector<int> ids;
  while (reader->Read(&resp)) {
    for (const auto& t : resp.tokens()) ids.push_back(t.id());
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) return "status " + std::to_string(st.error_code()) + ": " + st.error_message();
  if (ids != c["completion_ids"].get<std::vector<int>>()) return "tokens differ from golden";
  return "";
}

// Client threads sending golden requests until stopped; counts completions and failures.
class Load {
 public:
  Load(const std::string& worker, const nlohmann::json& cases, int threads) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, worker, cases, t] {
        auto stub = v1::AttentionService::NewStub(
            grpc::CreateChannel(worker, grpc::InsecureChannelCredentials()));
        for (int k = 0; !stop_.load(); ++k) {
          std::string err = GenerateGolden(stub.get(), cases[(t + k) % cases.size()]);
          if (err.empty()) {
            ok_.fetch_add(1);
          } else {
            failed_.fetch_add(1);
            std::lock_guard<std::mutex> lock(mu_);
            errors_.push_back(err);
          }
        }
      });
    }
  }
  ~Load() { Stop(); }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  int ok() const { return ok_.load(); }
  int failed() const { return failed_.load(); }
  std::string FirstError() {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_.empty() ? "" : errors_[0];
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0}, failed_{0};
  std::mutex mu_;
  std::vector<std::string> errors_;
  std::vector<std::thread> threads_;
};

TEST(RebalanceIntegrationTest, SkewedLoadRebalancesWithoutFailingARequest) {
  Cluster cluster(
      "--rebalance-interval-s 4 --rebalance-min-tokens 300 --rebalance-threshold 0.97 "
      "--rebalance-min-improvement 0.01 --load-window-s 600 --heartbeat-interval-ms 200");
  ASSERT_TRUE(cluster.ready()) << "moe up did not start";
  const nlohmann::json expected = Expected();
  // One prompt only: its tokens keep choosing the same experts.
  nlohmann::json skewed = nlohmann::json::array({expected["cases"][1]});
  Load load(cluster.worker(), skewed, 2);

  double before = -1, after = -1;
  const auto deadline = Clock::now() + std::chrono::seconds(90);
  Clock::time_point rebalanced{};
  while (Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    const std::string m = cluster.SchedulerMetrics();
    const std::vector<double> rebalances = Samples(m, "moe_rebalances_total");
    const std::vector<double> balance = Samples(m, "moe_layer_balancedness");
    if (rebalances.empty() || balance.empty()) continue;
    if (rebalances[0] == 0) {
      before = Worst(balance);
    } else if (rebalanced == Clock::time_point{}) {
      rebalanced = Clock::now();
    } else if (Clock::now() - rebalanced > std::chrono::seconds(2)) {
      after = Worst(balance);
      break;
    }
  }
  load.Stop();
  ASSERT_NE(rebalanced, Clock::time_point{}) << "no rebalance; worst layer " << before << "\n"
                                             << cluster.SchedulerMetrics();
  std::printf("worst layer balancedness: %.3f before the rebalance, %.3f after; %d requests\n",
              before, after, load.ok());
  EXPECT_GT(after, before) << "balancedness did not improve";
  EXPECT_EQ(load.failed(), 0) << load.FirstError();
  EXPECT_GT(load.ok(), 0);
  const std::string m = cluster.SchedulerMetrics();
  EXPECT_GE(Samples(m, "moe_placement_epoch")[0], 2);
  EXPECT_EQ(Samples(m, "moe_failovers_total")[0], 0);
  EXPECT_EQ(cluster.Stop(), 0);
}

TEST(RebalanceIntegrationTest, KillingTheOnlyReplicaFailsNoRequest) {
  Cluster cluster("--heartbeat-interval-ms 200 --heartbeat-timeout-ms 1500");
  ASSERT_TRUE(cluster.ready()) << "moe up did not start";
  // scheduler, expert service 0, expert service 1, attention worker, gateway
  ASSERT_EQ(cluster.children().size(), 5u);
  const nlohmann::json expected = Expected();
  Load load(cluster.worker(), expected["cases"], 3);
  const auto start = Clock::now();
  while (load.ok() < 2 && Clock::now() - start < std::chrono::seconds(60)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(kill(cluster.children()[2], SIGKILL), 0);
  const int at_kill = load.ok() + load.failed();
  // Keep the load on through the failover and a few requests after it.
  const auto until = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < until && load.ok() + load.failed() < at_kill + 9) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  load.Stop();
  EXPECT_EQ(load.failed(), 0) << load.FirstError();
  EXPECT_GE(load.ok(), at_kill + 9);
  const std::string m = cluster.SchedulerMetrics();
  EXPECT_GE(Samples(m, "moe_failovers_total")[0], 1);
  EXPECT_EQ(Samples(m, "moe_expert_instances")[0], 1);
  EXPECT_EQ(cluster.Stop(), 0);
}

}  // namespace
}  // namespace moe
