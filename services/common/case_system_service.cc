#include "services/common/case_system_service.h"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/common/log.h"
#include "services/common/peer_identity.h"
#include "services/common/proto_time.h"
#include "services/common/record_validation.h"
#include "services/common/status_macros.h"

namespace casebridge {
namespace {

using casebridge::events::v1::CaseEvent;
using casebridge::events::v1::Sensitivity;
using casebridge::events::v1::Supersession;
using casebridge::recording::v1::RecordResponse;

// How protective a sensitivity is; the special categories outrank the rest,
// and the more specific addiction category outranks health.
int Rank(Sensitivity sensitivity) {
  switch (sensitivity) {
    case events::v1::SENSITIVITY_ORDINARY: return 1;
    case events::v1::SENSITIVITY_CONFIDENTIAL: return 2;
    case events::v1::SENSITIVITY_SPECIAL_HEALTH: return 3;
    case events::v1::SENSITIVITY_SPECIAL_ADDICTION: return 4;
    case events::v1::SENSITIVITY_SPECIAL_CRIMINAL: return 5;
    default: return 0;
  }
}

Sensitivity MostProtective(Sensitivity a, Sensitivity b) { return Rank(b) > Rank(a) ? b : a; }

// What an offer's administration says about the content of an event on it.
Sensitivity ImpliedBy(casebridge::common::v1::Administration administration) {
  switch (administration) {
    case common::v1::ADMINISTRATION_HEALTH:
    case common::v1::ADMINISTRATION_REGION:
    case common::v1::ADMINISTRATION_GENERAL_PRACTICE:
      return events::v1::SENSITIVITY_SPECIAL_HEALTH;
    case common::v1::ADMINISTRATION_ADDICTION_TREATMENT:
      return events::v1::SENSITIVITY_SPECIAL_ADDICTION;
    case common::v1::ADMINISTRATION_SOCIAL_SERVICES:
      return events::v1::SENSITIVITY_CONFIDENTIAL;
    default:
      return events::v1::SENSITIVITY_UNSPECIFIED;
  }
}

// The id the source system gave the record an event reports.
std::string RecordIdOf(const CaseEvent& event) {
  switch (event.payload_case()) {
    case CaseEvent::kDecision: return event.decision().decision_id();
    case CaseEvent::kAppointment: return event.appointment().appointment_id();
    case CaseEvent::kReferral: return event.referral().referral_id();
    default: return "";
  }
}

ActionResult AppointmentResult(casebridge::events::v1::Appointment appointment) {
  ActionResult result;
  result.record_id = appointment.appointment_id();
  *result.event.mutable_appointment() = std::move(appointment);
  return result;
}

absl::Status RequireAppointmentId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("appointment_id: required");
  return absl::OkStatus();
}

}  // namespace

Sensitivity DefaultSensitivity(const CaseSystemProfile& profile, const CaseEvent& event) {
  Sensitivity sensitivity = profile.default_sensitivity;
  const casebridge::events::v1::Offer* offer = nullptr;
  if (event.has_decision()) offer = &event.decision().offer();
  if (event.has_referral()) offer = &event.referral().offer();
  if (offer != nullptr) {
    if (auto it = profile.offer_sensitivities.find(offer->code());
        it != profile.offer_sensitivities.end()) {
      sensitivity = MostProtective(sensitivity, it->second);
    }
    sensitivity = MostProtective(sensitivity, ImpliedBy(offer->administration()));
  }
  return sensitivity;
}

absl::Time CallerDeadline(const grpc::ServerContext* context) {
  if (context == nullptr) return absl::InfiniteFuture();
  return absl::FromChrono(context->deadline());
}

CaseSystemCore::CaseSystemCore(CaseSystemProfile profile, CaseSystemAdapter& adapter,
                               EventRecorder& recorder, const Pseudonymizer& pseudonymizer,
                               std::string municipality, absl::Duration call_timeout, Clock& clock)
    : profile_(std::move(profile)),
      adapter_(adapter),
      recorder_(recorder),
      pseudonymizer_(pseudonymizer),
      municipality_(std::move(municipality)),
      call_timeout_(call_timeout),
      clock_(clock) {}

