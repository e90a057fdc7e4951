#include "model/demo_model.h"

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/demo_tokenizer.h"
#include "model/safetensors_writer.h"

namespace moe::model {
namespace {

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr char kTransformersVersion[] = "4.51.0";

// --- deterministic normal generator ----------------------------------------------------------

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// xoshiro256** (Blackman & Vigna).
class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed) {
    for (uint64_t& s : s_) s = SplitMix64(seed);
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// Natural log of x in (0, 1] with only +, -, *, / (|relative error| < 1e-11), so the weights are
// bit-identical on every IEEE-754 platform whatever its libm (and faster than std::log).
double Log(double x) {
  uint64_t bits;
  std::memcpy(&bits, &x, 8);
  int e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;  // mantissa in [1, 2)
  double m;
  std::memcpy(&m, &bits, 8);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    ++e;
  }
  // ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  constexpr double k3 = 1.0 / 3, k5 = 1.0 / 5, k7 = 1.0 / 7, k9 = 1.0 / 9, k11 = 1.0 / 11,
                   k13 = 1.0 / 13;
  const double series = 1.0 + s2 * (k3 + s2 * (k5 + s2 * (k7 + s2 * (k9 + s2 * (k11 + s2 * k13)))));
  return e * 0.69314718055994530942 + 2.0 * s * series;
}

// sin and cos of x in [-pi/4, pi/4] by their Taylor series up to x^17 / x^16 (truncation error
// below 1e-17, so the result is within a few ulps).
void SinCos(double x, double* sin_out, double* cos_out) {
  // Taylor coefficients (-1)^k / n!, as exact-as-possible double constants.
  constexpr double s3 = -1.0 / 6, s5 = 1.0 / 120, s7 = -1.0 / 5040, s9 = 1.0 / 362880,
                   s11 = -1.0 / 39916800, s13 = 1.0 / 6227020800, s15 = -1.0 / 1307674368000,
                   s17 = 1.0 / 355687428096000;
  constexpr double c2 = -1.0 / 2, c4 = 1.0 / 24, c6 = -1.0 / 720, c8 = 1.0 / 40320,
                   c10 = -1.0 / 3628800, c12 = 1.0 / 479001600, c14 = -1.0 / 87178291200,
                   c16 = 1.0 / 20922789888000;
  const double x2 = x * x;
  *sin_out =
      x + x * x2 *
              (s3 +
               x2 * (s5 + x2 * (s7 + x2 * (s9 + x2 * (s11 + x2 * (s13 + x2 * (s15 + x2 * s17)))))));
  *cos_out =
      1.0 +
      x2 * (c2 +
            x2 * (c4 + x2 * (c6 + x2 * (c8 + x2 * (c10 + x2 * (c12 + x2 * (c14 + x2 * c16)))))));
}

// Fills `out` with N(0, 1) draws: Box-Muller, both outputs used. The angle is uniform on the
// circle: a uniform offset in [-pi/4, pi/4) around one of the four diagonals. Pairs are made in
// blocks so that the independent polynomial chains of a block overlap in the CPU.
void FillStandardNormal(Xoshiro256& rng, float* out, size_t n) {
  constexpr double kInv53 = 1.0 / 9007199254740992.0;  // 2^-53
  constexpr double kQuarterPi = 0.78539816339744830962;
  constexpr double kInvSqrt2 = 0.70710678118654752440;
  constexpr size_t kBlock = 64;  // pairs
  double u1[kBlock], x[kBlock], r[kBlock], sx[kBlock], cx[kBlock];
  unsigned quadrant[kBlock];
  for (size_t i = 0; i < n;) {
    for (size_t k = 0; k < kBlock; ++k) {
      u1[k] = (static_cast<double>(rng.Next() >> 11) + 1.0) * kInv53;  // (0, 1]
      const uint64_t b = rng.Next();
      x[k] = (static_cast<double>(b >> 11) * kInv53 * 2.0 - 1.0) * kQuarterPi;
      quadrant[k] = static_cast<unsigned>(b & 3);
    }
    for (size_t k = 0; k < kBlock; ++k) r[k] = std::sqrt(-2.0 * Log(u1[k]));  // IEEE sqrt
    for (size_t k = 0; k < kBlock; ++k) SinCos(x[k], &sx[k], &cx[k]);
    for (size_t k = 0; k < kBlock && i < n; ++k) {
      // angle = pi/4 + x + quadrant * pi/2
      double c = (cx[k] - sx[k]) * kInvSqrt2, s = (cx[k] + sx[k]) * kInvSqrt2;
      switch (quadrant[k]) {
        case 0:
          break;
        case 1: {
          const double t = c;
          c = -s;
          s = t;
          break;
        }
        case 2:
          c = -c;
          s = -s;
          break;
        default: {
          const double t = c;
          c = s;
          s = -t;
          break;
        }
      }
      out[i++] = static_cast<float>(r[k] * c);
      if (i < n) out[i++] = static_cast<float>(r[k] * s);
    }
  }
}

float RoundBf16(float x) { return Bf16ToF32(F32ToBf16(x)); }

// --- presets -------------------------------------------------------------------------------

struct PresetShape {
  int hidden, layers, experts, top_k, expert_width, heads, kv_heads, head_dim, vocab, context;
};

PresetShape ShapeOf(DemoPreset p) {
  switch (p) {
    case DemoPreset::kTiny:
      return {64, 4, 8, 2, 128, 4, 2, 16, 512, 512};
    case DemoPreset::kBenchMixtral:
      return {1024, 8, 16, 2, 2816, 16, 4, 64, 32000, 4096};
    case DemoPreset::kBenchFinegrained:
      return {1024, 16, 64, 8, 512, 16, 4, 64, 32000, 4096};
  }
  return {};
}

void WriteText(const std::string& path, const std::string& text, absl::Status* status) {
  if (!status->ok()) return;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text << "\n";
  out.close();
  if (!out) *status = absl::InternalError(absl::StrCat("cannot write ", path));
}

}  // namespace

