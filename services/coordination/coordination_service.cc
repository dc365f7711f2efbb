#include "services/coordination/coordination_service.h"

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "google/protobuf/util/time_util.h"
#include "services/common/event_ids.h"
#include "services/common/grpc_status.h"
#include "services/common/log.h"
#include "services/common/peer_identity.h"
#include "services/common/proto_time.h"
#include "services/common/record_validation.h"
#include "services/common/status_macros.h"
#include "services/coordination/case_rules.h"
#include "services/coordination/projection.h"
#include "services/coordination/timeline.h"

namespace casebridge::coordination {
namespace {

using casebridge::common::v1::CaseRef;
using casebridge::coordination::v1::AssignRoleRequest;
using casebridge::coordination::v1::AssignRoleResponse;
using casebridge::coordination::v1::CompleteTaskRequest;
using casebridge::coordination::v1::CreateTaskRequest;
using casebridge::coordination::v1::Delivery;
using casebridge::coordination::v1::DeliveryStatus;
using casebridge::coordination::v1::GetDeliveryStatusRequest;
using casebridge::coordination::v1::GetTimelineRequest;
using casebridge::coordination::v1::ListPartiesRequest;
using casebridge::coordination::v1::ListPartiesResponse;
using casebridge::coordination::v1::ListTasksRequest;
using casebridge::coordination::v1::ListTasksResponse;
using casebridge::coordination::v1::Party;
using casebridge::coordination::v1::SendReceiptRequest;
using casebridge::coordination::v1::SendReceiptResponse;
using casebridge::coordination::v1::SubscribeRequest;
using casebridge::coordination::v1::TaskResponse;
using casebridge::coordination::v1::Timeline;
using casebridge::audit::v1::AuditRecord;
using casebridge::common::v1::Role;
using casebridge::coordination::v1::ConsentResponse;
using casebridge::coordination::v1::ListConsentsRequest;
using casebridge::coordination::v1::ListConsentsResponse;
using casebridge::coordination::v1::RecordConsentRequest;
using casebridge::coordination::v1::WithdrawConsentRequest;
using casebridge::events::v1::CaseEvent;
using casebridge::events::v1::Consent;
using casebridge::events::v1::Task;

// How long a `Subscribe` stream waits for a notification before it looks
// whether its caller went away.
constexpr absl::Duration kSubscribeWakeInterval = absl::Milliseconds(200);
// Deliveries read from the store per step of a `Subscribe` stream.
constexpr int kSubscribeBatch = 100;
// Longest receipt reason and task title accepted.
constexpr size_t kMaxReasonLength = 1000;
constexpr size_t kMaxTitleLength = 500;
// Longest consent purpose and form accepted.
constexpr size_t kMaxPurposeLength = 500;
constexpr size_t kMaxFormLength = 100;
// How long a read waits for its audit record to become durable.
constexpr absl::Duration kAuditTimeout = absl::Seconds(10);

absl::Status Denied(absl::string_view field, absl::string_view identity,
                    absl::string_view reason) {
  return absl::PermissionDeniedError(
      absl::StrCat(field, ": caller \"", identity, "\" ", reason));
}

// One event as an audit record lists it.
void AddDisclosed(const CaseEvent& event, const DisclosureDecision& decision,
                  AuditRecord& record) {
  casebridge::audit::v1::DisclosedEvent& disclosed = *record.add_events();
  disclosed.set_event_id(event.id());
  disclosed.set_type(event.type());
  disclosed.set_disclosure(decision.disclosure);
  for (const std::string& id : decision.consent_ids) disclosed.add_consent_ids(id);
  disclosed.set_basis(decision.basis);
}

absl::Status ValidateRole(int role, const std::string& field) {
  if (role == casebridge::common::v1::ROLE_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  }
  if (!casebridge::common::v1::Role_IsValid(role)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": unknown value"));
  }
  return absl::OkStatus();
}

// A required free text: not blank, at most `max_length` bytes.
absl::Status ValidateText(const std::string& text, size_t max_length, absl::string_view field) {
  if (absl::StripAsciiWhitespace(text).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  }
  if (text.size() > max_length) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": at most ", max_length, " characters"));
  }
  return absl::OkStatus();
}

absl::Status CheckRecipientConfigured(const std::string& recipient, const RequestScope& scope) {
  if (!scope.recipients.contains(recipient)) {
    return absl::NotFoundError(absl::StrCat("recipient: unknown recipient \"", recipient, "\""));
  }
  return absl::OkStatus();
}