absl::StatusOr<RecordResponse> CaseSystemCore::Record(
    const google::protobuf::Message& request,
    const casebridge::recording::v1::RecordContext& record_context, bool legal_basis_required,
    CaseEvent::PayloadCase payload, absl::Time deadline, const TraceContext& trace,
    const std::function<absl::Status()>& validate_payload, const Action& action) {
  // This call's span: the event carries it, and the log line of a failure
  // names its trace.
  const TraceContext span = TraceContext::ChildOf(trace);
  absl::StatusOr<RecordResponse> response =
      RecordInSpan(request, record_context, legal_basis_required, payload, deadline, span,
                   validate_payload, action);
  if (!response.ok() && IsServiceFailure(response.status().code())) {
    // Messages name fields, ids and codes, never personal data.
    LogWarning("recording failed",
               {{"system", profile_.system},
                {"code", absl::StatusCodeToString(response.status().code())},
                {"error", std::string(response.status().message())},
                {"trace_id", span.trace_id()}});
  }
  return response;
}

absl::StatusOr<RecordResponse> CaseSystemCore::RecordInSpan(
    const google::protobuf::Message& request,
    const casebridge::recording::v1::RecordContext& record_context, bool legal_basis_required,
    CaseEvent::PayloadCase payload, absl::Time deadline, const TraceContext& span,
    const std::function<absl::Status()>& validate_payload, const Action& action) {
  RETURN_IF_ERROR(ValidateRecordContext(record_context, legal_basis_required, clock_.Now()));
  RETURN_IF_ERROR(validate_payload());
  ASSIGN_OR_RETURN(ResolvedCase resolved,
                   ResolveCase(record_context.case_ref(), municipality_, pseudonymizer_,
                               "context.case_ref"));
  RETURN_IF_ERROR(ValidateSupersession(record_context.supersedes(), resolved.subject, payload));
  CallOptions options;
  options.idempotency_key = record_context.idempotency_key();
  options.deadline = std::min(clock_.Now() + call_timeout_, deadline);
  const Citizen citizen{resolved.subject, resolved.cpr};
  RecordRequest record_request{record_context.idempotency_key(), resolved.subject,
                               RequestFingerprint(request, resolved.subject)};
  record_request.trace = span;
  ASSIGN_OR_RETURN(RecordOutcome outcome,
                   recorder_.Record(record_request, [&]() -> absl::StatusOr<ActionResult> {
                     ASSIGN_OR_RETURN(ActionResult result, action(options, citizen));
                     // An action may propose the default (a cancellation keeps
                     // the sensitivity of the event it cancels).
                     const Sensitivity fallback =
                         result.event.sensitivity() != events::v1::SENSITIVITY_UNSPECIFIED
                             ? result.event.sensitivity()
                             : DefaultSensitivity(profile_, result.event);
                     ApplyContext(record_context, result.event);
                     if (record_context.sensitivity() == events::v1::SENSITIVITY_UNSPECIFIED) {
                       result.event.set_sensitivity(fallback);
                     }
                     return result;
                   }));
  return ToRecordResponse(outcome);
}

absl::Status CaseSystemCore::ValidateSupersession(const Supersession& supersedes,
                                                  const std::string& subject,
                                                  CaseEvent::PayloadCase payload) {
  const bool cancelling = payload == CaseEvent::PAYLOAD_NOT_SET;
  if (supersedes.event_id().empty()) {
    if (cancelling) {
      return absl::InvalidArgumentError(
          "context.supersedes: required (the event to cancel, with kind KIND_CANCELLATION)");
    }
    return absl::OkStatus();
  }
  if (cancelling) {
    if (supersedes.kind() != Supersession::KIND_CANCELLATION) {
      return absl::InvalidArgumentError("context.supersedes.kind: must be KIND_CANCELLATION");
    }
    // The event itself is checked when the cancellation is recorded (see
    // `EventToCancel`), so that a repeated call is answered from the ledger.
    return absl::OkStatus();
  }
  if (supersedes.kind() == Supersession::KIND_CANCELLATION) {
    return absl::InvalidArgumentError(
        "context.supersedes.kind: a cancellation carries no payload; cancel the event with "
        "CancelEvent (or an appointment with CancelAppointment)");
  }
  if (payload == CaseEvent::kReferral) {
    return absl::InvalidArgumentError(
        "context.supersedes.kind: a referral step cannot be corrected; cancel it with "
        "CancelEvent and record the step again");
  }
  ASSIGN_OR_RETURN(std::optional<CaseEvent> earlier, recorder_.FindEvent(supersedes.event_id()));
  if (!earlier.has_value() || earlier->subject() != subject) {
    return absl::NotFoundError(
        "context.supersedes.event_id: no event with this id was recorded on this case by this "
        "service");
  }
  if (earlier->payload_case() != payload) {
    return absl::InvalidArgumentError(
        "context.supersedes.event_id: a correction must be of the same kind as the event it "
        "corrects");
  }
  return absl::OkStatus();
}

