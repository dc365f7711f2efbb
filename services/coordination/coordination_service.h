// The coordination gRPC service (casebridge.coordination.v1.CoordinationService):
// role assignments, the parties of a case, the delivery stream of each
// recipient organisation, receipts and delivery status, the case timeline,
// and tasks.
//
// `AssignRole`, `CreateTask` and `CompleteTask` record an event on the
// canonical topic through the `EventRecorder` (idempotency, ledger, durable
// publish); it takes effect when the delivery processor consumes that event,
// so `ListParties` and `ListTasks` show it shortly after the call returned.
// `Subscribe` streams a recipient's deliveries from the `CoordinationStore`
// and then waits on the `DeliveryNotifier` for new ones. `SendReceipt`,
// `GetDeliveryStatus`, `GetTimeline` and `ListTasks` read and write the
// store only.
//
// RPC bodies are thin: validation lives in the named functions below,
// which unit tests call directly. Errors are "<field path>: <reason>"
// (kInvalidArgument), kNotFound for an unknown recipient, event or task,
// kFailedPrecondition for a task already completed, and the recorder's and
// store's errors unchanged. Messages never carry personal data.
//
// Thread safety: safe for concurrent use (gRPC calls the methods from many
// threads).
#pragma once

#include <grpcpp/grpcpp.h>

#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "casebridge/config/v1/config.pb.h"
#include "casebridge/coordination/v1/coordination_service.grpc.pb.h"
#include "services/common/clock.h"
#include "services/common/event_recorder.h"
#include "services/common/pseudonym.h"
#include "services/coordination/coordination_store.h"
#include "services/coordination/delivery_notifier.h"

