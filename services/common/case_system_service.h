// The gRPC service of an administration's case system, shared by the job
// centre, social services and health. Their services
// (`casebridge.jobcentre.v1.JobCentreService`, `…social.v1.SocialService`,
// `…health.v1.HealthService`) have identical RPCs over the shared messages of
// casebridge.recording.v1, so one non-template core, `CaseSystemCore`, does
// the work, and `CaseSystemServiceImpl<ServiceT>` is the thin gRPC layer
// binding it to one generated service.
//
// Every recording RPC: validate the request (INVALID_ARGUMENT naming the
// field), resolve the case (CPR → subject at this edge), check what it
// supersedes, then hand the adapter call and the event to the
// `EventRecorder`, which answers OK only once the event is durable in Kafka.
//
// Example (what `CaseSystemApp` does):
//   CaseSystemCore core(profile, *adapter, *recorder, *pseudonymizer, "0751",
//                       absl::Seconds(5));
//   CaseSystemServiceImpl<health::v1::HealthService> service(core);
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/sync_stream.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "adapters/common/case_system_adapter.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "casebridge/recording/v1/recording.pb.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/bulk_import.h"
#include "services/common/clock.h"
#include "services/common/event_recorder.h"
#include "services/common/grpc_status.h"
#include "services/common/pseudonym.h"
#include "services/common/trace_context.h"

namespace casebridge {

// What distinguishes one administration's service from another's, apart
// from its adapter and its gRPC service type.
struct CaseSystemProfile {
  // The system's name in event sources and logs: "jobcentre", "social",
  // "health" (`source` = "/casebridge/<system>/<municipality>").
  std::string system;
  // The `source_system` of its events.
  casebridge::events::v1::SourceSystem source_system =
      casebridge::events::v1::SOURCE_SYSTEM_UNSPECIFIED;
  // The sensitivity of its events when the caller leaves
  // `context.sensitivity` empty, e.g. SPECIAL_HEALTH for health.
  casebridge::events::v1::Sensitivity default_sensitivity =
      casebridge::events::v1::SENSITIVITY_ORDINARY;
  // Offers whose content is more sensitive than that, by offer code, e.g.
  // addiction treatment ("SEL-101") in social services.
  std::map<std::string, casebridge::events::v1::Sensitivity> offer_sensitivities;
};

// The sensitivity `event` gets when the caller does not say: the most
// protective of the profile's default, the profile's entry for the event's
// offer (a decision's or a referral's), and what the offer's administration
// implies (health, region and general practice: special-health; addiction
// treatment: special-addiction; social services: confidential). So a job
// centre's referral to a health offer is special-health content.
casebridge::events::v1::Sensitivity DefaultSensitivity(
    const CaseSystemProfile& profile, const casebridge::events::v1::CaseEvent& event);

// The RPCs of a case-system service, without gRPC types. Each recording
// method takes the caller's deadline (`absl::InfiniteFuture()` for none) and
// trace context (`IncomingTraceContext`; not valid: none came in) and returns
// the response or the status the RPC answers with. The event is recorded in
// a span of its own in the caller's trace (`TraceContext::ChildOf`), a new
// trace if none came in; a failure on the service's side (not a refused
// request) is logged with its `trace_id`.
//
// Thread safety: safe for concurrent use.
class CaseSystemCore {
 public:
  // `municipality` is the kommunekode this instance serves; `call_timeout`
  // bounds each adapter call. `adapter`, `recorder`, `pseudonymizer` and
  // `clock` must outlive the core.
  CaseSystemCore(CaseSystemProfile profile, CaseSystemAdapter& adapter, EventRecorder& recorder,
                 const Pseudonymizer& pseudonymizer, std::string municipality,
                 absl::Duration call_timeout, Clock& clock = RealClock());

  const CaseSystemProfile& profile() const { return profile_; }

  // What a call needs to be allowed to do.
  enum class Access { kRecord, kRead };

