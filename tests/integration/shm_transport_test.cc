// Integration: the shared-memory data plane against a real `moe expert` process ($MOE_BIN) on
// 127.0.0.1 (run-time ports) serving a tiny F32 demo model:
// - ShmExpertTransport's outputs equal GrpcExpertTransport's byte for byte (same service);
// - garbage and invalid requests written into a slot get error statuses while the service
//   keeps serving shm and gRPC; a client process that dies with a request in flight does not
//   hurt the service;
// - `moe attention --experts remote --transport shm` generates the same tokens as
//   `--transport grpc`;
// - a stopped (SIGSTOP) expert process gives DEADLINE_EXCEEDED, a killed one an error, both
//   within the dispatch timeout (no hang).
// Every process started is stopped by pid (ChildProcess); every wait is bounded.
#include "attention_service/dispatch/shm_transport.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "attention_service/dispatch/grpc_transport.h"
#include "common/shm_ring.h"
#include "model/config.h"
#include "moe/attention/v1/attention.grpc.pb.h"
#include "moe/expert/v1/expert.grpc.pb.h"
#include "tests/testing/child_process.h"
#include "tests/testing/http_client.h"

namespace moe::attention {
namespace {

namespace v1 = ::moe::expert::v1;
namespace cv1 = ::moe::common::v1;
namespace av1 = ::moe::attention::v1;
using Clock = std::chrono::steady_clock;
using ::moe::test_util::ChildProcess;
using ::moe::test_util::MoeBin;
using ::moe::test_util::PortOf;

std::unique_ptr<ChildProcess> StartExpert(const std::string& dir, int* port,
                                          int* admin_port = nullptr) {
  auto p = std::make_unique<ChildProcess>(std::vector<std::string>{
      MoeBin(), "expert", "--model", dir, "--host", "127.0.0.1", "--port", "0", "--admin-port", "0",
      "--experts", "all", "--threads", "1", "--log-level", "warn"});
  *port = PortOf(p->WaitForLine("listening on ", std::chrono::seconds(60)));
  const int admin = PortOf(p->WaitForLine("admin on ", std::chrono::seconds(10)));
  if (admin_port != nullptr) *admin_port = admin;
  return p;
}

// The value of the unlabelled gauge `name` in the expert's /metrics (-1 if absent).
double Gauge(int admin_port, const std::string& name) {
  std::string text;
  try {
    text = test_util::Request(admin_port, test_util::http::verb::get, "/metrics").body;
  } catch (const std::exception&) {
    return -1;
  }
  const size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::atof(text.c_str() + at + name.size() + 2);
}

class ShmIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/moe_shm_itest_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = new std::string(tmpl);
    const std::string cmd = MoeBin() +
                            " demo-model --preset tiny --arch mixtral --dtype f32 --out " + *dir_ +
                            " --threads 1 > /dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    expert_ = StartExpert(*dir_, &port_, &admin_port_).release();
    ASSERT_GT(port_, 0) << "moe expert did not report its port";
  }
  static void TearDownTestSuite() {
    if (expert_ != nullptr) {
      EXPECT_EQ(expert_->Stop(), 0) << "graceful SIGTERM shutdown exits 0";
      delete expert_;
      expert_ = nullptr;
    }
    if (dir_ != nullptr) {
      std::filesystem::remove_all(*dir_);
      delete dir_;
    }
  }

  void SetUp() override {
    ASSERT_GT(port_, 0);
    auto config = model::LoadModelConfig(*dir_);
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    address_ = "127.0.0.1:" + std::to_string(port_);
    stub_ = v1::ExpertService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }

