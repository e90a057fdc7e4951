// A blocking one-shot HTTP/1.1 client for integration tests (Boost.Beast), 127.0.0.1 only.
#ifndef MOE_TESTS_TESTING_HTTP_CLIENT_H_
#define MOE_TESTS_TESTING_HTTP_CLIENT_H_

#include <utility>  // before Asio

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace moe::test_util {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct Reply {
  int status = 0;
  std::string body;
  std::string retry_after;
  std::string content_type;
};

// One HTTP/1.1 request on a fresh connection (bounded by a 120 s socket timeout).
inline Reply Request(int port, http::verb verb, const std::string& target, const std::string& body = "",
              const std::string& api_key = "") {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.expires_after(std::chrono::seconds(120));
  stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                         static_cast<unsigned short>(port)));
  http::request<http::string_body> req(verb, target, 11);
  req.set(http::field::host, "127.0.0.1");
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  beast::error_code ec;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  return Reply{static_cast<int>(res.result_int()), res.body(),
               std::string(res[http::field::retry_after]),
               std::string(res[http::field::content_type])};
}

// Like Request, but never throws: status 0 and the error in `body` when the exchange fails.
inline Reply TryRequest(int port, http::verb verb, const std::string& target,
                        const std::string& body = "", const std::string& api_key = "") {
  try {
    return Request(port, verb, target, body, api_key);
  } catch (const std::exception& e) {
    return Reply{0, e.what(), "", ""};
  }
}

// Sends raw bytes on a fresh connection (optionally in `pieces` with `gap` between them) and
// returns everything the server sent until it closed the connection or `timeout` passed.
inline std::string RawExchange(int port, const std::vector<std::string>& pieces,
                               std::chrono::milliseconds timeout,
                               std::chrono::milliseconds gap = std::chrono::milliseconds(0),
                               bool close_after_send = false) {
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  beast::error_code ec;
  socket.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                         static_cast<unsigned short>(port)),
                 ec);
  if (ec) return "";
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (i > 0 && gap.count() > 0) std::this_thread::sleep_for(gap);
    asio::write(socket, asio::buffer(pieces[i]), ec);
    if (ec) break;
  }
  if (close_after_send) {
    socket.close(ec);
    return "";
  }
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  socket.non_blocking(true, ec);
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    const size_t n = socket.read_some(asio::buffer(buf), ec);
    if (ec == asio::error::would_block) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    if (ec) break;  // eof or reset
    out.append(buf, n);
  }
  return out;
}

}  // namespace moe::test_util

#endif  // MOE_TESTS_TESTING_HTTP_CLIENT_H_