// The audit record of a read of a case's parties, tasks or consents.
AuditRecord CaseReadRecord(const std::string& caller, const std::string& subject) {
  AuditRecord record;
  record.set_action(casebridge::audit::v1::AUDIT_ACTION_CASE_READ);
  record.set_recipient(caller);
  record.set_caller(caller);
  record.set_subject(subject);
  return record;
}

// The audit record of one batch a `Subscribe` stream is about to send.
AuditRecord StreamReadRecord(const std::string& caller, const SubscribeRequest& request,
                             const std::vector<Delivery>& deliveries) {
  AuditRecord record;
  record.set_action(casebridge::audit::v1::AUDIT_ACTION_STREAM_READ);
  record.set_recipient(request.recipient());
  record.set_caller(caller);
  record.set_subject(request.subject());
  record.set_first_stream_sequence(deliveries.front().stream_sequence());
  record.set_last_stream_sequence(deliveries.back().stream_sequence());
  for (const Delivery& delivery : deliveries) {
    DisclosureDecision decision{delivery.disclosure(), delivery.disclosure_basis(), {}};
    for (const std::string& id : delivery.consent_ids()) decision.consent_ids.push_back(id);
    AddDisclosed(delivery.event(), decision, record);
  }
  return record;
}

// A repeated idempotency key is compared by this: the request as recorded,
// with a CPR number replaced by the subject.
RequestScope ScopeFor(const Pseudonymizer& pseudonymizer,
                      const casebridge::config::v1::CoordinationServiceConfig& config) {
  RequestScope scope{pseudonymizer, config.municipality(), {}};
  for (const auto& recipient : config.recipients()) scope.recipients.insert(recipient.id());
  return scope;
}

// The span of a recording RPC: a child of the caller's trace context (its
// `traceparent` metadata), or a new trace. The event it records carries it.
TraceContext CallSpan(const grpc::ServerContext& context) {
  return TraceContext::ChildOf(IncomingTraceContext(context));
}

// The answer to a recording RPC that failed: a failure on the service's
// side is logged with its trace id first (messages carry no personal data).
grpc::Status RecordingFailed(absl::string_view rpc, const absl::Status& status,
                             const TraceContext& span) {
  if (IsServiceFailure(status.code())) {
    LogWarning("recording failed", {{"rpc", std::string(rpc)},
                                    {"code", absl::StatusCodeToString(status.code())},
                                    {"error", std::string(status.message())},
                                    {"trace_id", span.trace_id()}});
  }
  return ToGrpcStatus(status);
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
  RETURN_IF_ERROR(ValidateRole(request.role(), "role"));
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
  if (request.after_case_sequence() > static_cast<uint64_t>(INT64_MAX)) {
    return absl::InvalidArgumentError("after_case_sequence: out of range");
  }
  if (request.after_case_sequence() > 0 && request.subject().empty()) {
    return absl::InvalidArgumentError(
        "after_case_sequence: needs subject (case sequences are per case)");
  }
  return CheckRecipientConfigured(request.recipient(), scope);
}

absl::Status ValidateSendReceipt(const SendReceiptRequest& request, const RequestScope& scope) {
  if (request.recipient().empty()) return absl::InvalidArgumentError("recipient: required");
  if (request.event_id().empty()) return absl::InvalidArgumentError("event_id: required");
  if (request.status() == casebridge::coordination::v1::RECEIPT_STATUS_UNSPECIFIED) {
    return absl::InvalidArgumentError("status: required");
  }
  if (!casebridge::coordination::v1::ReceiptStatus_IsValid(request.status())) {
    return absl::InvalidArgumentError("status: unknown value");
  }
  if (request.reason().size() > kMaxReasonLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("reason: at most ", kMaxReasonLength, " characters"));
  }
  return CheckRecipientConfigured(request.recipient(), scope);
}

absl::Status ValidateGetDeliveryStatus(const GetDeliveryStatusRequest& request) {
  if (request.event_id().empty()) return absl::InvalidArgumentError("event_id: required");
  return absl::OkStatus();
}

absl::StatusOr<std::string> ValidateGetTimeline(const GetTimelineRequest& request,
                                                const RequestScope& scope) {
  return SubjectOf(request.case_ref(), scope);
}

