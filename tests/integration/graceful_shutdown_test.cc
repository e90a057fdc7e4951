// Integration: graceful shutdown of a busy attention worker (Kubernetes sends SIGTERM, then
// SIGKILL after the grace period). The real `moe attention --experts local` on the golden
// tiny-mixtral model, several streaming Generate calls in flight:
//   - SIGTERM: /ready turns 503, a call arriving during the drain gets UNAVAILABLE, every call
//     accepted before the signal streams all its tokens (finish "length") and ends OK, and the
//     process exits 0;
//   - SIGINT: stops at once; the calls in flight end with UNAVAILABLE and the exit code is 3
//     (requests aborted).
// And of a busy expert service (`moe expert --experts all`, Forward calls in a loop): after
// SIGTERM /ready turns 503 but every Forward call still succeeds while they keep coming; once
// they stop it exits 0 after --drain-idle-ms.
// And of a busy gateway (`moe gateway` in front of that attention worker): SIGTERM turns /ready
// and new API requests to 503, every request being answered gets its full completion, and the
// gateway exits 0.
// Every wait is bounded; the process is stopped by pid in every path.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "moe/attention/v1/attention.grpc.pb.h"
#include "moe/expert/v1/expert.grpc.pb.h"
#include "tests/testing/child_process.h"
#include "tests/testing/http_client.h"

namespace moe {
namespace {

namespace v1 = ::moe::attention::v1;
using test_util::ChildProcess;
using test_util::MoeBin;
using test_util::PortOf;

constexpr int kCalls = 6;
constexpr int kMaxTokens = 400;  // the model's context is 512 positions

// One streaming Generate call read on its own thread.
struct Call {
  std::atomic<int> tokens{0};
  std::atomic<bool> started{false};  // the first message arrived: the worker accepted it
  std::atomic<bool> done{false};
  grpc::Status status;
  std::string finish_reason;
  int completion_tokens = 0;
  std::thread reader;
};

class GracefulShutdownTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string model = std::string(MOE_GOLDEN_DIR) + "/tiny-mixtral/hf-f32";
    process_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        MoeBin(), "attention", "--model", model, "--experts", "local", "--host", "127.0.0.1",
        "--port", "0", "--admin-port", "0", "--threads", "1", "--drain-timeout-s", "60",
        "--log-level", "warn"});
    const std::string listen = process_->WaitForLine("listening on ", std::chrono::seconds(60));
    ASSERT_FALSE(listen.empty()) << "moe attention did not start";
    const std::string admin = process_->WaitForLine("admin on ", std::chrono::seconds(10));
    ASSERT_FALSE(admin.empty());
    admin_port_ = PortOf(admin);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(PortOf(listen)),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::AttentionService::NewStub(channel_);
    ASSERT_EQ(test_util::TryRequest(admin_port_, test_util::http::verb::get, "/ready").status, 200);
  }

  void TearDown() override {
    for (auto& c : calls_) {
      if (c->reader.joinable()) c->reader.join();
    }
    stub_.reset();
    channel_.reset();
    process_->Stop(std::chrono::seconds(10));  // no-op once it exited
  }

  static v1::GenerateRequest Request(int i) {
    v1::GenerateRequest req;
    for (int t = 0; t < 8; ++t) req.add_prompt_ids(3 + (i * 7 + t * 13) % 500);
    req.mutable_sampling()->set_temperature(0);
    req.mutable_sampling()->set_max_tokens(kMaxTokens);
    req.mutable_sampling()->set_ignore_eos(true);
    return req;
  }

  void StartCalls() {
    for (int i = 0; i < kCalls; ++i) {
      calls_.push_back(std::make_unique<Call>());
      Call* c = calls_.back().get();
      c->reader = std::thread([this, c, i] {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
        auto reader = stub_->Generate(&ctx, Request(i));
        v1::GenerateResponse resp;
        while (reader->Read(&resp)) {
          c->tokens += resp.tokens_size();
          c->started = true;
          if (!resp.finish_reason().empty()) {
            c->finish_reason = resp.finish_reason();
            c->completion_tokens = resp.completion_tokens();
          }
        }
        c->status = reader->Finish();
        c->done = true;
      });
    }
  }

  // Waits (bounded) until every call streamed its first tokens: all are accepted and running.
  bool WaitAllStarted() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      int started = 0;
      for (auto& c : calls_) started += c->started ? 1 : 0;
      if (started == kCalls) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }

  int TokensSoFar() const {
    int n = 0;
    for (auto& c : calls_) n += c->tokens;
    return n;
  }

  // The exit code once the process ended by itself (bounded), or -2.
  int WaitExit(std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int code = -2;
    while (std::chrono::steady_clock::now() < deadline) {
      if (process_->Exited(&code)) return code;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -2;
  }

  std::unique_ptr<ChildProcess> process_;
  int admin_port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AttentionService::Stub> stub_;
  std::vector<std::unique_ptr<Call>> calls_;
};

