// Expert FFN kernel benchmark: SwiGLU expert (fused gate+up GEMM, SiLU-mul, down GEMM) with
// BF16 weights on the CPU, for the bench-mixtral (hidden 1024, inter 2816) and
// bench-finegrained (hidden 1024, inter 512) expert shapes, at M = 1, 8, 64, 512 tokens, through
// oneDNN, the hand-written AVX512-BF16 kernel (M = 16 and 32 too: where kAuto switches) and the automatic choice (what the CPU expert
// backend runs).
//
// The same run measures the machine's ceilings: the BF16 peak (a register-only vdpbf16ps loop
// on 1 and 2 threads) and the memory read bandwidth (a STREAM-like sum over 1 GiB), and the
// table at the end states every FFN result as a fraction of them. Weights rotate over enough
// experts (>= 256 MiB) that every call streams them from DRAM, as decoding does.
//
// Usage: expert_ffn_benchmark [--benchmark_repetitions=N] [--benchmark_filter=...]
// The table reports medians when repetitions > 1. Time is printed, never asserted.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "model/dtype.h"
#include "model/kernels/activations.h"
#include "model/kernels/cpu_features.h"
#include "model/kernels/packed_linear.h"
#include "model/kernels/thread_pool.h"

namespace {

using moe::DType;
using moe::kernels::LinearImpl;
using moe::kernels::PackedLinear;

constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kMinRotationBytes = 256ll << 20;

// ---------------------------------------------------------------- machine ceilings

constexpr int kPeakChains = 16;
constexpr double kFlopsPerDpbf16 = 16 * 2 * 2;  // 16 lanes x 2 products x (mul + add)

__attribute__((target("avx512f,avx512bf16"), noinline)) float Dpbf16Loop(int64_t iters) {
  __m512 acc[kPeakChains];
#pragma GCC unroll 16
  for (int j = 0; j < kPeakChains; ++j) acc[j] = _mm512_set1_ps(static_cast<float>(j));
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3a83);  // ~1e-3 in bf16
  const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3a83);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kPeakChains; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  }
  __m512 s = acc[0];
#pragma GCC unroll 16
  for (int j = 1; j < kPeakChains; ++j) s = _mm512_add_ps(s, acc[j]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);  // (not _mm512_reduce_add_ps: g++ 12 warns inside it)
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

constexpr int64_t kPeakIters = 2'000'000;

void BM_Bf16Peak(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const int64_t iters = kPeakIters;
  float sink = 0;
  for (auto _ : state) {
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += Dpbf16Loop(iters);
  }
  benchmark::DoNotOptimize(sink);
  const double flops = kFlopsPerDpbf16 * kPeakChains * iters * threads;
  state.counters["GFLOPs"] =
      benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

__attribute__((target("avx512f"), noinline)) int64_t SumBytes(const uint8_t* p, int64_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  const auto* v = reinterpret_cast<const __m512i*>(p);
  for (int64_t i = 0; i + 4 <= n / 64; i += 4) {
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(v + i));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(v + i + 1));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512(v + i + 2));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512(v + i + 3));
  }
  alignas(64) int64_t lanes[8];
  _mm512_store_si512(lanes, _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
  int64_t total = 0;
  for (int64_t v : lanes) total += v;
  return total;
}

