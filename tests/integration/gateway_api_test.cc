// Integration: the OpenAI API semantics of a real `moe gateway` in front of a real
// `moe attention` worker on the golden tiny-mixtral (F32), over HTTP on 127.0.0.1:
// Server-Sent Events in OpenAI's chunk shapes (text equal to the non-streamed golden text,
// finish_reason in the last content chunk, include_usage, [DONE]); chat completions through the
// model's chat template (a copy of the golden folder with a ChatML template); n and several
// prompts (index order), seed reproducibility, stop strings (across token boundaries, excluded,
// finish_reason stop), penalties; /tokenize and /detokenize against the golden ids; a client
// that disconnects while queued is cancelled (never generated, never counted); admission
// control answers 429 with Retry-After; a streaming client that hangs up mid-stream is
// cancelled; a request past --request-timeout-s is a 504; /ready needs a generation through
// the experts; /metrics passes
// `promtool check metrics`.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>  // before Asio (DESIGN.md section 9)
#include <vector>

#include "tests/integration/gateway_fixture.h"
#include "tests/testing/command.h"
#include "tests/testing/http_client.h"

namespace moe {
namespace {

using json = nlohmann::json;
using test_util::GatewayCluster;
using test_util::Reply;
using test_util::Request;
using test_util::SseEvents;
namespace http = test_util::http;

json Golden() {
  std::ifstream in(test_util::GoldenMixtral() + "/expected-f32.json");
  return json::parse(in);
}

class GatewayApiTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> gateway_args = {}) {
    const std::string err = cluster_.Start(model_.dir(), std::move(gateway_args));
    ASSERT_EQ(err, "");
    golden_ = Golden();
  }
  void TearDown() override {
    auto [g, w] = cluster_.Stop();
    EXPECT_EQ(g, 0);
    EXPECT_EQ(w, 0);
  }
  Reply Post(const std::string& path, const json& body) {
    return Request(cluster_.port(), http::verb::post, path, body.dump());
  }
  // A streamed reply's events, with the shape checks every stream must pass.
  std::vector<json> Stream(const std::string& path, const json& body, bool chat) {
    Reply r = Post(path, body);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.content_type.rfind("text/event-stream", 0), 0u) << r.content_type;
    std::vector<json> ev = SseEvents(r.body);
    EXPECT_FALSE(ev.empty());
    if (ev.empty()) return ev;
    EXPECT_EQ(ev.back(), "[DONE]");
    for (size_t i = 0; i + 1 < ev.size(); ++i) {
      EXPECT_TRUE(ev[i].is_object()) << ev[i];
      if (!ev[i].is_object()) continue;
      EXPECT_EQ(ev[i]["object"], chat ? "chat.completion.chunk" : "text_completion");
      EXPECT_EQ(ev[i]["id"], ev[0]["id"]);
      EXPECT_EQ(ev[i]["model"], "hf-f32");
    }
    ev.pop_back();
    return ev;
  }
  std::string StopsAt(const std::string& text, const std::string& stop) {
    return text.substr(0, text.find(stop));
  }

  test_util::ChatModelDir model_;
  GatewayCluster cluster_;
  json golden_;
};

