// Runs the real `moe demo-model` and `moe inspect` (binary in $MOE_BIN) end to end.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/testing/command.h"

namespace {

using ::testing::HasSubstr;

using Result = ::moe::test_util::CommandResult;
using ::moe::test_util::RunMoe;

class ModelToolsCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "moe_cli_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(ModelToolsCliTest, DemoModelThenInspect) {
  Result w = RunMoe("demo-model --out " + dir_ + "/m --preset tiny --arch qwen2moe --seed 5");
  ASSERT_EQ(w.exit_code, 0) << w.output;
  EXPECT_THAT(w.output, HasSubstr("Qwen2MoeForCausalLM"));
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json",
                        "tokenizer_config.json", "generation_config.json"}) {
    EXPECT_TRUE(std::filesystem::exists(dir_ + "/m/" + f)) << f;
  }
  Result r = RunMoe("inspect --model " + dir_ + "/m");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("Qwen2MoeForCausalLM: 4 layers (4 MoE), hidden 64"));
  EXPECT_THAT(r.output, HasSubstr("shared expert 256"));
  EXPECT_THAT(r.output, HasSubstr("BF16"));
  EXPECT_THAT(r.output, HasSubstr("tensor check: all"));
  EXPECT_THAT(r.output, HasSubstr("tokenizer: vocabulary 512"));
}

TEST_F(ModelToolsCliTest, InspectFindsWeightsThatDoNotMatchTheConfig) {
  ASSERT_EQ(RunMoe("demo-model --out " + dir_ + " --arch mixtral --dtype f32").exit_code, 0);
  // Claim 16 experts: the weights only hold 8.
  const std::string path = dir_ + "/config.json";
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(path));
  cfg["num_local_experts"] = 16;
  std::ofstream(path, std::ios::trunc) << cfg.dump();
  Result r = RunMoe("inspect --model " + dir_);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("F32"));
  EXPECT_THAT(r.output,
              HasSubstr("missing tensor model.layers.0.block_sparse_moe.experts.8.w1.weight"));
  EXPECT_THAT(r.output, HasSubstr("[16, 64]"));  // the router's shape disagrees too
}

TEST_F(ModelToolsCliTest, UsageErrors) {
  EXPECT_EQ(RunMoe("demo-model").exit_code, 2);  // --out missing
  Result r = RunMoe("demo-model --out " + dir_ + " --preset bench-finegrained --arch mixtral");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("qwen3moe"));
  EXPECT_EQ(RunMoe("demo-model --out " + dir_ + " --preset huge").exit_code, 2);
  EXPECT_EQ(RunMoe("demo-model --out " + dir_ + " --dtype int4").exit_code, 2);
  EXPECT_EQ(RunMoe("inspect").exit_code, 2);
  Result missing = RunMoe("inspect --model " + dir_ + "/nothing-here");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.output, HasSubstr("config.json"));
  EXPECT_EQ(RunMoe("demo-model --help").exit_code, 0);
}

}  // namespace
