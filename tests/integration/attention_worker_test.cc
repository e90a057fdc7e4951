// Integration: the real `moe attention` binary ($MOE_BIN) on 127.0.0.1 with run-time ports, on
// the golden tiny models, with experts in its process or in 2 real `moe expert` processes
// (round-robin placement over gRPC). Greedy Generate streams the golden tokens;
// bad requests get INVALID_ARGUMENT; a cancelled call frees its sequence and the worker keeps
// serving. The process is stopped by pid in every path.
#include <algorithm>
#include <fstream>
#include <thread>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "moe/attention/v1/attention.grpc.pb.h"
#include "tests/testing/child_process.h"

namespace moe {
namespace {

namespace v1 = ::moe::attention::v1;
using test_util::ChildProcess;
using test_util::MoeBin;
using test_util::PortOf;

struct Param {
  std::string model;
  int expert_services;  // 0: experts in the attention worker's process
};

class AttentionWorkerTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    dir_ = std::string(MOE_GOLDEN_DIR) + "/" + GetParam().model;
    std::vector<std::string> args = {MoeBin(), "attention", "--model", dir_ + "/hf-f32",
                                     "--host", "127.0.0.1", "--port", "0", "--admin-port", "0",
                                     "--log-level", "warn"};
    const int n = GetParam().expert_services;
    if (n > 0) {
      std::string addrs;
      for (int i = 0; i < n; ++i) {
        experts_.push_back(std::make_unique<ChildProcess>(std::vector<std::string>{
            MoeBin(), "expert", "--model", dir_ + "/hf-f32", "--host", "127.0.0.1", "--port",
            "0", "--admin-port", "0", "--log-level", "warn", "--experts",
            "round-robin:" + std::to_string(i) + "/" + std::to_string(n) + "/1"}));
        std::string listen = experts_.back()->WaitForLine("listening on ", std::chrono::seconds(60));
        ASSERT_FALSE(listen.empty()) << "moe expert " << i << " did not start";
        addrs += (i ? "," : "") + listen;
      }
      args.insert(args.end(), {"--experts", "remote", "--expert-addrs", addrs});
    }
    process_ = std::make_unique<ChildProcess>(args);
    std::string listen = process_->WaitForLine("listening on ", std::chrono::seconds(60));
    ASSERT_FALSE(listen.empty()) << "moe attention did not start";
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(PortOf(listen)),
                                       grpc::InsecureChannelCredentials());
    stub_ = v1::AttentionService::NewStub(channel);
  }
  void TearDown() override {
    // Close our channel first: the server's graceful shutdown otherwise waits out its deadline
    // (5 s) for the idle client connection.
    stub_.reset();
    EXPECT_EQ(process_->Stop(), 0);
    for (auto& e : experts_) EXPECT_EQ(e->Stop(), 0);
  }

  // Runs one Generate call to the end; returns the status and all streamed messages.
  grpc::Status Generate(const v1::GenerateRequest& req, std::vector<v1::GenerateResponse>* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub_->Generate(&ctx, req);
    v1::GenerateResponse resp;
    while (reader->Read(&resp)) out->push_back(resp);
    return reader->Finish();
  }

  std::string dir_;
  std::vector<std::unique_ptr<ChildProcess>> experts_;
  std::unique_ptr<ChildProcess> process_;
  std::unique_ptr<v1::AttentionService::Stub> stub_;
};

