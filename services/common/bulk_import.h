// The engine of the case systems' bulk import (`Import`, a bidirectional
// stream of recording requests): requests are recorded concurrently across
// cases and in stream order within a case, and results go back in request
// order.
//
//   read ──► lane (by case) ──► record ──► reorder by index ──► write
//            one thread per lane, a case's requests all in one lane
//
// Each lane records its requests one at a time, so a case's events are
// recorded — and numbered, and published — in the order the stream gave
// them; lanes run side by side, so the recorder's group commit and the
// producer's pipelining serve many cases at once. At most `window` requests
// are read ahead of the last result written (flow control: a client that
// streams faster than the gateway records waits in gRPC's own flow control).
//
// Failure: results are written in index order; at the first failed request
// the import stops and returns that request's status, its message prefixed
// "request N: ". A lane that fails a request skips every later request it
// holds (so a case never continues past a gap); other lanes stop taking
// requests after that index, but may have recorded some already.
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "casebridge/recording/v1/recording.pb.h"

namespace casebridge {

struct BulkImportOptions {
  // Requests recorded at the same time (lanes, one thread each).
  int lanes = 16;
  // Requests read but not yet answered, at most.
  int window = 256;
};

// What a bulk import needs from its caller.
struct BulkImportCalls {
  // Reads the next request into `*request`; false at the end of the stream.
  std::function<bool(casebridge::recording::v1::ImportRequest* request)> read;
  // The case a request belongs to (its lane is chosen by it). Requests whose
  // case cannot be told may return anything; the recording call reports
  // their error.
  std::function<std::string(const casebridge::recording::v1::ImportRequest& request)> case_of;
  // Records one request, as the unary RPC would.
  std::function<absl::StatusOr<casebridge::recording::v1::RecordResponse>(
      const casebridge::recording::v1::ImportRequest& request)>
      record;
  // Sends one result; false if the client is gone.
  std::function<bool(const casebridge::recording::v1::ImportResult& result)> write;
};

// Runs a bulk import to the end of the stream or the first failure. Returns
// OK when every request was recorded and its result written; the failed
// request's status ("request N: …") at the first failure; kCancelled if
// `write` failed (the client went away).
absl::Status RunBulkImport(const BulkImportCalls& calls, BulkImportOptions options = {});

}  // namespace casebridge