absl::StatusOr<CaseEvent> CaseSystemCore::EventToCancel(const std::string& event_id,
                                                        const std::string& subject) {
  ASSIGN_OR_RETURN(std::optional<CaseEvent> target, recorder_.FindEvent(event_id));
  if (!target.has_value() || target->subject() != subject) {
    return absl::NotFoundError(
        "context.supersedes.event_id: no event with this id was recorded on this case by this "
        "service");
  }
  if (target->payload_case() == CaseEvent::PAYLOAD_NOT_SET) {
    return absl::InvalidArgumentError(
        "context.supersedes.event_id: the event is a cancellation itself");
  }
  // The case's events, to see whether it is already cancelled and, for a
  // referral step, whether a later step of the referral is in force.
  std::set<std::string> cancelled;
  std::vector<CaseEvent> steps;
  uint64_t after = 0;
  while (true) {
    ASSIGN_OR_RETURN(std::vector<CaseEvent> page, recorder_.ListEvents(subject, after, 500));
    if (page.empty()) break;
    after = page.back().sequence();
    for (CaseEvent& event : page) {
      if (event.supersedes().kind() == Supersession::KIND_CANCELLATION) {
        cancelled.insert(event.supersedes().event_id());
      }
      if (target->has_referral() && event.has_referral() &&
          event.referral().referral_id() == target->referral().referral_id()) {
        steps.push_back(std::move(event));
      }
    }
  }
  if (cancelled.contains(event_id)) {
    return absl::FailedPreconditionError(
        "context.supersedes.event_id: the event is already cancelled");
  }
  for (const CaseEvent& step : steps) {
    if (step.sequence() > target->sequence() && !cancelled.contains(step.id())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "context.supersedes.event_id: only the latest step of referral ",
          target->referral().referral_id(), " can be cancelled"));
    }
  }
  return *std::move(target);
}

absl::StatusOr<RecordResponse> CaseSystemCore::RecordDecision(
    const casebridge::recording::v1::RecordDecisionRequest& request, absl::Time deadline,
    const TraceContext& trace) {
  return Record(
      request, request.context(), /*legal_basis_required=*/true, CaseEvent::kDecision, deadline,
      trace, [&] {
        if (!request.has_decision()) return absl::InvalidArgumentError("decision: required");
        return ValidateDecision(request.decision(), "decision");
      },
      [&](const CallOptions& options, const Citizen& citizen) -> absl::StatusOr<ActionResult> {
        ActionResult result;
        ASSIGN_OR_RETURN(result.record_id,
                         adapter_.RecordDecision(options, citizen, request.decision()));
        *result.event.mutable_decision() = request.decision();
        result.event.mutable_decision()->set_decision_id(result.record_id);
        return result;
      });
}

absl::StatusOr<RecordResponse> CaseSystemCore::BookAppointment(
    const casebridge::recording::v1::BookAppointmentRequest& request, absl::Time deadline,
    const TraceContext& trace) {
  return Record(
      request, request.context(), /*legal_basis_required=*/false, CaseEvent::kAppointment,
      deadline, trace,
      [&] {
        if (!request.has_appointment()) return absl::InvalidArgumentError("appointment: required");
        return ValidateNewAppointment(request.appointment(), "appointment");
      },
      [&](const CallOptions& options, const Citizen& citizen) -> absl::StatusOr<ActionResult> {
        ActionResult result;
        ASSIGN_OR_RETURN(result.record_id,
                         adapter_.BookAppointment(options, citizen, request.appointment()));
        *result.event.mutable_appointment() = request.appointment();
        result.event.mutable_appointment()->set_appointment_id(result.record_id);
        result.event.mutable_appointment()->set_status(events::v1::APPOINTMENT_STATUS_SCHEDULED);
        return result;
      });
}

absl::StatusOr<RecordResponse> CaseSystemCore::RescheduleAppointment(
    const casebridge::recording::v1::RescheduleAppointmentRequest& request, absl::Time deadline,
    const TraceContext& trace) {
  return Record(
      request, request.context(), /*legal_basis_required=*/false, CaseEvent::kAppointment,
      deadline, trace,
      [&]() -> absl::Status {
        RETURN_IF_ERROR(RequireAppointmentId(request.appointment_id()));
        if (!request.has_start()) return absl::InvalidArgumentError("start: required");
        if (!request.has_end()) return absl::InvalidArgumentError("end: required");
        // Within RFC 3339's range, so every consumer's protobuf library can
        // read the published times (found by the fuzzer, docs/fuzzing.md).
        RETURN_IF_ERROR(ValidateTimestamp(request.start(), "start"));
        RETURN_IF_ERROR(ValidateTimestamp(request.end(), "end"));
        if (ToAbslTime(request.end()) <= ToAbslTime(request.start())) {
          return absl::InvalidArgumentError("end: must be after start");
        }
        return absl::OkStatus();
      },
      [&](const CallOptions& options, const Citizen& citizen) -> absl::StatusOr<ActionResult> {
        AppointmentChange change;
        change.appointment_id = request.appointment_id();
        change.start = ToAbslTime(request.start());
        change.end = ToAbslTime(request.end());
        if (request.has_location()) change.location = request.location();
        change.reason = request.reason();
        ASSIGN_OR_RETURN(casebridge::events::v1::Appointment appointment,
                         adapter_.RescheduleAppointment(options, citizen, change));
        return AppointmentResult(std::move(appointment));
      });
}

