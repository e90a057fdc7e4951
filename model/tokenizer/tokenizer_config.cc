#include "model/tokenizer/tokenizer_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/file.h"
#include "common/status.h"

namespace moe::model {
namespace {

using nlohmann::json;

// Reads a whole file; nullopt if it does not exist or cannot be opened.
absl::StatusOr<json> ParseObject(std::string_view text) {
  json j = json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("not a JSON object");
  return j;
}

// A special token given as "<s>" or {"content": "<s>", ...}.
std::optional<std::string> TokenField(const json& j, const char* key) {
  if (!j.contains(key) || j.at(key).is_null()) return std::nullopt;
  const json& v = j.at(key);
  if (v.is_object()) return v.at("content").get<std::string>();
  return v.get<std::string>();
}

template <typename T>
std::optional<T> OptionalField(const json& j, const char* key) {
  if (!j.contains(key) || j.at(key).is_null()) return std::nullopt;
  return j.at(key).get<T>();
}

void FillTokenizerConfig(const json& j, TokenizerConfig* config) {
  config->bos_token = TokenField(j, "bos_token");
  config->eos_token = TokenField(j, "eos_token");
  config->pad_token = TokenField(j, "pad_token");
  config->unk_token = TokenField(j, "unk_token");
  config->add_bos_token = OptionalField<bool>(j, "add_bos_token");
  config->add_eos_token = OptionalField<bool>(j, "add_eos_token");
  config->clean_up_tokenization_spaces =
      OptionalField<bool>(j, "clean_up_tokenization_spaces").value_or(false);
  config->tokenizer_class = OptionalField<std::string>(j, "tokenizer_class").value_or("");
  if (auto max_length = OptionalField<double>(j, "model_max_length")) {
    if (*max_length > 0 && *max_length < 1e18) {
      config->model_max_length = static_cast<int64_t>(*max_length);
    }
  }
  if (j.contains("chat_template") && !j.at("chat_template").is_null()) {
    const json& t = j.at("chat_template");
    if (t.is_string()) {
      config->chat_templates.push_back({"default", t.get<std::string>()});
    } else {
      for (const json& item : t) {
        config->chat_templates.push_back(
            {item.at("name").get<std::string>(), item.at("template").get<std::string>()});
      }
    }
    for (const ChatTemplate& ct : config->chat_templates) {
      if (ct.name == "default") config->chat_template = ct.source;
    }
  }
}

void FillGenerationConfig(const json& j, GenerationConfig* config) {
  if (j.contains("eos_token_id") && !j.at("eos_token_id").is_null()) {
    const json& eos = j.at("eos_token_id");
    if (eos.is_array()) {
      for (const json& id : eos) config->eos_token_ids.push_back(id.get<int32_t>());
    } else {
      config->eos_token_ids.push_back(eos.get<int32_t>());
    }
  }
  config->bos_token_id = OptionalField<int32_t>(j, "bos_token_id");
  config->pad_token_id = OptionalField<int32_t>(j, "pad_token_id");
  config->do_sample = OptionalField<bool>(j, "do_sample");
  config->temperature = OptionalField<float>(j, "temperature");
  config->top_p = OptionalField<float>(j, "top_p");
  config->top_k = OptionalField<int32_t>(j, "top_k");
  config->max_new_tokens = OptionalField<int32_t>(j, "max_new_tokens");
  config->repetition_penalty = OptionalField<float>(j, "repetition_penalty");
}

// Parses `text` with `fill`, turning JSON type errors into INVALID_ARGUMENT.
template <typename Config, typename Fill>
absl::StatusOr<Config> ParseWith(std::string_view text, Fill fill) {
  MOE_ASSIGN_OR_RETURN(json j, ParseObject(text));
  Config config;
  try {
    fill(j, &config);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
  return config;
}

absl::Status NameFile(const absl::Status& status, const std::string& path) {
  return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
}

}  // namespace

absl::StatusOr<TokenizerConfig> ParseTokenizerConfig(std::string_view json_text) {
  return ParseWith<TokenizerConfig>(json_text, FillTokenizerConfig);
}

absl::StatusOr<GenerationConfig> ParseGenerationConfig(std::string_view json_text) {
  return ParseWith<GenerationConfig>(json_text, FillGenerationConfig);
}

absl::StatusOr<TokenizerConfig> LoadTokenizerConfig(const std::string& model_dir) {
  TokenizerConfig config;
  const std::string path = model_dir + "/tokenizer_config.json";
  if (std::optional<std::string> text = ReadFile(path)) {
    auto parsed = ParseTokenizerConfig(*text);
    if (!parsed.ok()) return NameFile(parsed.status(), path);
    config = *std::move(parsed);
  }
  if (config.chat_templates.empty()) {
    if (std::optional<std::string> jinja = ReadFile(model_dir + "/chat_template.jinja")) {
      config.chat_templates.push_back({"default", *jinja});
      config.chat_template = *jinja;
    }
  }
  return config;
}

absl::StatusOr<GenerationConfig> LoadGenerationConfig(const std::string& model_dir) {
  const std::string path = model_dir + "/generation_config.json";
  std::optional<std::string> text = ReadFile(path);
  if (!text.has_value()) return GenerationConfig{};
  auto parsed = ParseGenerationConfig(*text);
  if (!parsed.ok()) return NameFile(parsed.status(), path);
  return parsed;
}

std::vector<int32_t> EncodeWithConfig(const Tokenizer& tokenizer, const TokenizerConfig& config,
                                      std::string_view text, bool add_special_tokens) {
  if (!add_special_tokens) return tokenizer.Encode(text, false);
  const std::string& cls = config.tokenizer_class;
  const bool llama_family = cls.rfind("LlamaTokenizer", 0) == 0 ||
                            cls.rfind("CodeLlamaTokenizer", 0) == 0 ||
                            cls.rfind("GemmaTokenizer", 0) == 0;
  std::vector<int32_t> ids = tokenizer.Encode(text, /*add_special_tokens=*/!llama_family);
  const bool add_bos = config.add_bos_token.value_or(llama_family);
  const bool add_eos = config.add_eos_token.value_or(false);
  if (add_bos && config.bos_token.has_value()) {
    std::optional<int32_t> bos = tokenizer.TokenToId(*config.bos_token);
    if (bos.has_value() && (ids.empty() || ids.front() != *bos)) ids.insert(ids.begin(), *bos);
  }
  if (add_eos && config.eos_token.has_value()) {
    std::optional<int32_t> eos = tokenizer.TokenToId(*config.eos_token);
    if (eos.has_value() && (ids.empty() || ids.back() != *eos)) ids.push_back(*eos);
  }
  return ids;
}

std::string CleanUpTokenizationSpaces(std::string_view text) {
  return absl::StrReplaceAll(absl::string_view(text.data(), text.size()), {{" .", "."},
                                                                           {" ?", "?"},
                                                                           {" !", "!"},
                                                                           {" ,", ","},
                                                                           {" ' ", "'"},
                                                                           {" n't", "n't"},
                                                                           {" 'm", "'m"},
                                                                           {" 's", "'s"},
                                                                           {" 've", "'ve"},
                                                                           {" 're", "'re"}});
}

}  // namespace moe::model
