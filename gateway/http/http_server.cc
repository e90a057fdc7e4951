#include "gateway/http/http_server.h"

#include <utility>  // before Asio (DESIGN.md section 9)

#include <pthread.h>

#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace moe::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct HttpServer::Impl {
  HttpServerOptions options;
  HttpHandler handler;
  HttpErrorRenderer render_error;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;

  asio::awaitable<HttpResponse> Handle(const HttpRequest& req) {
    HttpResponse res;
    bool failed = false;
    try {
      res = co_await handler(req);
    } catch (const std::exception& e) {
      MOE_LOG_ERROR("handler failed: {}", e.what());
      failed = true;
    }
    if (failed) res = render_error(500, "internal error");
    co_return res;
  }

  asio::awaitable<void> Session(tcp::socket socket) {
    beast::flat_buffer buffer;
    beast::error_code ec;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<uint32_t>(options.max_header_bytes));
      parser.body_limit(options.max_body_bytes);
      co_await http::async_read(socket, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::end_of_stream || ec == asio::error::eof ||
          ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
        break;
      }
      HttpResponse res;
      bool keep_alive = false;
      if (ec == http::error::body_limit) {
        res = render_error(413, absl::StrCat("the request body is larger than ",
                                             options.max_body_bytes, " bytes"));
      } else if (ec) {
        res = render_error(400, absl::StrCat("malformed HTTP request: ", ec.message()));
      } else {
        const HttpRequest& req = parser.get();
        res = co_await Handle(req);
        res.version(req.version());
        keep_alive = req.keep_alive();
      }
      res.keep_alive(keep_alive);
      res.prepare_payload();
      co_await http::async_write(socket, res, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || !keep_alive) break;
    }
    socket.shutdown(tcp::socket::shutdown_both, ec);
  }

  asio::awaitable<void> Accept() {
    for (;;) {
      beast::error_code ec;
      tcp::socket socket =
          co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        continue;
      }
      asio::co_spawn(io, Session(std::move(socket)), asio::detached);
    }
  }
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options,
                                                              HttpHandler handler,
                                                              HttpErrorRenderer render_error) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->handler = std::move(handler);
  impl->render_error = std::move(render_error);
  beast::error_code ec;
  auto address = asio::ip::make_address(impl->options.host, ec);
  if (ec) return absl::InvalidArgumentError("bad host " + impl->options.host);
  tcp::endpoint endpoint(address, static_cast<unsigned short>(impl->options.port));
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", impl->options.host, ":",
                                               impl->options.port, ": ", ec.message()));
  }
  const int port = impl->acceptor.local_endpoint().port();
  Impl* raw = impl.get();
  asio::co_spawn(raw->io, raw->Accept(), asio::detached);
  const int n = std::max(1, raw->options.threads);
  for (int i = 0; i < n; ++i) {
    raw->threads.emplace_back([raw, i] {
      const std::string name = "gw-http-" + std::to_string(i);
      pthread_setname_np(pthread_self(), name.c_str());
      raw->io.run();
    });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl), port));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl, int port)
    : impl_(std::move(impl)), port_(port) {}

HttpServer::~HttpServer() {
  Stop();
  impl_.reset();
}

asio::io_context& HttpServer::io() { return impl_->io; }

void HttpServer::Stop() {
  if (!impl_) return;
  impl_->io.stop();
  for (std::thread& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
}

}  // namespace moe::gateway
