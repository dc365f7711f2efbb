#include "services/common/proto_time.h"
#include "services/coordination/coordination_service.h"

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "services/common/grpc_status.h"
#include "services/common/record_validation.h"
#include "services/common/status_macros.h"

namespace casebridge::coordination {
namespace {

using casebridge::common::v1::CaseRef;
using casebridge::coordination::v1::AssignRoleRequest;
using casebridge::coordination::v1::AssignRoleResponse;
using casebridge::coordination::v1::Delivery;
using casebridge::coordination::v1::ListPartiesRequest;
using casebridge::coordination::v1::ListPartiesResponse;
using casebridge::coordination::v1::Party;
using casebridge::coordination::v1::SubscribeRequest;

// How long a `Subscribe` stream waits for a notification before it looks
// whether its caller went away.
constexpr absl::Duration kSubscribeWakeInterval = absl::Milliseconds(200);
// Deliveries read from the store per step of a `Subscribe` stream.
constexpr int kSubscribeBatch = 100;

absl::Status CheckRecipientConfigured(const std::string& recipient, const RequestScope& scope) {
  if (!scope.recipients.contains(recipient)) {
    return absl::NotFoundError(absl::StrCat("recipient: unknown recipient \"", recipient, "\""));
  }
  return absl::OkStatus();
}

// A repeated idempotency key is compared by this: the request as recorded,
// with a CPR number replaced by the subject.
RequestScope ScopeFor(const Pseudonymizer& pseudonymizer,
                      const casebridge::config::v1::CoordinationServiceConfig& config) {
  RequestScope scope{pseudonymizer, config.municipality(), {}};
  for (const auto& recipient : config.recipients()) scope.recipients.insert(recipient.id());
  return scope;
}

}  // namespace

absl::StatusOr<std::string> SubjectOf(const CaseRef& case_ref, const RequestScope& scope) {
  ASSIGN_OR_RETURN(ResolvedCase resolved,
                   ResolveCase(case_ref, scope.municipality, scope.pseudonymizer, "case_ref"));
  return std::move(resolved.subject);
}

absl::StatusOr<std::string> ValidateAssignRole(const AssignRoleRequest& request,
                                               const RequestScope& scope) {
  RETURN_IF_ERROR(ValidateIdempotencyKey(request.idempotency_key(), "idempotency_key"));
  ASSIGN_OR_RETURN(std::string subject, SubjectOf(request.case_ref(), scope));
  if (request.role() == casebridge::common::v1::ROLE_UNSPECIFIED) {
    return absl::InvalidArgumentError("role: required");
  }
  if (!casebridge::common::v1::Role_IsValid(request.role())) {
    return absl::InvalidArgumentError("role: unknown value");
  }
  if (request.recipient().empty()) return absl::InvalidArgumentError("recipient: required");
  if (request.has_unit() && request.unit().id().empty()) {
    return absl::InvalidArgumentError("unit.id: required when unit is set");
  }
  RETURN_IF_ERROR(ValidateActor(request.actor(), "actor"));
  RETURN_IF_ERROR(CheckRecipientConfigured(request.recipient(), scope));
  return subject;
}

absl::StatusOr<std::string> ValidateListParties(const ListPartiesRequest& request,
                                                const RequestScope& scope) {
  return SubjectOf(request.case_ref(), scope);
}

absl::Status ValidateSubscribe(const SubscribeRequest& request, const RequestScope& scope) {
  if (request.recipient().empty()) return absl::InvalidArgumentError("recipient: required");
  if (!request.subject().empty() && !IsSubject(request.subject())) {
    return absl::InvalidArgumentError("subject: not a case key (64 lower-case hex digits)");
  }
  // The store keeps sequences as SQLite's signed 64-bit integers.
  if (request.after_stream_sequence() > static_cast<uint64_t>(INT64_MAX)) {
    return absl::InvalidArgumentError("after_stream_sequence: out of range");
  }
  return CheckRecipientConfigured(request.recipient(), scope);
}

ActionResult RoleEventFor(const AssignRoleRequest& request, absl::Time now) {
  ActionResult result;
  casebridge::events::v1::CaseEvent& event = result.event;
  casebridge::events::v1::RoleAssignment& assignment = *event.mutable_role_assignment();
  assignment.set_role(request.role());
  assignment.set_recipient(request.recipient());
  assignment.set_holder_name(request.holder_name());
  if (request.has_unit()) *assignment.mutable_unit() = request.unit();
  assignment.set_released(request.release());
  *event.mutable_actor() = request.actor();
  *event.mutable_occurred_at() = ToProtoTimestamp(now);
  event.set_sensitivity(casebridge::events::v1::SENSITIVITY_ORDINARY);
  return result;
}

CoordinationServiceImpl::CoordinationServiceImpl(
    CoordinationStore& store, EventRecorder& recorder, const Pseudonymizer& pseudonymizer,
    const casebridge::config::v1::CoordinationServiceConfig& config, DeliveryNotifier& notifier,
    Clock& clock)
    : store_(store),
      recorder_(recorder),
      scope_(ScopeFor(pseudonymizer, config)),
      notifier_(notifier),
      clock_(clock) {}

void CoordinationServiceImpl::Shutdown() { notifier_.Shutdown(); }

grpc::Status CoordinationServiceImpl::AssignRole(grpc::ServerContext* /*context*/,
                                                 const AssignRoleRequest* request,
                                                 AssignRoleResponse* response) {
  absl::StatusOr<std::string> subject = ValidateAssignRole(*request, scope_);
  if (!subject.ok()) return ToGrpcStatus(subject.status());
  const RecordRequest record{request->idempotency_key(), *subject,
                             RequestFingerprint(*request, *subject), "idempotency_key"};
  absl::StatusOr<RecordOutcome> outcome = recorder_.Record(
      record,
      [&]() -> absl::StatusOr<ActionResult> { return RoleEventFor(*request, clock_.Now()); });
  if (!outcome.ok()) return ToGrpcStatus(outcome.status());
  response->set_event_id(outcome->event.id());
  response->set_subject(outcome->event.subject());
  response->set_sequence(outcome->event.sequence());
  response->set_replayed(outcome->replayed);
  return grpc::Status::OK;
}

grpc::Status CoordinationServiceImpl::ListParties(grpc::ServerContext* /*context*/,
                                                  const ListPartiesRequest* request,
                                                  ListPartiesResponse* response) {
  absl::StatusOr<std::string> subject = ValidateListParties(*request, scope_);
  if (!subject.ok()) return ToGrpcStatus(subject.status());
  absl::StatusOr<std::vector<Party>> parties = store_.ListParties(*subject);
  if (!parties.ok()) return ToGrpcStatus(parties.status());
  response->set_subject(*subject);
  for (Party& party : *parties) *response->add_parties() = std::move(party);
  return grpc::Status::OK;
}

grpc::Status CoordinationServiceImpl::Subscribe(grpc::ServerContext* context,
                                                const SubscribeRequest* request,
                                                grpc::ServerWriter<Delivery>* writer) {
  if (absl::Status status = ValidateSubscribe(*request, scope_); !status.ok()) {
    return ToGrpcStatus(status);
  }
  uint64_t after = request->after_stream_sequence();
  while (true) {
    if (notifier_.is_shut_down()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the coordination service is shutting down; subscribe again");
    }
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
    // Read the generation before the store, so a delivery stored between
    // the read and the wait still wakes us.
    const uint64_t seen = notifier_.generation();
    absl::StatusOr<std::vector<Delivery>> deliveries =
        store_.ReadDeliveries(request->recipient(), after, request->subject(), kSubscribeBatch);
    if (!deliveries.ok()) return ToGrpcStatus(deliveries.status());
    for (const Delivery& delivery : *deliveries) {
      if (!writer->Write(delivery)) return grpc::Status::CANCELLED;  // the caller went away
      after = delivery.stream_sequence();
    }
    if (static_cast<int>(deliveries->size()) < kSubscribeBatch) {
      notifier_.WaitForChange(seen, kSubscribeWakeInterval);
    }
  }
}

}  // namespace casebridge::coordination