TEST_P(AttentionWorkerTest, GreedyGenerateStreamsGoldenTokens) {
  std::ifstream in(dir_ + "/expected-f32.json");
  nlohmann::json expected = nlohmann::json::parse(in);
  for (const auto& c : expected["cases"]) {
    v1::GenerateRequest req;
    for (int id : c["prompt_ids"]) req.add_prompt_ids(id);
    req.mutable_sampling()->set_temperature(0);
    req.mutable_sampling()->set_max_tokens(expected["n_gen"].get<int>());
    req.mutable_sampling()->set_logprobs(2);
    std::vector<v1::GenerateResponse> msgs;
    grpc::Status st = Generate(req, &msgs);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_FALSE(msgs.empty());
    std::vector<int> ids;
    for (const auto& m : msgs) {
      for (const auto& t : m.tokens()) {
        ids.push_back(t.id());
        ASSERT_EQ(t.top_size(), 2);
        EXPECT_EQ(t.top(0).id(), t.id());
      }
    }
    std::vector<int> want = c["completion_ids"].get<std::vector<int>>();
    EXPECT_EQ(ids, want) << c["prompt"];
    const auto& last = msgs.back();
    EXPECT_EQ(last.finish_reason(), c["stop_type"] == "eos" ? "stop" : "length");
    EXPECT_EQ(last.completion_tokens(), static_cast<int>(want.size()));
    EXPECT_EQ(last.prompt_tokens(), static_cast<int>(c["prompt_ids"].size()));
    // First step's logprob equals the golden one (F32) within 1e-4.
    EXPECT_NEAR(msgs.front().tokens(0).logprob(), c["steps"][0]["logprob"].get<double>(), 1e-4);
  }
}

TEST_P(AttentionWorkerTest, BadRequestsAreInvalidArgument) {
  std::vector<v1::GenerateResponse> msgs;
  v1::GenerateRequest empty;
  empty.mutable_sampling()->set_max_tokens(4);
  EXPECT_EQ(Generate(empty, &msgs).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::GenerateRequest oov;
  oov.add_prompt_ids(1);
  oov.add_prompt_ids(100000);
  oov.mutable_sampling()->set_max_tokens(4);
  EXPECT_EQ(Generate(oov, &msgs).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::GenerateRequest no_tokens;
  no_tokens.add_prompt_ids(1);
  EXPECT_EQ(Generate(no_tokens, &msgs).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::GenerateRequest bad_temp;
  bad_temp.add_prompt_ids(1);
  bad_temp.mutable_sampling()->set_max_tokens(4);
  bad_temp.mutable_sampling()->set_temperature(-1);
  EXPECT_EQ(Generate(bad_temp, &msgs).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(msgs.empty());
}

TEST_P(AttentionWorkerTest, CancelFreesTheSequenceAndServingContinues) {
  v1::GenerateRequest req;
  req.add_prompt_ids(3);
  req.add_prompt_ids(4);
  req.mutable_sampling()->set_temperature(0);
  req.mutable_sampling()->set_max_tokens(400);
  req.mutable_sampling()->set_ignore_eos(true);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub_->Generate(&ctx, req);
    v1::GenerateResponse resp;
    ASSERT_TRUE(reader->Read(&resp));
    ctx.TryCancel();
    while (reader->Read(&resp)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The worker drops the sequence (bounded wait) and still serves.
  v1::GetLoadResponse load;
  for (int i = 0; i < 200; ++i) {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->GetLoad(&ctx, {}, &load).ok());
    if (load.running() == 0 && load.waiting() == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(load.running(), 0);
  EXPECT_EQ(load.kv_cache_usage(), 0.0f);
  req.mutable_sampling()->set_max_tokens(3);
  std::vector<v1::GenerateResponse> msgs;
  ASSERT_TRUE(Generate(req, &msgs).ok());
  EXPECT_EQ(msgs.back().completion_tokens(), 3);
}

INSTANTIATE_TEST_SUITE_P(Golden, AttentionWorkerTest,
                         ::testing::Values(Param{"tiny-mixtral", 0}, Param{"tiny-qwen3moe", 0},
                                           Param{"tiny-mixtral", 2}, Param{"tiny-qwen3moe", 2}),
                         [](const auto& info) {
                           std::string s = info.param.model + "_experts" +
                                           std::to_string(info.param.expert_services);
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

}  // namespace
}  // namespace moe
