#include "gateway/openai/completions.h"

#include <cmath>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gateway/openai/errors.h"

namespace moe::gateway {
namespace {

using json = nlohmann::json;

bool IsNull(const json& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() || it->is_null();
}

absl::Status GetInt(const json& body, const char* key, int64_t lo, int64_t hi,
                    std::optional<int64_t>* out) {
  if (IsNull(body, key)) return absl::OkStatus();
  const json& v = body.at(key);
  int64_t x;
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) {
      return InvalidParam(key, absl::StrCat("'", key, "' must be at most ", hi));
    }
    x = v.get<int64_t>();
  } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
             std::abs(v.get<double>()) < 9e15) {
    x = static_cast<int64_t>(v.get<double>());
  } else {
    return InvalidParam(key, absl::StrCat("'", key, "' must be an integer"));
  }
  if (x < lo || x > hi) {
    return InvalidParam(key, absl::StrCat("'", key, "' must be in [", lo, ", ", hi, "], got ", x));
  }
  *out = x;
  return absl::OkStatus();
}

absl::Status GetFloat(const json& body, const char* key, double lo, double hi, bool lo_open,
                      float* out) {
  if (IsNull(body, key)) return absl::OkStatus();
  const json& v = body.at(key);
  if (!v.is_number()) return InvalidParam(key, absl::StrCat("'", key, "' must be a number"));
  const double x = v.get<double>();
  if (!(x <= hi) || (lo_open ? !(x > lo) : !(x >= lo))) {
    return InvalidParam(key, absl::StrCat("'", key, "' must be in ", lo_open ? "(" : "[", lo, ", ",
                                          hi, "], got ", x));
  }
  *out = static_cast<float>(x);
  return absl::OkStatus();
}

absl::Status GetBool(const json& body, const char* key, bool* out) {
  if (IsNull(body, key)) return absl::OkStatus();
  const json& v = body.at(key);
  if (!v.is_boolean()) return InvalidParam(key, absl::StrCat("'", key, "' must be a boolean"));
  *out = v.get<bool>();
  return absl::OkStatus();
}

#define MOE_GW_RETURN_IF_ERROR(expr)                   \
  do {                                                 \
    if (absl::Status _s = (expr); !_s.ok()) return _s; \
  } while (0)

absl::Status CheckKnownFields(const json& body, const std::set<std::string>& known) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (!known.count(it.key())) {
      return InvalidParam(it.key(),
                          absl::StrCat("Unrecognized request argument supplied: ", it.key()));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseIdList(const json& p, const char* what, std::vector<int32_t>* out) {
  if (p.empty()) return InvalidParam("prompt", absl::StrCat(what, " must not be empty"));
  for (const json& t : p) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
        t.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return InvalidParam("prompt", "'prompt' token ids must be non-negative integers");
    }
    out->push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return absl::OkStatus();
}

absl::Status ParsePrompt(const json& body, CompletionRequest* r) {
  if (IsNull(body, "prompt")) return InvalidParam("prompt", "'prompt' is required");
  const json& p = body.at("prompt");
  if (p.is_string()) {
    r->prompts.push_back(PromptInput{p.get<std::string>(), {}});
    return absl::OkStatus();
  }
  if (!p.is_array() || p.empty()) {
    return InvalidParam("prompt",
                        "'prompt' must be a string, a list of strings, a list of token ids or a "
                        "list of token-id lists (non-empty)");
  }
  if (p.size() > static_cast<size_t>(kMaxPrompts) && (p[0].is_string() || p[0].is_array())) {
    return InvalidParam("prompt", absl::StrCat("at most ", kMaxPrompts, " prompts per request"));
  }
  if (p[0].is_string()) {
    for (const json& s : p) {
      if (!s.is_string()) return InvalidParam("prompt", "a list of prompts must be all strings");
      r->prompts.push_back(PromptInput{s.get<std::string>(), {}});
    }
    return absl::OkStatus();
  }
  if (p[0].is_array()) {
    for (const json& l : p) {
      if (!l.is_array())
        return InvalidParam("prompt", "a list of token-id lists must be all lists");
      PromptInput in;
      MOE_GW_RETURN_IF_ERROR(ParseIdList(l, "every token-id list", &in.ids));
      r->prompts.push_back(std::move(in));
    }
    return absl::OkStatus();
  }
  PromptInput in;
  MOE_GW_RETURN_IF_ERROR(ParseIdList(p, "'prompt'", &in.ids));
  r->prompts.push_back(std::move(in));
  return absl::OkStatus();
}