  // Sets who may record and read (CaseSystemServiceConfig.authorization).
  // Call before the service takes calls; without it only the development
  // superuser is allowed anything.
  void set_authorization(casebridge::config::v1::CaseSystemAuthorization authorization) {
    authorization_ = std::move(authorization);
  }

  // OK if the caller (`CallerOf(context)`) may make a call needing `access`:
  // kRecord for `authorization.recorders`, kRead for readers and recorders,
  // anything for the development superuser. Otherwise kPermissionDenied
  // naming the caller.
  absl::Status Authorize(const grpc::ServerContext& context, Access access) const;

  absl::StatusOr<casebridge::recording::v1::RecordResponse> RecordDecision(
      const casebridge::recording::v1::RecordDecisionRequest& request, absl::Time deadline,
      const TraceContext& trace = {});
  absl::StatusOr<casebridge::recording::v1::RecordResponse> BookAppointment(
      const casebridge::recording::v1::BookAppointmentRequest& request, absl::Time deadline,
      const TraceContext& trace = {});
  absl::StatusOr<casebridge::recording::v1::RecordResponse> RescheduleAppointment(
      const casebridge::recording::v1::RescheduleAppointmentRequest& request, absl::Time deadline,
      const TraceContext& trace = {});
  absl::StatusOr<casebridge::recording::v1::RecordResponse> CancelAppointment(
      const casebridge::recording::v1::CancelAppointmentRequest& request, absl::Time deadline,
      const TraceContext& trace = {});
  absl::StatusOr<casebridge::recording::v1::RecordResponse> RecordAttendance(
      const casebridge::recording::v1::RecordAttendanceRequest& request, absl::Time deadline,
      const TraceContext& trace = {});
  // The response's `record_id` is the referral's id (for SENT the one the
  // system just gave it).
  absl::StatusOr<casebridge::recording::v1::RecordResponse> RecordReferralStep(
      const casebridge::recording::v1::RecordReferralStepRequest& request, absl::Time deadline,
      const TraceContext& trace = {});
  // Withdraws the record behind an event this service recorded on the case
  // and publishes a cancellation (no payload) that supersedes the event.
  // NOT_FOUND if the event is not this service's on this case;
  // FAILED_PRECONDITION if it is already cancelled, or is a referral step
  // other than the referral's latest.
  absl::StatusOr<casebridge::recording::v1::RecordResponse> CancelEvent(
      const casebridge::recording::v1::CancelEventRequest& request, absl::Time deadline,
      const TraceContext& trace = {});
  absl::StatusOr<casebridge::recording::v1::ListCaseEventsResponse> ListCaseEvents(
      const casebridge::recording::v1::ListCaseEventsRequest& request);

  // A bulk import (`RunBulkImport`): each request recorded by the method
  // above it names, requests of one case in stream order, results in
  // request order through `write`. `read` yields the next request, false at
  // the end of the stream; `write` returns false if the client is gone.
  absl::Status Import(
      const std::function<bool(casebridge::recording::v1::ImportRequest*)>& read,
      const std::function<bool(const casebridge::recording::v1::ImportResult&)>& write,
      absl::Time deadline, BulkImportOptions options = {}, const TraceContext& trace = {});

 private:
  // Calls the adapter (with the resolved citizen and the call's options)
  // and returns the event's payload and the record id.
  using Action = std::function<absl::StatusOr<ActionResult>(const CallOptions&, const Citizen&)>;

