#include "expert_service/backend/cpu/cpu_backend.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/flags.h"
#include "common/status.h"
#include "expert_service/backend/expert_map.h"
#include "model/kernels/activations.h"
#include "model/kernels/cpu_features.h"
#include "model/kernels/packed_linear.h"
#include "model/kernels/thread_pool.h"

namespace moe::expert {
namespace {

using kernels::MatrixView;
using kernels::PackedLinear;

struct CpuExpert {
  int64_t hidden = 0;
  int64_t inter = 0;
  PackedLinear gate_up;  // [2*inter, hidden]: rows [0, inter) gate, [inter, 2*inter) up
  PackedLinear down;     // [hidden, inter]
  int64_t bytes() const {
    return static_cast<int64_t>(gate_up.packed_bytes() + down.packed_bytes());
  }
};

// Shards are spread over the threads together (RunShardsParallel) unless one shard holds more
// than 1/threads of the layer's tokens (its GEMMs then run on oneDNN, which cannot be cut into
// pieces): shards then run one after another, each GEMM split over the threads.
// MOE_CPU_SHARD_PARALLEL=0 turns shard-level parallelism off (for A/B measurements).
bool ShardParallelEnabled() {
  static const bool v = EnvSwitchOn("MOE_CPU_SHARD_PARALLEL");
  return v;
}

// Weight bytes per piece when a layer's experts are spread over the threads in pieces
// (RunShardsParallel): about 1 MiB, tens of microseconds of streaming, so the threads end a
// layer within one piece of each other while a piece still amortises converting its
// activations. MOE_CPU_EXPERT_PART_KB overrides it; 0 runs every expert whole on one thread.
int64_t PartBytes() {
  static const int64_t v = [] {
    const char* env = std::getenv("MOE_CPU_EXPERT_PART_KB");
    return env != nullptr && *env != '\0' ? std::max(0, std::atoi(env)) * int64_t{1024}
                                          : int64_t{1} << 20;
  }();
  return v;
}

// MOE_CODED_WEIGHTS=0 keeps BF16 weights uncoded (A/B runs; see BackendOptions::coded_bf16).
bool CodedWeightsEnabled() {
  static const bool v = EnvSwitchOn("MOE_CODED_WEIGHTS");
  return v;
}

absl::StatusOr<std::shared_ptr<const CpuExpert>> Pack(const ExpertWeights& w,
                                                      const kernels::PackedLinearOptions& opts) {
  int64_t hidden = 0, inter = 0;
  MOE_RETURN_IF_ERROR(ValidateExpertWeights(w, &hidden, &inter));
  const MatrixView gate_up[] = {{w.gate.dtype, w.gate.data, inter, hidden},
                                {w.up.dtype, w.up.data, inter, hidden}};
  MOE_ASSIGN_OR_RETURN(PackedLinear gu, PackedLinear::CreateStacked(gate_up, opts));
  MOE_ASSIGN_OR_RETURN(PackedLinear down,
                       PackedLinear::Create(w.down.dtype, w.down.data, hidden, inter, opts));
  return std::make_shared<const CpuExpert>(
      CpuExpert{hidden, inter, std::move(gu), std::move(down)});
}

class CpuBackend final : public ExpertBackend {
 public:
  explicit CpuBackend(const BackendOptions& options) : options_(options) {
    pack_options_.f16_packing =
        options.f16_as_bf16 ? kernels::F16Packing::kBF16 : kernels::F16Packing::kF32;
    pack_options_.coded_bf16 = options.coded_bf16 && CodedWeightsEnabled();
  }

  absl::Status Load(absl::Span<const ExpertWeights> experts) override {
    std::vector<ExpertMap<CpuExpert>::Entry> packed;
    packed.reserve(experts.size());
    int64_t added = 0;
    for (const ExpertWeights& w : experts) {
      MOE_ASSIGN_OR_RETURN(std::shared_ptr<const CpuExpert> e, Pack(w, pack_options_));
      added += e->bytes();
      packed.emplace_back(std::make_pair(w.layer, w.expert), std::move(e));
    }
    return map_.Install(std::move(packed));
  }

