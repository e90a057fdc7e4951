// `moe demo-model`: writes a deterministic random-weight MoE model in Hugging Face format.
#include <cstdio>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/flags.h"
#include "model/config.h"
#include "model/demo_model.h"
#include "tools/commands.h"

namespace moe::tools {
namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "moe demo-model: %s\n", std::string(s.message()).c_str());
  return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

int RunDemoModel(int argc, const char* const* argv) {
  std::string out, preset = "tiny", arch, dtype = "bf16";
  int64_t seed = 1234;
  int threads = 0;
  FlagSet flags(
      "moe demo-model",
      "Write a deterministic random-weight MoE model in Hugging Face format (config.json,\n"
      "model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json).\n"
      "Presets: tiny (hidden 64, 4 layers, 8 experts top-2, vocab 512),\n"
      "bench-mixtral (hidden 1024, 8 layers, 16 experts top-2 x 2816, vocab 32000),\n"
      "bench-finegrained (hidden 1024, 16 layers, 64 experts top-8 x 512, q/k norm;\n"
      "qwen3moe only). The same flags always give byte-identical files.");
  flags.AddString("out", &out, "output folder (created if missing)");
  flags.AddString("preset", &preset, "tiny, bench-mixtral or bench-finegrained");
  flags.AddString("arch", &arch,
                  "mixtral, qwen3moe or qwen2moe (default: qwen3moe for bench-finegrained, "
                  "mixtral otherwise)");
  flags.AddString("dtype", &dtype, "weight dtype: bf16 or f32 (same values either way)");
  flags.AddInt("seed", &seed, "random seed of the weights");
  flags.AddInt("threads", &threads, "weight generation threads; 0 = all cores");
  if (std::optional<int> exit = flags.ParseCommandLine(argc, argv)) return *exit;
  if (out.empty()) {
    std::fprintf(stderr, "moe demo-model: --out is required\n\n%s", flags.Usage().c_str());
    return 2;
  }

  model::DemoModelParams params;
  params.out_dir = out;
  params.seed = static_cast<uint64_t>(seed);
  params.threads = threads;
  absl::StatusOr<model::DemoPreset> p = model::ParseDemoPreset(preset);
  if (!p.ok()) return Fail(p.status());
  params.preset = *p;
  if (!arch.empty()) {
    absl::StatusOr<model::Architecture> a = model::ParseDemoArch(arch);
    if (!a.ok()) return Fail(a.status());
    params.arch = *a;
  }
  if (dtype == "bf16") {
    params.dtype = DType::kBF16;
  } else if (dtype == "f32") {
    params.dtype = DType::kF32;
  } else {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--dtype: expected bf16 or f32, got \"", dtype, "\"")));
  }

  absl::StatusOr<model::DemoModelStats> stats = model::WriteDemoModel(params);
  if (!stats.ok()) return Fail(stats.status());
  std::printf("wrote %s\n  %s\n", out.c_str(), model::DescribeModelConfig(stats->config).c_str());
  std::printf("  %lld parameters in %lld tensors, %s, model.safetensors %.1f MB\n",
              static_cast<long long>(stats->num_params), static_cast<long long>(stats->num_tensors),
              dtype.c_str(), static_cast<double>(stats->weight_bytes) / 1e6);
  std::printf("  weights %.2f s, tokenizer %.2f s\n", stats->weights_seconds,
              stats->tokenizer_seconds);
  return 0;
}

}  // namespace moe::tools
