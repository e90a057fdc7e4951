// Integration: the single-process Engine with its routed experts in real `moe expert`
// processes ($MOE_BIN) on 127.0.0.1 (run-time ports), reached through GrpcExpertTransport and
// RemoteExpertExecutor with a StaticPlacement. On the golden tiny-mixtral and tiny-qwen3moe F32
// models, greedy generation on every golden prompt gives the same tokens (and logprobs within
// 1e-5) as LocalModel; with 3 instances and replication 2, SIGKILLing one expert process in the
// middle of generation fails no request and the failover counter increases. Every process is
// stopped by pid (ChildProcess's destructor); every wait is bounded.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/testing/child_process.h"
#include <nlohmann/json.hpp>

#include "attention_service/dispatch/grpc_transport.h"
#include "attention_service/dispatch/placement.h"
#include "attention_service/dispatch/remote_expert_executor.h"
#include "attention_service/engine/engine.h"
#include "attention_service/engine/local_model.h"
#include "attention_service/engine/model_runner.h"
#include "common/metrics.h"
#include "model/arch/architecture.h"
#include "model/config.h"
#include "model/safetensors.h"

namespace moe::attention {
namespace {

using Clock = std::chrono::steady_clock;

using ::moe::test_util::ChildProcess;
using ::moe::test_util::MoeBin;

struct Generated {
  std::vector<int32_t> ids;
  std::vector<float> logprobs;
  FinishReason finish = FinishReason::kNone;
};

std::vector<std::vector<int32_t>> GoldenPrompts(const std::string& model, int* n_gen) {
  std::ifstream in(std::string(MOE_GOLDEN_DIR) + "/" + model + "/expected-f32.json");
  EXPECT_TRUE(in.good()) << model;
  std::vector<std::vector<int32_t>> prompts;
  if (!in.good()) return prompts;
  const nlohmann::json j = nlohmann::json::parse(in);
  *n_gen = j.at("n_gen").get<int>();
  for (const auto& c : j.at("cases")) prompts.push_back(c.at("prompt_ids").get<std::vector<int32_t>>());
  return prompts;
}

// Greedy generation of every prompt together; `between_steps(step)` runs before each step.
std::map<SeqId, Generated> Generate(Engine* engine, const std::vector<std::vector<int32_t>>& prompts,
                                    int max_tokens,
                                    const std::function<void(int)>& between_steps = nullptr) {
  for (size_t i = 0; i < prompts.size(); ++i) {
    SequenceRequest r;
    r.prompt = prompts[i];
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    r.sampling.return_logprob = true;
    r.ignore_eos = true;
    EXPECT_TRUE(engine->Add(static_cast<SeqId>(i), r).ok());
  }
  std::map<SeqId, Generated> out;
  for (int step = 0; step < 10000 && engine->HasWork(); ++step) {
    if (between_steps) between_steps(step);
    auto ups = engine->Step();
    EXPECT_TRUE(ups.ok()) << ups.status();
    if (!ups.ok()) break;
    for (const SequenceUpdate& u : *ups) {
      EXPECT_TRUE(u.error.ok()) << "sequence " << u.id << ": " << u.error;
      for (const GeneratedToken& t : u.tokens) {
        out[u.id].ids.push_back(t.id);
        out[u.id].logprobs.push_back(t.logprob);
      }
      if (u.finish != FinishReason::kNone) out[u.id].finish = u.finish;
    }
  }
  return out;
}

double FailoverMetric() {
  const std::string text = RenderMetrics(MetricsRegistry());
  const std::string name = "moe_failovers_total ";
  const size_t pos = text.find("\n" + name);
  return pos == std::string::npos ? -1 : std::atof(text.c_str() + pos + 1 + name.size());
}

class RemoteDispatchTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::string Dir() const { return std::string(MOE_GOLDEN_DIR) + "/" + GetParam() + "/hf-f32"; }

  // Starts `n` expert services per a round-robin placement with `replication`; fills
  // placement_, processes_, addresses_.
  void StartExperts(int n, int replication) {
    auto config = model::LoadModelConfig(Dir());
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    auto p = StaticPlacement::RoundRobin(config_, n, replication);
    ASSERT_TRUE(p.ok()) << p.status();
    placement_ = std::make_unique<StaticPlacement>(*p);
    processes_.clear();
    addresses_.clear();
    for (int i = 0; i < n; ++i) {
      const std::string experts = placement_->ExpertList(i);
      ASSERT_FALSE(experts.empty());
      processes_.push_back(std::make_unique<ChildProcess>(std::vector<std::string>{
          MoeBin(), "expert", "--model", Dir(), "--host", "127.0.0.1", "--port", "0",
          "--admin-port", "0", "--experts", experts, "--threads", "1", "--scheduler",
          "127.0.0.1:1", "--log-level", "warn"}));
    }
    for (int i = 0; i < n; ++i) {
      const std::string listen =
          processes_[i]->WaitForLine("listening on ", std::chrono::seconds(60));
      ASSERT_FALSE(listen.empty()) << "moe expert " << i << " did not report its port";
      addresses_.push_back(listen);
    }
  }

  // A ModelRunner over the dense weights only.
  void LoadDense() {
    auto arch = model::CreateArchitecture(config_);
    ASSERT_TRUE(arch.ok()) << arch.status();
    arch_ = std::move(*arch);
    auto dense = model::WeightStore::Open(Dir(), ModelRunner::IsDenseTensor);
    ASSERT_TRUE(dense.ok()) << dense.status();
    auto runner = ModelRunner::Load(config_, *arch_, **dense);
    ASSERT_TRUE(runner.ok()) << runner.status();
    runner_ = std::move(*runner);
  }