  // Layer `layer`'s request with `tokens` random tokens for each expert of `experts`;
  // combined (weights and rows) or per shard.
  v1::ComputeRequest Request(int layer, const std::vector<int>& experts, int tokens, bool combine,
                             uint32_t seed) const {
    const int hidden = config_.hidden_size;
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0, 1);
    v1::ComputeRequest req;
    req.set_layer(layer);
    req.set_combine(combine);
    if (combine) req.set_combined_rows(tokens);
    for (int e : experts) {
      v1::Shard* s = req.add_shards();
      s->set_expert(e);
      cv1::Tensor* h = s->mutable_hidden();
      h->set_dtype(cv1::DTYPE_F32);
      h->add_shape(tokens);
      h->add_shape(hidden);
      std::vector<float> x(static_cast<size_t>(tokens) * hidden);
      for (float& v : x) v = d(rng);
      h->set_data(reinterpret_cast<const char*>(x.data()), x.size() * 4);
      if (!combine) continue;
      cv1::Tensor* w = s->mutable_weights();
      w->set_dtype(cv1::DTYPE_F32);
      w->add_shape(tokens);
      cv1::Tensor* r = s->mutable_rows();
      r->set_dtype(cv1::DTYPE_I32);
      r->add_shape(tokens);
      for (int t = 0; t < tokens; ++t) {
        const float wt = 0.5f / static_cast<float>(1 + (t + e) % 3);
        const int32_t row = (t * 5 + e) % tokens;
        w->mutable_data()->append(reinterpret_cast<const char*>(&wt), 4);
        r->mutable_data()->append(reinterpret_cast<const char*>(&row), 4);
      }
    }
    return req;
  }

  std::vector<ExpertCall> Calls(const std::vector<v1::ComputeRequest>& reqs,
                                const std::string& address) const {
    std::vector<ExpertCall> calls(reqs.size());
    for (size_t i = 0; i < reqs.size(); ++i) {
      calls[i].instance = address;
      calls[i].request = reqs[i];
    }
    return calls;
  }

  // Every layer: 1-token and 64-token combined shards, and a per-shard request.
  std::vector<v1::ComputeRequest> Workload() const {
    std::vector<v1::ComputeRequest> reqs;
    const int experts = config_.num_experts;
    for (int l = 0; l < config_.num_hidden_layers; ++l) {
      reqs.push_back(Request(l, {l % experts}, 1, true, 10 + l));
      reqs.push_back(Request(l, {0, experts - 1}, 64, true, 20 + l));
      reqs.push_back(Request(l, {1 % experts}, 5, false, 30 + l));
    }
    return reqs;
  }

  // A correct call over shm and one over gRPC both succeed.
  void ExpectStillServing() {
    const std::vector<v1::ComputeRequest> reqs = {Request(0, {0}, 3, true, 99)};
    ShmExpertTransport shm;
    EXPECT_TRUE(shm.UsesShm(address_));
    std::vector<ExpertCall> a = Calls(reqs, address_);
    shm.ForwardAll(absl::MakeSpan(a), absl::Seconds(30));
    EXPECT_TRUE(a[0].status.ok()) << a[0].status;
    GrpcExpertTransport grpc;
    std::vector<ExpertCall> b = Calls(reqs, address_);
    grpc.ForwardAll(absl::MakeSpan(b), absl::Seconds(30));
    EXPECT_TRUE(b[0].status.ok()) << b[0].status;
    EXPECT_EQ(a[0].response.SerializeAsString(), b[0].response.SerializeAsString());
  }

  // Negotiates `ring` with the service directly (what ShmExpertTransport does).
  grpc::Status Open(const shm::ShmRing& ring) {
    v1::OpenShmRequest req;
    req.set_name(ring.name());
    req.set_slot_count(ring.slots());
    req.set_slot_bytes(ring.slot_bytes());
    req.set_nonce(ring.nonce());
    v1::OpenShmResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->OpenShm(&ctx, req, &resp);
  }

  static std::string* dir_;
  static ChildProcess* expert_;
  static int port_;
  static int admin_port_;
  model::ModelConfig config_;
  std::string address_;
  std::unique_ptr<v1::ExpertService::Stub> stub_;
};

std::string* ShmIntegrationTest::dir_ = nullptr;
ChildProcess* ShmIntegrationTest::expert_ = nullptr;
int ShmIntegrationTest::port_ = 0;
int ShmIntegrationTest::admin_port_ = 0;

