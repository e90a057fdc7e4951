#include "common/metrics.h"

#include <utility>  // before Asio (DESIGN.md section 9)

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <prometheus/text_serializer.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace moe {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

prometheus::Registry& MetricsRegistry() {
  static prometheus::Registry* registry = new prometheus::Registry();
  return *registry;
}

std::string RenderMetrics(const prometheus::Registry& registry) {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry.Collect());
}

prometheus::Histogram::BucketBoundaries ExponentialBuckets(double start, double factor,
                                                           int count) {
  prometheus::Histogram::BucketBoundaries b;
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) b.push_back(v);
  return b;
}

struct AdminServer::Impl {
  AdminServerOptions options;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread thread;

  asio::awaitable<void> Session(tcp::socket socket) {
    beast::flat_buffer buffer;
    try {
      for (;;) {
        http::request_parser<http::empty_body> parser;
        parser.header_limit(16 * 1024);
        co_await http::async_read(socket, buffer, parser, asio::use_awaitable);
        auto& req = parser.get();
        http::response<http::string_body> res;
        res.version(req.version());
        res.keep_alive(req.keep_alive());
        std::string target(req.target());
        if (size_t q = target.find('?'); q != std::string::npos) target.resize(q);
        if (req.method() != http::verb::get && req.method() != http::verb::head) {
          res.result(http::status::method_not_allowed);
          res.body() = "method not allowed\n";
        } else if (target == "/metrics") {
          res.result(http::status::ok);
          res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
          res.body() = RenderMetrics(options.registry ? *options.registry : MetricsRegistry());
        } else if (target == "/health") {
          res.result(http::status::ok);
          res.body() = "ok\n";
        } else if (target == "/ready") {
          bool ready = options.ready ? options.ready() : true;
          res.result(ready ? http::status::ok : http::status::service_unavailable);
          res.body() = ready ? "ready\n" : "not ready\n";
        } else {
          res.result(http::status::not_found);
          res.body() = "not found\n";
        }
        if (res.find(http::field::content_type) == res.end()) {
          res.set(http::field::content_type, "text/plain; charset=utf-8");
        }
        res.prepare_payload();
        co_await http::async_write(socket, res, asio::use_awaitable);
        if (!res.keep_alive()) break;
      }
    } catch (const std::exception&) {
      // Client went away or sent garbage: drop the connection.
    }
    beast::error_code ec;
    socket.shutdown(tcp::socket::shutdown_both, ec);
  }

  asio::awaitable<void> Accept() {
    for (;;) {
      beast::error_code ec;
      tcp::socket socket =
          co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted) co_return;
        continue;
      }
      asio::co_spawn(io, Session(std::move(socket)), asio::detached);
    }
  }
};

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(AdminServerOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  beast::error_code ec;
  auto address = asio::ip::make_address(impl->options.host, ec);
  if (ec) return absl::InvalidArgumentError("bad admin host " + impl->options.host);
  tcp::endpoint endpoint(address, static_cast<unsigned short>(impl->options.port));
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("admin server cannot listen on ",
                                               impl->options.host, ":", impl->options.port,
                                               ": ", ec.message()));
  }
  int port = impl->acceptor.local_endpoint().port();
  Impl* raw = impl.get();
  asio::co_spawn(raw->io, raw->Accept(), asio::detached);
  raw->thread = std::thread([raw] {
    pthread_setname_np(pthread_self(), "admin-http");
    raw->io.run();
  });
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl), port));
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl, int port)
    : impl_(std::move(impl)), port_(port) {}

AdminServer::~AdminServer() { Stop(); }

void AdminServer::Stop() {
  if (!impl_) return;
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_.reset();
}

}  // namespace moe
