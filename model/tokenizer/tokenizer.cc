#include "model/tokenizer/tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "model/tokenizer/added_tokens.h"
#include "model/tokenizer/bpe_model.h"
#include "model/tokenizer/decoder.h"
#include "model/tokenizer/normalizer.h"
#include "model/tokenizer/post_processor.h"
#include "model/tokenizer/pre_tokenizer.h"
#include "model/tokenizer/utf8.h"

namespace moe::model {

using nlohmann::json;
using tokenizer_internal::AddedToken;
using tokenizer_internal::AddedTokenMatcher;
using tokenizer_internal::PreToken;

namespace {

// A tokenizer.json section that may be absent or null.
const json* Section(const json& root, const char* key) {
  if (!root.contains(key) || root.at(key).is_null()) return nullptr;
  return &root.at(key);
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  auto tokenizer = FromJson(text.str());
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(path, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view json_text) {
  const json root = json::parse(json_text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return absl::InvalidArgumentError("tokenizer.json is not valid JSON");
  if (!root.is_object()) {
    return absl::InvalidArgumentError("tokenizer.json must hold a JSON object");
  }
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer);
  try {
    MOE_RETURN_IF_ERROR(tokenizer->Load(root));
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed tokenizer.json: ", e.what()));
  }
  return tokenizer;
}

absl::Status Tokenizer::Load(const json& root) {
  const json* model = Section(root, "model");
  if (model == nullptr || !model->is_object()) {
    return absl::InvalidArgumentError("tokenizer.json has no \"model\" object");
  }
  const std::string type = model->contains("type") ? model->at("type").get<std::string>()
                                                   : (model->contains("merges") ? "BPE" : "(none)");
  if (type != "BPE") {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported tokenizer model type '", type, "' (only BPE is supported)"));
  }
  MOE_ASSIGN_OR_RETURN(model_, tokenizer_internal::BpeModel::FromJson(*model));
  if (const json* n = Section(root, "normalizer")) {
    MOE_ASSIGN_OR_RETURN(normalizer_, tokenizer_internal::ParseNormalizer(*n));
  }
  if (const json* p = Section(root, "pre_tokenizer")) {
    MOE_ASSIGN_OR_RETURN(pre_tokenizer_, tokenizer_internal::ParsePreTokenizer(*p));
  }
  if (const json* p = Section(root, "post_processor")) {
    MOE_ASSIGN_OR_RETURN(post_processor_, tokenizer_internal::ParsePostProcessor(*p));
  }
  if (const json* d = Section(root, "decoder")) {
    MOE_ASSIGN_OR_RETURN(decoder_, tokenizer_internal::ParseDecoder(*d));
  }

  vocab_size_ = model_->size();
  if (const json* added = Section(root, "added_tokens")) {
    for (const json& t : *added) {
      AddedToken token;
      token.id = t.at("id").get<int32_t>();
      token.content = t.at("content").get<std::string>();
      token.special = t.value("special", false);
      token.lstrip = t.value("lstrip", false);
      token.rstrip = t.value("rstrip", false);
      token.single_word = t.value("single_word", false);
      token.normalized = t.value("normalized", !token.special);
      if (token.id < 0 || token.id >= tokenizer_internal::BpeModel::kMaxTokenId ||
          token.content.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("malformed added token ", t.dump()));
      }
      vocab_size_ = std::max(vocab_size_, token.id + 1);
      added_tokens_.push_back(std::move(token));
    }
  }
  std::vector<const AddedToken*> raw_tokens;
  std::vector<std::string> raw_patterns;
  std::vector<const AddedToken*> normalized_tokens;
  std::vector<std::string> normalized_patterns;
  for (size_t i = 0; i < added_tokens_.size(); ++i) {
    const AddedToken& token = added_tokens_[i];
    added_by_id_[token.id] = i;
    added_by_content_.try_emplace(token.content, token.id);
    if (token.normalized && normalizer_ != nullptr) {
      normalized_tokens.push_back(&token);
      normalized_patterns.push_back(normalizer_->Normalize(token.content));
    } else {
      raw_tokens.push_back(&token);
      raw_patterns.push_back(token.content);
    }
  }
  raw_matcher_ = std::make_unique<AddedTokenMatcher>(raw_tokens, raw_patterns);
  normalized_matcher_ = std::make_unique<AddedTokenMatcher>(normalized_tokens, normalized_patterns);
  return absl::OkStatus();
}

void Tokenizer::EncodePlain(std::string text, bool at_original_start,
                            std::vector<int32_t>* ids) const {
  std::vector<PreToken> words;
  words.push_back({std::move(text), at_original_start});
  if (pre_tokenizer_ != nullptr) pre_tokenizer_->PreTokenize(&words);
  for (const PreToken& word : words) model_->Tokenize(word.text, ids);
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  std::string sanitized;
  if (!tokenizer_internal::IsValidUtf8(text)) {
    sanitized = tokenizer_internal::Utf8Lossy(text);
    text = sanitized;
  }
  std::vector<int32_t> ids;
  for (const AddedTokenMatcher::Segment& segment : raw_matcher_->Split(text)) {
    if (segment.token >= 0) {
      ids.push_back(raw_matcher_->token(segment.token).id);
      continue;
    }
    std::string piece(text.substr(segment.begin, segment.end - segment.begin));
    if (normalizer_ != nullptr) piece = normalizer_->Normalize(piece);
    const bool at_start = segment.begin == 0;
    if (normalized_matcher_->empty()) {
      if (!piece.empty()) EncodePlain(std::move(piece), at_start, &ids);
      continue;
    }
    for (const AddedTokenMatcher::Segment& sub : normalized_matcher_->Split(piece)) {
      if (sub.token >= 0) {
        ids.push_back(normalized_matcher_->token(sub.token).id);
      } else {
        EncodePlain(piece.substr(sub.begin, sub.end - sub.begin), at_start && sub.begin == 0, &ids);
      }
    }
  }
  if (add_special_tokens && post_processor_ != nullptr) post_processor_->Process(&ids);
  return ids;
}

std::vector<std::string> Tokenizer::IdsToTokens(absl::Span<const int32_t> ids,
                                                bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (auto it = added_by_id_.find(id); it != added_by_id_.end()) {
      const AddedToken& token = added_tokens_[it->second];
      if (!(skip_special_tokens && token.special)) tokens.push_back(token.content);
    } else if (const std::string* token = model_->IdToToken(id)) {
      tokens.push_back(*token);
    }
  }
  return tokens;
}

std::string Tokenizer::Decode(absl::Span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens = IdsToTokens(ids, skip_special_tokens);
  if (decoder_ == nullptr) return absl::StrJoin(tokens, " ");
  decoder_->DecodeChain(&tokens, /*raw_bytes=*/false);
  return absl::StrJoin(tokens, "");
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  if (auto it = added_by_content_.find(tokenizer_internal::ToAbsl(token));
      it != added_by_content_.end())
    return it->second;
  return model_->TokenToId(token);
}

std::string Tokenizer::IdToToken(int32_t id) const {
  if (auto it = added_by_id_.find(id); it != added_by_id_.end()) {
    return added_tokens_[it->second].content;
  }
  const std::string* token = model_->IdToToken(id);
  return token == nullptr ? std::string() : *token;
}

bool Tokenizer::IsSpecial(int32_t id) const {
  auto it = added_by_id_.find(id);
  return it != added_by_id_.end() && added_tokens_[it->second].special;
}

std::string Tokenizer::TokenBytes(int32_t id) const {
  std::vector<std::string> tokens = IdsToTokens(absl::MakeConstSpan(&id, 1), true);
  if (tokens.empty() || decoder_ == nullptr) return tokens.empty() ? std::string() : tokens[0];
  decoder_->DecodeChain(&tokens, /*raw_bytes=*/true);
  return absl::StrJoin(tokens, "");
}

}  // namespace moe::model
