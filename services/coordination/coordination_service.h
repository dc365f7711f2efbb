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
// Each recording RPC records its event in a span of its own in the caller's
// W3C trace (the `traceparent`/`tracestate` metadata; a new trace without
// one), which the event carries onto the canonical topic.
//
// `RecordConsent` and `WithdrawConsent` record consent events the same way;
// the store applies them when they come back from the canonical topic, and
// from then on every delivery and timeline read is decided per recipient by
// `DecideDisclosure` (projection.h).
//
// Authorisation (after validation, before anything is read or written).
// The caller is `CallerOf(context)`: the client certificate's CN, which for
// a recipient organisation is its recipient id. "Administrators" are
// `CoordinationServiceConfig.authorization.administrators`; a "party" is a
// recipient that holds a role on the case.
//
//   AssignRole, RecordConsent, WithdrawConsent   administrators, and the
//                                                case's coordinating caseworker
//   CreateTask, CompleteTask, ListParties,
//   ListTasks, ListConsents                      administrators and parties
//   GetTimeline                                  parties (each sees the events
//                                                as its own deliveries would
//                                                show them, under the consents
//                                                in force now)
//   Subscribe, SendReceipt                       the recipient itself
//   GetDeliveryStatus                            administrators and the
//                                                event's recipients
//
// Anything else is PERMISSION_DENIED naming the field and the reason. In
// insecure development mode a caller without a `casebridge-dev-identity`
// is allowed everything (peer_identity.h).
//
// Audit: every read of case content (`GetTimeline`, each batch a
// `Subscribe` stream sends, `ListParties`, `ListTasks`, `ListConsents`) is
// written to the audit log before the answer is sent; if that fails the
// caller gets UNAVAILABLE and sees nothing.
//
// RPC bodies are thin: validation lives in the named functions below,
// which unit tests call directly. Errors are "<field path>: <reason>"
// (kInvalidArgument), kNotFound for an unknown recipient, event, task or
// consent, kFailedPrecondition for a task already completed or a consent
// already withdrawn, kPermissionDenied as above, and the recorder's and
// store's errors unchanged. Messages never carry personal data.
//
// Thread safety: safe for concurrent use (gRPC calls the methods from many
// threads).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "casebridge/config/v1/config.pb.h"
#include "casebridge/coordination/v1/coordination_service.grpc.pb.h"
#include "services/common/clock.h"
#include "services/common/event_recorder.h"
#include "services/common/pseudonym.h"
#include "services/coordination/audit_log.h"
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

// Returns the subject, or kInvalidArgument naming the first bad field: no
// grant, an unspecified or unknown administration or sensitivity, an
// administration granted twice, ORDINARY (it needs no consent), a missing
// purpose or form, or a bad actor.
absl::StatusOr<std::string> ValidateRecordConsent(
    const casebridge::coordination::v1::RecordConsentRequest& request, const RequestScope& scope);

absl::StatusOr<std::string> ValidateWithdrawConsent(
    const casebridge::coordination::v1::WithdrawConsentRequest& request,
    const RequestScope& scope);

absl::StatusOr<std::string> ValidateListConsents(
    const casebridge::coordination::v1::ListConsentsRequest& request, const RequestScope& scope);

// The consent event for `request`; its consent id is `consent_id`.
ActionResult ConsentGivenEventFor(const casebridge::coordination::v1::RecordConsentRequest& request,
                                  const std::string& consent_id, absl::Time now);

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
  // `audit` receives one record per read of case content (timeline,
  // stream, parties, tasks, consents); the app always passes one, null
  // (tests only) audits nothing.
  CoordinationServiceImpl(CoordinationStore& store, EventRecorder& recorder,
                          const Pseudonymizer& pseudonymizer,
                          const casebridge::config::v1::CoordinationServiceConfig& config,
                          DeliveryNotifier& notifier, Clock& clock = RealClock(),
                          AuditLog* audit = nullptr);

  // Ends every `Subscribe` stream (UNAVAILABLE: resubscribe elsewhere or
  // later) and refuses new ones, so the server can shut down promptly. Call
  // before `grpc::Server::Shutdown`.
  void Shutdown();

  // `Subscribe` streams open now (casebridge_subscribe_streams).
  int64_t OpenStreams() const { return open_streams_; }

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
  grpc::Status RecordConsent(grpc::ServerContext* context,
                             const casebridge::coordination::v1::RecordConsentRequest* request,
                             casebridge::coordination::v1::ConsentResponse* response) override;
  grpc::Status WithdrawConsent(grpc::ServerContext* context,
                               const casebridge::coordination::v1::WithdrawConsentRequest* request,
                               casebridge::coordination::v1::ConsentResponse* response) override;
  grpc::Status ListConsents(grpc::ServerContext* context,
                            const casebridge::coordination::v1::ListConsentsRequest* request,
                            casebridge::coordination::v1::ListConsentsResponse* response) override;

 private:
  std::atomic<int64_t> open_streams_{0};

  // What a caller may do on one case.
  struct CaseAccess {
    // The caller's identity ("" for the development superuser).
    std::string identity;
    // The development superuser or a configured administrator.
    bool administrator = false;
    // The development superuser: sees every event whole.
    bool superuser = false;
    // The roles the caller's recipient organisation holds on the case.
    std::vector<casebridge::common::v1::Role> roles;
  };
  absl::StatusOr<CaseAccess> AccessTo(const grpc::ServerContext& context,
                                      const std::string& subject);
  // Who may make a call on a case.
  enum class Allowed {
    kCoordinator,            // administrators and the coordinating caseworker
    kPartyOrAdministrator,   // administrators and parties on the case
    kParty,                  // parties on the case only
  };
  // `AccessTo`, then PERMISSION_DENIED unless `allowed` admits the caller
  // (`what` names the action in the message).
  absl::StatusOr<CaseAccess> Authorize(const grpc::ServerContext& context,
                                       const std::string& subject, Allowed allowed,
                                       absl::string_view what);
  // PERMISSION_DENIED unless the caller is an administrator or the case's
  // coordinating caseworker (`what` names the action in the message).
  absl::Status RequireCoordinator(const CaseAccess& access, absl::string_view what);
  // PERMISSION_DENIED unless the caller is a party on the case (or, when
  // `administrators_too`, an administrator).
  absl::Status RequireParty(const CaseAccess& access, bool administrators_too,
                            absl::string_view what);
  // PERMISSION_DENIED unless the caller is recipient `recipient`.
  absl::Status RequireRecipient(const grpc::ServerContext& context, const std::string& recipient);
  // Writes `record` to the audit log (no-op without one); UNAVAILABLE if it
  // is not durable, in which case nothing may be disclosed.
  absl::Status Audit(casebridge::audit::v1::AuditRecord record);
  // The consent RPCs' common path (`rpc` names the RPC in the log line of a
  // failure).
  grpc::Status RecordConsentEvent(const RecordRequest& record, absl::string_view rpc,
                                  const std::function<absl::StatusOr<ActionResult>()>& action,
                                  casebridge::coordination::v1::ConsentResponse* response);

  // The current holder of `role` on case `subject`, or "".
  absl::StatusOr<std::string> HolderOf(const std::string& subject,
                                       casebridge::common::v1::Role role);

  CoordinationStore& store_;
  EventRecorder& recorder_;
  const RequestScope scope_;
  DeliveryNotifier& notifier_;
  Clock& clock_;
  AuditLog* const audit_;
  const std::set<std::string> administrators_;
};

}  // namespace casebridge::coordination
