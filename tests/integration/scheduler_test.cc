// Integration: the real `moe scheduler` binary ($MOE_BIN) on 127.0.0.1 with a run-time port.
// The test plays three expert instances over gRPC: registers them, heartbeats, watches the plan
// stream, then lets one go silent and expects a failover plan without it in which every expert
// is still placed. Every process started is stopped (Subprocess: SIGTERM by pid, then SIGKILL).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "moe/scheduler/v1/scheduler.grpc.pb.h"
#include "tests/testing/child_process.h"
#include "tests/testing/http_client.h"

namespace moe {
namespace {

namespace v1 = ::moe::scheduler::v1;

using test_util::ChildProcess;
using test_util::MoeBin;
using test_util::PortOf;

// GET `path` on 127.0.0.1:`port`; the response body ("" on failure).
std::string HttpGet(int port, const std::string& path) {
  try {
    return test_util::Request(port, test_util::http::verb::get, path).body;
  } catch (const std::exception&) {
    return "";
  }
}

constexpr int kLayers = 4;
constexpr int kExperts = 8;

class SchedulerIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    proc_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        MoeBin(), "scheduler", "--port", "0", "--admin-port", "0", "--layers",
        std::to_string(kLayers), "--experts", std::to_string(kExperts),
        "--heartbeat-interval-ms", "200", "--heartbeat-timeout-ms", "1500", "--log-level",
        "warn"});
    const std::string listen = proc_->WaitForLine("listening on ", std::chrono::seconds(30));
    ASSERT_FALSE(listen.empty()) << "scheduler did not start";
    admin_port_ = PortOf(proc_->WaitForLine("admin on ", std::chrono::seconds(10)));
    ASSERT_GT(admin_port_, 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(PortOf(listen)),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::SchedulerService::NewStub(channel_);
  }
  void TearDown() override {
    StopHeartbeats();
    if (proc_) proc_->Stop();
  }

  std::string RegisterExpert(int port) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::RegisterRequest req;
    req.set_role(v1::ROLE_EXPERT);
    req.set_address("127.0.0.1:" + std::to_string(port));
    v1::RegisterResponse resp;
    const grpc::Status s = stub_->Register(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.heartbeat_interval_ms(), 200);
    return resp.instance_id();
  }

  grpc::Status Heartbeat(const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::HeartbeatRequest req;
    req.set_instance_id(id);
    req.set_ready(true);
    // A fake instance "loads" every plan at once: it reports the newest epoch it heard of as
    // loaded, so pending plans (make before break) get committed.
    req.set_loaded_epoch(newest_epoch_.load());
    req.set_applied_epoch(newest_epoch_.load());
    v1::HeartbeatResponse resp;
    grpc::Status s = stub_->Heartbeat(&ctx, req, &resp);
    if (s.ok() && resp.epoch() > newest_epoch_.load()) newest_epoch_ = resp.epoch();
    return s;
  }

  // Heartbeats every instance whose `alive` flag is set, every 200 ms, on a test thread.
  void StartHeartbeats(const std::vector<std::string>& ids) {
    alive_ = std::vector<std::atomic<bool>>(ids.size());
    for (auto& a : alive_) a = true;
    heartbeat_thread_ = std::thread([this, ids] {
      while (!stop_heartbeats_) {
        for (size_t i = 0; i < ids.size(); ++i) {
          if (alive_[i]) Heartbeat(ids[i]);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    });
  }
  void StopHeartbeats() {
    stop_heartbeats_ = true;
    if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  }

  std::unique_ptr<ChildProcess> proc_;
  int admin_port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::SchedulerService::Stub> stub_;
  std::vector<std::atomic<bool>> alive_;
  std::atomic<bool> stop_heartbeats_{false};
  std::atomic<int64_t> newest_epoch_{0};
  std::thread heartbeat_thread_;
};

// Instance ids holding replicas; fails the test if an expert is missing or its shares are off.
std::set<std::string> CheckEveryExpertPlaced(const v1::PlacementPlan& plan) {
  std::set<std::string> used;
  EXPECT_EQ(plan.layers(), kLayers);
  EXPECT_EQ(plan.num_experts(), kExperts);
  EXPECT_EQ(plan.experts_size(), kLayers * kExperts);
  std::set<std::pair<int, int>> seen;
  for (const v1::ExpertPlacement& ep : plan.experts()) {
    seen.insert({ep.layer(), ep.expert()});
    EXPECT_GE(ep.replicas_size(), 1) << ep.layer() << ":" << ep.expert();
    double sum = 0;
    for (const v1::Replica& r : ep.replicas()) {
      sum += r.share();
      used.insert(r.instance_id());
      EXPECT_GE(r.instance_index(), 0);
      EXPECT_LT(r.instance_index(), plan.instances_size());
      if (r.instance_index() < plan.instances_size()) {
        EXPECT_EQ(plan.instances(r.instance_index()).instance_id(), r.instance_id());
      }
    }
    EXPECT_NEAR(sum, 1.0, 1e-9);
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kLayers * kExperts));
  return used;
}

