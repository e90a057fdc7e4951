// A blocking one-shot HTTP/1.1 client for integration tests (Boost.Beast), 127.0.0.1 only.
#ifndef MOE_TESTS_TESTING_HTTP_CLIENT_H_
#define MOE_TESTS_TESTING_HTTP_CLIENT_H_

#include <utility>  // before Asio

#include <chrono>
#include <string>

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
               std::string(res[http::field::retry_after])};
}

}  // namespace moe::test_util

#endif  // MOE_TESTS_TESTING_HTTP_CLIENT_H_
