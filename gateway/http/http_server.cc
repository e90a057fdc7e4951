#include "gateway/http/http_server.h"

#include <utility>  // before Asio (DESIGN.md section 9)

#include <pthread.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
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

namespace {

class StreamImpl final : public ResponseStream {
 public:
  StreamImpl(beast::tcp_stream& stream, unsigned version, bool keep_alive,
             std::chrono::milliseconds write_timeout)
      : stream_(stream),
        version_(version),
        keep_alive_(keep_alive),
        write_timeout_(write_timeout),
        active_(std::make_shared<bool>(true)) {}
  ~StreamImpl() override { Deactivate(); }

  asio::awaitable<bool> Begin(int status, const std::string& content_type) override {
    if (started_) co_return ok_;
    started_ = true;
    http::response<http::empty_body> res{static_cast<http::status>(status), version_};
    res.set(http::field::content_type, content_type);
    res.set(http::field::cache_control, "no-cache");
    // HTTP/1.0 has no chunked encoding: the body ends when the connection closes.
    if (version_ < 11) keep_alive_ = false;
    res.keep_alive(keep_alive_);
    if (version_ >= 11) res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    beast::error_code ec;
    stream_.expires_after(write_timeout_);
    co_await http::async_write_header(stream_, sr, asio::redirect_error(asio::use_awaitable, ec));
    stream_.expires_never();
    ok_ = !ec;
    co_return ok_;
  }

  asio::awaitable<bool> Write(std::string data) override {
    if (!started_ || !ok_) co_return false;
    if (data.empty()) co_return true;
    beast::error_code ec;
    stream_.expires_after(write_timeout_);
    if (version_ >= 11) {
      co_await asio::async_write(stream_, http::make_chunk(asio::buffer(data)),
                                 asio::redirect_error(asio::use_awaitable, ec));
    } else {
      co_await asio::async_write(stream_, asio::buffer(data),
                                 asio::redirect_error(asio::use_awaitable, ec));
    }
    stream_.expires_never();
    ok_ = !ec;
    co_return ok_;
  }

  asio::awaitable<bool> End() override {
    if (version_ < 11 && started_ && ok_) {  // the connection's close ends the body
      ended_ = true;
      co_return true;
    }
    if (!started_ || !ok_) co_return false;
    beast::error_code ec;
    stream_.expires_after(write_timeout_);
    co_await asio::async_write(stream_, http::make_chunk_last(),
                               asio::redirect_error(asio::use_awaitable, ec));
    stream_.expires_never();
    ok_ = !ec;
    ended_ = ok_;
    co_return ok_;
  }

  bool started() const override { return started_; }
  bool ended() const { return ended_; }
  bool keep_alive() const { return keep_alive_; }

  void WatchDisconnect(std::function<void()> on_gone) override {
    if (watching_) return;
    watching_ = true;
    Arm(std::make_shared<std::function<void()>>(std::move(on_gone)));
  }

  asio::any_io_executor executor() const override { return stream_.get_executor(); }

  // The handler returned: no on_gone from now on; stops the watch.
  void Deactivate() {
    if (!*active_) return;
    *active_ = false;
    if (watching_) {
      beast::error_code ec;
      stream_.socket().cancel(ec);
    }
  }

 private:
  void Arm(std::shared_ptr<std::function<void()>> on_gone) {
    std::shared_ptr<bool> active = active_;
    tcp::socket& socket = stream_.socket();
    socket.async_wait(
        tcp::socket::wait_read,
        asio::bind_executor(
            stream_.get_executor(), [this, active, on_gone](const beast::error_code& ec) {
              if (!*active) return;  // `this` may be gone: touch nothing
              if (ec == asio::error::operation_aborted) return;
              bool gone = static_cast<bool>(ec);
              if (!gone) {
                char c;
                const ssize_t n =
                    ::recv(stream_.socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
                if (n == 0) gone = true;
                if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                  gone = true;
                }
                if (n < 0 && !gone) {
                  Arm(on_gone);  // spurious wake-up
                  return;
                }
              }
              // n > 0: the client sent its next request already; still there.
              if (gone) (*on_gone)();
            }));
  }

