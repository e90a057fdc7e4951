// `moe inspect`: what a model folder holds, and whether its weights match its config.
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <optional>
#include <string>

#include "absl/strings/str_join.h"
#include "common/flags.h"
#include "model/config.h"
#include "model/demo_model.h"
#include "model/safetensors.h"
#include "model/tokenizer/tokenizer.h"
#include "tools/commands.h"

namespace moe::tools {
namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "moe inspect: %s\n", std::string(s.message()).c_str());
  return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

std::string Shape(const std::vector<int64_t>& shape) {
  return "[" + absl::StrJoin(shape, ", ") + "]";
}

// Compares the weights with the tensors HF's implementation of the architecture would load.
// Returns the number of problems (missing tensors, wrong shapes); prints at most a few.
int CheckTensors(const model::ModelConfig& config, const model::WeightStore& store) {
  if (config.architecture == model::Architecture::kDeepseekV3) {
    std::printf("tensor check: skipped (DeepSeek-V3 layout not checked yet)\n");
    return 0;
  }
  std::vector<model::TensorSpec> specs = model::HfTensorSpecs(config);
  if (config.tie_word_embeddings && store.Has("lm_head.weight")) {
    specs.push_back({"lm_head.weight", {config.vocab_size, config.hidden_size}});
  }
  std::set<std::string> expected;
  int problems = 0;
  for (const model::TensorSpec& s : specs) {
    expected.insert(s.name);
    absl::StatusOr<model::TensorView> t = store.Get(s.name);
    if (!t.ok()) {
      if (++problems <= 10)
        std::printf("  missing tensor %s %s\n", s.name.c_str(), Shape(s.shape).c_str());
    } else if (t->shape != s.shape) {
      if (++problems <= 10) {
        std::printf("  tensor %s has shape %s, expected %s\n", s.name.c_str(),
                    Shape(t->shape).c_str(), Shape(s.shape).c_str());
      }
    }
  }
  int extra = 0;
  for (const std::string& n : store.Names()) extra += expected.count(n) ? 0 : 1;
  if (problems == 0) {
    std::printf("tensor check: all %zu expected tensors present with the expected shapes",
                specs.size());
  } else {
    std::printf("tensor check: %d problem(s)", problems);
  }
  std::printf("%s\n", extra > 0 ? (", " + std::to_string(extra) + " other tensor(s)").c_str() : "");
  return problems;
}

}  // namespace

int RunInspect(int argc, const char* const* argv) {
  std::string dir;
  FlagSet flags("moe inspect",
                "Print a model folder's config, its weights by dtype, a check of the tensor names\n"
                "and shapes against the config, and the tokenizer's vocabulary size.\n"
                "Exit code 1 if the weights do not match the config.");
  flags.AddString("model", &dir, "model folder");
  if (std::optional<int> exit = flags.ParseCommandLine(argc, argv, /*allow_positional=*/true)) return *exit;
  if (dir.empty() && flags.positional().size() == 1) dir = flags.positional()[0];
  if (dir.empty()) {
    std::fprintf(stderr, "moe inspect: --model is required\n\n%s", flags.Usage().c_str());
    return 2;
  }

  absl::StatusOr<model::ModelConfig> config = model::LoadModelConfig(dir);
  if (!config.ok()) return Fail(config.status());
  const model::ModelConfig& c = *config;
  std::printf("model: %s\n", dir.c_str());
  std::printf("config: %s\n", model::DescribeModelConfig(c).c_str());
  std::printf("  rms_norm_eps %g, rope_theta %g%s, bos %s, eos [%s]\n", c.rms_norm_eps,
              c.rope_theta,
              c.rope_scaling ? (", rope_scaling " + c.rope_scaling->type).c_str() : "",
              c.bos_token_id ? std::to_string(*c.bos_token_id).c_str() : "none",
              absl::StrJoin(c.eos_token_ids, ", ").c_str());

  absl::StatusOr<std::unique_ptr<model::WeightStore>> store = model::WeightStore::Open(dir);
  if (!store.ok()) return Fail(store.status());
  struct PerDType {
    int64_t tensors = 0, params = 0;
    uint64_t bytes = 0;
  };
  std::map<std::string, PerDType> by_dtype;
  int64_t params = 0, expert_params = 0;
  for (const std::string& name : (*store)->Names()) {
    absl::StatusOr<model::TensorView> t = (*store)->Get(name);
    if (!t.ok()) return Fail(t.status());
    PerDType& d = by_dtype[std::string(DTypeName(t->dtype))];
    d.tensors++;
    d.params += t->numel();
    d.bytes += t->nbytes;
    params += t->numel();
    if (name.find(".experts.") != std::string::npos) expert_params += t->numel();
  }
  std::printf(
      "weights: %zu tensors, %.1f MB in %zu file(s), %lld parameters (%.1f%% in routed experts)\n",
      (*store)->Names().size(), static_cast<double>((*store)->TotalBytes()) / 1e6,
      (*store)->OpenedFiles().size(), static_cast<long long>(params),
      params > 0 ? 100.0 * static_cast<double>(expert_params) / static_cast<double>(params) : 0.0);
  for (const auto& [name, d] : by_dtype) {
    std::printf("  %-5s %6lld tensors %14lld parameters %12.1f MB\n", name.c_str(),
                static_cast<long long>(d.tensors), static_cast<long long>(d.params),
                static_cast<double>(d.bytes) / 1e6);
  }
  const int problems = CheckTensors(c, **store);

  const std::string tokenizer_path = dir + "/tokenizer.json";
  if (std::filesystem::exists(tokenizer_path)) {
    auto tok = model::Tokenizer::FromFile(tokenizer_path);
    if (tok.ok()) {
      std::printf("tokenizer: vocabulary %d (config vocab_size %d)\n", (*tok)->vocab_size(),
                  c.vocab_size);
    } else {
      std::printf("tokenizer: cannot load: %s\n", std::string(tok.status().message()).c_str());
    }
  } else {
    std::printf("tokenizer: no tokenizer.json\n");
  }
  return problems == 0 ? 0 : 1;
}

}  // namespace moe::tools
