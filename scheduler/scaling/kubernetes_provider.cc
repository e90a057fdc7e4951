#include "scheduler/scaling/kubernetes_provider.h"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>  // before Asio

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file.h"
#include "common/status.h"

namespace moe::scheduler {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;

absl::StatusOr<std::string> ReadServiceAccountFile(const std::string& path, const char* what) {
  std::optional<std::string> text = ReadFile(path);
  if (!text) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read the service-account ", what, " ",
                                                      path, " (not running in a Kubernetes pod?)"));
  }
  return std::string(absl::StripAsciiWhitespace(*text));
}

absl::Status FromHttp(int code, const std::string& what, const std::string& body) {
  // The API answers errors with a Status object: {"kind":"Status","message":...,"reason":...}.
  std::string message;
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) {
    message = j["message"].get<std::string>();
  } else {
    message = body.substr(0, 200);
  }
  const std::string text = absl::StrCat(what, ": HTTP ", code, ": ", message);
  switch (code) {
    case 400:
    case 422:
      return absl::InvalidArgumentError(text);
    case 401:
      return absl::UnauthenticatedError(text);
    case 403:
      return absl::PermissionDeniedError(
          absl::StrCat(text, " (the service account needs get and patch on statefulsets/scale)"));
    case 404:
      return absl::NotFoundError(text);
    case 409:
      return absl::AbortedError(absl::StrCat(text, " (conflict: retry)"));
    case 429:
      return absl::ResourceExhaustedError(text);
    default:
      return code >= 500 ? absl::UnavailableError(text) : absl::UnknownError(text);
  }
}

// Writes `req` and reads the answer on a connected stream. `ec` set on failure.
template <typename Stream>
http::response<http::string_body> Exchange(Stream& stream, http::request<http::string_body>& req,
                                           beast::error_code& ec) {
  http::response<http::string_body> res;
  http::write(stream, req, ec);
  if (ec) return res;
  beast::flat_buffer buffer;
  http::read(stream, buffer, res, ec);
  return res;
}

}  // namespace

absl::StatusOr<std::unique_ptr<KubernetesProvider>> KubernetesProvider::Create(
    KubernetesProviderOptions o) {
  if (o.statefulset.empty()) {
    return absl::InvalidArgumentError("kubernetes provider: need the expert StatefulSet's name");
  }
  if (o.namespace_name.empty()) {
    MOE_ASSIGN_OR_RETURN(o.namespace_name, ReadServiceAccountFile(o.namespace_file, "namespace"));
    if (o.namespace_name.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(o.namespace_file, " is empty"));
    }
  }
  if (o.api_server.empty()) {
    const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
    const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
    if (host == nullptr || *host == '\0') {
      return absl::FailedPreconditionError(
          "KUBERNETES_SERVICE_HOST is not set (not running in a Kubernetes pod?): pass the API "
          "server explicitly");
    }
    const std::string h = absl::StrContains(host, ':') ? absl::StrCat("[", host, "]") : host;
    o.api_server = absl::StrCat("https://", h, ":", port != nullptr && *port ? port : "443");
  }
  Endpoint ep;
  std::string rest;
  if (absl::StartsWith(o.api_server, "https://")) {
    rest = o.api_server.substr(8);
  } else if (absl::StartsWith(o.api_server, "http://")) {
    if (!o.allow_plain_http) {
      return absl::InvalidArgumentError(
          absl::StrCat("kubernetes API server ", o.api_server, ": plain HTTP is not allowed"));
    }
    ep.tls = false;
    rest = o.api_server.substr(7);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("kubernetes API server must be https://host:port, got ", o.api_server));
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  size_t colon = rest.rfind(':');
  if (!rest.empty() && rest[0] == '[') {  // [v6]:port
    const size_t close = rest.find(']');
    if (close == std::string::npos) return absl::InvalidArgumentError("bad IPv6 API server");
    ep.host = rest.substr(1, close - 1);
    colon = rest.find(':', close);
  } else {
    ep.host = rest.substr(0, colon);
  }
  ep.port = colon == std::string::npos ? (ep.tls ? "443" : "80") : rest.substr(colon + 1);
  int port_number = 0;
  if (ep.host.empty() || !absl::SimpleAtoi(ep.port, &port_number) || port_number <= 0 ||
      port_number > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad kubernetes API server ", o.api_server));
  }
  if (ep.tls) {
    std::ifstream ca(o.ca_file);
    if (!ca) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot read the service-account CA ", o.ca_file));
    }
  }
  return std::unique_ptr<KubernetesProvider>(new KubernetesProvider(std::move(o), std::move(ep)));
}

std::string KubernetesProvider::ScalePath() const {
  return absl::StrCat("/apis/apps/v1/namespaces/", options_.namespace_name, "/statefulsets/",
                      options_.statefulset, "/scale");
}

std::string KubernetesProvider::Describe() const {
  return absl::StrCat("kubernetes statefulset ", options_.namespace_name, "/", options_.statefulset,
                      " via ", options_.api_server);
}

