#include "gateway/api_handler.h"

#include <atomic>
#include <boost/asio.hpp>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <utility>  // before Asio (DESIGN.md section 9)

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/metrics.h"
#include "common/status.h"
#include "gateway/openai/choice_text.h"

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
                                    void(absl::StatusOr<v1::GetLoadResponse>)>(init,
                                                                               asio::use_awaitable);
  co_return result;
}

std::string NewId(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  const uint64_t n = counter.fetch_add(1);
  return absl::StrFormat("%s-%x%08x", prefix, absl::ToUnixMicros(absl::Now()), n);
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

// What the Generate calls of one job report, in arrival order. Lives on the connection's
// strand: Post (from any thread) hands an event over; Next waits for at least one.
struct Event {
  enum class Kind { kMessage, kDone, kGone };
  Kind kind = Kind::kMessage;
  int choice = -1;
  v1::GenerateResponse message;
  absl::Status status;
};

class EventChannel : public std::enable_shared_from_this<EventChannel> {
 public:
  explicit EventChannel(asio::any_io_executor ex) : ex_(std::move(ex)) {}
  void Post(Event e) {
    asio::post(
        ex_, [self = shared_from_this(), e = std::move(e)]() mutable { self->Push(std::move(e)); });
  }
  // On the strand only.
  void Push(Event e) {
    events_.push_back(std::move(e));
    if (wake_) {
      auto w = std::move(wake_);
      wake_ = nullptr;
      asio::post(ex_, std::move(w));
    }
  }
  asio::awaitable<std::deque<Event>> Next() {
    if (events_.empty()) {
      auto init = [this](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        wake_ = [h]() { (*h)(); };
      };
      co_await asio::async_initiate<const asio::use_awaitable_t<>&, void()>(init,
                                                                            asio::use_awaitable);
    }
    std::deque<Event> out;
    out.swap(events_);
    co_return out;
  }

 private:
  asio::any_io_executor ex_;
  std::deque<Event> events_;
  std::function<void()> wake_;
};

// One choice of a job while it runs.
struct Choice {
  Choice(const model::Tokenizer* tok, const std::vector<int32_t>& eos, const SamplingOptions& s)
      : text(tok, eos, s.stop, s.include_stop_str_in_output, s.skip_special_tokens) {}
  int index = 0;
  size_t prompt = 0;
  ChoiceText text;
  std::shared_ptr<GenerateHandle> handle;
  std::vector<ScoredToken> tokens;
  std::vector<ScoredToken> prompt_logprobs;
  std::string completion;  // all completion text so far
  std::string delta;       // text not yet streamed (for echo, the prompt first)
  size_t tokens_sent = 0;  // tokens whose logprobs were streamed
  bool prompt_sent = false;
  int messages = 0;
  bool done = false;
  bool stopped = false;  // a stop string matched
  bool ended = false;    // the finish reason is known and the text complete
  bool finish_sent = false;
  std::string finish;
  int64_t text_offset = 0;  // legacy logprobs text_offset of the next token
  absl::Time last_token_at = absl::InfinitePast();
};

}  // namespace

struct ApiHandler::Job {
  bool chat = false;
  std::string id;
  int64_t created = 0;
  absl::Time arrival;
  struct Prompt {
    std::vector<int32_t> ids;
    std::string text;  // for echo
    int max_tokens = 0;
  };
  std::vector<Prompt> prompts;
  SamplingOptions sampling;
  bool echo = false;
};

ApiHandler::ApiHandler(ApiOptions options, WorkerPool* pool)
    : options_(std::move(options)), pool_(pool) {
  prometheus::Registry& r = MetricsRegistry();
  http_requests_ = &prometheus::BuildCounter()
                        .Name("moe_http_requests_total")
                        .Help("HTTP requests answered by the gateway, by status code")
                        .Register(r);
  request_success_ = &prometheus::BuildCounter()
                          .Name("moe_request_success_total")
                          .Help("Completed generations (choices) by finish reason")
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
  ttft_ = &prometheus::BuildHistogram()
               .Name("moe_time_to_first_token_seconds")
               .Help("Time from request arrival to its first generated token")
               .Register(r)
               .Add({}, ExponentialBuckets(0.001, 2, 18));
  itl_ = &prometheus::BuildHistogram()
              .Name("moe_inter_token_latency_seconds")
              .Help("Time between consecutive generated tokens of a choice")
              .Register(r)
              .Add({}, ExponentialBuckets(0.0005, 2, 16));
  e2e_ = &prometheus::BuildHistogram()
              .Name("moe_e2e_request_latency_seconds")
              .Help("Time from request arrival to its last token (successful requests)")
              .Register(r)
              .Add({}, ExponentialBuckets(0.005, 2, 18));
}

