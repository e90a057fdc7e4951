// Tests of the tokenizer.json components (pre-tokenizers, normalizers, added tokens, BPE) and
// of the errors for malformed files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/tokenizer/normalizer.h"
#include "model/tokenizer/pattern.h"
#include "model/tokenizer/pre_tokenizer.h"
#include "model/tokenizer/tokenizer.h"
#include "model/tokenizer/tokenizer_test_util.h"

namespace moe::model {
namespace {

using ::nlohmann::json;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using tokenizer_internal::PreToken;

std::vector<std::string> PreTokenize(const json& config, const std::string& text,
                                     bool at_start = true) {
  auto pre = tokenizer_internal::ParsePreTokenizer(config);
  EXPECT_TRUE(pre.ok()) << pre.status();
  if (!pre.ok()) return {};
  std::vector<PreToken> pieces = {{text, at_start}};
  (*pre)->PreTokenize(&pieces);
  std::vector<std::string> out;
  for (const PreToken& p : pieces) out.push_back(p.text);
  return out;
}

json SplitConfig(const char* behavior, bool invert = false) {
  return {{"type", "Split"},
          {"pattern", {{"String", "-"}}},
          {"behavior", behavior},
          {"invert", invert}};
}

// The examples of HF's SplitDelimiterBehavior documentation.
TEST(PreTokenizerTest, SplitBehaviorsFollowHf) {
  const std::string text = "the-final--countdown";
  EXPECT_THAT(PreTokenize(SplitConfig("Removed"), text), ElementsAre("the", "final", "countdown"));
  EXPECT_THAT(PreTokenize(SplitConfig("Isolated"), text),
              ElementsAre("the", "-", "final", "-", "-", "countdown"));
  EXPECT_THAT(PreTokenize(SplitConfig("MergedWithPrevious"), text),
              ElementsAre("the-", "final-", "-", "countdown"));
  EXPECT_THAT(PreTokenize(SplitConfig("MergedWithNext"), text),
              ElementsAre("the", "-final", "-", "-countdown"));
  EXPECT_THAT(PreTokenize(SplitConfig("Contiguous"), text),
              ElementsAre("the", "-", "final", "--", "countdown"));
  EXPECT_THAT(PreTokenize(SplitConfig("Removed", /*invert=*/true), text),
              ElementsAre("-", "-", "-"));  // each "-" is its own match
}

TEST(PreTokenizerTest, Llama3StyleRegexSplit) {
  const json config = {
      {"type", "Split"},
      {"pattern",
       {{"Regex",
         R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
      {"behavior", "Isolated"},
      {"invert", false}};
  EXPECT_THAT(
      PreTokenize(config, "Hello world 12345 IT'S  ok\n\nbye"),
      ElementsAre("Hello", " world", " ", "123", "45", " IT", "'S", " ", " ok", "\n\n", "bye"));
}

TEST(PreTokenizerTest, DeepSeekStyleUnicodeEscapesCompile) {
  const json config = {{"type", "Split"},
                       {"pattern", {{"Regex", "[\\u4e00-\\u9fa5\\u3040-\\u309f]+"}}},
                       {"behavior", "Isolated"},
                       {"invert", false}};
  EXPECT_THAT(PreTokenize(config,
                          "ab\xE6\x9D\xB1\xE4\xBA\xAC"
                          "cd"),
              ElementsAre("ab", "\xE6\x9D\xB1\xE4\xBA\xAC", "cd"));
}

TEST(PreTokenizerTest, ByteLevelMapsBytesAndSplitsLikeGpt2) {
  const json config = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  // "Ġ" stands for the space byte, "Ċ" for newline.
  EXPECT_THAT(PreTokenize(config, "Hello  world's\n"),
              ElementsAre("Hello", "\xC4\xA0", "\xC4\xA0world", "'s", "\xC4\x8A"));
  const json prefixed = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}};
  EXPECT_THAT(PreTokenize(prefixed, "a b"), ElementsAre("\xC4\xA0"
                                                        "a\xC4\xA0"
                                                        "b"));
}

TEST(PreTokenizerTest, MetaspaceReplacesSpacesAndSplits) {
  const std::string ws = "\xE2\x96\x81";
  const json config = {
      {"type", "Metaspace"}, {"replacement", ws}, {"prepend_scheme", "always"}, {"split", true}};
  EXPECT_THAT(PreTokenize(config, "Hey   friend!"),
              ElementsAre(ws + "Hey", ws, ws, ws + "friend!"));
  json first = config;
  first["prepend_scheme"] = "first";
  EXPECT_THAT(PreTokenize(first, "a b"), ElementsAre(ws + "a", ws + "b"));
  EXPECT_THAT(PreTokenize(first, "a b", /*at_start=*/false), ElementsAre("a", ws + "b"));
  json no_split = config;
  no_split["split"] = false;
  EXPECT_THAT(PreTokenize(no_split, "a b"), ElementsAre(ws + "a" + ws + "b"));
}

TEST(PreTokenizerTest, DigitsAndSequence) {
  EXPECT_THAT(PreTokenize({{"type", "Digits"}, {"individual_digits", true}}, "Call 123!"),
              ElementsAre("Call ", "1", "2", "3", "!"));
  EXPECT_THAT(PreTokenize({{"type", "Digits"}, {"individual_digits", false}}, "Call 123!"),
              ElementsAre("Call ", "123", "!"));
  const json sequence = {
      {"type", "Sequence"},
      {"pretokenizers", json::array({{{"type", "WhitespaceSplit"}},
                                     {{"type", "Digits"}, {"individual_digits", true}}})}};
  EXPECT_THAT(PreTokenize(sequence, "ab12  c3"), ElementsAre("ab", "1", "2", "c", "3"));
}

std::string Normalize(const json& config, const std::string& text) {
  auto n = tokenizer_internal::ParseNormalizer(config);
  EXPECT_TRUE(n.ok()) << n.status();
  return n.ok() ? (*n)->Normalize(text) : std::string();
}

TEST(NormalizerTest, UnicodeFormsAndSimpleRewrites) {
  EXPECT_EQ(Normalize({{"type", "NFC"}}, "e\xCC\x81"), "\xC3\xA9");
  EXPECT_EQ(Normalize({{"type", "NFD"}}, "\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(Normalize({{"type", "NFKC"}}, "\xEF\xAC\x81"), "fi");  // the "ﬁ" ligature
  EXPECT_EQ(Normalize({{"type", "Lowercase"}}, "ÄBC"), "äbc");
  EXPECT_EQ(
      Normalize({{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}}, " \t x y \n"),
      "x y");
  EXPECT_EQ(Normalize({{"type", "StripAccents"}}, "e\xCC\x81"), "e");
  EXPECT_EQ(
      Normalize({{"type", "Replace"}, {"pattern", {{"Regex", " +"}}}, {"content", "_"}}, "a  b c"),
      "a_b_c");
  EXPECT_EQ(Normalize({{"type", "Prepend"}, {"prepend", "^"}}, "x"), "^x");
  EXPECT_EQ(Normalize({{"type", "Prepend"}, {"prepend", "^"}}, ""), "");
  EXPECT_FALSE(tokenizer_internal::ParseNormalizer({{"type", "Precompiled"}}).ok());
}

// A tiny character-level tokenizer with configurable added tokens.
std::string CharTokenizerJson(const json& added_tokens) {
  json vocab = json::object();
  int id = 0;
  for (const char* c : {"a", "b", "c", " ", "<", ">", "x"}) vocab[c] = id++;
  return json{{"added_tokens", added_tokens},
              {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}}
      .dump();
}

json Added(int id, const char* content, bool lstrip, bool rstrip, bool single_word) {
  return {{"id", id},         {"content", content},         {"lstrip", lstrip},
          {"rstrip", rstrip}, {"single_word", single_word}, {"normalized", false},
          {"special", true}};
}

TEST(AddedTokensTest, LongestMatchAndStripAndSingleWord) {
  auto tok = Tokenizer::FromJson(CharTokenizerJson(
      json::array({Added(10, "<x>", false, false, false), Added(11, "<x><x>", false, false, false),
                   Added(12, "ab", true, true, false), Added(13, "c", false, false, true)})));
  ASSERT_TRUE(tok.ok()) << tok.status();
  // Longest match wins: "<x><x>" over two "<x>".
  EXPECT_THAT((*tok)->Encode("a<x><x><x>"), ElementsAre(0, 11, 10));
  // lstrip/rstrip swallow the spaces around "ab".
  EXPECT_THAT((*tok)->Encode("c  ab  c"), ElementsAre(13, 12, 13));
  // single_word: "c" inside "acb" is not matched, and becomes the model's "c" (id 2).
  EXPECT_THAT((*tok)->Encode("x c acb"), ElementsAre(6, 3, 13, 3, 0, 2, 1));
  EXPECT_EQ((*tok)->vocab_size(), 14);
  EXPECT_EQ((*tok)->TokenToId("<x><x>"), 11);
  EXPECT_EQ((*tok)->IdToToken(12), "ab");
}

TEST(BpeModelTest, LongWordIsMergedCorrectly) {
  // "a a" merges to "aa", "aa aa" to "aaaa": 1001 'a' become 250 "aaaa" and one "a".
  const json doc = {{"model",
                     {{"type", "BPE"},
                      {"vocab", {{"a", 0}, {"aa", 1}, {"aaaa", 2}}},
                      {"merges", json::array({"a a", json::array({"aa", "aa"})})}}}};
  auto tok = Tokenizer::FromJson(doc.dump());
  ASSERT_TRUE(tok.ok()) << tok.status();
  std::vector<int32_t> expected(250, 2);
  expected.push_back(0);
  EXPECT_THAT((*tok)->Encode(std::string(1001, 'a')), ElementsAreArray(expected));
}

TEST(BpeModelTest, SubwordPrefixSuffixAndIgnoreMerges) {
  const json prefix_doc = {{"model",
                            {{"type", "BPE"},
                             {"vocab", {{"a", 0}, {"##b", 1}, {"ab", 2}}},
                             {"merges", json::array({json::array({"a", "##b"})})},
                             {"continuing_subword_prefix", "##"}}}};
  auto prefix = Tokenizer::FromJson(prefix_doc.dump());
  ASSERT_TRUE(prefix.ok()) << prefix.status();
  EXPECT_THAT((*prefix)->Encode("ab"), ElementsAre(2));
  EXPECT_THAT((*prefix)->Encode("abb"), ElementsAre(2, 1));

  const json suffix_doc = {{"model",
                            {{"type", "BPE"},
                             {"vocab", {{"a", 0}, {"b</w>", 1}, {"ab</w>", 2}, {" ", 3}}},
                             {"merges", json::array({"a b</w>"})},
                             {"end_of_word_suffix", "</w>"}}},
                           {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
                           {"decoder", {{"type", "BPEDecoder"}, {"suffix", "</w>"}}}};
  auto suffix = Tokenizer::FromJson(suffix_doc.dump());
  ASSERT_TRUE(suffix.ok()) << suffix.status();
  EXPECT_THAT((*suffix)->Encode("ab ab"), ElementsAre(2, 2));
  EXPECT_EQ((*suffix)->Decode({2, 2}), "ab ab");

  json ignore_doc = {{"model",
                      {{"type", "BPE"},
                       {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"abc", 4}}},
                       {"merges", json::array({"a b"})},
                       {"ignore_merges", false}}}};
  auto merged = Tokenizer::FromJson(ignore_doc.dump());
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_THAT((*merged)->Encode("abc"), ElementsAre(3, 2));  // no merge makes "abc"
  ignore_doc["model"]["ignore_merges"] = true;
  auto ignoring = Tokenizer::FromJson(ignore_doc.dump());
  ASSERT_TRUE(ignoring.ok()) << ignoring.status();
  EXPECT_THAT((*ignoring)->Encode("abc"), ElementsAre(4));  // whole word is in the vocab
}

TEST(BpeModelTest, UnknownCharactersUseUnkTokenAndFuse) {
  json doc = {{"model",
               {{"type", "BPE"},
                {"vocab", {{"<unk>", 0}, {"a", 1}}},
                {"merges", json::array()},
                {"unk_token", "<unk>"},
                {"fuse_unk", false}}}};
  auto plain = Tokenizer::FromJson(doc.dump());
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_THAT((*plain)->Encode("axyа"), ElementsAre(1, 0, 0, 0));  // the last is Cyrillic
  doc["model"]["fuse_unk"] = true;
  auto fused = Tokenizer::FromJson(doc.dump());
  ASSERT_TRUE(fused.ok()) << fused.status();
  EXPECT_THAT((*fused)->Encode("axya"), ElementsAre(1, 0, 1));
  doc["model"]["unk_token"] = nullptr;
  auto dropped = Tokenizer::FromJson(doc.dump());
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_THAT((*dropped)->Encode("axya"), ElementsAre(1, 1));  // HF drops them without unk
}

void ExpectInvalid(const std::string& text, const std::string& message_part) {
  auto tok = Tokenizer::FromJson(text);
  ASSERT_FALSE(tok.ok()) << text;
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument) << tok.status();
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr(message_part));
}

TEST(TokenizerErrorsTest, MalformedFilesAreInvalidArgument) {
  const json bpe = {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}}}, {"merges", json::array()}};
  auto with = [&](const char* key, const json& value) {
    json doc = {{"model", bpe}};
    doc[key] = value;
    return doc.dump();
  };
  ExpectInvalid("this is not json", "not valid JSON");
  ExpectInvalid("{\"model\": ", "not valid JSON");
  ExpectInvalid("[1, 2]", "JSON object");
  ExpectInvalid("{}", "no \"model\"");
  ExpectInvalid(json{{"model", nullptr}}.dump(), "no \"model\"");
  ExpectInvalid(json{{"model", {{"type", "WordPiece"}, {"vocab", json::object()}}}}.dump(),
                "WordPiece");
  ExpectInvalid(json{{"model", {{"type", "Unigram"}, {"vocab", json::array()}}}}.dump(), "Unigram");
  ExpectInvalid(json{{"model", {{"type", "BPE"}, {"merges", json::array()}}}}.dump(), "vocab");
  json bad_merge = bpe;
  bad_merge["merges"] = json::array({"a c"});
  ExpectInvalid(json{{"model", bad_merge}}.dump(), "not in the vocab");
  bad_merge["merges"] = json::array({"a b"});  // "ab" is not in the vocab
  ExpectInvalid(json{{"model", bad_merge}}.dump(), "not in the vocab");
  bad_merge["merges"] = json::array({"a b c"});
  ExpectInvalid(json{{"model", bad_merge}}.dump(), "malformed merge");
  bad_merge["merges"] = json::array({42});
  ExpectInvalid(json{{"model", bad_merge}}.dump(), "malformed merge");
  json bad_vocab = bpe;
  bad_vocab["vocab"] = {{"a", "zero"}};
  ExpectInvalid(json{{"model", bad_vocab}}.dump(), "malformed tokenizer.json");
  bad_vocab["vocab"] = {{"a", -3}};
  ExpectInvalid(json{{"model", bad_vocab}}.dump(), "out of range");
  json bad_unk = bpe;
  bad_unk["unk_token"] = "<unk>";
  ExpectInvalid(json{{"model", bad_unk}}.dump(), "unk_token");
  ExpectInvalid(with("pre_tokenizer", {{"type", "BertPreTokenizer"}}), "BertPreTokenizer");
  ExpectInvalid(with("pre_tokenizer",
                     {{"type", "Split"}, {"pattern", {{"Regex", "(a"}}}, {"behavior", "Isolated"}}),
                "does not compile");
  ExpectInvalid(with("pre_tokenizer",
                     {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}}),
                "Sideways");
  ExpectInvalid(with("normalizer", {{"type", "BertNormalizer"}}), "BertNormalizer");
  ExpectInvalid(with("decoder", {{"type", "CTC"}}), "CTC");
  ExpectInvalid(with("post_processor", {{"type", "Mystery"}}), "Mystery");
  ExpectInvalid(with("added_tokens", json::array({{{"id", 5}}})), "malformed tokenizer.json");
  ExpectInvalid(with("added_tokens", json::array({{{"id", -1}, {"content", "x"}}})),
                "malformed added token");
  ExpectInvalid(with("normalizer", {{"type", 7}}), "malformed tokenizer.json");
}

