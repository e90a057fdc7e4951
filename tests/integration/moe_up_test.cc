// Integration: `moe up` ($MOE_BIN) starts the scheduler, 2 expert services (2 replicas of every
// expert), an attention worker and the gateway on loopback; the OpenAI endpoint serves the
// golden greedy completion; SIGTERM stops every role; an expert service killed (SIGKILL) during
// generation fails no request; when another role dies, moe up says which and stops the rest.
// Without --transport the attention worker reaches the experts over shared memory; without
// --policy each expert service holds whole layers.
#include <dirent.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/gateway_fixture.h"
#include "tests/testing/child_process.h"
#include "tests/testing/http_client.h"

namespace moe {
namespace {

using test_util::ChildProcess;
using test_util::MoeBin;
using test_util::ChildrenOf;
using test_util::PortOf;

bool Alive(pid_t pid) { return kill(pid, 0) == 0; }

// Waits (bounded) until none of `pids` is alive.
bool AllGone(const std::vector<pid_t>& pids) {
  for (int i = 0; i < 500; ++i) {
    bool any = false;
    for (pid_t p : pids) any = any || Alive(p);
    if (!any) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// Tokens per layer in an expert service's moe_expert_tokens_total samples (layer -> tokens).
std::map<int, double> TokensPerLayer(const std::string& metrics) {
  std::map<int, double> tokens;
  std::istringstream in(metrics);
  std::string line;
  const std::string key = "layer=\"";
  while (std::getline(in, line)) {
    if (line.rfind("moe_expert_tokens_total{", 0) != 0) continue;
    const size_t at = line.find(key);
    const size_t space = line.rfind(' ');
    if (at == std::string::npos || space == std::string::npos) continue;
    tokens[std::stoi(line.substr(at + key.size()))] += std::stod(line.substr(space + 1));
  }
  return tokens;
}

class MoeUpTest : public ::testing::Test {
 protected:
  virtual std::string Replicas() const { return "2"; }
  void SetUp() override {
    dir_ = std::string(MOE_GOLDEN_DIR) + "/tiny-mixtral";
    up_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        MoeBin(), "up", "--model", dir_ + "/hf-f32", "--port", "0", "--experts", "2",
        "--replicas", Replicas(), "--log-level", "warn"});
    banner_ = up_->WaitForLine("moe up: serving ", std::chrono::seconds(120));
    expert_admins_ = up_->WaitForLine("  expert admin ", std::chrono::seconds(10));
    attention_admin_ = up_->WaitForLine("  attention admin ", std::chrono::seconds(10));
    std::string addr = up_->WaitForLine("listening on ", std::chrono::seconds(10));
    ASSERT_FALSE(addr.empty()) << "moe up did not start";
    port_ = PortOf(addr);
    children_ = ChildrenOf(up_->pid());
  }
  std::string dir_;
  std::unique_ptr<ChildProcess> up_;
  std::string banner_;           // "<model> (transport ..., ...)"
  std::string attention_admin_;  // the attention worker's admin address
  std::string expert_admins_;    // "  expert admin A B"
  int port_ = 0;
  std::vector<pid_t> children_;
};

TEST_F(MoeUpTest, ServesGoldenCompletionAndStopsEveryRole) {
  // scheduler, 2 expert services, 1 attention worker, 1 gateway
  ASSERT_EQ(children_.size(), 5u);
  std::ifstream in(dir_ + "/expected-f32.json");
  nlohmann::json expected = nlohmann::json::parse(in);
  const auto& c = expected["cases"][0];
  nlohmann::json req = {{"prompt", c["prompt"]}, {"max_tokens", 32}, {"temperature", 0}};
  test_util::Reply r =
      test_util::Request(port_, test_util::http::verb::post, "/v1/completions", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  nlohmann::json body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["choices"][0]["text"], c["completion_text"]);
  EXPECT_EQ(body["usage"]["completion_tokens"], 32);
  // The default data plane: every expert call of the completion went over shared memory.
  EXPECT_NE(banner_.find("(transport shm,"), std::string::npos) << banner_;
  test_util::Reply m =
      test_util::Request(PortOf(attention_admin_), test_util::http::verb::get, "/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_GT(test_util::MetricValue(m.body, "moe_shm_transport_calls_total{path=\"shm\"}"), 0)
      << m.body;
  EXPECT_EQ(test_util::MetricValue(m.body, "moe_shm_transport_calls_total{path=\"grpc\"}"), 0)
      << m.body;
  EXPECT_EQ(up_->Stop(), 0);
  EXPECT_TRUE(AllGone(children_));
}

TEST_F(MoeUpTest, KillingAnExpertServiceDuringGenerationFailsNoRequest) {
  ASSERT_EQ(children_.size(), 5u);
  std::ifstream in(dir_ + "/expected-f32.json");
  nlohmann::json expected = nlohmann::json::parse(in);
  const auto& cases = expected["cases"];
  constexpr int kClients = 3, kRequestsEach = 4;
  std::atomic<int> done{0};
  std::vector<std::vector<test_util::Reply>> replies(kClients);
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      for (int k = 0; k < kRequestsEach; ++k) {
        const auto& c = cases[(t + k) % cases.size()];
        nlohmann::json req = {{"prompt", c["prompt_ids"]}, {"max_tokens", 32}, {"temperature", 0}};
        replies[t].push_back(test_util::Request(port_, test_util::http::verb::post,
                                                "/v1/completions", req.dump()));
        done.fetch_add(1);
      }
    });
  }
  // Kill the first expert service once generation is under way (bounded wait).
  for (int i = 0; i < 1000 && done.load() < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(kill(children_[1], SIGKILL), 0);
  for (auto& c : clients) c.join();
  for (int t = 0; t < kClients; ++t) {
    ASSERT_EQ(replies[t].size(), static_cast<size_t>(kRequestsEach));
    for (int k = 0; k < kRequestsEach; ++k) {
      const test_util::Reply& r = replies[t][k];
      ASSERT_EQ(r.status, 200) << "client " << t << " request " << k << ": " << r.body;
      const auto& c = cases[(t + k) % cases.size()];
      nlohmann::json body = nlohmann::json::parse(r.body);
      EXPECT_EQ(body["choices"][0]["text"], c["completion_text"]);
      EXPECT_EQ(body["usage"]["completion_tokens"], c["completion_ids"].size());
    }
  }
  // moe up keeps serving on the surviving expert service.
  EXPECT_FALSE(up_->Exited());
  nlohmann::json req = {{"prompt", cases[0]["prompt"]}, {"max_tokens", 32}, {"temperature", 0}};
  test_util::Reply r =
      test_util::Request(port_, test_util::http::verb::post, "/v1/completions", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["choices"][0]["text"], cases[0]["completion_text"]);
  EXPECT_EQ(up_->Stop(), 0);
  EXPECT_TRUE(AllGone(children_));
}