absl::StatusOr<RecordResponse> CaseSystemCore::CancelAppointment(
    const casebridge::recording::v1::CancelAppointmentRequest& request, absl::Time deadline,
    const TraceContext& trace) {
  return Record(
      request, request.context(), /*legal_basis_required=*/false, CaseEvent::kAppointment,
      deadline, trace,
      [&]() -> absl::Status {
        RETURN_IF_ERROR(RequireAppointmentId(request.appointment_id()));
        if (request.reason().empty()) return absl::InvalidArgumentError("reason: required");
        return absl::OkStatus();
      },
      [&](const CallOptions& options, const Citizen& citizen) -> absl::StatusOr<ActionResult> {
        ASSIGN_OR_RETURN(casebridge::events::v1::Appointment appointment,
                         adapter_.CancelAppointment(options, citizen, request.appointment_id(),
                                                    request.reason()));
        return AppointmentResult(std::move(appointment));
      });
}

absl::StatusOr<RecordResponse> CaseSystemCore::RecordAttendance(
    const casebridge::recording::v1::RecordAttendanceRequest& request, absl::Time deadline,
    const TraceContext& trace) {
  return Record(
      request, request.context(), /*legal_basis_required=*/false, CaseEvent::kAppointment,
      deadline, trace, [&] { return RequireAppointmentId(request.appointment_id()); },
      [&](const CallOptions& options, const Citizen& citizen) -> absl::StatusOr<ActionResult> {
        ASSIGN_OR_RETURN(casebridge::events::v1::Appointment appointment,
                         adapter_.RecordAttendance(options, citizen, request.appointment_id(),
                                                   request.attended()));
        return AppointmentResult(std::move(appointment));
      });
}

absl::StatusOr<RecordResponse> CaseSystemCore::RecordReferralStep(
    const casebridge::recording::v1::RecordReferralStepRequest& request, absl::Time deadline,
    const TraceContext& trace) {
  return Record(
      request, request.context(), /*legal_basis_required=*/false, CaseEvent::kReferral, deadline,
      trace, [&] {
        if (!request.has_referral()) return absl::InvalidArgumentError("referral: required");
        return ValidateReferralStep(request.referral(), "referral");
      },
      [&](const CallOptions& options, const Citizen& citizen) -> absl::StatusOr<ActionResult> {
        ActionResult result;
        ASSIGN_OR_RETURN(*result.event.mutable_referral(),
                         adapter_.RecordReferralStep(options, citizen, request.referral()));
        result.record_id = result.event.referral().referral_id();
        return result;
      });
}

absl::StatusOr<RecordResponse> CaseSystemCore::CancelEvent(
    const casebridge::recording::v1::CancelEventRequest& request, absl::Time deadline,
    const TraceContext& trace) {
  const std::string& event_id = request.context().supersedes().event_id();
  return Record(
      request, request.context(), /*legal_basis_required=*/false, CaseEvent::PAYLOAD_NOT_SET,
      deadline, trace, [] { return absl::OkStatus(); },
      [&](const CallOptions& options, const Citizen& citizen) -> absl::StatusOr<ActionResult> {
        ASSIGN_OR_RETURN(CaseEvent cancelled, EventToCancel(event_id, citizen.subject));
        ActionResult result;
        result.record_id = RecordIdOf(cancelled);
        RETURN_IF_ERROR(adapter_.CancelRecord(options, citizen, result.record_id));
        // No payload: the supersession (from the context) is the content.
        result.event.set_sensitivity(cancelled.sensitivity());
        return result;
      });
}

