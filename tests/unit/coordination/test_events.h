// Builders of case events for the coordination tests.
#pragma once

#include <string>

#include "absl/time/time.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "services/common/event_ids.h"
#include "services/common/proto_time.h"

namespace casebridge::coordination::testing {

// Two well-formed subjects (64 lower-case hex digits).
inline const std::string kSubject(64, 'a');
inline const std::string kOtherSubject(64, 'b');

// A job-centre refusal on `subject`.
inline casebridge::events::v1::CaseEvent DecisionEvent(const std::string& id,
                                                       const std::string& subject = kSubject) {
  casebridge::events::v1::CaseEvent event;
  event.set_id(id);
  event.set_source("/casebridge/jobcentre/0751");
  event.set_source_system(casebridge::events::v1::SOURCE_SYSTEM_JOB_CENTRE);
  event.set_subject(subject);
  event.set_municipality("0751");
  event.set_sequence(1);
  event.set_sensitivity(casebridge::events::v1::SENSITIVITY_ORDINARY);
  casebridge::events::v1::Decision& decision = *event.mutable_decision();
  decision.set_outcome(casebridge::events::v1::DECISION_OUTCOME_REFUSED);
  decision.mutable_offer()->set_code("LAB-mentor");
  event.set_type(EventTypeFor(event));
  return event;
}

// A role event from the coordination service: `recipient` takes `role` on
// `subject`, or is released from it.
inline casebridge::events::v1::CaseEvent RoleEvent(const std::string& id,
                                                   casebridge::common::v1::Role role,
                                                   const std::string& recipient,
                                                   bool released = false,
                                                   const std::string& subject = kSubject) {
  casebridge::events::v1::CaseEvent event;
  event.set_id(id);
  event.set_source("/casebridge/coordination/0751");
  event.set_source_system(casebridge::events::v1::SOURCE_SYSTEM_COORDINATION);
  event.set_subject(subject);
  event.set_municipality("0751");
  event.set_sensitivity(casebridge::events::v1::SENSITIVITY_ORDINARY);
  casebridge::events::v1::RoleAssignment& assignment = *event.mutable_role_assignment();
  assignment.set_role(role);
  assignment.set_recipient(recipient);
  assignment.set_released(released);
  event.set_type(EventTypeFor(event));
  return event;
}

// An appointment booked in the health system on `subject`.
inline casebridge::events::v1::CaseEvent AppointmentEvent(const std::string& id,
                                                          const std::string& subject = kSubject) {
  casebridge::events::v1::CaseEvent event;
  event.set_id(id);
  event.set_source("/casebridge/health/0751");
  event.set_source_system(casebridge::events::v1::SOURCE_SYSTEM_HEALTH);
  event.set_subject(subject);
  event.set_municipality("0751");
  event.set_sequence(1);
  event.set_sensitivity(casebridge::events::v1::SENSITIVITY_SPECIAL_HEALTH);
  casebridge::events::v1::Appointment& appointment = *event.mutable_appointment();
  appointment.set_appointment_id("A-" + id);
  appointment.set_status(casebridge::events::v1::APPOINTMENT_STATUS_SCHEDULED);
  appointment.set_kind(casebridge::events::v1::APPOINTMENT_KIND_HEALTH_SESSION);
  event.set_type(EventTypeFor(event));
  return event;
}

// A referral sent by the social system on `subject`.
inline casebridge::events::v1::CaseEvent ReferralEvent(const std::string& id,
                                                       const std::string& subject = kSubject) {
  casebridge::events::v1::CaseEvent event;
  event.set_id(id);
  event.set_source("/casebridge/social/0751");
  event.set_source_system(casebridge::events::v1::SOURCE_SYSTEM_SOCIAL);
  event.set_subject(subject);
  event.set_municipality("0751");
  event.set_sequence(1);
  event.set_sensitivity(casebridge::events::v1::SENSITIVITY_CONFIDENTIAL);
  casebridge::events::v1::Referral& referral = *event.mutable_referral();
  referral.set_referral_id("R-" + id);
  referral.set_status(casebridge::events::v1::REFERRAL_STATUS_SENT);
  event.set_type(EventTypeFor(event));
  return event;
}

// `event` with `occurred_at` and `recorded_at` set.
inline casebridge::events::v1::CaseEvent At(casebridge::events::v1::CaseEvent event,
                                            absl::Time occurred,
                                            absl::Time recorded = absl::InfinitePast()) {
  *event.mutable_occurred_at() = ToProtoTimestamp(occurred);
  *event.mutable_recorded_at() =
      ToProtoTimestamp(recorded == absl::InfinitePast() ? occurred : recorded);
  return event;
}

// A decision `id` correcting the event `superseded`.
inline casebridge::events::v1::CaseEvent CorrectionOf(const std::string& superseded,
                                                      const std::string& id,
                                                      const std::string& subject = kSubject) {
  casebridge::events::v1::CaseEvent event = DecisionEvent(id, subject);
  event.mutable_decision()->set_outcome(casebridge::events::v1::DECISION_OUTCOME_GRANTED);
  event.mutable_supersedes()->set_event_id(superseded);
  event.mutable_supersedes()->set_kind(casebridge::events::v1::Supersession::KIND_CORRECTION);
  event.set_type(EventTypeFor(event));
  return event;
}

// A cancellation `id` (no payload) of the event `superseded`.
inline casebridge::events::v1::CaseEvent CancellationOf(const std::string& superseded,
                                                        const std::string& id,
                                                        const std::string& subject = kSubject) {
  casebridge::events::v1::CaseEvent event = DecisionEvent(id, subject);
  event.clear_decision();
  event.mutable_supersedes()->set_event_id(superseded);
  event.mutable_supersedes()->set_kind(casebridge::events::v1::Supersession::KIND_CANCELLATION);
  event.set_type(EventTypeFor(event));
  return event;
}

// `event` as if recorded in another municipality (Odense, 0461).
inline casebridge::events::v1::CaseEvent InOdense(casebridge::events::v1::CaseEvent event) {
  event.set_municipality("0461");
  event.set_source("/casebridge/jobcentre/0461");
  return event;
}

}  // namespace casebridge::coordination::testing