void BM_MemoryRead(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  static uint8_t* buffer = [] {
    auto* p = static_cast<uint8_t*>(std::aligned_alloc(4096, kGiB));
    std::fill(p, p + kGiB, uint8_t{1});
    return p;
  }();
  int64_t sink = 0;
  for (auto _ : state) {
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
      const int64_t chunk = kGiB / omp_get_num_threads();
      sink += SumBytes(buffer + omp_get_thread_num() * chunk, chunk);
    }
  }
  benchmark::DoNotOptimize(sink);
  state.counters["GBs"] =
      benchmark::Counter(static_cast<double>(kGiB) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

// ---------------------------------------------------------------- expert FFN

struct Shape {
  const char* name;
  int64_t hidden;
  int64_t inter;
};
constexpr Shape kShapes[] = {{"mixtral", 1024, 2816}, {"finegrained", 1024, 512}};

// Rows per expert call: 1-4 are what decode batches give each expert.
constexpr int64_t kMs[] = {1, 2, 3, 4, 8, 16, 32, 64, 512};

struct PackedExpert {
  PackedLinear gate_up;  // [2*inter, hidden]
  PackedLinear down;     // [hidden, inter]
};

// The packed experts of the last (shape, impl) benchmarked, reused across repetitions.
struct ExpertSet {
  std::string key;
  std::vector<PackedExpert> experts;
  int64_t weight_bytes_per_expert = 0;
};

// One kernel variant the table compares: an implementation and its activation split (see
// PackedLinearOptions::split_activation_max_rows; "avx512_bf16_nosplit" rounds activations to
// BF16 at every M).
// "coded" keeps the weights exponent-coded (PackedLinearOptions::coded_bf16: 12 bits each).
struct Variant {
  const char* name;
  LinearImpl impl;
  int64_t split_max_rows;
  bool coded = false;
};
constexpr Variant kVariants[] = {{"onednn", LinearImpl::kOneDnn, 16},
                                 {"avx512_bf16", LinearImpl::kAvx512Bf16, 16},
                                 {"avx512_bf16_coded", LinearImpl::kAvx512Bf16, 16, true},
                                 {"avx512_bf16_nosplit", LinearImpl::kAvx512Bf16, 0},
                                 {"auto", LinearImpl::kAuto, 16}};

ExpertSet& Experts(const Shape& shape, const Variant& variant) {
  static ExpertSet set;
  const std::string key = std::string(shape.name) + "/" + variant.name;
  if (set.key == key) return set;
  set.experts.clear();
  set.key = key;
  set.weight_bytes_per_expert = 3 * shape.hidden * shape.inter * 2;
  const int64_t count = std::max<int64_t>(2, kMinRotationBytes / set.weight_bytes_per_expert + 1);
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<uint16_t> gate_up(2 * shape.inter * shape.hidden), down(shape.hidden * shape.inter);
  for (int64_t e = 0; e < count; ++e) {
    for (auto& v : gate_up) v = moe::F32ToBf16(dist(rng));
    for (auto& v : down) v = moe::F32ToBf16(dist(rng));
    const moe::kernels::PackedLinearOptions opts{
        .impl = variant.impl,
        .split_activation_max_rows = variant.split_max_rows,
        .coded_bf16 = variant.coded};
    auto gu =
        PackedLinear::Create(DType::kBF16, gate_up.data(), 2 * shape.inter, shape.hidden, opts);
    auto dn = PackedLinear::Create(DType::kBF16, down.data(), shape.hidden, shape.inter, opts);
    if (!gu.ok() || !dn.ok()) {
      std::fprintf(stderr, "packing failed: %s\n", (gu.ok() ? dn.status() : gu.status()).ToString().c_str());
      std::abort();
    }
    set.experts.push_back({std::move(*gu), std::move(*dn)});
  }
  return set;
}

void BM_ExpertFfn(benchmark::State& state, Shape shape, Variant variant) {
  if (variant.impl != LinearImpl::kOneDnn && !moe::kernels::HasAvx512Bf16()) {
    state.SkipWithError("no avx512_bf16");
    return;
  }
  const int64_t m = state.range(0);
  ExpertSet& set = Experts(shape, variant);
  std::vector<float> x(m * shape.hidden), gate_up(m * 2 * shape.inter), h(m * shape.inter),
      out(m * shape.hidden);
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto& v : x) v = dist(rng);
  size_t next = 0;
  for (auto _ : state) {
    const PackedExpert& e = set.experts[next];
    next = (next + 1) % set.experts.size();
    e.gate_up.Forward(x.data(), m, gate_up.data());
    moe::kernels::SiluMulStacked(gate_up.data(), m, shape.inter, h.data());
    e.down.Forward(h.data(), m, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  const double flops = 2.0 * m * shape.hidden * shape.inter * 3;
  state.counters["GFLOPs"] =
      benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["weightGBs"] = benchmark::Counter(
      static_cast<double>(set.weight_bytes_per_expert) / 1e9,
      benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(moe::kernels::LinearImplName(set.experts[0].gate_up.ImplFor(m)));
}

// A decode step's MoE layer as the CPU expert backend runs it at batch 8: `experts` different
// experts of M rows each, every expert whole on one thread of the kernels' pool (shard-level
// parallelism). weightGBs counts every expert's bytes.
void BM_ExpertLayer(benchmark::State& state, Shape shape, Variant variant) {
  if (variant.impl != LinearImpl::kOneDnn && !moe::kernels::HasAvx512Bf16()) {
    state.SkipWithError("no avx512_bf16");
    return;
  }
  const int64_t m = state.range(0);
  const int64_t experts = state.range(1);
  ExpertSet& set = Experts(shape, variant);
  std::vector<float> x(m * shape.hidden), out(experts * m * shape.hidden);
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto& v : x) v = dist(rng);
  size_t next = 0;
  for (auto _ : state) {
    const size_t first = next;
    next = (next + experts) % set.experts.size();
    moe::kernels::ParallelFor(experts, [&](int64_t j) {
      const PackedExpert& e = set.experts[(first + j) % set.experts.size()];
      thread_local std::vector<float> gate_up, h;
      gate_up.resize(m * 2 * shape.inter);
      h.resize(m * shape.inter);
      e.gate_up.Forward(x.data(), m, gate_up.data());
      moe::kernels::SiluMulStacked(gate_up.data(), m, shape.inter, h.data());
      e.down.Forward(h.data(), m, out.data() + j * m * shape.hidden);
    });
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["weightGBs"] =
      benchmark::Counter(static_cast<double>(experts * set.weight_bytes_per_expert) / 1e9,
                         benchmark::Counter::kIsIterationInvariantRate);
}

// ---------------------------------------------------------------- the table

struct Row {
  double real_us = 0;
  double cpu_us = 0;  // the calling thread's CPU time: robust to other processes on the cores
  std::map<std::string, double> counters;
  std::string label;
};

// Keeps the median of every benchmark (or its only run without repetitions).
class TableReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      const bool single = run.run_type == Run::RT_Iteration && run.repetitions <= 1;
      if (!median && !single) continue;
      if (run.error_occurred) continue;
      Row row;
      row.real_us = run.GetAdjustedRealTime() * 1e6 / benchmark::GetTimeUnitMultiplier(run.time_unit);
      row.cpu_us = run.GetAdjustedCPUTime() * 1e6 / benchmark::GetTimeUnitMultiplier(run.time_unit);
      for (const auto& [name, counter] : run.counters) row.counters[name] = counter.value;
      row.label = run.report_label;
      rows_[Key(run)] = row;
    }
    for (const Run& run : runs) spread_[Key(run)].push_back(run);
  }
  const std::map<std::string, Row>& rows() const { return rows_; }
  // "function/args", e.g. "ffn/mixtral/auto/m:1" (without the min_time/real_time suffixes).
  static std::string Key(const Run& run) {
    return run.run_name.function_name + "/" + run.run_name.args;
  }
  // (max - min) / median of the repetitions' real time, in percent.
  double SpreadPercent(const std::string& name) const {
    auto it = spread_.find(name);
    if (it == spread_.end()) return 0;
    std::vector<double> t;
    for (const Run& r : it->second) {
      if (r.run_type == Run::RT_Iteration) t.push_back(r.GetAdjustedRealTime());
    }
    if (t.size() < 2) return 0;
    std::sort(t.begin(), t.end());
    return 100.0 * (t.back() - t.front()) / t[t.size() / 2];
  }

 private:
  std::map<std::string, Row> rows_;
  std::map<std::string, std::vector<Run>> spread_;
};