absl::StatusOr<std::string> ValidateCreateTask(const CreateTaskRequest& request,
                                               const RequestScope& scope) {
  RETURN_IF_ERROR(ValidateIdempotencyKey(request.idempotency_key(), "idempotency_key"));
  ASSIGN_OR_RETURN(std::string subject, SubjectOf(request.case_ref(), scope));
  RETURN_IF_ERROR(ValidateText(request.title(), kMaxTitleLength, "title"));
  RETURN_IF_ERROR(ValidateRole(request.owner_role(), "owner_role"));
  if (!request.has_due()) return absl::InvalidArgumentError("due: required");
  // RFC 3339's range (0001-01-01 to 9999-12-31), nanos within a second.
  if (request.due().seconds() < -62135596800LL || request.due().seconds() > 253402300799LL ||
      request.due().nanos() < 0 || request.due().nanos() > 999999999) {
    return absl::InvalidArgumentError("due: not a valid timestamp");
  }
  RETURN_IF_ERROR(ValidateActor(request.actor(), "actor"));
  return subject;
}

absl::StatusOr<std::string> ValidateCompleteTask(const CompleteTaskRequest& request,
                                                 const RequestScope& scope) {
  RETURN_IF_ERROR(ValidateIdempotencyKey(request.idempotency_key(), "idempotency_key"));
  ASSIGN_OR_RETURN(std::string subject, SubjectOf(request.case_ref(), scope));
  if (request.task_id().empty()) return absl::InvalidArgumentError("task_id: required");
  RETURN_IF_ERROR(ValidateActor(request.actor(), "actor"));
  return subject;
}

absl::StatusOr<std::string> ValidateListTasks(const ListTasksRequest& request,
                                              const RequestScope& scope) {
  return SubjectOf(request.case_ref(), scope);
}

absl::StatusOr<std::string> ValidateRecordConsent(const RecordConsentRequest& request,
                                                  const RequestScope& scope) {
  RETURN_IF_ERROR(ValidateIdempotencyKey(request.idempotency_key(), "idempotency_key"));
  ASSIGN_OR_RETURN(std::string subject, SubjectOf(request.case_ref(), scope));
  if (request.grants().empty()) {
    return absl::InvalidArgumentError("grants: at least one grant is required");
  }
  std::set<int> administrations;
  for (int i = 0; i < request.grants_size(); ++i) {
    const casebridge::events::v1::ConsentGrant& grant = request.grants(i);
    const std::string field = absl::StrCat("grants[", i, "]");
    const int administration = grant.administration();
    if (administration == casebridge::common::v1::ADMINISTRATION_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".administration: required"));
    }
    if (!casebridge::common::v1::Administration_IsValid(administration)) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".administration: unknown value"));
    }
    if (!administrations.insert(administration).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".administration: granted twice; put its kinds in one grant"));
    }
    if (grant.sensitivities().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".sensitivities: at least one kind of data is required"));
    }
    for (int j = 0; j < grant.sensitivities_size(); ++j) {
      const int sensitivity = grant.sensitivities(j);
      const std::string kind_field = absl::StrCat(field, ".sensitivities[", j, "]");
      if (sensitivity == casebridge::events::v1::SENSITIVITY_UNSPECIFIED) {
        return absl::InvalidArgumentError(absl::StrCat(kind_field, ": required"));
      }
      if (!casebridge::events::v1::Sensitivity_IsValid(sensitivity)) {
        return absl::InvalidArgumentError(absl::StrCat(kind_field, ": unknown value"));
      }
      if (sensitivity == casebridge::events::v1::SENSITIVITY_ORDINARY) {
        return absl::InvalidArgumentError(
            absl::StrCat(kind_field, ": ordinary content needs no consent"));
      }
    }
  }
  RETURN_IF_ERROR(ValidateText(request.purpose(), kMaxPurposeLength, "purpose"));
  RETURN_IF_ERROR(ValidateText(request.form(), kMaxFormLength, "form"));
  RETURN_IF_ERROR(ValidateActor(request.actor(), "actor"));
  return subject;
}

absl::StatusOr<std::string> ValidateWithdrawConsent(const WithdrawConsentRequest& request,
                                                    const RequestScope& scope) {
  RETURN_IF_ERROR(ValidateIdempotencyKey(request.idempotency_key(), "idempotency_key"));
  ASSIGN_OR_RETURN(std::string subject, SubjectOf(request.case_ref(), scope));
  if (request.consent_id().empty()) return absl::InvalidArgumentError("consent_id: required");
  RETURN_IF_ERROR(ValidateActor(request.actor(), "actor"));
  return subject;
}

