// `moe loadgen`: drives an attention worker's Generate RPC with C concurrent requests and prints
// aggregate generated tokens/s and time to first token, one table row per concurrency level.
// Used by bench/run_disagg_bench.sh to compare the single-process engine (`moe attention
// --experts local`) with `moe up`'s disaggregated roles through the same client and RPC.
//
// Per concurrency level C and round: C requests start together (each a prompt of
// --prompt-tokens deterministic token ids, --gen-tokens greedy tokens with ignore_eos);
// tokens/s = all generated tokens / wall time from the first send to the last token; TTFT is
// per request (send -> first streamed token). Rounds are repeated --rounds times; the row
// prints the median tokens/s over rounds and the median / max TTFT over every request.
// Numbers are printed, never asserted.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/flags.h"
#include "moe/attention/v1/attention.grpc.pb.h"
#include "tools/commands.h"

namespace moe::tools {
namespace {

namespace av1 = ::moe::attention::v1;
using Clock = std::chrono::steady_clock;

struct LoadgenConfig {
  std::string target;
  std::string concurrency = "1,4,8";
  int prompt_tokens = 32;
  int gen_tokens = 64;
  int rounds = 3;
  int vocab = 1000;  // prompt ids are drawn from [10, vocab)
  int timeout_s = 600;
  std::string label;
};

struct RequestResult {
  bool ok = false;
  std::string error;
  double ttft_s = 0;
  int tokens = 0;
  Clock::time_point last_token;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

RequestResult RunOne(av1::AttentionService::Stub* stub, const LoadgenConfig& c, int index,
                     Clock::time_point start) {
  RequestResult r;
  av1::GenerateRequest req;
  req.set_request_id(absl::StrCat("loadgen-", index));
  // Distinct deterministic prompts (a request's prompt depends only on its index).
  uint32_t state = 2654435761u * static_cast<uint32_t>(index + 1);
  for (int i = 0; i < c.prompt_tokens; ++i) {
    state = state * 1664525u + 1013904223u;
    req.add_prompt_ids(10 + static_cast<int>((state >> 8) % static_cast<uint32_t>(c.vocab - 10)));
  }
  req.mutable_sampling()->set_max_tokens(c.gen_tokens);
  req.mutable_sampling()->set_ignore_eos(true);
  req.mutable_sampling()->set_temperature(0);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(c.timeout_s));
  auto reader = stub->Generate(&ctx, req);
  av1::GenerateResponse resp;
  while (reader->Read(&resp)) {
    if (resp.tokens_size() > 0) {
      const auto now = Clock::now();
      if (r.tokens == 0) r.ttft_s = std::chrono::duration<double>(now - start).count();
      r.tokens += resp.tokens_size();
      r.last_token = now;
    }
  }
  grpc::Status st = reader->Finish();
  r.ok = st.ok();
  if (!st.ok()) r.error = st.error_message();
  return r;
}

int Run(const LoadgenConfig& c) {
  std::vector<int> levels;
  for (absl::string_view s : absl::StrSplit(c.concurrency, ',', absl::SkipEmpty())) {
    int v = 0;
    if (!absl::SimpleAtoi(s, &v) || v < 1 || v > 256) {
      std::fprintf(stderr, "moe loadgen: bad --concurrency entry '%s'\n", std::string(s).c_str());
      return 2;
    }
    levels.push_back(v);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(c.target, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
    std::fprintf(stderr, "moe loadgen: cannot connect to %s\n", c.target.c_str());
    return 1;
  }
  auto stub = av1::AttentionService::NewStub(channel);
  // Warm-up: one short request, not measured.
  {
    LoadgenConfig w = c;
    w.gen_tokens = 4;
    RequestResult r = RunOne(stub.get(), w, 100000, Clock::now());
    if (!r.ok) {
      std::fprintf(stderr, "moe loadgen: warm-up request failed: %s\n", r.error.c_str());
      return 1;
    }
  }
  std::printf("| %-28s | conc | tok/s (median) | TTFT median ms | TTFT max ms | failed |\n",
              "config");
  int failed_total = 0;
  for (int level : levels) {
    std::vector<double> tps;
    std::vector<double> ttft;
    int failed = 0;
    for (int round = 0; round < c.rounds; ++round) {
      std::vector<RequestResult> results(level);
      std::vector<std::thread> threads;
      const auto start = Clock::now();
      for (int i = 0; i < level; ++i) {
        threads.emplace_back([&, i] {
          results[i] = RunOne(stub.get(), c, round * 1000 + i, start);
        });
      }
      for (auto& t : threads) t.join();
      int tokens = 0;
      auto end = start;
      for (const auto& r : results) {
        if (!r.ok) {
          ++failed;
          std::fprintf(stderr, "moe loadgen: request failed: %s\n", r.error.c_str());
          continue;
        }
        tokens += r.tokens;
        end = std::max(end, r.last_token);
        ttft.push_back(r.ttft_s * 1e3);
      }
      const double wall = std::chrono::duration<double>(end - start).count();
      if (wall > 0) tps.push_back(tokens / wall);
    }
    failed_total += failed;
    std::printf("| %-28s | %4d | %14.1f | %14.1f | %11.1f | %6d |\n", c.label.c_str(), level,
                Median(tps), Median(ttft),
                ttft.empty() ? 0.0 : *std::max_element(ttft.begin(), ttft.end()), failed);
    std::fflush(stdout);
  }
  return failed_total == 0 ? 0 : 1;
}

}  // namespace

int RunLoadgen(int argc, const char* const* argv) {
  LoadgenConfig c;
  FlagSet flags("moe loadgen",
                "Drive an attention worker's Generate RPC with concurrent greedy requests and "
                "print tokens/s and time to first token (a benchmark client).");
  flags.AddString("target", &c.target, "attention worker address host:port");
  flags.AddString("concurrency", &c.concurrency, "comma-separated concurrency levels");
  flags.AddInt("prompt-tokens", &c.prompt_tokens, "prompt length per request");
  flags.AddInt("gen-tokens", &c.gen_tokens, "generated tokens per request");
  flags.AddInt("rounds", &c.rounds, "rounds per concurrency level (median reported)");
  flags.AddInt("vocab", &c.vocab, "prompt ids are drawn from [10, vocab)");
  flags.AddInt("timeout-s", &c.timeout_s, "deadline per request, seconds");
  flags.AddString("label", &c.label, "config name printed in the table");
  if (std::optional<int> exit = flags.ParseCommandLine(argc, argv)) return *exit;
  if (c.target.empty() || c.prompt_tokens < 1 || c.gen_tokens < 1 || c.rounds < 1 ||
      c.vocab <= 10 || c.timeout_s < 1) {
    std::fprintf(stderr, "moe loadgen: need --target; counts >= 1; --vocab > 10\n\n%s",
                 flags.Usage().c_str());
    return 2;
  }
  if (c.label.empty()) c.label = c.target;
  return Run(c);
}

}  // namespace moe::tools