double Counter(const TableReporter& r, const std::string& name, const char* counter) {
  auto it = r.rows().find(name);
  if (it == r.rows().end()) return 0;
  auto c = it->second.counters.find(counter);
  return c == it->second.counters.end() ? 0 : c->second;
}

void PrintTable(const TableReporter& r) {
  const double peak1 = Counter(r, "bf16_peak/threads:1", "GFLOPs");
  const double peak2 = Counter(r, "bf16_peak/threads:2", "GFLOPs");
  const double bw1 = Counter(r, "memory_read/threads:1", "GBs");
  const double bw2 = Counter(r, "memory_read/threads:2", "GBs");
  std::printf("\n== machine (%s), OpenMP threads %d ==\n", moe::kernels::CpuDescription().c_str(),
              omp_get_max_threads());
  std::printf("BF16 peak (vdpbf16ps, registers only): 1 thread %.1f GFLOP/s, 2 threads %.1f GFLOP/s"
              " (spread %.0f%% / %.0f%%)\n",
              peak1, peak2, r.SpreadPercent("bf16_peak/threads:1"),
              r.SpreadPercent("bf16_peak/threads:2"));
  std::printf("memory read bandwidth (1 GiB sum): 1 thread %.1f GB/s, 2 threads %.1f GB/s"
              " (spread %.0f%% / %.0f%%)\n",
              bw1, bw2, r.SpreadPercent("memory_read/threads:1"),
              r.SpreadPercent("memory_read/threads:2"));
  const double peak = peak2 > 0 ? peak2 : peak1;
  const double bw = bw2 > 0 ? bw2 : bw1;
  // On one thread, CPU time is the time the thread really ran: ceilings and FFN rates over CPU
  // time are robust to other processes time-sharing the cores (not to memory traffic).
  const auto cpu_us = [&](const std::string& name) {
    auto it = r.rows().find(name);
    return it == r.rows().end() ? 0.0 : it->second.cpu_us;
  };
  const double peak_cpu = cpu_us("bf16_peak/threads:1") > 0
      ? kFlopsPerDpbf16 * kPeakChains * kPeakIters / cpu_us("bf16_peak/threads:1") / 1e3 : 0;
  const double bw_cpu = cpu_us("memory_read/threads:1") > 0
      ? static_cast<double>(kGiB) / cpu_us("memory_read/threads:1") / 1e3 : 0;
  const bool one_thread = moe::kernels::KernelThreads() == 1;
  if (one_thread) {
    std::printf("over CPU time (1 thread): BF16 peak %.1f GFLOP/s, memory read %.1f GB/s\n",
                peak_cpu, bw_cpu);
  }
  std::printf("\n== expert FFN, BF16 weights, F32 activations (medians; %% of the %d-thread "
              "ceilings above%s) ==\n", moe::kernels::KernelThreads(),
              one_thread ? "; @cpu: over CPU time" : "");
  std::printf("%-12s %5s %-19s %-12s %11s %11s %9s %7s %10s %7s %7s", "shape", "M", "requested",
              "ran", "time_us", "cpu_us", "GFLOP/s", "%peak", "weightGB/s", "%membw", "spread");
  if (one_thread) std::printf(" %9s %7s %9s %7s", "GF/s@cpu", "%pk@cpu", "GB/s@cpu", "%bw@cpu");
  std::printf("\n");
  for (const Shape& shape : kShapes) {
    for (int64_t m : kMs) {
      for (const Variant& variant : kVariants) {
        const char* impl = variant.name;
        const std::string name = std::string("ffn/") + shape.name + "/" + impl + "/m:" +
                                 std::to_string(m);
        auto it = r.rows().find(name);
        if (it == r.rows().end()) continue;
        const double gflops = Counter(r, name, "GFLOPs");
        const double gbs = Counter(r, name, "weightGBs");
        std::printf("%-12s %5ld %-19s %-12s %11.1f %11.1f %9.1f %6.1f%% %10.1f %6.1f%% %6.0f%%",
                    shape.name, static_cast<long>(m), impl, it->second.label.c_str(),
                    it->second.real_us, it->second.cpu_us, gflops,
                    peak > 0 ? 100.0 * gflops / peak : 0.0, gbs, bw > 0 ? 100.0 * gbs / bw : 0.0,
                    r.SpreadPercent(name));
        if (one_thread && it->second.cpu_us > 0) {
          const double flops = 2.0 * m * shape.hidden * shape.inter * 3;
          const double bytes = 3.0 * shape.hidden * shape.inter * 2;
          const double gf = flops / it->second.cpu_us / 1e3;
          const double gb = bytes / it->second.cpu_us / 1e3;
          std::printf(" %9.1f %6.1f%% %9.1f %6.1f%%", gf, peak_cpu > 0 ? 100 * gf / peak_cpu : 0,
                      gb, bw_cpu > 0 ? 100 * gb / bw_cpu : 0);
        }
        std::printf("\n");
      }
    }
  }
  std::printf("\n(time_us: wall time per FFN call, which GFLOP/s and GB/s use; cpu_us: CPU time "
              "of the calling thread (on 1 thread, the time it actually ran); spread = (max - min) "
              "/ median of time_us over repetitions; weightGB/s = weight bytes of one expert / "
              "time_us)\n");
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (moe::kernels::HasAvx512Bf16()) {
    benchmark::RegisterBenchmark("bf16_peak", BM_Bf16Peak)
        ->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
  }
  benchmark::RegisterBenchmark("memory_read", BM_MemoryRead)
      ->ArgName("threads")
      ->Arg(1)
      ->Arg(2)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  for (const Shape& shape : kShapes) {
    for (const Variant& variant : kVariants) {
      const std::string name = std::string("ffn/") + shape.name + "/" + variant.name;
      auto* b = benchmark::RegisterBenchmark(name.c_str(), BM_ExpertFfn, shape, variant);
      b->ArgName("m")->UseRealTime()->Unit(benchmark::kMicrosecond)->MinTime(0.3);
      for (int64_t m : kMs) b->Arg(m);
    }
  }
  for (const Shape& shape : kShapes) {
    for (const Variant& variant : kVariants) {
      if (variant.impl != LinearImpl::kAvx512Bf16) continue;
      const std::string name = std::string("layer/") + shape.name + "/" + variant.name;
      benchmark::RegisterBenchmark(name.c_str(), BM_ExpertLayer, shape, variant)
          ->ArgNames({"m", "experts"})
          ->Args({1, 10})
          ->Args({2, 10})
          ->Args({3, 10})
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond)
          ->MinTime(0.3);
    }
  }
  TableReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  PrintTable(reporter);
  benchmark::Shutdown();
  return 0;
}