namespace casebridge::coordination {

// What validating a request needs to know about this deployment.
struct RequestScope {
  // Turns CPR numbers into subjects.
  const Pseudonymizer& pseudonymizer;
  // The municipality of this instance (kommunekode).
  std::string municipality;
  // The configured recipient ids.
  std::set<std::string> recipients;
};

// Returns the subject of the case `case_ref` names: the pseudonym of its CPR
// number in `scope.municipality`, or its subject. kInvalidArgument naming
// `case_ref`, `case_ref.cpr` or `case_ref.subject` otherwise.
absl::StatusOr<std::string> SubjectOf(const casebridge::common::v1::CaseRef& case_ref,
                                      const RequestScope& scope);

// Validates `request` and returns the subject of its case. kInvalidArgument
// for the first malformed field (`idempotency_key`, `case_ref…`, `role`,
// `recipient`, `unit.id`, `actor.role`, `actor.unit`), then kNotFound
// "recipient: unknown recipient \"<id>\"" if the recipient is not configured.
absl::StatusOr<std::string> ValidateAssignRole(
    const casebridge::coordination::v1::AssignRoleRequest& request, const RequestScope& scope);

// Validates `request` and returns the subject of its case.
absl::StatusOr<std::string> ValidateListParties(
    const casebridge::coordination::v1::ListPartiesRequest& request, const RequestScope& scope);

// kInvalidArgument for a missing `recipient`, a malformed `subject` or an
// `after_stream_sequence` beyond 2^63-1; kNotFound for an unknown recipient.
absl::Status ValidateSubscribe(const casebridge::coordination::v1::SubscribeRequest& request,
                               const RequestScope& scope);

// kInvalidArgument for a missing `recipient` or `event_id`, or a `status`
// that is unspecified or unknown, or a `reason` over 1000 characters;
// kNotFound for an unknown recipient.
absl::Status ValidateSendReceipt(const casebridge::coordination::v1::SendReceiptRequest& request,
                                 const RequestScope& scope);

// kInvalidArgument for a missing `event_id`.
absl::Status ValidateGetDeliveryStatus(
    const casebridge::coordination::v1::GetDeliveryStatusRequest& request);

// Validates `request` and returns the subject of its case.
absl::StatusOr<std::string> ValidateGetTimeline(
    const casebridge::coordination::v1::GetTimelineRequest& request, const RequestScope& scope);

// Validates `request` and returns the subject of its case. kInvalidArgument
// for the first malformed field: `idempotency_key`, `case_ref…`, `title`
// (1–500 characters, not blank), `owner_role`, `due` (required, a valid
// timestamp), `actor.role`, `actor.unit`.
absl::StatusOr<std::string> ValidateCreateTask(
    const casebridge::coordination::v1::CreateTaskRequest& request, const RequestScope& scope);

// Validates `request` and returns the subject of its case: `idempotency_key`,
// `case_ref…`, `task_id` (required), `actor…`.
absl::StatusOr<std::string> ValidateCompleteTask(
    const casebridge::coordination::v1::CompleteTaskRequest& request, const RequestScope& scope);

// Validates `request` and returns the subject of its case.
absl::StatusOr<std::string> ValidateListTasks(
    const casebridge::coordination::v1::ListTasksRequest& request, const RequestScope& scope);

// The id of the task whose `task.created` event has id `event_id`: "T-" and
// the event id's first 12 hex digits. Deterministic, so a replayed
// `CreateTask` names the same task.
std::string TaskIdFor(const std::string& event_id);

// The content of the `task.created` event `request` asks for: an OPEN task
// `task_id` owned by `owner_role`, held by `owner_recipient` (empty if the
// role has no holder), `occurred_at` = `now`.
ActionResult TaskCreatedEventFor(const casebridge::coordination::v1::CreateTaskRequest& request,
                                 const std::string& task_id, const std::string& owner_recipient,
                                 absl::Time now);

// The content of the role event `request` asks for (payload, actor,
// `occurred_at` = `now`, ordinary sensitivity); the recorder adds the rest
// of the envelope.
ActionResult RoleEventFor(const casebridge::coordination::v1::AssignRoleRequest& request,
                          absl::Time now);

class CoordinationServiceImpl final
    : public casebridge::coordination::v1::CoordinationService::Service {
 public:
  // Every reference must outlive the service. `config` is read here only.
  CoordinationServiceImpl(CoordinationStore& store, EventRecorder& recorder,
                          const Pseudonymizer& pseudonymizer,
                          const casebridge::config::v1::CoordinationServiceConfig& config,
                          DeliveryNotifier& notifier, Clock& clock = RealClock());

  // Ends every `Subscribe` stream (UNAVAILABLE: resubscribe elsewhere or
  // later) and refuses new ones, so the server can shut down promptly. Call
  // before `grpc::Server::Shutdown`.
  void Shutdown();

  // CoordinationService::Service:
  grpc::Status AssignRole(grpc::ServerContext* context,
                          const casebridge::coordination::v1::AssignRoleRequest* request,
                          casebridge::coordination::v1::AssignRoleResponse* response) override;
  grpc::Status ListParties(grpc::ServerContext* context,
                           const casebridge::coordination::v1::ListPartiesRequest* request,
                           casebridge::coordination::v1::ListPartiesResponse* response) override;
  grpc::Status Subscribe(
      grpc::ServerContext* context, const casebridge::coordination::v1::SubscribeRequest* request,
      grpc::ServerWriter<casebridge::coordination::v1::Delivery>* writer) override;
  grpc::Status SendReceipt(grpc::ServerContext* context,
                           const casebridge::coordination::v1::SendReceiptRequest* request,
                           casebridge::coordination::v1::SendReceiptResponse* response) override;
  grpc::Status GetDeliveryStatus(
      grpc::ServerContext* context,
      const casebridge::coordination::v1::GetDeliveryStatusRequest* request,
      casebridge::coordination::v1::DeliveryStatus* response) override;
  grpc::Status GetTimeline(grpc::ServerContext* context,
                           const casebridge::coordination::v1::GetTimelineRequest* request,
                           casebridge::coordination::v1::Timeline* response) override;
  grpc::Status CreateTask(grpc::ServerContext* context,
                          const casebridge::coordination::v1::CreateTaskRequest* request,
                          casebridge::coordination::v1::TaskResponse* response) override;
  grpc::Status CompleteTask(grpc::ServerContext* context,
                            const casebridge::coordination::v1::CompleteTaskRequest* request,
                            casebridge::coordination::v1::TaskResponse* response) override;
  grpc::Status ListTasks(grpc::ServerContext* context,
                         const casebridge::coordination::v1::ListTasksRequest* request,
                         casebridge::coordination::v1::ListTasksResponse* response) override;

 private:
  // The current holder of `role` on case `subject`, or "".
  absl::StatusOr<std::string> HolderOf(const std::string& subject,
                                       casebridge::common::v1::Role role);

  CoordinationStore& store_;
  EventRecorder& recorder_;
  const RequestScope scope_;
  DeliveryNotifier& notifier_;
  Clock& clock_;
};

}  // namespace casebridge::coordination