  absl::Status Unload(absl::Span<const std::pair<int, int>> layer_expert) override {
    map_.Remove(layer_expert);
    return absl::OkStatus();
  }

  bool Has(int layer, int expert) const override { return map_.Contains(layer, expert); }

  absl::Status Run(int layer, absl::Span<const ExpertShard> shards) override {
    MOE_ASSIGN_OR_RETURN(std::vector<std::shared_ptr<const CpuExpert>> experts,
                         map_.Acquire(layer, shards));
    for (const ExpertShard& s : shards) {
      if (s.tokens < 0) return absl::InvalidArgumentError("cpu backend: negative token count");
      if (s.tokens > 0 && (s.input == nullptr || s.output == nullptr)) {
        return absl::InvalidArgumentError("cpu backend: null shard buffer");
      }
    }
    int busy = 0;
    int64_t max_tokens = 0, total_tokens = 0;
    for (const ExpertShard& s : shards) {
      busy += s.tokens > 0 ? 1 : 0;
      max_tokens = std::max<int64_t>(max_tokens, s.tokens);
      total_tokens += s.tokens;
    }
    const int threads = kernels::KernelThreads();
    if (busy >= 2 && threads > 1 && max_tokens * threads <= total_tokens &&
        ShardParallelEnabled()) {
      RunShardsParallel(experts, shards);
    } else {
      for (size_t i = 0; i < shards.size(); ++i) RunShard(*experts[i], shards[i]);
    }
    return absl::OkStatus();
  }

  BackendInfo Describe() const override {
    BackendInfo info;
    info.name = "cpu";
    info.device = kernels::CpuDescription();
    info.memory_bytes = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
    std::tie(info.weight_bytes, info.experts_loaded) = map_.Totals();
    return info;
  }

 private:
  // output[combine_row[r]] += combine_weight[r] * ffn[r] for the shard's rows `ffn`.
  static void Combine(const ExpertShard& s, int64_t hidden, const float* ffn) {
    for (int64_t r = 0; r < s.tokens; ++r) {
      const int64_t row = s.combine_row != nullptr ? s.combine_row[r] : r;
      kernels::Axpy(s.combine_weight[r], ffn + r * hidden, hidden, s.output + row * hidden);
    }
  }

  // Called only from Run (one thread at a time): the scratch buffers need no lock.
  void RunShard(const CpuExpert& e, const ExpertShard& s) {
    if (s.tokens == 0) return;
    const int64_t t = s.tokens;
    if (gate_up_.size() < static_cast<size_t>(t * 2 * e.inter)) gate_up_.resize(t * 2 * e.inter);
    e.gate_up.Forward(s.input, t, gate_up_.data());
    kernels::SiluMulStacked(gate_up_.data(), t, e.inter, gate_up_.data());  // in place
    if (s.combine_weight == nullptr) {
      e.down.Forward(gate_up_.data(), t, s.output);
      return;
    }
    if (down_.size() < static_cast<size_t>(t * e.hidden)) down_.resize(t * e.hidden);
    e.down.Forward(gate_up_.data(), t, down_.data());
    Combine(s, e.hidden, down_.data());
  }