// Fields both endpoints share (everything in SamplingOptions except logprobs / max tokens).
absl::Status ParseCommon(const json& body, SamplingOptions* s, std::optional<std::string>* model) {
  if (!IsNull(body, "model")) {
    if (!body["model"].is_string()) return InvalidParam("model", "'model' must be a string");
    *model = body["model"].get<std::string>();
  }
  MOE_GW_RETURN_IF_ERROR(GetFloat(body, "temperature", 0, 2, false, &s->temperature));
  MOE_GW_RETURN_IF_ERROR(GetFloat(body, "top_p", 0, 1, true, &s->top_p));
  std::optional<int64_t> v;
  MOE_GW_RETURN_IF_ERROR(GetInt(body, "top_k", -1, 1 << 30, &v));
  if (v) s->top_k = *v < 0 ? 0 : static_cast<int>(*v);
  v.reset();
  MOE_GW_RETURN_IF_ERROR(GetInt(body, "seed", std::numeric_limits<int64_t>::min(),
                                std::numeric_limits<int64_t>::max(), &v));
  if (v) s->seed = static_cast<uint64_t>(*v);
  v.reset();
  MOE_GW_RETURN_IF_ERROR(GetInt(body, "n", 1, kMaxN, &v));
  if (v) s->n = static_cast<int>(*v);
  MOE_GW_RETURN_IF_ERROR(GetFloat(body, "presence_penalty", -2, 2, false, &s->presence_penalty));
  MOE_GW_RETURN_IF_ERROR(GetFloat(body, "frequency_penalty", -2, 2, false, &s->frequency_penalty));
  MOE_GW_RETURN_IF_ERROR(GetBool(body, "ignore_eos", &s->ignore_eos));
  MOE_GW_RETURN_IF_ERROR(
      GetBool(body, "include_stop_str_in_output", &s->include_stop_str_in_output));
  MOE_GW_RETURN_IF_ERROR(GetBool(body, "skip_special_tokens", &s->skip_special_tokens));
  MOE_GW_RETURN_IF_ERROR(GetBool(body, "stream", &s->stream));
  if (!IsNull(body, "stream_options")) {
    const json& so = body["stream_options"];
    if (!so.is_object())
      return InvalidParam("stream_options", "'stream_options' must be an object");
    if (!s->stream) {
      return InvalidParam("stream_options", "'stream_options' is only allowed with 'stream': true");
    }
    for (auto it = so.begin(); it != so.end(); ++it) {
      if (it.key() != "include_usage" && it.key() != "continuous_usage_stats") {
        return InvalidParam("stream_options",
                            absl::StrCat("unknown 'stream_options' field ", it.key()));
      }
    }
    MOE_GW_RETURN_IF_ERROR(GetBool(so, "include_usage", &s->include_usage));
    bool continuous = false;
    MOE_GW_RETURN_IF_ERROR(GetBool(so, "continuous_usage_stats", &continuous));
    if (continuous) {
      return InvalidParam("stream_options", "'continuous_usage_stats' is not supported");
    }
  }
  if (!IsNull(body, "stop")) {
    const json& st = body["stop"];
    if (st.is_string()) {
      if (st.get_ref<const std::string&>().size() > kMaxStopBytes) {
        return InvalidParam("stop",
                            absl::StrCat("a stop string is longer than ", kMaxStopBytes, " bytes"));
      }
      if (!st.get_ref<const std::string&>().empty()) s->stop.push_back(st.get<std::string>());
    } else if (st.is_array()) {
      if (st.size() > static_cast<size_t>(kMaxStops)) {
        return InvalidParam("stop", absl::StrCat("'stop' takes at most ", kMaxStops, " strings"));
      }
      for (const json& x : st) {
        if (!x.is_string())
          return InvalidParam("stop", "'stop' must be a string or a list of strings");
        if (x.get_ref<const std::string&>().size() > kMaxStopBytes) {
          return InvalidParam(
              "stop", absl::StrCat("a stop string is longer than ", kMaxStopBytes, " bytes"));
        }
        if (!x.get_ref<const std::string&>().empty()) s->stop.push_back(x.get<std::string>());
      }
    } else {
      return InvalidParam("stop", "'stop' must be a string or a list of strings");
    }
  }
  if (!IsNull(body, "stop_token_ids")) {
    const json& st = body["stop_token_ids"];
    if (!st.is_array()) return InvalidParam("stop_token_ids", "'stop_token_ids' must be a list");
    for (const json& x : st) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 ||
          x.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
        return InvalidParam("stop_token_ids", "'stop_token_ids' must be non-negative integers");
      }
      s->stop_token_ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
    }
  }
  if (!IsNull(body, "user") && !body["user"].is_string()) {
    return InvalidParam("user", "'user' must be a string");
  }
  if (!IsNull(body, "logit_bias")) {
    const json& lb = body["logit_bias"];
    if (!lb.is_object()) return InvalidParam("logit_bias", "'logit_bias' must be an object");
    if (!lb.empty()) return InvalidParam("logit_bias", "'logit_bias' is not supported");
  }
  v.reset();
  MOE_GW_RETURN_IF_ERROR(GetInt(body, "min_tokens", 0, 1 << 30, &v));
  if (v && *v != 0) return InvalidParam("min_tokens", "'min_tokens' is not supported");
  float rep = 1;
  MOE_GW_RETURN_IF_ERROR(GetFloat(body, "repetition_penalty", 0, 2, true, &rep));
  if (rep != 1) return InvalidParam("repetition_penalty", "'repetition_penalty' is not supported");
  float min_p = 0;
  MOE_GW_RETURN_IF_ERROR(GetFloat(body, "min_p", 0, 1, false, &min_p));
  if (min_p != 0) return InvalidParam("min_p", "'min_p' is not supported");
  return absl::OkStatus();
}