absl::StatusOr<std::string> ValidateListConsents(const ListConsentsRequest& request,
                                                 const RequestScope& scope) {
  return SubjectOf(request.case_ref(), scope);
}

ActionResult ConsentGivenEventFor(const RecordConsentRequest& request,
                                  const std::string& consent_id, absl::Time now) {
  ActionResult result;
  CaseEvent& event = result.event;
  Consent& consent = *event.mutable_consent();
  consent.set_consent_id(consent_id);
  *consent.mutable_grants() = request.grants();
  consent.set_purpose(request.purpose());
  consent.set_form(request.form());
  *event.mutable_actor() = request.actor();
  *event.mutable_occurred_at() = ToProtoTimestamp(now);
  event.set_sensitivity(casebridge::events::v1::SENSITIVITY_ORDINARY);
  return result;
}

std::string TaskIdFor(const std::string& event_id) {
  return absl::StrCat("T-", absl::StrReplaceAll(event_id, {{"-", ""}}).substr(0, 12));
}

ActionResult TaskCreatedEventFor(const CreateTaskRequest& request, const std::string& task_id,
                                 const std::string& owner_recipient, absl::Time now) {
  ActionResult result;
  casebridge::events::v1::CaseEvent& event = result.event;
  Task& task = *event.mutable_task();
  task.set_task_id(task_id);
  task.set_state(casebridge::events::v1::TASK_STATE_OPEN);
  task.set_title(request.title());
  task.set_owner_role(request.owner_role());
  task.set_owner_recipient(owner_recipient);
  *task.mutable_due() = request.due();
  *event.mutable_actor() = request.actor();
  *event.mutable_occurred_at() = ToProtoTimestamp(now);
  event.set_sensitivity(casebridge::events::v1::SENSITIVITY_ORDINARY);
  return result;
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
    Clock& clock, AuditLog* audit)
    : store_(store),
      recorder_(recorder),
      scope_(ScopeFor(pseudonymizer, config)),
      notifier_(notifier),
      clock_(clock),
      audit_(audit),
      administrators_(config.authorization().administrators().begin(),
                      config.authorization().administrators().end()) {}

absl::StatusOr<CoordinationServiceImpl::CaseAccess> CoordinationServiceImpl::AccessTo(
    const grpc::ServerContext& context, const std::string& subject) {
  const casebridge::common::Caller caller = casebridge::common::CallerOf(context);
  CaseAccess access;
  access.identity = caller.identity;
  access.superuser = caller.superuser();
  access.administrator = access.superuser || administrators_.contains(caller.identity);
  if (!caller.identity.empty()) {
    ASSIGN_OR_RETURN(const std::vector<Party> parties, store_.ListParties(subject));
    for (const Party& party : parties) {
      if (party.recipient() == caller.identity) access.roles.push_back(party.role());
    }
  }
  return access;
}

absl::Status CoordinationServiceImpl::RequireCoordinator(const CaseAccess& access,
                                                         absl::string_view what) {
  if (access.administrator) return absl::OkStatus();
  for (Role role : access.roles) {
    if (role == casebridge::common::v1::ROLE_COORDINATING_CASEWORKER) return absl::OkStatus();
  }
  return Denied("case_ref", access.identity,
                absl::StrCat("may not ", what,
                             " on this case: neither an administrator nor its coordinating "
                             "caseworker"));
}

absl::Status CoordinationServiceImpl::RequireParty(const CaseAccess& access,
                                                   bool administrators_too,
                                                   absl::string_view what) {
  if (access.superuser || !access.roles.empty()) return absl::OkStatus();
  if (administrators_too && access.administrator) return absl::OkStatus();
  return Denied("case_ref", access.identity,
                absl::StrCat("may not ", what, ": not a party on this case"));
}

absl::StatusOr<CoordinationServiceImpl::CaseAccess> CoordinationServiceImpl::Authorize(
    const grpc::ServerContext& context, const std::string& subject, Allowed allowed,
    absl::string_view what) {
  ASSIGN_OR_RETURN(CaseAccess access, AccessTo(context, subject));
  switch (allowed) {
    case Allowed::kCoordinator:
      RETURN_IF_ERROR(RequireCoordinator(access, what));
      break;
    case Allowed::kPartyOrAdministrator:
      RETURN_IF_ERROR(RequireParty(access, /*administrators_too=*/true, what));
      break;
    case Allowed::kParty:
      RETURN_IF_ERROR(RequireParty(access, /*administrators_too=*/false, what));
      break;
  }
  return access;
}