absl::StatusOr<DemoPreset> ParseDemoPreset(std::string_view name) {
  for (DemoPreset p :
       {DemoPreset::kTiny, DemoPreset::kBenchMixtral, DemoPreset::kBenchFinegrained}) {
    if (name == DemoPresetName(p)) return p;
  }
  return absl::InvalidArgumentError(absl::StrCat("--preset: unknown preset \"", Sv(name),
                                                 "\" (tiny, bench-mixtral, bench-finegrained)"));
}

std::string_view DemoPresetName(DemoPreset preset) {
  switch (preset) {
    case DemoPreset::kTiny:
      return "tiny";
    case DemoPreset::kBenchMixtral:
      return "bench-mixtral";
    case DemoPreset::kBenchFinegrained:
      return "bench-finegrained";
  }
  return "?";
}

absl::StatusOr<Architecture> ParseDemoArch(std::string_view name) {
  if (name == "mixtral") return Architecture::kMixtral;
  if (name == "qwen3moe") return Architecture::kQwen3Moe;
  if (name == "qwen2moe") return Architecture::kQwen2Moe;
  return absl::InvalidArgumentError(absl::StrCat("--arch: unknown architecture \"", Sv(name),
                                                 "\" (mixtral, qwen3moe, qwen2moe)"));
}

Architecture DefaultDemoArch(DemoPreset preset) {
  return preset == DemoPreset::kBenchFinegrained ? Architecture::kQwen3Moe : Architecture::kMixtral;
}

absl::StatusOr<ModelConfig> DemoModelConfig(DemoPreset preset, Architecture arch) {
  if (arch == Architecture::kDeepseekV3) {
    return absl::InvalidArgumentError("--arch: DeepSeek-V3 demo models are not supported yet");
  }
  if (preset == DemoPreset::kBenchFinegrained && arch != Architecture::kQwen3Moe) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--preset bench-finegrained has per-head q/k RMSNorm, which only --arch qwen3moe has; "
        "got --arch ",
        Sv(ArchitectureName(arch))));
  }
  const PresetShape s = ShapeOf(preset);
  ModelConfig c;
  c.architecture = arch;
  c.vocab_size = s.vocab;
  c.hidden_size = s.hidden;
  c.num_hidden_layers = s.layers;
  c.num_attention_heads = s.heads;
  c.num_key_value_heads = s.kv_heads;
  c.head_dim = s.head_dim;
  c.expert_intermediate_size = s.expert_width;
  c.num_experts = s.experts;
  c.num_experts_per_tok = s.top_k;
  c.max_position_embeddings = s.context;
  c.rope_theta = 1e6;
  c.tie_word_embeddings = false;
  const int eot = s.vocab - kDemoNumSpecialTokens;
  c.bos_token_id = eot;
  c.eos_token_ids = {eot};
  switch (arch) {
    case Architecture::kMixtral:
      c.model_type = "mixtral";
      c.intermediate_size = s.expert_width;
      c.norm_topk_prob = true;
      c.rms_norm_eps = 1e-5;
      break;
    case Architecture::kQwen3Moe:
      c.model_type = "qwen3_moe";
      c.intermediate_size = 2 * s.expert_width;
      c.norm_topk_prob = true;
      c.rms_norm_eps = 1e-6;
      c.qk_norm = true;
      break;
    case Architecture::kQwen2Moe:
      c.model_type = "qwen2_moe";
      c.intermediate_size = 2 * s.expert_width;
      c.shared_expert_intermediate_size = 2 * s.expert_width;
      c.norm_topk_prob = false;
      c.rms_norm_eps = 1e-6;
      c.attention_bias = true;
      break;
    case Architecture::kDeepseekV3:
      break;
  }
  return c;
}