absl::StatusOr<casebridge::recording::v1::ListCaseEventsResponse> CaseSystemCore::ListCaseEvents(
    const casebridge::recording::v1::ListCaseEventsRequest& request) {
  if (request.page_size() < 0 || request.page_size() > 1000) {
    return absl::InvalidArgumentError("page_size: must be between 0 and 1000");
  }
  ASSIGN_OR_RETURN(ResolvedCase resolved,
                   ResolveCase(request.case_ref(), municipality_, pseudonymizer_, "case_ref"));
  const int page_size = request.page_size() == 0 ? 100 : request.page_size();
  ASSIGN_OR_RETURN(std::vector<CaseEvent> events,
                   recorder_.ListEvents(resolved.subject, request.after_sequence(), page_size + 1));
  const bool more = static_cast<int>(events.size()) > page_size;
  if (more) events.pop_back();
  casebridge::recording::v1::ListCaseEventsResponse response;
  for (CaseEvent& event : events) *response.add_events() = std::move(event);
  response.set_next_after_sequence(
      more && response.events_size() > 0
          ? response.events(response.events_size() - 1).sequence()
          : 0);
  return response;
}

absl::Status CaseSystemCore::Authorize(const grpc::ServerContext& context, Access access) const {
  const casebridge::common::Caller caller = casebridge::common::CallerOf(context);
  if (caller.superuser()) return absl::OkStatus();
  const auto listed = [&caller](const google::protobuf::RepeatedPtrField<std::string>& ids) {
    return std::find(ids.begin(), ids.end(), caller.identity) != ids.end();
  };
  if (listed(authorization_.recorders())) return absl::OkStatus();
  if (access == Access::kRead && listed(authorization_.readers())) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "caller \"", caller.identity, "\" may not ",
      access == Access::kRecord ? "record in" : "read from", " the ", profile_.system,
      " service (not in authorization.",
      access == Access::kRecord ? "recorders" : "readers or authorization.recorders", ")"));
}

absl::Status CaseSystemCore::Import(
    const std::function<bool(casebridge::recording::v1::ImportRequest*)>& read,
    const std::function<bool(const casebridge::recording::v1::ImportResult&)>& write,
    absl::Time deadline, BulkImportOptions options, const TraceContext& trace) {
  using casebridge::recording::v1::ImportRequest;
  BulkImportCalls calls;
  calls.read = read;
  calls.write = write;
  calls.case_of = [this](const ImportRequest& request) -> std::string {
    const casebridge::recording::v1::RecordContext* context = nullptr;
    switch (request.request_case()) {
      case ImportRequest::kRecordDecision:
        context = &request.record_decision().context();
        break;
      case ImportRequest::kBookAppointment:
        context = &request.book_appointment().context();
        break;
      case ImportRequest::kRescheduleAppointment:
        context = &request.reschedule_appointment().context();
        break;
      case ImportRequest::kCancelAppointment:
        context = &request.cancel_appointment().context();
        break;
      case ImportRequest::kRecordAttendance:
        context = &request.record_attendance().context();
        break;
      case ImportRequest::kRecordReferralStep:
        context = &request.record_referral_step().context();
        break;
      case ImportRequest::kCancelEvent:
        context = &request.cancel_event().context();
        break;
      case ImportRequest::REQUEST_NOT_SET:
        return std::string();
    }
    absl::StatusOr<ResolvedCase> resolved =
        ResolveCase(context->case_ref(), municipality_, pseudonymizer_, "context.case_ref");
    return resolved.ok() ? resolved->subject : std::string();
  };
  // Each request is recorded in a span of its own in the stream's trace.
  calls.record = [this, deadline,
                  &trace](const ImportRequest& request) -> absl::StatusOr<RecordResponse> {
    switch (request.request_case()) {
      case ImportRequest::kRecordDecision:
        return RecordDecision(request.record_decision(), deadline, trace);
      case ImportRequest::kBookAppointment:
        return BookAppointment(request.book_appointment(), deadline, trace);
      case ImportRequest::kRescheduleAppointment:
        return RescheduleAppointment(request.reschedule_appointment(), deadline, trace);
      case ImportRequest::kCancelAppointment:
        return CancelAppointment(request.cancel_appointment(), deadline, trace);
      case ImportRequest::kRecordAttendance:
        return RecordAttendance(request.record_attendance(), deadline, trace);
      case ImportRequest::kRecordReferralStep:
        return RecordReferralStep(request.record_referral_step(), deadline, trace);
      case ImportRequest::kCancelEvent:
        return CancelEvent(request.cancel_event(), deadline, trace);
      case ImportRequest::REQUEST_NOT_SET:
        break;
    }
    return absl::InvalidArgumentError("request: required (one of record_decision, "
                                      "book_appointment, reschedule_appointment, "
                                      "cancel_appointment, record_attendance, "
                                      "record_referral_step, cancel_event)");
  };
  return RunBulkImport(calls, options);
}

}  // namespace casebridge
