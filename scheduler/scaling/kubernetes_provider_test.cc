// KubernetesProvider against a fake API server in this process (Boost.Beast on 127.0.0.1, plain
// HTTP, and HTTPS with a self-signed certificate made by the openssl CLI) that checks the exact
// requests and answers like the API server (Scale objects, Status objects on errors).
#include "scheduler/scaling/kubernetes_provider.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <utility>  // before Asio

namespace moe::scheduler {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

struct Seen {
  std::string method, target, authorization, content_type, accept, body;
};

// Answers each connection's one request with handler(request) = {status, body}.
class FakeApiServer {
 public:
  using Handler = std::function<std::pair<int, std::string>(const Seen&)>;
  explicit FakeApiServer(Handler handler, ssl::context* tls = nullptr)
      : handler_(std::move(handler)), tls_(tls), acceptor_(io_) {
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Run(); });
  }
  ~FakeApiServer() {
    stop_ = true;
    beast::error_code ec;
    tcp::socket wake(io_);
    wake.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
    thread_.join();
  }
  int port() const { return port_; }
  std::vector<Seen> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  void Run() {
    while (!stop_) {
      beast::error_code ec;
      tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (stop_) return;
      if (ec) continue;
      beast::tcp_stream stream(std::move(socket));
      stream.expires_after(std::chrono::seconds(5));
      if (tls_ == nullptr) {
        Serve(stream);
      } else {
        beast::ssl_stream<beast::tcp_stream&> s(stream, *tls_);
        s.handshake(ssl::stream_base::server, ec);
        if (!ec) Serve(s);
      }
    }
  }
  template <typename Stream>
  void Serve(Stream& stream) {
    beast::error_code ec;
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::read(stream, buffer, req, ec);
    if (ec) return;
    Seen s{std::string(req.method_string()),
           std::string(req.target()),
           std::string(req[http::field::authorization]),
           std::string(req[http::field::content_type]),
           std::string(req[http::field::accept]),
           req.body()};
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(s);
    }
    auto [status, body] = handler_(s);
    http::response<http::string_body> res(static_cast<http::status>(status), 11);
    res.set(http::field::content_type, "application/json");
    res.body() = body;
    res.prepare_payload();
    http::write(stream, res, ec);
  }

  Handler handler_;
  ssl::context* tls_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<Seen> seen_;
};

// A Scale object as the API server returns it.
std::string ScaleJson(int replicas) {
  nlohmann::json spec = nlohmann::json::object();
  if (replicas > 0) spec["replicas"] = replicas;  // omitempty
  return nlohmann::json{
      {"kind", "Scale"},
      {"apiVersion", "autoscaling/v1"},
      {"metadata", {{"name", "experts"}, {"namespace", "serving"}, {"resourceVersion", "7"}}},
      {"spec", spec},
      {"status", {{"replicas", replicas}, {"selector", "app=moe-expert"}}}}
      .dump();
}

std::string StatusJson(int code, const std::string& reason, const std::string& message) {
  return nlohmann::json{{"kind", "Status"},   {"apiVersion", "v1"}, {"status", "Failure"},
                        {"message", message}, {"reason", reason},   {"code", code}}
      .dump();
}

// A stand-in StatefulSet: GET answers its replicas, PATCH sets them.
std::pair<int, std::string> StatefulSet(int* replicas, const Seen& s) {
  if (s.method == "PATCH") {
    nlohmann::json patch = nlohmann::json::parse(s.body, nullptr, false);
    if (!patch.is_object()) return {400, StatusJson(400, "BadRequest", "bad patch")};
    *replicas = patch["spec"]["replicas"].get<int>();
  }
  return {200, ScaleJson(*replicas)};
}

constexpr char kPath[] = "/apis/apps/v1/namespaces/serving/statefulsets/experts/scale";

class KubernetesProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("moe-k8s-provider-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    Write("token", "tok-123\n");
    Write("namespace", "serving");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  KubernetesProviderOptions Options(int port) {
    KubernetesProviderOptions o;
    o.statefulset = "experts";
    o.api_server = "http://127.0.0.1:" + std::to_string(port);
    o.allow_plain_http = true;
    o.token_file = dir_ / "token";
    o.ca_file = dir_ / "ca.crt";
    o.namespace_file = dir_ / "namespace";
    o.timeout = absl::Seconds(5);
    return o;
  }
  std::unique_ptr<KubernetesProvider> Make(int port) {
    auto p = KubernetesProvider::Create(Options(port));
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }
  std::filesystem::path dir_;
};