absl::Status CoordinationServiceImpl::RequireRecipient(const grpc::ServerContext& context,
                                                       const std::string& recipient) {
  const casebridge::common::Caller caller = casebridge::common::CallerOf(context);
  if (caller.superuser() || caller.identity == recipient) return absl::OkStatus();
  return Denied("recipient", caller.identity,
                absl::StrCat("may not act for recipient \"", recipient, "\""));
}

absl::Status CoordinationServiceImpl::Audit(AuditRecord record) {
  if (audit_ == nullptr) return absl::OkStatus();
  return audit_->Write(std::move(record), clock_.Now(), kAuditTimeout);
}

void CoordinationServiceImpl::Shutdown() { notifier_.Shutdown(); }

grpc::Status CoordinationServiceImpl::AssignRole(grpc::ServerContext* context,
                                                 const AssignRoleRequest* request,
                                                 AssignRoleResponse* response) {
  absl::StatusOr<std::string> subject = ValidateAssignRole(*request, scope_);
  if (!subject.ok()) return ToGrpcStatus(subject.status());
  absl::StatusOr<CaseAccess> access = Authorize(*context, *subject, Allowed::kCoordinator, "assign or release roles");
  if (!access.ok()) return ToGrpcStatus(access.status());
  const RecordRequest record{request->idempotency_key(), *subject,
                             RequestFingerprint(*request, *subject), "idempotency_key",
                             CallSpan(*context)};
  absl::StatusOr<RecordOutcome> outcome = recorder_.Record(
      record,
      [&]() -> absl::StatusOr<ActionResult> { return RoleEventFor(*request, clock_.Now()); });
  if (!outcome.ok()) return RecordingFailed("AssignRole", outcome.status(), record.trace);
  response->set_event_id(outcome->event.id());
  response->set_subject(outcome->event.subject());
  response->set_sequence(outcome->event.sequence());
  response->set_replayed(outcome->replayed);
  return grpc::Status::OK;
}

grpc::Status CoordinationServiceImpl::ListParties(grpc::ServerContext* context,
                                                  const ListPartiesRequest* request,
                                                  ListPartiesResponse* response) {
  absl::StatusOr<std::string> subject = ValidateListParties(*request, scope_);
  if (!subject.ok()) return ToGrpcStatus(subject.status());
  absl::StatusOr<CaseAccess> access = Authorize(*context, *subject, Allowed::kPartyOrAdministrator, "list the parties");
  if (!access.ok()) return ToGrpcStatus(access.status());
  absl::StatusOr<std::vector<Party>> parties = store_.ListParties(*subject);
  if (!parties.ok()) return ToGrpcStatus(parties.status());
  if (absl::Status audited = Audit(CaseReadRecord(access->identity, *subject)); !audited.ok()) {
    return ToGrpcStatus(audited);
  }
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
  if (absl::Status allowed = RequireRecipient(*context, request->recipient()); !allowed.ok()) {
    return ToGrpcStatus(allowed);
  }
  const std::string caller = casebridge::common::CallerOf(*context).identity;
  uint64_t after = request->after_stream_sequence();
  ++open_streams_;
  absl::Cleanup closed = [this] { --open_streams_; };
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
        store_.ReadDeliveries(request->recipient(), after, request->subject(), kSubscribeBatch,
                              request->after_case_sequence());
    if (!deliveries.ok()) return ToGrpcStatus(deliveries.status());
    if (!deliveries->empty()) {
      if (absl::Status audited = Audit(StreamReadRecord(caller, *request, *deliveries));
          !audited.ok()) {
        return ToGrpcStatus(audited);
      }
    }
    for (const Delivery& delivery : *deliveries) {
      if (!writer->Write(delivery)) return grpc::Status::CANCELLED;  // the caller went away
      after = delivery.stream_sequence();
    }
    if (static_cast<int>(deliveries->size()) < kSubscribeBatch) {
      notifier_.WaitForChange(seen, kSubscribeWakeInterval);
    }
  }
}

absl::StatusOr<std::string> CoordinationServiceImpl::HolderOf(const std::string& subject,
                                                              casebridge::common::v1::Role role) {
  ASSIGN_OR_RETURN(std::vector<Party> parties, store_.ListParties(subject));
  for (const Party& party : parties) {
    if (party.role() == role) return party.recipient();
  }
  return std::string();
}

