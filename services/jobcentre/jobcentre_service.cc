#include "services/common/proto_time.h"
#include "services/jobcentre/jobcentre_service.h"

#include "absl/strings/str_cat.h"
#include "services/common/grpc_status.h"
#include "services/common/kafka/kafka_config.h"
#include "services/common/record_validation.h"
#include "services/common/status_macros.h"

namespace casebridge::jobcentre {

using casebridge::events::v1::CaseEvent;
using casebridge::recording::v1::RecordResponse;
namespace v1 = casebridge::jobcentre::v1;

absl::Status ValidateJobCentreConfig(const casebridge::config::v1::JobCentreServiceConfig& config) {
  const std::string& m = config.municipality();
  if (m.size() != 4 || !std::all_of(m.begin(), m.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return absl::InvalidArgumentError("municipality: required, 4 digits (kommunekode)");
  }
  if (!config.has_kafka()) return absl::InvalidArgumentError("kafka: required");
  RETURN_IF_ERROR(kafka::ValidateKafkaConfig(config.kafka()));
  if (config.adapter().vendor_case() ==
      casebridge::config::v1::JobCentreAdapterConfig::VENDOR_NOT_SET) {
    return absl::InvalidArgumentError("adapter: exactly one vendor must be set (e.g. \"reference\")");
  }
  if (config.ledger_path().empty()) return absl::InvalidArgumentError("ledger_path: required");
  return absl::OkStatus();
}

casebridge::config::v1::JobCentreServiceConfig WithDefaults(
    casebridge::config::v1::JobCentreServiceConfig config) {
  if (config.canonical_topic().empty()) config.set_canonical_topic(kDefaultCanonicalTopic);
  if (config.server().listen_address().empty()) {
    config.mutable_server()->set_listen_address(kDefaultListenAddress);
  }
  return config;
}

JobCentreServiceImpl::JobCentreServiceImpl(JobCentreAdapter& adapter, EventRecorder& recorder,
                                           const Pseudonymizer& pseudonymizer,
                                           std::string municipality, absl::Duration call_timeout,
                                           Clock& clock)
    : adapter_(adapter),
      recorder_(recorder),
      pseudonymizer_(pseudonymizer),
      municipality_(std::move(municipality)),
      call_timeout_(call_timeout),
      clock_(clock) {}

absl::StatusOr<RecordResponse> JobCentreServiceImpl::Record(
    grpc::ServerContext* context, const google::protobuf::Message& request,
    const casebridge::recording::v1::RecordContext& record_context, bool legal_basis_required,
    CaseEvent::PayloadCase payload, const std::function<absl::Status()>& validate_payload,
    const Action& action) {
  RETURN_IF_ERROR(ValidateRecordContext(record_context, legal_basis_required, clock_.Now()));
  RETURN_IF_ERROR(validate_payload());
  ASSIGN_OR_RETURN(ResolvedCase resolved,
                   ResolveCase(record_context.case_ref(), municipality_, pseudonymizer_,
                               "context.case_ref"));
  if (record_context.has_supersedes()) {
    RETURN_IF_ERROR(ValidateSupersession(record_context.supersedes(), resolved.subject, payload));
  }
  CallOptions options;
  options.idempotency_key = record_context.idempotency_key();
  options.deadline = clock_.Now() + call_timeout_;
  if (context != nullptr) {
    options.deadline = std::min(options.deadline, absl::FromChrono(context->deadline()));
  }
  const Citizen citizen{resolved.subject, resolved.cpr};
  RecordRequest record_request{record_context.idempotency_key(), resolved.subject,
                               RequestFingerprint(request, resolved.subject)};
  ASSIGN_OR_RETURN(RecordOutcome outcome,
                   recorder_.Record(record_request, [&]() -> absl::StatusOr<ActionResult> {
                     ASSIGN_OR_RETURN(ActionResult result, action(options, citizen));
                     ApplyContext(record_context, result.event);
                     return result;
                   }));
  return ToRecordResponse(outcome);
}

absl::Status JobCentreServiceImpl::ValidateSupersession(
    const casebridge::events::v1::Supersession& supersedes, const std::string& subject,
    CaseEvent::PayloadCase payload) {
  if (supersedes.kind() == casebridge::events::v1::Supersession::KIND_CANCELLATION) {
    // A cancellation carries no payload; no RPC records one yet.
    return absl::InvalidArgumentError(
        "context.supersedes.kind: cancelling an event without a replacement is not supported "
        "yet; send a correction, or cancel an appointment with CancelAppointment");
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

grpc::Status JobCentreServiceImpl::RecordDecision(grpc::ServerContext* context,
                                                  const v1::RecordDecisionRequest* request,
                                                  RecordResponse* response) {
  absl::StatusOr<RecordResponse> result = Record(
      context, *request, request->context(), /*legal_basis_required=*/true, CaseEvent::kDecision,
      [&] {
        if (!request->has_decision()) return absl::InvalidArgumentError("decision: required");
        return ValidateDecision(request->decision(), "decision");
      },
      [&](const CallOptions& options, const Citizen& citizen) -> absl::StatusOr<ActionResult> {
        ActionResult result;
        ASSIGN_OR_RETURN(result.record_id,
                         adapter_.RecordDecision(options, citizen, request->decision()));
        *result.event.mutable_decision() = request->decision();
        result.event.mutable_decision()->set_decision_id(result.record_id);
        return result;
      });
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

grpc::Status JobCentreServiceImpl::BookAppointment(grpc::ServerContext* context,
                                                   const v1::BookAppointmentRequest* request,
                                                   RecordResponse* response) {
  absl::StatusOr<RecordResponse> result = Record(
      context, *request, request->context(), /*legal_basis_required=*/false, CaseEvent::kAppointment,
      [&] {
        if (!request->has_appointment()) return absl::InvalidArgumentError("appointment: required");
        return ValidateNewAppointment(request->appointment(), "appointment");
      },
      [&](const CallOptions& options, const Citizen& citizen) -> absl::StatusOr<ActionResult> {
        ActionResult result;
        ASSIGN_OR_RETURN(result.record_id,
                         adapter_.BookAppointment(options, citizen, request->appointment()));
        *result.event.mutable_appointment() = request->appointment();
        result.event.mutable_appointment()->set_appointment_id(result.record_id);
        result.event.mutable_appointment()->set_status(
            casebridge::events::v1::APPOINTMENT_STATUS_SCHEDULED);
        return result;
      });
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

namespace {

absl::Status RequireAppointmentId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("appointment_id: required");
  return absl::OkStatus();
}

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return ToAbslTime(t);
}

ActionResult AppointmentResult(casebridge::events::v1::Appointment appointment) {
  ActionResult result;
  result.record_id = appointment.appointment_id();
  *result.event.mutable_appointment() = std::move(appointment);
  return result;
}

}  // namespace

grpc::Status JobCentreServiceImpl::RescheduleAppointment(
    grpc::ServerContext* context, const v1::RescheduleAppointmentRequest* request,
    RecordResponse* response) {
  absl::StatusOr<RecordResponse> result = Record(
      context, *request, request->context(), /*legal_basis_required=*/false, CaseEvent::kAppointment,
      [&]() -> absl::Status {
        RETURN_IF_ERROR(RequireAppointmentId(request->appointment_id()));
        if (!request->has_start()) return absl::InvalidArgumentError("start: required");
        if (!request->has_end()) return absl::InvalidArgumentError("end: required");
        if (ToTime(request->end()) <= ToTime(request->start())) {
          return absl::InvalidArgumentError("end: must be after start");
        }
        return absl::OkStatus();
      },
      [&](const CallOptions& options, const Citizen& citizen) -> absl::StatusOr<ActionResult> {
        AppointmentChange change;
        change.appointment_id = request->appointment_id();
        change.start = ToTime(request->start());
        change.end = ToTime(request->end());
        if (request->has_location()) change.location = request->location();
        change.reason = request->reason();
        ASSIGN_OR_RETURN(casebridge::events::v1::Appointment appointment,
                         adapter_.RescheduleAppointment(options, citizen, change));
        return AppointmentResult(std::move(appointment));
      });
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

grpc::Status JobCentreServiceImpl::CancelAppointment(grpc::ServerContext* context,
                                                     const v1::CancelAppointmentRequest* request,
                                                     RecordResponse* response) {
  absl::StatusOr<RecordResponse> result = Record(
      context, *request, request->context(), /*legal_basis_required=*/false, CaseEvent::kAppointment,
      [&]() -> absl::Status {
        RETURN_IF_ERROR(RequireAppointmentId(request->appointment_id()));
        if (request->reason().empty()) return absl::InvalidArgumentError("reason: required");
        return absl::OkStatus();
      },
      [&](const CallOptions& options, const Citizen& citizen) -> absl::StatusOr<ActionResult> {
        ASSIGN_OR_RETURN(casebridge::events::v1::Appointment appointment,
                         adapter_.CancelAppointment(options, citizen, request->appointment_id(),
                                                    request->reason()));
        return AppointmentResult(std::move(appointment));
      });
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

grpc::Status JobCentreServiceImpl::RecordAttendance(grpc::ServerContext* context,
                                                    const v1::RecordAttendanceRequest* request,
                                                    RecordResponse* response) {
  absl::StatusOr<RecordResponse> result = Record(
      context, *request, request->context(), /*legal_basis_required=*/false, CaseEvent::kAppointment,
      [&] { return RequireAppointmentId(request->appointment_id()); },
      [&](const CallOptions& options, const Citizen& citizen) -> absl::StatusOr<ActionResult> {
        ASSIGN_OR_RETURN(casebridge::events::v1::Appointment appointment,
                         adapter_.RecordAttendance(options, citizen, request->appointment_id(),
                                                   request->attended()));
        return AppointmentResult(std::move(appointment));
      });
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

grpc::Status JobCentreServiceImpl::ListCaseEvents(grpc::ServerContext* /*context*/,
                                                  const v1::ListCaseEventsRequest* request,
                                                  v1::ListCaseEventsResponse* response) {
  if (request->page_size() < 0 || request->page_size() > 1000) {
    return ToGrpcStatus(absl::InvalidArgumentError("page_size: must be between 0 and 1000"));
  }
  absl::StatusOr<ResolvedCase> resolved =
      ResolveCase(request->case_ref(), municipality_, pseudonymizer_, "case_ref");
  if (!resolved.ok()) return ToGrpcStatus(resolved.status());
  const int page_size = request->page_size() == 0 ? 100 : request->page_size();
  absl::StatusOr<std::vector<CaseEvent>> events =
      recorder_.ListEvents(resolved->subject, request->after_sequence(), page_size + 1);
  if (!events.ok()) return ToGrpcStatus(events.status());
  const bool more = static_cast<int>(events->size()) > page_size;
  if (more) events->pop_back();
  for (CaseEvent& event : *events) *response->add_events() = std::move(event);
  response->set_next_after_sequence(
      more && response->events_size() > 0
          ? response->events(response->events_size() - 1).sequence()
          : 0);
  return grpc::Status::OK;
}

}  // namespace casebridge::jobcentre
