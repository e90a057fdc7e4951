#include "gateway/api_handler.h"

#include <utility>  // before Asio (DESIGN.md section 9)

#include <atomic>
#include <filesystem>

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/metrics.h"
#include "common/status.h"
#include "gateway/openai/completions.h"

namespace moe::gateway {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace v1 = ::moe::attention::v1;
using json = nlohmann::json;

namespace {

HttpResponse TextResponse(int status, std::string body, const char* content_type) {
  HttpResponse res;
  res.result(static_cast<unsigned>(status));
  res.set(http::field::content_type, content_type);
  res.body() = std::move(body);
  return res;
}

HttpResponse JsonResponse(const json& body) {
  return TextResponse(200, body.dump(-1, ' ', false, json::error_handler_t::replace),
                      "application/json");
}

// Runs pool->Generate and resumes the calling coroutine on its own executor with the result.
asio::awaitable<absl::StatusOr<GenerateStream>> AwaitGenerate(WorkerPool* pool,
                                                              v1::GenerateRequest request,
                                                              absl::Duration timeout) {
  auto ex = co_await asio::this_coro::executor;
  auto init = [pool, ex, timeout](auto handler, v1::GenerateRequest r) {
    auto h = std::make_shared<decltype(handler)>(std::move(handler));
    pool->Generate(std::move(r), timeout, [h, ex](absl::StatusOr<GenerateStream> s) {
      asio::post(ex, [h, s = std::move(s)]() mutable { (*h)(std::move(s)); });
    });
  };
  absl::StatusOr<GenerateStream> result =
      co_await asio::async_initiate<const asio::use_awaitable_t<>&,
                                    void(absl::StatusOr<GenerateStream>)>(
          init, asio::use_awaitable, std::move(request));
  co_return result;
}

asio::awaitable<absl::StatusOr<v1::GetLoadResponse>> AwaitGetLoad(WorkerPool* pool, size_t i,
                                                                   absl::Duration timeout) {
  auto ex = co_await asio::this_coro::executor;
  auto init = [pool, ex, i, timeout](auto handler) {
    auto h = std::make_shared<decltype(handler)>(std::move(handler));
    pool->GetLoad(i, timeout, [h, ex](absl::StatusOr<v1::GetLoadResponse> s) {
      asio::post(ex, [h, s = std::move(s)]() mutable { (*h)(std::move(s)); });
    });
  };
  absl::StatusOr<v1::GetLoadResponse> result =
      co_await asio::async_initiate<const asio::use_awaitable_t<>&,
                                    void(absl::StatusOr<v1::GetLoadResponse>)>(
          init, asio::use_awaitable);
  co_return result;
}

std::string NewCompletionId() {
  static std::atomic<uint64_t> counter{0};
  const uint64_t n = counter.fetch_add(1);
  return absl::StrFormat("cmpl-%x%08x", absl::ToUnixMicros(absl::Now()), n);
}

ScoredToken FromProto(const v1::GeneratedToken& t) {
  ScoredToken s;
  s.id = t.id();
  s.logprob = t.logprob();
  for (const auto& x : t.top()) s.top.emplace_back(x.id(), x.logprob());
  return s;
}

std::string ModelIdOf(const std::string& dir) {
  std::filesystem::path p = std::filesystem::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

}  // namespace

ApiHandler::ApiHandler(ApiOptions options, WorkerPool* pool)
    : options_(std::move(options)), pool_(pool) {
  prometheus::Registry& r = MetricsRegistry();
  http_requests_ = &prometheus::BuildCounter()
                        .Name("moe_http_requests_total")
                        .Help("HTTP requests answered by the gateway, by status code")
                        .Register(r);
  request_success_ = &prometheus::BuildCounter()
                          .Name("moe_request_success_total")
                          .Help("Completed generation requests by finish reason")
                          .Register(r);
  prompt_tokens_ = &prometheus::BuildCounter()
                        .Name("moe_prompt_tokens_total")
                        .Help("Prompt tokens of completed requests")
                        .Register(r)
                        .Add({});
  generation_tokens_ = &prometheus::BuildCounter()
                            .Name("moe_generation_tokens_total")
                            .Help("Generated tokens of completed requests")
                            .Register(r)
                            .Add({});
}

absl::StatusOr<std::unique_ptr<ApiHandler>> ApiHandler::Create(ApiOptions options,
                                                               WorkerPool* pool) {
  if (options.model_id.empty()) options.model_id = ModelIdOf(options.model_dir);
  std::unique_ptr<ApiHandler> h(new ApiHandler(std::move(options), pool));
  MOE_ASSIGN_OR_RETURN(h->tokenizer_,
                       model::Tokenizer::FromFile(h->options_.model_dir + "/tokenizer.json"));
  MOE_ASSIGN_OR_RETURN(h->tokenizer_config_, model::LoadTokenizerConfig(h->options_.model_dir));
  MOE_ASSIGN_OR_RETURN(model::GenerationConfig gen,
                       model::LoadGenerationConfig(h->options_.model_dir));
  h->eos_ids_ = gen.eos_token_ids;
  if (h->tokenizer_config_.eos_token) {
    if (auto id = h->tokenizer_->TokenToId(*h->tokenizer_config_.eos_token)) {
      h->eos_ids_.push_back(*id);
    }
  }
  h->created_ = absl::ToUnixSeconds(absl::Now());
  return h;
}

HttpResponse ApiHandler::ErrorResponse(const ApiError& error) const {
  HttpResponse res = TextResponse(error.http_status, ErrorBody(error), "application/json");
  if (error.http_status == 429) res.set(http::field::retry_after, "1");
  if (error.http_status == 401) res.set(http::field::www_authenticate, "Bearer");
  return res;
}

HttpResponse ApiHandler::ErrorResponse(int status, const std::string& message) const {
  return ErrorResponse(MakeError(status, message));
}

void ApiHandler::CountStatus(int status) {
  http_requests_->Add({{"status", std::to_string(status)}}).Increment();
}

asio::awaitable<HttpResponse> ApiHandler::Handle(const HttpRequest& request) {
  HttpResponse res = co_await Route(request);
  CountStatus(res.result_int());
  co_return res;
}

bool ApiHandler::Authorized(const HttpRequest& request) const {
  if (options_.api_key.empty()) return true;
  auto it = request.find(http::field::authorization);
  if (it == request.end()) return false;
  const std::string want = "Bearer " + options_.api_key;
  const std::string_view got(it->value().data(), it->value().size());
  if (got.size() != want.size()) return false;
  unsigned char diff = 0;  // constant time in the key's length
  for (size_t i = 0; i < want.size(); ++i) diff |= static_cast<unsigned char>(got[i] ^ want[i]);
  return diff == 0;
}

asio::awaitable<HttpResponse> ApiHandler::Route(const HttpRequest& request) {
  std::string target(request.target());
  if (size_t q = target.find('?'); q != std::string::npos) target.resize(q);
  const bool get = request.method() == http::verb::get || request.method() == http::verb::head;
  const bool post = request.method() == http::verb::post;
  if (target == "/health") {
    if (!get) co_return ErrorResponse(405, "use GET");
    co_return TextResponse(200, "ok\n", "text/plain; charset=utf-8");
  }
  if (target == "/ready") {
    if (!get) co_return ErrorResponse(405, "use GET");
    co_return co_await Ready();
  }
  if (target == "/metrics") {
    if (!get) co_return ErrorResponse(405, "use GET");
    co_return TextResponse(200, RenderMetrics(MetricsRegistry()),
                           "text/plain; version=0.0.4; charset=utf-8");
  }
  const bool models = target == "/v1/models";
  const bool completions = target == "/v1/completions";
  if (!models && !completions) {
    co_return ErrorResponse(MakeError(404, "no route for " + target, "not_found"));
  }
  if (!Authorized(request)) {
    co_return ErrorResponse(MakeError(401, "missing or incorrect API key", "invalid_api_key"));
  }
  if (models) {
    if (!get) co_return ErrorResponse(405, "use GET");
    co_return Models();
  }
  if (!post) co_return ErrorResponse(405, "use POST");
  co_return co_await Completions(request);
}

HttpResponse ApiHandler::Models() const {
  json model{{"id", options_.model_id},
             {"object", "model"},
             {"created", created_},
             {"owned_by", "moe"}};
  json body{{"object", "list"}, {"data", json::array({model})}};
  return JsonResponse(body);
}

asio::awaitable<HttpResponse> ApiHandler::Ready() {
  for (size_t i = 0; i < pool_->size(); ++i) {
    absl::StatusOr<v1::GetLoadResponse> load =
        co_await AwaitGetLoad(pool_, i, options_.probe_timeout);
    if (load.ok()) co_return TextResponse(200, "ready\n", "text/plain; charset=utf-8");
  }
  co_return TextResponse(503, "not ready: no attention worker answers\n",
                         "text/plain; charset=utf-8");
}

asio::awaitable<HttpResponse> ApiHandler::Completions(const HttpRequest& request) {
  absl::StatusOr<CompletionRequest> parsed = ParseCompletionRequest(request.body());
  if (!parsed.ok()) co_return ErrorResponse(ErrorFromStatus(parsed.status()));
  CompletionRequest& req = *parsed;
  if (req.model && *req.model != options_.model_id) {
    ApiError e = MakeError(404, absl::StrCat("The model `", *req.model, "` does not exist."),
                           "model_not_found");
    e.param = "model";
    co_return ErrorResponse(e);
  }
  std::vector<int32_t> prompt = req.prompt_text ? model::EncodeWithConfig(
                                                      *tokenizer_, tokenizer_config_,
                                                      *req.prompt_text)
                                                : req.prompt_ids;
  if (prompt.empty()) {
    co_return ErrorResponse(ErrorFromStatus(InvalidParam("prompt", "the prompt is empty")));
  }
  for (int32_t id : prompt) {
    if (id >= tokenizer_->vocab_size()) {
      co_return ErrorResponse(ErrorFromStatus(
          InvalidParam("prompt", absl::StrCat("token id ", id, " is out of the vocabulary"))));
    }
  }
  const std::string prompt_text =
      req.prompt_text ? *req.prompt_text : tokenizer_->Decode(prompt, true);

  CompletionOutput out;
  out.prompt_tokens = static_cast<int>(prompt.size());
  out.finish_reason = "length";
  const bool want_prompt_logprobs = req.echo && req.logprobs.has_value();
  if (req.max_tokens > 0 || want_prompt_logprobs) {
    v1::GenerateRequest g;
    g.set_request_id(NewCompletionId());
    g.mutable_prompt_ids()->Add(prompt.begin(), prompt.end());
    v1::SamplingParams* s = g.mutable_sampling();
    s->set_temperature(req.temperature);
    s->set_top_p(req.top_p);
    s->set_top_k(req.top_k);
    if (req.seed) s->set_seed(*req.seed);
    s->set_max_tokens(req.max_tokens);
    s->set_ignore_eos(req.ignore_eos);
    s->set_logprobs(req.logprobs.value_or(0));
    s->set_prompt_logprobs(want_prompt_logprobs);
    absl::StatusOr<GenerateStream> stream =
        co_await AwaitGenerate(pool_, std::move(g), options_.request_timeout);
    if (!stream.ok()) co_return ErrorResponse(ErrorFromStatus(stream.status()));
    for (const v1::GenerateResponse& m : stream->messages) {
      for (const auto& t : m.prompt_logprobs()) out.prompt_logprobs.push_back(FromProto(t));
      for (const auto& t : m.tokens()) out.tokens.push_back(FromProto(t));
      if (!m.finish_reason().empty()) out.finish_reason = m.finish_reason();
      if (m.prompt_tokens() > 0) out.prompt_tokens = m.prompt_tokens();
    }
    if (out.finish_reason != "stop" && out.finish_reason != "length") {
      co_return ErrorResponse(
          MakeError(503, "the attention worker aborted the request (" + out.finish_reason + ")"));
    }
  }

  std::vector<int32_t> ids;
  for (const ScoredToken& t : out.tokens) ids.push_back(t.id);
  std::vector<int32_t> shown = ids;  // the text leaves out a final EOS
  if (!shown.empty() && out.finish_reason == "stop" &&
      std::find(eos_ids_.begin(), eos_ids_.end(), shown.back()) != eos_ids_.end()) {
    shown.pop_back();
  }
  std::string completion_text = tokenizer_->Decode(shown, true);
  if (tokenizer_config_.clean_up_tokenization_spaces) {
    completion_text = model::CleanUpTokenizationSpaces(completion_text);
  }

  CompletionReplyParts parts;
  parts.id = NewCompletionId();
  parts.created = absl::ToUnixSeconds(absl::Now());
  parts.model = options_.model_id;
  parts.text = req.echo ? prompt_text + completion_text : completion_text;
  parts.finish_reason = out.finish_reason;
  parts.prompt_tokens = out.prompt_tokens;
  parts.completion_tokens = static_cast<int>(out.tokens.size());
  if (req.logprobs) {
    std::vector<LogprobEntry> entries;
    if (req.echo) {
      for (size_t i = 0; i < prompt.size(); ++i) {
        LogprobEntry e;
        e.id = prompt[i];
        if (i > 0 && i - 1 < out.prompt_logprobs.size()) e.scored = out.prompt_logprobs[i - 1];
        entries.push_back(std::move(e));
      }
    }
    for (const ScoredToken& t : out.tokens) {
      LogprobEntry e;
      e.id = t.id;
      e.scored = t;
      entries.push_back(std::move(e));
    }
    const model::Tokenizer* tok = tokenizer_.get();
    parts.logprobs = LegacyLogprobs(
        entries, [tok](int32_t id) { return tok->Decode(std::vector<int32_t>{id}, false); });
  }
  prompt_tokens_->Increment(parts.prompt_tokens);
  generation_tokens_->Increment(parts.completion_tokens);
  request_success_->Add({{"finished_reason", parts.finish_reason}}).Increment();
  co_return JsonResponse(CompletionReply(parts));
}

}  // namespace moe::gateway
