// Fuzzes the W3C trace context parser (services/common/trace_context.*): the
// input up to the first newline is a `traceparent`, the rest a `tracestate`
// (both arrive from any caller's gRPC metadata and any Kafka record).
//
// Checked besides ASan/UBSan:
//   * a parsed context is valid: a version 00 `traceparent` of 55 lowercase
//     hex characters and dashes, no all-zero id, no reserved flag, that
//     parses back to the same context;
//   * its `tracestate` is normalised: at most 32 members and 512
//     characters, and normalising it again changes nothing;
//   * `NormalizeTracestate` of any input is idempotent and within the caps;
//   * `Child` keeps the trace id, flags and tracestate and changes the
//     parent-id; `Extract` agrees with `Parse` for one `traceparent`.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "services/common/trace_context.h"

namespace {

using casebridge::TraceContext;

void Fail(const char* what, absl::string_view input) {
  fprintf(stderr, "trace_context_fuzzer: %s (input of %zu bytes)\n", what, input.size());
  abort();
}

bool IsLowerHexOrDash(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-';
}

void CheckTracestate(const std::string& tracestate, absl::string_view input) {
  if (tracestate.size() > casebridge::kMaxTracestateLength) Fail("tracestate too long", input);
  const size_t members =
      tracestate.empty()
          ? 0
          : static_cast<size_t>(std::count(tracestate.begin(), tracestate.end(), ',')) + 1;
  if (members > casebridge::kMaxTracestateMembers) Fail("too many tracestate members", input);
  const std::optional<std::string> again = TraceContext::NormalizeTracestate(tracestate);
  if (!again.has_value() || *again != tracestate) Fail("tracestate not normalised", input);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(input, absl::MaxSplits('\n', 1));
  const absl::string_view traceparent = parts.first;
  const absl::string_view tracestate = parts.second;

  if (const std::optional<std::string> normalized = TraceContext::NormalizeTracestate(input);
      normalized.has_value()) {
    CheckTracestate(*normalized, input);
  }

  const std::optional<TraceContext> parsed = TraceContext::Parse(traceparent, tracestate);
  const TraceContext extracted = TraceContext::Extract({traceparent}, {tracestate});
  if (parsed.has_value() != extracted.valid()) Fail("Extract disagrees with Parse", input);
  if (!parsed.has_value()) return 0;
  if (!(*parsed == extracted)) Fail("Extract disagrees with Parse", input);
  if (!parsed->valid()) Fail("parsed context not valid", input);

  const std::string header = parsed->traceparent();
  if (header.size() != 55 || header.compare(0, 3, "00-") != 0 || header[35] != '-' ||
      header[52] != '-') {
    Fail("traceparent not version 00", input);
  }
  for (char c : header) {
    if (!IsLowerHexOrDash(c)) Fail("traceparent not lowercase hex", input);
  }
  if (parsed->trace_id() == std::string(32, '0') || parsed->parent_id() == std::string(16, '0')) {
    Fail("all-zero id accepted", input);
  }
  if ((parsed->flags() & ~(TraceContext::kSampled | TraceContext::kRandom)) != 0) {
    Fail("reserved flag kept", input);
  }
  CheckTracestate(parsed->tracestate(), input);
  const std::optional<TraceContext> reparsed = TraceContext::Parse(header, parsed->tracestate());
  if (!reparsed.has_value() || !(*reparsed == *parsed)) Fail("does not parse back", input);

  const TraceContext child = parsed->Child();
  if (child.trace_id() != parsed->trace_id() || child.flags() != parsed->flags() ||
      child.tracestate() != parsed->tracestate() || child.parent_id() == parsed->parent_id()) {
    Fail("Child does not continue the trace", input);
  }
  return 0;
}
