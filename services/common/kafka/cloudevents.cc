#include "services/common/kafka/cloudevents.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "google/protobuf/util/time_util.h"

namespace casebridge::kafka {

using casebridge::events::v1::CaseEvent;
using casebridge::events::v1::Sensitivity;

std::string SensitivityName(Sensitivity sensitivity) {
  switch (sensitivity) {
    case casebridge::events::v1::SENSITIVITY_ORDINARY: return "ordinary";
    case casebridge::events::v1::SENSITIVITY_CONFIDENTIAL: return "confidential";
    case casebridge::events::v1::SENSITIVITY_SPECIAL_HEALTH: return "special-health";
    case casebridge::events::v1::SENSITIVITY_SPECIAL_ADDICTION: return "special-addiction";
    case casebridge::events::v1::SENSITIVITY_SPECIAL_CRIMINAL: return "special-criminal";
    default: return "unspecified";
  }
}

std::string FormatSequence(uint64_t sequence) { return absl::StrFormat("%020u", sequence); }

std::vector<Header> CloudEventHeaders(const CaseEvent& event) {
  std::vector<Header> headers = {
      {"content-type", kContentType},
      {"ce_specversion", "1.0"},
      {"ce_id", event.id()},
      {"ce_source", event.source()},
      {"ce_type", event.type()},
      {"ce_subject", event.subject()},
      {"ce_time", google::protobuf::util::TimeUtil::ToString(event.occurred_at())},
      {"ce_dataschema", kDataSchema},
      {"ce_sequence", FormatSequence(event.sequence())},
      {"ce_municipality", event.municipality()},
      {"ce_sensitivity", SensitivityName(event.sensitivity())},
  };
  if (event.has_supersedes() && !event.supersedes().event_id().empty()) {
    headers.push_back({"ce_supersedes", event.supersedes().event_id()});
  }
  return headers;
}

Record CaseEventRecord(const std::string& topic, const CaseEvent& event,
                       const TraceContext& trace) {
  Record record;
  record.topic = topic;
  record.key = event.subject();
  event.SerializeToString(&record.value);
  record.headers = CloudEventHeaders(event);
  AppendTraceHeaders(trace, record.headers);
  return record;
}

void AppendTraceHeaders(const TraceContext& trace, std::vector<Header>& headers) {
  if (!trace.valid()) return;
  const std::string traceparent = trace.traceparent();
  headers.push_back({kTraceparentKey, traceparent});
  if (!trace.tracestate().empty()) headers.push_back({kTracestateKey, trace.tracestate()});
  headers.push_back({kCeTraceparentHeader, traceparent});
  if (!trace.tracestate().empty()) headers.push_back({kCeTracestateHeader, trace.tracestate()});
}

TraceContext TraceContextOf(const Record& record) {
  const auto extract = [&record](absl::string_view parent_key, absl::string_view state_key) {
    std::vector<absl::string_view> traceparents;
    std::vector<absl::string_view> tracestates;
    for (const Header& header : record.headers) {
      if (absl::EqualsIgnoreCase(header.key, parent_key)) traceparents.push_back(header.value);
      if (absl::EqualsIgnoreCase(header.key, state_key)) tracestates.push_back(header.value);
    }
    return TraceContext::Extract(traceparents, tracestates);
  };
  TraceContext trace = extract(kTraceparentKey, kTracestateKey);
  if (!trace.valid()) trace = extract(kCeTraceparentHeader, kCeTracestateHeader);
  return trace;
}

absl::StatusOr<CaseEvent> DecodeCaseEventRecord(const Record& record) {
  const std::string where = absl::StrCat(record.topic, "/", record.partition, "@", record.offset);
  if (record.HeaderValue("content-type") != kContentType) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": content-type is not ", kContentType));
  }
  CaseEvent event;
  if (!event.ParseFromString(record.value)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": value is not a CaseEvent"));
  }
  if (record.HeaderValue("ce_id") != event.id() || record.HeaderValue("ce_type") != event.type() ||
      record.HeaderValue("ce_subject") != event.subject() || record.key != event.subject()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ce_id, ce_type, ce_subject or the key disagree with the event"));
  }
  return event;
}

}  // namespace casebridge::kafka
