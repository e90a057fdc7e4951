#include <cstdlib>
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>

#include "common/clock.h"
#include "common/flags.h"
#include "common/grpc_status.h"
#include "common/metrics.h"
#include "common/status.h"

namespace moe {
namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  MOE_ASSIGN_OR_RETURN(int h, Half(x));
  MOE_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::Status CheckEven(int x) {
  MOE_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusMacros, PropagateErrorsAndValues) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(3).message(), "odd");
}

TEST(GrpcStatus, EveryCodeRoundTrips) {
  for (int c = 1; c <= 16; ++c) {
    absl::Status s(static_cast<absl::StatusCode>(c), "msg");
    grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), c);
    EXPECT_EQ(g.error_message(), "msg");
    EXPECT_EQ(FromGrpcStatus(g), s);
  }
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(FakeClock, MovesOnlyWhenTold) {
  FakeClock clock;
  absl::Time t0 = clock.Now();
  EXPECT_EQ(clock.Now(), t0);
  clock.Advance(absl::Seconds(3));
  EXPECT_EQ(clock.Now() - t0, absl::Seconds(3));
}

TEST(Flags, EnvironmentTwinAndCommandLinePrecedence) {
  std::string model = "default";
  int64_t port = 1;
  double temp = 0.5;
  bool json = false;
  FlagSet flags("moe test", "testing");
  flags.AddString("model", &model, "m");
  flags.AddInt("admin-port", &port, "p");
  flags.AddDouble("temperature", &temp, "t");
  flags.AddBool("json", &json, "j");
  const char* argv[] = {"--model", "/x", "--temperature=0.25", "--json", "pos"};
  auto env = [](const char* name) -> const char* {
    if (std::string(name) == "MOE_ADMIN_PORT") return "9001";
    if (std::string(name) == "MOE_MODEL") return "/from-env";
    return nullptr;
  };
  ASSERT_TRUE(flags.Parse(5, argv, env).ok());
  EXPECT_EQ(model, "/x");  // command line beats environment
  EXPECT_EQ(port, 9001);   // environment twin
  EXPECT_DOUBLE_EQ(temp, 0.25);
  EXPECT_TRUE(json);
  EXPECT_EQ(flags.positional(), std::vector<std::string>{"pos"});
  EXPECT_EQ(FlagSet::EnvName("admin-port"), "MOE_ADMIN_PORT");
  EXPECT_NE(flags.Usage().find("--admin-port"), std::string::npos);
}

TEST(Flags, EnvSwitchIsOnUnlessSetToZero) {
  const char* name = "MOE_TEST_ENV_SWITCH";
  unsetenv(name);
  EXPECT_TRUE(EnvSwitchOn(name));
  setenv(name, "1", 1);
  EXPECT_TRUE(EnvSwitchOn(name));
  setenv(name, "0", 1);
  EXPECT_FALSE(EnvSwitchOn(name));
  unsetenv(name);
}

TEST(Flags, EnvIntTakesOnlyIntegersInRange) {
  const char* name = "MOE_TEST_ENV_INT";
  unsetenv(name);
  EXPECT_EQ(EnvInt(name, 7, 0, 100), 7);
  for (const auto& [value, want] : std::vector<std::pair<const char*, int64_t>>{
           {"42", 42}, {"0", 0}, {"100", 100}, {"", 7}, {"-1", 7}, {"101", 7}, {"12x", 7},
           {"x", 7}, {"99999999999999999999999", 7}}) {
    setenv(name, value, 1);
    EXPECT_EQ(EnvInt(name, 7, 0, 100), want) << "'" << value << "'";
  }
  unsetenv(name);
}

TEST(Flags, BadInputIsAnError) {
  int64_t n = 0;
  bool b = true;
  FlagSet flags("moe test", "testing");
  flags.AddInt("n", &n, "n");
  flags.AddBool("b", &b, "b");
  auto noenv = [](const char*) -> const char* { return nullptr; };
  const char* unknown[] = {"--nope"};
  EXPECT_EQ(flags.Parse(1, unknown, noenv).code(), absl::StatusCode::kInvalidArgument);
  const char* notint[] = {"--n", "abc"};
  EXPECT_EQ(flags.Parse(2, notint, noenv).code(), absl::StatusCode::kInvalidArgument);
  const char* missing[] = {"--n"};
  EXPECT_EQ(flags.Parse(1, missing, noenv).code(), absl::StatusCode::kInvalidArgument);
  const char* neg[] = {"--no-b"};
  ASSERT_TRUE(flags.Parse(1, neg, noenv).ok());
  EXPECT_FALSE(b);
}

// GET path from the admin server with a plain Beast client.
std::pair<int, std::string> Get(int port, const std::string& path) {
  namespace http = boost::beast::http;
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  http::request<http::empty_body> req(http::verb::get, path, 11);
  req.set(http::field::host, "127.0.0.1");
  http::write(socket, req);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  return {res.result_int(), res.body()};
}

TEST(AdminServer, ServesMetricsHealthReady) {
  prometheus::Registry registry;
  auto& family = prometheus::BuildCounter().Name("moe_test_total").Help("t").Register(registry);
  family.Add({{"kind", "a"}}).Increment(3);
  std::atomic<bool> ready{false};
  AdminServerOptions options;
  options.registry = &registry;
  options.ready = [&] { return ready.load(); };
  auto server = AdminServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  int port = (*server)->port();
  ASSERT_GT(port, 0);
  auto [code, body] = Get(port, "/metrics");
  EXPECT_EQ(code, 200);
  EXPECT_NE(body.find("moe_test_total{kind=\"a\"} 3"), std::string::npos) << body;
  EXPECT_EQ(Get(port, "/health").first, 200);
  EXPECT_EQ(Get(port, "/ready").first, 503);
  ready = true;
  EXPECT_EQ(Get(port, "/ready").first, 200);
  EXPECT_EQ(Get(port, "/nope").first, 404);
  (*server)->Stop();
}

}  // namespace
}  // namespace moe
