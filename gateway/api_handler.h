// The gateway's HTTP API: routes requests to the OpenAI endpoints, the vLLM tokenizer endpoints
// and the probes, checks the API key, tokenizes (chat: renders the chat template first), runs
// one Generate call per choice on the attention workers (WorkerPool, asynchronously, each
// streamed message as it arrives) and answers in OpenAI JSON or as Server-Sent Events.
// Handlers run on the HTTP server's threads (one strand per connection); they never block.
// Owns the tokenizer; the pool must outlive it.
#ifndef MOE_GATEWAY_API_HANDLER_H_
#define MOE_GATEWAY_API_HANDLER_H_

#include <utility>  // before Asio (DESIGN.md section 9)

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include "absl/time/time.h"
#include "gateway/http/http_server.h"
#include "gateway/openai/chat_template.h"
#include "gateway/openai/completions.h"
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
  absl::Duration probe_timeout = absl::Seconds(2);         // GetLoad on /ready
  absl::Duration ready_probe_timeout = absl::Seconds(10);  // the first /ready's generation
};

class ApiHandler {
 public:
  // Loads the tokenizer and configs of options.model_dir.
  static absl::StatusOr<std::unique_ptr<ApiHandler>> Create(ApiOptions options, WorkerPool* pool);
  ~ApiHandler();

  // The HTTP handler (see HttpHandler); counts every reply by status.
  boost::asio::awaitable<HttpResponse> Handle(const HttpRequest& request, ResponseStream& stream);
  // An OpenAI error reply (also used by the server for 400/413 it detects itself).
  HttpResponse ErrorResponse(const ApiError& error) const;
  HttpResponse ErrorResponse(int status, const std::string& message) const;
  // The reply to a request the HTTP server rejected itself (400, 413, 431); counted by status.
  HttpResponse ServerError(int status, const std::string& message);

  const std::string& model_id() const { return options_.model_id; }

  // Graceful shutdown (SIGTERM): from now on /ready answers 503 and new API requests get 503;
  // requests already being handled go on. Thread-safe.
  void StartDraining() { draining_ = true; }
  // API requests (everything but the probes and /metrics) being handled right now, streams
  // included until their last byte is written.
  int active_requests() const { return active_.load(); }
  int max_model_len() const { return max_model_len_; }

  // One generation job: the prompts (token ids), their echo text, and how to answer.
  struct Job;

 private:
  ApiHandler(ApiOptions options, WorkerPool* pool);
  boost::asio::awaitable<HttpResponse> Route(const HttpRequest& request, ResponseStream& stream);
  boost::asio::awaitable<HttpResponse> Completions(const HttpRequest& request,
                                                   ResponseStream& stream);
  boost::asio::awaitable<HttpResponse> Chat(const HttpRequest& request, ResponseStream& stream);
  boost::asio::awaitable<HttpResponse> Run(std::shared_ptr<Job> job, ResponseStream& stream);
  boost::asio::awaitable<HttpResponse> Ready();
  HttpResponse Models() const;
  HttpResponse Tokenize(const HttpRequest& request) const;
  HttpResponse Detokenize(const HttpRequest& request) const;
  bool Authorized(const HttpRequest& request) const;
  void CountStatus(int status);
  // 404 unless `model` is absent or the served model.
  std::optional<HttpResponse> CheckModel(const std::optional<std::string>& model) const;
  // Checks ids against the vocabulary and prompt + max tokens against the context length;
  // resolves an absent max_tokens to the rest of the context.
  absl::Status CheckLengths(const std::vector<int32_t>& prompt, std::optional<int> max_tokens,
                            int* resolved) const;
  std::string TokenString(int32_t id) const;

  ApiOptions options_;
  WorkerPool* pool_;
  std::unique_ptr<model::Tokenizer> tokenizer_;
  model::TokenizerConfig tokenizer_config_;
  std::unique_ptr<ChatRenderer> chat_;
  std::vector<int32_t> eos_ids_;
  int max_model_len_ = 4096;
  int64_t created_ = 0;  // unix seconds at start (the model's "created")
  // Set by the first successful generation (a request or the /ready probe): from then on
  // /ready only asks the workers for their load.
  std::atomic<bool> served_once_{false};
  std::atomic<bool> draining_{false};
  std::atomic<int> active_{0};

  prometheus::Family<prometheus::Counter>* http_requests_;
  prometheus::Family<prometheus::Counter>* request_success_;
  prometheus::Counter* prompt_tokens_;
  prometheus::Counter* generation_tokens_;
  prometheus::Histogram* ttft_;
  prometheus::Histogram* itl_;
  prometheus::Histogram* e2e_;
};

}  // namespace moe::gateway

#endif  // MOE_GATEWAY_API_HANDLER_H_