TEST_F(GatewayApiTest, StreamedCompletionMatchesGoldenWithFinishInLastChunkAndUsage) {
  ASSERT_NO_FATAL_FAILURE(Start());
  for (const json& c : golden_["cases"]) {
    json req{{"prompt", c["prompt"]},
             {"max_tokens", golden_["n_gen"]},
             {"temperature", 0},
             {"stream", true},
             {"stream_options", {{"include_usage", true}}},
             {"logprobs", 1}};
    std::vector<json> ev = Stream("/v1/completions", req, false);
    ASSERT_GE(ev.size(), 2u);
    std::string text;
    int finishes = 0, logprob_tokens = 0;
    for (size_t i = 0; i + 1 < ev.size(); ++i) {
      ASSERT_EQ(ev[i]["choices"].size(), 1u) << ev[i];
      const json& ch = ev[i]["choices"][0];
      EXPECT_EQ(ch["index"], 0);
      EXPECT_TRUE(ev[i].contains("usage") && ev[i]["usage"].is_null());
      text += ch["text"].get<std::string>();
      logprob_tokens += static_cast<int>(ch["logprobs"]["tokens"].size());
      if (!ch["finish_reason"].is_null()) {
        ++finishes;
        EXPECT_EQ(i + 2, ev.size()) << "the finish reason comes in the last content chunk";
        EXPECT_EQ(ch["finish_reason"], c["stop_type"] == "eos" ? "stop" : "length");
      }
    }
    EXPECT_EQ(finishes, 1);
    EXPECT_EQ(text, c["completion_text"]) << c["prompt"];
    EXPECT_EQ(logprob_tokens, static_cast<int>(c["completion_ids"].size()));
    // The usage chunk: no choices.
    const json& u = ev.back();
    EXPECT_TRUE(u["choices"].empty());
    EXPECT_EQ(u["usage"]["prompt_tokens"], c["prompt_ids"].size());
    EXPECT_EQ(u["usage"]["completion_tokens"], c["completion_ids"].size());
  }
}

TEST_F(GatewayApiTest, ChatCompletionsStreamedAndNotAgree) {
  ASSERT_NO_FATAL_FAILURE(Start());
  json msgs = json::array({{{"role", "system"}, {"content", "You are terse."}},
                           {{"role", "user"}, {"content", "Hello there"}}});
  Reply r = Post("/v1/chat/completions", json{{"messages", msgs},
                                              {"max_completion_tokens", 12},
                                              {"temperature", 0},
                                              {"logprobs", true},
                                              {"top_logprobs", 2}});
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["object"], "chat.completion");
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  const std::string text = j["choices"][0]["message"]["content"];
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 12);
  const json& lp = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(lp.size(), 12u);
  EXPECT_EQ(lp[0]["top_logprobs"].size(), 2u);
  EXPECT_TRUE(lp[0]["bytes"].is_array());
  // The prompt is the template's rendering, tokenized without added special tokens.
  Reply tok = Post("/tokenize", json{{"messages", msgs}});
  ASSERT_EQ(tok.status, 200) << tok.body;
  EXPECT_EQ(j["usage"]["prompt_tokens"], json::parse(tok.body)["count"]);
  // Streamed: the role first, then content, the finish in the last content chunk, usage.
  std::vector<json> ev = Stream("/v1/chat/completions",
                                json{{"messages", msgs},
                                     {"max_completion_tokens", 12},
                                     {"temperature", 0},
                                     {"stream", true},
                                     {"stream_options", {{"include_usage", true}}}},
                                true);
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev[0]["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  std::string streamed;
  for (size_t i = 1; i + 1 < ev.size(); ++i) {
    const json& d = ev[i]["choices"][0]["delta"];
    EXPECT_FALSE(d.contains("role"));
    if (d.contains("content")) streamed += d["content"].get<std::string>();
    EXPECT_EQ(ev[i]["choices"][0]["finish_reason"].is_null(), i + 2 < ev.size());
  }
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(ev.back()["usage"]["completion_tokens"], 12);
  EXPECT_TRUE(ev.back()["choices"].empty());
}

TEST_F(GatewayApiTest, ChatWithoutTemplateIsAClear400) {
  // The golden folder itself has no chat template.
  GatewayCluster plain;
  ASSERT_EQ(plain.Start(test_util::GoldenMixtral() + "/hf-f32"), "");
  golden_ = Golden();
  Reply r = Request(plain.port(), http::verb::post, "/v1/chat/completions",
                    json{{"messages", {{{"role", "user"}, {"content", "hi"}}}}}.dump());
  EXPECT_EQ(r.status, 400);
  json e = json::parse(r.body)["error"];
  EXPECT_EQ(e["type"], "invalid_request_error");
  EXPECT_NE(e["message"].get<std::string>().find("chat template"), std::string::npos) << r.body;
  EXPECT_EQ(plain.Stop(), std::make_pair(0, 0));
}

