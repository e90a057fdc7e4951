// Test helpers shared by the tokenizer tests: small tokenizer.json documents built in code.
#ifndef MOE_MODEL_TOKENIZER_TOKENIZER_TEST_UTIL_H_
#define MOE_MODEL_TOKENIZER_TOKENIZER_TEST_UTIL_H_

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moe::model::testing {

// A Mixtral/Llama-style SentencePiece BPE tokenizer.json, as HF's converter writes it:
// normalizer Prepend("▁") + Replace(" " -> "▁"), no pre-tokenizer, BPE with byte_fallback and
// <0x00>..<0xFF> tokens, TemplateProcessing adding <s>, and the decoder chain
// Replace("▁" -> " "), ByteFallback, Fuse, Strip(" ", 1, 0).
// Ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then "▁" and single characters, then
// one token per merge, in merge order.
inline std::string SentencePieceStyleTokenizerJson(bool with_post_processor = true) {
  using nlohmann::json;
  json vocab = json::object();
  int next_id = 0;
  auto add = [&](const std::string& token) {
    if (!vocab.contains(token)) vocab[token] = next_id++;
  };
  add("<unk>");
  add("<s>");
  add("</s>");
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    add(name);
  }
  const std::string ws = "\xE2\x96\x81";  // ▁
  add(ws);
  for (const char* c : {"e", "t", "a", "o", "h", "l", "r", "d", "w", "H", "n",
                        "i", "s", ",", "!", ".", "T", "x", "1", "2", "3"}) {
    add(c);
  }
  const std::vector<std::pair<std::string, std::string>> merges = {
      {ws, "t"},        {"h", "e"},    {ws + "t", "he"},   {"l", "l"}, {"e", "ll"},
      {"H", "ell"},     {"Hell", "o"}, {ws, "Hello"},      {"o", "r"}, {ws, "w"},
      {ws + "w", "or"}, {"l", "d"},    {ws + "wor", "ld"}, {ws, ws},   {ws + ws, ws + ws},
      {"i", "s"},       {ws, "is"},    {"1", "2"}};
  json merge_list = json::array();
  for (const auto& [a, b] : merges) {
    add(a + b);
    merge_list.push_back(json::array({a, b}));
  }
  auto added = [](int id, const char* content) {
    return json{{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
                {"rstrip", false}, {"normalized", false}, {"special", true}};
  };
  json doc = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", json::array({added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")})},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         json::array({{{"type", "Prepend"}, {"prepend", ws}},
                      {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", ws}}})}}},
      {"pre_tokenizer", nullptr},
      {"post_processor", nullptr},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         json::array({{{"type", "Replace"}, {"pattern", {{"String", ws}}}, {"content", " "}},
                      {{"type", "ByteFallback"}},
                      {{"type", "Fuse"}},
                      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merge_list}}}};
  if (with_post_processor) {
    json bos = {{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}};
    doc["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", json::array({bos, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"pair", json::array({bos,
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                              {{"SpecialToken", {{"id", "<s>"}, {"type_id", 1}}}},
                              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  }
  return doc.dump();
}

// The same tokenizer as converted by newer transformers (Mistral v0.3 style, "legacy": false):
// no normalizer, pre-tokenizer Metaspace(replacement "▁", prepend_scheme "first",
// split false); everything else as SentencePieceStyleTokenizerJson().
inline std::string MetaspaceStyleTokenizerJson() {
  nlohmann::json doc = nlohmann::json::parse(SentencePieceStyleTokenizerJson());
  doc["normalizer"] = nullptr;
  doc["pre_tokenizer"] = {{"type", "Metaspace"},
                          {"replacement", "\xE2\x96\x81"},
                          {"prepend_scheme", "first"},
                          {"split", false}};
  return doc.dump();
}

// The golden byte-level tokenizer.json at `golden_tokenizer_json` rewritten in the style of
// Qwen2/Qwen3 and Llama-3 files: NFC normalizer, pre-tokenizer Sequence[Split(Qwen2 regex,
// Isolated), ByteLevel(use_regex=false)], post-processor Sequence[ByteLevel,
// TemplateProcessing(<|startoftext|> $A)]. Same vocab and merges. Empty on read failure.
inline std::string Qwen2StyleTokenizerJson(const std::string& golden_tokenizer_json) {
  using nlohmann::json;
  std::ifstream in(golden_tokenizer_json);
  json doc = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return std::string();
  doc["normalizer"] = {{"type", "NFC"}};
  doc["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array({{{"type", "Split"},
                     {"pattern",
                      {{"Regex",
                        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                        "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
                     {"behavior", "Isolated"},
                     {"invert", false}},
                    {{"type", "ByteLevel"},
                     {"add_prefix_space", false},
                     {"trim_offsets", false},
                     {"use_regex", false}}})}};
  json bos = {{"SpecialToken", {{"id", "<|startoftext|>"}, {"type_id", 0}}}};
  doc["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       json::array({{{"type", "ByteLevel"},
                     {"add_prefix_space", true},
                     {"trim_offsets", false},
                     {"use_regex", true}},
                    {{"type", "TemplateProcessing"},
                     {"single", json::array({bos, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                     {"pair", json::array({bos, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                     {"special_tokens",
                      {{"<|startoftext|>",
                        {{"id", "<|startoftext|>"},
                         {"ids", {510}},
                         {"tokens", {"<|startoftext|>"}}}}}}}})}};
  return doc.dump();
}

// Golden model folders (tokenizer.json etc.) under MOE_GOLDEN_DIR.
inline std::vector<std::string> GoldenModelDirs() {
  std::vector<std::string> dirs;
  for (const char* model : {"tiny-mixtral", "tiny-qwen3moe"}) {
    for (const char* weights : {"hf-f32", "hf-bf16"}) {
      dirs.push_back(std::string(MOE_GOLDEN_DIR) + "/" + model + "/" + weights);
    }
  }
  return dirs;
}

}  // namespace moe::model::testing

#endif  // MOE_MODEL_TOKENIZER_TOKENIZER_TEST_UTIL_H_