std::string DemoConfigJson(const ModelConfig& c, DType dtype) {
  using ojson = nlohmann::ordered_json;
  const int eos = c.eos_token_ids.empty() ? 0 : c.eos_token_ids[0];
  ojson j;
  j["architectures"] = {std::string(ArchitectureName(c.architecture))};
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  // Qwen2MoeConfig has no head_dim (it is hidden_size / num_attention_heads there).
  if (c.architecture != Architecture::kQwen2Moe) j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["initializer_range"] = 0.02;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["use_cache"] = true;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["rope_theta"] = c.rope_theta;
  j["attention_dropout"] = 0.0;
  j["bos_token_id"] = c.bos_token_id.value_or(eos);
  j["eos_token_id"] = eos;
  if (c.architecture == Architecture::kMixtral) {
    j["sliding_window"] = nullptr;
    j["num_experts_per_tok"] = c.num_experts_per_tok;
    j["num_local_experts"] = c.num_experts;
    j["output_router_logits"] = false;
    j["router_aux_loss_coef"] = 0.001;
    j["router_jitter_noise"] = 0.0;
  } else {
    j["rope_scaling"] = nullptr;
    if (c.architecture == Architecture::kQwen3Moe) j["attention_bias"] = false;
    j["use_sliding_window"] = false;
    j["sliding_window"] = nullptr;
    j["max_window_layers"] = c.num_hidden_layers;
    j["decoder_sparse_step"] = c.decoder_sparse_step;
    j["moe_intermediate_size"] = c.expert_intermediate_size;
    if (c.architecture == Architecture::kQwen2Moe) {
      j["shared_expert_intermediate_size"] = c.shared_expert_intermediate_size;
    }
    j["num_experts_per_tok"] = c.num_experts_per_tok;
    j["num_experts"] = c.num_experts;
    j["norm_topk_prob"] = c.norm_topk_prob;
    j["output_router_logits"] = false;
    j["router_aux_loss_coef"] = 0.001;
    j["mlp_only_layers"] = c.mlp_only_layers;
  }
  j["torch_dtype"] = dtype == DType::kF32   ? "float32"
                     : dtype == DType::kF16 ? "float16"
                                            : "bfloat16";
  j["transformers_version"] = kTransformersVersion;
  return j.dump(2);
}