TEST_F(SchedulerIntegrationTest, PlacesOnThreeAndFailsOverWhenOneStopsHeartbeating) {
  const std::vector<std::string> ids = {RegisterExpert(7001), RegisterExpert(7002),
                                        RegisterExpert(7003)};
  ASSERT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 3u);
  StartHeartbeats(ids);

  grpc::ClientContext watch_ctx;
  watch_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::WatchPlanRequest wreq;
  wreq.set_instance_id("test-watcher");
  std::unique_ptr<grpc::ClientReader<v1::PlacementPlan>> reader =
      stub_->WatchPlan(&watch_ctx, wreq);

  // 1. Plans arrive with increasing epochs until one uses all three instances.
  v1::PlacementPlan plan;
  int64_t last_epoch = 0;
  bool all_three = false;
  while (!all_three && reader->Read(&plan)) {
    // Joins are made before break: a PENDING plan, then the same epoch COMMITTED once every
    // instance reported it loaded.
    if (plan.state() == v1::PLAN_STATE_PENDING) {
      EXPECT_GT(plan.epoch(), last_epoch);
      EXPECT_EQ(plan.committed_epoch(), last_epoch);
      continue;
    }
    EXPECT_EQ(plan.state(), v1::PLAN_STATE_COMMITTED);
    EXPECT_GT(plan.epoch(), last_epoch);
    last_epoch = plan.epoch();
    all_three = plan.instances_size() == 3;
    if (all_three) {
      EXPECT_EQ(CheckEveryExpertPlaced(plan), std::set<std::string>(ids.begin(), ids.end()));
    }
  }
  ASSERT_TRUE(all_three) << "no plan over the 3 instances before the deadline";
  const int64_t epoch_with_three = last_epoch;

  // 2. Instance 3 stops heartbeating: a failover plan without it, every expert still placed.
  alive_[2] = false;
  bool failed_over = false;
  while (!failed_over && reader->Read(&plan)) {
    if (plan.state() == v1::PLAN_STATE_PENDING) continue;
    EXPECT_GT(plan.epoch(), last_epoch);
    last_epoch = plan.epoch();
    failed_over = plan.instances_size() == 2;
  }
  ASSERT_TRUE(failed_over) << "no failover plan before the deadline";
  EXPECT_GT(plan.epoch(), epoch_with_three);
  EXPECT_EQ(plan.reason(), v1::PLAN_REASON_FAILOVER);
  EXPECT_EQ(CheckEveryExpertPlaced(plan), (std::set<std::string>{ids[0], ids[1]}));
  for (const v1::Instance& inst : plan.instances()) EXPECT_NE(inst.instance_id(), ids[2]);

  // The dead instance is told to register again; the survivors are still members.
  EXPECT_EQ(Heartbeat(ids[2]).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Heartbeat(ids[0]).ok());

  const std::string metrics = HttpGet(admin_port_, "/metrics");
  EXPECT_NE(metrics.find("moe_instance_deaths_total 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("moe_failovers_total 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("moe_expert_instances 2"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("moe_placement_epoch " + std::to_string(last_epoch)), std::string::npos)
      << metrics;

  // 3. SIGTERM ends the stream cleanly (OK) and the process exits 0.
  StopHeartbeats();
  EXPECT_EQ(proc_->Stop(), 0);
  while (reader->Read(&plan)) {
  }
  const grpc::Status end = reader->Finish();
  EXPECT_TRUE(end.ok()) << end.error_code() << " " << end.error_message();
}

TEST_F(SchedulerIntegrationTest, RejectsMalformedRequests) {
  grpc::ClientContext c1;
  v1::RegisterRequest reg;  // no role
  v1::RegisterResponse rresp;
  EXPECT_EQ(stub_->Register(&c1, reg, &rresp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  const std::string id = RegisterExpert(7001);
  grpc::ClientContext c2;
  v1::ReportLoadRequest load;
  load.set_instance_id(id);
  load.set_layers(kLayers);
  load.set_experts(kExperts);
  load.add_tokens(5);  // 1 count instead of 32
  v1::ReportLoadResponse lresp;
  EXPECT_EQ(stub_->ReportLoad(&c2, load, &lresp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext c3;
  load.set_layers(kLayers + 1);
  EXPECT_EQ(stub_->ReportLoad(&c3, load, &lresp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext c4;
  load.set_layers(kLayers);
  load.clear_tokens();
  for (int i = 0; i < kLayers * kExperts; ++i) load.add_tokens(i);
  v1::CoActivation* ca = load.add_coact();
  ca->set_layer(kLayers - 1);  // no layer after the last one
  ca->set_count(1);
  EXPECT_EQ(stub_->ReportLoad(&c4, load, &lresp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext c5;
  load.clear_coact();
  EXPECT_TRUE(stub_->ReportLoad(&c5, load, &lresp).ok());

  EXPECT_EQ(Heartbeat("expert-999").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Heartbeat(id).ok()) << "still serving after the bad calls";
  // Close the client connection so the stop below is not held by an idle connection.
  stub_.reset();
  channel_.reset();
}

}  // namespace
}  // namespace moe