TEST_F(GracefulShutdownTest, SigtermDrainsEveryAcceptedRequest) {
  StartCalls();
  ASSERT_TRUE(WaitAllStarted()) << "the calls did not start";
  const int at_signal = TokensSoFar();
  ASSERT_EQ(kill(process_->pid(), SIGTERM), 0);

  // The drain has begun once /ready answers 503; a new call is then refused.
  bool not_ready = false;
  for (int i = 0; i < 500 && !not_ready; ++i) {
    not_ready =
        test_util::TryRequest(admin_port_, test_util::http::verb::get, "/ready").status == 503;
    if (!not_ready) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(not_ready) << "/ready did not turn 503 after SIGTERM";
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    auto reader = stub_->Generate(&ctx, Request(99));
    v1::GenerateResponse resp;
    int late_tokens = 0;
    while (reader->Read(&resp)) late_tokens += resp.tokens_size();
    const grpc::Status st = reader->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    EXPECT_EQ(late_tokens, 0);
  }

  for (auto& c : calls_) c->reader.join();
  // Work was really in flight when the signal came...
  EXPECT_LT(at_signal, kCalls * kMaxTokens);
  // ...and none of it was lost.
  for (int i = 0; i < kCalls; ++i) {
    const Call& c = *calls_[i];
    EXPECT_TRUE(c.status.ok()) << "call " << i << ": " << c.status.error_message();
    EXPECT_EQ(c.tokens.load(), kMaxTokens) << "call " << i;
    EXPECT_EQ(c.completion_tokens, kMaxTokens) << "call " << i;
    EXPECT_EQ(c.finish_reason, "length") << "call " << i;
  }
  stub_.reset();
  channel_.reset();  // an idle client connection would hold the server's shutdown (5 s)
  EXPECT_EQ(WaitExit(std::chrono::seconds(30)), 0);
}

TEST_F(GracefulShutdownTest, SigintStopsAtOnceAndSaysRequestsWereAborted) {
  StartCalls();
  ASSERT_TRUE(WaitAllStarted()) << "the calls did not start";
  ASSERT_EQ(kill(process_->pid(), SIGINT), 0);
  for (auto& c : calls_) c->reader.join();
  int aborted = 0;
  for (const auto& c : calls_) {
    if (c->status.ok()) {
      EXPECT_EQ(c->tokens.load(), kMaxTokens);  // finished just before the signal
    } else {
      EXPECT_EQ(c->status.error_code(), grpc::StatusCode::UNAVAILABLE) << c->status.error_message();
      EXPECT_LT(c->tokens.load(), kMaxTokens);
      ++aborted;
    }
  }
  EXPECT_GT(aborted, 0) << "every call finished before SIGINT: the test needs longer calls";
  stub_.reset();
  channel_.reset();
  EXPECT_EQ(WaitExit(std::chrono::seconds(30)), aborted > 0 ? 3 : 0);
}

