// Deterministic random-weight MoE models in real Hugging Face format (`moe demo-model`).
//
//   DemoModelParams p;
//   p.out_dir = "/tmp/tiny"; p.preset = DemoPreset::kTiny; p.arch = Architecture::kQwen3Moe;
//   MOE_ASSIGN_OR_RETURN(DemoModelStats stats, WriteDemoModel(p));
//
// The folder holds config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
// special_tokens_map.json and generation_config.json, as HF transformers writes them for the
// architecture.
//
// Weights (seed S, one stream per tensor name: xoshiro256** seeded by splitmix64 of
// S ^ fnv1a64(name), normals by Box-Muller in double precision):
//   embeddings N(0, 1); linear layers (attention, router, experts, shared expert and its gate)
//   N(0, 1/fan_in); RMSNorm weights 1 + N(0, 0.01); attention biases N(0, 0.01);
//   lm_head N(0, 1/hidden), except that the rows of the 128 single bytes 0x80..0xFF (not valid
//   UTF-8 alone) are zero, so generated text is always valid UTF-8 (as in the golden models).
// (N(mean, variance).) Every value is rounded to bf16 first, so the F32 and BF16 files of one
// seed hold the same numbers. Same parameters -> byte-identical files.
#ifndef MOE_MODEL_DEMO_MODEL_H_
#define MOE_MODEL_DEMO_MODEL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config.h"
#include "model/dtype.h"

namespace moe::model {

// tiny:              hidden 64, 4 layers, 8 experts top-2 x 128, heads 4/2 x 16, vocab 512,
//                    context 512 (the golden models' shapes).
// bench-mixtral:     hidden 1024, 8 layers, 16 experts top-2 x 2816, heads 16/4 x 64,
//                    vocab 32000, context 4096.
// bench-finegrained: hidden 1024, 16 layers, 64 experts top-8 x 512, heads 16/4 x 64, q/k norm
//                    (qwen3moe only), vocab 32000, context 4096.
// Qwen2Moe adds a shared expert of width 2 x expert width; Qwen's dense `intermediate_size`
// (unused: every layer is sparse) is 2 x expert width.
enum class DemoPreset { kTiny, kBenchMixtral, kBenchFinegrained };

// "tiny", "bench-mixtral", "bench-finegrained".
absl::StatusOr<DemoPreset> ParseDemoPreset(std::string_view name);
std::string_view DemoPresetName(DemoPreset preset);
// "mixtral", "qwen3moe", "qwen2moe" (DeepSeek-V3 demo models are not generated yet).
absl::StatusOr<Architecture> ParseDemoArch(std::string_view name);

// The architecture used when none is given: qwen3moe for bench-finegrained, mixtral otherwise.
Architecture DefaultDemoArch(DemoPreset preset);

// The config of a preset in an architecture. INVALID_ARGUMENT for bench-finegrained with
// anything but qwen3moe (it needs q/k norm) and for DeepseekV3.
absl::StatusOr<ModelConfig> DemoModelConfig(DemoPreset preset, Architecture arch);

// config.json text for a config made by DemoModelConfig, with exactly the keys HF transformers
// writes for that architecture. `dtype` fills `torch_dtype`.
std::string DemoConfigJson(const ModelConfig& config, DType dtype);

// How a tensor's values are drawn.
enum class InitKind { kEmbedding, kLinear, kNorm, kBias, kLmHead };

// One weight of an HF checkpoint, e.g. {"model.layers.0.self_attn.q_proj.weight", {64, 64}}.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  InitKind init = InitKind::kLinear;
};

// Every tensor of an HF checkpoint of this config (Mixtral, Qwen2Moe, Qwen3Moe; untied lm_head),
// in file order: embeddings, layers 0..L-1, final norm, lm_head. Handy for loaders' tests.
std::vector<TensorSpec> HfTensorSpecs(const ModelConfig& config);

// The values of one tensor (already rounded to bf16), a pure function of (seed, spec).
std::vector<float> DemoTensorValues(const TensorSpec& spec, uint64_t seed, int hidden_size);

struct DemoModelParams {
  std::string out_dir;  // created if missing; existing files of the same names are replaced
  DemoPreset preset = DemoPreset::kTiny;
  std::optional<Architecture> arch;  // nullopt -> DefaultDemoArch(preset)
  DType dtype = DType::kBF16;        // kBF16 or kF32
  uint64_t seed = 1234;
  int threads = 0;  // weight generation threads; 0 = hardware concurrency
};

struct DemoModelStats {
  ModelConfig config;
  int64_t num_params = 0;
  int64_t num_tensors = 0;
  uint64_t weight_bytes = 0;     // size of model.safetensors
  double weights_seconds = 0;    // generating + writing the weights
  double tokenizer_seconds = 0;  // BPE training + tokenizer files
};

absl::StatusOr<DemoModelStats> WriteDemoModel(const DemoModelParams& params);

}  // namespace moe::model

#endif  // MOE_MODEL_DEMO_MODEL_H_
