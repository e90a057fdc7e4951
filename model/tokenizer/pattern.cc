#include "model/tokenizer/pattern.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/tokenizer/utf8.h"

namespace moe::model::tokenizer_internal {
namespace {

// Rewrites the Oniguruma-only escapes tokenizer.json regexes use into PCRE2 syntax:
// \uXXXX -> \x{XXXX}. Everything else is passed through.
std::string TranslateOniguruma(std::string_view re) {
  std::string out;
  out.reserve(re.size());
  for (size_t i = 0; i < re.size(); ++i) {
    if (re[i] != '\\' || i + 1 >= re.size()) {
      out.push_back(re[i]);
      continue;
    }
    if (re[i + 1] == 'u' && i + 6 <= re.size() &&
        std::isxdigit(static_cast<unsigned char>(re[i + 2])) &&
        std::isxdigit(static_cast<unsigned char>(re[i + 3])) &&
        std::isxdigit(static_cast<unsigned char>(re[i + 4])) &&
        std::isxdigit(static_cast<unsigned char>(re[i + 5]))) {
      absl::StrAppend(&out, "\\x{", ToAbsl(re.substr(i + 2, 4)), "}");
      i += 5;
      continue;
    }
    out.push_back(re[i]);
    out.push_back(re[i + 1]);
    ++i;
  }
  return out;
}

// Per-thread match context with a JIT stack large enough for long whitespace runs.
class ThreadMatchContext {
 public:
  ThreadMatchContext() {
    context_ = pcre2_match_context_create(nullptr);
    stack_ = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (context_ != nullptr && stack_ != nullptr) {
      pcre2_jit_stack_assign(context_, nullptr, stack_);
    }
  }
  ~ThreadMatchContext() {
    pcre2_jit_stack_free(stack_);
    pcre2_match_context_free(context_);
  }
  pcre2_match_context* get() { return context_; }

 private:
  pcre2_match_context* context_ = nullptr;
  pcre2_jit_stack* stack_ = nullptr;
};

pcre2_match_context* MatchContext() {
  thread_local ThreadMatchContext context;
  return context.get();
}

}  // namespace

std::unique_ptr<Pattern> Pattern::Literal(std::string_view literal) {
  std::unique_ptr<Pattern> p(new Pattern);
  p->literal_ = std::string(literal);
  return p;
}

absl::StatusOr<std::unique_ptr<Pattern>> Pattern::Regex(std::string_view regex) {
  const std::string translated = TranslateOniguruma(regex);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                    PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return absl::InvalidArgumentError(absl::StrCat("regex '", ToAbsl(regex),
                                                   "' does not compile at offset ", error_offset,
                                                   ": ", reinterpret_cast<const char*>(message)));
  }
  // JIT is an optimisation: if it is unavailable the interpreter is used.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  std::unique_ptr<Pattern> p(new Pattern);
  p->code_ = code;
  return p;
}

Pattern::~Pattern() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

std::vector<Pattern::Span> Pattern::FindAll(std::string_view text) const {
  std::vector<Span> spans;
  if (code_ == nullptr) {
    if (literal_.empty()) return spans;
    for (size_t pos = text.find(literal_); pos != std::string_view::npos;
         pos = text.find(literal_, pos + literal_.size())) {
      spans.emplace_back(pos, pos + literal_.size());
    }
    return spans;
  }
  // PCRE2 in UTF mode must not see ill-formed input; callers pass valid text, and anything
  // else simply has no matches.
  if (!IsValidUtf8(text)) return spans;
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    int rc =
        pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data, MatchContext());
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
      // JIT stack or match limits: retry with the interpreter before giving up.
      rc = pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, data,
                       nullptr);
    }
    if (rc < 0) break;  // no further match (or a resource limit): the rest is unmatched
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    spans.emplace_back(ovector[0], ovector[1]);
    if (ovector[1] > ovector[0]) {
      start = ovector[1];
    } else {
      if (ovector[1] >= text.size()) break;
      start = ovector[1] + CharLen(text, ovector[1]);
    }
  }
  pcre2_match_data_free(data);
  return spans;
}

std::string Pattern::ReplaceAll(std::string_view text, std::string_view replacement) const {
  std::string out;
  size_t last = 0;
  for (const auto& [begin, end] : FindAll(text)) {
    out.append(text.substr(last, begin - last));
    out.append(replacement);
    last = end;
  }
  out.append(text.substr(last));
  return out;
}

absl::StatusOr<std::unique_ptr<Pattern>> ParsePatternField(const nlohmann::json& pattern) {
  if (pattern.is_object() && pattern.contains("String")) {
    return Pattern::Literal(pattern.at("String").get<std::string>());
  }
  if (pattern.is_object() && pattern.contains("Regex")) {
    return Pattern::Regex(pattern.at("Regex").get<std::string>());
  }
  return absl::InvalidArgumentError(
      absl::StrCat("pattern must be {\"String\": ...} or {\"Regex\": ...}, got ", pattern.dump()));
}

}  // namespace moe::model::tokenizer_internal