TEST_F(KubernetesProviderTest, ReadsAndPatchesTheScaleSubresource) {
  int replicas = 3;
  FakeApiServer server([&](const Seen& s) { return StatefulSet(&replicas, s); });
  auto p = Make(server.port());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->namespace_name(), "serving");  // from the namespace file

  absl::StatusOr<int> current = p->Current();
  ASSERT_TRUE(current.ok()) << current.status();
  EXPECT_EQ(*current, 3);
  absl::StatusOr<std::string> next = p->NextToRemove();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, "experts-2");  // highest ordinal
  ASSERT_TRUE(p->ScaleTo(5).ok());
  EXPECT_EQ(replicas, 5);
  EXPECT_EQ(*p->Current(), 5);

  const std::vector<Seen> seen = server.seen();
  ASSERT_EQ(seen.size(), 4u);
  for (const Seen& s : seen) {
    EXPECT_EQ(s.target, kPath);
    EXPECT_EQ(s.authorization, "Bearer tok-123");
    EXPECT_EQ(s.accept, "application/json");
  }
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].body, "");
  EXPECT_EQ(seen[2].method, "PATCH");
  EXPECT_EQ(seen[2].content_type, "application/merge-patch+json");
  EXPECT_EQ(nlohmann::json::parse(seen[2].body),
            nlohmann::json::parse(R"({"spec":{"replicas":5}})"));
  EXPECT_EQ(seen[2].body, R"({"spec":{"replicas":5}})");
}

TEST_F(KubernetesProviderTest, ReReadsTheTokenEveryRequest) {
  int replicas = 1;
  FakeApiServer server([&](const Seen& s) { return StatefulSet(&replicas, s); });
  auto p = Make(server.port());
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(p->Current().ok());
  Write("token", "rotated-456");
  ASSERT_TRUE(p->ScaleTo(0).ok());
  EXPECT_EQ(*p->Current(), 0);  // spec.replicas omitted at 0
  EXPECT_EQ(p->NextToRemove().status().code(), absl::StatusCode::kNotFound);
  const std::vector<Seen> seen = server.seen();
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen[0].authorization, "Bearer tok-123");
  EXPECT_EQ(seen[1].authorization, "Bearer rotated-456");
}

TEST_F(KubernetesProviderTest, ErrorAnswersBecomeClearStatuses) {
  struct Case {
    int http;
    const char* reason;
    absl::StatusCode code;
  };
  for (const Case& c : {Case{401, "Unauthorized", absl::StatusCode::kUnauthenticated},
                        Case{403, "Forbidden", absl::StatusCode::kPermissionDenied},
                        Case{404, "NotFound", absl::StatusCode::kNotFound},
                        Case{409, "Conflict", absl::StatusCode::kAborted},
                        Case{422, "Invalid", absl::StatusCode::kInvalidArgument},
                        Case{429, "TooManyRequests", absl::StatusCode::kResourceExhausted},
                        Case{500, "InternalError", absl::StatusCode::kUnavailable}}) {
    const std::string message = std::string("statefulsets.apps \"experts\" says ") + c.reason;
    FakeApiServer server(
        [&](const Seen&) { return std::make_pair(c.http, StatusJson(c.http, c.reason, message)); });
    auto p = Make(server.port());
    ASSERT_NE(p, nullptr);
    absl::Status get = p->Current().status();
    EXPECT_EQ(get.code(), c.code) << get;
    EXPECT_NE(get.message().find(message), absl::string_view::npos) << get;
    EXPECT_NE(get.message().find(kPath), absl::string_view::npos) << get;
    absl::Status patch = p->ScaleTo(2);
    EXPECT_EQ(patch.code(), c.code) << patch;
    EXPECT_NE(patch.message().find("PATCH"), absl::string_view::npos) << patch;
  }
}

TEST_F(KubernetesProviderTest, ForbiddenNamesTheMissingPermission) {
  FakeApiServer server([&](const Seen&) {
    return std::make_pair(403, StatusJson(403, "Forbidden",
                                          "User \"system:serviceaccount:serving:default\" cannot "
                                          "patch resource \"statefulsets/scale\""));
  });
  auto p = Make(server.port());
  ASSERT_NE(p, nullptr);
  absl::Status s = p->ScaleTo(2);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("cannot patch resource"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("statefulsets/scale"), absl::string_view::npos) << s;
}

TEST_F(KubernetesProviderTest, MalformedOrWrongAnswersAreErrors) {
  std::string answer = "not json";
  FakeApiServer server([&](const Seen&) { return std::make_pair(200, answer); });
  auto p = Make(server.port());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->Current().status().code(), absl::StatusCode::kUnavailable);
  answer = R"({"kind":"Scale","spec":{"replicas":"three"}})";
  EXPECT_EQ(p->Current().status().code(), absl::StatusCode::kUnavailable);
  answer = ScaleJson(2);  // a PATCH to 4 answered with 2
  absl::Status s = p->ScaleTo(4);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("asked for 4"), absl::string_view::npos) << s;
}

TEST_F(KubernetesProviderTest, ConnectionRefusedIsUnavailable) {
  int port = 0;
  {
    // A port that was free a moment ago and has no listener now.
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  auto p = Make(port);
  ASSERT_NE(p, nullptr);
  absl::Status s = p->Current().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("connect"), absl::string_view::npos) << s;
  EXPECT_EQ(p->ScaleTo(1).code(), absl::StatusCode::kUnavailable);
}

