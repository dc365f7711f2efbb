// GoogleTest matchers for `absl::Status`, `absl::StatusOr<T>` and
// `grpc::Status` (abseil's own matchers are newer than Debian's abseil).
//
//   EXPECT_THAT(store.Put(x), IsOk());
//   EXPECT_THAT(Parse(""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("field")));
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace casebridge::testing {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& status = GetStatus(arg);
  if (!status.ok()) *result_listener << "status is " << status;
  return status.ok();
}

MATCHER_P(StatusIs, code, "has status code " + ::testing::PrintToString(code)) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

// Matches a `grpc::Status` with the given code and a message matching `m`.
MATCHER_P2(GrpcStatusIs, code, message_matcher, "") {
  *result_listener << "grpc status is " << arg.error_code() << " " << arg.error_message();
  return arg.error_code() == code &&
         ::testing::ExplainMatchResult(message_matcher, arg.error_message(), result_listener);
}

#define ASSERT_OK(expr) ASSERT_THAT(expr, ::casebridge::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT(expr, ::casebridge::testing::IsOk())

}  // namespace casebridge::testing