grpc::Status CoordinationServiceImpl::SendReceipt(grpc::ServerContext* context,
                                                  const SendReceiptRequest* request,
                                                  SendReceiptResponse* response) {
  if (absl::Status status = ValidateSendReceipt(*request, scope_); !status.ok()) {
    return ToGrpcStatus(status);
  }
  if (absl::Status allowed = RequireRecipient(*context, request->recipient()); !allowed.ok()) {
    return ToGrpcStatus(allowed);
  }
  const absl::Time now = clock_.Now();
  if (absl::Status status = store_.RecordReceipt(request->recipient(), request->event_id(),
                                                 request->status(), request->reason(), now);
      !status.ok()) {
    return ToGrpcStatus(status);
  }
  *response->mutable_recorded_at() = ToProtoTimestamp(now);
  return grpc::Status::OK;
}

grpc::Status CoordinationServiceImpl::GetDeliveryStatus(grpc::ServerContext* context,
                                                        const GetDeliveryStatusRequest* request,
                                                        DeliveryStatus* response) {
  if (absl::Status status = ValidateGetDeliveryStatus(*request); !status.ok()) {
    return ToGrpcStatus(status);
  }
  absl::StatusOr<DeliveryStatus> status = store_.GetDeliveryStatus(request->event_id());
  if (!status.ok()) return ToGrpcStatus(status.status());
  const casebridge::common::Caller caller = casebridge::common::CallerOf(*context);
  bool allowed = caller.superuser() || administrators_.contains(caller.identity);
  for (const auto& recipient : status->recipients()) {
    allowed = allowed || recipient.recipient() == caller.identity;
  }
  if (!allowed) {
    return ToGrpcStatus(Denied("event_id", caller.identity,
                               "may not read the delivery status of an event it did not "
                               "receive"));
  }
  *response = *std::move(status);
  return grpc::Status::OK;
}

grpc::Status CoordinationServiceImpl::GetTimeline(grpc::ServerContext* context,
                                                  const GetTimelineRequest* request,
                                                  Timeline* response) {
  absl::StatusOr<std::string> subject = ValidateGetTimeline(*request, scope_);
  if (!subject.ok()) return ToGrpcStatus(subject.status());
  absl::StatusOr<CaseAccess> access = Authorize(*context, *subject, Allowed::kParty, "read the timeline");
  if (!access.ok()) return ToGrpcStatus(access.status());
  absl::StatusOr<CaseHistory> history = store_.History(*subject);
  if (!history.ok()) return ToGrpcStatus(history.status());
  absl::StatusOr<std::vector<Consent>> consents = store_.ConsentsInForce(*subject);
  if (!consents.ok()) return ToGrpcStatus(consents.status());
  const casebridge::common::v1::Administration administration =
      store_.AdministrationOf(access->identity);

  Timeline timeline;
  timeline.set_subject(*subject);
  AuditRecord audit;
  audit.set_action(casebridge::audit::v1::AUDIT_ACTION_TIMELINE_READ);
  audit.set_recipient(access->identity);
  audit.set_caller(access->identity);
  audit.set_subject(*subject);
  for (auto& entry : BuildTimeline(history->events, request->include_superseded())) {
    const DisclosureDecision decision =
        access->superuser
            ? DisclosureDecision{casebridge::coordination::v1::DISCLOSURE_FULL, "development", {}}
            : DecideDisclosure(entry.event(), administration, access->roles, *consents);
    AddDisclosed(entry.event(), decision, audit);
    *entry.mutable_event() = Project(entry.event(), decision);
    entry.set_disclosure(decision.disclosure);
    *timeline.add_entries() = std::move(entry);
  }
  if (absl::Status audited = Audit(std::move(audit)); !audited.ok()) {
    return ToGrpcStatus(audited);
  }
  *response = std::move(timeline);
  return grpc::Status::OK;
}

namespace {

// The answer to a task RPC: the task event that was recorded (or replayed).
TaskResponse ToTaskResponse(const RecordOutcome& outcome) {
  TaskResponse response;
  response.set_event_id(outcome.event.id());
  response.set_task_id(outcome.event.task().task_id());
  response.set_subject(outcome.event.subject());
  response.set_replayed(outcome.replayed);
  return response;
}

}  // namespace

