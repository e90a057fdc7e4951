#include "gateway/openai/choice_text.h"

#include <gtest/gtest.h>

namespace moe::gateway {
namespace {

// Feeds pieces; returns everything shown (and whether it stopped).
std::string Feed(std::vector<std::string> stops, bool include, std::vector<std::string> pieces,
                 bool* stopped = nullptr, std::vector<std::string>* shown = nullptr) {
  StopMatcher m(std::move(stops), include);
  std::string out;
  for (const std::string& p : pieces) {
    std::string s = m.Add(p);
    if (shown) shown->push_back(s);
    out += s;
  }
  out += m.Finish();
  if (stopped) *stopped = m.stopped();
  return out;
}

TEST(StopMatcherTest, NoStopsPassEverythingThrough) {
  std::vector<std::string> shown;
  EXPECT_EQ(Feed({}, false, {"ab", "c"}, nullptr, &shown), "abc");
  EXPECT_EQ(shown, (std::vector<std::string>{"ab", "c"}));
}

TEST(StopMatcherTest, MatchAcrossPiecesIsExcludedAndEndsTheText) {
  bool stopped = false;
  std::vector<std::string> shown;
  EXPECT_EQ(Feed({"STOP"}, false, {"hello S", "TO", "P and more", "x"}, &stopped, &shown),
            "hello ");
  EXPECT_TRUE(stopped);
  // "S" and "TO" are held back while they may start the stop string.
  EXPECT_EQ(shown, (std::vector<std::string>{"hello ", "", "", ""}));
}

TEST(StopMatcherTest, FalseStartIsReleasedAndIncludeKeepsTheStop) {
  bool stopped = true;
  std::vector<std::string> shown;
  EXPECT_EQ(Feed({"ab"}, false, {"xa", "c", "a"}, &stopped, &shown), "xaca");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(shown, (std::vector<std::string>{"x", "ac", ""}));
  EXPECT_EQ(Feed({"ab"}, true, {"xa", "b", "c"}, &stopped), "xab");
  EXPECT_TRUE(stopped);
}

TEST(StopMatcherTest, EarliestOfSeveralStopsWins) {
  bool stopped = false;
  EXPECT_EQ(Feed({"cd", "b"}, false, {"abcd"}, &stopped), "a");
  EXPECT_TRUE(stopped);
  // Multi-byte stop strings: held text never splits a character.
  std::vector<std::string> shown;
  EXPECT_EQ(Feed({"\xe6\x9d\xb1\xe4\xba\xac"}, false, {"a\xe6\x9d\xb1", "b"}, &stopped, &shown),
            "a\xe6\x9d\xb1"
            "b");
  EXPECT_EQ(shown[0], "a");
}

}  // namespace
}  // namespace moe::gateway

namespace moe::gateway {
namespace {

bool ValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

TEST(ChoiceTextTest, GoldenTokenizerPiecesAreWholeCharactersAndStopsCut) {
  auto tok = model::Tokenizer::FromFile(std::string(MOE_GOLDEN_DIR) +
                                        "/tiny-mixtral/hf-f32/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::string text = "Caf\xc3\xa9 na\xc3\xafve \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x9a\x80 end";
  const std::vector<int32_t> ids = (*tok)->Encode(text, false);
  ASSERT_GT(ids.size(), 4u);
  ChoiceText plain(tok->get(), {}, {}, false, true);
  std::string all;
  int empty_pieces = 0;
  for (int32_t id : ids) {
    const std::string piece = plain.Add(id);
    EXPECT_TRUE(ValidUtf8(piece)) << "piece of id " << id;
    empty_pieces += piece.empty();
    all += piece;
  }
  all += plain.Finish();
  // This small vocabulary splits the CJK characters and the emoji over byte tokens: some ids
  // complete no character and show nothing.
  EXPECT_GT(empty_pieces, 0);
  EXPECT_EQ(all, (*tok)->Decode(ids, true));
  EXPECT_EQ(all, text);
  // The stop string is cut out with everything after it.
  ChoiceText stopped(tok->get(), {}, {"\xe6\x9d\xb1\xe4\xba\xac"}, false, true);
  std::string shown;
  for (int32_t id : ids) shown += stopped.Add(id);
  shown += stopped.Finish();
  EXPECT_TRUE(stopped.stopped());
  EXPECT_EQ(shown, "Caf\xc3\xa9 na\xc3\xafve ");
  // An EOS id never makes text.
  ChoiceText eos(tok->get(), {ids[0]}, {}, false, false);
  EXPECT_EQ(eos.Add(ids[0]), "");
}

}  // namespace
}  // namespace moe::gateway
