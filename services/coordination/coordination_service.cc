#include "services/coordination/coordination_service.h"

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "google/protobuf/util/time_util.h"
#include "services/common/event_ids.h"
#include "services/common/grpc_status.h"
#include "services/common/proto_time.h"
#include "services/common/record_validation.h"
#include "services/common/status_macros.h"
#include "services/coordination/case_rules.h"
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
using casebridge::events::v1::Task;

// How long a `Subscribe` stream waits for a notification before it looks
// whether its caller went away.
constexpr absl::Duration kSubscribeWakeInterval = absl::Milliseconds(200);
// Deliveries read from the store per step of a `Subscribe` stream.
constexpr int kSubscribeBatch = 100;
// Longest receipt reason and task title accepted.
constexpr size_t kMaxReasonLength = 1000;
constexpr size_t kMaxTitleLength = 500;

absl::Status ValidateRole(int role, const std::string& field) {
  if (role == casebridge::common::v1::ROLE_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  }
  if (!casebridge::common::v1::Role_IsValid(role)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": unknown value"));
  }
  return absl::OkStatus();
}

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
  if (absl::StripAsciiWhitespace(request.title()).empty()) {
    return absl::InvalidArgumentError("title: required");
  }
  if (request.title().size() > kMaxTitleLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("title: at most ", kMaxTitleLength, " characters"));
  }
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

absl::StatusOr<std::string> CoordinationServiceImpl::HolderOf(const std::string& subject,
                                                              casebridge::common::v1::Role role) {
  ASSIGN_OR_RETURN(std::vector<Party> parties, store_.ListParties(subject));
  for (const Party& party : parties) {
    if (party.role() == role) return party.recipient();
  }
  return std::string();
}

grpc::Status CoordinationServiceImpl::SendReceipt(grpc::ServerContext* /*context*/,
                                                  const SendReceiptRequest* request,
                                                  SendReceiptResponse* response) {
  if (absl::Status status = ValidateSendReceipt(*request, scope_); !status.ok()) {
    return ToGrpcStatus(status);
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

grpc::Status CoordinationServiceImpl::GetDeliveryStatus(grpc::ServerContext* /*context*/,
                                                        const GetDeliveryStatusRequest* request,
                                                        DeliveryStatus* response) {
  if (absl::Status status = ValidateGetDeliveryStatus(*request); !status.ok()) {
    return ToGrpcStatus(status);
  }
  absl::StatusOr<DeliveryStatus> status = store_.GetDeliveryStatus(request->event_id());
  if (!status.ok()) return ToGrpcStatus(status.status());
  *response = *std::move(status);
  return grpc::Status::OK;
}

grpc::Status CoordinationServiceImpl::GetTimeline(grpc::ServerContext* /*context*/,
                                                  const GetTimelineRequest* request,
                                                  Timeline* response) {
  absl::StatusOr<std::string> subject = ValidateGetTimeline(*request, scope_);
  if (!subject.ok()) return ToGrpcStatus(subject.status());
  absl::StatusOr<CaseHistory> history = store_.History(*subject);
  if (!history.ok()) return ToGrpcStatus(history.status());
  response->set_subject(*subject);
  for (auto& entry : BuildTimeline(history->events, request->include_superseded())) {
    *response->add_entries() = std::move(entry);
  }
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

grpc::Status CoordinationServiceImpl::CreateTask(grpc::ServerContext* /*context*/,
                                                 const CreateTaskRequest* request,
                                                 TaskResponse* response) {
  absl::StatusOr<std::string> subject = ValidateCreateTask(*request, scope_);
  if (!subject.ok()) return ToGrpcStatus(subject.status());
  const RecordRequest record{request->idempotency_key(), *subject,
                             RequestFingerprint(*request, *subject), "idempotency_key"};
  absl::StatusOr<RecordOutcome> outcome =
      recorder_.Record(record, [&]() -> absl::StatusOr<ActionResult> {
        ASSIGN_OR_RETURN(const std::string owner, HolderOf(*subject, request->owner_role()));
        // The recorder derives the event id from the same source and key.
        const std::string task_id =
            TaskIdFor(EventIdFor(recorder_.source(), request->idempotency_key()));
        return TaskCreatedEventFor(*request, task_id, owner, clock_.Now());
      });
  if (!outcome.ok()) return ToGrpcStatus(outcome.status());
  *response = ToTaskResponse(*outcome);
  return grpc::Status::OK;
}

grpc::Status CoordinationServiceImpl::CompleteTask(grpc::ServerContext* /*context*/,
                                                   const CompleteTaskRequest* request,
                                                   TaskResponse* response) {
  absl::StatusOr<std::string> subject = ValidateCompleteTask(*request, scope_);
  if (!subject.ok()) return ToGrpcStatus(subject.status());
  const RecordRequest record{request->idempotency_key(), *subject,
                             RequestFingerprint(*request, *subject), "idempotency_key"};
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
  if (!outcome.ok()) return ToGrpcStatus(outcome.status());
  *response = ToTaskResponse(*outcome);
  return grpc::Status::OK;
}

grpc::Status CoordinationServiceImpl::ListTasks(grpc::ServerContext* /*context*/,
                                                const ListTasksRequest* request,
                                                ListTasksResponse* response) {
  absl::StatusOr<std::string> subject = ValidateListTasks(*request, scope_);
  if (!subject.ok()) return ToGrpcStatus(subject.status());
  absl::StatusOr<CaseHistory> history = store_.History(*subject);
  if (!history.ok()) return ToGrpcStatus(history.status());
  for (Task& task : CurrentTasks(*history)) *response->add_tasks() = std::move(task);
  return grpc::Status::OK;
}

}  // namespace casebridge::coordination