TEST_F(GatewayApiTest, SeveralPromptsAndNInIndexOrderSeedsReproduce) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const json& c0 = golden_["cases"][0];
  const json& c1 = golden_["cases"][1];
  // Greedy: every choice of a prompt is that prompt's golden text.
  json req{{"prompt", {c0["prompt_ids"], c1["prompt_ids"]}},
           {"n", 2},
           {"max_tokens", 8},
           {"temperature", 0}};
  Reply r = Post("/v1/completions", req);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  ASSERT_EQ(j["choices"].size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(j["choices"][i]["index"], i);
    const json& c = i < 2 ? c0 : c1;
    std::vector<int> ids(c["completion_ids"].begin(), c["completion_ids"].begin() + 8);
    Reply d = Post("/detokenize", json{{"tokens", ids}});
    EXPECT_EQ(j["choices"][i]["text"], json::parse(d.body)["prompt"]);
  }
  EXPECT_EQ(j["usage"]["prompt_tokens"], c0["prompt_ids"].size() + c1["prompt_ids"].size());
  EXPECT_EQ(j["usage"]["completion_tokens"], 32);
  // Sampled with a seed: the same request gives the same texts; choice 0 of n = 3 is n = 1.
  json sreq{
      {"prompt", c0["prompt"]}, {"n", 3}, {"max_tokens", 12}, {"temperature", 1.0}, {"seed", 1234}};
  json a = json::parse(Post("/v1/completions", sreq).body);
  json b = json::parse(Post("/v1/completions", sreq).body);
  ASSERT_EQ(a["choices"].size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(a["choices"][i]["text"], b["choices"][i]["text"]);
  EXPECT_NE(a["choices"][0]["text"], a["choices"][1]["text"]);
  sreq["n"] = 1;
  json one = json::parse(Post("/v1/completions", sreq).body);
  EXPECT_EQ(one["choices"][0]["text"], a["choices"][0]["text"]);
  // A list of strings works too, streamed: each index has its own finish chunk.
  std::vector<json> ev = Stream(
      "/v1/completions",
      json{{"prompt", {"abc", "def"}}, {"max_tokens", 3}, {"temperature", 0}, {"stream", true}},
      false);
  int finishes[2] = {0, 0};
  for (const json& e : ev) {
    const json& ch = e["choices"][0];
    if (!ch["finish_reason"].is_null()) ++finishes[ch["index"].get<int>()];
  }
  EXPECT_EQ(finishes[0], 1);
  EXPECT_EQ(finishes[1], 1);
}

TEST_F(GatewayApiTest, StopStringsCutTheTextAcrossTokens) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const json& c = golden_["cases"][0];
  const std::string full = c["completion_text"];
  // A stop string that spans a token boundary in the golden text: "se" + "You" -> "eY"
  // wherever the text has it; take 3 characters from the middle of the text instead if not.
  std::string stop = full.substr(full.size() / 2, 3);
  const std::string want = StopsAt(full, stop);
  ASSERT_LT(want.size(), full.size());
  json req{{"prompt", c["prompt"]},
           {"max_tokens", 32},
           {"temperature", 0},
           {"stop", {"never-there", stop}}};
  Reply r = Post("/v1/completions", req);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["choices"][0]["text"], want);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_LT(j["usage"]["completion_tokens"].get<int>(), 32);
  // Streamed: the same text, and nothing of the stop string ever shown.
  req["stream"] = true;
  std::vector<json> ev = Stream("/v1/completions", req, false);
  std::string streamed;
  for (const json& e : ev) streamed += e["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(streamed, want);
  EXPECT_EQ(ev.back()["choices"][0]["finish_reason"], "stop");
  // With include_stop_str_in_output the stop string is kept.
  req.erase("stream");
  req["include_stop_str_in_output"] = true;
  EXPECT_EQ(json::parse(Post("/v1/completions", req).body)["choices"][0]["text"], want + stop);
}

