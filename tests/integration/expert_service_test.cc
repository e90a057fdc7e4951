// Integration: the real `moe expert` binary ($MOE_BIN) on 127.0.0.1 with run-time ports, on a
// tiny F32 demo model. Malformed Forward calls get the right gRPC codes and the service keeps
// answering; a correct call matches a local CPU backend on the same weights; health and
// /metrics answer. Every process started is stopped (ChildProcess's destructor).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <gtest/gtest.h>

#include "expert_service/backend/expert_backend.h"
#include "model/arch/architecture.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "moe/expert/v1/expert.grpc.pb.h"
#include "tests/testing/child_process.h"
#include "tests/testing/http_client.h"

namespace moe {
namespace {

namespace v1 = ::moe::expert::v1;
namespace cv1 = ::moe::common::v1;
using Clock = std::chrono::steady_clock;
using ::moe::test_util::ChildProcess;
using ::moe::test_util::MoeBin;
using ::moe::test_util::PortOf;


// GET `path` on 127.0.0.1:`port`; the response body ("" on failure).
std::string HttpGet(int port, const std::string& path) {
  try {
    return test_util::Request(port, test_util::http::verb::get, path).body;
  } catch (const std::exception&) {
    return "";
  }
}

// Sum of the samples of `metric` whose labels contain every one of `labels`.
double MetricValue(const std::string& text, const std::string& metric,
                   const std::vector<std::string>& labels) {
  double sum = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind(metric + "{", 0) != 0 && line.rfind(metric + " ", 0) != 0) continue;
    bool all = true;
    for (const std::string& l : labels) all = all && line.find(l) != std::string::npos;
    if (all) sum += std::atof(line.c_str() + line.rfind(' ') + 1);
  }
  return sum;
}