TEST_F(KubernetesProviderTest, MissingTokenIsAFailedPrecondition) {
  int replicas = 1;
  FakeApiServer server([&](const Seen& s) { return StatefulSet(&replicas, s); });
  auto p = Make(server.port());
  ASSERT_NE(p, nullptr);
  std::filesystem::remove(dir_ / "token");
  absl::Status s = p->Current().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("token"), absl::string_view::npos) << s;
  EXPECT_TRUE(server.seen().empty());
}

TEST_F(KubernetesProviderTest, CreateChecksItsOptions) {
  KubernetesProviderOptions o = Options(1);
  o.allow_plain_http = false;
  EXPECT_EQ(KubernetesProvider::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options(1);
  o.statefulset = "";
  EXPECT_EQ(KubernetesProvider::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options(1);
  o.namespace_file = dir_ / "absent";
  EXPECT_EQ(KubernetesProvider::Create(o).status().code(), absl::StatusCode::kFailedPrecondition);
  o.namespace_name = "explicit";
  auto p = KubernetesProvider::Create(o);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->ScalePath(), "/apis/apps/v1/namespaces/explicit/statefulsets/experts/scale");
  o = Options(1);
  o.api_server = "https://127.0.0.1:6443";  // the CA file does not exist
  EXPECT_EQ(KubernetesProvider::Create(o).status().code(), absl::StatusCode::kFailedPrecondition);
  o = Options(1);
  o.api_server = "ftp://x";
  EXPECT_EQ(KubernetesProvider::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(KubernetesProviderTest, ApiServerFromTheServiceEnvironment) {
  const char* old_host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* old_port = std::getenv("KUBERNETES_SERVICE_PORT");
  const std::string saved_host = old_host ? old_host : "", saved_port = old_port ? old_port : "";
  Write("ca.crt", "placeholder");
  KubernetesProviderOptions o = Options(1);
  o.api_server = "";
  unsetenv("KUBERNETES_SERVICE_HOST");
  EXPECT_EQ(KubernetesProvider::Create(o).status().code(), absl::StatusCode::kFailedPrecondition);
  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto p = KubernetesProvider::Create(o);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_NE((*p)->Describe().find("https://10.96.0.1:443"), std::string::npos);
  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  p = KubernetesProvider::Create(o);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_NE((*p)->Describe().find("https://[fd00::1]:443"), std::string::npos);
  if (old_host)
    setenv("KUBERNETES_SERVICE_HOST", saved_host.c_str(), 1);
  else
    unsetenv("KUBERNETES_SERVICE_HOST");
  if (old_port)
    setenv("KUBERNETES_SERVICE_PORT", saved_port.c_str(), 1);
  else
    unsetenv("KUBERNETES_SERVICE_PORT");
}

// A self-signed certificate for IP 127.0.0.1 in `dir` (cert.pem, key.pem); false without the
// openssl CLI.
bool MakeCert(const std::filesystem::path& dir, const std::string& stem) {
  const std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1 -keyout " +
      (dir / (stem + "-key.pem")).string() + " -out " + (dir / (stem + ".pem")).string() +
      " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

TEST_F(KubernetesProviderTest, HttpsVerifiesTheApiServerWithTheServiceAccountCa) {
  if (!MakeCert(dir_, "server") || !MakeCert(dir_, "other")) GTEST_SKIP() << "no openssl CLI";
  ssl::context tls(ssl::context::tls_server);
  tls.use_certificate_chain_file((dir_ / "server.pem").string());
  tls.use_private_key_file((dir_ / "server-key.pem").string(), ssl::context::pem);
  int replicas = 2;
  FakeApiServer server([&](const Seen& s) { return StatefulSet(&replicas, s); }, &tls);

  KubernetesProviderOptions o = Options(server.port());
  o.api_server = "https://127.0.0.1:" + std::to_string(server.port());
  o.allow_plain_http = false;
  o.ca_file = dir_ / "server.pem";  // the self-signed certificate is its own CA
  auto p = KubernetesProvider::Create(o);
  ASSERT_TRUE(p.ok()) << p.status();
  absl::StatusOr<int> current = (*p)->Current();
  ASSERT_TRUE(current.ok()) << current.status();
  EXPECT_EQ(*current, 2);
  ASSERT_TRUE((*p)->ScaleTo(3).ok());
  EXPECT_EQ(replicas, 3);
  ASSERT_EQ(server.seen().size(), 2u);
  EXPECT_EQ(server.seen()[1].authorization, "Bearer tok-123");

  // Another CA: the handshake fails, no request is sent.
  o.ca_file = dir_ / "other.pem";
  p = KubernetesProvider::Create(o);
  ASSERT_TRUE(p.ok()) << p.status();
  absl::Status s = (*p)->Current().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("TLS"), absl::string_view::npos) << s;
  EXPECT_EQ(server.seen().size(), 2u);
}

}  // namespace
}  // namespace moe::scheduler