  // Validates the context, resolves the case, checks the supersession, and
  // records through the recorder; `validate_payload` checks the request's
  // own fields first.
  absl::StatusOr<casebridge::recording::v1::RecordResponse> Record(
      const google::protobuf::Message& request,
      const casebridge::recording::v1::RecordContext& record_context, bool legal_basis_required,
      casebridge::events::v1::CaseEvent::PayloadCase payload, absl::Time deadline,
      const TraceContext& trace, const std::function<absl::Status()>& validate_payload,
      const Action& action);
  // `Record`'s work, in the call's span `span`.
  absl::StatusOr<casebridge::recording::v1::RecordResponse> RecordInSpan(
      const google::protobuf::Message& request,
      const casebridge::recording::v1::RecordContext& record_context, bool legal_basis_required,
      casebridge::events::v1::CaseEvent::PayloadCase payload, absl::Time deadline,
      const TraceContext& span, const std::function<absl::Status()>& validate_payload,
      const Action& action);

  // Checks that `supersedes` fits an event with `payload`: corrections name
  // an event this service recorded on `subject` with the same kind of
  // payload; cancellations are only recorded by `CancelEvent`; a referral
  // step is cancelled and recorded again, not corrected.
  absl::Status ValidateSupersession(const casebridge::events::v1::Supersession& supersedes,
                                    const std::string& subject,
                                    casebridge::events::v1::CaseEvent::PayloadCase payload);

  // For `CancelEvent`: the event to cancel, checked against the case's
  // events in the ledger (not cancelled yet; a referral's latest step).
  absl::StatusOr<casebridge::events::v1::CaseEvent> EventToCancel(const std::string& event_id,
                                                                 const std::string& subject);

  const CaseSystemProfile profile_;
  CaseSystemAdapter& adapter_;
  EventRecorder& recorder_;
  const Pseudonymizer& pseudonymizer_;
  const std::string municipality_;
  const absl::Duration call_timeout_;
  Clock& clock_;
  casebridge::config::v1::CaseSystemAuthorization authorization_;
};

// The caller's deadline of a gRPC call (`absl::InfiniteFuture()` without one
// or without a context).
absl::Time CallerDeadline(const grpc::ServerContext* context);

// The gRPC layer of a case-system service: one class for the three
// generated services, each method one line into `CaseSystemCore`. `ServiceT`
// is the generated service class, e.g. `jobcentre::v1::JobCentreService`.
template <typename ServiceT>
class CaseSystemServiceImpl final : public ServiceT::Service {
 public:
  // `core` must outlive the service.
  explicit CaseSystemServiceImpl(CaseSystemCore& core) : core_(core) {}

