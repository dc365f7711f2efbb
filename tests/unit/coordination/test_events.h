// Builders of case events for the coordination tests.
#pragma once

#include <string>

#include "casebridge/events/v1/case_event.pb.h"
#include "services/common/event_ids.h"

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

}  // namespace casebridge::coordination::testing