  std::map<SeqId, Generated> Reference(const std::vector<std::vector<int32_t>>& prompts,
                                       int max_tokens) {
    auto local = LocalModel::Open(Dir());
    EXPECT_TRUE(local.ok()) << local.status();
    if (!local.ok()) return {};
    auto engine = (*local)->NewEngine(EngineOptions{});
    EXPECT_TRUE(engine.ok()) << engine.status();
    if (!engine.ok()) return {};
    return Generate(engine->get(), prompts, max_tokens);
  }

  static void ExpectSame(const std::map<SeqId, Generated>& want,
                         const std::map<SeqId, Generated>& got, size_t num_prompts,
                         int max_tokens) {
    ASSERT_EQ(want.size(), num_prompts);
    ASSERT_EQ(got.size(), num_prompts);
    for (const auto& [id, w] : want) {
      const Generated& g = got.at(id);
      ASSERT_EQ(w.ids.size(), static_cast<size_t>(max_tokens));
      EXPECT_EQ(g.finish, FinishReason::kLength) << "sequence " << id;
      EXPECT_EQ(g.ids, w.ids) << "sequence " << id;
      ASSERT_EQ(g.logprobs.size(), w.logprobs.size());
      for (size_t t = 0; t < w.logprobs.size(); ++t) {
        EXPECT_NEAR(g.logprobs[t], w.logprobs[t], 1e-5) << "sequence " << id << " token " << t;
      }
    }
  }

  model::ModelConfig config_;
  std::unique_ptr<model::ModelArchitecture> arch_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<StaticPlacement> placement_;
  std::vector<std::unique_ptr<ChildProcess>> processes_;
  std::vector<std::string> addresses_;
};

TEST_P(RemoteDispatchTest, TwoExpertServicesMatchLocalModel) {
  int n_gen = 0;
  const auto prompts = GoldenPrompts(GetParam(), &n_gen);
  ASSERT_FALSE(prompts.empty());
  ASSERT_GT(n_gen, 0);
  const auto want = Reference(prompts, n_gen);
  StartExperts(2, 1);
  ASSERT_NO_FATAL_FAILURE(LoadDense());
  GrpcExpertTransport transport;
  RemoteExpertExecutor remote(placement_.get(), addresses_, &transport);
  auto engine = Engine::Create(EngineOptions{}, runner_.get(), &remote);
  ASSERT_TRUE(engine.ok()) << engine.status();
  const auto got = Generate(engine->get(), prompts, n_gen);
  ExpectSame(want, got, prompts.size(), n_gen);
  EXPECT_EQ(remote.failovers(), 0);
}

TEST_P(RemoteDispatchTest, SigkillOneOfThreeWithReplicationTwoFailsNoRequest) {
  int n_gen = 0;
  const auto prompts = GoldenPrompts(GetParam(), &n_gen);
  ASSERT_FALSE(prompts.empty());
  const auto want = Reference(prompts, n_gen);
  StartExperts(3, 2);
  ASSERT_NO_FATAL_FAILURE(LoadDense());
  GrpcExpertTransport transport;
  RemoteExecutorOptions options;
  options.timeout = absl::Seconds(20);
  RemoteExpertExecutor remote(placement_.get(), addresses_, &transport, options);
  auto engine = Engine::Create(EngineOptions{}, runner_.get(), &remote);
  ASSERT_TRUE(engine.ok()) << engine.status();
  const double metric_before = FailoverMetric();
  bool killed = false;
  const auto got = Generate(engine->get(), prompts, n_gen, [&](int step) {
    // Step 0 is the prefill; kill after a few decode steps, well before the end.
    if (step == 4) {
      processes_[1]->Kill();
      killed = true;
    }
  });
  ASSERT_TRUE(killed);
  ExpectSame(want, got, prompts.size(), n_gen);
  EXPECT_GT(remote.failovers(), 0);
  EXPECT_GT(FailoverMetric(), metric_before);
}

// A hung (SIGSTOPped) instance: its calls hit the dispatch deadline (DEADLINE_EXCEEDED) and
// are resent to the replicas; no request fails.
TEST_P(RemoteDispatchTest, HungInstanceHitsDeadlineAndFailsOver) {
  int n_gen = 0;
  const auto prompts = GoldenPrompts(GetParam(), &n_gen);
  ASSERT_FALSE(prompts.empty());
  const auto want = Reference(prompts, n_gen);
  StartExperts(3, 2);
  ASSERT_NO_FATAL_FAILURE(LoadDense());
  GrpcExpertTransport transport;
  RemoteExecutorOptions options;
  options.timeout = absl::Seconds(3);
  options.unhealthy_for = absl::Seconds(60);  // one deadline wait per run, not one per 5 s
  RemoteExpertExecutor remote(placement_.get(), addresses_, &transport, options);
  auto engine = Engine::Create(EngineOptions{}, runner_.get(), &remote);
  ASSERT_TRUE(engine.ok()) << engine.status();
  const auto got = Generate(engine->get(), prompts, n_gen, [&](int step) {
    if (step == 3) processes_[2]->Pause();
  });
  ExpectSame(want, got, prompts.size(), n_gen);
  EXPECT_GT(remote.failovers(), 0);
}

INSTANTIATE_TEST_SUITE_P(Golden, RemoteDispatchTest,
                         ::testing::Values("tiny-mixtral", "tiny-qwen3moe"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s) {
                             if (c == '-') c = '_';
                           }
                           return s;
                         });

}  // namespace
}  // namespace moe::attention
