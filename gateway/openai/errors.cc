#include "gateway/openai/errors.h"

#include <nlohmann/json.hpp>

#include "absl/strings/cord.h"

namespace moe::gateway {
namespace {
constexpr char kParamPayload[] = "moe.gateway/param";
}  // namespace

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string ErrorTypeFor(int http_status) {
  switch (http_status) {
    case 400:
    case 404:
    case 405:
    case 413:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 429:
      return "rate_limit_error";
    case 503:
      return "service_unavailable_error";
    default:
      return http_status < 500 ? "invalid_request_error" : "server_error";
  }
}

absl::Status WithParam(absl::Status status, std::string_view param) {
  status.SetPayload(kParamPayload, absl::Cord(std::string(param)));
  return status;
}

absl::Status InvalidParam(std::string_view param, std::string_view message) {
  return WithParam(absl::InvalidArgumentError(std::string(message)), param);
}

ApiError ErrorFromStatus(const absl::Status& status) {
  ApiError e;
  e.http_status = HttpStatusFor(status.code());
  e.type = ErrorTypeFor(e.http_status);
  e.message = std::string(status.message());
  if (e.message.empty()) e.message = absl::StatusCodeToString(status.code());
  if (auto p = status.GetPayload(kParamPayload)) e.param = std::string(*p);
  if (status.code() == absl::StatusCode::kNotFound) e.code = "model_not_found";
  return e;
}

ApiError MakeError(int http_status, std::string message, std::optional<std::string> code) {
  ApiError e;
  e.http_status = http_status;
  e.type = ErrorTypeFor(http_status);
  e.message = std::move(message);
  e.code = std::move(code);
  return e;
}

std::string ErrorBody(const ApiError& error) {
  nlohmann::json j;
  j["error"]["message"] = error.message;
  j["error"]["type"] = error.type;
  j["error"]["param"] = error.param ? nlohmann::json(*error.param) : nlohmann::json(nullptr);
  j["error"]["code"] = error.code ? nlohmann::json(*error.code) : nlohmann::json(nullptr);
  // Invalid UTF-8 in a message (echoed input) must not throw: replace it.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace moe::gateway