  // ServiceT::Service:
  grpc::Status RecordDecision(grpc::ServerContext* context,
                              const casebridge::recording::v1::RecordDecisionRequest* request,
                              casebridge::recording::v1::RecordResponse* response) override {
    if (absl::Status allowed = core_.Authorize(*context, CaseSystemCore::Access::kRecord);
        !allowed.ok()) {
      return ToGrpcStatus(allowed);
    }
    return Answer(
        core_.RecordDecision(*request, CallerDeadline(context), IncomingTraceContext(*context)),
        response);
  }
  grpc::Status BookAppointment(grpc::ServerContext* context,
                               const casebridge::recording::v1::BookAppointmentRequest* request,
                               casebridge::recording::v1::RecordResponse* response) override {
    if (absl::Status allowed = core_.Authorize(*context, CaseSystemCore::Access::kRecord);
        !allowed.ok()) {
      return ToGrpcStatus(allowed);
    }
    return Answer(
        core_.BookAppointment(*request, CallerDeadline(context), IncomingTraceContext(*context)),
        response);
  }
  grpc::Status RescheduleAppointment(
      grpc::ServerContext* context,
      const casebridge::recording::v1::RescheduleAppointmentRequest* request,
      casebridge::recording::v1::RecordResponse* response) override {
    if (absl::Status allowed = core_.Authorize(*context, CaseSystemCore::Access::kRecord);
        !allowed.ok()) {
      return ToGrpcStatus(allowed);
    }
    return Answer(core_.RescheduleAppointment(*request, CallerDeadline(context),
                                              IncomingTraceContext(*context)),
                  response);
  }
  grpc::Status CancelAppointment(grpc::ServerContext* context,
                                 const casebridge::recording::v1::CancelAppointmentRequest* request,
                                 casebridge::recording::v1::RecordResponse* response) override {
    if (absl::Status allowed = core_.Authorize(*context, CaseSystemCore::Access::kRecord);
        !allowed.ok()) {
      return ToGrpcStatus(allowed);
    }
    return Answer(
        core_.CancelAppointment(*request, CallerDeadline(context), IncomingTraceContext(*context)),
        response);
  }
  grpc::Status RecordAttendance(grpc::ServerContext* context,
                                const casebridge::recording::v1::RecordAttendanceRequest* request,
                                casebridge::recording::v1::RecordResponse* response) override {
    if (absl::Status allowed = core_.Authorize(*context, CaseSystemCore::Access::kRecord);
        !allowed.ok()) {
      return ToGrpcStatus(allowed);
    }
    return Answer(
        core_.RecordAttendance(*request, CallerDeadline(context), IncomingTraceContext(*context)),
        response);
  }
  grpc::Status RecordReferralStep(
      grpc::ServerContext* context,
      const casebridge::recording::v1::RecordReferralStepRequest* request,
      casebridge::recording::v1::RecordResponse* response) override {
    if (absl::Status allowed = core_.Authorize(*context, CaseSystemCore::Access::kRecord);
        !allowed.ok()) {
      return ToGrpcStatus(allowed);
    }
    return Answer(
        core_.RecordReferralStep(*request, CallerDeadline(context), IncomingTraceContext(*context)),
        response);
  }
  grpc::Status CancelEvent(grpc::ServerContext* context,
                           const casebridge::recording::v1::CancelEventRequest* request,
                           casebridge::recording::v1::RecordResponse* response) override {
    if (absl::Status allowed = core_.Authorize(*context, CaseSystemCore::Access::kRecord);
        !allowed.ok()) {
      return ToGrpcStatus(allowed);
    }
    return Answer(
        core_.CancelEvent(*request, CallerDeadline(context), IncomingTraceContext(*context)),
        response);
  }
  grpc::Status Import(grpc::ServerContext* context,
                      grpc::ServerReaderWriter<casebridge::recording::v1::ImportResult,
                                               casebridge::recording::v1::ImportRequest>* stream)
      override {
    if (absl::Status allowed = core_.Authorize(*context, CaseSystemCore::Access::kRecord);
        !allowed.ok()) {
      return ToGrpcStatus(allowed);
    }
    // One thread reads while another writes: gRPC allows one of each.
    return ToGrpcStatus(core_.Import(
        [stream](casebridge::recording::v1::ImportRequest* request) {
          return stream->Read(request);
        },
        [stream](const casebridge::recording::v1::ImportResult& result) {
          return stream->Write(result);
        },
        CallerDeadline(context), {}, IncomingTraceContext(*context)));
  }
  grpc::Status ListCaseEvents(
      grpc::ServerContext* context,
      const casebridge::recording::v1::ListCaseEventsRequest* request,
      casebridge::recording::v1::ListCaseEventsResponse* response) override {
    if (absl::Status allowed = core_.Authorize(*context, CaseSystemCore::Access::kRead);
        !allowed.ok()) {
      return ToGrpcStatus(allowed);
    }
    return Answer(core_.ListCaseEvents(*request), response);
  }

 private:
  template <typename Response>
  static grpc::Status Answer(absl::StatusOr<Response> result, Response* response) {
    if (!result.ok()) return ToGrpcStatus(result.status());
    *response = *std::move(result);
    return grpc::Status::OK;
  }

  CaseSystemCore& core_;
};

// Returns a `CaseSystemServiceImpl<ServiceT>` over `core`; the
// `CaseSystemDefinition::new_service` of each system.
template <typename ServiceT>
std::unique_ptr<grpc::Service> NewCaseSystemService(CaseSystemCore& core) {
  return std::make_unique<CaseSystemServiceImpl<ServiceT>>(core);
}

}  // namespace casebridge