grpc::Status CoordinationServiceImpl::CreateTask(grpc::ServerContext* context,
                                                 const CreateTaskRequest* request,
                                                 TaskResponse* response) {
  absl::StatusOr<std::string> subject = ValidateCreateTask(*request, scope_);
  if (!subject.ok()) return ToGrpcStatus(subject.status());
  absl::StatusOr<CaseAccess> access = Authorize(*context, *subject, Allowed::kPartyOrAdministrator, "change tasks");
  if (!access.ok()) return ToGrpcStatus(access.status());
  const RecordRequest record{request->idempotency_key(), *subject,
                             RequestFingerprint(*request, *subject), "idempotency_key",
                             CallSpan(*context)};
  absl::StatusOr<RecordOutcome> outcome =
      recorder_.Record(record, [&]() -> absl::StatusOr<ActionResult> {
        ASSIGN_OR_RETURN(const std::string owner, HolderOf(*subject, request->owner_role()));
        // The recorder derives the event id from the same source and key.
        const std::string task_id =
            TaskIdFor(EventIdFor(recorder_.source(), request->idempotency_key()));
        return TaskCreatedEventFor(*request, task_id, owner, clock_.Now());
      });
  if (!outcome.ok()) return RecordingFailed("CreateTask", outcome.status(), record.trace);
  *response = ToTaskResponse(*outcome);
  return grpc::Status::OK;
}

grpc::Status CoordinationServiceImpl::CompleteTask(grpc::ServerContext* context,
                                                   const CompleteTaskRequest* request,
                                                   TaskResponse* response) {
  absl::StatusOr<std::string> subject = ValidateCompleteTask(*request, scope_);
  if (!subject.ok()) return ToGrpcStatus(subject.status());
  absl::StatusOr<CaseAccess> access = Authorize(*context, *subject, Allowed::kPartyOrAdministrator, "change tasks");
  if (!access.ok()) return ToGrpcStatus(access.status());
  const RecordRequest record{request->idempotency_key(), *subject,
                             RequestFingerprint(*request, *subject), "idempotency_key",
                             CallSpan(*context)};
  // The task's state is checked inside the action: a repeated key replays
  // the first answer even though the task is completed by now.
  absl::StatusOr<RecordOutcome> outcome =
      recorder_.Record(record, [&]() -> absl::StatusOr<ActionResult> {
        ASSIGN_OR_RETURN(const CaseHistory history, store_.History(*subject));
        std::optional<Task> current;
        for (const Task& task : CurrentTasks(history)) {
          if (task.task_id() == request->task_id()) current = task;
        }
        if (!current.has_value()) {
          return absl::NotFoundError(
              absl::StrCat("task_id: unknown task \"", request->task_id(), "\""));
        }
        if (current->state() == casebridge::events::v1::TASK_STATE_COMPLETED) {
          return absl::FailedPreconditionError(
              absl::StrCat("task_id: task \"", request->task_id(), "\" is already completed"));
        }
        ASSIGN_OR_RETURN(const std::string owner, HolderOf(*subject, current->owner_role()));
        ActionResult result;
        Task& task = *result.event.mutable_task();
        task = *current;
        task.set_state(casebridge::events::v1::TASK_STATE_COMPLETED);
        task.set_owner_recipient(owner);
        *result.event.mutable_actor() = request->actor();
        *result.event.mutable_occurred_at() = ToProtoTimestamp(clock_.Now());
        result.event.set_sensitivity(casebridge::events::v1::SENSITIVITY_ORDINARY);
        return result;
      });
  if (!outcome.ok()) return RecordingFailed("CompleteTask", outcome.status(), record.trace);
  *response = ToTaskResponse(*outcome);
  return grpc::Status::OK;
}

grpc::Status CoordinationServiceImpl::ListTasks(grpc::ServerContext* context,
                                                const ListTasksRequest* request,
                                                ListTasksResponse* response) {
  absl::StatusOr<std::string> subject = ValidateListTasks(*request, scope_);
  if (!subject.ok()) return ToGrpcStatus(subject.status());
  absl::StatusOr<CaseAccess> access = Authorize(*context, *subject, Allowed::kPartyOrAdministrator, "list the tasks");
  if (!access.ok()) return ToGrpcStatus(access.status());
  if (absl::Status audited = Audit(CaseReadRecord(access->identity, *subject)); !audited.ok()) {
    return ToGrpcStatus(audited);
  }
  absl::StatusOr<CaseHistory> history = store_.History(*subject);
  if (!history.ok()) return ToGrpcStatus(history.status());
  for (Task& task : CurrentTasks(*history)) *response->add_tasks() = std::move(task);
  return grpc::Status::OK;
}