std::vector<TensorSpec> HfTensorSpecs(const ModelConfig& c) {
  const int64_t h = c.hidden_size, v = c.vocab_size, hd = c.head_dim;
  const int64_t q = c.num_attention_heads * hd, kv = c.num_key_value_heads * hd;
  const int64_t e_width = c.expert_intermediate_size;
  std::vector<TensorSpec> out;
  auto add = [&out](std::string name, std::vector<int64_t> shape, InitKind init) {
    out.push_back({std::move(name), std::move(shape), init});
  };
  add("model.embed_tokens.weight", {v, h}, InitKind::kEmbedding);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    add(p + "input_layernorm.weight", {h}, InitKind::kNorm);
    add(p + "self_attn.q_proj.weight", {q, h}, InitKind::kLinear);
    add(p + "self_attn.k_proj.weight", {kv, h}, InitKind::kLinear);
    add(p + "self_attn.v_proj.weight", {kv, h}, InitKind::kLinear);
    if (c.attention_bias) {
      add(p + "self_attn.q_proj.bias", {q}, InitKind::kBias);
      add(p + "self_attn.k_proj.bias", {kv}, InitKind::kBias);
      add(p + "self_attn.v_proj.bias", {kv}, InitKind::kBias);
    }
    add(p + "self_attn.o_proj.weight", {h, q}, InitKind::kLinear);
    if (c.attention_out_bias) add(p + "self_attn.o_proj.bias", {h}, InitKind::kBias);
    if (c.qk_norm) {
      add(p + "self_attn.q_norm.weight", {hd}, InitKind::kNorm);
      add(p + "self_attn.k_norm.weight", {hd}, InitKind::kNorm);
    }
    add(p + "post_attention_layernorm.weight", {h}, InitKind::kNorm);
    if (!c.IsMoeLayer(l)) {
      const int64_t d = c.intermediate_size;
      add(p + "mlp.gate_proj.weight", {d, h}, InitKind::kLinear);
      add(p + "mlp.up_proj.weight", {d, h}, InitKind::kLinear);
      add(p + "mlp.down_proj.weight", {h, d}, InitKind::kLinear);
      continue;
    }
    if (c.architecture == Architecture::kMixtral) {
      add(p + "block_sparse_moe.gate.weight", {c.num_experts, h}, InitKind::kLinear);
      for (int e = 0; e < c.num_experts; ++e) {
        const std::string ep = absl::StrCat(p, "block_sparse_moe.experts.", e, ".");
        add(ep + "w1.weight", {e_width, h}, InitKind::kLinear);
        add(ep + "w2.weight", {h, e_width}, InitKind::kLinear);
        add(ep + "w3.weight", {e_width, h}, InitKind::kLinear);
      }
    } else {
      add(p + "mlp.gate.weight", {c.num_experts, h}, InitKind::kLinear);
      for (int e = 0; e < c.num_experts; ++e) {
        const std::string ep = absl::StrCat(p, "mlp.experts.", e, ".");
        add(ep + "gate_proj.weight", {e_width, h}, InitKind::kLinear);
        add(ep + "up_proj.weight", {e_width, h}, InitKind::kLinear);
        add(ep + "down_proj.weight", {h, e_width}, InitKind::kLinear);
      }
      if (c.shared_expert_intermediate_size > 0) {
        const int64_t s = c.shared_expert_intermediate_size;
        add(p + "mlp.shared_expert.gate_proj.weight", {s, h}, InitKind::kLinear);
        add(p + "mlp.shared_expert.up_proj.weight", {s, h}, InitKind::kLinear);
        add(p + "mlp.shared_expert.down_proj.weight", {h, s}, InitKind::kLinear);
        add(p + "mlp.shared_expert_gate.weight", {1, h}, InitKind::kLinear);
      }
    }
  }
  add("model.norm.weight", {h}, InitKind::kNorm);
  if (!c.tie_word_embeddings) add("lm_head.weight", {v, h}, InitKind::kLmHead);
  return out;
}

std::vector<float> DemoTensorValues(const TensorSpec& spec, uint64_t seed, int hidden_size) {
  int64_t n = 1;
  for (int64_t d : spec.shape) n *= d;
  std::vector<float> values(static_cast<size_t>(n));
  Xoshiro256 rng(seed ^ Fnv1a64(spec.name));
  FillStandardNormal(rng, values.data(), values.size());
  double scale = 1.0, offset = 0.0;
  switch (spec.init) {
    case InitKind::kEmbedding:
      break;
    case InitKind::kLinear:
      scale = 1.0 / std::sqrt(static_cast<double>(spec.shape.back()));
      break;
    case InitKind::kNorm:
      scale = 0.1;
      offset = 1.0;
      break;
    case InitKind::kBias:
      scale = 0.1;
      break;
    case InitKind::kLmHead:
      scale = 1.0 / std::sqrt(static_cast<double>(hidden_size));
      break;
  }
  for (float& x : values) x = RoundBf16(static_cast<float>(offset + scale * x));
  if (spec.init == InitKind::kLmHead && spec.shape.size() == 2) {
    const int64_t cols = spec.shape[1];
    for (int64_t row = 128; row < 256 && row < spec.shape[0]; ++row) {
      std::fill(values.begin() + row * cols, values.begin() + (row + 1) * cols, 0.0f);
    }
  }
  return values;
}

