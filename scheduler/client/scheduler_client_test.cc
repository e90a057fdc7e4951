// SchedulerClient against an in-process SchedulerServer + SchedulerCore (FakeClock for the
// scheduler's liveness decisions; the client's own threads run on real time).
#include "scheduler/client/scheduler_client.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "scheduler/core/scheduler_core.h"
#include "scheduler/grpc/scheduler_server.h"

namespace moe::scheduler {
namespace {

// Polls `done` every 5 ms for up to 30 s; true once it holds.
template <typename F>
bool Eventually(F done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return done();
}

class SchedulerClientTest : public ::testing::Test {
 protected:
  void SetUp() override { StartScheduler(0); }
  void TearDown() override {
    clients_.clear();  // before the server: an open channel holds its Shutdown
    if (server_) server_->Shutdown();
  }

  void StartScheduler(int port) {
    SchedulerConfig c;
    c.layers = 2;
    c.experts = 4;
    c.heartbeat_interval = absl::Milliseconds(20);
    c.heartbeat_timeout = absl::Seconds(2);
    core_ = std::make_unique<SchedulerCore>(c, [this](auto plan) {
      server_->PublishPlan(*plan);
    });
    SchedulerServerOptions o;
    o.port = port;
    auto s = SchedulerServer::Start(o, core_.get(), &clock_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }
  std::string Address() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  SchedulerClientOptions Options(v1::Role role, const std::string& self) {
    SchedulerClientOptions o;
    o.scheduler = Address();
    o.role = role;
    o.address = self;
    o.startup_timeout = absl::Seconds(30);
    return o;
  }

  struct Plans {
    absl::Mutex mu;
    std::vector<v1::PlacementPlan> got;
    size_t size() {
      absl::MutexLock lock(&mu);
      return got.size();
    }
    v1::PlacementPlan last() {
      absl::MutexLock lock(&mu);
      return got.back();
    }
  };

  FakeClock clock_;
  std::unique_ptr<SchedulerCore> core_;
  std::unique_ptr<SchedulerServer> server_;
  std::vector<std::unique_ptr<SchedulerClient>> clients_;
};

TEST_F(SchedulerClientTest, RegistersWatchesPlansAndReportsStatus) {
  Plans plans;
  std::atomic<int64_t> applied{0};
  auto c = SchedulerClient::Start(
      Options(v1::ROLE_EXPERT, "127.0.0.1:7001"),
      [&](const v1::PlacementPlan& p, const std::string&) {
        absl::MutexLock lock(&plans.mu);
        plans.got.push_back(p);
      },
      [&] {
        InstanceStatus s;
        s.applied_epoch = applied.load();
        s.ready = s.applied_epoch > 0;
        return s;
      });
  ASSERT_TRUE(c.ok()) << c.status();
  SchedulerClient* client = c->get();
  clients_.push_back(std::move(*c));
  EXPECT_EQ(client->registrations(), 1);
  ASSERT_FALSE(client->instance_id().empty());
  ASSERT_EQ(core_->Members().size(), 1u);
  EXPECT_EQ(core_->Members()[0].info.address, "127.0.0.1:7001");
  EXPECT_EQ(core_->Members()[0].id, client->instance_id());

  TickResult r = core_->Tick(clock_.Now());
  ASSERT_NE(r.published, nullptr);
  ASSERT_TRUE(Eventually([&] { return plans.size() == 1; }));
  const v1::PlacementPlan p = plans.last();
  EXPECT_EQ(p.epoch(), 1);
  EXPECT_EQ(p.state(), v1::PLAN_STATE_COMMITTED);
  ASSERT_EQ(p.instances_size(), 1);
  EXPECT_EQ(p.instances(0).instance_id(), client->instance_id());
  EXPECT_EQ(p.experts_size(), 2 * 4);

  // The status provider's values reach the scheduler with the next heartbeats.
  applied = 1;
  client->HeartbeatNow();
  ASSERT_TRUE(Eventually([&] {
    auto m = core_->Members();
    return m.size() == 1 && m[0].applied_epoch == 1 && m[0].ready;
  }));
  EXPECT_TRUE(Eventually([&] { return client->scheduler_epoch() == 1; }));
}

TEST_F(SchedulerClientTest, RegistersAgainWhenForgotten) {
  Plans plans;
  std::vector<std::string> ids;  // guarded by plans.mu
  auto c = SchedulerClient::Start(
      Options(v1::ROLE_EXPERT, "127.0.0.1:7100"),
      [&](const v1::PlacementPlan& p, const std::string& id) {
        absl::MutexLock lock(&plans.mu);
        plans.got.push_back(p);
        ids.push_back(id);
      },
      nullptr);
  ASSERT_TRUE(c.ok()) << c.status();
  SchedulerClient* client = c->get();
  clients_.push_back(std::move(*c));
  const std::string first = client->instance_id();
  ASSERT_NE(core_->Tick(clock_.Now()).published, nullptr);
  ASSERT_TRUE(Eventually([&] { return plans.size() == 1; }));
  // The scheduler's clock jumps past the timeout: the instance is declared dead and removed;
  // its next heartbeat gets NOT_FOUND and it registers again under a new id.
  clock_.Advance(absl::Seconds(10));
  TickResult r = core_->Tick(clock_.Now());
  ASSERT_EQ(r.dead, std::vector<std::string>{first});
  ASSERT_TRUE(Eventually([&] { return client->registrations() == 2; }));
  EXPECT_NE(client->instance_id(), first);
  ASSERT_EQ(core_->Members().size(), 1u);
  EXPECT_EQ(core_->Members()[0].id, client->instance_id());
  EXPECT_EQ(core_->Members()[0].info.address, "127.0.0.1:7100");
  // The newest plan is handed over again with the new id.
  ASSERT_TRUE(Eventually([&] { return plans.size() >= 2; }));
  absl::MutexLock lock(&plans.mu);
  EXPECT_EQ(plans.got[1].epoch(), 1);
  EXPECT_EQ(ids[0], first);
  EXPECT_EQ(ids[1], client->instance_id());
}

TEST_F(SchedulerClientTest, ReportLoadDirectAndPeriodic) {
  std::atomic<int> provided{0};
  SchedulerClientOptions o = Options(v1::ROLE_ATTENTION, "127.0.0.1:7200");
  o.load_interval = absl::Milliseconds(10);
  auto c = SchedulerClient::Start(o, nullptr, nullptr,
                                  [&]() -> std::optional<v1::ReportLoadRequest> {
                                    if (provided.load() >= 2) return std::nullopt;
                                    ++provided;
                                    v1::ReportLoadRequest req;
                                    req.set_layers(2);
                                    req.set_experts(4);
                                    for (int i = 0; i < 8; ++i) req.add_tokens(i == 3 ? 5 : 0);
                                    return req;
                                  });
  ASSERT_TRUE(c.ok()) << c.status();
  SchedulerClient* client = c->get();
  clients_.push_back(std::move(*c));
  ASSERT_TRUE(Eventually([&] { return core_->Load(clock_.Now()).total_tokens == 10; }));
  EXPECT_EQ(core_->Load(clock_.Now()).tokens[3], 10);

  v1::ReportLoadRequest req;
  req.set_layers(2);
  req.set_experts(4);
  for (int i = 0; i < 8; ++i) req.add_tokens(i == 6 ? 7 : 0);
  auto* ca = req.add_coact();
  ca->set_layer(0);
  ca->set_a(1);
  ca->set_b(2);
  ca->set_count(4);
  ASSERT_TRUE(client->ReportLoad(req).ok());
  LoadSnapshot load = core_->Load(clock_.Now());
  EXPECT_EQ(load.total_tokens, 17);
  EXPECT_EQ(load.tokens[6], 7);
  ASSERT_EQ(load.coact.size(), 1u);
  EXPECT_EQ(load.coact[0].count, 4);
  req.set_experts(5);  // wrong shape: the scheduler refuses it
  EXPECT_EQ(client->ReportLoad(req).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SchedulerClientTest, StartGivesUpWhenNoSchedulerAnswers) {
  SchedulerClientOptions o = Options(v1::ROLE_EXPERT, "127.0.0.1:7300");
  o.scheduler = "127.0.0.1:1";  // nothing listens there
  o.startup_timeout = absl::Milliseconds(300);
  auto c = SchedulerClient::Start(o, nullptr, nullptr);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kDeadlineExceeded) << c.status();
}

TEST_F(SchedulerClientTest, RegisterRetriesUntilTheSchedulerStarts) {
  // Free the port, start registering against it, then bring the scheduler back there.
  const int port = server_->port();
  SchedulerClientOptions o = Options(v1::ROLE_EXPERT, "127.0.0.1:7400");
  server_->Shutdown();
  server_.reset();
  std::unique_ptr<SchedulerClient> client;
  absl::Status status;
  std::thread starter([&] {
    auto c = SchedulerClient::Start(o, nullptr, nullptr);
    status = c.status();
    if (c.ok()) client = std::move(*c);
  });
  absl::SleepFor(absl::Milliseconds(300));
  StartScheduler(port);
  starter.join();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(client->registrations(), 1);
  ASSERT_EQ(core_->Members().size(), 1u);
  clients_.push_back(std::move(client));
}

TEST_F(SchedulerClientTest, BackgroundRegistrationAndStopBeforeRegistered) {
  SchedulerClientOptions o = Options(v1::ROLE_EXPERT, "127.0.0.1:7600");
  o.scheduler = "127.0.0.1:1";  // nothing listens there
  o.register_in_background = true;
  Plans plans;
  auto c = SchedulerClient::Start(
      o, [&](const v1::PlacementPlan& p, const std::string&) {
        absl::MutexLock lock(&plans.mu);
        plans.got.push_back(p);
      },
      nullptr);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->instance_id(), "");
  EXPECT_EQ((*c)->registrations(), 0);
  (*c)->Stop();  // returns though never registered
  EXPECT_EQ(plans.size(), 0u);

