#include "services/coordination/audit_log.h"

#include <openssl/rand.h>

#include <chrono>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "google/protobuf/util/time_util.h"
#include "services/common/event_ids.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/proto_time.h"

namespace casebridge::coordination {
namespace {

using casebridge::audit::v1::AuditAction;
using casebridge::audit::v1::AuditRecord;
using casebridge::audit::v1::DisclosedEvent;

// A random (version 4) UUID.
std::string RandomUuid() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) {
    // Practically impossible; fall back to the clock so the id stays unique.
    const int64_t now = absl::ToUnixNanos(absl::Now());
    for (int i = 0; i < 16; ++i) b[i] = static_cast<unsigned char>(now >> ((i % 8) * 8));
  }
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  return absl::StrFormat(
      "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
      b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

}  // namespace

std::string AuditType(AuditAction action) {
  switch (action) {
    case casebridge::audit::v1::AUDIT_ACTION_DELIVERED: return "dk.casebridge.audit.delivered.v1";
    case casebridge::audit::v1::AUDIT_ACTION_TIMELINE_READ:
      return "dk.casebridge.audit.timeline-read.v1";
    case casebridge::audit::v1::AUDIT_ACTION_STREAM_READ:
      return "dk.casebridge.audit.stream-read.v1";
    case casebridge::audit::v1::AUDIT_ACTION_CASE_READ: return "dk.casebridge.audit.case-read.v1";
    default: return "dk.casebridge.audit.unspecified.v1";
  }
}

kafka::Record AuditKafkaRecord(const std::string& topic, const AuditRecord& record,
                               const TraceContext& trace) {
  kafka::Record out;
  out.topic = topic;
  out.key = record.subject();
  out.value = record.SerializeAsString();
  out.headers = {{"content-type", kafka::kContentType},
                 {"ce_specversion", "1.0"},
                 {"ce_id", record.id()},
                 {"ce_source", record.service()},
                 {"ce_type", AuditType(record.action())},
                 {"ce_time", google::protobuf::util::TimeUtil::ToString(record.at())},
                 {"ce_dataschema", kAuditDataSchema}};
  if (!record.subject().empty()) out.headers.push_back({"ce_subject", record.subject()});
  kafka::AppendTraceHeaders(trace, out.headers);
  return out;
}

absl::StatusOr<AuditRecord> DecodeAuditRecord(const kafka::Record& record) {
  if (record.HeaderValue("content-type") != std::string(kafka::kContentType)) {
    return absl::InvalidArgumentError("audit record: content-type is not application/protobuf");
  }
  AuditRecord audit;
  if (!audit.ParseFromString(record.value)) {
    return absl::InvalidArgumentError("audit record: value is not an AuditRecord");
  }
  if (record.HeaderValue("ce_id") != audit.id()) {
    return absl::InvalidArgumentError("audit record: ce_id disagrees with the record");
  }
  return audit;
}

AuditRecord DeliveryAuditRecord(const casebridge::coordination::v1::Delivery& delivery,
                                absl::Time at) {
  AuditRecord record;
  record.set_id(EventIdFor(absl::StrCat("audit:", delivery.recipient()),
                           absl::StrCat(delivery.stream_sequence())));
  *record.mutable_at() = ToProtoTimestamp(at);
  record.set_action(casebridge::audit::v1::AUDIT_ACTION_DELIVERED);
  record.set_recipient(delivery.recipient());
  record.set_caller(delivery.recipient());
  record.set_subject(delivery.subject());
  record.set_first_stream_sequence(delivery.stream_sequence());
  record.set_last_stream_sequence(delivery.stream_sequence());
  DisclosedEvent& event = *record.add_events();
  event.set_event_id(delivery.event().id());
  event.set_type(delivery.event().type());
  event.set_disclosure(delivery.disclosure());
  *event.mutable_consent_ids() = delivery.consent_ids();
  event.set_basis(delivery.disclosure_basis());
  return record;
}

AuditLog::AuditLog(kafka::Publisher& publisher, std::string topic, std::string municipality,
                   std::string service)
    : publisher_(publisher),
      topic_(std::move(topic)),
      municipality_(std::move(municipality)),
      service_(std::move(service)) {}

std::future<absl::Status> AuditLog::Send(AuditRecord record, absl::Time now,
                                         const TraceContext& trace) {
  record.set_municipality(municipality_);
  record.set_service(service_);
  if (record.id().empty()) record.set_id(RandomUuid());
  if (!record.has_at()) *record.mutable_at() = ToProtoTimestamp(now);
  return publisher_.Send(AuditKafkaRecord(topic_, record, trace));
}

absl::Status AuditLog::Write(AuditRecord record, absl::Time now, absl::Duration timeout) {
  std::future<absl::Status> outcome = Send(std::move(record), now);
  if (outcome.wait_for(absl::ToChronoMilliseconds(timeout)) != std::future_status::ready) {
    return absl::UnavailableError("audit: the audit record is not known to be durable (timeout)");
  }
  absl::Status status = outcome.get();
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat("audit: ", status.message()));
  }
  return absl::OkStatus();
}

}  // namespace casebridge::coordination
