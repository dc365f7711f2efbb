// The CloudEvents Kafka protocol binding, binary mode, for `CaseEvent`.
//
// A record's value is the serialised `casebridge.events.v1.CaseEvent`, its
// key is the event's `subject`, and the CloudEvents attributes travel as
// headers:
//
//   content-type      application/protobuf
//   ce_specversion    1.0
//   ce_id             event.id
//   ce_source         event.source
//   ce_type           event.type
//   ce_subject        event.subject (the pseudonymous case key)
//   ce_time           event.occurred_at, RFC 3339
//   ce_dataschema     urn:casebridge:proto:casebridge.events.v1.CaseEvent
//   ce_sequence       event.sequence, zero-padded to 20 digits (the
//                     CloudEvents `sequence` extension compares as strings)
//   ce_municipality   event.municipality
//   ce_sensitivity    ordinary | confidential | special-health |
//                     special-addiction | special-criminal
//   ce_supersedes     the superseded event's id (only when set)
//
// Party topics add `ce_recipient` and `ce_recipientseq` (see
// casebridge.coordination.v1.Delivery). No header ever carries personal data.
//
// Distributed tracing (W3C Trace Context, docs/adr/0022-w3c-trace-context.md):
// a record built with a valid trace context also carries
//
//   traceparent       the W3C header, which OpenTelemetry's propagators and
//                     Kafka instrumentation read
//   tracestate        (only when there is one)
//   ce_traceparent    the same values as the CloudEvents distributed-tracing
//   ce_tracestate     extension attributes in the Kafka binding, which
//                     CloudEvents SDKs read
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "services/common/kafka/record.h"
#include "services/common/trace_context.h"

namespace casebridge::kafka {

inline constexpr char kContentType[] = "application/protobuf";
inline constexpr char kDataSchema[] = "urn:casebridge:proto:casebridge.events.v1.CaseEvent";
// The CloudEvents distributed-tracing extension's headers.
inline constexpr char kCeTraceparentHeader[] = "ce_traceparent";
inline constexpr char kCeTracestateHeader[] = "ce_tracestate";

// Returns the CloudEvents headers for `event` (see the table above).
std::vector<Header> CloudEventHeaders(const casebridge::events::v1::CaseEvent& event);

// Builds the record for `event` on `topic`: key = subject, value = the
// serialised event, headers = `CloudEventHeaders(event)` and the trace
// headers of `trace` (`AppendTraceHeaders`).
Record CaseEventRecord(const std::string& topic, const casebridge::events::v1::CaseEvent& event,
                       const TraceContext& trace = {});

// Appends `traceparent`, `ce_traceparent` and, if `trace` has a tracestate,
// `tracestate` and `ce_tracestate`. Nothing if `trace` is not valid.
void AppendTraceHeaders(const TraceContext& trace, std::vector<Header>& headers);

// The trace context a consumed record carries: its `traceparent` (with its
// `tracestate`) header, else its `ce_traceparent` (with `ce_tracestate`);
// header names in any case. Invalid if neither parses.
TraceContext TraceContextOf(const Record& record);

// Decodes a consumed record. Returns kInvalidArgument if the content type
// is not application/protobuf, the value does not parse, or the `ce_id`,
// `ce_type` or `ce_subject` headers or the key disagree with the event.
absl::StatusOr<casebridge::events::v1::CaseEvent> DecodeCaseEventRecord(const Record& record);

// The `ce_sensitivity` spelling of `sensitivity`.
std::string SensitivityName(casebridge::events::v1::Sensitivity sensitivity);

// Formats `sequence` for `ce_sequence` (20 digits, zero-padded).
std::string FormatSequence(uint64_t sequence);

}  // namespace casebridge::kafka