absl::StatusOr<int> KubernetesProvider::Request(bool patch, int replicas) {
  const std::string what = absl::StrCat("kubernetes ", patch ? "PATCH " : "GET ", ScalePath());
  MOE_ASSIGN_OR_RETURN(const std::string token,
                       ReadServiceAccountFile(options_.token_file, "token"));
  http::request<http::string_body> req(patch ? http::verb::patch : http::verb::get, ScalePath(),
                                       11);
  const bool v6 = absl::StrContains(endpoint_.host, ':');
  req.set(http::field::host,
          absl::StrCat(v6 ? "[" : "", endpoint_.host, v6 ? "]" : "", ":", endpoint_.port));
  req.set(http::field::authorization, absl::StrCat("Bearer ", token));
  req.set(http::field::accept, "application/json");
  req.set(http::field::user_agent, "moe-scheduler");
  req.set(http::field::connection, "close");
  if (patch) {
    req.set(http::field::content_type, "application/merge-patch+json");
    req.body() = nlohmann::json{{"spec", {{"replicas", replicas}}}}.dump();
  }
  req.prepare_payload();
  const auto timeout = absl::ToChronoMilliseconds(options_.timeout);

  http::response<http::string_body> res;
  beast::error_code ec;
  try {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    const auto endpoints = resolver.resolve(endpoint_.host, endpoint_.port, ec);
    if (ec) return absl::UnavailableError(absl::StrCat(what, ": resolve: ", ec.message()));
    if (!endpoint_.tls) {
      beast::tcp_stream stream(io);
      stream.expires_after(timeout);
      stream.connect(endpoints, ec);
      if (ec) return absl::UnavailableError(absl::StrCat(what, ": connect: ", ec.message()));
      res = Exchange(stream, req, ec);
      beast::error_code ignored;
      stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    } else {
      ssl::context ctx(ssl::context::tls_client);
      ctx.load_verify_file(options_.ca_file, ec);
      if (ec) {
        return absl::FailedPreconditionError(
            absl::StrCat("service-account CA ", options_.ca_file, ": ", ec.message()));
      }
      ctx.set_verify_mode(ssl::verify_peer);
      beast::ssl_stream<beast::tcp_stream> stream(io, ctx);
      // Checks the certificate's DNS name or IP address (the API server's service IP).
      stream.set_verify_callback(ssl::host_name_verification(endpoint_.host));
      asio::ip::make_address(endpoint_.host, ec);
      if (ec) {  // SNI only for names
        ec.clear();
        SSL_set_tlsext_host_name(stream.native_handle(), endpoint_.host.c_str());
      }
      beast::get_lowest_layer(stream).expires_after(timeout);
      beast::get_lowest_layer(stream).connect(endpoints, ec);
      if (ec) return absl::UnavailableError(absl::StrCat(what, ": connect: ", ec.message()));
      stream.handshake(ssl::stream_base::client, ec);
      if (ec) return absl::UnavailableError(absl::StrCat(what, ": TLS: ", ec.message()));
      res = Exchange(stream, req, ec);
      beast::error_code ignored;
      stream.shutdown(ignored);
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  }
  if (ec) return absl::UnavailableError(absl::StrCat(what, ": ", ec.message()));
  const int code = static_cast<int>(res.result_int());
  if (code < 200 || code >= 300) return FromHttp(code, what, res.body());
  nlohmann::json scale = nlohmann::json::parse(res.body(), nullptr, /*allow_exceptions=*/false);
  if (!scale.is_object()) {
    return absl::UnavailableError(absl::StrCat(what, ": answer is not a JSON object"));
  }
  // spec.replicas is omitted when 0 (omitempty).
  int got = 0;
  if (scale.contains("spec") && scale["spec"].is_object() && scale["spec"].contains("replicas")) {
    if (!scale["spec"]["replicas"].is_number_integer()) {
      return absl::UnavailableError(absl::StrCat(what, ": spec.replicas is not an integer"));
    }
    got = scale["spec"]["replicas"].get<int>();
  }
  return got;
}

absl::StatusOr<int> KubernetesProvider::Current() { return Request(/*patch=*/false, 0); }

absl::Status KubernetesProvider::ScaleTo(int n) {
  if (n < 0) return absl::InvalidArgumentError("instance count must be >= 0");
  MOE_ASSIGN_OR_RETURN(const int got, Request(/*patch=*/true, n));
  if (got != n) {
    return absl::UnavailableError(absl::StrCat("kubernetes PATCH ", ScalePath(), ": asked for ", n,
                                               " replicas, the answer says ", got));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> KubernetesProvider::NextToRemove() {
  MOE_ASSIGN_OR_RETURN(const int n, Current());
  if (n <= 0) {
    return absl::NotFoundError(
        absl::StrCat("statefulset ", options_.statefulset, " has no replicas"));
  }
  return absl::StrCat(options_.statefulset, "-", n - 1);
}

}  // namespace moe::scheduler
