// Integration: the scheduler drives placement end to end. Real processes ($MOE_BIN) on
// 127.0.0.1 with run-time ports: `moe scheduler` (--replicas 2 or 1, --min-experts 2), two
// `moe expert --scheduler` (start empty, load what the plan gives them) and one
// `moe attention --experts remote --scheduler` (routes with the scheduler's plans, no
// --expert-addrs; 2 micro-batches in the replicas-2 case). Greedy generation of the golden
// tiny-mixtral prompts from three concurrent clients; one expert service is SIGKILLed while
// requests are in flight. Every request must complete with the golden tokens, and the
// scheduler must then publish a newer epoch (a failover plan) without the dead instance, with
// which the worker keeps serving. Every wait is bounded; every process is stopped by pid;
// gRPC stubs are reset before the servers stop.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "moe/attention/v1/attention.grpc.pb.h"
#include "moe/scheduler/v1/scheduler.grpc.pb.h"
#include "tests/testing/child_process.h"
#include "tests/testing/http_client.h"

namespace moe {
namespace {

namespace av1 = ::moe::attention::v1;
namespace sv1 = ::moe::scheduler::v1;
using test_util::ChildProcess;
using test_util::MoeBin;
using test_util::PortOf;

struct Case {
  std::vector<int> prompt;
  std::vector<int> want;
};

int HttpStatus(int port, const std::string& path) {
  try {
    return test_util::Request(port, test_util::http::verb::get, path).status;
  } catch (const std::exception&) {
    return 0;
  }
}

// The value of an unlabelled metric on /metrics of 127.0.0.1:`port` (-1 if absent).
double MetricValue(int port, const std::string& name) {
  std::string text;
  try {
    text = test_util::Request(port, test_util::http::verb::get, "/metrics").body;
  } catch (const std::exception&) {
    return -1;
  }
  const size_t pos = text.find("\n" + name + " ");
  return pos == std::string::npos ? -1 : std::atof(text.c_str() + pos + name.size() + 2);
}

class SchedulerPlacementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(MOE_GOLDEN_DIR) + "/tiny-mixtral/hf-f32";
    std::ifstream in(std::string(MOE_GOLDEN_DIR) + "/tiny-mixtral/expected-f32.json");
    ASSERT_TRUE(in.good());
    const nlohmann::json j = nlohmann::json::parse(in);
    n_gen_ = j.at("n_gen").get<int>();
    for (const auto& c : j.at("cases")) {
      cases_.push_back({c.at("prompt_ids").get<std::vector<int>>(),
                        c.at("completion_ids").get<std::vector<int>>()});
    }
  }

  void TearDown() override {
    StopWatching();
    attention_stub_.reset();
    if (attention_) {
      EXPECT_EQ(attention_->Stop(), 0) << "moe attention";
    }
    for (size_t i = 0; i < experts_.size(); ++i) {
      if (experts_[i] && static_cast<int>(i) != killed_) {
        EXPECT_EQ(experts_[i]->Stop(), 0) << "moe expert " << i;
      }
    }
    if (scheduler_) {
      EXPECT_EQ(scheduler_->Stop(), 0) << "moe scheduler";
    }
  }

  // A WatchPlan stream of our own, collecting every plan.
  void StartWatching() {
    channel_ = grpc::CreateChannel(scheduler_addr_, grpc::InsecureChannelCredentials());
    sched_stub_ = sv1::SchedulerService::NewStub(channel_);
    watcher_ = std::thread([this] {
      sv1::WatchPlanRequest req;
      auto reader = sched_stub_->WatchPlan(&watch_ctx_, req);
      sv1::PlacementPlan plan;
      while (reader->Read(&plan)) {
        std::lock_guard<std::mutex> lock(mu_);
        plans_.push_back(plan);
      }
      reader->Finish();
    });
  }
  void StopWatching() {
    if (watcher_.joinable()) {
      watch_ctx_.TryCancel();
      watcher_.join();
    }
    sched_stub_.reset();
    channel_.reset();
  }
  // Waits (bounded) for a plan satisfying `pred`; returns it (epoch 0 on timeout).
  template <typename P>
  sv1::PlacementPlan WaitForPlan(P pred, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& p : plans_) {
          if (pred(p)) return p;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return sv1::PlacementPlan();
  }

  void RunScenario(int replicas, int micro_batches, bool sigterm = false);

