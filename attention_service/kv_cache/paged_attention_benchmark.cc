// Paged attention throughput on the calling thread, and split over two threads (wall time:
// on a machine shared with other processes, the two-thread rows show what a second core buys).
//
//   build-attn/attention_service/kv_cache/paged_attention_benchmark
//
// Args: {num_heads, num_kv_heads, head_dim, context, rows_per_seq, num_seqs}.
#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "attention_service/kv_cache/paged_attention.h"

namespace moe::attention {
namespace {

// A persistent one-extra-thread pool: the caller and one worker share the items.
class TwoThreadRunner {
 public:
  TwoThreadRunner() : worker_([this] { Loop(); }) {}
  ~TwoThreadRunner() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  void Run(int n, const std::function<void(int)>& fn) {
    {
      std::lock_guard<std::mutex> l(mu_);
      fn_ = &fn;
      n_ = n;
      next_.store(0);
      pending_ = 1;
      ++generation_;
    }
    cv_.notify_all();
    Work();
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [&] { return pending_ == 0; });
  }

 private:
  void Work() {
    for (int i; (i = next_.fetch_add(1)) < n_;) (*fn_)(i);
  }
  void Loop() {
    uint64_t seen = 0;
    while (true) {
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      Work();
      {
        std::lock_guard<std::mutex> l(mu_);
        pending_ = 0;
      }
      done_cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int)>* fn_ = nullptr;
  int n_ = 0;
  std::atomic<int> next_{0};
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::thread worker_;
};

void BM_PagedAttention(benchmark::State& state, bool two_threads) {
  const int heads = state.range(0), kv_heads = state.range(1), d = state.range(2);
  const int context = state.range(3), rows = state.range(4), seqs = state.range(5);
  KvCacheConfig c;
  c.num_layers = 1;
  c.num_kv_heads = kv_heads;
  c.head_dim = d;
  c.num_blocks = seqs * (context / c.block_size + 1);
  auto cache = *KvCache::Create(c);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<AttentionChunk> chunks;
  std::vector<float> kv(static_cast<size_t>(context) * kv_heads * d);
  for (float& x : kv) x = normal(rng);
  for (int s = 0; s < seqs; ++s) {
    (void)cache->Reserve(s, context);
    cache->AppendRows(0, s, 0, context, kv.data(), kv.data());
    chunks.push_back({static_cast<SeqId>(s), context - rows, rows, s * rows});
  }
  std::vector<float> q(static_cast<size_t>(seqs) * rows * heads * d), out(q.size());
  for (float& x : q) x = normal(rng);
  TwoThreadRunner runner;
  PagedAttentionOptions options;
  if (two_threads) {
    options.parallel_for = [&](int n, const std::function<void(int)>& fn) { runner.Run(n, fn); };
  }
  for (auto _ : state) {
    PagedAttention(*cache, 0, chunks, heads, q.data(), out.data(), options);
    benchmark::DoNotOptimize(out.data());
  }
  // Multiply-adds: q.k and p.v over the causal window, per query head.
  double macs = 0;
  for (int r = 0; r < rows; ++r) macs += 2.0 * (context - rows + r + 1) * d;
  macs *= static_cast<double>(heads) * seqs;
  state.counters["GFLOP/s"] = benchmark::Counter(
      2 * macs, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void Shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"H", "KVH", "D", "ctx", "rows", "seqs"});
  b->Args({4, 2, 16, 64, 1, 8});     // tiny golden model, decode
  b->Args({4, 2, 16, 256, 256, 1});  // tiny golden model, prefill
  b->Args({32, 8, 128, 512, 1, 8});  // Mixtral-like decode
  b->Args({32, 8, 128, 2048, 1, 4});
  b->Args({32, 8, 128, 512, 512, 1});  // Mixtral-like prefill
  b->Args({32, 4, 128, 1024, 1, 16});  // Qwen3-MoE-like decode
}

BENCHMARK_CAPTURE(BM_PagedAttention, serial, false)->Apply(Shapes)->UseRealTime();
BENCHMARK_CAPTURE(BM_PagedAttention, two_threads, true)->Apply(Shapes)->UseRealTime();

}  // namespace
}  // namespace moe::attention

BENCHMARK_MAIN();
