// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent`
// and `tracestate` a caller sends with a gRPC call, carried with the event the
// call records through the ledger, the canonical topic, coordination and the
// party deliveries (docs/adr/0022-w3c-trace-context.md).
//
//   traceparent  00-<trace-id: 32 hex>-<parent-id: 16 hex>-<trace-flags: 2 hex>
//   tracestate   vendor list, e.g. "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
//
// casebridge records no spans itself. Each hop — a recording call, the
// coordination service's handling of one consumed event — is one span: it
// keeps the trace id and flags it received and gets a parent-id of its own,
// and everything the hop writes (the event, the deliveries, their audit
// records) carries that span's context. A hop that received no valid
// `traceparent` starts a new trace (`ChildOf`), so every event has one.
//
// Parsing follows the specification's rules: version 00 is exactly 55
// characters of lowercase hex and dashes; version ff, upper case, wrong
// lengths and all-zero ids are invalid (the trace restarts); a higher
// version is read as far as version 00 goes if the 55 characters are
// followed by the end or a dash, and is sent on as version 00. Surrounding
// spaces and tabs are ignored. A `tracestate` is kept only with a valid
// `traceparent`, and dropped whole if it is invalid (a bad key or value, a
// duplicate key, more than 32 list members, or more than 512 characters).
// Neither header may carry personal data; casebridge logs trace ids only.
//
// Example:
//   TraceContext incoming = IncomingTraceContext(*server_context);
//   TraceContext span = TraceContext::ChildOf(incoming);  // this hop
//   headers.push_back({"traceparent", span.traceparent()});
//
// Thread safety: a TraceContext is a value; generating ids is thread-safe.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace grpc {
class ServerContext;
}  // namespace grpc

namespace casebridge {

// The W3C header (and gRPC metadata) names.
inline constexpr char kTraceparentKey[] = "traceparent";
inline constexpr char kTracestateKey[] = "tracestate";

// The largest `tracestate` kept, in characters, and the most list members.
inline constexpr size_t kMaxTracestateLength = 512;
inline constexpr size_t kMaxTracestateMembers = 32;

class TraceContext {
 public:
  // The `sampled` flag (bit 0) and Level 2's `random` flag (bit 1); other
  // flags are reserved and sent as zero.
  static constexpr uint8_t kSampled = 0x01;
  static constexpr uint8_t kRandom = 0x02;

  // No trace: `valid()` is false.
  TraceContext() = default;

  // Parses a `traceparent` value and its `tracestate` (empty: none).
  // nullopt if `traceparent` is invalid; an invalid `tracestate` is dropped
  // (the context has none) without affecting the `traceparent`.
  static std::optional<TraceContext> Parse(absl::string_view traceparent,
                                           absl::string_view tracestate = {});

  // Parses the values of the `traceparent` and `tracestate` fields of one
  // call or record, several fields of a name as received: more or fewer
  // than one `traceparent` is no trace (the specification's rule for
  // duplicated headers); several `tracestate` fields are joined with
  // commas. Returns an invalid context when there is no usable trace.
  static TraceContext Extract(const std::vector<absl::string_view>& traceparents,
                              const std::vector<absl::string_view>& tracestates);

  // Returns `tracestate` cleaned of optional whitespace and empty members,
  // or nullopt if it is invalid (see above). An empty or whitespace-only
  // value is valid and yields "".
  static std::optional<std::string> NormalizeTracestate(absl::string_view tracestate);

  // A new trace: random trace id and parent-id, flags `sampled` (casebridge
  // writes every event's trace id into its headers and log lines, and a
  // consumer's parent-based sampler should record its spans too), no
  // tracestate.
  static TraceContext NewRoot();

  // The span of a hop that received `parent`: `parent.Child()` if `parent`
  // is valid, else `NewRoot()`.
  static TraceContext ChildOf(const TraceContext& parent);

  // The same trace id, flags and tracestate with a new random parent-id.
  // REQUIRES: valid().
  TraceContext Child() const;

  bool valid() const { return !trace_id_.empty(); }

  // The `traceparent` value (version 00); "" if not valid.
  std::string traceparent() const;
  // The normalised `tracestate` value; "" for none.
  const std::string& tracestate() const { return tracestate_; }
  // 32 lowercase hex characters; "" if not valid.
  const std::string& trace_id() const { return trace_id_; }
  // 16 lowercase hex characters: the span that wrote this context.
  const std::string& parent_id() const { return parent_id_; }
  uint8_t flags() const { return flags_; }
  bool sampled() const { return (flags_ & kSampled) != 0; }

  bool operator==(const TraceContext&) const = default;

 private:
  std::string trace_id_;
  std::string parent_id_;
  uint8_t flags_ = 0;
  std::string tracestate_;
};

// Prints `context` as its traceparent and tracestate (for test messages).
void PrintTo(const TraceContext& context, std::ostream* os);

// The trace context the caller of an RPC sent in its metadata
// (`traceparent`, `tracestate`; gRPC delivers metadata keys in lower case).
// Invalid when there is none or it does not parse: the RPC is not refused.
TraceContext IncomingTraceContext(const grpc::ServerContext& context);

}  // namespace casebridge