ApiHandler::~ApiHandler() = default;

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
  h->chat_ = std::make_unique<ChatRenderer>(h->tokenizer_config_);
  // The context length: config.json's max_position_embeddings, else the tokenizer's limit.
  std::ifstream in(h->options_.model_dir + "/config.json");
  json config = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (config.is_object() && config.contains("max_position_embeddings") &&
      config["max_position_embeddings"].is_number_integer()) {
    h->max_model_len_ = config["max_position_embeddings"].get<int>();
  } else if (h->tokenizer_config_.model_max_length) {
    h->max_model_len_ = static_cast<int>(*h->tokenizer_config_.model_max_length);
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

HttpResponse ApiHandler::ServerError(int status, const std::string& message) {
  CountStatus(status);
  return ErrorResponse(status, message);
}

void ApiHandler::CountStatus(int status) {
  http_requests_->Add({{"status", std::to_string(status)}}).Increment();
}

asio::awaitable<HttpResponse> ApiHandler::Handle(const HttpRequest& request,
                                                 ResponseStream& stream) {
  // Counted while the handler runs (a streamed reply is written inside it).
  struct Active {
    std::atomic<int>* n;
    explicit Active(std::atomic<int>* c) : n(c) { n->fetch_add(1); }
    ~Active() { n->fetch_sub(1); }
  };
  std::string_view target(request.target().data(), request.target().size());
  const bool probe = target.starts_with("/health") || target.starts_with("/ready") ||
                     target.starts_with("/metrics");
  std::optional<Active> active;
  if (!probe) active.emplace(&active_);
  HttpResponse res = co_await Route(request, stream);
  CountStatus(stream.started() ? 200 : res.result_int());
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

asio::awaitable<HttpResponse> ApiHandler::Route(const HttpRequest& request,
                                                ResponseStream& stream) {
  std::string target(request.target());
  if (size_t q = target.find('?'); q != std::string::npos) target.resize(q);
  const bool get = request.method() == http::verb::get || request.method() == http::verb::head;
  const bool post = request.method() == http::verb::post;
  auto not_allowed = [this](const char* allow) {
    HttpResponse r = ErrorResponse(405, absl::StrCat("method not allowed: use ", allow));
    r.set(http::field::allow, allow);
    return r;
  };
  if (target == "/health") {
    if (!get) co_return not_allowed("GET");
    co_return TextResponse(200, "ok\n", "text/plain; charset=utf-8");
  }
  if (target == "/ready") {
    if (!get) co_return not_allowed("GET");
    if (draining_) co_return TextResponse(503, "draining\n", "text/plain; charset=utf-8");
    co_return co_await Ready();
  }
  if (target == "/metrics") {
    if (!get) co_return not_allowed("GET");
    co_return TextResponse(200, RenderMetrics(MetricsRegistry()),
                           "text/plain; version=0.0.4; charset=utf-8");
  }
  if (draining_ && target != "/metrics") {
    co_return ErrorResponse(503, "the server is shutting down: retry on another replica");
  }
  if (target == "/tokenize" || target == "/detokenize") {
    if (!post) co_return not_allowed("POST");
    co_return target == "/tokenize" ? Tokenize(request) : Detokenize(request);
  }
  const bool models = target == "/v1/models";
  const bool completions = target == "/v1/completions";
  const bool chat = target == "/v1/chat/completions";
  if (!models && !completions && !chat) {
    co_return ErrorResponse(MakeError(404, "no route for " + target, "not_found"));
  }
  if (!Authorized(request)) {
    co_return ErrorResponse(MakeError(401, "missing or incorrect API key", "invalid_api_key"));
  }
  if (models) {
    if (!get) co_return not_allowed("GET");
    co_return Models();
  }
  if (!post) co_return not_allowed("POST");
  if (chat) co_return co_await Chat(request, stream);
  co_return co_await Completions(request, stream);
}

HttpResponse ApiHandler::Models() const {
  json model{{"id", options_.model_id},
             {"object", "model"},
             {"created", created_},
             {"owned_by", "moe"},
             {"root", options_.model_id},
             {"parent", nullptr},
             {"max_model_len", max_model_len_}};
  json body{{"object", "list"}, {"data", json::array({model})}};
  return JsonResponse(body);
}

asio::awaitable<HttpResponse> ApiHandler::Ready() {
  bool answers = false;
  for (size_t i = 0; i < pool_->size() && !answers; ++i) {
    absl::StatusOr<v1::GetLoadResponse> load =
        co_await AwaitGetLoad(pool_, i, options_.probe_timeout);
    answers = load.ok();
  }
  if (!answers) {
    co_return TextResponse(503, "not ready: no attention worker answers\n",
                           "text/plain; charset=utf-8");
  }
  if (!served_once_.load()) {
    // Nothing generated yet: one greedy token through a worker (and so through its expert
    // placement) proves the model can serve. A full queue means it is serving already.
    v1::GenerateRequest g;
    g.set_request_id(NewId("ready"));
    const std::vector<int32_t> probe = model::EncodeWithConfig(*tokenizer_, tokenizer_config_, "a");
    g.mutable_prompt_ids()->Add(probe.begin(), probe.end());
    g.mutable_sampling()->set_temperature(0);
    g.mutable_sampling()->set_max_tokens(1);
    auto ex = co_await asio::this_coro::executor;
    auto chan = std::make_shared<EventChannel>(ex);
    GenerateCallbacks cb;
    cb.on_done = [chan](absl::Status st) {
      Event e;
      e.kind = Event::Kind::kDone;
      e.status = std::move(st);
      chan->Post(std::move(e));
    };
    absl::StatusOr<std::shared_ptr<GenerateHandle>> h =
        pool_->Submit(std::move(g), static_cast<int64_t>(probe.size()) + 1,
                      absl::Now() + options_.ready_probe_timeout, std::move(cb));
    absl::Status status = h.status();
    if (h.ok()) {
      for (bool done = false; !done;) {
        std::deque<Event> events = co_await chan->Next();
        for (const Event& e : events) {
          if (e.kind == Event::Kind::kDone) {
            done = true;
            status = e.status;
          }
        }
      }
    }
    if (status.ok() || status.code() == absl::StatusCode::kResourceExhausted) {
      served_once_.store(true);
    } else {
      co_return TextResponse(
          503, absl::StrCat("not ready: a test generation failed: ", status.message(), "\n"),
          "text/plain; charset=utf-8");
    }
  }
  co_return TextResponse(200, "ready\n", "text/plain; charset=utf-8");
}

std::optional<HttpResponse> ApiHandler::CheckModel(const std::optional<std::string>& model) const {
  if (!model || *model == options_.model_id) return std::nullopt;
  ApiError e =
      MakeError(404, absl::StrCat("The model `", *model, "` does not exist."), "model_not_found");
  e.param = "model";
  return ErrorResponse(e);
}

absl::Status ApiHandler::CheckLengths(const std::vector<int32_t>& prompt,
                                      std::optional<int> max_tokens, int* resolved) const {
  if (prompt.empty()) return InvalidParam("prompt", "the prompt is empty");
  for (int32_t id : prompt) {
    if (id >= tokenizer_->vocab_size()) {
      return InvalidParam("prompt", absl::StrCat("token id ", id, " is out of the vocabulary"));
    }
  }
  const int64_t n = static_cast<int64_t>(prompt.size());
  if (n > max_model_len_) {
    return InvalidParam("prompt",
                        absl::StrCat("This model's maximum context length is ", max_model_len_,
                                     " tokens. However, your prompt has ", n, " tokens."));
  }
  const int64_t want = max_tokens ? *max_tokens : max_model_len_ - n;
  if (n + want > max_model_len_) {
    return InvalidParam("max_tokens",
                        absl::StrCat("This model's maximum context length is ", max_model_len_,
                                     " tokens. However, you requested ", n + want, " tokens (", n,
                                     " in the prompt, ", want,
                                     " in the completion). Reduce the prompt or max_tokens."));
  }
  *resolved = static_cast<int>(want);
  return absl::OkStatus();
}

std::string ApiHandler::TokenString(int32_t id) const {
  return tokenizer_->Decode(std::vector<int32_t>{id}, false);
}

asio::awaitable<HttpResponse> ApiHandler::Completions(const HttpRequest& request,
                                                      ResponseStream& stream) {
  const absl::Time arrival = absl::Now();
  absl::StatusOr<CompletionRequest> parsed = ParseCompletionRequest(request.body());
  if (!parsed.ok()) co_return ErrorResponse(ErrorFromStatus(parsed.status()));
  CompletionRequest& req = *parsed;
  if (auto bad = CheckModel(req.model)) co_return std::move(*bad);
  auto job = std::make_shared<Job>();
  job->id = NewId("cmpl");
  job->created = absl::ToUnixSeconds(arrival);
  job->arrival = arrival;
  job->sampling = req.sampling;
  job->echo = req.echo;
  for (const PromptInput& p : req.prompts) {
    Job::Prompt jp;
    jp.ids = p.text ? model::EncodeWithConfig(*tokenizer_, tokenizer_config_, *p.text,
                                              req.add_special_tokens)
                    : p.ids;
    if (absl::Status s = CheckLengths(jp.ids, req.sampling.max_tokens, &jp.max_tokens); !s.ok()) {
      co_return ErrorResponse(ErrorFromStatus(s));
    }
    jp.text = p.text ? *p.text : tokenizer_->Decode(jp.ids, true);
    job->prompts.push_back(std::move(jp));
  }
  co_return co_await Run(std::move(job), stream);
}

asio::awaitable<HttpResponse> ApiHandler::Chat(const HttpRequest& request, ResponseStream& stream) {
  const absl::Time arrival = absl::Now();
  absl::StatusOr<ChatRequest> parsed = ParseChatRequest(request.body());
  if (!parsed.ok()) co_return ErrorResponse(ErrorFromStatus(parsed.status()));
  ChatRequest& req = *parsed;
  if (auto bad = CheckModel(req.model)) co_return std::move(*bad);
  absl::StatusOr<std::string> text = chat_->Render(req);
  if (!text.ok()) co_return ErrorResponse(ErrorFromStatus(text.status()));
  auto job = std::make_shared<Job>();
  job->chat = true;
  job->id = NewId("chatcmpl");
  job->created = absl::ToUnixSeconds(arrival);
  job->arrival = arrival;
  job->sampling = req.sampling;
  Job::Prompt jp;
  // The template writes the special tokens itself.
  jp.ids = model::EncodeWithConfig(*tokenizer_, tokenizer_config_, *text, false);
  if (absl::Status s = CheckLengths(jp.ids, req.sampling.max_tokens, &jp.max_tokens); !s.ok()) {
    co_return ErrorResponse(ErrorFromStatus(
        WithParam(s, s.GetPayload("moe.gateway/param") &&
                             std::string(*s.GetPayload("moe.gateway/param")) == "prompt"
                         ? "messages"
                         : "max_completion_tokens")));
  }
  job->prompts.push_back(std::move(jp));
  co_return co_await Run(std::move(job), stream);
}

namespace {

// The SSE chunk(s) of choice `c` for what arrived since the last one; "" if nothing to say.
std::string ChunkFor(const ApiHandler::Job& job, Choice& c, const std::string& model,
                     const std::vector<int32_t>& prompt_ids, const TokenText& text_of,
                     const TokenBytes& bytes_of) {
  const SamplingOptions& so = job.sampling;
  const bool finishing = (c.done || c.ended) && !c.finish_sent;
  const bool has_tokens = c.tokens_sent < c.tokens.size();
  if (c.messages == 0 && !c.done) return "";
  if (c.delta.empty() && !has_tokens && !finishing && (c.prompt_sent || !job.echo)) return "";
  std::optional<json> logprobs;
  if (job.chat) {
    if (so.logprobs) {
      std::vector<ScoredToken> fresh(c.tokens.begin() + c.tokens_sent, c.tokens.end());
      logprobs = ChatLogprobs(fresh, *so.logprobs, text_of, bytes_of);
    }
  } else if (so.logprobs) {
    std::vector<LogprobEntry> entries;
    if (job.echo && !c.prompt_sent) {
      for (size_t i = 0; i < prompt_ids.size(); ++i) {
        LogprobEntry e;
        e.id = prompt_ids[i];
        if (i > 0 && i - 1 < c.prompt_logprobs.size()) e.scored = c.prompt_logprobs[i - 1];
        entries.push_back(std::move(e));
      }
    }
    for (size_t i = c.tokens_sent; i < c.tokens.size(); ++i) {
      entries.push_back(LogprobEntry{c.tokens[i].id, c.tokens[i]});
    }
    logprobs = LegacyLogprobs(entries, text_of, c.text_offset, &c.text_offset);
  }
  const std::string finish = finishing ? c.finish : "";
  json chunk;
  if (job.chat) {
    json delta = json::object();
    if (!c.delta.empty()) delta["content"] = c.delta;
    chunk = ChatChunk(job.id, job.created, model, c.index, delta, logprobs, finish);
  } else {
    chunk = CompletionChunk(job.id, job.created, model, c.index, c.delta, logprobs, finish);
  }
  if (so.include_usage) chunk["usage"] = nullptr;
  c.delta.clear();
  c.tokens_sent = c.tokens.size();
  c.prompt_sent = true;
  if (finishing) c.finish_sent = true;
  return SseEvent(chunk);
}

}  // namespace

asio::awaitable<HttpResponse> ApiHandler::Run(std::shared_ptr<Job> job, ResponseStream& out) {
  const SamplingOptions& so = job->sampling;
  const bool want_prompt_logprobs = job->echo && so.logprobs.has_value();
  const absl::Time deadline = job->arrival + options_.request_timeout;
  auto chan = std::make_shared<EventChannel>(out.executor());
  std::vector<std::unique_ptr<Choice>> choices;
  int remaining = 0;
  auto cancel_all = [&choices] {
    for (auto& c : choices) {
      if (c->handle && !c->done) c->handle->Cancel();
    }
  };
  for (size_t p = 0; p < job->prompts.size(); ++p) {
    const Job::Prompt& prompt = job->prompts[p];
    for (int j = 0; j < so.n; ++j) {
      auto c = std::make_unique<Choice>(tokenizer_.get(), eos_ids_, so);
      c->index = static_cast<int>(p) * so.n + j;
      c->prompt = p;
      if (job->echo) c->delta = prompt.text;
      if (prompt.max_tokens == 0 && !want_prompt_logprobs) {
        c->done = true;
        c->finish = "length";
        choices.push_back(std::move(c));
        continue;
      }
      v1::GenerateRequest g;
      g.set_request_id(absl::StrCat(job->id, "-", c->index));
      g.mutable_prompt_ids()->Add(prompt.ids.begin(), prompt.ids.end());
      v1::SamplingParams* s = g.mutable_sampling();
      s->set_temperature(so.temperature);
      s->set_top_p(so.top_p);
      s->set_top_k(so.top_k);
      // Choice j of a seeded request draws from seed + j: choice 0 repeats n = 1.
      if (so.seed) s->set_seed(*so.seed + static_cast<uint64_t>(j));
      s->set_max_tokens(prompt.max_tokens);
      s->set_ignore_eos(so.ignore_eos);
      s->set_logprobs(so.logprobs.value_or(0));
      s->set_prompt_logprobs(want_prompt_logprobs);
      s->set_presence_penalty(so.presence_penalty);
      s->set_frequency_penalty(so.frequency_penalty);
      s->mutable_stop_token_ids()->Add(so.stop_token_ids.begin(), so.stop_token_ids.end());
      const int idx = c->index;
      GenerateCallbacks cb;
      cb.on_message = [chan, idx](v1::GenerateResponse m) {
        Event e;
        e.kind = Event::Kind::kMessage;
        e.choice = idx;
        e.message = std::move(m);
        chan->Post(std::move(e));
      };
      cb.on_done = [chan, idx](absl::Status st) {
        Event e;
        e.kind = Event::Kind::kDone;
        e.choice = idx;
        e.status = std::move(st);
        chan->Post(std::move(e));
      };
      absl::StatusOr<std::shared_ptr<GenerateHandle>> h =
          pool_->Submit(std::move(g), static_cast<int64_t>(prompt.ids.size()) + prompt.max_tokens,
                        deadline, std::move(cb));
      if (!h.ok()) {
        cancel_all();
        co_return ErrorResponse(ErrorFromStatus(h.status()));
      }
      c->handle = std::move(*h);
      ++remaining;
      choices.push_back(std::move(c));
    }
  }
  out.WatchDisconnect([chan] {
    Event e;
    e.kind = Event::Kind::kGone;
    chan->Push(std::move(e));
  });

  const model::Tokenizer* tok = tokenizer_.get();
  const TokenText text_of = [this](int32_t id) { return TokenString(id); };
  const TokenBytes bytes_of = [tok](int32_t id) { return tok->TokenBytes(id); };
  std::optional<absl::Status> failure;
  bool gone = false;
  bool first_token_seen = false;
  auto stream_chunks = [&]() {
    std::string buf;
    for (auto& c : choices) {
      buf += ChunkFor(*job, *c, options_.model_id, job->prompts[c->prompt].ids, text_of, bytes_of);
    }
    return buf;
  };
  std::string pending_chunks;  // one chunk per message as it arrived, not yet written
  while (remaining > 0 || (so.stream && !out.started())) {
    if (remaining > 0) {
      std::deque<Event> events = co_await chan->Next();
      const absl::Time now = absl::Now();
      for (Event& e : events) {
        if (e.kind == Event::Kind::kGone) {
          gone = true;
          continue;
        }
        Choice& c = *choices[e.choice];
        if (c.done) continue;
        if (e.kind == Event::Kind::kMessage) {
          ++c.messages;
          for (const auto& t : e.message.prompt_logprobs()) {
            c.prompt_logprobs.push_back(FromProto(t));
          }
          const int k = e.message.tokens_size();
          if (k > 0 && !c.stopped) {
            if (!first_token_seen) {
              first_token_seen = true;
              ttft_->Observe(absl::ToDoubleSeconds(now - job->arrival));
            }
            if (c.last_token_at != absl::InfinitePast()) {
              const double gap = absl::ToDoubleSeconds(now - c.last_token_at) / k;
              for (int i = 0; i < k; ++i) itl_->Observe(gap);
            }
            c.last_token_at = now;
          }
          for (const auto& t : e.message.tokens()) {
            if (c.stopped) break;
            c.tokens.push_back(FromProto(t));
            std::string piece = c.text.Add(t.id());
            c.completion += piece;
            c.delta += piece;
            if (c.text.stopped()) {
              c.stopped = true;
              c.ended = true;
              c.finish = "stop";
              c.handle->Cancel();  // the rest of the stream is not needed
            }
          }
          if (!c.stopped && !e.message.finish_reason().empty()) {
            c.finish = e.message.finish_reason();
            std::string rest = c.text.Finish();  // the finish goes with the last text
            c.completion += rest;
            c.delta += rest;
            c.ended = true;
          }
          if (so.stream) {
            pending_chunks +=
                ChunkFor(*job, c, options_.model_id, job->prompts[c.prompt].ids, text_of, bytes_of);
          }
        } else {  // kDone
          c.done = true;
          --remaining;
          if (!e.status.ok() && !c.stopped) {
            if (!failure) failure = e.status;
            continue;
          }
          if (!c.ended) {
            std::string rest = c.text.Finish();
            c.completion += rest;
            c.delta += rest;
          }
          if (c.finish.empty()) c.finish = "length";
          if (c.finish != "stop" && c.finish != "length" && !failure) {
            failure = absl::UnavailableError(
                absl::StrCat("the attention worker aborted the request (", c.finish, ")"));
          }
        }
      }
    }
    if (gone) {
      cancel_all();
      co_return ErrorResponse(MakeError(499, "the client closed the connection"));
    }
    if (failure) {
      cancel_all();
      if (!so.stream || !out.started()) co_return ErrorResponse(ErrorFromStatus(*failure));
      const std::string err =
          SseEvent(json::parse(ErrorBody(ErrorFromStatus(*failure)))) + "data: [DONE]\n\n";
      const bool wrote = co_await out.Write(err);
      if (wrote) co_await out.End();
      co_return HttpResponse();
    }
    if (so.stream) {
      std::string buf;
      if (!out.started()) {
        const bool begun = co_await out.Begin(200, "text/event-stream; charset=utf-8");
        if (!begun) {
          cancel_all();
          co_return HttpResponse();
        }
        if (job->chat) {
          const json role = json{{"role", "assistant"}, {"content", ""}};
          for (auto& c : choices) {
            json chunk = ChatChunk(job->id, job->created, options_.model_id, c->index, role,
                                   std::nullopt, "");
            if (so.include_usage) chunk["usage"] = nullptr;
            buf += SseEvent(chunk);
          }
        }
      }
      buf += pending_chunks;
      pending_chunks.clear();
      buf += stream_chunks();
      const bool wrote = co_await out.Write(std::move(buf));
      if (!wrote) {
        cancel_all();
        co_return HttpResponse();
      }
    }
  }

  // Every choice is done.
  served_once_.store(true);
  Usage usage;
  for (const Job::Prompt& p : job->prompts) usage.prompt_tokens += static_cast<int>(p.ids.size());
  for (auto& c : choices) usage.completion_tokens += static_cast<int>(c->tokens.size());
  prompt_tokens_->Increment(usage.prompt_tokens);
  generation_tokens_->Increment(usage.completion_tokens);
  for (auto& c : choices) request_success_->Add({{"finished_reason", c->finish}}).Increment();
  e2e_->Observe(absl::ToDoubleSeconds(absl::Now() - job->arrival));

  if (so.stream) {
    std::string buf = stream_chunks();
    if (so.include_usage) {
      buf += SseEvent(UsageChunk(job->id, job->created, options_.model_id, job->chat, usage));
    }
    buf += "data: [DONE]\n\n";
    const bool wrote = co_await out.Write(std::move(buf));
    if (wrote) co_await out.End();
    co_return HttpResponse();
  }

  std::vector<ChoiceResult> results;
  for (auto& cp : choices) {
    Choice& c = *cp;
    const Job::Prompt& prompt = job->prompts[c.prompt];
    ChoiceResult r;
    r.index = c.index;
    std::string completion = c.completion;
    if (tokenizer_config_.clean_up_tokenization_spaces) {
      completion = model::CleanUpTokenizationSpaces(completion);
    }
    r.text = job->echo ? prompt.text + completion : completion;
    r.finish_reason = c.finish;
    if (so.logprobs) {
      if (job->chat) {
        r.logprobs = ChatLogprobs(c.tokens, *so.logprobs, text_of, bytes_of);
      } else {
        std::vector<LogprobEntry> entries;
        if (job->echo) {
          for (size_t i = 0; i < prompt.ids.size(); ++i) {
            LogprobEntry e;
            e.id = prompt.ids[i];
            if (i > 0 && i - 1 < c.prompt_logprobs.size()) e.scored = c.prompt_logprobs[i - 1];
            entries.push_back(std::move(e));
          }
        }
        for (const ScoredToken& t : c.tokens) entries.push_back(LogprobEntry{t.id, t});
        r.logprobs = LegacyLogprobs(entries, text_of);
      }
    }
    results.push_back(std::move(r));
  }
  const json reply =
      job->chat ? ChatReply(job->id, job->created, options_.model_id, results, usage)
                : CompletionReply(job->id, job->created, options_.model_id, results, usage);
  co_return JsonResponse(reply);
}

namespace {

// The body of /tokenize or /detokenize: a JSON object (depth-checked before parsing).
absl::StatusOr<json> ParseUtilityBody(const std::string& text) {
  MOE_RETURN_IF_ERROR(CheckJsonDepth(text));
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return absl::InvalidArgumentError("the request body must be a JSON object");
  }
  if (body.contains("model") && !body["model"].is_null() && !body["model"].is_string()) {
    return InvalidParam("model", "'model' must be a string");
  }
  return body;
}

std::optional<std::string> UtilityModel(const json& body) {
  if (!body.contains("model") || !body["model"].is_string()) return std::nullopt;
  return body["model"].get<std::string>();
}

}  // namespace

HttpResponse ApiHandler::Tokenize(const HttpRequest& request) const {
  absl::StatusOr<json> parsed = ParseUtilityBody(request.body());
  if (!parsed.ok()) return ErrorResponse(ErrorFromStatus(parsed.status()));
  const json& body = *parsed;
  if (auto bad = CheckModel(UtilityModel(body))) return std::move(*bad);
  bool return_strs = false;
  if (body.contains("return_token_strs") && !body["return_token_strs"].is_null()) {
    if (!body["return_token_strs"].is_boolean()) {
      return ErrorResponse(ErrorFromStatus(
          InvalidParam("return_token_strs", "'return_token_strs' must be a boolean")));
    }
    return_strs = body["return_token_strs"].get<bool>();
  }
  const bool chat = body.contains("messages");
  bool add_special = !chat;
  if (body.contains("add_special_tokens") && !body["add_special_tokens"].is_null()) {
    if (!body["add_special_tokens"].is_boolean()) {
      return ErrorResponse(ErrorFromStatus(
          InvalidParam("add_special_tokens", "'add_special_tokens' must be a boolean")));
    }
    add_special = body["add_special_tokens"].get<bool>();
  }
  std::string text;
  if (chat) {
    // Only the chat fields, in the request's key order.
    const nlohmann::ordered_json ob = nlohmann::ordered_json::parse(request.body(), nullptr, false);
    nlohmann::ordered_json c = nlohmann::ordered_json::object();
    for (const char* k : {"messages", "add_generation_prompt", "continue_final_message",
                          "chat_template_kwargs", "tools"}) {
      if (ob.contains(k)) c[k] = ob.at(k);
    }
    absl::StatusOr<ChatRequest> req = ParseChatRequest(c.dump());
    if (!req.ok()) return ErrorResponse(ErrorFromStatus(req.status()));
    absl::StatusOr<std::string> rendered = chat_->Render(*req);
    if (!rendered.ok()) return ErrorResponse(ErrorFromStatus(rendered.status()));
    text = std::move(*rendered);
  } else {
    if (!body.contains("prompt") || !body["prompt"].is_string()) {
      return ErrorResponse(
          ErrorFromStatus(InvalidParam("prompt", "'prompt' (a string) or 'messages' is required")));
    }
    text = body["prompt"].get<std::string>();
  }
  std::vector<int32_t> ids =
      model::EncodeWithConfig(*tokenizer_, tokenizer_config_, text, add_special);
  json reply{{"count", ids.size()},
             {"max_model_len", max_model_len_},
             {"tokens", ids},
             {"token_strs", nullptr}};
  if (return_strs) {
    json strs = json::array();
    for (int32_t id : ids) strs.push_back(tokenizer_->IdToToken(id));
    reply["token_strs"] = std::move(strs);
  }
  return JsonResponse(reply);
}

HttpResponse ApiHandler::Detokenize(const HttpRequest& request) const {
  absl::StatusOr<json> parsed = ParseUtilityBody(request.body());
  if (!parsed.ok()) return ErrorResponse(ErrorFromStatus(parsed.status()));
  const json& body = *parsed;
  if (auto bad = CheckModel(UtilityModel(body))) return std::move(*bad);
  if (!body.contains("tokens") || !body["tokens"].is_array()) {
    return ErrorResponse(
        ErrorFromStatus(InvalidParam("tokens", "'tokens' (a list of token ids) is required")));
  }
  std::vector<int32_t> ids;
  for (const json& t : body["tokens"]) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
        t.get<int64_t>() >= tokenizer_->vocab_size()) {
      return ErrorResponse(ErrorFromStatus(
          InvalidParam("tokens", "'tokens' must be token ids of this model's vocabulary")));
    }
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return JsonResponse(json{{"prompt", tokenizer_->Decode(ids, true)}});
}

}  // namespace moe::gateway
