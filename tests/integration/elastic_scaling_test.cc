// Integration: `moe up --elastic --min-experts 1 --max-experts 3` ($MOE_BIN) on the golden
// tiny-mixtral: the scheduler starts the expert services itself (LocalProcessProvider). Clients
// drive load until the pool grows (scheduler /metrics moe_expert_instances), then stop; the pool
// drains back to the minimum. Every request sent meanwhile gets the golden completion (no failed
// request through growth, drains and removals), and stopping moe up stops every process,
// including the expert services the scheduler started.
//
// Short intervals and a low configured per-instance capacity keep it quick; every wait is
// bounded.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/testing/child_process.h"
#include "tests/testing/http_client.h"

namespace moe {
namespace {

using test_util::ChildProcess;
using test_util::MoeBin;
using test_util::ChildrenOf;
using test_util::PortOf;
using SteadyClock = std::chrono::steady_clock;

// The value of the sample `series` (name with labels, exactly as exported) in Prometheus text,
// or -1.
double Sample(const std::string& metrics, const std::string& series) {
  size_t pos = 0;
  while ((pos = metrics.find(series + " ", pos)) != std::string::npos) {
    if (pos == 0 || metrics[pos - 1] == '\n') {
      return std::atof(metrics.c_str() + pos + series.size() + 1);
    }
    pos += series.size();
  }
  return -1;
}

test_util::Reply Get(int port, const std::string& path) {
  try {
    return test_util::Request(port, test_util::http::verb::get, path);
  } catch (const std::exception& e) {
    return {0, e.what(), ""};
  }
}

class ElasticScalingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(MOE_GOLDEN_DIR) + "/tiny-mixtral";
    std::ifstream in(dir_ + "/expected-f32.json");
    ASSERT_TRUE(in.good()) << "golden data missing in " << dir_;
    cases_ = nlohmann::json::parse(in)["cases"];
    up_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        MoeBin(), "up", "--model", dir_ + "/hf-f32", "--port", "0", "--elastic", "--min-experts",
        "1", "--max-experts", "3", "--expert-threads", "1", "--attention-threads", "1",
        "--log-level", "warn", "--scheduler-args",
        // Decide every 200 ms; grow at most every 1.5 s, shrink 2 s after the last action; a
        // tiny configured capacity (rows/s) so the measured rate decides; a 2 s load window so
        // demand falls quickly when the load stops.
        "--scale-interval-ms 200 --scale-up-cooldown-ms 1500 --scale-down-cooldown-ms 2000 "
        "--expert-capacity-tps 20 --scale-step-up 1 --load-window-s 2 "
        "--heartbeat-timeout-ms 2000 --drain-timeout-ms 15000 --log-level info"});
    const std::string admin = up_->WaitForLine("  scheduler admin ", std::chrono::seconds(120));
    ASSERT_FALSE(admin.empty()) << "moe up did not start";
    scheduler_admin_ = PortOf(admin);
    const std::string addr = up_->WaitForLine("listening on ", std::chrono::seconds(30));
    ASSERT_FALSE(addr.empty()) << "moe up did not print its address";
    port_ = PortOf(addr);
  }

  std::string Metrics() { return Get(scheduler_admin_, "/metrics").body; }
  double Instances() { return Sample(Metrics(), "moe_expert_instances"); }

  // Polls the scheduler's metrics until pred(metrics) or the limit passes.
  template <typename Pred>
  bool WaitFor(Pred pred, std::chrono::seconds limit) {
    const auto deadline = SteadyClock::now() + limit;
    while (SteadyClock::now() < deadline) {
      if (pred(Metrics())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return false;
  }

  // One golden request (case `i`); records the reply.
  void Send(int i) {
    const auto& c = cases_[i % cases_.size()];
    nlohmann::json req = {{"prompt", c["prompt_ids"]}, {"max_tokens", 32}, {"temperature", 0}};
    test_util::Reply r;
    try {
      r = test_util::Request(port_, test_util::http::verb::post, "/v1/completions", req.dump());
    } catch (const std::exception& e) {
      r = {0, e.what(), ""};
    }
    std::lock_guard<std::mutex> lock(mu_);
    replies_.push_back({i % static_cast<int>(cases_.size()), r});
  }

  void CheckReplies() {
    std::lock_guard<std::mutex> lock(mu_);
    int bad = 0;
    for (const auto& [ci, r] : replies_) {
      const auto& c = cases_[ci];
      if (r.status != 200) {
        ADD_FAILURE() << "case " << ci << ": HTTP " << r.status << ": " << r.body;
        ++bad;
        continue;
      }
      nlohmann::json body = nlohmann::json::parse(r.body, nullptr, false);
      ASSERT_TRUE(body.is_object()) << r.body;
      EXPECT_EQ(body["choices"][0]["text"], c["completion_text"]) << "case " << ci;
      EXPECT_EQ(body["usage"]["completion_tokens"], c["completion_ids"].size()) << "case " << ci;
    }
    EXPECT_EQ(bad, 0) << "of " << replies_.size() << " requests";
  }

  std::string dir_;
  nlohmann::json cases_;
  std::unique_ptr<ChildProcess> up_;
  int port_ = 0;
  int scheduler_admin_ = 0;
  std::mutex mu_;
  std::vector<std::pair<int, test_util::Reply>> replies_;
};

TEST_F(ElasticScalingTest, GrowsUnderLoadShrinksWhenIdleAndFailsNoRequest) {
  const auto start = SteadyClock::now();
  // The scheduler started the minimum: one expert service.
  ASSERT_TRUE(WaitFor([](const std::string& m) { return Sample(m, "moe_expert_instances") == 1; },
                      std::chrono::seconds(10)));
  const std::vector<pid_t> roles = ChildrenOf(up_->pid());
  ASSERT_EQ(roles.size(), 3u);  // scheduler, attention worker, gateway: no expert service
  // The one role with a child: the scheduler, parent of the expert service.
  pid_t scheduler = 0;
  for (pid_t r : roles) {
    if (!ChildrenOf(r).empty()) scheduler = r;
  }
  ASSERT_NE(scheduler, 0);
  EXPECT_EQ(ChildrenOf(scheduler).size(), 1u);

  // Load: 4 clients, one request after another, until told to stop.
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      for (int k = 0; !stop.load(); ++k) Send(t + 4 * k);
    });
  }
  double most = 0;
  std::vector<pid_t> experts_seen;
  const bool grew = WaitFor(
      [&](const std::string& m) {
        most = std::max(most, Sample(m, "moe_expert_instances"));
        for (pid_t p : ChildrenOf(scheduler)) {
          if (std::find(experts_seen.begin(), experts_seen.end(), p) == experts_seen.end()) {
            experts_seen.push_back(p);
          }
        }
        return most >= 3;
      },
      std::chrono::seconds(40));
  const std::string grown = Metrics();
  stop = true;
  for (auto& c : clients) c.join();
  EXPECT_TRUE(grew) << "expert instances reached only " << most << "\n" << grown;
  EXPECT_GE(Sample(grown, "moe_desired_expert_instances"), 2);
  EXPECT_GE(Sample(grown, "moe_scale_events_total{direction=\"up\"}"), 2);  // start + growth
  EXPECT_GE(experts_seen.size(), 3u);
  {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_GT(replies_.size(), 4u);
  }

  // Idle: drained and removed one by one back to the minimum.
  const bool shrank = WaitFor(
      [](const std::string& m) {
        return Sample(m, "moe_expert_instances") == 1 &&
               Sample(m, "moe_desired_expert_instances") == 1;
      },
      std::chrono::seconds(40));
  const std::string shrunk = Metrics();
  EXPECT_TRUE(shrank) << shrunk;
  EXPECT_GE(Sample(shrunk, "moe_scale_events_total{direction=\"down\"}"), 2);
  EXPECT_EQ(Sample(shrunk, "moe_failovers_total"), 0) << "a removal was not drained first";
  EXPECT_EQ(ChildrenOf(scheduler).size(), 1u);

  // Still serving on the one left; every answer so far golden.
  Send(0);
  CheckReplies();
  std::printf(
      "elastic: %zu requests, peak %.0f instances, %lld s\n", replies_.size(), most,
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::seconds>(SteadyClock::now() - start).count()));

  // Stopping moe up stops every process, the scheduler's expert services too.
  std::vector<pid_t> all = ChildrenOf(up_->pid());
  for (pid_t p : ChildrenOf(scheduler)) all.push_back(p);
  EXPECT_EQ(up_->Stop(), 0);
  for (pid_t p : experts_seen) all.push_back(p);
  for (int i = 0; i < 500; ++i) {
    bool any = false;
    for (pid_t p : all) any = any || kill(p, 0) == 0;
    if (!any) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (pid_t p : all) EXPECT_NE(kill(p, 0), 0) << "pid " << p << " still running";
}

}  // namespace
}  // namespace moe
