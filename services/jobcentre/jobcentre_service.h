// The job-centre gRPC service: a thin translation layer. Each recording RPC
// validates the request, resolves the case (CPR → subject at this edge),
// and hands the adapter call and the event to the `EventRecorder`, which
// answers OK only once the event is durable in Kafka.
#pragma once

#include <string>

#include "absl/time/time.h"
#include "adapters/jobcentre/jobcentre_adapter.h"
#include "casebridge/config/v1/config.pb.h"
#include "casebridge/jobcentre/v1/jobcentre_service.grpc.pb.h"
#include "services/common/clock.h"
#include "services/common/event_recorder.h"
#include "services/common/pseudonym.h"

namespace casebridge::jobcentre {

// Returns kInvalidArgument naming the field if `config` is unusable.
absl::Status ValidateJobCentreConfig(const casebridge::config::v1::JobCentreServiceConfig& config);

// Fills documented defaults (canonical topic) into `config`.
casebridge::config::v1::JobCentreServiceConfig WithDefaults(
    casebridge::config::v1::JobCentreServiceConfig config);

// Where the job-centre service listens unless configured otherwise.
inline constexpr char kDefaultListenAddress[] = "0.0.0.0:50051";

// The topic of casebridge's canonical case events.
inline constexpr char kDefaultCanonicalTopic[] = "casebridge.case-events.v1";

class JobCentreServiceImpl final : public casebridge::jobcentre::v1::JobCentreService::Service {
 public:
  // `municipality` is the kommunekode this instance serves; `call_timeout`
  // bounds each adapter call.
  JobCentreServiceImpl(JobCentreAdapter& adapter, EventRecorder& recorder,
                       const Pseudonymizer& pseudonymizer, std::string municipality,
                       absl::Duration call_timeout, Clock& clock = RealClock());

  // casebridge::jobcentre::v1::JobCentreService:
  grpc::Status RecordDecision(grpc::ServerContext* context,
                              const casebridge::jobcentre::v1::RecordDecisionRequest* request,
                              casebridge::recording::v1::RecordResponse* response) override;
  grpc::Status BookAppointment(grpc::ServerContext* context,
                               const casebridge::jobcentre::v1::BookAppointmentRequest* request,
                               casebridge::recording::v1::RecordResponse* response) override;
  grpc::Status RescheduleAppointment(
      grpc::ServerContext* context,
      const casebridge::jobcentre::v1::RescheduleAppointmentRequest* request,
      casebridge::recording::v1::RecordResponse* response) override;
  grpc::Status CancelAppointment(grpc::ServerContext* context,
                                 const casebridge::jobcentre::v1::CancelAppointmentRequest* request,
                                 casebridge::recording::v1::RecordResponse* response) override;
  grpc::Status RecordAttendance(grpc::ServerContext* context,
                                const casebridge::jobcentre::v1::RecordAttendanceRequest* request,
                                casebridge::recording::v1::RecordResponse* response) override;
  grpc::Status ListCaseEvents(grpc::ServerContext* context,
                              const casebridge::jobcentre::v1::ListCaseEventsRequest* request,
                              casebridge::jobcentre::v1::ListCaseEventsResponse* response) override;

 private:
  // Validates the context, resolves the case and records through the
  // recorder; `action` calls the adapter and returns the event content.
  using Action = std::function<absl::StatusOr<ActionResult>(const CallOptions&, const Citizen&)>;
  absl::StatusOr<casebridge::recording::v1::RecordResponse> Record(
      grpc::ServerContext* context, const google::protobuf::Message& request,
      const casebridge::recording::v1::RecordContext& record_context, bool legal_basis_required,
      casebridge::events::v1::CaseEvent::PayloadCase payload,
      const std::function<absl::Status()>& validate_payload, const Action& action);

  // Checks that `supersedes` names an event this service recorded on
  // `subject` with the same kind of payload.
  absl::Status ValidateSupersession(const casebridge::events::v1::Supersession& supersedes,
                                    const std::string& subject,
                                    casebridge::events::v1::CaseEvent::PayloadCase payload);

  JobCentreAdapter& adapter_;
  EventRecorder& recorder_;
  const Pseudonymizer& pseudonymizer_;
  const std::string municipality_;
  const absl::Duration call_timeout_;
  Clock& clock_;
};

}  // namespace casebridge::jobcentre