TEST(ExpertGracefulShutdownTest, SigtermKeepsServingUntilIdleThenExitsZero) {
  namespace ev1 = ::moe::expert::v1;
  namespace cv1 = ::moe::common::v1;
  const std::string model = std::string(MOE_GOLDEN_DIR) + "/tiny-mixtral/hf-f32";
  ChildProcess process(
      {MoeBin(),      "expert",    "--model",         model, "--experts",         "all",
       "--host",      "127.0.0.1", "--port",          "0",   "--admin-port",      "0",
       "--threads",   "1",         "--drain-idle-ms", "800", "--drain-timeout-s", "20",
       "--log-level", "warn"});
  const std::string listen = process.WaitForLine("listening on ", std::chrono::seconds(60));
  ASSERT_FALSE(listen.empty()) << "moe expert did not start";
  const int admin_port = PortOf(process.WaitForLine("admin on ", std::chrono::seconds(10)));
  ASSERT_GT(admin_port, 0);
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(PortOf(listen)),
                                     grpc::InsecureChannelCredentials());
  auto stub = ev1::ExpertService::NewStub(channel);
  constexpr int kHidden = 64;  // tiny-mixtral
  ev1::ComputeRequest req;
  req.set_layer(1);
  ev1::Shard* shard = req.add_shards();
  shard->set_expert(3);
  std::vector<float> x(4 * kHidden, 0.25f);
  shard->mutable_hidden()->set_dtype(cv1::DTYPE_F32);
  shard->mutable_hidden()->add_shape(4);
  shard->mutable_hidden()->add_shape(kHidden);
  shard->mutable_hidden()->set_data(reinterpret_cast<const char*>(x.data()), x.size() * 4);

  // Forward calls back to back on one thread, counted by outcome.
  std::atomic<bool> stop_calls{false};
  std::atomic<int> ok{0}, failed{0};
  std::string first_error;
  std::thread caller([&] {
    while (!stop_calls) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      ev1::ComputeResponse resp;
      const grpc::Status st = stub->Forward(&ctx, req, &resp);
      if (st.ok() && resp.outputs_size() == 1) {
        ++ok;
      } else {
        if (failed++ == 0) first_error = st.error_message();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  const auto wait_for = [](const std::function<bool()>& cond, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (cond()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return cond();
  };
  ASSERT_TRUE(wait_for([&] { return ok >= 20; }, std::chrono::seconds(30)));
  ASSERT_EQ(kill(process.pid(), SIGTERM), 0);
  EXPECT_TRUE(wait_for(
      [&] {
        return test_util::TryRequest(admin_port, test_util::http::verb::get, "/ready").status ==
               503;
      },
      std::chrono::seconds(5)))
      << "/ready did not turn 503 after SIGTERM";
  // Draining while busy: calls keep succeeding well past the idle window.
  const int ok_at_signal = ok;
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  EXPECT_FALSE(process.Exited()) << "exited while calls were still arriving";
  stop_calls = true;
  caller.join();
  EXPECT_EQ(failed.load(), 0) << first_error;
  EXPECT_GT(ok.load(), ok_at_signal + 20);
  // Idle now: it exits by itself, 0.
  int code = -2;
  EXPECT_TRUE(wait_for([&] { return process.Exited(&code); }, std::chrono::seconds(15)));
  EXPECT_EQ(code, 0);
  stub.reset();
  channel.reset();
}

// The value of the first sample of `name` in a /metrics body (-1 if absent).
double MetricValue(const std::string& body, const std::string& name) {
  size_t pos = 0;
  while ((pos = body.find(name, pos)) != std::string::npos) {
    if ((pos == 0 || body[pos - 1] == '\n') && pos + name.size() < body.size() &&
        (body[pos + name.size()] == ' ' || body[pos + name.size()] == '{')) {
      const size_t space = body.find(' ', pos);
      return std::stod(body.substr(space + 1));
    }
    pos += name.size();
  }
  return -1;
}

TEST(GatewayGracefulShutdownTest, SigtermFinishesEveryRequestThenExitsZero) {
  const std::string model = std::string(MOE_GOLDEN_DIR) + "/tiny-mixtral/hf-f32";
  ChildProcess worker({MoeBin(), "attention", "--model", model, "--experts", "local", "--host",
                       "127.0.0.1", "--port", "0", "--admin-port", "0", "--threads", "1",
                       "--log-level", "warn"});
  const std::string worker_addr = worker.WaitForLine("listening on ", std::chrono::seconds(60));
  ASSERT_FALSE(worker_addr.empty()) << "attention worker did not start";
  ChildProcess gateway({MoeBin(), "gateway", "--model", model, "--attention", worker_addr, "--host",
                        "127.0.0.1", "--port", "0", "--drain-timeout-s", "60", "--log-level",
                        "warn"});
  const int port = PortOf(gateway.WaitForLine("listening on ", std::chrono::seconds(60)));
  ASSERT_GT(port, 0) << "gateway did not start";
  bool ready = false;
  for (int i = 0; i < 300 && !ready; ++i) {
    ready = test_util::TryRequest(port, test_util::http::verb::get, "/ready").status == 200;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(ready);

  constexpr int kRequests = 4;
  constexpr int kTokens = 400;
  const nlohmann::json body = {{"prompt", "Once upon a time"},
                               {"max_tokens", kTokens},
                               {"temperature", 0},
                               {"ignore_eos", true}};
  std::vector<test_util::Reply> replies(kRequests);
  std::vector<std::thread> clients;
  for (int i = 0; i < kRequests; ++i) {
    clients.emplace_back([&, i] {
      replies[i] =
          test_util::TryRequest(port, test_util::http::verb::post, "/v1/completions", body.dump());
    });
  }
  // SIGTERM once every request is being generated.
  bool busy = false;
  for (int i = 0; i < 500 && !busy; ++i) {
    const std::string m = test_util::TryRequest(port, test_util::http::verb::get, "/metrics").body;
    busy = MetricValue(m, "moe_num_requests_running") >= kRequests;
    if (!busy) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(busy) << "the requests did not start";
  ASSERT_EQ(kill(gateway.pid(), SIGTERM), 0);
  // Draining: not ready, and a new request is refused with OpenAI's error shape.
  test_util::Reply probe;
  for (int i = 0; i < 100; ++i) {  // the signal is handled asynchronously: poll briefly
    probe = test_util::TryRequest(port, test_util::http::verb::get, "/ready");
    if (probe.status != 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const test_util::Reply late =
      test_util::TryRequest(port, test_util::http::verb::post, "/v1/completions", body.dump());
  for (auto& c : clients) c.join();
  EXPECT_EQ(probe.status, 503) << probe.body;
  EXPECT_EQ(late.status, 503) << late.body;
  if (late.status == 503) {
    EXPECT_TRUE(nlohmann::json::parse(late.body).contains("error")) << late.body;
  }
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_EQ(replies[i].status, 200) << i << ": " << replies[i].body;
    const nlohmann::json r = nlohmann::json::parse(replies[i].body);
    EXPECT_EQ(r["usage"]["completion_tokens"], kTokens) << i;
    EXPECT_EQ(r["choices"][0]["finish_reason"], "length") << i;
  }
  int code = -1;
  for (int i = 0; i < 300 && !gateway.Exited(&code); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(code, 0) << "the gateway did not exit 0 after draining";
  EXPECT_EQ(worker.Stop(), 0);
}

}  // namespace
}  // namespace moe