namespace {

absl::Status WriteWeights(const ModelConfig& config, const DemoModelParams& params,
                          const std::string& path, DemoModelStats* stats) {
  const std::vector<TensorSpec> specs = HfTensorSpecs(config);
  SafetensorsWriter writer;
  writer.SetMetadata("format", "pt");
  for (const TensorSpec& s : specs) {
    MOE_RETURN_IF_ERROR(writer.Add(s.name, params.dtype, s.shape));
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    stats->num_params += n;
  }
  stats->num_tensors = static_cast<int64_t>(specs.size());
  MOE_RETURN_IF_ERROR(writer.Open(path));

  // Workers take tensors in order; each tensor is one deterministic stream, so the output does
  // not depend on the number of threads or on scheduling.
  std::atomic<size_t> next{0};
  std::mutex mu;
  absl::Status first_error;
  auto work = [&]() {
    std::vector<uint8_t> bytes;
    for (size_t i = next++; i < specs.size(); i = next++) {
      std::vector<float> values = DemoTensorValues(specs[i], params.seed, config.hidden_size);
      bytes.resize(values.size() * DTypeSize(params.dtype));
      if (params.dtype == DType::kF32) {
        std::memcpy(bytes.data(), values.data(), bytes.size());
      } else {
        for (size_t k = 0; k < values.size(); ++k) {
          const uint16_t b =
              params.dtype == DType::kBF16 ? F32ToBf16(values[k]) : F32ToF16(values[k]);
          std::memcpy(&bytes[2 * k], &b, 2);
        }
      }
      absl::Status s = writer.Write(specs[i].name, bytes.data(), bytes.size());
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = s;
        next = specs.size();
      }
    }
  };
  int threads = params.threads > 0
                    ? params.threads
                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  MOE_RETURN_IF_ERROR(first_error);
  return writer.Close();
}

}  // namespace

absl::StatusOr<DemoModelStats> WriteDemoModel(const DemoModelParams& params) {
  if (params.out_dir.empty())
    return absl::InvalidArgumentError("--out: an output folder is required");
  if (params.dtype != DType::kBF16 && params.dtype != DType::kF32 && params.dtype != DType::kF16) {
    return absl::InvalidArgumentError("--dtype: bf16, f16 or f32");
  }
  const Architecture arch = params.arch.value_or(DefaultDemoArch(params.preset));
  DemoModelStats stats;
  MOE_ASSIGN_OR_RETURN(stats.config, DemoModelConfig(params.preset, arch));
  const ModelConfig& c = stats.config;

  std::error_code ec;
  std::filesystem::create_directories(params.out_dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create ", params.out_dir, ": ", ec.message()));
  }
  const std::string dir = params.out_dir;
  if (std::filesystem::exists(dir + "/model.safetensors.index.json")) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir,
        " holds a sharded model (model.safetensors.index.json), which would shadow the "
        "demo weights: choose another folder"));
  }

  // The config must read back as itself: catches a preset the parser would reject.
  const std::string config_json = DemoConfigJson(c, params.dtype);
  MOE_RETURN_IF_ERROR(ParseModelConfig(config_json).status());

  auto t0 = std::chrono::steady_clock::now();
  const std::string weights = dir + "/model.safetensors";
  const std::string tmp = weights + ".tmp";
  MOE_RETURN_IF_ERROR(WriteWeights(c, params, tmp, &stats));
  std::filesystem::rename(tmp, weights, ec);
  if (ec) return absl::InternalError(absl::StrCat("rename ", tmp, ": ", ec.message()));
  stats.weight_bytes = std::filesystem::file_size(weights, ec);
  auto t1 = std::chrono::steady_clock::now();
  stats.weights_seconds = std::chrono::duration<double>(t1 - t0).count();

  MOE_ASSIGN_OR_RETURN(std::string tokenizer_json, DemoTokenizerJson(c.vocab_size));
  const int eot = c.vocab_size - kDemoNumSpecialTokens;
  nlohmann::ordered_json gen = {
      {"bos_token_id", eot},
      {"eos_token_id", {eot, c.vocab_size - 1}},  // <|endoftext|>, <|im_end|>
      {"pad_token_id", eot},
      {"do_sample", false},
      {"transformers_version", kTransformersVersion},
  };
  absl::Status s;
  WriteText(dir + "/config.json", config_json, &s);
  WriteText(dir + "/tokenizer.json", tokenizer_json, &s);
  WriteText(dir + "/tokenizer_config.json",
            DemoTokenizerConfigJson(c.vocab_size, c.max_position_embeddings), &s);
  WriteText(dir + "/special_tokens_map.json", DemoSpecialTokensMapJson(), &s);
  WriteText(dir + "/generation_config.json", gen.dump(2), &s);
  MOE_RETURN_IF_ERROR(s);
  stats.tokenizer_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  return stats;
}

}  // namespace moe::model
