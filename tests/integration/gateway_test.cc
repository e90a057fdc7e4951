// Integration: a real `moe attention` worker on the golden tiny-mixtral (F32) and a real
// `moe gateway` in front of it, both on 127.0.0.1 with run-time ports, driven over HTTP:
// greedy completions give the golden text, echo+logprobs give the golden log-probabilities,
// malformed requests get OpenAI error JSON and the gateway keeps serving, the API key is
// enforced, and /ready and /metrics answer. Every process is stopped by pid.
#include <utility>  // before Asio (DESIGN.md section 9)

#include <fstream>
#include <string>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/testing/child_process.h"
#include "tests/testing/http_client.h"

namespace moe {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;
using test_util::ChildProcess;
using test_util::MoeBin;
using test_util::PortOf;

using test_util::Reply;
using test_util::Request;

class GatewayTest : public ::testing::Test {
 protected:
  void Start(const std::string& api_key = "") {
    dir_ = std::string(MOE_GOLDEN_DIR) + "/tiny-mixtral";
    worker_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        MoeBin(), "attention", "--model", dir_ + "/hf-f32", "--host", "127.0.0.1", "--port", "0",
        "--admin-port", "0", "--log-level", "warn"});
    const std::string worker_addr = worker_->WaitForLine("listening on ", std::chrono::seconds(60));
    ASSERT_FALSE(worker_addr.empty()) << "moe attention did not start";
    std::vector<std::string> args = {
        MoeBin(),      "gateway", "--model",          dir_ + "/hf-f32", "--attention",
        worker_addr,   "--host",  "127.0.0.1",        "--port",         "0",
        "--log-level", "warn",    "--max-body-bytes", "65536"};
    if (!api_key.empty()) args.insert(args.end(), {"--api-key", api_key});
    gateway_ = std::make_unique<ChildProcess>(args);
    const std::string gw = gateway_->WaitForLine("listening on ", std::chrono::seconds(60));
    ASSERT_FALSE(gw.empty()) << "moe gateway did not start";
    port_ = PortOf(gw);
    std::ifstream in(dir_ + "/expected-f32.json");
    expected_ = json::parse(in);
  }
  void TearDown() override {
    if (gateway_) {
      EXPECT_EQ(gateway_->Stop(), 0);
    }
    if (worker_) {
      EXPECT_EQ(worker_->Stop(), 0);
    }
  }
  Reply Post(const json& body, const std::string& key = "") {
    return Request(port_, http::verb::post, "/v1/completions", body.dump(), key);
  }
  void ExpectError(const Reply& r, int status, const std::string& type) {
    EXPECT_EQ(r.status, status) << r.body;
    json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.body;
    ASSERT_TRUE(j.contains("error")) << r.body;
    EXPECT_EQ(j["error"]["type"], type) << r.body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"].contains("param"));
    EXPECT_TRUE(j["error"].contains("code"));
  }

  std::string dir_;
  std::unique_ptr<ChildProcess> worker_;
  std::unique_ptr<ChildProcess> gateway_;
  int port_ = 0;
  json expected_;
};

TEST_F(GatewayTest, GreedyCompletionsMatchGolden) {
  ASSERT_NO_FATAL_FAILURE(Start());
  for (const json& c : expected_["cases"]) {
    json req{{"model", "hf-f32"},
             {"prompt", c["prompt"]},
             {"max_tokens", expected_["n_gen"]},
             {"temperature", 0}};
    Reply r = Post(req);
    ASSERT_EQ(r.status, 200) << r.body;
    json j = json::parse(r.body);
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_EQ(j["model"], "hf-f32");
    ASSERT_EQ(j["choices"].size(), 1u);
    EXPECT_EQ(j["choices"][0]["text"], c["completion_text"]) << c["prompt"];
    EXPECT_EQ(j["choices"][0]["finish_reason"], c["stop_type"] == "eos" ? "stop" : "length");
    EXPECT_EQ(j["usage"]["prompt_tokens"], c["prompt_ids"].size());
    EXPECT_EQ(j["usage"]["completion_tokens"], c["completion_ids"].size());
    EXPECT_EQ(j["usage"]["total_tokens"], c["prompt_ids"].size() + c["completion_ids"].size());
  }
}