  // The shards' experts spread over the kernels' pool in pieces of about PartBytes() of
  // weights (PackedLinear::ForwardPart: ranges of output features), so the threads finish a
  // layer together instead of waiting on whichever drew the last whole expert: first every
  // gate|up piece, then SiLU-mul per shard, then every down piece. Pieces are claimed
  // dynamically, largest shards first. Each shard's down projection goes to its own rows of
  // shard_out_; the writes / combines into the callers' outputs then run on this thread in
  // shard order, so the results are bit-identical to RunShard's (every output feature is
  // computed by the same kernel over the same inputs, whichever thread runs it).
  void RunShardsParallel(const std::vector<std::shared_ptr<const CpuExpert>>& experts,
                         absl::Span<const ExpertShard> shards) {
    const size_t n = shards.size();
    std::vector<int> order;
    for (size_t i = 0; i < n; ++i) {
      if (shards[i].tokens > 0) order.push_back(static_cast<int>(i));
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return shards[a].tokens > shards[b].tokens; });
    std::vector<int64_t> out_at(n + 1, 0), gate_up_at(n + 1, 0);
    for (size_t i = 0; i < n; ++i) {
      out_at[i + 1] = out_at[i] + shards[i].tokens * experts[i]->hidden;
      gate_up_at[i + 1] = gate_up_at[i] + shards[i].tokens * 2 * experts[i]->inter;
    }
    if (shard_out_.size() < static_cast<size_t>(out_at[n])) shard_out_.resize(out_at[n]);
    if (gate_up_.size() < static_cast<size_t>(gate_up_at[n])) gate_up_.resize(gate_up_at[n]);

    // Pieces of one projection of every shard in `order`: piece j belongs to the shard whose
    // range [first[s], first[s + 1]) holds j.
    struct Pieces {
      std::vector<int64_t> first{0};
      std::vector<int64_t> parts;
    };
    const auto cut = [&](auto projection) {
      Pieces p;
      for (const int i : order) {
        const PackedLinear& w = experts[i].get()->*projection;
        const int64_t want =
            static_cast<int64_t>(w.packed_bytes()) / std::max<int64_t>(1, PartBytes());
        const int64_t parts =
            PartBytes() > 0 ? std::clamp<int64_t>(want, 1, w.MaxParts(shards[i].tokens)) : 1;
        p.parts.push_back(parts);
        p.first.push_back(p.first.back() + parts);
      }
      return p;
    };
    const auto run = [&](const Pieces& p, auto&& piece) {
      kernels::ParallelFor(p.first.back(), [&](int64_t j) {
        const size_t s = std::upper_bound(p.first.begin(), p.first.end(), j) - p.first.begin() - 1;
        piece(order[s], j - p.first[s], p.parts[s]);
      });
    };
    run(cut(&CpuExpert::gate_up), [&](int i, int64_t part, int64_t parts) {
      experts[i]->gate_up.ForwardPart(shards[i].input, shards[i].tokens,
                                      gate_up_.data() + gate_up_at[i], part, parts);
    });
    kernels::ParallelFor(static_cast<int64_t>(order.size()), [&](int64_t j) {
      const int i = order[j];
      float* gu = gate_up_.data() + gate_up_at[i];
      kernels::SiluMulStacked(gu, shards[i].tokens, experts[i]->inter, gu);  // in place
    });
    run(cut(&CpuExpert::down), [&](int i, int64_t part, int64_t parts) {
      experts[i]->down.ForwardPart(gate_up_.data() + gate_up_at[i], shards[i].tokens,
                                   shard_out_.data() + out_at[i], part, parts);
    });
    for (size_t i = 0; i < n; ++i) {
      const ExpertShard& s = shards[i];
      const int64_t hidden = experts[i]->hidden;
      const float* out = shard_out_.data() + out_at[i];
      if (s.tokens == 0) continue;
      if (s.combine_weight == nullptr) {
        std::memcpy(s.output, out, static_cast<size_t>(s.tokens * hidden) * sizeof(float));
      } else {
        Combine(s, hidden, out);
      }
    }
  }

  const BackendOptions options_;
  kernels::PackedLinearOptions pack_options_;
  ExpertMap<CpuExpert> map_{"cpu backend", options_.memory_limit_bytes};
  std::vector<float> gate_up_;  // Run's scratch: [tokens, 2*inter] (all shards' in parallel)
  std::vector<float> down_;     // Run's scratch for combine: [tokens, hidden]
  std::vector<float> shard_out_;  // RunShardsParallel's down outputs: [sum of tokens, hidden]
};

}  // namespace

absl::StatusOr<std::unique_ptr<ExpertBackend>> CreateCpuBackend(const BackendOptions& options) {
  return std::unique_ptr<ExpertBackend>(new CpuBackend(options));
}

}  // namespace moe::expert