  // One greedy Generate; "" if it returned the golden tokens, else what went wrong.
  std::string Generate(const Case& c) {
    av1::GenerateRequest req;
    for (int id : c.prompt) req.add_prompt_ids(id);
    req.mutable_sampling()->set_temperature(0);
    req.mutable_sampling()->set_max_tokens(n_gen_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    auto reader = attention_stub_->Generate(&ctx, req);
    av1::GenerateResponse resp;
    std::vector<int> ids;
    while (reader->Read(&resp)) {
      for (const auto& t : resp.tokens()) ids.push_back(t.id());
    }
    const grpc::Status st = reader->Finish();
    if (!st.ok()) return "status " + std::to_string(st.error_code()) + ": " + st.error_message();
    if (ids != c.want) return "tokens differ from the golden ones";
    return "";
  }

  std::string dir_;
  int n_gen_ = 0;
  std::vector<Case> cases_;
  std::unique_ptr<ChildProcess> scheduler_;
  std::string scheduler_addr_;
  std::vector<std::unique_ptr<ChildProcess>> experts_;
  std::vector<std::string> expert_addrs_;
  int killed_ = -1;
  std::unique_ptr<ChildProcess> attention_;
  std::unique_ptr<av1::AttentionService::Stub> attention_stub_;

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<sv1::SchedulerService::Stub> sched_stub_;
  grpc::ClientContext watch_ctx_;
  std::thread watcher_;
  std::mutex mu_;
  std::vector<sv1::PlacementPlan> plans_;
};

// Replicas 2: the worker fails over to the other replica at once; the scheduler's failover plan
// follows. Replicas 1: the dead instance's experts have no replica left: the worker waits for
// the failover plan, in which the survivor loads them, and resends.
// `micro_batches` 2: the worker's two lanes call RemoteExpertExecutor::Run concurrently.
void SchedulerPlacementTest::RunScenario(int replicas, int micro_batches, bool sigterm) {
  scheduler_ = std::make_unique<ChildProcess>(std::vector<std::string>{
      MoeBin(), "scheduler", "--host", "127.0.0.1", "--port", "0", "--admin-port", "0",
      "--model", dir_, "--replicas", std::to_string(replicas), "--min-experts", "2", "--policy", "greedy",
      "--heartbeat-interval-ms", "200", "--heartbeat-timeout-ms", "1500", "--log-level",
      "warn"});
  const std::string listen = scheduler_->WaitForLine("listening on ", std::chrono::seconds(30));
  ASSERT_FALSE(listen.empty()) << "moe scheduler did not start";
  scheduler_addr_ = "127.0.0.1:" + std::to_string(PortOf(listen));
  StartWatching();

  std::vector<int> admin_ports;
  for (int i = 0; i < 2; ++i) {
    experts_.push_back(std::make_unique<ChildProcess>(std::vector<std::string>{
        MoeBin(), "expert", "--model", dir_, "--host", "127.0.0.1", "--port", "0",
        "--admin-port", "0", "--threads", "1", "--scheduler", scheduler_addr_,
        "--scheduler-timeout-ms", "30000", "--log-level", "warn"}));
    const std::string addr = experts_[i]->WaitForLine("listening on ", std::chrono::seconds(60));
    ASSERT_FALSE(addr.empty()) << "moe expert " << i << " did not start";
    expert_addrs_.push_back(addr);
    admin_ports.push_back(PortOf(experts_[i]->WaitForLine("admin on ", std::chrono::seconds(10))));
  }
  // The initial plan covers both instances (--min-experts 2), every expert on both.
  const sv1::PlacementPlan initial = WaitForPlan(
      [](const sv1::PlacementPlan& p) { return p.instances_size() == 2; },
      std::chrono::seconds(30));
  ASSERT_GT(initial.epoch(), 0) << "no plan over both expert instances";
  EXPECT_EQ(initial.epoch(), 1) << "the initial plan waited for both instances";
  EXPECT_EQ(initial.reason(), sv1::PLAN_REASON_INITIAL);
  ASSERT_EQ(initial.experts_size(), 4 * 8);
  for (const auto& ep : initial.experts()) EXPECT_EQ(ep.replicas_size(), replicas);
  // Both expert services load the plan's experts and turn ready.
  for (int i = 0; i < 2; ++i) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (HttpStatus(admin_ports[i], "/ready") != 200 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(HttpStatus(admin_ports[i], "/ready"), 200) << "moe expert " << i << " not ready";
  }

  attention_ = std::make_unique<ChildProcess>(std::vector<std::string>{
      MoeBin(), "attention", "--model", dir_, "--host", "127.0.0.1", "--port", "0",
      "--admin-port", "0", "--experts", "remote", "--scheduler", scheduler_addr_,
      "--placement-wait-ms", "30000", "--dispatch-timeout-ms", "10000", "--micro-batches",
      std::to_string(micro_batches), "--log-level", "warn"});
  const std::string alisten = attention_->WaitForLine("listening on ", std::chrono::seconds(60));
  ASSERT_FALSE(alisten.empty()) << "moe attention did not start";
  const int attention_admin =
      PortOf(attention_->WaitForLine("admin on ", std::chrono::seconds(10)));
  attention_stub_ = av1::AttentionService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(PortOf(alisten)), grpc::InsecureChannelCredentials()));

  // Three clients, four rounds of every golden prompt each; expert 0 dies after 5 requests.
  constexpr int kClients = 3;
  constexpr int kRounds = 4;
  std::atomic<int> done{0};
  std::mutex errors_mu;
  std::vector<std::string> errors;
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        for (size_t k = 0; k < cases_.size(); ++k) {
          const Case& c = cases_[(k + t) % cases_.size()];
          std::string err = Generate(c);
          if (!err.empty()) {
            std::lock_guard<std::mutex> lock(errors_mu);
            errors.push_back("client " + std::to_string(t) + " round " + std::to_string(r) +
                             ": " + err);
          }
          ++done;
        }
      }
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (done.load() < 5 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const int done_at_kill = done.load();
  if (sigterm) {
    ASSERT_EQ(kill(experts_[0]->pid(), SIGTERM), 0);
  } else {
    experts_[0]->Kill();
  }
  killed_ = 0;
  for (auto& c : clients) c.join();
  EXPECT_GE(done_at_kill, 5);
  EXPECT_LT(done_at_kill, kClients * kRounds * static_cast<int>(cases_.size()))
      << "the kill must happen while requests are still to come";
  EXPECT_EQ(done.load(), kClients * kRounds * static_cast<int>(cases_.size()));
  for (const std::string& e : errors) ADD_FAILURE() << e;
  if (sigterm) {
    // Made before break: the scheduler published a plan without the leaving instance while it
    // still served, the worker switched, and only then did it stop (exit 0): nothing was ever
    // resent, and no failover plan was needed.
    const sv1::PlacementPlan drained = WaitForPlan(
        [&](const sv1::PlacementPlan& p) {
          return p.epoch() > initial.epoch() && p.instances_size() == 1 &&
                 p.instances(0).address() == expert_addrs_[1] &&
                 p.state() == sv1::PLAN_STATE_COMMITTED;
        },
        std::chrono::seconds(30));
    ASSERT_GT(drained.epoch(), initial.epoch()) << "no committed plan without the leaving one";
    EXPECT_EQ(drained.reason(), sv1::PLAN_REASON_SCALE);
    int code = -1;
    const auto exit_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!experts_[0]->Exited(&code) && std::chrono::steady_clock::now() < exit_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(code, 0) << "the SIGTERMed expert service did not drain and exit 0";
    EXPECT_EQ(MetricValue(attention_admin, "moe_failovers_total"), 0);
    for (const Case& c : cases_) EXPECT_EQ(Generate(c), "");
    return;
  }
  // The worker did route to the dead instance and resent those experts elsewhere.
  EXPECT_GT(MetricValue(attention_admin, "moe_failovers_total"), 0);
  if (replicas == 1) {
    // Only the new plan could place the orphans: the survivor holds every expert now.
    EXPECT_EQ(HttpStatus(admin_ports[1], "/ready"), 200);
  }

  // The scheduler declares expert 0 dead and publishes a newer epoch without it.
  const std::string dead = expert_addrs_[0];
  const sv1::PlacementPlan failover = WaitForPlan(
      [&](const sv1::PlacementPlan& p) {
        if (p.epoch() <= initial.epoch()) return false;
        for (const auto& inst : p.instances()) {
          if (inst.address() == dead) return false;
        }
        return true;
      },
      std::chrono::seconds(30));
  ASSERT_GT(failover.epoch(), initial.epoch()) << "no plan without the dead instance";
  EXPECT_EQ(failover.reason(), sv1::PLAN_REASON_FAILOVER);
  ASSERT_EQ(failover.instances_size(), 1);
  EXPECT_EQ(failover.instances(0).address(), expert_addrs_[1]);
  for (const auto& ep : failover.experts()) {
    ASSERT_EQ(ep.replicas_size(), 1);
    EXPECT_EQ(ep.replicas(0).instance_index(), 0);
  }
  // Requests after the failover plan are served by the survivor alone.
  for (const Case& c : cases_) EXPECT_EQ(Generate(c), "");
}

TEST_F(SchedulerPlacementTest, TwoReplicasExpertDeathMidGenerationFailsNoRequest) {
  RunScenario(2, /*micro_batches=*/2);
}

TEST_F(SchedulerPlacementTest, OneReplicaExpertDeathWaitsForTheFailoverPlan) {
  RunScenario(1, /*micro_batches=*/1);
}

// SIGTERM instead of SIGKILL: the expert's heartbeats say "leaving", the scheduler drains it
// (a plan without it, made before break) while it keeps serving; no request fails or fails over.
TEST_F(SchedulerPlacementTest, SigtermedExpertIsReplacedBeforeItStops) {
  RunScenario(1, /*micro_batches=*/1, /*sigterm=*/true);
}

}  // namespace
}  // namespace moe
