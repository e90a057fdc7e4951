// Integration (issue 4, "done when"): the golden models served by `moe up` ($MOE_BIN) with 1, 2
// and 4 expert services, 1 and 2 attention workers, the gRPC and shared-memory transports and
// 1 or 2 micro-batches give the same greedy tokens, and logprobs within 1e-5, as the
// single-process engine (`moe attention --experts local`) on every golden prompt, through each
// attention worker's Generate RPC. With shm, the attention workers' /metrics must show that the
// calls went over shared memory (no silent fallback to gRPC). Every process is started on 127.0.0.1 with run-time ports
// and stopped by pid.
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "moe/attention/v1/attention.grpc.pb.h"
#include "tests/testing/child_process.h"
#include "tests/testing/http_client.h"

namespace moe {
namespace {

namespace v1 = ::moe::attention::v1;
using test_util::ChildProcess;
using test_util::MoeBin;
using test_util::PortOf;

// The value of the sample `name` (with labels, exactly as exposed) in a /metrics body, or -1.
double Sample(const std::string& body, const std::string& name) {
  size_t pos = 0;
  while ((pos = body.find(name + " ", pos)) != std::string::npos) {
    if (pos == 0 || body[pos - 1] == '\n') return std::stod(body.substr(pos + name.size() + 1));
    pos += name.size();
  }
  return -1;
}

constexpr double kLogprobTolerance = 1e-5;

struct Step {
  int id = 0;
  float logprob = 0;
  std::vector<std::pair<int, float>> top;
};
using Completion = std::vector<Step>;

std::string ModelDir(const std::string& model) {
  return std::string(MOE_GOLDEN_DIR) + "/" + model + "/hf-f32";
}

nlohmann::json Expected(const std::string& model) {
  std::ifstream in(std::string(MOE_GOLDEN_DIR) + "/" + model + "/expected-f32.json");
  return nlohmann::json::parse(in);
}

// Greedy completions of every golden prompt from the attention worker at `addr`.
std::vector<Completion> GenerateAll(const std::string& addr, const nlohmann::json& expected) {
  auto stub = v1::AttentionService::NewStub(
      grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
  std::vector<Completion> out;
  for (const auto& c : expected["cases"]) {
    v1::GenerateRequest req;
    for (int id : c["prompt_ids"]) req.add_prompt_ids(id);
    req.mutable_sampling()->set_temperature(0);
    req.mutable_sampling()->set_max_tokens(expected["n_gen"].get<int>());
    req.mutable_sampling()->set_logprobs(3);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub->Generate(&ctx, req);
    v1::GenerateResponse resp;
    Completion comp;
    while (reader->Read(&resp)) {
      for (const auto& t : resp.tokens()) {
        Step s{t.id(), t.logprob(), {}};
        for (const auto& alt : t.top()) s.top.emplace_back(alt.id(), alt.logprob());
        comp.push_back(std::move(s));
      }
    }
    grpc::Status st = reader->Finish();
    EXPECT_TRUE(st.ok()) << addr << ": " << st.error_message();
    out.push_back(std::move(comp));
  }
  return out;
}

// The single-process engine's completions, computed once per model.
const std::vector<Completion>& Reference(const std::string& model) {
  static auto* cache = new std::map<std::string, std::vector<Completion>>();
  auto it = cache->find(model);
  if (it != cache->end()) return it->second;
  ChildProcess p({MoeBin(), "attention", "--model", ModelDir(model), "--experts", "local",
                  "--host", "127.0.0.1", "--port", "0", "--admin-port", "0", "--log-level",
                  "warn"});
  std::string addr = p.WaitForLine("listening on ", std::chrono::seconds(60));
  EXPECT_FALSE(addr.empty()) << "single-process attention worker did not start";
  std::vector<Completion> ref = addr.empty() ? std::vector<Completion>{}
                                             : GenerateAll(addr, Expected(model));
  EXPECT_EQ(p.Stop(), 0);
  return cache->emplace(model, std::move(ref)).first->second;
}

struct Param {
  std::string model;
  int experts;
  int attention;
  std::string transport;
  int micro_batches;
};

std::string Name(const ::testing::TestParamInfo<Param>& info) {
  const Param& p = info.param;
  std::string m = p.model;
  for (char& ch : m) {
    if (ch == '-') ch = '_';
  }
  return m + "_e" + std::to_string(p.experts) + "_a" + std::to_string(p.attention) + "_" +
         p.transport + "_mb" + std::to_string(p.micro_batches);
}

class DisaggParityTest : public ::testing::TestWithParam<Param> {};

TEST_P(DisaggParityTest, SameTokensAndLogprobsAsSingleProcess) {
  const Param& p = GetParam();
  const nlohmann::json expected = Expected(p.model);
  const std::vector<Completion>& ref = Reference(p.model);
  ASSERT_EQ(ref.size(), expected["cases"].size());
  // The reference itself reproduces the golden tokens (an independent engine's).
  for (size_t i = 0; i < ref.size(); ++i) {
    std::vector<int> ids;
    for (const Step& s : ref[i]) ids.push_back(s.id);
    ASSERT_EQ(ids, expected["cases"][i]["completion_ids"].get<std::vector<int>>()) << i;
  }

  ChildProcess up({MoeBin(), "up", "--model", ModelDir(p.model), "--port", "0", "--experts",
                   std::to_string(p.experts), "--attention", std::to_string(p.attention),
                   "--transport", p.transport, "--micro-batches",
                   std::to_string(p.micro_batches), "--log-level", "warn"});
  std::string workers = up.WaitForLine("  attention workers ", std::chrono::seconds(120));
  ASSERT_FALSE(workers.empty()) << "moe up did not start";
  std::string admins = up.WaitForLine("  attention admin ", std::chrono::seconds(10));
  ASSERT_FALSE(up.WaitForLine("listening on ", std::chrono::seconds(60)).empty());
  std::vector<std::string> addrs = absl::StrSplit(workers, ' ', absl::SkipWhitespace());
  std::vector<std::string> admin_addrs = absl::StrSplit(admins, ' ', absl::SkipWhitespace());
  ASSERT_EQ(addrs.size(), static_cast<size_t>(p.attention)) << workers;
  ASSERT_EQ(admin_addrs.size(), addrs.size()) << admins;

  for (const std::string& addr : addrs) {
    std::vector<Completion> got = GenerateAll(addr, expected);
    ASSERT_EQ(got.size(), ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      ASSERT_EQ(got[i].size(), ref[i].size()) << addr << " case " << i;
      for (size_t k = 0; k < ref[i].size(); ++k) {
        const Step& a = got[i][k];
        const Step& b = ref[i][k];
        ASSERT_EQ(a.id, b.id) << addr << " case " << i << " token " << k;
        EXPECT_NEAR(a.logprob, b.logprob, kLogprobTolerance) << "case " << i << " token " << k;
        ASSERT_EQ(a.top.size(), b.top.size());
        for (size_t j = 0; j < a.top.size(); ++j) {
          EXPECT_EQ(a.top[j].first, b.top[j].first) << "case " << i << " token " << k;
          EXPECT_NEAR(a.top[j].second, b.top[j].second, kLogprobTolerance);
        }
      }
    }
  }
  for (const std::string& admin : admin_addrs) {
    test_util::Reply r = test_util::Request(PortOf(admin), test_util::http::verb::get, "/metrics");
    ASSERT_EQ(r.status, 200);
    const double shm = Sample(r.body, "moe_shm_transport_calls_total{path=\"shm\"}");
    const double grpc = Sample(r.body, "moe_shm_transport_calls_total{path=\"grpc\"}");
    if (p.transport == "shm") {
      EXPECT_GT(shm, 0) << admin;
      EXPECT_EQ(grpc, 0) << admin;
    } else {
      EXPECT_LE(shm, 0) << admin;  // no shm transport in the process (-1) or unused
    }
  }
  EXPECT_EQ(up.Stop(), 0);
}

std::vector<Param> Matrix() {
  std::vector<Param> out;
  // The full matrix on tiny-mixtral; a diagonal on tiny-qwen3moe.
  for (int experts : {1, 2, 4}) {
    for (int attention : {1, 2}) {
      for (const char* transport : {"grpc", "shm"}) {
        out.push_back({"tiny-mixtral", experts, attention, transport, (experts + attention) % 2 + 1});
      }
    }
  }
  out.push_back({"tiny-qwen3moe", 1, 1, "grpc", 1});
  out.push_back({"tiny-qwen3moe", 2, 2, "shm", 2});
  out.push_back({"tiny-qwen3moe", 4, 1, "shm", 2});
  out.push_back({"tiny-qwen3moe", 4, 2, "grpc", 1});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Matrix, DisaggParityTest, ::testing::ValuesIn(Matrix()), Name);

}  // namespace
}  // namespace moe
