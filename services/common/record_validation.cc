#include "services/common/proto_time.h"
#include "services/common/record_validation.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "absl/strings/str_cat.h"
#include "services/common/status_macros.h"

namespace casebridge {
namespace {

using casebridge::events::v1::Appointment;
using casebridge::events::v1::Decision;

absl::Status Invalid(const std::string& field, const std::string& reason) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", reason));
}

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return ToAbslTime(t);
}

absl::Status ValidateOffer(const casebridge::events::v1::Offer& offer, const std::string& field) {
  if (offer.code().empty()) return Invalid(field + ".code", "required");
  if (!casebridge::common::v1::Administration_IsValid(offer.administration())) {
    return Invalid(field + ".administration", "unknown value");
  }
  return absl::OkStatus();
}

absl::Status ValidateReasons(const google::protobuf::RepeatedPtrField<casebridge::events::v1::Reason>& reasons,
                             const std::string& field) {
  for (int i = 0; i < reasons.size(); ++i) {
    if (reasons[i].code().empty()) return Invalid(absl::StrCat(field, "[", i, "].code"), "required");
  }
  return absl::OkStatus();
}

absl::Status ValidateLegalReference(const casebridge::common::v1::LegalReference& ref,
                                    const std::string& field) {
  if (ref.law().empty()) return Invalid(field + ".law", "required");
  if (ref.paragraph().empty()) return Invalid(field + ".paragraph", "required");
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateTimestamp(const google::protobuf::Timestamp& t, const std::string& field) {
  // RFC 3339 range (0001-01-01 to 9999-12-31), nanos within a second.
  if (t.seconds() < -62135596800LL || t.seconds() > 253402300799LL || t.nanos() < 0 ||
      t.nanos() > 999999999) {
    return Invalid(field, "not a valid timestamp");
  }
  return absl::OkStatus();
}

absl::Status ValidateIdempotencyKey(const std::string& key, const std::string& field) {
  if (key.empty()) return Invalid(field, "required");
  if (key.size() > 128) return Invalid(field, "longer than 128 characters");
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return Invalid(field, "may only contain A-Z a-z 0-9 . _ : -");
  }
  return absl::OkStatus();
}

absl::StatusOr<ResolvedCase> ResolveCase(const casebridge::common::v1::CaseRef& ref,
                                         const std::string& municipality,
                                         const Pseudonymizer& pseudonymizer,
                                         const std::string& field) {
  switch (ref.ref_case()) {
    case casebridge::common::v1::CaseRef::kCpr: {
      ResolvedCase resolved;
      ASSIGN_OR_RETURN(resolved.cpr, NormalizeCpr(ref.cpr(), field + ".cpr"));
      ASSIGN_OR_RETURN(resolved.subject,
                       pseudonymizer.SubjectFor(municipality, resolved.cpr, field + ".cpr"));
      return resolved;
    }
    case casebridge::common::v1::CaseRef::kSubject:
      if (!IsSubject(ref.subject())) {
        return Invalid(field + ".subject", "not a case key (64 lower-case hex digits)");
      }
      return ResolvedCase{ref.subject(), ""};
    case casebridge::common::v1::CaseRef::REF_NOT_SET:
      break;
  }
  return Invalid(field, "required (cpr or subject)");
}

absl::Status ValidateActor(const casebridge::common::v1::Actor& actor, const std::string& field) {
  if (actor.role() == casebridge::common::v1::ROLE_UNSPECIFIED) return Invalid(field + ".role", "required");
  if (!casebridge::common::v1::Role_IsValid(actor.role())) return Invalid(field + ".role", "unknown value");
  if (actor.unit().empty()) return Invalid(field + ".unit", "required");
  return absl::OkStatus();
}

