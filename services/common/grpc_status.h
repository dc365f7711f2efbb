// The one place an `absl::Status` becomes a `grpc::Status`. The numeric codes
// are the same by design (both are google.rpc.Code), so the conversion keeps
// code and message; the application-only codes (INVALID_ARGUMENT, NOT_FOUND,
// ALREADY_EXISTS, FAILED_PRECONDITION, …) therefore always mean "the gateway
// decided this".
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace casebridge {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// True for a failure on the gateway's side — Kafka, a store, a vendor system
// — rather than a request it refuses: what a recording RPC logs.
inline bool IsServiceFailure(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kResourceExhausted:
      return true;
    default:
      return false;
  }
}

inline absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace casebridge
