// A small HTTP/1.1 server (Boost.Beast, C++20 coroutines) on a few named threads
// ("gw-http-N"): keep-alive, a request body limit (413), read and write timeouts (a client that
// stalls is disconnected), and one coroutine per connection, on its own strand, that hands each
// request to an asynchronous handler. A handler either returns a whole response or streams one
// (chunked transfer encoding, e.g. Server-Sent Events) through its ResponseStream, and can ask to
// hear when the client goes away. Handlers run on the server's threads and must not block them:
// they co_await anything slow.
#ifndef MOE_GATEWAY_HTTP_HTTP_SERVER_H_
#define MOE_GATEWAY_HTTP_HTTP_SERVER_H_

#include <utility>  // before Asio (DESIGN.md section 9)

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http.hpp>

#include "absl/status/statusor.h"

namespace moe::gateway {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

// The connection of one request, for handlers that stream. Used only from the handler's
// coroutine (the connection's strand).
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  // Sends the status line and headers (chunked transfer encoding, no caching). False if the
  // client is gone. At most once; after it the handler's returned response is ignored.
  virtual boost::asio::awaitable<bool> Begin(int status, const std::string& content_type) = 0;
  // Sends `data` as one chunk (nothing for empty data). False if the client is gone or too slow
  // (write timeout).
  virtual boost::asio::awaitable<bool> Write(std::string data) = 0;
  // Sends the last chunk. False if the client is gone.
  virtual boost::asio::awaitable<bool> End() = 0;
  virtual bool started() const = 0;
  // `on_gone` runs once, on the connection's strand, if the client closes its side of the
  // connection while the handler runs (never after the handler returned).
  virtual void WatchDisconnect(std::function<void()> on_gone) = 0;
  // The connection's strand (to post results from other threads to).
  virtual boost::asio::any_io_executor executor() const = 0;
};

// Builds the response of one request (status, headers, body), or streams it through `stream`.
// Exceptions escaping it become a 500 (if nothing was streamed yet). Called on a server thread;
// many calls may be in progress at once.
using HttpHandler =
    std::function<boost::asio::awaitable<HttpResponse>(const HttpRequest&, ResponseStream&)>;
// The reply to a request the server rejects itself (status 400 or 413, message).
using HttpErrorRenderer = std::function<HttpResponse(int status, const std::string& message)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port; see HttpServer::port()
  int threads = 2;
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 16 * 1024;
  // Reading one request (headers and body) and an idle keep-alive connection.
  std::chrono::milliseconds read_timeout{30000};
  // Writing one response or one streamed chunk.
  std::chrono::milliseconds write_timeout{30000};
};

class HttpServer {
 public:
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(HttpServerOptions options,
                                                           HttpHandler handler,
                                                           HttpErrorRenderer render_error);
  ~HttpServer();
  int port() const { return port_; }
  // The event loop handlers run on.
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