// The expert service on a tiny demo model, shared by the tests of this file.
class ExpertServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/moe_expert_itest_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = new std::string(tmpl);
    const std::string cmd = MoeBin() + " demo-model --preset tiny --arch mixtral --dtype f32 --out " +
                            *dir_ + " --threads 1 > /dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    // Experts 0:0, 0:1 and 1:3 only: 0:2 is in range but not loaded here.
    process_ = new ChildProcess({MoeBin(), "expert", "--model", *dir_, "--host", "127.0.0.1",
                                 "--port", "0", "--admin-port", "0", "--experts", "0:0,0:1,1:3",
                                 "--threads", "1", "--max-tokens", "256", "--max-message-mb",
                                 "1", "--scheduler", "127.0.0.1:1", "--log-level", "warn"});
    const std::string listen = process_->WaitForLine("listening on ", std::chrono::seconds(60));
    const std::string admin = process_->WaitForLine("admin on ", std::chrono::seconds(10));
    ASSERT_FALSE(listen.empty()) << "moe expert did not report its port";
    port_ = PortOf(listen);
    admin_port_ = PortOf(admin);
    ASSERT_GT(port_, 0);
    ASSERT_GT(admin_port_, 0);
  }
  static void TearDownTestSuite() {
    if (process_ != nullptr) {
      EXPECT_EQ(process_->Stop(), 0) << "graceful SIGTERM shutdown exits 0";
      delete process_;
      process_ = nullptr;
    }
    if (dir_ != nullptr) {
      std::filesystem::remove_all(*dir_);
      delete dir_;
    }
  }

  void SetUp() override {
    ASSERT_GT(port_, 0);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(64 << 20);
    channel_ = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port_),
                                         grpc::InsecureChannelCredentials(), args);
    stub_ = v1::ExpertService::NewStub(channel_);
    auto config = model::LoadModelConfig(*dir_);
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    hidden_ = config_.hidden_size;
  }

  grpc::Status Call(const v1::ComputeRequest& req, v1::ComputeResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->Forward(&ctx, req, resp);
  }

  std::vector<float> Activations(int tokens, uint32_t seed) const {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0, 1);
    std::vector<float> v(static_cast<size_t>(tokens) * hidden_);
    for (float& x : v) x = d(rng);
    return v;
  }

  static void SetF32(const std::vector<float>& v, std::vector<int64_t> shape, cv1::Tensor* t) {
    t->set_dtype(cv1::DTYPE_F32);
    for (int64_t s : shape) t->add_shape(s);
    t->set_data(reinterpret_cast<const char*>(v.data()), v.size() * 4);
  }

  v1::ComputeRequest Request(int layer, int expert, const std::vector<float>& x) const {
    v1::ComputeRequest req;
    req.set_layer(layer);
    v1::Shard* s = req.add_shards();
    s->set_expert(expert);
    SetF32(x, {static_cast<int64_t>(x.size()) / hidden_, hidden_}, s->mutable_hidden());
    return req;
  }

  // The same expert on a local CPU backend loaded from the same files.
  std::vector<float> Reference(int layer, int expert, const std::vector<float>& x) const {
    auto arch = model::CreateArchitecture(config_);
    EXPECT_TRUE(arch.ok());
    const model::ExpertTensorNames n = (*arch)->ExpertNames(layer, expert);
    auto store = model::WeightStore::Open(*dir_);
    EXPECT_TRUE(store.ok());
    auto ref = [&](const std::string& name) {
      auto t = (*store)->Get(name);
      EXPECT_TRUE(t.ok()) << t.status();
      return expert::WeightRef{t->dtype, t->shape, t->data};
    };
    expert::ExpertWeights w{layer, expert, ref(n.gate), ref(n.up), ref(n.down)};
    auto backend = expert::CreateExpertBackend("cpu", expert::BackendOptions{});
    EXPECT_TRUE(backend.ok());
    EXPECT_TRUE((*backend)->Load({&w, 1}).ok());
    std::vector<float> out(x.size());
    expert::ExpertShard shard{expert, static_cast<int>(x.size() / hidden_), x.data(), out.data()};
    EXPECT_TRUE((*backend)->Run(layer, {&shard, 1}).ok());
    return out;
  }

  // A correct request still succeeds (after every malformed one).
  void ExpectStillServing() {
    v1::ComputeResponse resp;
    grpc::Status s = Call(Request(0, 1, Activations(2, 99)), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.outputs_size(), 1);
  }

  void ExpectCode(const v1::ComputeRequest& req, grpc::StatusCode code, const char* what) {
    v1::ComputeResponse resp;
    grpc::Status s = Call(req, &resp);
    EXPECT_EQ(s.error_code(), code) << what << ": " << s.error_message();
    ExpectStillServing();
  }

  static std::string* dir_;
  static ChildProcess* process_;
  static int port_;
  static int admin_port_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ExpertService::Stub> stub_;
  model::ModelConfig config_;
  int64_t hidden_ = 0;
};

std::string* ExpertServiceTest::dir_ = nullptr;
ChildProcess* ExpertServiceTest::process_ = nullptr;
int ExpertServiceTest::port_ = 0;
int ExpertServiceTest::admin_port_ = 0;

TEST_F(ExpertServiceTest, CorrectRequestMatchesLocalCpuBackend) {
  const std::vector<float> x0 = Activations(5, 1), x1 = Activations(3, 2);
  v1::ComputeRequest req = Request(0, 0, x0);
  v1::Shard* s = req.add_shards();
  s->set_expert(1);
  SetF32(x1, {3, hidden_}, s->mutable_hidden());
  v1::ComputeResponse resp;
  grpc::Status st = Call(req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.outputs_size(), 2);
  const std::vector<std::vector<float>> want = {Reference(0, 0, x0), Reference(0, 1, x1)};
  for (int i = 0; i < 2; ++i) {
    const cv1::Tensor& out = resp.outputs(i);
    ASSERT_EQ(out.dtype(), cv1::DTYPE_F32);
    ASSERT_EQ(out.shape_size(), 2);
    EXPECT_EQ(out.shape(1), hidden_);
    ASSERT_EQ(out.data().size(), want[i].size() * 4);
    std::vector<float> got(want[i].size());
    std::memcpy(got.data(), out.data().data(), out.data().size());
    double max_abs = 0;
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_NEAR(got[k], want[i][k], 1e-6) << "shard " << i << " element " << k;
      max_abs = std::max(max_abs, std::abs(static_cast<double>(want[i][k])));
    }
    EXPECT_GT(max_abs, 1e-3) << "reference output is not trivially zero";
  }
}

