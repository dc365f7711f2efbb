// Validation and mapping shared by the recording RPCs of every system
// service. Every error is kInvalidArgument with the message
// "<field path>: <reason>", the field path written as in the request
// (e.g. "context.actor.unit", "decision.reasons[0].code").
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "casebridge/common/v1/common.pb.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "casebridge/recording/v1/recording.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "services/common/event_recorder.h"
#include "services/common/pseudonym.h"

namespace casebridge {

// A case resolved at the gRPC edge.
struct ResolvedCase {
  std::string subject;
  // The CPR number if the caller gave one, normalised to 10 digits; else
  // empty. Personal data: passed to the vendor adapter only.
  std::string cpr;
};

// Validates a timestamp: within RFC 3339's range (0001-01-01 to
// 9999-12-31, what every consumer's protobuf library can convert), nanos
// within a second.
absl::Status ValidateTimestamp(const google::protobuf::Timestamp& t, const std::string& field);

// Validates an idempotency key: 1–128 characters from [A-Za-z0-9._:-].
absl::Status ValidateIdempotencyKey(const std::string& key, const std::string& field);

// Resolves `ref` to a subject: a CPR number is validated and pseudonymised;
// a subject must be 64 lower-case hex digits.
absl::StatusOr<ResolvedCase> ResolveCase(const casebridge::common::v1::CaseRef& ref,
                                         const std::string& municipality,
                                         const Pseudonymizer& pseudonymizer,
                                         const std::string& field);

// Validates an actor (role and unit required).
absl::Status ValidateActor(const casebridge::common::v1::Actor& actor, const std::string& field);

// Validates the context of a recording request at time `now`. The case
// reference is checked by `ResolveCase`; here only that it is present.
absl::Status ValidateRecordContext(const casebridge::recording::v1::RecordContext& context,
                                   bool legal_basis_required, absl::Time now);

// Validates a decision as given by a caller (no `decision_id`).
absl::Status ValidateDecision(const casebridge::events::v1::Decision& decision,
                              const std::string& field);

// Validates an appointment to be booked (no id, no status).
absl::Status ValidateNewAppointment(const casebridge::events::v1::Appointment& appointment,
                                    const std::string& field);

// Validates one step of a referral's status chain as given by a caller: what
// each `status` requires (see `RecordReferralStepRequest` in
// recording.proto), and that fields belonging to another step are absent.
// The order of steps is the receiving system's to check, not this.
absl::Status ValidateReferralStep(const casebridge::events::v1::Referral& referral,
                                  const std::string& field);

// Returns the fingerprint of `request` for the idempotency check: its
// deterministic serialisation with its case reference (`case_ref` or
// `context.case_ref`) replaced by the subject, so a retry that names the
// case by CPR or by subject matches.
std::string RequestFingerprint(const google::protobuf::Message& request, const std::string& subject);

// Copies the context's actor, occurred-at, legal basis, sensitivity
// (default ORDINARY) and supersession into `event`, and drops from `event`
// every field unknown to this schema (e.g. a newer client's or arbitrary
// bytes in a request's payload), which nothing has validated.
void ApplyContext(const casebridge::recording::v1::RecordContext& context,
                  casebridge::events::v1::CaseEvent& event);

// The response for `outcome`.
casebridge::recording::v1::RecordResponse ToRecordResponse(const RecordOutcome& outcome);

}  // namespace casebridge