// Truncated files and sections of the wrong JSON type give errors (or, where HF would accept
// them, a tokenizer), never a crash.
TEST(TokenizerErrorsTest, TruncatedAndMistypedFilesNeverCrash) {
  const std::string good = testing::SentencePieceStyleTokenizerJson();
  for (size_t length = 0; length < good.size(); length += 61) {
    auto tok = Tokenizer::FromJson(good.substr(0, length));
    ASSERT_FALSE(tok.ok()) << length;
    EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
  }
  const json doc = json::parse(good);
  const std::vector<json> wrong_values = {
      42, "text", json::array(), json::object(), true, json::array({1, "a"})};
  int rejected = 0;
  for (const auto& [key, unused] : doc.items()) {
    for (const json& value : wrong_values) {
      json mutated = doc;
      mutated[key] = value;
      auto tok = Tokenizer::FromJson(mutated.dump());
      if (!tok.ok()) {
        EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument) << key;
        ++rejected;
      } else {
        (*tok)->Encode("Hello world \xE6\x9D\xB1");  // must not crash either
      }
    }
  }
  for (const auto& [key, unused] : doc.at("model").items()) {
    for (const json& value : wrong_values) {
      json mutated = doc;
      mutated["model"][key] = value;
      auto tok = Tokenizer::FromJson(mutated.dump());
      if (!tok.ok()) {
        EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument) << key;
        ++rejected;
      } else {
        (*tok)->Encode("Hello world");
      }
    }
  }
  EXPECT_GT(rejected, 20);
  json huge_id = doc;
  huge_id["model"]["vocab"]["<huge>"] = 2000000000;
  EXPECT_EQ(Tokenizer::FromJson(huge_id.dump()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TokenizerErrorsTest, MissingFileIsNotFound) {
  auto tok = Tokenizer::FromFile("/nonexistent/tokenizer.json");
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace moe::model
