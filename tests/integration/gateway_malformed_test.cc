// Integration: a real `moe gateway` (with an API key, a 512 KiB body limit and a 2 s read
// timeout) in front of a real `moe attention` worker gets more than 60 bad requests: truncated
// and invalid JSON, wrong types, negative and huge numbers, unknown fields, invalid UTF-8,
// oversized bodies and headers, empty messages, bad methods and paths, missing and wrong API
// keys, malformed HTTP, slow and stalled clients, early disconnects. Each gets the right
// status and an OpenAI error body (type, message, and the parameter to blame where there is
// one); afterwards the gateway still serves and exits cleanly on SIGTERM.
#include <utility>  // before Asio (DESIGN.md section 9)

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/gateway_fixture.h"
#include "tests/testing/http_client.h"

namespace moe {
namespace {

using json = nlohmann::json;
using test_util::Reply;
namespace http = test_util::http;

constexpr char kKey[] = "test-key";

struct Case {
  http::verb verb;
  std::string path;
  std::string body;
  int status;
  std::string type;
  std::optional<std::string> param;  // checked when set
};

void ExpectErrorBody(const Reply& r, const Case& c, const std::string& what) {
  EXPECT_EQ(r.status, c.status) << what << " -> " << r.body;
  json j = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(j.is_object() && j.contains("error")) << what << " -> " << r.body;
  const json& e = j["error"];
  EXPECT_EQ(e["type"], c.type) << what;
  ASSERT_TRUE(e["message"].is_string()) << what;
  EXPECT_FALSE(e["message"].get<std::string>().empty()) << what;
  EXPECT_TRUE(e.contains("param") && e.contains("code")) << what;
  if (c.param) {
    EXPECT_EQ(e["param"], *c.param) << what << " -> " << r.body;
  }
}

TEST(GatewayMalformedTest, BadRequestsGetErrorsAndTheGatewayKeepsServing) {
  test_util::ChatModelDir model;
  test_util::GatewayCluster cluster;
  ASSERT_EQ(cluster.Start(model.dir(), {"--api-key", kKey, "--max-body-bytes", "524288",
                                        "--http-read-timeout-s", "2"}),
            "");
  const int port = cluster.port();
  const auto post = http::verb::post;
  const std::string inv = "invalid_request_error";
  auto comp = [&](std::string body, std::optional<std::string> param) {
    return Case{post, "/v1/completions", std::move(body), 400, inv, std::move(param)};
  };
  auto chat = [&](std::string body, std::optional<std::string> param) {
    return Case{post, "/v1/chat/completions", std::move(body), 400, inv, std::move(param)};
  };
  std::string many_stops = "[";
  for (int i = 0; i < 17; ++i)
    many_stops += std::string(i ? "," : "") + "\"s" + std::to_string(i) + "\"";
  many_stops += "]";
  std::string nested = std::string(2000, '[') + std::string(2000, ']');
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  std::vector<Case> cases = {
      // Not JSON / truncated JSON / not an object.
      comp("", std::nullopt),
      comp("{", std::nullopt),
      comp("not json", std::nullopt),
      comp("[1, 2]", std::nullopt),
      comp("null", std::nullopt),
      comp("\"text\"", std::nullopt),
      comp(R"({"prompt": "x",})", std::nullopt),
      comp(R"({"prompt": "hel)", std::nullopt),
      comp(R"({"prompt": "x", "temperature": NaN})", std::nullopt),
      comp("{\"prompt\": \"\xff\xfe\"}", std::nullopt),  // invalid UTF-8
      comp("{\"pr\xc3\x28mpt\": \"x\"}", std::nullopt),
      comp(R"({"prompt": )" + nested + "}", std::nullopt),
      // The prompt.
      comp(R"({})", "prompt"),
      comp(R"({"prompt": 5})", "prompt"),
      comp(R"({"prompt": []})", "prompt"),
      comp(R"({"prompt": [1, -2]})", "prompt"),
      comp(R"({"prompt": [1, 2.5]})", "prompt"),
      comp(R"({"prompt": [1, 99999999999]})", "prompt"),
      comp(R"({"prompt": [1, 100000]})", "prompt"),
      comp(R"({"prompt": ["a", 1]})", "prompt"),
      comp(R"({"prompt": [[1], []]})", "prompt"),
      comp(R"({"prompt": {"a": 1}})", "prompt"),
      comp(json{{"prompt", std::string(3000, 'z') + " " + std::string(3000, 'q')}}.dump(),
           std::nullopt),  // longer than the context
      // Numbers: wrong types, negative, huge, out of range.
      comp(R"({"prompt": "x", "max_tokens": -1})", "max_tokens"),
      comp(R"({"prompt": "x", "max_tokens": "8"})", "max_tokens"),
      comp(R"({"prompt": "x", "max_tokens": 1e300})", "max_tokens"),
      comp(R"({"prompt": "x", "max_tokens": 18446744073709551615})", "max_tokens"),
      comp(R"({"prompt": "x", "max_tokens": 600})", "max_tokens"),
      comp(R"({"prompt": "x", "max_tokens": 0})", "max_tokens"),
      comp(R"({"prompt": "x", "temperature": -1})", "temperature"),
      comp(R"({"prompt": "x", "temperature": 3})", "temperature"),
      comp(R"({"prompt": "x", "temperature": "hot"})", "temperature"),
      comp(R"({"prompt": "x", "top_p": 0})", "top_p"),
      comp(R"({"prompt": "x", "top_p": 2})", "top_p"),
      comp(R"({"prompt": "x", "top_k": -5})", "top_k"),
      comp(R"({"prompt": "x", "seed": "x"})", "seed"),
      comp(R"({"prompt": "x", "seed": 1.5})", "seed"),
      comp(R"({"prompt": "x", "logprobs": 99})", "logprobs"),
      comp(R"({"prompt": "x", "logprobs": -1})", "logprobs"),
      comp(R"({"prompt": "x", "echo": "yes"})", "echo"),
      comp(R"({"prompt": "x", "n": 0})", "n"),
      comp(R"({"prompt": "x", "n": 1000})", "n"),
      comp(R"({"prompt": "x", "n": -1})", "n"),
      comp(R"({"prompt": "x", "stop": 3})", "stop"),
      comp(R"({"prompt": "x", "stop": [1]})", "stop"),
      comp(R"({"prompt": "x", "stop": )" + many_stops + "}", "stop"),
      comp(R"({"prompt": "x", "presence_penalty": 5})", "presence_penalty"),
      comp(R"({"prompt": "x", "frequency_penalty": -3})", "frequency_penalty"),
      comp(R"({"prompt": "x", "stream": "yes"})", "stream"),
      comp(R"({"prompt": "x", "stream_options": {"include_usage": true}})", "stream_options"),
      comp(R"({"prompt": "x", "logit_bias": {"1": 3}})", "logit_bias"),
      comp(R"({"prompt": "x", "best_of": 5})", "best_of"),
      comp(R"({"prompt": "x", "suffix": "x"})", "suffix"),
      comp(R"({"prompt": "x", "unknown_field": 1})", "unknown_field"),
      comp(R"({"prompt": "x", "model": 7})", "model"),
      // Chat.
      chat(R"({})", "messages"),
      chat(R"({"messages": []})", "messages"),
      chat(R"({"messages": "hi"})", "messages"),
      chat(R"({"messages": [1]})", "messages"),
      chat(R"({"messages": [{"role": "robot", "content": "x"}]})", "messages"),
      chat(R"({"messages": [{"role": "user", "content": 5}]})", "messages"),
      chat(R"({"messages": [{"role": "user"}]})", "messages"),
      chat(R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages"),
      chat(R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})",
           "top_logprobs"),
      chat(R"({"messages": [{"role": "user", "content": "x"}], "logprobs": 3})", "logprobs"),
      chat(R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 0})",
           "max_completion_tokens"),
      chat(R"({"messages": [{"role": "user", "content": "x"}], "prompt": "x"})", "prompt"),
      // Size, routes, methods, model.
      Case{post, "/v1/completions", json{{"prompt", std::string(600000, 'a')}}.dump(), 413, inv,
           std::nullopt},
      Case{http::verb::get, "/v1/nothing", "", 404, inv, std::nullopt},
      Case{http::verb::get, "/", "", 404, inv, std::nullopt},
      Case{http::verb::get, "/v1/completions", "", 405, inv, std::nullopt},
      Case{http::verb::delete_, "/v1/models", "", 405, inv, std::nullopt},
      Case{http::verb::put, "/v1/chat/completions", "{}", 405, inv, std::nullopt},
      Case{post, "/health", "", 405, inv, std::nullopt},
      Case{post, "/v1/completions", R"({"prompt": "x", "model": "gpt-4"})", 404, inv, "model"},
      Case{post, "/detokenize", R"({"tokens": "x"})", 400, inv, "tokens"},
      // Deeply nested JSON everywhere (copying or printing it would recurse that deep).
      Case{post, "/tokenize", "{\"messages\": " + deep + "}", 400, inv, std::nullopt},
      Case{post, "/detokenize", "{\"tokens\": " + deep + "}", 400, inv, std::nullopt},
      chat("{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"x\": " + deep + "}]}",
           std::nullopt),
      chat("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": " + deep + "}",
           std::nullopt),
  };
  ASSERT_GE(cases.size(), 50u);
  for (const Case& c : cases) {
    const std::string what =
        std::string(http::to_string(c.verb)) + " " + c.path + " " + c.body.substr(0, 120);
    Reply r = test_util::TryRequest(port, c.verb, c.path, c.body, kKey);
    ExpectErrorBody(r, c, what);
  }
  // API key: missing and wrong.
  for (const std::string key : {"", "wrong-key"}) {
    Reply r = test_util::TryRequest(port, post, "/v1/completions", R"({"prompt": "x"})", key);
    ExpectErrorBody(r, Case{post, "", "", 401, "authentication_error", std::nullopt}, "key");
  }
  // Raw HTTP: garbage, oversized headers.
  std::string garbage = test_util::RawExchange(port, {"HELLO\r\n\r\n"}, std::chrono::seconds(5));
  EXPECT_EQ(garbage.rfind("HTTP/1.1 400", 0), 0u) << garbage;
  EXPECT_NE(garbage.find("invalid_request_error"), std::string::npos);
  std::string big_header =
      "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'b') + "\r\n\r\n";
  std::string big = test_util::RawExchange(port, {big_header}, std::chrono::seconds(5));
  EXPECT_EQ(big.rfind("HTTP/1.1 431", 0), 0u) << big.substr(0, 200);
  // A slow client (a request in 5 pieces, 300 ms apart) is served.
  const std::string body = R"({"prompt": "The quick", "max_tokens": 2})";
  const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                          std::string(kKey) + "\r\nContent-Type: application/json\r\n" +
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  std::vector<std::string> pieces;
  for (size_t i = 0; i < req.size(); i += req.size() / 5 + 1)
    pieces.push_back(req.substr(i, req.size() / 5 + 1));
  std::string slow =
      test_util::RawExchange(port, pieces, std::chrono::seconds(3), std::chrono::milliseconds(300));
  EXPECT_EQ(slow.rfind("HTTP/1.1 200", 0), 0u) << slow;
  // A stalled client (half a request, then nothing) is disconnected after the read timeout.
  const auto t0 = std::chrono::steady_clock::now();
  std::string stalled = test_util::RawExchange(port, {req.substr(0, 30)}, std::chrono::seconds(8));
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(stalled, "");
  EXPECT_LT(waited, 6.0) << "the gateway did not drop a stalled client";
  // A body shorter than its Content-Length, then a hang-up; early disconnects of a streamed
  // and a plain request.
  test_util::RawExchange(port, {req.substr(0, req.size() - 5)}, std::chrono::milliseconds(0), {},
                         true);
  for (bool stream : {true, false}) {
    const std::string b = json{{"prompt", "abc"}, {"max_tokens", 300}, {"stream", stream}}.dump();
    const std::string r = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                          std::string(kKey) + "\r\nContent-Length: " + std::to_string(b.size()) +
                          "\r\n\r\n" + b;
    test_util::RawExchange(port, {r}, std::chrono::milliseconds(0), {}, true);
  }
  // Still serving, and healthy.
  Reply ok = test_util::TryRequest(port, post, "/v1/completions",
                                   R"({"prompt": "The quick brown fox", "max_tokens": 3})", kKey);
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(json::parse(ok.body)["usage"]["completion_tokens"], 3);
  EXPECT_EQ(test_util::TryRequest(port, http::verb::get, "/health").status, 200);
  EXPECT_FALSE(cluster.gateway().Exited());
  // Replies the HTTP layer made itself are counted too.
  const std::string m = test_util::TryRequest(port, http::verb::get, "/metrics").body;
  EXPECT_GE(test_util::MetricValue(m, "moe_http_requests_total{status=\"413\"}"), 1) << m;
  EXPECT_GE(test_util::MetricValue(m, "moe_http_requests_total{status=\"431\"}"), 1) << m;
  EXPECT_GE(test_util::MetricValue(m, "moe_http_requests_total{status=\"400\"}"), 60) << m;
  auto [g, w] = cluster.Stop();
  EXPECT_EQ(g, 0);
  EXPECT_EQ(w, 0);
}

}  // namespace
}  // namespace moe