  beast::tcp_stream& stream_;
  unsigned version_;
  bool keep_alive_;
  std::chrono::milliseconds write_timeout_;
  std::shared_ptr<bool> active_;
  bool started_ = false;
  bool ok_ = true;
  bool ended_ = false;
  bool watching_ = false;
};

}  // namespace

struct HttpServer::Impl {
  HttpServerOptions options;
  HttpHandler handler;
  HttpErrorRenderer render_error;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;

  asio::awaitable<HttpResponse> Handle(const HttpRequest& req, StreamImpl& stream) {
    HttpResponse res;
    bool failed = false;
    try {
      res = co_await handler(req, stream);
    } catch (const std::exception& e) {
      MOE_LOG_ERROR("handler failed: {}", e.what());
      failed = true;
    }
    if (failed) res = render_error(500, "internal error");
    co_return res;
  }

  asio::awaitable<void> Session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    beast::error_code ec;
    bool unread_input = false;  // closing after a request that was not read to its end
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<uint32_t>(options.max_header_bytes));
      parser.body_limit(options.max_body_bytes);
      stream.expires_after(options.read_timeout);
      co_await http::async_read(stream, buffer, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
      stream.expires_never();
      if (ec == http::error::end_of_stream || ec == asio::error::eof ||
          ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
          ec == beast::error::timeout) {
        break;
      }
      HttpResponse res;
      bool keep_alive = false;
      bool streamed = false;
      bool stream_ok = false;
      if (ec == http::error::body_limit) {
        res = render_error(413, absl::StrCat("the request body is larger than ",
                                             options.max_body_bytes, " bytes"));
      } else if (ec == http::error::header_limit) {
        res = render_error(431, absl::StrCat("the request headers are larger than ",
                                             options.max_header_bytes, " bytes"));
      } else if (ec) {
        res = render_error(400, absl::StrCat("malformed HTTP request: ", ec.message()));
      }
      if (ec) {
        unread_input = true;
      } else {
        const HttpRequest& req = parser.get();
        keep_alive = req.keep_alive();
        StreamImpl rs(stream, req.version(), keep_alive, options.write_timeout);
        res = co_await Handle(req, rs);
        rs.Deactivate();
        streamed = rs.started();
        stream_ok = rs.ended() && rs.keep_alive();
        res.version(req.version());
      }
      if (streamed) {
        if (!stream_ok || !keep_alive) break;
        continue;
      }
      res.keep_alive(keep_alive);
      res.prepare_payload();
      stream.expires_after(options.write_timeout);
      co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
      stream.expires_never();
      if (ec || !keep_alive) break;
    }
    if (unread_input) {
      // Lingering close: the client may still be sending the rest of a rejected request (a
      // body over the limit). Closing now would reset the connection and the client could
      // lose the error response before reading it (EPIPE / ECONNRESET on its side); instead
      // end our side, then read and drop its data for a bounded time and amount.
      stream.socket().shutdown(tcp::socket::shutdown_send, ec);
      stream.expires_after(std::min<std::chrono::steady_clock::duration>(options.read_timeout,
                                                                         std::chrono::seconds(5)));
      std::array<char, 16384> sink;
      size_t dropped = 0;
      constexpr size_t kMaxDropped = 64u << 20;
      while (dropped < kMaxDropped) {
        const size_t got = co_await stream.async_read_some(
            asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        dropped += got;
      }
      stream.expires_never();
    }
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  }

  asio::awaitable<void> Accept() {
    for (;;) {
      beast::error_code ec;
      // Each connection lives on its own strand: its coroutine, timers and watches never run
      // at the same time on two threads.
      tcp::socket socket(asio::make_strand(io));
      co_await acceptor.async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        continue;
      }
      auto ex = socket.get_executor();
      asio::co_spawn(ex, Session(std::move(socket)), asio::detached);
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