TEST_F(ExpertServiceTest, CombineMatchesWeightedSumOfLocalOutputs) {
  const std::vector<float> x = Activations(3, 3);
  const std::vector<float> w0 = {0.5f, 0.25f, 1.0f}, w1 = {0.5f, 0.75f, -2.0f};
  const std::vector<int32_t> rows = {1, 2, 0};
  v1::ComputeRequest req;
  req.set_layer(0);
  req.set_combine(true);
  req.set_combined_rows(3);
  for (auto [e, w] : {std::pair{0, &w0}, std::pair{1, &w1}}) {
    v1::Shard* s = req.add_shards();
    s->set_expert(e);
    SetF32(x, {3, hidden_}, s->mutable_hidden());
    SetF32(*w, {3}, s->mutable_weights());
    s->mutable_rows()->set_dtype(cv1::DTYPE_I32);
    s->mutable_rows()->add_shape(3);
    s->mutable_rows()->set_data(reinterpret_cast<const char*>(rows.data()), 12);
  }
  v1::ComputeResponse resp;
  grpc::Status st = Call(req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.combined().data().size(), 3u * hidden_ * 4);
  std::vector<float> got(3 * hidden_);
  std::memcpy(got.data(), resp.combined().data().data(), got.size() * 4);
  const std::vector<float> y0 = Reference(0, 0, x), y1 = Reference(0, 1, x);
  for (int t = 0; t < 3; ++t) {
    for (int64_t k = 0; k < hidden_; ++k) {
      const double want = double(w0[t]) * y0[t * hidden_ + k] + double(w1[t]) * y1[t * hidden_ + k];
      EXPECT_NEAR(got[rows[t] * hidden_ + k], want, 1e-5);
    }
  }
}