  // Against the live scheduler: registers from the heartbeat thread, then gets the plan with
  // its id.
  o.scheduler = Address();
  std::string id_seen;
  auto c2 = SchedulerClient::Start(
      o, [&](const v1::PlacementPlan& p, const std::string& id) {
        absl::MutexLock lock(&plans.mu);
        plans.got.push_back(p);
        id_seen = id;
      },
      nullptr);
  ASSERT_TRUE(c2.ok()) << c2.status();
  SchedulerClient* client = c2->get();
  clients_.push_back(std::move(*c2));
  ASSERT_TRUE(Eventually([&] { return core_->Members().size() == 1; }));
  ASSERT_NE(core_->Tick(clock_.Now()).published, nullptr);
  ASSERT_TRUE(Eventually([&] { return plans.size() == 1; }));
  absl::MutexLock lock(&plans.mu);
  EXPECT_EQ(id_seen, client->instance_id());
  EXPECT_EQ(plans.got[0].instances(0).instance_id(), id_seen);
}

TEST_F(SchedulerClientTest, WatchReconnectsAfterSchedulerRestart) {
  Plans plans;
  auto c = SchedulerClient::Start(
      Options(v1::ROLE_EXPERT, "127.0.0.1:7500"),
      [&](const v1::PlacementPlan& p, const std::string&) {
        absl::MutexLock lock(&plans.mu);
        plans.got.push_back(p);
      },
      nullptr);
  ASSERT_TRUE(c.ok()) << c.status();
  SchedulerClient* client = c->get();
  clients_.push_back(std::move(*c));
  ASSERT_NE(core_->Tick(clock_.Now()).published, nullptr);
  ASSERT_TRUE(Eventually([&] { return plans.size() == 1; }));
  const std::string first = client->instance_id();

  // Restart the scheduler on the same port: the client re-registers (NOT_FOUND) and the new
  // scheduler's first plan (epoch 1 again) arrives over a new stream.
  const int port = server_->port();
  server_->Shutdown();
  StartScheduler(port);
  ASSERT_TRUE(Eventually([&] { return core_->Members().size() == 1; }));
  ASSERT_NE(core_->Tick(clock_.Now()).published, nullptr);
  ASSERT_TRUE(Eventually([&] { return plans.size() == 2; }));
  const v1::PlacementPlan p = plans.last();
  EXPECT_EQ(p.epoch(), 1);
  ASSERT_EQ(p.instances_size(), 1);
  EXPECT_EQ(p.instances(0).instance_id(), client->instance_id());
  EXPECT_EQ(client->registrations(), 2);
  client->Stop();
  client->Stop();  // idempotent
}

// A watcher that stops reading while writes are in flight must not hold Shutdown forever:
// Close ends its stream during a blocked write, Shutdown's deadline then fails that write, and
// the reactor must still finish (it used to stay undone: Server::Shutdown waited for ever).
TEST_F(SchedulerClientTest, ShutdownEndsAWatchStreamThatStoppedReading) {
  auto channel = grpc::CreateChannel(Address(), grpc::InsecureChannelCredentials());
  auto stub = v1::SchedulerService::NewStub(channel);
  grpc::ClientContext ctx;
  auto reader = stub->WatchPlan(&ctx, v1::WatchPlanRequest());  // never read
  // Plans of ~1 MB each: a few fill the stream's flow-control window, so a write blocks.
  PublishedPlan big;
  big.plan.layers = 256;
  big.plan.experts = 256;
  big.plan.instances = 4;
  big.plan.replicas.assign(256 * 256, {{0, 0.25}, {1, 0.25}, {2, 0.25}, {3, 0.25}});
  for (int i = 1; i <= 8; ++i) {
    big.plan.epoch = i;
    server_->PublishPlan(big);
  }
  absl::SleepFor(absl::Milliseconds(200));  // let the first writes go out and block
  auto done = std::make_shared<std::atomic<bool>>(false);
  SchedulerServer* server = server_.get();
  std::thread([server, done] {
    server->Shutdown();
    *done = true;
  }).detach();
  const bool ended = Eventually([&] { return done->load(); });
  EXPECT_TRUE(ended) << "SchedulerServer::Shutdown did not return";
  ctx.TryCancel();
  if (!ended) {
    (void)server_.release();  // still inside Shutdown on the detached thread: never destroy it
    (void)reader.release();
    return;
  }
  reader.reset();
}

}  // namespace
}  // namespace moe::scheduler