TEST_F(GatewayApiTest, PenaltiesChangeGreedyOutputEchoAndHttp10Streams) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const json& c = golden_["cases"][0];  // its golden text repeats tokens
  json req{
      {"prompt", c["prompt"]},   {"max_tokens", 32}, {"temperature", 0}, {"frequency_penalty", 2.0},
      {"presence_penalty", 1.0}, {"top_k", 5},       {"user", "u1"}};
  Reply r = Post("/v1/completions", req);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(json::parse(r.body)["choices"][0]["text"], c["completion_text"]);
  // Echo, streamed: the prompt text comes first.
  std::vector<json> ev =
      Stream("/v1/completions",
             json{{"prompt", "Hello"}, {"max_tokens", 2}, {"echo", true}, {"stream", true}}, false);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev[0]["choices"][0]["text"].get<std::string>().rfind("Hello", 0), 0u);
  // An HTTP/1.0 client gets the stream unchunked, ended by the connection's close.
  const std::string body = json{{"prompt", "Hello"}, {"max_tokens", 3}, {"stream", true}}.dump();
  const auto t0 = std::chrono::steady_clock::now();
  const std::string raw = test_util::RawExchange(
      cluster_.port(),
      {"POST /v1/completions HTTP/1.0\r\nContent-Length: " + std::to_string(body.size()) +
       "\r\n\r\n" + body},
      std::chrono::seconds(20));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10)) << "not closed";
  EXPECT_EQ(raw.rfind("HTTP/1.0 200", 0), 0u) << raw;
  EXPECT_EQ(raw.find("chunked"), std::string::npos) << raw;
  const size_t start = raw.find("\r\n\r\n");
  ASSERT_NE(start, std::string::npos);
  std::vector<json> ev10 = SseEvents(raw.substr(start + 4));
  ASSERT_GE(ev10.size(), 2u) << raw;  // at least one chunk, [DONE]
  EXPECT_EQ(ev10.back(), "[DONE]");
  EXPECT_EQ(ev10[ev10.size() - 2]["choices"][0]["finish_reason"], "length") << raw;
}

TEST_F(GatewayApiTest, TokenizeAndDetokenizeMatchGoldenIds) {
  ASSERT_NO_FATAL_FAILURE(Start());
  for (const json& c : golden_["cases"]) {
    Reply t = Post("/tokenize", json{{"prompt", c["prompt"]}, {"model", "hf-f32"}});
    ASSERT_EQ(t.status, 200) << t.body;
    json j = json::parse(t.body);
    EXPECT_EQ(j["tokens"], c["prompt_ids"]);
    EXPECT_EQ(j["count"], c["prompt_ids"].size());
    EXPECT_EQ(j["max_model_len"], 512);
    Reply d = Post("/detokenize", json{{"tokens", c["completion_ids"]}});
    ASSERT_EQ(d.status, 200) << d.body;
    EXPECT_EQ(json::parse(d.body)["prompt"], c["completion_text"]);
  }
  EXPECT_EQ(Post("/detokenize", json{{"tokens", {1, -1}}}).status, 400);
  EXPECT_EQ(Post("/tokenize", json{{"prompt", 5}}).status, 400);
  EXPECT_EQ(Request(cluster_.port(), http::verb::get, "/tokenize").status, 405);
}

