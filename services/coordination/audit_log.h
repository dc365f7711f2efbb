// The audit log: one `casebridge.audit.v1.AuditRecord` per disclosure, on
// the audit topic, which only auditors may read (a Kafka ACL).
//
// No disclosure without its audit record: the delivery processor marks a
// delivery published only when its audit record is durable too, and a read
// RPC answers only after its audit record is durable (otherwise the caller
// gets UNAVAILABLE and sees nothing).
//
// On Kafka an audit record is a CloudEvent in binary mode like the case
// events: value = the serialised AuditRecord, key = its subject, headers
// `content-type`, `ce_specversion`, `ce_id`, `ce_source`, `ce_type`
// (`dk.casebridge.audit.<action>.v1`, e.g. `dk.casebridge.audit.delivered.v1`),
// `ce_time`, `ce_dataschema` and `ce_subject` (when set). The audit record
// of a delivery also carries the delivery's trace headers (`traceparent`,
// `ce_traceparent`, and `tracestate`, `ce_tracestate` when there is one;
// kafka/cloudevents.h).
//
// Thread safety: safe for concurrent use.
#pragma once

#include <future>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "casebridge/audit/v1/audit.pb.h"
#include "casebridge/coordination/v1/coordination_service.pb.h"
#include "services/common/kafka/publisher.h"
#include "services/common/kafka/record.h"
#include "services/common/trace_context.h"

namespace casebridge::coordination {

inline constexpr char kDefaultAuditTopic[] = "casebridge.audit.v1";
inline constexpr char kAuditDataSchema[] = "urn:casebridge:proto:casebridge.audit.v1.AuditRecord";

// The `ce_type` of an audit record of `action`.
std::string AuditType(casebridge::audit::v1::AuditAction action);

// The Kafka record of `record` on `topic`, with the trace headers of
// `trace` (none if it is not valid).
kafka::Record AuditKafkaRecord(const std::string& topic,
                               const casebridge::audit::v1::AuditRecord& record,
                               const TraceContext& trace = {});

// Decodes an audit record read from Kafka (for tests and tools).
absl::StatusOr<casebridge::audit::v1::AuditRecord> DecodeAuditRecord(const kafka::Record& record);

// The audit record of one delivery to a recipient's topic. Its id is derived
// from the recipient and the stream sequence, so a delivery published twice
// (after a crash) yields the same audit id.
casebridge::audit::v1::AuditRecord DeliveryAuditRecord(
    const casebridge::coordination::v1::Delivery& delivery, absl::Time at);

class AuditLog {
 public:
  // `service` is the coordination source, e.g. "/casebridge/coordination/0751".
  AuditLog(kafka::Publisher& publisher, std::string topic, std::string municipality,
           std::string service);

  // Fills `municipality`, `service` and, if empty, `id` (random UUID) and
  // `at`, and enqueues the record (with the trace headers of `trace`); the
  // future is OK once it is durable.
  std::future<absl::Status> Send(casebridge::audit::v1::AuditRecord record, absl::Time now,
                                 const TraceContext& trace = {});

  // Sends and waits at most `timeout`: OK only when the record is durable.
  absl::Status Write(casebridge::audit::v1::AuditRecord record, absl::Time now,
                     absl::Duration timeout);

  const std::string& topic() const { return topic_; }

 private:
  kafka::Publisher& publisher_;
  const std::string topic_;
  const std::string municipality_;
  const std::string service_;
};

}  // namespace casebridge::coordination