TEST_F(ShmIntegrationTest, OutputsEqualTheGrpcTransports) {
  const std::vector<v1::ComputeRequest> reqs = Workload();
  GrpcExpertTransport grpc;
  std::vector<ExpertCall> want = Calls(reqs, address_);
  grpc.ForwardAll(absl::MakeSpan(want), absl::Seconds(60));
  ShmTransportOptions o;
  o.slots = static_cast<uint32_t>(reqs.size());  // every call of one ForwardAll gets a slot
  ShmExpertTransport shm(o);
  ASSERT_TRUE(shm.UsesShm(address_)) << "same host: negotiation must succeed";
  for (int round = 0; round < 2; ++round) {
    std::vector<ExpertCall> got = Calls(reqs, address_);
    shm.ForwardAll(absl::MakeSpan(got), absl::Seconds(60));
    for (size_t i = 0; i < reqs.size(); ++i) {
      ASSERT_TRUE(want[i].status.ok()) << want[i].status;
      ASSERT_TRUE(got[i].status.ok()) << i << ": " << got[i].status;
      EXPECT_EQ(got[i].response.SerializeAsString(), want[i].response.SerializeAsString()) << i;
    }
  }
  EXPECT_EQ(shm.shm_calls(), 2 * static_cast<int64_t>(reqs.size()));
  EXPECT_EQ(shm.grpc_calls(), 0);
  EXPECT_GE(Gauge(admin_port_, "moe_expert_shm_segments"), 1) << "this client's segment";
  // Errors are the same too (expert out of range: INVALID_ARGUMENT).
  std::vector<v1::ComputeRequest> bad = {Request(0, {config_.num_experts}, 1, true, 1)};
  std::vector<ExpertCall> bad_grpc = Calls(bad, address_), bad_shm = Calls(bad, address_);
  grpc.ForwardAll(absl::MakeSpan(bad_grpc), absl::Seconds(30));
  shm.ForwardAll(absl::MakeSpan(bad_shm), absl::Seconds(30));
  EXPECT_EQ(bad_grpc[0].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad_shm[0].status, bad_grpc[0].status);
}

// Two threads share one transport (as two micro-batches do), with fewer slots than calls in
// flight: every output still equals gRPC's.
TEST_F(ShmIntegrationTest, TwoThreadsShareOneTransport) {
  const std::vector<v1::ComputeRequest> reqs = {Request(0, {1}, 1, true, 41),
                                                Request(2, {0, 3}, 16, true, 42),
                                                Request(3, {2}, 9, false, 43)};
  GrpcExpertTransport grpc;
  std::vector<ExpertCall> want = Calls(reqs, address_);
  grpc.ForwardAll(absl::MakeSpan(want), absl::Seconds(60));
  ShmTransportOptions o;
  o.slots = 4;
  ShmExpertTransport shm(o);
  ASSERT_TRUE(shm.UsesShm(address_));
  auto lane = [&] {
    for (int i = 0; i < 100; ++i) {
      std::vector<ExpertCall> got = Calls(reqs, address_);
      shm.ForwardAll(absl::MakeSpan(got), absl::Seconds(60));
      for (size_t k = 0; k < reqs.size(); ++k) {
        ASSERT_TRUE(got[k].status.ok()) << got[k].status;
        ASSERT_EQ(got[k].response.SerializeAsString(), want[k].response.SerializeAsString());
      }
    }
  };
  std::thread a(lane), b(lane);
  a.join();
  b.join();
  EXPECT_GT(shm.shm_calls(), 0);
  EXPECT_EQ(shm.shm_calls() + shm.grpc_calls(), 2 * 100 * static_cast<int64_t>(reqs.size()));
}

