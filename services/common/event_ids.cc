#include "services/common/event_ids.h"

#include <openssl/sha.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace casebridge {

using casebridge::events::v1::CaseEvent;

std::string EventIdFor(absl::string_view source, absl::string_view idempotency_key) {
  const std::string name = absl::StrCat("casebridge/event-id/v1\n", source, "\n", idempotency_key);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(name.data()), name.size(), digest);
  digest[6] = static_cast<unsigned char>((digest[6] & 0x0f) | 0x80);  // version 8
  digest[8] = static_cast<unsigned char>((digest[8] & 0x3f) | 0x80);  // RFC 9562 variant
  std::string hex;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) hex.push_back('-');
    absl::StrAppendFormat(&hex, "%02x", digest[i]);
  }
  return hex;
}

std::string EventSource(absl::string_view system, absl::string_view municipality) {
  return absl::StrCat("/casebridge/", system, "/", municipality);
}

namespace {

std::string DecisionState(casebridge::events::v1::DecisionOutcome outcome) {
  switch (outcome) {
    case casebridge::events::v1::DECISION_OUTCOME_GRANTED: return "granted";
    case casebridge::events::v1::DECISION_OUTCOME_PARTIALLY_GRANTED: return "partially-granted";
    case casebridge::events::v1::DECISION_OUTCOME_REFUSED: return "refused";
    case casebridge::events::v1::DECISION_OUTCOME_WAITLISTED: return "waitlisted";
    case casebridge::events::v1::DECISION_OUTCOME_CLOSED: return "closed";
    default: return "";
  }
}

std::string AppointmentState(casebridge::events::v1::AppointmentStatus status) {
  switch (status) {
    case casebridge::events::v1::APPOINTMENT_STATUS_SCHEDULED: return "scheduled";
    case casebridge::events::v1::APPOINTMENT_STATUS_RESCHEDULED: return "rescheduled";
    case casebridge::events::v1::APPOINTMENT_STATUS_CANCELLED: return "cancelled";
    case casebridge::events::v1::APPOINTMENT_STATUS_ATTENDED: return "attended";
    case casebridge::events::v1::APPOINTMENT_STATUS_NO_SHOW: return "no-show";
    default: return "";
  }
}

std::string ReferralState(casebridge::events::v1::ReferralStatus status) {
  switch (status) {
    case casebridge::events::v1::REFERRAL_STATUS_SENT: return "sent";
    case casebridge::events::v1::REFERRAL_STATUS_RECEIVED: return "received";
    case casebridge::events::v1::REFERRAL_STATUS_ASSESSED: return "assessed";
    case casebridge::events::v1::REFERRAL_STATUS_ACCEPTED: return "accepted";
    case casebridge::events::v1::REFERRAL_STATUS_REFUSED: return "refused";
    case casebridge::events::v1::REFERRAL_STATUS_WAITLISTED: return "waitlisted";
    case casebridge::events::v1::REFERRAL_STATUS_STARTED: return "started";
    case casebridge::events::v1::REFERRAL_STATUS_ENDED: return "ended";
    case casebridge::events::v1::REFERRAL_STATUS_INTERRUPTED: return "interrupted";
    case casebridge::events::v1::REFERRAL_STATUS_FORWARDED: return "forwarded";
    case casebridge::events::v1::REFERRAL_STATUS_ESTIMATE_CHANGED: return "estimate-changed";
    default: return "";
  }
}

std::string TaskState(casebridge::events::v1::TaskState state) {
  switch (state) {
    case casebridge::events::v1::TASK_STATE_OPEN: return "created";
    case casebridge::events::v1::TASK_STATE_COMPLETED: return "completed";
    case casebridge::events::v1::TASK_STATE_OVERDUE: return "overdue";
    case casebridge::events::v1::TASK_STATE_HANDED_OVER: return "handed-over";
    default: return "";
  }
}

std::string WatchdogState(casebridge::events::v1::WatchdogKind kind) {
  switch (kind) {
    case casebridge::events::v1::WATCHDOG_KIND_REFERRAL_NOT_ACKNOWLEDGED: return "referral-not-acknowledged";
    case casebridge::events::v1::WATCHDOG_KIND_WAITLIST_WITHOUT_ESTIMATE: return "waitlist-without-estimate";
    case casebridge::events::v1::WATCHDOG_KIND_TOO_FEW_FOLLOW_UPS: return "too-few-follow-ups";
    case casebridge::events::v1::WATCHDOG_KIND_NO_CONTACT: return "no-contact";
    default: return "";
  }
}

std::string LoadState(casebridge::events::v1::LoadWarningKind kind) {
  switch (kind) {
    case casebridge::events::v1::LOAD_WARNING_KIND_DOUBLE_BOOKING: return "double-booking";
    case casebridge::events::v1::LOAD_WARNING_KIND_TOO_MANY_ACTIVITIES: return "too-many-activities";
    default: return "";
  }
}

std::string Type(absl::string_view kind, const std::string& state) {
  if (state.empty()) return "";
  return absl::StrCat("dk.casebridge.", kind, ".", state, ".v1");
}

}  // namespace

std::string EventTypeFor(const CaseEvent& event) {
  switch (event.payload_case()) {
    case CaseEvent::kDecision:
      return Type("decision", DecisionState(event.decision().outcome()));
    case CaseEvent::kAppointment:
      return Type("appointment", AppointmentState(event.appointment().status()));
    case CaseEvent::kReferral:
      return Type("referral", ReferralState(event.referral().status()));
    case CaseEvent::kRoleAssignment:
      return Type("role", event.role_assignment().released() ? "released" : "assigned");
    case CaseEvent::kTask:
      return Type("task", TaskState(event.task().state()));
    case CaseEvent::kWatchdogAlert:
      return Type("watchdog", WatchdogState(event.watchdog_alert().kind()));
    case CaseEvent::kLoadWarning:
      return Type("load", LoadState(event.load_warning().kind()));
    case CaseEvent::kReplanning:
      return "dk.casebridge.plan.replanning-needed.v1";
    case CaseEvent::kConsent:
      return Type("consent", event.consent().withdrawn() ? "withdrawn" : "given");
    case CaseEvent::PAYLOAD_NOT_SET:
      if (event.supersedes().kind() == casebridge::events::v1::Supersession::KIND_CANCELLATION) {
        return "dk.casebridge.event.cancelled.v1";
      }
      return "";
  }
  return "";
}

}  // namespace casebridge
