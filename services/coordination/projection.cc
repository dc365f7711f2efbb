#include "services/coordination/projection.h"

#include <algorithm>

namespace casebridge::coordination {
namespace {

namespace common = casebridge::common::v1;
namespace ev = casebridge::events::v1;
using casebridge::coordination::v1::DISCLOSURE_FULL;
using casebridge::coordination::v1::DISCLOSURE_MINIMAL;

// Only the administration of a unit: ids and names can tell a reader which
// clinic or treatment centre is involved.
void CopyAdministrationOnly(const common::Unit& from, common::Unit& to) {
  to.set_administration(from.administration());
}

void CopyActor(const common::Actor& from, common::Actor& to) {
  to.set_role(from.role());
  to.set_unit(from.unit());  // an organisational unit, not personal data
}

void CopyOfferAdministration(const ev::Offer& from, ev::Offer& to) {
  to.set_administration(from.administration());
}

}  // namespace

common::Administration AdministrationOf(ev::SourceSystem source) {
  switch (source) {
    case ev::SOURCE_SYSTEM_JOB_CENTRE: return common::ADMINISTRATION_JOB_CENTRE;
    case ev::SOURCE_SYSTEM_SOCIAL: return common::ADMINISTRATION_SOCIAL_SERVICES;
    case ev::SOURCE_SYSTEM_HEALTH: return common::ADMINISTRATION_HEALTH;
    default: return common::ADMINISTRATION_UNSPECIFIED;
  }
}

DisclosureDecision DecideDisclosure(const ev::CaseEvent& event,
                                    common::Administration administration,
                                    const std::vector<common::Role>& roles,
                                    const std::vector<ev::Consent>& consents) {
  const ev::Sensitivity sensitivity = event.sensitivity() == ev::SENSITIVITY_UNSPECIFIED
                                          ? ev::SENSITIVITY_CONFIDENTIAL
                                          : event.sensitivity();
  if (sensitivity == ev::SENSITIVITY_ORDINARY) return {DISCLOSURE_FULL, "ordinary", {}};
  if (std::find(roles.begin(), roles.end(), common::ROLE_CITIZEN) != roles.end()) {
    return {DISCLOSURE_FULL, "citizen", {}};
  }
  if (administration != common::ADMINISTRATION_UNSPECIFIED &&
      administration == AdministrationOf(event.source_system())) {
    return {DISCLOSURE_FULL, "own-administration", {}};
  }
  DisclosureDecision decision{DISCLOSURE_FULL, "consent", {}};
  if (administration != common::ADMINISTRATION_UNSPECIFIED) {
    for (const ev::Consent& consent : consents) {
      if (consent.withdrawn()) continue;
      for (const ev::ConsentGrant& grant : consent.grants()) {
        if (grant.administration() != administration) continue;
        const auto& kinds = grant.sensitivities();
        if (std::find(kinds.begin(), kinds.end(), sensitivity) != kinds.end()) {
          decision.consent_ids.push_back(consent.consent_id());
          break;
        }
      }
    }
  }
  if (decision.consent_ids.empty()) return {DISCLOSURE_MINIMAL, "no-consent", {}};
  return decision;
}

ev::CaseEvent MinimalProjection(const ev::CaseEvent& event) {
  ev::CaseEvent out;
  out.set_id(event.id());
  out.set_source(event.source());
  out.set_source_system(event.source_system());
  out.set_type(event.type());
  out.set_subject(event.subject());
  out.set_municipality(event.municipality());
  if (event.has_occurred_at()) *out.mutable_occurred_at() = event.occurred_at();
  if (event.has_recorded_at()) *out.mutable_recorded_at() = event.recorded_at();
  out.set_sequence(event.sequence());
  out.set_sensitivity(event.sensitivity());
  if (event.has_actor()) CopyActor(event.actor(), *out.mutable_actor());
  if (event.has_supersedes()) {
    out.mutable_supersedes()->set_event_id(event.supersedes().event_id());
    out.mutable_supersedes()->set_kind(event.supersedes().kind());
  }

  switch (event.payload_case()) {
    case ev::CaseEvent::kDecision: {
      const ev::Decision& from = event.decision();
      ev::Decision& to = *out.mutable_decision();
      to.set_decision_id(from.decision_id());
      to.set_outcome(from.outcome());
      if (from.has_offer()) CopyOfferAdministration(from.offer(), *to.mutable_offer());
      if (from.has_decided_by()) CopyActor(from.decided_by(), *to.mutable_decided_by());
      if (from.has_effective_from()) *to.mutable_effective_from() = from.effective_from();
      break;
    }
    case ev::CaseEvent::kAppointment: {
      const ev::Appointment& from = event.appointment();
      ev::Appointment& to = *out.mutable_appointment();
      to.set_appointment_id(from.appointment_id());
      to.set_status(from.status());
      if (from.has_start()) *to.mutable_start() = from.start();
      if (from.has_end()) *to.mutable_end() = from.end();
      if (from.has_previous_start()) *to.mutable_previous_start() = from.previous_start();
      break;
    }
    case ev::CaseEvent::kReferral: {
      const ev::Referral& from = event.referral();
      ev::Referral& to = *out.mutable_referral();
      to.set_referral_id(from.referral_id());
      to.set_status(from.status());
      if (from.has_offer()) CopyOfferAdministration(from.offer(), *to.mutable_offer());
      if (from.has_from_unit()) CopyAdministrationOnly(from.from_unit(), *to.mutable_from_unit());
      if (from.has_to_unit()) CopyAdministrationOnly(from.to_unit(), *to.mutable_to_unit());
      if (from.has_forwarded_to()) {
        CopyAdministrationOnly(from.forwarded_to(), *to.mutable_forwarded_to());
      }
      if (from.has_estimated_start()) *to.mutable_estimated_start() = from.estimated_start();
      if (from.has_previous_estimated_start()) {
        *to.mutable_previous_estimated_start() = from.previous_estimated_start();
      }
      break;
    }
    case ev::CaseEvent::kRoleAssignment: {
      const ev::RoleAssignment& from = event.role_assignment();
      ev::RoleAssignment& to = *out.mutable_role_assignment();
      to.set_role(from.role());
      to.set_recipient(from.recipient());
      to.set_released(from.released());
      if (from.has_unit()) *to.mutable_unit() = from.unit();
      break;
    }
    case ev::CaseEvent::kTask: {
      const ev::Task& from = event.task();
      ev::Task& to = *out.mutable_task();
      to.set_task_id(from.task_id());
      to.set_state(from.state());
      to.set_owner_role(from.owner_role());
      to.set_owner_recipient(from.owner_recipient());
      if (from.has_due()) *to.mutable_due() = from.due();
      break;
    }
    case ev::CaseEvent::kWatchdogAlert:
      // Counts, thresholds and a referral id only.
      *out.mutable_watchdog_alert() = event.watchdog_alert();
      break;
    case ev::CaseEvent::kLoadWarning:
      // Appointment ids, a day and counts only.
      *out.mutable_load_warning() = event.load_warning();
      break;
    case ev::CaseEvent::kReplanning: {
      const ev::ReplanningFlag& from = event.replanning();
      ev::ReplanningFlag& to = *out.mutable_replanning();
      to.set_referral_id(from.referral_id());
      to.set_trigger_event_id(from.trigger_event_id());
      break;
    }
    case ev::CaseEvent::kConsent: {
      const ev::Consent& from = event.consent();
      ev::Consent& to = *out.mutable_consent();
      to.set_consent_id(from.consent_id());
      to.set_withdrawn(from.withdrawn());
      *to.mutable_grants() = from.grants();
      break;
    }
    case ev::CaseEvent::PAYLOAD_NOT_SET:
      break;
  }
  return out;
}

ev::CaseEvent Project(const ev::CaseEvent& event, const DisclosureDecision& decision) {
  if (decision.disclosure == DISCLOSURE_FULL) return event;
  return MinimalProjection(event);
}

}  // namespace casebridge::coordination