TEST_F(ShmIntegrationTest, MalformedSlotDataIsAnErrorAndTheServiceKeepsServing) {
  auto ring = shm::ShmRing::Create(2, 1 << 16);
  ASSERT_TRUE(ring.ok()) << ring.status();
  ASSERT_TRUE(Open(**ring).ok());
  (*ring)->Unlink();
  auto post = [&](const std::string& bytes) -> absl::StatusOr<shm::SlotResponse> {
    const int slot = (*ring)->TryClaim();
    EXPECT_GE(slot, 0);
    std::memcpy((*ring)->payload(slot), bytes.data(), bytes.size());
    (*ring)->Post(slot, bytes.size(), absl::Now() + absl::Seconds(30));
    absl::Status s = (*ring)->AwaitResponse(slot, absl::Now() + absl::Seconds(30));
    if (!s.ok()) return s;
    auto r = (*ring)->ReadResponse(slot);
    (*ring)->Release(slot);  // (the tests only look at code and flags after this)
    return r;
  };
  // Not a protobuf at all.
  auto r = post(std::string(300, '\xff'));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->code, absl::StatusCode::kInvalidArgument);
  // A protobuf whose tensor bytes do not match its shape.
  v1::ComputeRequest bad = Request(0, {0}, 2, true, 1);
  bad.mutable_shards(0)->mutable_hidden()->mutable_data()->resize(12);
  r = post(bad.SerializeAsString());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->code, absl::StatusCode::kInvalidArgument);
  // An empty payload: a request with no shards.
  r = post("");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(r->code, absl::StatusCode::kOk);
  // A valid one through the same raw ring.
  v1::ComputeRequest good = Request(1, {2}, 4, true, 2);
  r = post(good.SerializeAsString());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->code, absl::StatusCode::kOk);
  v1::ComputeResponse resp;
  EXPECT_TRUE(resp.ParseFromArray(r->payload.data(), static_cast<int>(r->payload.size())));
  EXPECT_EQ(resp.combined().shape_size(), 2);
  ExpectStillServing();
}