grpc::Status CoordinationServiceImpl::RecordConsentEvent(
    const RecordRequest& record, absl::string_view rpc,
    const std::function<absl::StatusOr<ActionResult>()>& action, ConsentResponse* response) {
  absl::StatusOr<RecordOutcome> outcome = recorder_.Record(record, action);
  if (!outcome.ok()) return RecordingFailed(rpc, outcome.status(), record.trace);
  response->set_event_id(outcome->event.id());
  response->set_consent_id(outcome->event.consent().consent_id());
  response->set_subject(outcome->event.subject());
  response->set_replayed(outcome->replayed);
  return grpc::Status::OK;
}

grpc::Status CoordinationServiceImpl::RecordConsent(grpc::ServerContext* context,
                                                    const RecordConsentRequest* request,
                                                    ConsentResponse* response) {
  absl::StatusOr<std::string> subject = ValidateRecordConsent(*request, scope_);
  if (!subject.ok()) return ToGrpcStatus(subject.status());
  absl::StatusOr<CaseAccess> access = Authorize(*context, *subject, Allowed::kCoordinator, "record consent");
  if (!access.ok()) return ToGrpcStatus(access.status());
  const RecordRequest record{request->idempotency_key(), *subject,
                             RequestFingerprint(*request, *subject), "idempotency_key",
                             CallSpan(*context)};
  return RecordConsentEvent(
      record, "RecordConsent",
      [&]() -> absl::StatusOr<ActionResult> {
        // The consent's id is the id the recorder gives its event.
        return ConsentGivenEventFor(
            *request, EventIdFor(recorder_.source(), request->idempotency_key()), clock_.Now());
      },
      response);
}

grpc::Status CoordinationServiceImpl::WithdrawConsent(grpc::ServerContext* context,
                                                      const WithdrawConsentRequest* request,
                                                      ConsentResponse* response) {
  absl::StatusOr<std::string> subject = ValidateWithdrawConsent(*request, scope_);
  if (!subject.ok()) return ToGrpcStatus(subject.status());
  absl::StatusOr<CaseAccess> access = Authorize(*context, *subject, Allowed::kCoordinator, "withdraw consent");
  if (!access.ok()) return ToGrpcStatus(access.status());
  const RecordRequest record{request->idempotency_key(), *subject,
                             RequestFingerprint(*request, *subject), "idempotency_key",
                             CallSpan(*context)};
  // The consent's state is checked inside the action: a repeated key replays
  // the first answer even though the consent is withdrawn by now.
  return RecordConsentEvent(
      record, "WithdrawConsent",
      [&]() -> absl::StatusOr<ActionResult> {
        ASSIGN_OR_RETURN(const auto found, store_.FindConsent(*subject, request->consent_id()));
        if (found.second) {
          return absl::FailedPreconditionError(absl::StrCat(
              "consent_id: consent \"", request->consent_id(), "\" is already withdrawn"));
        }
        ActionResult result;
        Consent& consent = *result.event.mutable_consent();
        consent.set_consent_id(request->consent_id());
        consent.set_withdrawn(true);
        consent.set_purpose(found.first.purpose());
        *result.event.mutable_actor() = request->actor();
        *result.event.mutable_occurred_at() = ToProtoTimestamp(clock_.Now());
        result.event.set_sensitivity(casebridge::events::v1::SENSITIVITY_ORDINARY);
        return result;
      },
      response);
}

grpc::Status CoordinationServiceImpl::ListConsents(grpc::ServerContext* context,
                                                   const ListConsentsRequest* request,
                                                   ListConsentsResponse* response) {
  absl::StatusOr<std::string> subject = ValidateListConsents(*request, scope_);
  if (!subject.ok()) return ToGrpcStatus(subject.status());
  absl::StatusOr<CaseAccess> access = Authorize(*context, *subject, Allowed::kPartyOrAdministrator, "list the consents");
  if (!access.ok()) return ToGrpcStatus(access.status());
  absl::StatusOr<std::vector<Consent>> consents = store_.ConsentsInForce(*subject);
  if (!consents.ok()) return ToGrpcStatus(consents.status());
  if (absl::Status audited = Audit(CaseReadRecord(access->identity, *subject)); !audited.ok()) {
    return ToGrpcStatus(audited);
  }
  response->set_subject(*subject);
  for (Consent& consent : *consents) *response->add_consents() = std::move(consent);
  return grpc::Status::OK;
}

}  // namespace casebridge::coordination