TEST_F(GatewayApiTest, QueuedClientThatDisconnectsIsCancelledAnd429WhenFull) {
  // One call runs per worker and two wait: a request with 6 choices fills it up.
  ASSERT_NO_FATAL_FAILURE(Start({"--max-running-per-worker", "1", "--max-queue-per-worker", "8"}));
  const int port = cluster_.port();
  // A: 6 prompts x 480 tokens, one after another on the worker.
  std::vector<std::string> prompts(6, "The quick brown fox");
  json a{{"prompt", prompts}, {"max_tokens", 480}, {"ignore_eos", true}, {"temperature", 0}};
  Reply ra;
  std::thread ta([&] { ra = Request(port, http::verb::post, "/v1/completions", a.dump()); });
  // Wait (bounded) until A's calls are queued.
  bool queued = false;
  for (int i = 0; i < 500 && !queued; ++i) {
    std::string m = Request(port, http::verb::get, "/metrics").body;
    queued = test_util::MetricValue(m, "moe_num_requests_waiting") >= 4;
    if (!queued) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(queued);
  // B (plain) and C (streamed) send their request and hang up at once: both wait behind A.
  json b{{"prompt", "hello"}, {"max_tokens", 100}};
  json cs{{"prompt", "hello"}, {"max_tokens", 100}, {"stream", true}};
  for (const json& x : {b, cs}) {
    const std::string body = x.dump();
    const std::string raw =
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
        "application/json\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    test_util::RawExchange(port, {raw}, std::chrono::milliseconds(0), {}, true);
  }
  // D: 4 more choices do not fit (8 queued at most with 5 of A, maybe B/C): 429 + Retry-After.
  std::vector<std::string> many(8, "x");
  Reply d = Request(port, http::verb::post, "/v1/completions",
                    json{{"prompt", many}, {"max_tokens", 1}}.dump());
  EXPECT_EQ(d.status, 429) << d.body;
  EXPECT_EQ(d.retry_after, "1");
  EXPECT_EQ(json::parse(d.body)["error"]["type"], "rate_limit_error");
  ta.join();
  ASSERT_EQ(ra.status, 200) << ra.body;
  EXPECT_EQ(json::parse(ra.body)["usage"]["completion_tokens"], 6 * 480);
  // Only A generated and finished: B and C were cancelled before they ran.
  std::string m = Request(port, http::verb::get, "/metrics").body;
  EXPECT_EQ(test_util::MetricValue(m, "moe_generation_tokens_total"), 6 * 480) << m;
  EXPECT_EQ(test_util::MetricValue(m, "moe_request_success_total{finished_reason=\"length\"}"), 6);
  EXPECT_EQ(test_util::MetricValue(m, "moe_num_requests_running"), 0);
  EXPECT_EQ(test_util::MetricValue(m, "moe_num_requests_waiting"), 0);
  EXPECT_EQ(test_util::MetricValue(m, "moe_http_requests_total{status=\"499\"}"), 2) << m;
}

TEST_F(GatewayApiTest, StreamingClientThatHangsUpMidStreamIsCancelled) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const int port = cluster_.port();
  // 16 choices of 480 tokens (about 1.5 s on this model; a request counts its tokens only
  // once every choice is done) take far longer than noticing the hang-up, even when the
  // gateway is descheduled for a while on a loaded machine.
  const std::string body = json{
      {"prompt", "The quick brown fox"},
      {"max_tokens", 480},
      {"n", 16},
      {"ignore_eos", true},
      {"stream", true}}.dump();
  const std::string raw =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket socket(io);
    socket.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
    boost::asio::write(socket, boost::asio::buffer(raw));
    std::string got;
    char buf[256];
    while (got.find("data: ") == std::string::npos) {  // the first chunk (bounded: 120 s test)
      const size_t n = socket.read_some(boost::asio::buffer(buf));
      got.append(buf, n);
    }
    EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got;
    socket.close();
  }
  // The call ends without finishing: nothing generated is counted, the gauge returns to 0.
  bool idle = false;
  std::string m;
  for (int i = 0; i < 500 && !idle; ++i) {
    m = Request(port, http::verb::get, "/metrics").body;
    idle = test_util::MetricValue(m, "moe_num_requests_running") == 0;
    if (!idle) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(idle) << m;
  EXPECT_LE(test_util::MetricValue(m, "moe_generation_tokens_total"), 0) << m;
  EXPECT_EQ(m.find("moe_request_success_total{"), std::string::npos) << m;
  // And the gateway still serves.
  EXPECT_EQ(Post("/v1/completions", json{{"prompt", "hi"}, {"max_tokens", 2}}).status, 200);
}

