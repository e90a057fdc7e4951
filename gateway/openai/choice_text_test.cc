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
