// Integration: overload. A real `moe gateway` whose admission holds 2 running + 2 queued calls
// (one attention worker) gets 40 concurrent streamed requests (10x what it holds), three waves
// of them. Every request ends, within a bounded time, either as a complete stream (every token,
// a finish reason, [DONE]) or as 429 with Retry-After and an OpenAI error body; nothing hangs;
// the running/waiting gauges return to 0; the gateway's resident memory does not grow from wave
// to wave (read from /proc/<pid>/status).
#include <utility>  // before Asio (DESIGN.md section 9)

#include <atomic>
#include <fstream>
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
namespace http = test_util::http;

// VmRSS of `pid` in KiB (-1 if unknown).
long RssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

TEST(GatewayOverloadTest, TenTimesMoreStreamsThanTheQueuesHoldGetAnswersOr429) {
  test_util::GatewayCluster cluster;
  ASSERT_EQ(cluster.Start(test_util::GoldenMixtral() + "/hf-f32",
                          {"--max-running-per-worker", "2", "--max-queue-per-worker", "2"}),
            "");
  const int port = cluster.port();
  constexpr int kClients = 40;  // 10x the 4 calls admission holds
  constexpr int kTokens = 128;  // long enough that the 40 requests overlap
  const json req{{"prompt", "The quick brown fox"},
                 {"max_tokens", kTokens},
                 {"ignore_eos", true},
                 {"temperature", 0.8},
                 {"stream", true},
                 {"stream_options", {{"include_usage", true}}}};
  std::vector<long> rss;
  int total_ok = 0, total_429 = 0;
  for (int wave = 0; wave < 3; ++wave) {
    std::atomic<int> ok{0}, rejected{0}, bad{0};
    std::vector<std::string> problems(kClients);
    std::vector<std::thread> threads;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kClients; ++i) {
      threads.emplace_back([&, i] {
        test_util::Reply r =
            test_util::TryRequest(port, http::verb::post, "/v1/completions", req.dump());
        if (r.status == 429) {
          json e = json::parse(r.body, nullptr, false);
          if (r.retry_after == "1" && e.is_object() && e["error"]["type"] == "rate_limit_error") {
            rejected.fetch_add(1);
            return;
          }
        } else if (r.status == 200) {
          std::vector<json> ev = test_util::SseEvents(r.body);
          int finishes = 0;
          json usage;
          for (const json& x : ev) {
            if (!x.is_object()) continue;
            if (x["choices"].empty()) usage = x["usage"];
            for (const json& ch : x["choices"]) finishes += !ch["finish_reason"].is_null();
          }
          if (!ev.empty() && ev.back() == "[DONE]" && finishes == 1 && usage.is_object() &&
              usage["completion_tokens"] == kTokens) {
            ok.fetch_add(1);
            return;
          }
        }
        bad.fetch_add(1);
        problems[i] = std::to_string(r.status) + ": " + r.body.substr(0, 300);
      });
    }
    for (auto& t : threads) t.join();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(seconds, 60.0) << "wave " << wave;
    EXPECT_EQ(bad.load(), 0) << "wave " << wave;
    for (const std::string& p : problems) {
      if (!p.empty()) ADD_FAILURE() << p;
    }
    EXPECT_EQ(ok.load() + rejected.load(), kClients);
    EXPECT_GE(ok.load(), 4) << "admission holds 4 calls at a time";
    total_ok += ok.load();
    total_429 += rejected.load();
    rss.push_back(RssKb(cluster.gateway().pid()));
  }
  EXPECT_GT(total_429, 0) << "40 concurrent requests never filled 4 slots";
  std::string m = test_util::Request(port, http::verb::get, "/metrics").body;
  EXPECT_EQ(test_util::MetricValue(m, "moe_num_requests_running"), 0);
  EXPECT_EQ(test_util::MetricValue(m, "moe_num_requests_waiting"), 0);
  EXPECT_EQ(test_util::MetricValue(m, "moe_http_requests_total{status=\"429\"}"), total_429);
  EXPECT_EQ(test_util::MetricValue(m, "moe_generation_tokens_total"), total_ok * kTokens);
  ASSERT_EQ(rss.size(), 3u);
  ASSERT_GT(rss[0], 0);
  // No growth per wave beyond noise (allocator caches): 16 MiB.
  EXPECT_LT(rss[2], rss[0] + 16 * 1024) << rss[0] << " KiB -> " << rss[2] << " KiB";
  std::printf("gateway RSS after each wave (KiB): %ld %ld %ld; ok %d, 429 %d\n", rss[0], rss[1],
              rss[2], total_ok, total_429);
  auto [g, w] = cluster.Stop();
  EXPECT_EQ(g, 0);
  EXPECT_EQ(w, 0);
}

}  // namespace
}  // namespace moe
