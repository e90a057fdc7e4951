#include "model/tokenizer/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "model/tokenizer/stream_decoder.h"
#include "model/tokenizer/tokenizer_config.h"
#include "model/tokenizer/tokenizer_test_util.h"
#include "model/tokenizer/utf8.h"

namespace moe::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kQwenDir = std::string(MOE_GOLDEN_DIR) + "/tiny-qwen3moe/hf-f32";
const std::string kMixtralDir = std::string(MOE_GOLDEN_DIR) + "/tiny-mixtral/hf-f32";

std::unique_ptr<Tokenizer> LoadFile(const std::string& path) {
  auto tokenizer = Tokenizer::FromFile(path);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

std::unique_ptr<Tokenizer> LoadJson(const std::string& json) {
  auto tokenizer = Tokenizer::FromJson(json);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

int32_t Id(const Tokenizer& t, const std::string& token) {
  auto id = t.TokenToId(token);
  EXPECT_TRUE(id.has_value()) << token;
  return id.value_or(-1);
}

const std::vector<std::string>& UnicodeTexts() {
  static const auto* texts = new std::vector<std::string>{
      "Hello, world!",
      "Café naïve résumé — 東京 🚀 Mixture-of-Experts!",
      "emoji 😀👨‍👩‍👧‍👦🇯🇵 and 👍🏽 skin tone",
      "中文日本語한국어 mixed with English",
      "e\xCC\x81 combining acute, a\xCC\x88, Z\xCD\x91\xCD\xAB\xCD\x83 zalgo",
      "   leading, trailing and    inner whitespace runs   ",
      "line1\nline2\r\n\n\tindented\t\ttabs\n",
      "مرحبا بالعالم and שלום",
      "\xE2\x80\xA8 line separator, \xC2\xA0 nbsp, \xE3\x80\x80 ideographic space",
      "digits 1234567890 and ١٢٣",
      "",
  };
  return *texts;
}

TEST(TokenizerTest, ByteLevelRoundTripsUnicodeText) {
  for (const std::string& dir : {kQwenDir, kMixtralDir}) {
    auto tok = LoadFile(dir + "/tokenizer.json");
    ASSERT_NE(tok, nullptr);
    for (const std::string& text : UnicodeTexts()) {
      EXPECT_EQ(tok->Decode(tok->Encode(text, false)), text) << dir;
      EXPECT_EQ(tok->Decode(tok->Encode(text, true)), text) << dir;
    }
  }
}

TEST(TokenizerTest, ByteLevelEncodesKnownIds) {
  auto tok = LoadFile(kQwenDir + "/tokenizer.json");
  ASSERT_NE(tok, nullptr);
  // "Ġthe" is a merge result; "東" is three single-byte tokens (bytes are ids 0..255 here).
  EXPECT_THAT(tok->Encode(" the"), ElementsAre(Id(*tok, "\xC4\xA0the")));
  EXPECT_THAT(tok->Encode("\xE6\x9D\xB1"), ElementsAre(0xE6, 0x9D, 0xB1));
  EXPECT_THAT(tok->Encode("a<|endoftext|>b"), ElementsAre('a', 509, 'b'));
  EXPECT_EQ(tok->Decode({'a', 509, 'b'}, /*skip_special_tokens=*/false), "a<|endoftext|>b");
  EXPECT_EQ(tok->Decode({'a', 509, 'b'}), "ab");
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_TRUE(tok->IsSpecial(509));
  EXPECT_FALSE(tok->IsSpecial('a'));
  EXPECT_EQ(tok->IdToToken(32), "\xC4\xA0");  // byte 0x20 is "Ġ"
  EXPECT_EQ(tok->TokenBytes(Id(*tok, "\xC4\xA0the")), " the");
  EXPECT_EQ(tok->TokenBytes(0xE6), "\xE6");
  EXPECT_EQ(tok->TokenBytes(509), "");
  EXPECT_EQ(tok->TokenBytes(100000), "");
  // Ill-formed input bytes are replaced before encoding.
  EXPECT_EQ(tok->Decode(tok->Encode("a\xFF"
                                    "b")),
            "a\xEF\xBF\xBD"
            "b");
  // An unpaired continuation byte decodes to U+FFFD.
  EXPECT_EQ(tok->Decode({'a', 0x9D}), "a\xEF\xBF\xBD");
}

TEST(TokenizerTest, SentencePieceStyleEncodesLikeHf) {
  auto tok = LoadJson(testing::SentencePieceStyleTokenizerJson());
  ASSERT_NE(tok, nullptr);
  const std::string ws = "\xE2\x96\x81";
  // "Hello world" -> normalized "▁Hello▁world" -> BOS ▁Hello ▁world.
  EXPECT_THAT(tok->Encode("Hello world"),
              ElementsAre(1, Id(*tok, ws + "Hello"), Id(*tok, ws + "world")));
  EXPECT_THAT(tok->Encode("Hello world", false),
              ElementsAre(Id(*tok, ws + "Hello"), Id(*tok, ws + "world")));
  // Unknown characters fall back to their UTF-8 bytes: <0xNN> has id 3 + NN.
  EXPECT_THAT(tok->Encode("the \xE6\x9D\xB1", false),
              ElementsAre(Id(*tok, ws + "the"), Id(*tok, ws), 3 + 0xE6, 3 + 0x9D, 3 + 0xB1));
  // Whitespace runs merge into "▁▁" tokens; the normalizer prepends one "▁".
  EXPECT_THAT(tok->Encode("the  is", false),
              ElementsAre(Id(*tok, ws + "the"), Id(*tok, ws + ws), Id(*tok, "is")));
  // Special tokens in the text are split out before normalization.
  EXPECT_THAT(tok->Encode("<s>Hello</s>", false), ElementsAre(1, Id(*tok, ws + "Hello"), 2));

  EXPECT_EQ(tok->Decode({1, Id(*tok, ws + "Hello"), Id(*tok, ws + "world"), 2}), "Hello world");
  EXPECT_EQ(tok->Decode({1, Id(*tok, ws + "Hello"), 2}, false), "<s> Hello</s>");
  EXPECT_EQ(tok->Decode({3 + 0xE6, 3 + 0x9D, 3 + 0xB1}), "\xE6\x9D\xB1");
  // An invalid byte run becomes one U+FFFD per byte (HF ByteFallback).
  EXPECT_EQ(tok->Decode({3 + 0xE6, 3 + 0x9D}), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(tok->TokenBytes(Id(*tok, ws + "Hello")), " Hello");
  EXPECT_EQ(tok->TokenBytes(3 + 0xE6), "\xE6");
  EXPECT_EQ(tok->TokenBytes(1), "");

  for (const std::string& text : UnicodeTexts()) {
    if (text.empty()) continue;
    EXPECT_EQ(tok->Decode(tok->Encode(text)), text);
  }
}

TEST(TokenizerTest, MetaspacePrependSchemeFirstSkipsTextAfterAddedToken) {
  auto legacy = LoadJson(testing::SentencePieceStyleTokenizerJson());
  auto tok = LoadJson(testing::MetaspaceStyleTokenizerJson());
  ASSERT_NE(tok, nullptr);
  ASSERT_NE(legacy, nullptr);
  const std::string ws = "\xE2\x96\x81";
  EXPECT_EQ(tok->Encode("Hello world"), legacy->Encode("Hello world"));
  // Text right after an added token does not start the input: no "▁" is prepended ("first"),
  // unlike the legacy Prepend normalizer, which prefixes every piece.
  EXPECT_THAT(tok->Encode("<s>Hello", false), ElementsAre(1, Id(*tok, "Hello")));
  EXPECT_THAT(legacy->Encode("<s>Hello", false), ElementsAre(1, Id(*tok, ws + "Hello")));
  // A leading space already reads as the "▁" prefix, which the Strip decoder removes: HF
  // (and SentencePiece) lose it the same way.
  EXPECT_EQ(tok->Decode(tok->Encode(" Hello  world ")), "Hello  world ");
  EXPECT_EQ(tok->Decode(tok->Encode("Hello  world ")), "Hello  world ");
}

TEST(TokenizerTest, EncodeWithConfigAddsBosWhenConfigSays) {
  auto tok = LoadJson(testing::SentencePieceStyleTokenizerJson(/*with_post_processor=*/false));
  ASSERT_NE(tok, nullptr);
  TokenizerConfig config;
  config.bos_token = "<s>";
  config.eos_token = "</s>";
  const std::vector<int32_t> plain = tok->Encode("Hello");
  EXPECT_EQ(EncodeWithConfig(*tok, config, "Hello"), plain);
  config.add_bos_token = true;
  std::vector<int32_t> with_bos = plain;
  with_bos.insert(with_bos.begin(), 1);
  EXPECT_EQ(EncodeWithConfig(*tok, config, "Hello"), with_bos);
  EXPECT_EQ(EncodeWithConfig(*tok, config, "Hello", /*add_special_tokens=*/false), plain);
  config.add_eos_token = true;
  with_bos.push_back(2);
  EXPECT_EQ(EncodeWithConfig(*tok, config, "Hello"), with_bos);
  // A post-processor that already adds BOS is not doubled.
  auto with_pp = LoadJson(testing::SentencePieceStyleTokenizerJson(true));
  ASSERT_NE(with_pp, nullptr);
  EXPECT_EQ(EncodeWithConfig(*with_pp, config, "Hello"), with_bos);

  // Llama-family classes rebuild the post-processor from the flags: no BOS when the config
  // says add_bos_token false, even though tokenizer.json's template adds one.
  config.tokenizer_class = "LlamaTokenizerFast";
  config.add_bos_token = false;
  config.add_eos_token = false;
  EXPECT_EQ(EncodeWithConfig(*with_pp, config, "Hello"), plain);
  config.add_bos_token.reset();  // transformers' default for Llama is add_bos_token=True
  EXPECT_EQ(EncodeWithConfig(*with_pp, config, "Hello")[0], 1);
  EXPECT_EQ(EncodeWithConfig(*with_pp, config, "Hello").size(), plain.size() + 1);
}

void ExpectStreamMatchesDecode(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  StreamDecoder stream(&tok);
  std::string streamed;
  for (int32_t id : ids) {
    const std::string piece = stream.Step(id);
    EXPECT_TRUE(tokenizer_internal::IsValidUtf8(piece));
    EXPECT_FALSE(tokenizer_internal::EndsWithReplacementChar(piece));
    streamed += piece;
  }
  streamed += stream.Flush();
  EXPECT_EQ(streamed, tok.Decode(ids));
}

TEST(StreamDecoderTest, HoldsBackSplitCharactersAndMatchesDecode) {
  auto byte_level = LoadFile(kMixtralDir + "/tokenizer.json");
  auto sentencepiece = LoadJson(testing::SentencePieceStyleTokenizerJson());
  ASSERT_NE(byte_level, nullptr);
  ASSERT_NE(sentencepiece, nullptr);
  for (const Tokenizer* tok : {byte_level.get(), sentencepiece.get()}) {
    for (const std::string& text : UnicodeTexts()) {
      ExpectStreamMatchesDecode(*tok, tok->Encode(text));
    }
    // "東" is three byte tokens in both tokenizers: nothing comes out until the third.
    const std::vector<int32_t> ids = tok->Encode("x\xE6\x9D\xB1", false);
    ASSERT_GE(ids.size(), 3u);
    StreamDecoder stream(tok);
    std::vector<std::string> pieces;
    for (int32_t id : ids) pieces.push_back(stream.Step(id));
    EXPECT_EQ(pieces[pieces.size() - 3], "");
    EXPECT_EQ(pieces[pieces.size() - 2], "");
    EXPECT_THAT(pieces.back(), HasSubstr("\xE6\x9D\xB1"));
    EXPECT_EQ(stream.Flush(), "");
  }
}

TEST(StreamDecoderTest, FlushEmitsIncompleteTailAsReplacement) {
  auto tok = LoadFile(kQwenDir + "/tokenizer.json");
  ASSERT_NE(tok, nullptr);
  StreamDecoder stream(tok.get());
  EXPECT_EQ(stream.Step('a'), "a");
  EXPECT_EQ(stream.Step(0xE6), "");
  EXPECT_EQ(stream.Flush(), "\xEF\xBF\xBD");
  // After Flush the decoder starts a new sequence.
  EXPECT_EQ(stream.Step('b'), "b");
  // Special tokens are skipped and produce nothing.
  EXPECT_EQ(stream.Step(509), "");
  EXPECT_EQ(stream.Step('c'), "c");
}

}  // namespace
}  // namespace moe::model
