// Compares our tokenizer with @huggingface/tokenizers (the JavaScript port of HF tokenizers,
// pinned in tests/npm/package-lock.json) on a corpus of 200+ strings, for every golden
// tokenizer.json and for the inline SentencePiece-style one. Runs node through popen; skips
// when node or tests/npm/node_modules is missing (scripts/install-deps.sh installs both).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/file.h"
#include "model/tokenizer/tokenizer.h"
#include "model/tokenizer/tokenizer_test_util.h"
#include "tests/testing/command.h"

namespace moe::model {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const std::string kNpmDir = std::string(MOE_SOURCE_DIR) + "/tests/npm";
const std::string kCorpus =
    std::string(MOE_SOURCE_DIR) + "/model/tokenizer/testdata/tokenizer_corpus.json";

// Runs a shell command; returns its stdout and sets *exit_code.
std::string RunCommand(const std::string& command, int* exit_code) {
  test_util::CommandResult r = test_util::RunCommand(command);
  *exit_code = r.exit_code;
  return r.output;
}

std::string Quote(const std::string& s) { return "'" + s + "'"; }

class NpmReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int code = 0;
    node_ = RunCommand("command -v node", &code);
    while (!node_.empty() && (node_.back() == '\n' || node_.back() == '\r')) node_.pop_back();
    if (code != 0 || node_.empty())
      GTEST_SKIP() << "node is not installed (scripts/install-deps.sh)";
    if (!fs::exists(kNpmDir + "/node_modules/@huggingface/tokenizers/package.json")) {
      GTEST_SKIP() << "tests/npm/node_modules is missing: run scripts/install-deps.sh "
                      "(npm ci in tests/npm)";
    }
    corpus_ = json::parse(ReadFile(kCorpus).value_or(""), nullptr, false);
    ASSERT_TRUE(corpus_.is_array()) << kCorpus;
    ASSERT_GE(corpus_.size(), 200u);
  }

  // Runs the JS tokenizer on the corpus and compares ids and decoded text with ours.
  void Compare(const std::string& tokenizer_path, const std::string& config_path) {
    auto tokenizer = Tokenizer::FromFile(tokenizer_path);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    const Tokenizer& tok = **tokenizer;
    const fs::path stderr_path = fs::temp_directory_path() /
                                 ("moe_npm_tokenizer_stderr_" + std::to_string(getpid()) + ".txt");
    int code = 0;
    const std::string out = RunCommand(
        Quote(node_) + " " + Quote(kNpmDir + "/hf_tokenize.mjs") + " " + Quote(tokenizer_path) +
            " " + Quote(config_path) + " " + Quote(kCorpus) + " 2>" + Quote(stderr_path.string()),
        &code);
    ASSERT_EQ(code, 0) << "node failed: " << ReadFile(stderr_path.string()).value_or("");
    const json reference = json::parse(out, nullptr, false);
    ASSERT_TRUE(reference.is_array()) << out.substr(0, 500);
    ASSERT_EQ(reference.size(), corpus_.size());
    int mismatches = 0;
    for (size_t i = 0; i < corpus_.size(); ++i) {
      const std::string text = corpus_[i].get<std::string>();
      const auto ids = reference[i].at("ids").get<std::vector<int32_t>>();
      const auto plain = reference[i].at("plain").get<std::vector<int32_t>>();
      const std::string decoded = reference[i].at("decoded").get<std::string>();
      const bool ok = tok.Encode(text, true) == ids && tok.Encode(text, false) == plain &&
                      tok.Decode(plain) == decoded;
      if (!ok && ++mismatches <= 5) {
        ADD_FAILURE() << "corpus[" << i << "] " << json(text).dump()
                      << "\n  js ids:   " << json(ids).dump()
                      << "\n  our ids:  " << json(tok.Encode(text)).dump()
                      << "\n  js text:  " << json(decoded).dump()
                      << "\n  our text: " << json(tok.Decode(plain)).dump();
      }
    }
    EXPECT_EQ(mismatches, 0) << "of " << corpus_.size() << " strings for " << tokenizer_path;
  }

  std::string node_;
  json corpus_;
};

TEST_F(NpmReferenceTest, GoldenByteLevelTokenizers) {
  for (const std::string& dir : testing::GoldenModelDirs()) {
    SCOPED_TRACE(dir);
    Compare(dir + "/tokenizer.json", dir + "/tokenizer_config.json");
  }
}

TEST_F(NpmReferenceTest, SentencePieceStyleTokenizer) {
  const fs::path path =
      fs::temp_directory_path() / ("moe_npm_sentencepiece_" + std::to_string(getpid()) + ".json");
  std::ofstream(path) << testing::SentencePieceStyleTokenizerJson();
  Compare(path.string(), "-");
  fs::remove(path);
}

TEST_F(NpmReferenceTest, MetaspacePreTokenizerTokenizer) {
  const fs::path path =
      fs::temp_directory_path() / ("moe_npm_metaspace_" + std::to_string(getpid()) + ".json");
  std::ofstream(path) << testing::MetaspaceStyleTokenizerJson();
  Compare(path.string(), "-");
  fs::remove(path);
}

TEST_F(NpmReferenceTest, Qwen2StyleSplitRegexNfcAndSequencePostProcessor) {
  const std::string json =
      testing::Qwen2StyleTokenizerJson(testing::GoldenModelDirs()[0] + "/tokenizer.json");
  ASSERT_FALSE(json.empty());
  const fs::path path =
      fs::temp_directory_path() / ("moe_npm_qwen2style_" + std::to_string(getpid()) + ".json");
  std::ofstream(path) << json;
  Compare(path.string(), "-");
  fs::remove(path);
}

}  // namespace
}  // namespace moe::model