TEST_F(ShmIntegrationTest, AClientThatDiesDoesNotHurtTheService) {
  // A forked client creates a segment and posts a request, the parent negotiates it for the
  // child (no gRPC in the forked child), then the child is SIGKILLed.
  int to_parent[2];
  ASSERT_EQ(pipe(to_parent), 0);
  const std::string request = Request(0, {1}, 8, true, 7).SerializeAsString();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(to_parent[0]);
    auto ring = shm::ShmRing::Create(4, 1 << 16);
    if (!ring.ok()) _exit(3);
    for (int i = 0; i < 3; ++i) {
      const int slot = (*ring)->TryClaim();
      std::memcpy((*ring)->payload(slot), request.data(), request.size());
      (*ring)->Post(slot, request.size(), absl::InfiniteFuture());
    }
    const std::string line = (*ring)->name() + " " + std::to_string((*ring)->nonce()) + "\n";
    if (write(to_parent[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      _exit(4);
    }
    for (;;) pause();
  }
  close(to_parent[1]);
  std::string line;
  char c;
  while (read(to_parent[0], &c, 1) == 1 && c != '\n') line += c;
  close(to_parent[0]);
  ASSERT_NE(line.find(' '), std::string::npos);
  const std::string name = line.substr(0, line.find(' '));
  v1::OpenShmRequest req;
  req.set_name(name);
  req.set_slot_count(4);
  req.set_slot_bytes(1 << 16);
  req.set_nonce(std::stoull(line.substr(line.find(' ') + 1)));
  v1::OpenShmResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  const grpc::Status opened = stub_->OpenShm(&ctx, req, &resp);
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  shm_unlink(name.c_str());  // the killed client could not
  ASSERT_TRUE(opened.ok()) << opened.error_message();
  ExpectStillServing();
  // A wrong nonce or a missing segment is refused, not served.
  req.set_nonce(req.nonce() + 1);
  grpc::ClientContext ctx2;
  EXPECT_EQ(stub_->OpenShm(&ctx2, req, &resp).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ExpectStillServing();
  // Every client of this service is gone now (killed, or closed its segment): the service
  // stops serving their segments (bounded wait).
  const auto until = Clock::now() + std::chrono::seconds(10);
  while (Gauge(admin_port_, "moe_expert_shm_segments") != 0 && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(Gauge(admin_port_, "moe_expert_shm_segments"), 0);
}

// The flag end to end: `moe attention --experts remote --transport shm` generates exactly what
// `--transport grpc` does (greedy, same expert service).
TEST_F(ShmIntegrationTest, AttentionWorkerOverShmMatchesGrpc) {
  auto generate = [&](const std::string& transport) {
    std::vector<int> ids;
    ChildProcess worker({MoeBin(),         "attention", "--model",     *dir_,
                         "--host",         "127.0.0.1", "--port",      "0",
                         "--admin-port",   "0",         "--experts",   "remote",
                         "--expert-addrs", address_,    "--transport", transport,
                         "--threads",      "1",         "--log-level", "warn"});
    const int port = PortOf(worker.WaitForLine("listening on ", std::chrono::seconds(60)));
    EXPECT_GT(port, 0) << transport;
    if (port <= 0) return ids;
    auto stub = av1::AttentionService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
    av1::GenerateRequest req;
    for (int id : {1, 5, 9, 2, 7}) req.add_prompt_ids(id);
    req.mutable_sampling()->set_temperature(0);
    req.mutable_sampling()->set_max_tokens(12);
    req.mutable_sampling()->set_ignore_eos(true);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    auto reader = stub->Generate(&ctx, req);
    av1::GenerateResponse resp;
    while (reader->Read(&resp)) {
      for (const auto& t : resp.tokens()) ids.push_back(t.id());
    }
    const grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << transport << ": " << s.error_message();
    EXPECT_EQ(worker.Stop(), 0) << transport;
    return ids;
  };
  const std::vector<int> over_grpc = generate("grpc");
  const std::vector<int> over_shm = generate("shm");
  EXPECT_EQ(over_grpc.size(), 12u);
  EXPECT_EQ(over_shm, over_grpc);
}

// Its own expert process: stopped, then killed. ForwardAll returns within its timeout.
TEST_F(ShmIntegrationTest, AStoppedOrKilledServiceIsAnErrorWithinTheTimeout) {
  int port = 0;
  std::unique_ptr<ChildProcess> victim = StartExpert(*dir_, &port);
  ASSERT_GT(port, 0);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  ShmExpertTransport shm;
  ASSERT_TRUE(shm.UsesShm(address));
  const std::vector<v1::ComputeRequest> reqs = {Request(0, {0}, 4, true, 3)};
  std::vector<ExpertCall> calls = Calls(reqs, address);
  shm.ForwardAll(absl::MakeSpan(calls), absl::Seconds(30));
  ASSERT_TRUE(calls[0].status.ok()) << calls[0].status;

  victim->Pause();  // SIGSTOP: alive but silent
  calls = Calls(reqs, address);
  auto start = Clock::now();
  shm.ForwardAll(absl::MakeSpan(calls), absl::Milliseconds(500));
  EXPECT_EQ(calls[0].status.code(), absl::StatusCode::kDeadlineExceeded) << calls[0].status;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5)) << "bounded by the timeout";

  victim->Kill();
  calls = Calls(reqs, address);
  start = Clock::now();
  shm.ForwardAll(absl::MakeSpan(calls), absl::Seconds(3));
  EXPECT_FALSE(calls[0].status.ok());
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(8)) << "bounded by the timeout";

  // A call in flight when the process dies: post it to a stopped process, then kill it.
  int port2 = 0;
  std::unique_ptr<ChildProcess> victim2 = StartExpert(*dir_, &port2);
  ASSERT_GT(port2, 0);
  const std::string address2 = "127.0.0.1:" + std::to_string(port2);
  ASSERT_TRUE(shm.UsesShm(address2));
  victim2->Pause();
  calls = Calls(reqs, address2);
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    victim2->Kill();
  });
  start = Clock::now();
  shm.ForwardAll(absl::MakeSpan(calls), absl::Seconds(60));
  killer.join();
  EXPECT_EQ(calls[0].status.code(), absl::StatusCode::kUnavailable) << calls[0].status;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(30))
      << "noticed the death long before the 60 s timeout";
}

}  // namespace
}  // namespace moe::attention