class MoeUpOneCopyTest : public MoeUpTest {
 protected:
  std::string Replicas() const override { return "1"; }
};

// The default placement (layer blocks): each expert service holds whole layers, so every
// layer's tokens go to one service; the 4 layers of tiny-mixtral split 2 + 2.
TEST_F(MoeUpOneCopyTest, EachLayerIsComputedByOneExpertService) {
  ASSERT_EQ(children_.size(), 5u);
  std::ifstream in(dir_ + "/expected-f32.json");
  const nlohmann::json expected = nlohmann::json::parse(in);
  const auto& c = expected["cases"][0];
  nlohmann::json req = {{"prompt", c["prompt"]}, {"max_tokens", 16}, {"temperature", 0}};
  test_util::Reply r =
      test_util::Request(port_, test_util::http::verb::post, "/v1/completions", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  std::istringstream admins(expert_admins_.substr(expert_admins_.find("admin ") + 6));
  std::vector<std::map<int, double>> per_service;
  std::string admin;
  while (admins >> admin) {
    test_util::Reply m = test_util::Request(PortOf(admin), test_util::http::verb::get, "/metrics");
    ASSERT_EQ(m.status, 200);
    per_service.push_back(TokensPerLayer(m.body));
  }
  ASSERT_EQ(per_service.size(), 2u) << expert_admins_;
  std::set<int> layers;
  for (const auto& service : per_service) {
    EXPECT_EQ(service.size(), 2u) << "layers per service";
    for (const auto& [layer, tokens] : service) {
      EXPECT_GT(tokens, 0) << "layer " << layer;
      EXPECT_TRUE(layers.insert(layer).second) << "layer " << layer << " on both services";
    }
  }
  EXPECT_EQ(layers, (std::set<int>{0, 1, 2, 3}));
  EXPECT_EQ(up_->Stop(), 0);
  EXPECT_TRUE(AllGone(children_));
}

TEST_F(MoeUpTest, ARoleDyingStopsTheRest) {
  ASSERT_EQ(children_.size(), 5u);
  kill(children_[3], SIGKILL);  // the attention worker
  int code = 0;
  for (int i = 0; i < 500 && !up_->Exited(&code); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(code, 1);
  EXPECT_TRUE(AllGone(children_));
}

}  // namespace
}  // namespace moe
