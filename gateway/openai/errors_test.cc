#include "gateway/openai/errors.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace moe::gateway {
namespace {

TEST(ErrorsTest, StatusToHttpTable) {
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kOutOfRange), 400);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kFailedPrecondition), 400);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kUnimplemented), 501);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kInternal), 500);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kUnknown), 500);
}

TEST(ErrorsTest, BodyHasOpenAiShapeWithParam) {
  ApiError e = ErrorFromStatus(InvalidParam("max_tokens", "'max_tokens' must be >= 0"));
  EXPECT_EQ(e.http_status, 400);
  auto j = nlohmann::json::parse(ErrorBody(e));
  EXPECT_EQ(j["error"]["message"], "'max_tokens' must be >= 0");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "max_tokens");
  EXPECT_TRUE(j["error"]["code"].is_null());
}

TEST(ErrorsTest, OverloadAndUnavailable) {
  ApiError busy = ErrorFromStatus(absl::ResourceExhaustedError("queue full"));
  EXPECT_EQ(busy.http_status, 429);
  EXPECT_EQ(busy.type, "rate_limit_error");
  EXPECT_FALSE(busy.param.has_value());
  ApiError down = ErrorFromStatus(absl::UnavailableError("no worker"));
  EXPECT_EQ(down.http_status, 503);
  auto j = nlohmann::json::parse(ErrorBody(MakeError(401, "bad key", "invalid_api_key")));
  EXPECT_EQ(j["error"]["type"], "authentication_error");
  EXPECT_EQ(j["error"]["code"], "invalid_api_key");
  EXPECT_TRUE(j["error"]["param"].is_null());
}

TEST(ErrorsTest, InvalidUtf8InMessageDoesNotThrow) {
  ApiError e = MakeError(400, std::string("bad \xff\xfe input"));
  auto j = nlohmann::json::parse(ErrorBody(e));
  EXPECT_EQ(j["error"]["message"].get<std::string>().substr(0, 4), "bad ");
}

}  // namespace
}  // namespace moe::gateway
