// tokenizer_config.json and generation_config.json of a Hugging Face model folder.
#ifndef MOE_MODEL_TOKENIZER_TOKENIZER_CONFIG_H_
#define MOE_MODEL_TOKENIZER_TOKENIZER_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "model/tokenizer/tokenizer.h"

namespace moe::model {

struct ChatTemplate {
  std::string name;    // "default" for a template given as a plain string
  std::string source;  // Jinja source
};

struct TokenizerConfig {
  // Special token strings ("bos_token": "<s>" or {"content": "<s>", ...}); nullopt if absent
  // or null.
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> pad_token;
  std::optional<std::string> unk_token;
  // nullopt when the file does not say: tokenizer.json's post-processor alone decides.
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;
  // The template named "default" (or the only one given as a string); empty if there is none.
  // Falls back to chat_template.jinja in the folder when tokenizer_config.json has none.
  std::string chat_template;
  std::vector<ChatTemplate> chat_templates;  // every template, in file order
  // nullopt if absent or the "unlimited" sentinel (HF writes 1e30).
  std::optional<int64_t> model_max_length;
  bool clean_up_tokenization_spaces = false;
  std::string tokenizer_class;
};

struct GenerationConfig {
  std::vector<int32_t> eos_token_ids;  // "eos_token_id": an int or a list
  std::optional<int32_t> bos_token_id;
  std::optional<int32_t> pad_token_id;
  // Sampling defaults, when the file gives them.
  std::optional<bool> do_sample;
  std::optional<float> temperature;
  std::optional<float> top_p;
  std::optional<int32_t> top_k;
  std::optional<int32_t> max_new_tokens;
  std::optional<float> repetition_penalty;
};

// Parse the file contents. INVALID_ARGUMENT if not a JSON object or a field has the wrong type.
absl::StatusOr<TokenizerConfig> ParseTokenizerConfig(std::string_view json_text);
absl::StatusOr<GenerationConfig> ParseGenerationConfig(std::string_view json_text);

// Read `model_dir`/tokenizer_config.json (and chat_template.jinja) or
// `model_dir`/generation_config.json. A missing file gives the defaults; a malformed one gives
// INVALID_ARGUMENT naming the file.
absl::StatusOr<TokenizerConfig> LoadTokenizerConfig(const std::string& model_dir);
absl::StatusOr<GenerationConfig> LoadGenerationConfig(const std::string& model_dir);

// Encode as transformers does for a model folder, with add_special_tokens:
//  - Llama-family classes (tokenizer_class LlamaTokenizer[Fast], CodeLlamaTokenizer[Fast],
//    GemmaTokenizer[Fast]) rebuild the post-processor from the config, as transformers'
//    update_post_processor does: BOS if add_bos_token (default true), EOS if add_eos_token
//    (default false); tokenizer.json's own post-processor is not used.
//  - Any other class (e.g. PreTrainedTokenizerFast, Qwen2TokenizerFast) keeps tokenizer.json's
//    post-processor, and BOS/EOS are added only where add_bos_token/add_eos_token is true and
//    the ids do not already start/end with them.
// Without add_special_tokens this is tokenizer.Encode(text, false).
std::vector<int32_t> EncodeWithConfig(const Tokenizer& tokenizer, const TokenizerConfig& config,
                                      std::string_view text, bool add_special_tokens = true);

// transformers' clean_up_tokenization: " ." -> ".", " n't" -> "n't", ... Apply to decoded
// text when config.clean_up_tokenization_spaces is true.
std::string CleanUpTokenizationSpaces(std::string_view text);

}  // namespace moe::model

#endif  // MOE_MODEL_TOKENIZER_TOKENIZER_CONFIG_H_