TEST_F(GatewayApiTest, RequestTimeoutIs504AndServingContinues) {
  // One call at a time and a 1 s deadline per request: 24 choices of 480 tokens cannot finish.
  ASSERT_NO_FATAL_FAILURE(Start({"--request-timeout-s", "1", "--max-running-per-worker", "1",
                                 "--max-queue-per-worker", "64"}));
  std::vector<std::string> prompts(24, "The quick brown fox");
  const auto t0 = std::chrono::steady_clock::now();
  Reply r =
      Post("/v1/completions", json{{"prompt", prompts}, {"max_tokens", 480}, {"ignore_eos", true}});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.status, 504) << r.body.substr(0, 300);
  EXPECT_EQ(json::parse(r.body)["error"]["type"], "server_error");
  EXPECT_LT(seconds, 10.0);
  // Queued calls of the timed-out request are gone; the next request is served.
  bool idle = false;
  for (int i = 0; i < 500 && !idle; ++i) {
    std::string m = Request(cluster_.port(), http::verb::get, "/metrics").body;
    idle = test_util::MetricValue(m, "moe_num_requests_running") == 0 &&
           test_util::MetricValue(m, "moe_num_requests_waiting") == 0;
    if (!idle) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(idle);
  EXPECT_EQ(Post("/v1/completions", json{{"prompt", "hi"}, {"max_tokens", 2}}).status, 200);
}

TEST_F(GatewayApiTest, ReadyOnlyOnceAGenerationGoesThroughTheExperts) {
  // A worker whose expert service does not exist answers GetLoad but cannot generate.
  GatewayCluster broken;
  ASSERT_EQ(broken.Start(test_util::GoldenMixtral() + "/hf-f32", {},
                         {"--experts", "remote", "--expert-addrs", "127.0.0.1:1"}),
            "");
  EXPECT_EQ(Request(broken.port(), http::verb::get, "/health").status, 200);
  Reply r = Request(broken.port(), http::verb::get, "/ready");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("test generation failed"), std::string::npos) << r.body;
  EXPECT_EQ(broken.Stop(), std::make_pair(0, 0));
  // A working one is ready before any request.
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(Request(cluster_.port(), http::verb::get, "/ready").status, 200);
  EXPECT_EQ(Request(cluster_.port(), http::verb::get, "/ready").status, 200);
}

TEST_F(GatewayApiTest, MetricsPassPromtool) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_EQ(Post("/v1/completions", json{{"prompt", "hi"}, {"max_tokens", 4}}).status, 200);
  Reply m = Request(cluster_.port(), http::verb::get, "/metrics");
  ASSERT_EQ(m.status, 200);
  for (const char* name :
       {"moe_time_to_first_token_seconds_bucket", "moe_inter_token_latency_seconds_bucket",
        "moe_e2e_request_latency_seconds_count", "moe_request_queue_time_seconds_count",
        "moe_num_requests_running", "moe_num_requests_waiting", "moe_prompt_tokens_total",
        "moe_generation_tokens_total", "moe_request_success_total{finished_reason=\"length\"}",
        "moe_http_requests_total{status=\"200\"}"}) {
    EXPECT_NE(m.body.find(name), std::string::npos) << name;
  }
  EXPECT_EQ(test_util::MetricValue(m.body, "moe_e2e_request_latency_seconds_count"), 1);
  EXPECT_EQ(test_util::MetricValue(m.body, "moe_inter_token_latency_seconds_count"), 3);
  if (std::system("command -v promtool > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool is not installed";
  }
  const std::string path = ::testing::TempDir() + "/gateway_metrics.txt";
  std::ofstream(path) << m.body;
  const test_util::CommandResult check =
      test_util::RunCommand("promtool check metrics < " + path + " 2>&1");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(check.output, "") << check.output;
}

}  // namespace
}  // namespace moe
