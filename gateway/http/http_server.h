// A small HTTP/1.1 server (Boost.Beast, C++20 coroutines) on a few named threads
// ("gw-http-N"): keep-alive, a request body limit (413), and one coroutine per connection that
// hands each request to an asynchronous handler. The handler runs on the server's threads and
// must not block them: it co_awaits anything slow.
#ifndef MOE_GATEWAY_HTTP_HTTP_SERVER_H_
#define MOE_GATEWAY_HTTP_HTTP_SERVER_H_

#include <utility>  // before Asio (DESIGN.md section 9)

#include <functional>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http.hpp>

#include "absl/status/statusor.h"

namespace moe::gateway {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;
// Builds the response of one request (status, headers, body). Exceptions escaping it become a
// 500. Called on a server thread; many calls may be in progress at once.
using HttpHandler = std::function<boost::asio::awaitable<HttpResponse>(const HttpRequest&)>;
// The reply to a request the server rejects itself (status 400 or 413, message).
using HttpErrorRenderer = std::function<HttpResponse(int status, const std::string& message)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port; see HttpServer::port()
  int threads = 2;
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 16 * 1024;
};

class HttpServer {
 public:
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(HttpServerOptions options,
                                                           HttpHandler handler,
                                                           HttpErrorRenderer render_error);
  ~HttpServer();
  int port() const { return port_; }
  // The executor handlers run on (to resume coroutines from other threads).
  boost::asio::io_context& io();
  // Stops the event loop and joins the threads. Idempotent. The io_context (and handlers
  // posted to it later) lives until destruction, so stop the callers that post to it
  // (e.g. WorkerPool) between Stop and destruction.
  void Stop();

 private:
  struct Impl;
  HttpServer(std::unique_ptr<Impl> impl, int port);
  std::unique_ptr<Impl> impl_;
  int port_;
};

}  // namespace moe::gateway

#endif  // MOE_GATEWAY_HTTP_HTTP_SERVER_H_