TEST_F(ExpertServiceTest, MalformedRequestsGetErrorCodesAndServiceKeepsServing) {
  using C = grpc::StatusCode;
  const std::vector<float> x = Activations(4, 5);
  v1::ComputeRequest r = Request(0, 0, x);
  r.mutable_shards(0)->mutable_hidden()->mutable_data()->resize(x.size() * 4 - 4);
  ExpectCode(r, C::INVALID_ARGUMENT, "wrong byte size");
  r = Request(0, 0, x);
  r.mutable_shards(0)->mutable_hidden()->mutable_data()->resize(x.size() * 2);
  ExpectCode(r, C::INVALID_ARGUMENT, "truncated bytes");
  r = Request(0, 0, x);
  r.mutable_shards(0)->mutable_hidden()->mutable_data()->append(8, '\0');
  ExpectCode(r, C::INVALID_ARGUMENT, "trailing bytes");
  r = Request(0, 0, x);
  r.mutable_shards(0)->mutable_hidden()->set_shape(1, hidden_ + 1);
  ExpectCode(r, C::INVALID_ARGUMENT, "wrong hidden size");
  r = Request(0, 0, x);
  r.mutable_shards(0)->mutable_hidden()->add_shape(1);
  ExpectCode(r, C::INVALID_ARGUMENT, "rank 3");
  r = Request(config_.num_hidden_layers, 0, x);
  ExpectCode(r, C::INVALID_ARGUMENT, "unknown layer");
  r = Request(-1, 0, x);
  ExpectCode(r, C::INVALID_ARGUMENT, "negative layer");
  r = Request(0, config_.num_experts, x);
  ExpectCode(r, C::INVALID_ARGUMENT, "unknown expert");
  r = Request(0, -3, x);
  ExpectCode(r, C::INVALID_ARGUMENT, "negative expert");
  r = Request(0, 2, x);
  ExpectCode(r, C::FAILED_PRECONDITION, "expert in range but not loaded here");
  r = Request(1, 0, x);
  ExpectCode(r, C::FAILED_PRECONDITION, "layer 1 expert 0 not loaded here");
  r = Request(0, 0, x);
  r.mutable_shards(0)->mutable_hidden()->set_shape(0, -4);
  ExpectCode(r, C::INVALID_ARGUMENT, "negative token count");
  r = Request(0, 0, x);
  r.mutable_shards(0)->mutable_hidden()->set_shape(0, int64_t{1} << 40);
  ExpectCode(r, C::INVALID_ARGUMENT, "huge token count");
  r = Request(0, 0, x);
  r.mutable_shards(0)->mutable_hidden()->set_shape(0, std::numeric_limits<int64_t>::max());
  ExpectCode(r, C::INVALID_ARGUMENT, "int64 max token count");
  r = Request(0, 0, x);
  r.mutable_shards(0)->mutable_hidden()->set_dtype(static_cast<cv1::DType>(77));
  ExpectCode(r, C::INVALID_ARGUMENT, "unknown dtype");
  r = Request(0, 0, x);
  r.mutable_shards(0)->mutable_hidden()->set_dtype(cv1::DTYPE_UNSPECIFIED);
  ExpectCode(r, C::INVALID_ARGUMENT, "unspecified dtype");
  r = Request(0, 0, x);
  r.mutable_shards(0)->mutable_hidden()->set_dtype(cv1::DTYPE_I64);
  ExpectCode(r, C::INVALID_ARGUMENT, "integer activations");
  r = Request(0, 0, x);
  r.mutable_shards(0)->clear_hidden();
  ExpectCode(r, C::INVALID_ARGUMENT, "missing hidden");
  ExpectCode(v1::ComputeRequest(), C::INVALID_ARGUMENT, "empty request");
  // Combine with rows out of range, and without weights.
  r = Request(0, 0, x);
  r.set_combine(true);
  r.set_combined_rows(4);
  ExpectCode(r, C::INVALID_ARGUMENT, "combine without weights");
  const std::vector<float> w(4, 1.0f);
  SetF32(w, {4}, r.mutable_shards(0)->mutable_weights());
  const std::vector<int32_t> rows = {0, 1, 4, 2};
  cv1::Tensor* rt = r.mutable_shards(0)->mutable_rows();
  rt->set_dtype(cv1::DTYPE_I32);
  rt->add_shape(4);
  rt->set_data(reinterpret_cast<const char*>(rows.data()), 16);
  ExpectCode(r, C::INVALID_ARGUMENT, "row out of range");
  const std::vector<int32_t> neg = {0, -1, 1, 2};
  rt->set_data(reinterpret_cast<const char*>(neg.data()), 16);
  ExpectCode(r, C::INVALID_ARGUMENT, "negative row");
  rt->set_data(reinterpret_cast<const char*>(neg.data()), 12);
  ExpectCode(r, C::INVALID_ARGUMENT, "truncated rows");
  r.set_combined_rows(-1);
  ExpectCode(r, C::INVALID_ARGUMENT, "negative combined_rows");
  // More tokens than --max-tokens 256 in total (each shard alone is fine).
  const std::vector<float> big = Activations(200, 6);
  r = Request(0, 0, big);
  *r.add_shards() = r.shards(0);
  ExpectCode(r, C::INVALID_ARGUMENT, "too many tokens per request");
  // Past --max-message-mb 1: refused by gRPC before it reaches the service.
  const int over_limit_tokens = static_cast<int>((1 << 20) / (hidden_ * 4)) + 16;
  r = Request(0, 0, Activations(over_limit_tokens, 7));
  ASSERT_GT(r.ByteSizeLong(), 1u << 20);
  ExpectCode(r, C::RESOURCE_EXHAUSTED, "message over the size limit");
}