absl::Status ValidateRecordContext(const casebridge::recording::v1::RecordContext& context,
                                   bool legal_basis_required, absl::Time now) {
  RETURN_IF_ERROR(ValidateIdempotencyKey(context.idempotency_key(), "context.idempotency_key"));
  if (context.case_ref().ref_case() == casebridge::common::v1::CaseRef::REF_NOT_SET) {
    return Invalid("context.case_ref", "required (cpr or subject)");
  }
  if (!context.has_actor()) return Invalid("context.actor", "required");
  RETURN_IF_ERROR(ValidateActor(context.actor(), "context.actor"));
  if (context.has_occurred_at()) {
    RETURN_IF_ERROR(ValidateTimestamp(context.occurred_at(), "context.occurred_at"));
    if (ToTime(context.occurred_at()) > now + absl::Minutes(5)) {
      return Invalid("context.occurred_at", "is in the future");
    }
  }
  if (legal_basis_required && context.legal_basis().empty()) {
    return Invalid("context.legal_basis", "required (at least one law and paragraph)");
  }
  for (int i = 0; i < context.legal_basis_size(); ++i) {
    RETURN_IF_ERROR(ValidateLegalReference(context.legal_basis(i),
                                           absl::StrCat("context.legal_basis[", i, "]")));
  }
  if (!casebridge::events::v1::Sensitivity_IsValid(context.sensitivity())) {
    return Invalid("context.sensitivity", "unknown value");
  }
  if (context.has_supersedes()) {
    if (context.supersedes().event_id().empty()) {
      return Invalid("context.supersedes.event_id", "required");
    }
    if (context.supersedes().kind() == casebridge::events::v1::Supersession::KIND_UNSPECIFIED) {
      return Invalid("context.supersedes.kind", "required (correction or cancellation)");
    }
    if (!casebridge::events::v1::Supersession::Kind_IsValid(context.supersedes().kind())) {
      return Invalid("context.supersedes.kind", "unknown value");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateDecision(const Decision& decision, const std::string& field) {
  if (!decision.decision_id().empty()) {
    return Invalid(field + ".decision_id", "must be empty (the system assigns it)");
  }
  if (decision.outcome() == casebridge::events::v1::DECISION_OUTCOME_UNSPECIFIED) {
    return Invalid(field + ".outcome", "required");
  }
  if (!casebridge::events::v1::DecisionOutcome_IsValid(decision.outcome())) {
    return Invalid(field + ".outcome", "unknown value");
  }
  if (!decision.has_offer()) return Invalid(field + ".offer", "required");
  RETURN_IF_ERROR(ValidateOffer(decision.offer(), field + ".offer"));
  RETURN_IF_ERROR(ValidateReasons(decision.reasons(), field + ".reasons"));
  for (int i = 0; i < decision.alternatives_size(); ++i) {
    RETURN_IF_ERROR(ValidateOffer(decision.alternatives(i).offer(),
                                  absl::StrCat(field, ".alternatives[", i, "].offer")));
  }
  if (!decision.has_decided_by()) return Invalid(field + ".decided_by", "required");
  RETURN_IF_ERROR(ValidateActor(decision.decided_by(), field + ".decided_by"));
  const bool adverse =
      decision.outcome() == casebridge::events::v1::DECISION_OUTCOME_REFUSED ||
      decision.outcome() == casebridge::events::v1::DECISION_OUTCOME_PARTIALLY_GRANTED;
  if (adverse) {
    if (decision.reasons().empty()) {
      return Invalid(field + ".reasons", "required for a refusal or partial grant");
    }
    if (decision.complaint().text().empty()) {
      return Invalid(field + ".complaint.text", "required for a refusal or partial grant");
    }
    if (!decision.complaint().has_deadline()) {
      return Invalid(field + ".complaint.deadline", "required for a refusal or partial grant");
    }
  }
  if (decision.complaint().has_deadline()) {
    RETURN_IF_ERROR(ValidateTimestamp(decision.complaint().deadline(), field + ".complaint.deadline"));
  }
  if (decision.has_effective_from()) {
    RETURN_IF_ERROR(ValidateTimestamp(decision.effective_from(), field + ".effective_from"));
  }
  return absl::OkStatus();
}

absl::Status ValidateNewAppointment(const Appointment& appointment, const std::string& field) {
  if (!appointment.appointment_id().empty()) {
    return Invalid(field + ".appointment_id", "must be empty (the system assigns it)");
  }
  if (appointment.status() != casebridge::events::v1::APPOINTMENT_STATUS_UNSPECIFIED &&
      appointment.status() != casebridge::events::v1::APPOINTMENT_STATUS_SCHEDULED) {
    return Invalid(field + ".status", "must be empty when booking");
  }
  if (appointment.kind() == casebridge::events::v1::APPOINTMENT_KIND_UNSPECIFIED) {
    return Invalid(field + ".kind", "required");
  }
  if (!casebridge::events::v1::AppointmentKind_IsValid(appointment.kind())) {
    return Invalid(field + ".kind", "unknown value");
  }
  if (!appointment.has_start()) return Invalid(field + ".start", "required");
  if (!appointment.has_end()) return Invalid(field + ".end", "required");
  RETURN_IF_ERROR(ValidateTimestamp(appointment.start(), field + ".start"));
  RETURN_IF_ERROR(ValidateTimestamp(appointment.end(), field + ".end"));
  if (ToTime(appointment.end()) <= ToTime(appointment.start())) {
    return Invalid(field + ".end", "must be after start");
  }
  if (appointment.location().name().empty() && appointment.location().online_url().empty()) {
    return Invalid(field + ".location", "required (name or online_url)");
  }
  if (appointment.attendees().empty()) {
    return Invalid(field + ".attendees", "required (at least the citizen)");
  }
  for (int i = 0; i < appointment.attendees_size(); ++i) {
    const auto role = appointment.attendees(i).role();
    if (role == casebridge::common::v1::ROLE_UNSPECIFIED) {
      return Invalid(absl::StrCat(field, ".attendees[", i, "].role"), "required");
    }
    if (!casebridge::common::v1::Role_IsValid(role)) {
      return Invalid(absl::StrCat(field, ".attendees[", i, "].role"), "unknown value");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateReferralStep(const casebridge::events::v1::Referral& referral,
                                  const std::string& field) {
  using casebridge::events::v1::ReferralStatus;
  const ReferralStatus status = referral.status();
  if (status == casebridge::events::v1::REFERRAL_STATUS_UNSPECIFIED) {
    return Invalid(field + ".status", "required");
  }
  if (!casebridge::events::v1::ReferralStatus_IsValid(status)) {
    return Invalid(field + ".status", "unknown value");
  }
  const bool sent = status == casebridge::events::v1::REFERRAL_STATUS_SENT;
  if (sent && !referral.referral_id().empty()) {
    return Invalid(field + ".referral_id", "must be empty when sending (the system assigns it)");
  }
  if (!sent && referral.referral_id().empty()) {
    return Invalid(field + ".referral_id", "required (the id the sending system gave it)");
  }
  if (referral.has_offer()) RETURN_IF_ERROR(ValidateOffer(referral.offer(), field + ".offer"));
  if (sent && !referral.has_offer()) return Invalid(field + ".offer", "required when sending");
  auto validate_unit = [&](bool present, const casebridge::common::v1::Unit& unit,
                           const char* name) -> absl::Status {
    if (!present) return absl::OkStatus();
    if (unit.id().empty()) return Invalid(absl::StrCat(field, ".", name, ".id"), "required");
    if (!casebridge::common::v1::Administration_IsValid(unit.administration())) {
      return Invalid(absl::StrCat(field, ".", name, ".administration"), "unknown value");
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(validate_unit(referral.has_from_unit(), referral.from_unit(), "from_unit"));
  RETURN_IF_ERROR(validate_unit(referral.has_to_unit(), referral.to_unit(), "to_unit"));
  RETURN_IF_ERROR(
      validate_unit(referral.has_forwarded_to(), referral.forwarded_to(), "forwarded_to"));
  if (sent && !referral.has_to_unit()) return Invalid(field + ".to_unit", "required when sending");
  RETURN_IF_ERROR(ValidateReasons(referral.reasons(), field + ".reasons"));
  const bool reasons_required = status == casebridge::events::v1::REFERRAL_STATUS_REFUSED ||
                                status == casebridge::events::v1::REFERRAL_STATUS_INTERRUPTED;
  if (reasons_required && referral.reasons().empty()) {
    return Invalid(field + ".reasons", "required (at least one) for a refusal or interruption");
  }
  const bool assessed = status == casebridge::events::v1::REFERRAL_STATUS_ASSESSED;
  if (assessed && !referral.has_assessment()) return Invalid(field + ".assessment", "required");
  if (!assessed && referral.has_assessment()) {
    return Invalid(field + ".assessment", "only for an assessment (status ASSESSED)");
  }
  if (assessed) {
    const casebridge::events::v1::Assessment& assessment = referral.assessment();
    RETURN_IF_ERROR(ValidateReasons(assessment.reasons(), field + ".assessment.reasons"));
    if (!assessment.in_target_group() && assessment.reasons().empty()) {
      return Invalid(field + ".assessment.reasons", "required when not in the target group");
    }
    for (int i = 0; i < assessment.alternatives_size(); ++i) {
      RETURN_IF_ERROR(ValidateOffer(assessment.alternatives(i).offer(),
                                    absl::StrCat(field, ".assessment.alternatives[", i, "].offer")));
    }
  }
  const bool forwarded = status == casebridge::events::v1::REFERRAL_STATUS_FORWARDED;
  if (forwarded && !referral.has_forwarded_to()) return Invalid(field + ".forwarded_to", "required");
  if (!forwarded && referral.has_forwarded_to()) {
    return Invalid(field + ".forwarded_to", "only when forwarding (status FORWARDED)");
  }
  if (status == casebridge::events::v1::REFERRAL_STATUS_ESTIMATE_CHANGED &&
      !referral.has_estimated_start()) {
    return Invalid(field + ".estimated_start", "required when the estimate changes");
  }
  if (referral.has_estimated_start()) {
    RETURN_IF_ERROR(ValidateTimestamp(referral.estimated_start(), field + ".estimated_start"));
  }
  if (referral.has_previous_estimated_start()) {
    return Invalid(field + ".previous_estimated_start",
                   "must be empty (the receiving system fills it from its estimate)");
  }
  return absl::OkStatus();
}

std::string RequestFingerprint(const google::protobuf::Message& request, const std::string& subject) {
  std::unique_ptr<google::protobuf::Message> copy(request.New());
  copy->CopyFrom(request);
  // Replace the case reference (top-level `case_ref`, or `context.case_ref`
  // of a RecordContext) by the subject.
  google::protobuf::Message* holder = copy.get();
  if (const auto* context = holder->GetDescriptor()->FindFieldByName("context");
      context != nullptr && context->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE) {
    holder = holder->GetReflection()->MutableMessage(holder, context);
  }
  if (const auto* ref = holder->GetDescriptor()->FindFieldByName("case_ref");
      ref != nullptr && ref->message_type() == casebridge::common::v1::CaseRef::descriptor()) {
    static_cast<casebridge::common::v1::CaseRef*>(holder->GetReflection()->MutableMessage(holder, ref))
        ->set_subject(subject);
  }
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    copy->SerializeToCodedStream(&coded);
  }
  return absl::StrCat(copy->GetDescriptor()->full_name(), "\n", bytes);
}

void ApplyContext(const casebridge::recording::v1::RecordContext& context,
                  casebridge::events::v1::CaseEvent& event) {
  *event.mutable_actor() = context.actor();
  if (context.has_occurred_at()) *event.mutable_occurred_at() = context.occurred_at();
  *event.mutable_legal_basis() = context.legal_basis();
  event.set_sensitivity(context.sensitivity() == casebridge::events::v1::SENSITIVITY_UNSPECIFIED
                            ? casebridge::events::v1::SENSITIVITY_ORDINARY
                            : context.sensitivity());
  if (context.has_supersedes()) *event.mutable_supersedes() = context.supersedes();
  // The payload was copied from the request: fields this schema does not
  // know were never validated and must not reach the recipients.
  event.DiscardUnknownFields();
}

casebridge::recording::v1::RecordResponse ToRecordResponse(const RecordOutcome& outcome) {
  casebridge::recording::v1::RecordResponse response;
  response.set_event_id(outcome.event.id());
  response.set_subject(outcome.event.subject());
  response.set_sequence(outcome.event.sequence());
  *response.mutable_recorded_at() = outcome.event.recorded_at();
  response.set_record_id(outcome.record_id);
  response.set_replayed(outcome.replayed);
  return response;
}

}  // namespace casebridge
