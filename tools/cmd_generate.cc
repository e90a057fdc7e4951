// `moe generate`: one completion from the single-process engine (every role in this process).
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "attention_service/engine/local_model.h"
#include "common/flags.h"
#include "common/logging.h"
#include "model/tokenizer/tokenizer.h"
#include "model/tokenizer/tokenizer_config.h"
#include "tools/commands.h"

namespace moe::tools {
namespace {

struct GenerateConfig {
  std::string model;
  std::string prompt;
  std::string prompt_ids;
  int max_tokens = 16;
  double temperature = 1.0;
  double top_p = 1.0;
  int top_k = 0;
  int64_t seed = -1;
  int logprobs = 0;
  bool echo = false;
  bool json = false;
  bool ignore_eos = false;
  std::string backend = "cpu";
  int64_t kv_cache_mb = 256;
  std::string log_level = "warn";
};

nlohmann::json TokenJson(const attention::GeneratedToken& t) {
  nlohmann::json j = {{"id", t.id}, {"logprob", t.logprob}};
  nlohmann::json top = nlohmann::json::array();
  for (const auto& a : t.top) top.push_back({{"id", a.id}, {"logprob", a.logprob}});
  j["top"] = top;
  return j;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "moe generate: %s\n", s.ToString().c_str());
  return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

int RunGenerate(int argc, const char* const* argv) {
  GenerateConfig c;
  FlagSet flags("moe generate",
                "Generate a completion with the single-process engine.\n"
                "Give the prompt as text (--prompt) or as token ids (--prompt-ids 1,2,3).");
  flags.AddString("model", &c.model, "model folder (config.json, safetensors, tokenizer.json)");
  flags.AddString("prompt", &c.prompt, "prompt text");
  flags.AddString("prompt-ids", &c.prompt_ids, "prompt token ids, comma-separated");
  flags.AddInt("max-tokens", &c.max_tokens, "tokens to generate (0 only with --echo)");
  flags.AddDouble("temperature", &c.temperature, "sampling temperature; 0 = greedy");
  flags.AddDouble("top-p", &c.top_p, "nucleus sampling mass in (0, 1]");
  flags.AddInt("top-k", &c.top_k, "sample among the k best tokens; 0 = all");
  flags.AddInt("seed", &c.seed, "random seed; -1 = random");
  flags.AddInt("logprobs", &c.logprobs, "alternatives per token in the log-probabilities");
  flags.AddBool("echo", &c.echo, "also score the prompt (prompt_logprobs)");
  flags.AddBool("json", &c.json, "print one JSON object");
  flags.AddBool("ignore-eos", &c.ignore_eos, "keep generating past EOS");
  flags.AddString("backend", &c.backend, "expert backend: cpu or cuda");
  flags.AddInt("kv-cache-mb", &c.kv_cache_mb, "KV cache size in MiB");
  flags.AddString("log-level", &c.log_level, "trace, debug, info, warn, error");
  if (std::optional<int> exit = flags.ParseCommandLine(argc, argv)) return *exit;
  InitLogging("generate", c.log_level);
  if (c.model.empty() || (c.prompt.empty() == c.prompt_ids.empty()) ||
      !flags.positional().empty()) {
    std::fprintf(stderr, "moe generate: need --model and exactly one of --prompt, --prompt-ids\n\n%s",
                 flags.Usage().c_str());
    return 2;
  }
  auto tokenizer = model::Tokenizer::FromFile(c.model + "/tokenizer.json");
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  attention::SequenceRequest req;
  if (!c.prompt_ids.empty()) {
    for (absl::string_view part : absl::StrSplit(c.prompt_ids, ',', absl::SkipWhitespace())) {
      int32_t id;
      if (!absl::SimpleAtoi(part, &id)) {
        return Fail(absl::InvalidArgumentError(absl::StrCat("bad token id '", part, "'")));
      }
      req.prompt.push_back(id);
    }
  } else {
    auto tok_config = model::LoadTokenizerConfig(c.model);
    if (!tok_config.ok()) return Fail(tok_config.status());
    req.prompt = model::EncodeWithConfig(**tokenizer, *tok_config, c.prompt);
  }
  req.max_tokens = c.max_tokens;
  req.prompt_logprobs = c.echo;
  req.ignore_eos = c.ignore_eos;
  req.sampling.temperature = static_cast<float>(c.temperature);
  req.sampling.top_p = static_cast<float>(c.top_p);
  req.sampling.top_k = c.top_k;
  if (c.seed >= 0) req.sampling.seed = static_cast<uint64_t>(c.seed);
  req.sampling.top_logprobs = c.logprobs;
  req.sampling.return_logprob = true;
  if (absl::Status s = attention::ValidateSamplingParams(req.sampling); !s.ok()) return Fail(s);

  attention::LocalModelOptions lo;
  lo.backend = c.backend;
  auto model = attention::LocalModel::Open(c.model, lo);
  if (!model.ok()) return Fail(model.status());
  attention::EngineOptions eo;
  eo.kv_cache_bytes = c.kv_cache_mb << 20;
  auto engine = (*model)->NewEngine(eo);
  if (!engine.ok()) return Fail(engine.status());
  std::vector<int32_t> prompt = req.prompt;
  if (absl::Status s = (*engine)->Add(1, std::move(req)); !s.ok()) return Fail(s);

  std::vector<attention::GeneratedToken> tokens, prompt_logprobs;
  attention::FinishReason finish = attention::FinishReason::kNone;
  while ((*engine)->HasWork()) {
    auto ups = (*engine)->Step();
    if (!ups.ok()) return Fail(ups.status());
    for (auto& u : *ups) {
      if (!u.error.ok()) return Fail(u.error);
      for (auto& t : u.tokens) tokens.push_back(t);
      for (auto& t : u.prompt_logprobs) prompt_logprobs.push_back(t);
      if (u.finish != attention::FinishReason::kNone) finish = u.finish;
    }
  }
  std::vector<int32_t> ids;
  for (const auto& t : tokens) ids.push_back(t.id);
  std::string text = (*tokenizer)->Decode(ids, /*skip_special_tokens=*/true);
  if (c.json) {
    nlohmann::json out;
    out["prompt_ids"] = prompt;
    out["completion_ids"] = ids;
    out["text"] = text;
    out["finish_reason"] = attention::FinishReasonName(finish);
    out["logprobs"] = nlohmann::json::array();
    for (const auto& t : tokens) out["logprobs"].push_back(TokenJson(t));
    out["prompt_logprobs"] = nlohmann::json::array();
    for (const auto& t : prompt_logprobs) out["prompt_logprobs"].push_back(TokenJson(t));
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    if (c.echo) std::printf("%s", (*tokenizer)->Decode(prompt, true).c_str());
    std::printf("%s\n", text.c_str());
  }
  return 0;
}

}  // namespace moe::tools
