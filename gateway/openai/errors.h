// OpenAI-style error replies: the one table from absl::StatusCode to an HTTP status and error
// type, and the JSON body {"error": {"message", "type", "param", "code"}}.
#ifndef MOE_GATEWAY_OPENAI_ERRORS_H_
#define MOE_GATEWAY_OPENAI_ERRORS_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace moe::gateway {

// An error as the HTTP layer sends it.
struct ApiError {
  int http_status = 500;
  std::string type;  // "invalid_request_error", "authentication_error", ...
  std::string message;
  std::optional<std::string> param;  // the offending request field, if one is to blame
  std::optional<std::string> code;
};

// The mapping table (absl/gRPC code -> HTTP status). INVALID_ARGUMENT, FAILED_PRECONDITION,
// OUT_OF_RANGE: 400; UNAUTHENTICATED: 401; PERMISSION_DENIED: 403; NOT_FOUND: 404;
// RESOURCE_EXHAUSTED: 429; UNAVAILABLE: 503; DEADLINE_EXCEEDED: 504; UNIMPLEMENTED: 501;
// anything else (and OK, which is never an error): 500.
int HttpStatusFor(absl::StatusCode code);
// The OpenAI error `type` for an HTTP status.
std::string ErrorTypeFor(int http_status);

// Attaches the name of the request field to blame (read back by ErrorFromStatus).
absl::Status WithParam(absl::Status status, std::string_view param);
absl::Status InvalidParam(std::string_view param, std::string_view message);

// A non-OK status as an API error (status, type, message, param from WithParam).
ApiError ErrorFromStatus(const absl::Status& status);
// An error built directly at the HTTP layer (404 route, 405, 413, ...).
ApiError MakeError(int http_status, std::string message,
                   std::optional<std::string> code = std::nullopt);

// {"error": {"message": ..., "type": ..., "param": ... or null, "code": ... or null}}
std::string ErrorBody(const ApiError& error);

}  // namespace moe::gateway

#endif  // MOE_GATEWAY_OPENAI_ERRORS_H_
