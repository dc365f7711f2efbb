// Propagation macros for `absl::Status` and `absl::StatusOr<T>`.
//
// Debian 12's abseil (20220623) has no ABSL_RETURN_IF_ERROR or
// ABSL_ASSIGN_OR_RETURN; these have the same meaning. When the pinned abseil
// reaches 20260526, a rename switches to the real ones.
//
// Example:
//   RETURN_IF_ERROR(Validate(request));
//   ASSIGN_OR_RETURN(std::string subject, pseudonymizer.SubjectFor(cpr));
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CASEBRIDGE_CONCAT_INNER_(a, b) a##b
#define CASEBRIDGE_CONCAT_(a, b) CASEBRIDGE_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the enclosing function if it is not OK.
#define RETURN_IF_ERROR(expr)                         \
  do {                                                \
    const ::absl::Status _cb_status = (expr);         \
    if (!_cb_status.ok()) return _cb_status;          \
  } while (0)

// Evaluates `rexpr` (an `absl::StatusOr<T>`); on error returns its status,
// otherwise moves the value into `lhs` (a declaration or an lvalue).
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  CASEBRIDGE_ASSIGN_OR_RETURN_IMPL_(CASEBRIDGE_CONCAT_(_cb_statusor_, __LINE__), lhs, rexpr)

#define CASEBRIDGE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                      \
  if (!statusor.ok()) return std::move(statusor).status();      \
  lhs = std::move(statusor).value()
