// `moe bench`: single-process engine throughput, printed as a table (never asserted).
//   prompt processing: one prompt of --prompt-tokens, tokens/s of the prefill step(s)
//   generation: --gen-tokens decode steps at batch 1, tokens/s
//   batched decode: aggregate decode tokens/s with B sequences decoding together
// --micro-batches 1,2 repeats the batched decode rows per micro-batch count (EngineOptions::
// micro_batches); with --expert-addrs the routed experts run in `moe expert` services over gRPC
// (round-robin placement, as `moe attention --experts remote`), which is where micro-batches
// overlap attention with expert time.
// Each figure is the median of --repeats runs. The last column divides by the process's CPU
// time instead of wall time (tokens per CPU-second, all threads summed): with
// MOE_KERNEL_THREADS=1 it shows the work done, unaffected by other processes time-sharing the
// cores (idle pool workers spin briefly, so with more threads it also counts that spinning).
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "attention_service/dispatch/grpc_transport.h"
#include "attention_service/dispatch/placement.h"
#include "attention_service/dispatch/remote_expert_executor.h"
#include "attention_service/engine/local_model.h"
#include "common/status.h"
#include "common/flags.h"
#include "common/logging.h"
#include "tools/commands.h"

namespace moe::tools {
namespace {

struct BenchConfig {
  std::string model;
  int prompt_tokens = 512;
  int gen_tokens = 128;
  std::string batches = "1,2,4,8";
  int repeats = 3;
  int64_t kv_cache_mb = 1024;
  std::string backend = "cpu";
  std::string micro_batches = "1";  // comma-separated micro-batch counts for batched decode
  std::string expert_addrs;         // remote experts (moe expert services), comma-separated
  int batch_prompt_tokens = 32;     // prompt length of each sequence in the batched rows
  int micro_batch_min_tokens = 1;
};

std::vector<int> ParseInts(const std::string& list) {
  std::vector<int> out;
  for (absl::string_view p : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    int v;
    if (absl::SimpleAtoi(p, &v) && v > 0) out.push_back(v);
  }
  return out;
}

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

struct RunResult {
  double prefill_tps = 0, decode_tps = 0;          // per wall second
  double prefill_cpu_tps = 0, decode_cpu_tps = 0;  // per process CPU second
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::vector<int32_t> SyntheticPrompt(int n, int vocab, uint64_t seed) {
  std::vector<int32_t> p(n);
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (int i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = static_cast<int32_t>(x % static_cast<uint64_t>(std::min(vocab, 30000)));
  }
  return p;
}

// Prefill `prompt_tokens` then decode `gen` tokens for `batch` sequences; returns prefill
// tokens/s and aggregate decode tokens/s.
absl::StatusOr<RunResult> RunOnce(attention::LocalModel* m, const BenchConfig& c,
                                                  int batch, int prompt_tokens, int gen,
                                                  uint64_t seed,
                                                  attention::ExpertExecutor* experts,
                                                  int micro_batches = 1) {
  attention::EngineOptions eo;
  eo.kv_cache_bytes = c.kv_cache_mb << 20;
  eo.max_batch_tokens = std::max(prompt_tokens, 512);
  eo.micro_batches = micro_batches;
  eo.micro_batch_min_tokens = c.micro_batch_min_tokens;
  MOE_ASSIGN_OR_RETURN(auto engine, attention::Engine::Create(eo, m->runner(), experts));
  for (int b = 0; b < batch; ++b) {
    attention::SequenceRequest req;
    req.prompt = SyntheticPrompt(prompt_tokens, m->config().vocab_size, seed + b);
    req.max_tokens = gen + 1;
    req.ignore_eos = true;
    req.sampling.temperature = 0;
    MOE_RETURN_IF_ERROR(engine->Add(b + 1, std::move(req)));
  }
  // Prefill: steps until every sequence has its first token.
  absl::Time t0 = absl::Now();
  const double c0 = ProcessCpuSeconds();
  int have_first = 0;
  while (have_first < batch) {
    MOE_ASSIGN_OR_RETURN(auto ups, engine->Step());
    for (auto& u : ups) have_first += u.tokens.empty() ? 0 : 1;
  }
  double prefill_s = absl::ToDoubleSeconds(absl::Now() - t0);
  const double c1 = ProcessCpuSeconds();
  absl::Time t1 = absl::Now();
  int decoded = 0;
  while (engine->HasWork()) {
    MOE_ASSIGN_OR_RETURN(auto ups, engine->Step());
    for (auto& u : ups) decoded += static_cast<int>(u.tokens.size());
  }
  double decode_s = absl::ToDoubleSeconds(absl::Now() - t1);
  const double c2 = ProcessCpuSeconds();
  RunResult r;
  r.prefill_tps = batch * prompt_tokens / prefill_s;
  r.decode_tps = decoded / decode_s;
  r.prefill_cpu_tps = batch * prompt_tokens / std::max(c1 - c0, 1e-9);
  r.decode_cpu_tps = decoded / std::max(c2 - c1, 1e-9);
  return r;
}

}  // namespace

int RunBench(int argc, const char* const* argv) {
  BenchConfig c;
  FlagSet flags("moe bench", "Measure single-process prompt processing and decode throughput.");
  flags.AddString("model", &c.model, "model folder");
  flags.AddInt("prompt-tokens", &c.prompt_tokens, "prompt length for prompt processing");
  flags.AddInt("gen-tokens", &c.gen_tokens, "tokens generated per sequence");
  flags.AddString("batches", &c.batches, "batch sizes for aggregate decode, comma-separated");
  flags.AddInt("repeats", &c.repeats, "runs per figure (median reported)");
  flags.AddInt("kv-cache-mb", &c.kv_cache_mb, "KV cache size in MiB");
  flags.AddString("backend", &c.backend, "expert backend");
  flags.AddString("micro-batches", &c.micro_batches,
                  "micro-batch counts for the batched decode rows, comma-separated");
  flags.AddInt("micro-batch-min-tokens", &c.micro_batch_min_tokens,
               "split a step only into micro-batches of about this many tokens or more");
  flags.AddInt("batch-prompt-tokens", &c.batch_prompt_tokens,
               "prompt length per sequence in the batched rows");
  flags.AddString("expert-addrs", &c.expert_addrs,
                  "run the routed experts in these moe expert services (host:port,...; "
                  "round-robin placement) instead of in process");
  if (std::optional<int> exit = flags.ParseCommandLine(argc, argv)) return *exit;
  if (c.model.empty()) {
    std::fprintf(stderr, "moe bench: need --model\n\n%s", flags.Usage().c_str());
    return 2;
  }
  InitLogging("bench", "warn");
  attention::LocalModelOptions lo;
  lo.backend = c.backend;
  absl::Time load0 = absl::Now();
  auto m = attention::LocalModel::Open(c.model, lo);
  if (!m.ok()) {
    std::fprintf(stderr, "moe bench: %s\n", m.status().ToString().c_str());
    return 1;
  }
  std::printf("model %s loaded in %.1f s: %s\n", c.model.c_str(),
              absl::ToDoubleSeconds(absl::Now() - load0),
              model::DescribeModelConfig((*m)->config()).c_str());
  std::vector<int> batches;
  for (absl::string_view p : absl::StrSplit(c.batches, ',', absl::SkipWhitespace())) {
    int b;
    if (absl::SimpleAtoi(p, &b) && b > 0) batches.push_back(b);
  }
  // Routed experts: in process, or in moe expert services over gRPC.
  attention::ExpertExecutor* experts = (*m)->experts();
  std::optional<attention::StaticPlacement> placement;
  attention::GrpcExpertTransport transport;
  std::unique_ptr<attention::RemoteExpertExecutor> remote;
  if (!c.expert_addrs.empty()) {
    std::vector<std::string> addrs = absl::StrSplit(c.expert_addrs, ',', absl::SkipWhitespace());
    auto p = attention::StaticPlacement::RoundRobin((*m)->config(),
                                                     static_cast<int>(addrs.size()), 1);
    if (!p.ok()) {
      std::fprintf(stderr, "moe bench: %s\n", p.status().ToString().c_str());
      return 2;
    }
    placement.emplace(std::move(*p));
    remote = std::make_unique<attention::RemoteExpertExecutor>(&*placement, addrs, &transport);
    experts = remote.get();
    std::printf("experts: %zu remote expert services\n", addrs.size());
  }
  const std::vector<int> micro_batches = ParseInts(c.micro_batches);
  // Warm-up (page in, oneDNN primitive creation).
  if (auto w = RunOnce(m->get(), c, 1, 64, 4, 99, experts); !w.ok()) {
    std::fprintf(stderr, "moe bench: %s\n", w.status().ToString().c_str());
    return 1;
  }
  std::printf(
      "\n| test | batch | tokens | tokens/s (median of %d) | runs | tokens per CPU-s |\n"
      "|---|---|---|---|---|---|\n",
      c.repeats);
  std::vector<double> pp, tg, pp_cpu, tg_cpu;
  for (int r = 0; r < c.repeats; ++r) {
    auto res = RunOnce(m->get(), c, 1, c.prompt_tokens, c.gen_tokens, 1000 + r, experts);
    if (!res.ok()) {
      std::fprintf(stderr, "moe bench: %s\n", res.status().ToString().c_str());
      return 1;
    }
    pp.push_back(res->prefill_tps);
    tg.push_back(res->decode_tps);
    pp_cpu.push_back(res->prefill_cpu_tps);
    tg_cpu.push_back(res->decode_cpu_tps);
  }
  auto runs = [](const std::vector<double>& v) {
    std::string s;
    for (double x : v) {
      if (!s.empty()) s += ' ';
      s += std::to_string(static_cast<int>(x + 0.5));
    }
    return s;
  };
  std::printf("| pp%d | 1 | %d | %.1f | %s | %.1f |\n", c.prompt_tokens, c.prompt_tokens,
              Median(pp), runs(pp).c_str(), Median(pp_cpu));
  std::printf("| tg%d | 1 | %d | %.1f | %s | %.1f |\n", c.gen_tokens, c.gen_tokens, Median(tg),
              runs(tg).c_str(), Median(tg_cpu));
  // Micro-batch counts alternate within each repeat, so a change in machine load hits them alike.
  for (int b : batches) {
    std::vector<std::vector<double>> agg(micro_batches.size()), agg_cpu(micro_batches.size());
    std::vector<std::vector<double>> pre(micro_batches.size()), pre_cpu(micro_batches.size());
    for (int r = 0; r < c.repeats; ++r) {
      for (size_t k = 0; k < micro_batches.size(); ++k) {
        auto res = RunOnce(m->get(), c, b, c.batch_prompt_tokens, c.gen_tokens, 2000 + r * 16,
                           experts, micro_batches[k]);
        if (!res.ok()) {
          std::fprintf(stderr, "moe bench: %s\n", res.status().ToString().c_str());
          return 1;
        }
        agg[k].push_back(res->decode_tps);
        agg_cpu[k].push_back(res->decode_cpu_tps);
        pre[k].push_back(res->prefill_tps);
        pre_cpu[k].push_back(res->prefill_cpu_tps);
      }
    }
    for (size_t k = 0; k < micro_batches.size(); ++k) {
      const std::string name =
          micro_batches.size() == 1 && micro_batches[k] == 1
              ? std::string("decode (aggregate)")
              : "decode (aggregate, " + std::to_string(micro_batches[k]) + " micro-batches)";
      std::printf("| %s | %d | %d | %.1f | %s | %.1f |\n", name.c_str(), b, b * c.gen_tokens,
                  Median(agg[k]), runs(agg[k]).c_str(), Median(agg_cpu[k]));
    }
    // With several micro-batch counts, also the batched prefill (prompt processing) rows.
    for (size_t k = 0; micro_batches.size() > 1 && k < micro_batches.size(); ++k) {
      std::printf("| prefill (aggregate, %d micro-batches) | %d | %d | %.1f | %s | %.1f |\n",
                  micro_batches[k], b, b * c.batch_prompt_tokens, Median(pre[k]),
                  runs(pre[k]).c_str(), Median(pre_cpu[k]));
    }
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace moe::tools
