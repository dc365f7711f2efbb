// The coordination gRPC service (casebridge.coordination.v1.CoordinationService):
// role assignments, the parties of a case, and the delivery stream of each
// recipient organisation.
//
// `AssignRole` records a role event on the canonical topic through the
// `EventRecorder` (idempotency, ledger, durable publish); the assignment
// takes effect when the delivery processor consumes that event, so
// `ListParties` shows it shortly after `AssignRole` returned. `Subscribe`
// streams a recipient's deliveries from the `CoordinationStore` and then
// waits on the `DeliveryNotifier` for new ones.
//
// RPC bodies are thin: validation lives in the named functions below,
// which unit tests call directly. Errors are "<field path>: <reason>"
// (kInvalidArgument), kNotFound for an unknown recipient, and the recorder's
// and store's errors unchanged. Messages never carry personal data.
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

 private:
  CoordinationStore& store_;
  EventRecorder& recorder_;
  const RequestScope scope_;
  DeliveryNotifier& notifier_;
  Clock& clock_;
};

}  // namespace casebridge::coordination
