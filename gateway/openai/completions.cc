#include "gateway/openai/completions.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
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
    return InvalidParam(key, absl::StrCat("'", key, "' must be in ", lo_open ? "(" : "[", lo,
                                          ", ", hi, "], got ", x));
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

absl::Status ParsePrompt(const json& body, CompletionRequest* r) {
  if (IsNull(body, "prompt")) return InvalidParam("prompt", "'prompt' is required");
  const json& p = body.at("prompt");
  if (p.is_string()) {
    r->prompt_text = p.get<std::string>();
    return absl::OkStatus();
  }
  if (!p.is_array() || p.empty()) {
    return InvalidParam("prompt", "'prompt' must be a string or a non-empty list of token ids");
  }
  if (p.size() == 1 && p[0].is_string()) {  // ["text"]: one prompt
    r->prompt_text = p[0].get<std::string>();
    return absl::OkStatus();
  }
  for (const json& t : p) {
    if (t.is_string() || t.is_array()) {
      return InvalidParam("prompt", "several prompts in one request are not supported yet");
    }
    if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
        t.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return InvalidParam("prompt", "'prompt' token ids must be non-negative integers");
    }
    r->prompt_ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return absl::OkStatus();
}

// Code points of UTF-8 text (continuation bytes are not counted).
int64_t CodePoints(std::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

absl::StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view text) {
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    return absl::InvalidArgumentError("the request body is not valid JSON");
  }
  if (!body.is_object()) return absl::InvalidArgumentError("the request body must be a JSON object");
  CompletionRequest r;
  if (!IsNull(body, "model")) {
    if (!body["model"].is_string()) return InvalidParam("model", "'model' must be a string");
    r.model = body["model"].get<std::string>();
  }
  if (absl::Status s = ParsePrompt(body, &r); !s.ok()) return s;
  std::optional<int64_t> v;
  if (absl::Status s = GetInt(body, "max_tokens", 0, 1 << 30, &v); !s.ok()) return s;
  if (v) r.max_tokens = static_cast<int>(*v);
  if (absl::Status s = GetFloat(body, "temperature", 0, 2, false, &r.temperature); !s.ok()) {
    return s;
  }
  if (absl::Status s = GetFloat(body, "top_p", 0, 1, true, &r.top_p); !s.ok()) return s;
  v.reset();
  if (absl::Status s = GetInt(body, "top_k", -1, 1 << 30, &v); !s.ok()) return s;
  if (v) r.top_k = *v < 0 ? 0 : static_cast<int>(*v);
  v.reset();
  if (absl::Status s = GetInt(body, "seed", std::numeric_limits<int64_t>::min(),
                              std::numeric_limits<int64_t>::max(), &v);
      !s.ok()) {
    return s;
  }
  if (v) r.seed = static_cast<uint64_t>(*v);
  v.reset();
  if (absl::Status s = GetInt(body, "logprobs", 0, kMaxLogprobs, &v); !s.ok()) return s;
  if (v) r.logprobs = static_cast<int>(*v);
  if (absl::Status s = GetBool(body, "echo", &r.echo); !s.ok()) return s;
  if (absl::Status s = GetBool(body, "ignore_eos", &r.ignore_eos); !s.ok()) return s;
  v.reset();
  if (absl::Status s = GetInt(body, "n", 1, 128, &v); !s.ok()) return s;
  if (v && *v != 1) return InvalidParam("n", "'n' > 1 is not supported yet");
  v.reset();
  if (absl::Status s = GetInt(body, "best_of", 1, 128, &v); !s.ok()) return s;
  if (v && *v != 1) return InvalidParam("best_of", "'best_of' > 1 is not supported yet");
  bool stream = false;
  if (absl::Status s = GetBool(body, "stream", &stream); !s.ok()) return s;
  if (stream) return InvalidParam("stream", "'stream': true is not supported yet");
  if (!IsNull(body, "stop")) {
    const json& st = body["stop"];
    const bool empty = (st.is_array() && st.empty()) || (st.is_string() && st.get_ref<const std::string&>().empty());
    if (!st.is_string() && !st.is_array()) {
      return InvalidParam("stop", "'stop' must be a string or a list of strings");
    }
    if (!empty) return InvalidParam("stop", "'stop' is not supported yet");
  }
  if (!IsNull(body, "suffix")) return InvalidParam("suffix", "'suffix' is not supported");
  for (const char* key : {"presence_penalty", "frequency_penalty"}) {
    float pen = 0;
    if (absl::Status s = GetFloat(body, key, -2, 2, false, &pen); !s.ok()) return s;
    if (pen != 0) return InvalidParam(key, absl::StrCat("'", key, "' is not supported yet"));
  }
  if (r.max_tokens == 0 && !r.echo) {
    return InvalidParam("max_tokens", "'max_tokens' must be at least 1 (0 only with 'echo')");
  }
  return r;
}

json LegacyLogprobs(const std::vector<LogprobEntry>& entries, const TokenText& text,
                    int64_t offset_start) {
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
  return json{{"tokens", std::move(tokens)},
              {"token_logprobs", std::move(token_logprobs)},
              {"top_logprobs", std::move(top_logprobs)},
              {"text_offset", std::move(text_offset)}};
}

json CompletionReply(const CompletionReplyParts& p) {
  json choice{{"index", 0},
              {"text", p.text},
              {"logprobs", p.logprobs ? *p.logprobs : json(nullptr)},
              {"finish_reason", p.finish_reason}};
  return json{{"id", p.id},
              {"object", "text_completion"},
              {"created", p.created},
              {"model", p.model},
              {"choices", json::array({std::move(choice)})},
              {"usage",
               {{"prompt_tokens", p.prompt_tokens},
                {"completion_tokens", p.completion_tokens},
                {"total_tokens", p.prompt_tokens + p.completion_tokens}}}};
}

}  // namespace moe::gateway
