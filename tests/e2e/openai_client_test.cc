// End to end: `moe up` (scheduler, an expert service, an attention worker, the gateway) on a
// copy of the golden tiny-mixtral F32 model with a ChatML chat template, driven by the official
// `openai` npm client (tests/npm, openai@6) from openai_client.mjs: models.list, completions and
// chat completions streamed and not, n = 2, stop strings, logprobs, seed reproducibility,
// include_usage, error classes for invalid requests, and golden texts and echo log-probabilities;
// the curl example moe up prints works as printed.
// Skips if node or the npm packages are missing. Every process is stopped by pid.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/integration/gateway_fixture.h"
#include "tests/testing/child_process.h"
#include "tests/testing/command.h"

namespace moe {
namespace {

TEST(OpenAiClientE2eTest, OfficialClientAgainstMoeUp) {
  const std::string npm = std::string(MOE_SOURCE_DIR) + "/tests/npm/node_modules";
  const std::string openai = npm + "/openai/index.mjs";
  if (std::system("command -v node > /dev/null 2>&1") != 0 || !std::filesystem::exists(openai)) {
    GTEST_SKIP() << "node or tests/npm/node_modules/openai is missing";
  }
  test_util::ChatModelDir model;
  test_util::ChildProcess up({test_util::MoeBin(), "up", "--model", model.dir(), "--port", "0",
                              "--experts", "1", "--log-level", "warn"});
  // moe up prints a curl example before "listening on": it must work as printed.
  const std::string curl = up.WaitForLine("  curl http://", std::chrono::seconds(120));
  ASSERT_FALSE(curl.empty()) << "moe up printed no curl example";
  const std::string addr = up.WaitForLine("listening on ", std::chrono::seconds(10));
  ASSERT_FALSE(addr.empty()) << "moe up did not start";
  if (std::system("command -v curl > /dev/null 2>&1") == 0) {
    const test_util::CommandResult c =
        test_util::RunCommand("curl -s --max-time 60 http://" + curl + " 2>&1");
    const std::string& reply = c.output;
    EXPECT_EQ(c.exit_code, 0) << reply;
    // The example samples (OpenAI's default temperature, no seed): it may draw EOS before its
    // 16 tokens, and then says so.
    const nlohmann::json j = nlohmann::json::parse(reply, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(j.is_object()) << reply;
    EXPECT_EQ(j.value("object", ""), "text_completion") << reply;
    const int tokens = j.value("usage", nlohmann::json::object()).value("completion_tokens", -1);
    EXPECT_GE(tokens, 1) << reply;
    EXPECT_LE(tokens, 16) << reply;
    const nlohmann::json choices = j.value("choices", nlohmann::json::array());
    ASSERT_EQ(choices.size(), 1u) << reply;
    EXPECT_EQ(choices[0].value("finish_reason", ""), tokens == 16 ? "length" : "stop") << reply;
  }
  const std::string cmd = "MOE_BASE_URL=http://" + addr +
                          "/v1 MOE_MODEL=hf-f32 MOE_GOLDEN=" + test_util::GoldenMixtral() +
                          "/expected-f32.json OPENAI_MODULE=" + openai + " timeout 150 node " +
                          std::string(MOE_SOURCE_DIR) + "/tests/e2e/openai_client.mjs 2>&1";
  const test_util::CommandResult run = test_util::RunCommand(cmd);
  const std::string& out = run.output;
  std::printf("%s", out.c_str());
  EXPECT_EQ(run.exit_code, 0) << out;
  EXPECT_NE(out.find("ALL OK"), std::string::npos) << out;
  EXPECT_EQ(out.find("FAIL"), std::string::npos) << out;
  EXPECT_EQ(up.Stop(), 0);
}

}  // namespace
}  // namespace moe
