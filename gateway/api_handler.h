// The gateway's HTTP API: routes requests to the OpenAI endpoints and the probes, checks the API
// key, tokenizes, calls an attention worker (WorkerPool, asynchronously) and renders OpenAI
// JSON. Handlers run on the HTTP server's threads; they never block (the Generate call is
// co_awaited). Owns the tokenizer; the pool must outlive it.
#ifndef MOE_GATEWAY_API_HANDLER_H_
#define MOE_GATEWAY_API_HANDLER_H_

#include <utility>  // before Asio (DESIGN.md section 9)

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <prometheus/counter.h>

#include "absl/time/time.h"
#include "gateway/http/http_server.h"
#include "gateway/openai/errors.h"
#include "gateway/routing/worker_pool.h"
#include "model/tokenizer/tokenizer.h"
#include "model/tokenizer/tokenizer_config.h"

namespace moe::gateway {

struct ApiOptions {
  std::string model_dir;
  std::string model_id;  // empty: the model folder's name
  std::string api_key;   // empty: no authentication
  absl::Duration request_timeout = absl::Minutes(10);
  absl::Duration probe_timeout = absl::Seconds(2);
};

class ApiHandler {
 public:
  // Loads the tokenizer and configs of options.model_dir.
  static absl::StatusOr<std::unique_ptr<ApiHandler>> Create(ApiOptions options, WorkerPool* pool);

  // The HTTP handler (see HttpHandler); counts every reply by status.
  boost::asio::awaitable<HttpResponse> Handle(const HttpRequest& request);
  // An OpenAI error reply (also used by the server for 400/413 it detects itself).
  HttpResponse ErrorResponse(const ApiError& error) const;
  HttpResponse ErrorResponse(int status, const std::string& message) const;

  const std::string& model_id() const { return options_.model_id; }

 private:
  ApiHandler(ApiOptions options, WorkerPool* pool);
  boost::asio::awaitable<HttpResponse> Route(const HttpRequest& request);
  boost::asio::awaitable<HttpResponse> Completions(const HttpRequest& request);
  boost::asio::awaitable<HttpResponse> Ready();
  HttpResponse Models() const;
  bool Authorized(const HttpRequest& request) const;
  void CountStatus(int status);

  ApiOptions options_;
  WorkerPool* pool_;
  std::unique_ptr<model::Tokenizer> tokenizer_;
  model::TokenizerConfig tokenizer_config_;
  std::vector<int32_t> eos_ids_;
  int64_t created_ = 0;  // unix seconds at start (the model's "created")

  prometheus::Family<prometheus::Counter>* http_requests_;
  prometheus::Family<prometheus::Counter>* request_success_;
  prometheus::Counter* prompt_tokens_;
  prometheus::Counter* generation_tokens_;
};

}  // namespace moe::gateway

#endif  // MOE_GATEWAY_API_HANDLER_H_