absl::StatusOr<json> ParseBody(std::string_view text) {
  MOE_GW_RETURN_IF_ERROR(CheckJsonDepth(text));
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return absl::InvalidArgumentError("the request body is not valid JSON");
  if (!body.is_object())
    return absl::InvalidArgumentError("the request body must be a JSON object");
  return body;
}

const std::set<std::string>& CommonFields() {
  static const std::set<std::string> k = {"model",
                                          "temperature",
                                          "top_p",
                                          "top_k",
                                          "seed",
                                          "n",
                                          "presence_penalty",
                                          "frequency_penalty",
                                          "ignore_eos",
                                          "include_stop_str_in_output",
                                          "skip_special_tokens",
                                          "stream",
                                          "stream_options",
                                          "stop",
                                          "stop_token_ids",
                                          "user",
                                          "logit_bias",
                                          "min_tokens",
                                          "repetition_penalty",
                                          "min_p",
                                          "max_tokens",
                                          "logprobs",
                                          "metadata",
                                          "store",
                                          "service_tier",
                                          "best_of",
                                          "echo"};
  return k;
}

// Code points of UTF-8 text (continuation bytes are not counted).
int64_t CodePoints(std::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

absl::Status ParseBestOf(const json& body, int n) {
  std::optional<int64_t> v;
  MOE_GW_RETURN_IF_ERROR(GetInt(body, "best_of", 1, kMaxN, &v));
  if (v && *v != n) return InvalidParam("best_of", "'best_of' other than 'n' is not supported");
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckJsonDepth(std::string_view body, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char ch : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (ch == '\\') {
        escaped = true;
      } else if (ch == '"') {
        in_string = false;
      }
      continue;
    }
    if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      if (++depth > max_depth) {
        return absl::InvalidArgumentError(
            absl::StrCat("the request body nests deeper than ", max_depth, " levels"));
      }
    } else if (ch == ']' || ch == '}') {
      --depth;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view text) {
  absl::StatusOr<json> parsed = ParseBody(text);
  if (!parsed.ok()) return parsed.status();
  const json& body = *parsed;
  std::set<std::string> known = CommonFields();
  known.insert({"prompt", "suffix", "add_special_tokens"});
  MOE_GW_RETURN_IF_ERROR(CheckKnownFields(body, known));
  CompletionRequest r;
  MOE_GW_RETURN_IF_ERROR(ParsePrompt(body, &r));
  MOE_GW_RETURN_IF_ERROR(ParseCommon(body, &r.sampling, &r.model));
  std::optional<int64_t> v;
  MOE_GW_RETURN_IF_ERROR(GetInt(body, "max_tokens", 0, 1 << 30, &v));
  r.sampling.max_tokens = v ? static_cast<int>(*v) : 16;
  v.reset();
  MOE_GW_RETURN_IF_ERROR(GetInt(body, "logprobs", 0, kMaxLogprobs, &v));
  if (v) r.sampling.logprobs = static_cast<int>(*v);
  MOE_GW_RETURN_IF_ERROR(GetBool(body, "echo", &r.echo));
  MOE_GW_RETURN_IF_ERROR(GetBool(body, "add_special_tokens", &r.add_special_tokens));
  MOE_GW_RETURN_IF_ERROR(ParseBestOf(body, r.sampling.n));
  if (!IsNull(body, "suffix")) {
    if (!body["suffix"].is_string()) return InvalidParam("suffix", "'suffix' must be a string");
    if (!body["suffix"].get_ref<const std::string&>().empty()) {
      return InvalidParam("suffix", "'suffix' is not supported");
    }
  }
  if (*r.sampling.max_tokens == 0 && !r.echo) {
    return InvalidParam("max_tokens", "'max_tokens' must be at least 1 (0 only with 'echo')");
  }
  return r;
}

absl::StatusOr<ChatRequest> ParseChatRequest(std::string_view text) {
  absl::StatusOr<json> parsed = ParseBody(text);
  if (!parsed.ok()) return parsed.status();
  const json& body = *parsed;
  std::set<std::string> known = CommonFields();
  known.insert({"messages", "max_completion_tokens", "top_logprobs", "tools", "tool_choice",
                "parallel_tool_calls", "response_format", "add_generation_prompt",
                "continue_final_message", "chat_template_kwargs", "modalities", "reasoning_effort",
                "functions", "function_call"});
  known.erase("echo");
  known.erase("best_of");
  MOE_GW_RETURN_IF_ERROR(CheckKnownFields(body, known));
  ChatRequest r;
  MOE_GW_RETURN_IF_ERROR(ParseCommon(body, &r.sampling, &r.model));
  // messages
  if (IsNull(body, "messages")) return InvalidParam("messages", "'messages' is required");
  const json& msgs = body["messages"];
  if (!msgs.is_array()) return InvalidParam("messages", "'messages' must be a list");
  if (msgs.empty()) return InvalidParam("messages", "'messages' must not be empty");
  static const std::set<std::string> roles = {"system",    "developer", "user",
                                              "assistant", "tool",      "function"};
  // Validated here on `body`; kept in the request's key order from `ordered`.
  const nlohmann::ordered_json ordered = nlohmann::ordered_json::parse(text, nullptr, false);
  r.messages = nlohmann::ordered_json::array();
  for (size_t i = 0; i < msgs.size(); ++i) {
    const json& m = msgs[i];
    const std::string where = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return InvalidParam("messages", where + " must be an object");
    if (!m.contains("role") || !m["role"].is_string()) {
      return InvalidParam("messages", where + ".role must be a string");
    }
    const std::string role = m["role"].get<std::string>();
    if (!roles.count(role)) {
      return InvalidParam("messages",
                          absl::StrCat(where, ".role '", role,
                                       "' is not one of system, developer, user, assistant, "
                                       "tool, function"));
    }
    nlohmann::ordered_json out = ordered.at("messages").at(i);
    auto c = m.find("content");
    if (c == m.end() || c->is_null()) {
      if (role != "assistant" || !m.contains("tool_calls")) {
        return InvalidParam("messages", where + ".content is required");
      }
      out["content"] = nullptr;
    } else if (c->is_string()) {
      // as is
    } else if (c->is_array()) {
      std::vector<std::string> parts;
      for (const json& p : *c) {
        if (!p.is_object() || !p.contains("type") || !p["type"].is_string()) {
          return InvalidParam("messages", where + ".content parts must be objects with a 'type'");
        }
        if (p["type"] != "text" || !p.contains("text") || !p["text"].is_string()) {
          return InvalidParam("messages", where + ": only text content parts are supported");
        }
        parts.push_back(p["text"].get<std::string>());
      }
      out["content"] = absl::StrJoin(parts, "\n");
    } else {
      return InvalidParam("messages", where + ".content must be a string or a list of parts");
    }
    if (m.contains("name") && !m["name"].is_string()) {
      return InvalidParam("messages", where + ".name must be a string");
    }
    if (m.contains("tool_calls") && !m["tool_calls"].is_array() && !m["tool_calls"].is_null()) {
      return InvalidParam("messages", where + ".tool_calls must be a list");
    }
    r.messages.push_back(std::move(out));
  }
  // max tokens: max_completion_tokens wins over the deprecated max_tokens
  std::optional<int64_t> v;
  MOE_GW_RETURN_IF_ERROR(GetInt(body, "max_completion_tokens", 1, 1 << 30, &v));
  if (!v) MOE_GW_RETURN_IF_ERROR(GetInt(body, "max_tokens", 1, 1 << 30, &v));
  if (v) r.sampling.max_tokens = static_cast<int>(*v);
  // logprobs: a boolean, with top_logprobs alternatives
  MOE_GW_RETURN_IF_ERROR(GetBool(body, "logprobs", &r.logprobs));
  v.reset();
  MOE_GW_RETURN_IF_ERROR(GetInt(body, "top_logprobs", 0, kMaxLogprobs, &v));
  if (v && !r.logprobs) {
    return InvalidParam("top_logprobs", "'top_logprobs' needs 'logprobs': true");
  }
  if (r.logprobs) r.sampling.logprobs = v ? static_cast<int>(*v) : 0;
  if (!IsNull(body, "tools")) {
    if (!body["tools"].is_array()) return InvalidParam("tools", "'tools' must be a list");
    for (const json& t : body["tools"]) {
      if (!t.is_object()) return InvalidParam("tools", "every tool must be an object");
    }
    r.tools = ordered.at("tools");
  }
  if (!IsNull(body, "tool_choice")) {
    const json& tc = body["tool_choice"];
    if (!(tc.is_string() && (tc == "none" || tc == "auto"))) {
      return InvalidParam("tool_choice", "only 'none' and 'auto' tool_choice are supported");
    }
  }
  if (!IsNull(body, "response_format")) {
    const json& rf = body["response_format"];
    if (!rf.is_object() || !rf.contains("type") || rf["type"] != "text") {
      return InvalidParam("response_format", "only {\"type\": \"text\"} is supported");
    }
  }
  MOE_GW_RETURN_IF_ERROR(GetBool(body, "add_generation_prompt", &r.add_generation_prompt));
  MOE_GW_RETURN_IF_ERROR(GetBool(body, "continue_final_message", &r.continue_final_message));
  if (r.continue_final_message && r.add_generation_prompt &&
      body.contains("add_generation_prompt") && body["add_generation_prompt"].is_boolean()) {
    return InvalidParam("continue_final_message",
                        "'continue_final_message' and 'add_generation_prompt' exclude each other");
  }
  if (r.continue_final_message) r.add_generation_prompt = false;
  if (!IsNull(body, "chat_template_kwargs")) {
    if (!body["chat_template_kwargs"].is_object()) {
      return InvalidParam("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    }
    r.chat_template_kwargs = ordered.at("chat_template_kwargs");
  }
  return r;
}

json LegacyLogprobs(const std::vector<LogprobEntry>& entries, const TokenText& text,
                    int64_t offset_start, int64_t* offset_end) {
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(),
       text_offset = json::array();
  int64_t offset = offset_start;
  for (const LogprobEntry& e : entries) {
    const std::string t = text(e.id);
    tokens.push_back(t);
    text_offset.push_back(offset);
    offset += CodePoints(t);
    if (!e.scored) {
      token_logprobs.push_back(nullptr);
      top_logprobs.push_back(nullptr);
      continue;
    }
    token_logprobs.push_back(e.scored->logprob);
    json top = json::object();
    for (const auto& [id, lp] : e.scored->top) {
      const std::string k = text(id);
      if (!top.contains(k)) top[k] = lp;
    }
    if (!top.contains(t)) top[t] = e.scored->logprob;
    top_logprobs.push_back(std::move(top));
  }
  if (offset_end != nullptr) *offset_end = offset;
  return json{{"tokens", std::move(tokens)},
              {"token_logprobs", std::move(token_logprobs)},
              {"top_logprobs", std::move(top_logprobs)},
              {"text_offset", std::move(text_offset)}};
}

namespace {
json BytesOf(const std::string& b) {
  json a = json::array();
  for (unsigned char c : b) a.push_back(static_cast<int>(c));
  return a;
}
}  // namespace

json ChatLogprobs(const std::vector<ScoredToken>& tokens, int top_n, const TokenText& text,
                  const TokenBytes& bytes) {
  json content = json::array();
  for (const ScoredToken& t : tokens) {
    json top = json::array();
    for (size_t i = 0; i < t.top.size() && static_cast<int>(i) < top_n; ++i) {
      top.push_back(json{{"token", text(t.top[i].first)},
                         {"logprob", t.top[i].second},
                         {"bytes", BytesOf(bytes(t.top[i].first))}});
    }
    content.push_back(json{{"token", text(t.id)},
                           {"logprob", t.logprob},
                           {"bytes", BytesOf(bytes(t.id))},
                           {"top_logprobs", std::move(top)}});
  }
  return json{{"content", std::move(content)}, {"refusal", nullptr}};
}

json UsageJson(const Usage& u) {
  return json{{"prompt_tokens", u.prompt_tokens},
              {"completion_tokens", u.completion_tokens},
              {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

namespace {
json FinishJson(const std::string& f) { return f.empty() ? json(nullptr) : json(f); }
}  // namespace

json CompletionReply(const std::string& id, int64_t created, const std::string& model,
                     const std::vector<ChoiceResult>& choices, const Usage& usage) {
  json cs = json::array();
  for (const ChoiceResult& c : choices) {
    cs.push_back(json{{"index", c.index},
                      {"text", c.text},
                      {"logprobs", c.logprobs ? *c.logprobs : json(nullptr)},
                      {"finish_reason", FinishJson(c.finish_reason)}});
  }
  return json{{"id", id},       {"object", "text_completion"}, {"created", created},
              {"model", model}, {"choices", std::move(cs)},    {"usage", UsageJson(usage)}};
}

json ChatReply(const std::string& id, int64_t created, const std::string& model,
               const std::vector<ChoiceResult>& choices, const Usage& usage) {
  json cs = json::array();
  for (const ChoiceResult& c : choices) {
    cs.push_back(json{{"index", c.index},
                      {"message", {{"role", "assistant"}, {"content", c.text}}},
                      {"logprobs", c.logprobs ? *c.logprobs : json(nullptr)},
                      {"finish_reason", FinishJson(c.finish_reason)}});
  }
  return json{{"id", id},       {"object", "chat.completion"}, {"created", created},
              {"model", model}, {"choices", std::move(cs)},    {"usage", UsageJson(usage)}};
}

json CompletionChunk(const std::string& id, int64_t created, const std::string& model, int index,
                     const std::string& text, const std::optional<json>& logprobs,
                     const std::string& finish_reason) {
  json choice{{"index", index},
              {"text", text},
              {"logprobs", logprobs ? *logprobs : json(nullptr)},
              {"finish_reason", FinishJson(finish_reason)}};
  return json{{"id", id},
              {"object", "text_completion"},
              {"created", created},
              {"model", model},
              {"choices", json::array({std::move(choice)})}};
}

json ChatChunk(const std::string& id, int64_t created, const std::string& model, int index,
               const json& delta, const std::optional<json>& logprobs,
               const std::string& finish_reason) {
  json choice{{"index", index},
              {"delta", delta},
              {"logprobs", logprobs ? *logprobs : json(nullptr)},
              {"finish_reason", FinishJson(finish_reason)}};
  return json{{"id", id},
              {"object", "chat.completion.chunk"},
              {"created", created},
              {"model", model},
              {"choices", json::array({std::move(choice)})}};
}

json UsageChunk(const std::string& id, int64_t created, const std::string& model, bool chat,
                const Usage& usage) {
  return json{{"id", id},
              {"object", chat ? "chat.completion.chunk" : "text_completion"},
              {"created", created},
              {"model", model},
              {"choices", json::array()},
              {"usage", UsageJson(usage)}};
}

std::string SseEvent(const json& j) {
  return absl::StrCat("data: ", j.dump(-1, ' ', false, json::error_handler_t::replace), "\n\n");
}

}  // namespace moe::gateway