TEST_F(GatewayTest, EchoLogprobsMatchGoldenTeacherForced) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const json& c = expected_["cases"][0];
  std::vector<int> ids = c["prompt_ids"].get<std::vector<int>>();
  const size_t n_prompt = ids.size();
  for (int id : c["completion_ids"]) ids.push_back(id);
  json req{{"prompt", ids}, {"echo", true}, {"logprobs", 5}, {"max_tokens", 0}, {"temperature", 0}};
  Reply r = Post(req);
  ASSERT_EQ(r.status, 200) << r.body;
  json lp = json::parse(r.body)["choices"][0]["logprobs"];
  ASSERT_EQ(lp["token_logprobs"].size(), ids.size());
  ASSERT_EQ(lp["top_logprobs"].size(), ids.size());
  ASSERT_EQ(lp["tokens"].size(), ids.size());
  ASSERT_EQ(lp["text_offset"].size(), ids.size());
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  const json& steps = c["steps"];
  ASSERT_EQ(steps.size(), c["completion_ids"].size());
  for (size_t k = 0; k < steps.size(); ++k) {
    const json& got = lp["token_logprobs"][n_prompt + k];
    ASSERT_TRUE(got.is_number()) << k;
    EXPECT_NEAR(got.get<double>(), steps[k]["logprob"].get<double>(), 1e-4) << "step " << k;
    // The top alternatives: every golden top-5 logprob appears among the reply's values.
    const json& top = lp["top_logprobs"][n_prompt + k];
    ASSERT_GE(top.size(), 1u);
    std::vector<double> values;
    for (const auto& [text, v] : top.items()) values.push_back(v.get<double>());
    for (const json& t : steps[k]["top5"]) {
      const double want = t["logprob"].get<double>();
      bool found = false;
      for (double v : values) found = found || std::abs(v - want) < 1e-4;
      // Several ids can share a token text; only texts unique in the top-5 must be present.
      if (values.size() == 5) {
        EXPECT_TRUE(found) << "step " << k << " logprob " << want;
      }
    }
  }
  EXPECT_EQ(json::parse(r.body)["usage"]["completion_tokens"], 0);
}

TEST_F(GatewayTest, MalformedRequestsGetJsonErrorsAndServingContinues) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::vector<std::string> bad_bodies = {"",
                                               "{",
                                               "not json",
                                               "[1,2]",
                                               R"({"prompt": 5})",
                                               R"({"prompt": []})",
                                               R"({"prompt": "x", "max_tokens": -1})",
                                               R"({"prompt": "x", "max_tokens": "8"})",
                                               R"({"prompt": "x", "n": 0})",
                                               R"({"prompt": "x", "temperature": -1})",
                                               R"({"prompt": "x", "logprobs": 99})",
                                               R"({"prompt": [1, 100000]})",
                                               R"({"prompt": "x", "echo": "yes"})",
                                               "{\"prompt\": \"\xff\xfe\""};
  for (const std::string& b : bad_bodies) {
    Reply r = Request(port_, http::verb::post, "/v1/completions", b);
    ExpectError(r, 400, "invalid_request_error");
  }
  ExpectError(Post(json{{"prompt", "x"}, {"model", "no-such-model"}}), 404,
              "invalid_request_error");
  ExpectError(Request(port_, http::verb::get, "/v1/nothing"), 404, "invalid_request_error");
  ExpectError(Request(port_, http::verb::get, "/v1/completions"), 405, "invalid_request_error");
  ExpectError(Post(json{{"prompt", std::string(70000, 'a')}}), 413, "invalid_request_error");
  // Still serving, without the model field.
  Reply ok = Post(json{{"prompt", "The quick brown fox"}, {"max_tokens", 3}, {"temperature", 0}});
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(json::parse(ok.body)["usage"]["completion_tokens"], 3);
  Reply models = Request(port_, http::verb::get, "/v1/models");
  ASSERT_EQ(models.status, 200);
  EXPECT_EQ(json::parse(models.body)["data"][0]["id"], "hf-f32");
}

TEST_F(GatewayTest, ApiKeyReadyAndMetrics) {
  ASSERT_NO_FATAL_FAILURE(Start("sekret"));
  ExpectError(Post(json{{"prompt", "hi"}, {"max_tokens", 2}}), 401, "authentication_error");
  ExpectError(Post(json{{"prompt", "hi"}, {"max_tokens", 2}}, "wrong"), 401,
              "authentication_error");
  Reply ok = Post(json{{"prompt", "hi"}, {"max_tokens", 2}, {"temperature", 0}}, "sekret");
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(Request(port_, http::verb::get, "/health").status, 200);
  EXPECT_EQ(Request(port_, http::verb::get, "/ready").status, 200);
  Reply m = Request(port_, http::verb::get, "/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("moe_generation_tokens_total 2"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("moe_http_requests_total{status=\"401\"} 2"), std::string::npos) << m.body;
  // With the worker gone, /ready is 503 and completions are 503.
  EXPECT_EQ(worker_->Stop(), 0);
  EXPECT_EQ(Request(port_, http::verb::get, "/ready").status, 503);
  ExpectError(Post(json{{"prompt", "hi"}, {"max_tokens", 2}}, "sekret"), 503,
              "service_unavailable_error");
}

}  // namespace
}  // namespace moe
