// Runs `moe place` (the real binary, $MOE_BIN) on small trace files and checks the printed
// figures, the written plan and the errors on bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "scheduler/placement/plan.h"
#include "tests/testing/command.h"

namespace {

using Result = ::moe::test_util::CommandResult;
using ::moe::test_util::RunMoe;

class PlaceCliTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moe_place_cli_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::string Read(const std::string& name) {
    std::ifstream in(dir_ + "/" + name);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // The whitespace-separated fields of the output line that starts with `solver`.
  static std::vector<std::string> Row(const std::string& output, const std::string& solver) {
    std::istringstream lines(output);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream fields(line);
      std::vector<std::string> f;
      for (std::string w; fields >> w;) f.push_back(w);
      if (!f.empty() && f[0] == solver) return f;
    }
    return {};
  }
  std::string dir_;
};

// 2 layers x 2 experts, equal load; tokens of 0:0 go on to 1:1 and of 0:1 to 1:0. Greedy puts
// expert e of both layers on instance e, so every transition crosses; the ILP swaps layer 1.
constexpr char kTrace[] = R"({"layers": 2, "experts": 2, "top_k": 1, "bytes_per_expert": 1000,
  "load": [[10, 10], [10, 10]], "coact": [[0, 0, 1, 10], [0, 1, 0, 10]]})";

TEST_F(PlaceCliTest, GreedyVsIlpFigures) {
  const std::string trace = Write("trace.json", kTrace);
  Result r = RunMoe("place --trace " + trace +
                    " --instances 2 --solver both --time-limit 5 --out " + dir_ + "/plan.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // solver max_load mean_load balance cross/token copies moved bytes_moved cost seconds
  std::vector<std::string> g = Row(r.output, "greedy"), ilp = Row(r.output, "ilp-cbc");
  ASSERT_EQ(g.size(), 10u) << r.output;
  ASSERT_EQ(ilp.size(), 10u) << r.output;
  EXPECT_EQ(g[1], "10.0");
  EXPECT_EQ(g[2], "10.0");
  EXPECT_EQ(g[3], "1.000");
  EXPECT_EQ(g[4], "1.000") << "all 20 transitions cross, 20 tokens";
  EXPECT_EQ(g[8], "30.0") << "20 load + 0.5 * 20 cross";
  EXPECT_EQ(ilp[1], "10.0") << "max load no worse";
  EXPECT_EQ(ilp[4], "0.000") << r.output;
  EXPECT_EQ(ilp[8], "20.0");
  absl::StatusOr<moe::scheduler::PlacementPlan> plan =
      moe::scheduler::PlanFromJson(Read("plan.json"));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->At(1, 1)[0].instance, plan->At(0, 0)[0].instance);
  EXPECT_EQ(plan->At(1, 0)[0].instance, plan->At(0, 1)[0].instance);

  // Re-plan from the greedy plan: moving 2 copies costs mu each. Automatic mu (10 per copy)
  // makes the swap (saves 10) not worth it; --mu 1 makes it worth it.
  Result g_only = RunMoe("place --trace " + trace + " --instances 2 --solver greedy --out " + dir_ +
                         "/greedy.json");
  ASSERT_EQ(g_only.exit_code, 0) << g_only.output;
  EXPECT_TRUE(Row(g_only.output, "ilp-cbc").empty());
  const std::string current = " --current " + dir_ + "/greedy.json";
  r = RunMoe("place --trace " + trace + " --instances 2" + current);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Row(r.output, "ilp-cbc")[6], "0") << r.output;
  EXPECT_EQ(Row(r.output, "ilp-cbc")[4], "1.000");
  EXPECT_NE(r.output.find("kept it"), std::string::npos) << r.output;
  r = RunMoe("place --trace " + trace + " --instances 2 --mu 1 --solver ilp-glpk" + current);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ilp = Row(r.output, "ilp-glpk");
  ASSERT_EQ(ilp.size(), 10u) << r.output;
  EXPECT_EQ(ilp[6], "2");
  EXPECT_EQ(ilp[7], "2000");
  EXPECT_EQ(ilp[8], "22.0");
}

TEST_F(PlaceCliTest, BadInputIsAUsageError) {
  const std::string trace = Write("trace.json", kTrace);
  Result r = RunMoe("place --trace " + Write("bad.json", R"({"layers": 2, "experts": 2,
      "load": [[1, 2]]})") +
                    " --instances 2");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("\"load\" must be an array of 2 rows"), std::string::npos) << r.output;
  r = RunMoe("place --trace " + Write("junk.json", "{not json") + " --instances 2");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("trace JSON"), std::string::npos) << r.output;
  r = RunMoe("place --trace " + dir_ + "/missing.json --instances 2");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("cannot read trace"), std::string::npos) << r.output;
  r = RunMoe("place --trace " + trace);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--instances must be >= 1"), std::string::npos) << r.output;
  r = RunMoe("place --trace " + trace + " --instances 2 --solver simplex");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("unknown solver"), std::string::npos) << r.output;
  r = RunMoe("place --trace " + trace + " --instances 1 --slots 3");
  EXPECT_EQ(r.exit_code, 2) << "4 experts do not fit in 3 slots";
  EXPECT_NE(r.output.find("capacity 3 copies < 4 experts"), std::string::npos) << r.output;
  r = RunMoe("place --trace " + trace + " --instances 2 --current " +
             Write("plan.json", R"({"instances": 2, "replicas": {"0:0": [[0, 0.5]]}})"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("shares sum to 0.5"), std::string::npos) << r.output;
}

}  // namespace