TEST_F(ExpertServiceTest, HealthIsServingAndMetricsCountTokens) {
  // grpc.health.v1.Health/Check with an empty HealthCheckRequest; the response must be
  // HealthCheckResponse{status: SERVING} = field 1, varint 1 = bytes 08 01.
  grpc::ByteBuffer request, response;
  grpc::Slice empty("");
  request = grpc::ByteBuffer(&empty, 1);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  const grpc::internal::RpcMethod method("/grpc.health.v1.Health/Check",
                                         grpc::internal::RpcMethod::NORMAL_RPC);
  grpc::Status s = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
      channel_.get(), method, &ctx, request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));

  EXPECT_EQ(test_util::Request(admin_port_, test_util::http::verb::get, "/ready").status, 200);
  const double before = MetricValue(HttpGet(admin_port_, "/metrics"), "moe_expert_tokens_total",
                                    {"layer=\"1\"", "expert=\"3\""});
  v1::ComputeResponse resp;
  ASSERT_TRUE(Call(Request(1, 3, Activations(7, 8)), &resp).ok());
  const std::string metrics = HttpGet(admin_port_, "/metrics");
  EXPECT_EQ(MetricValue(metrics, "moe_expert_tokens_total", {"layer=\"1\"", "expert=\"3\""}),
            before + 7);
  EXPECT_GE(MetricValue(metrics, "moe_expert_batch_tokens_count", {}), 1);
  EXPECT_GT(MetricValue(metrics, "moe_expert_compute_seconds_sum", {}), 0);
  EXPECT_NE(metrics.find("moe_expert_queue_depth"), std::string::npos);
}

TEST_F(ExpertServiceTest, LoadExpertsAddsAnExpertAtRunTime) {
  v1::ComputeResponse resp;
  const std::vector<float> x = Activations(2, 11);
  // Layer 1, expert 2 is not loaded at start.
  EXPECT_EQ(Call(Request(1, 2, x), &resp).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  v1::LoadExpertsRequest load;
  load.set_epoch(1);
  v1::ExpertId* id = load.add_load();
  id->set_layer(1);
  id->set_expert(2);
  v1::LoadExpertsResponse loaded;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::Status s = stub_->LoadExperts(&ctx, load, &loaded);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(loaded.epoch(), 1);
  resp.Clear();
  ASSERT_TRUE(Call(Request(1, 2, x), &resp).ok());
  const std::vector<float> want = Reference(1, 2, x);
  ASSERT_EQ(resp.outputs(0).data().size(), want.size() * 4);
  std::vector<float> got(want.size());
  std::memcpy(got.data(), resp.outputs(0).data().data(), got.size() * 4);
  for (size_t k = 0; k < got.size(); ++k) EXPECT_NEAR(got[k], want[k], 1e-6);

  grpc::ClientContext dctx;
  v1::DescribeResponse d;
  ASSERT_TRUE(stub_->Describe(&dctx, v1::DescribeRequest(), &d).ok());
  EXPECT_EQ(d.backend(), "cpu");
  EXPECT_EQ(d.applied_epoch(), 1);
  EXPECT_EQ(d.experts_size(), 4);  // 0:0 0:1 1:3 + 1:2

  // An unknown expert in LoadExperts is refused and changes nothing.
  v1::LoadExpertsRequest bad;
  id = bad.add_load();
  id->set_layer(99);
  grpc::ClientContext bctx;
  EXPECT_EQ(stub_->LoadExperts(&bctx, bad, &loaded).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ExpectStillServing();
}

}  // namespace
}  // namespace moe
