#include "services/coordination/coordination_service.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/clock.h"
#include "services/common/event_recorder.h"
#include "services/common/grpc_server.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/kafka/memory_publisher.h"
#include "services/common/peer_identity.h"
#include "services/common/proto_time.h"
#include "services/common/pseudonym.h"
#include "services/coordination/audit_log.h"
#include "services/coordination/case_rules.h"
#include "services/coordination/coordination_store.h"
#include "services/coordination/delivery_notifier.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"
#include "tests/unit/coordination/test_events.h"

namespace casebridge::coordination {
namespace {

using ::casebridge::common::v1::ROLE_BENEFITS_UNIT;
using ::casebridge::common::v1::ROLE_COORDINATING_CASEWORKER;
using ::casebridge::common::v1::ROLE_MENTOR;
using ::casebridge::common::v1::ROLE_UNSPECIFIED;
using ::casebridge::coordination::testing::AppointmentEvent;
using ::casebridge::coordination::testing::At;
using ::casebridge::coordination::testing::CorrectionOf;
using ::casebridge::coordination::testing::DecisionEvent;
using ::casebridge::coordination::testing::ReferralEvent;
using ::casebridge::coordination::testing::kOtherSubject;
using ::casebridge::coordination::testing::kSubject;
using ::casebridge::coordination::testing::RoleEvent;
using ::casebridge::coordination::v1::AssignRoleRequest;
using ::casebridge::coordination::v1::AssignRoleResponse;
using ::casebridge::coordination::v1::CompleteTaskRequest;
using ::casebridge::coordination::v1::CoordinationService;
using ::casebridge::coordination::v1::CreateTaskRequest;
using ::casebridge::coordination::v1::Delivery;
using ::casebridge::coordination::v1::DeliveryStatus;
using ::casebridge::coordination::v1::GetDeliveryStatusRequest;
using ::casebridge::coordination::v1::GetTimelineRequest;
using ::casebridge::coordination::v1::ListPartiesRequest;
using ::casebridge::coordination::v1::ListPartiesResponse;
using ::casebridge::coordination::v1::ListTasksRequest;
using ::casebridge::coordination::v1::ListTasksResponse;
using ::casebridge::coordination::v1::SendReceiptRequest;
using ::casebridge::coordination::v1::SendReceiptResponse;
using ::casebridge::coordination::v1::SubscribeRequest;
using ::casebridge::coordination::v1::TaskResponse;
using ::casebridge::coordination::v1::Timeline;
using ::casebridge::events::v1::CaseEvent;
using ::casebridge::kafka::MemoryPublisher;
using ::casebridge::testing::GrpcStatusIs;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::StatusIs;
using ::casebridge::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr char kCanonicalTopic[] = "casebridge.case-events.v1";
constexpr char kCpr[] = "0101701234";
const absl::Time kNow = absl::FromUnixSeconds(1767261600);  // 2026-01-01 10:00 UTC

CreateTaskRequest ValidCreateTask() {
  CreateTaskRequest request;
  request.set_idempotency_key("task-psychologist-1");
  request.mutable_case_ref()->set_subject(kSubject);
  request.set_title("Find out whether the psychologist can be paid for");
  request.set_owner_role(ROLE_COORDINATING_CASEWORKER);
  *request.mutable_due() = ToProtoTimestamp(kNow + absl::Hours(24 * 14));
  request.mutable_actor()->set_role(ROLE_COORDINATING_CASEWORKER);
  request.mutable_actor()->set_unit("Jobcenter Aarhus, Team Ressourceforløb");
  return request;
}

CompleteTaskRequest ValidCompleteTask(const std::string& task_id) {
  CompleteTaskRequest request;
  request.set_idempotency_key("complete-" + task_id);
  request.mutable_case_ref()->set_subject(kSubject);
  request.set_task_id(task_id);
  request.mutable_actor()->set_role(ROLE_COORDINATING_CASEWORKER);
  request.mutable_actor()->set_unit("Jobcenter Aarhus, Team Ressourceforløb");
  return request;
}

SendReceiptRequest Receipt(const std::string& recipient, const std::string& event_id,
                           v1::ReceiptStatus status, const std::string& reason = "") {
  SendReceiptRequest request;
  request.set_recipient(recipient);
  request.set_event_id(event_id);
  request.set_status(status);
  request.set_reason(reason);
  return request;
}

AssignRoleRequest ValidRequest() {
  AssignRoleRequest request;
  request.set_idempotency_key("assign-mentor-1");
  request.mutable_case_ref()->set_subject(kSubject);
  request.set_role(ROLE_MENTOR);
  request.set_recipient("mentorhuset");
  request.mutable_unit()->set_id("mentorhuset-team-1");
  request.mutable_actor()->set_role(ROLE_COORDINATING_CASEWORKER);
  request.mutable_actor()->set_unit("Jobcenter Aarhus, Team Ressourceforløb");
  return request;
}

class CoordinationServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pseudonymizer = Pseudonymizer::Create(std::string(32, 'k'));
    ASSERT_THAT(pseudonymizer, IsOk());
    pseudonymizer_ = *std::move(pseudonymizer);
    auto store = CoordinationStore::Open(
        dir_.File("coordination.db"), {},
        {{"aarhus-jobcenter", common::v1::ADMINISTRATION_JOB_CENTRE},
         {"aarhus-sundhed", common::v1::ADMINISTRATION_HEALTH}});
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    RecorderOptions options;
    options.topic = kCanonicalTopic;
    options.system = "coordination";
    options.source_system = events::v1::SOURCE_SYSTEM_COORDINATION;
    options.municipality = "0751";
    auto recorder = EventRecorder::Create(dir_.File("coordination.db.ledger"), options,
                                          publisher_, clock_);
    ASSERT_THAT(recorder, IsOk());
    recorder_ = *std::move(recorder);

    config_.set_municipality("0751");
    config_.add_recipients()->set_id("aarhus-jobcenter");
    config_.add_recipients()->set_id("mentorhuset");
    config_.add_recipients()->set_id("aarhus-sundhed");
    config_.mutable_authorization()->add_administrators("aarhus-admin");
    audit_ = std::make_unique<AuditLog>(audit_publisher_, kDefaultAuditTopic, "0751",
                                        "/casebridge/coordination/0751");
    service_ = std::make_unique<CoordinationServiceImpl>(
        *store_, *recorder_, *pseudonymizer_, config_, notifier_, clock_, audit_.get());
  }

  void TearDown() override {
    if (server_ != nullptr) {
      service_->Shutdown();
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    }
  }

  RequestScope Scope() const {
    return RequestScope{*pseudonymizer_, "0751", {"aarhus-jobcenter", "mentorhuset", "aarhus-sundhed"}};
  }

  grpc::Status AssignRole(const AssignRoleRequest& request, AssignRoleResponse& response) {
    grpc::ServerContext context;
    return service_->AssignRole(&context, &request, &response);
  }

  // The events published to the canonical topic so far.
  std::vector<CaseEvent> PublishedEvents() const {
    std::vector<CaseEvent> events;
    for (const kafka::Record& record : publisher_.records()) {
      EXPECT_EQ(record.topic, kCanonicalTopic);
      auto event = kafka::DecodeCaseEventRecord(record);
      EXPECT_THAT(event, IsOk());
      if (event.ok()) events.push_back(*event);
    }
    return events;
  }

  void Apply(const CaseEvent& event) { ASSERT_THAT(store_->Apply(event, kNow), IsOk()); }

  // Applies every event published so far that the store has not seen, as
  // the delivery processor would after consuming it.
  void ApplyPublished() {
    for (const CaseEvent& event : PublishedEvents()) {
      ASSERT_THAT(store_->Apply(event, clock_.Now()), IsOk());
    }
  }

  grpc::Status CreateTask(const CreateTaskRequest& request, TaskResponse& response) {
    grpc::ServerContext context;
    return service_->CreateTask(&context, &request, &response);
  }
  grpc::Status CompleteTask(const CompleteTaskRequest& request, TaskResponse& response) {
    grpc::ServerContext context;
    return service_->CompleteTask(&context, &request, &response);
  }
  grpc::Status SendReceipt(const SendReceiptRequest& request) {
    grpc::ServerContext context;
    SendReceiptResponse response;
    return service_->SendReceipt(&context, &request, &response);
  }
  grpc::Status GetDeliveryStatus(const std::string& event_id, DeliveryStatus& response) {
    grpc::ServerContext context;
    GetDeliveryStatusRequest request;
    request.set_event_id(event_id);
    return service_->GetDeliveryStatus(&context, &request, &response);
  }
  // "id" per current entry, "id>newest" per superseded one.
  std::vector<std::string> TimelineOf(const common::v1::CaseRef& case_ref,
                                      bool include_superseded) {
    grpc::ServerContext context;
    GetTimelineRequest request;
    *request.mutable_case_ref() = case_ref;
    request.set_include_superseded(include_superseded);
    Timeline response;
    EXPECT_THAT(service_->GetTimeline(&context, &request, &response),
                GrpcStatusIs(grpc::StatusCode::OK, ""));
    std::vector<std::string> entries;
    for (const auto& entry : response.entries()) {
      entries.push_back(entry.current() ? entry.event().id()
                                        : entry.event().id() + ">" + entry.superseded_by());
    }
    return entries;
  }
  std::vector<std::string> TimelineOf(bool include_superseded) {
    common::v1::CaseRef case_ref;
    case_ref.set_subject(kSubject);
    return TimelineOf(case_ref, include_superseded);
  }

  // Starts the service on 127.0.0.1:0 and connects a stub to it.
  void StartServer() {
    config::v1::ServerConfig server_config;
    server_config.set_listen_address("127.0.0.1:0");
    server_config.set_insecure_development_mode(true);
    server_config.set_disable_reflection(true);
    auto started = StartGrpcServer(server_config, {service_.get()});
    ASSERT_THAT(started, IsOk());
    server_ = std::move(started->server);
    stub_ = CoordinationService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(started->port), grpc::InsecureChannelCredentials()));
  }

  // Opens a stream with a deadline, so a broken stream fails the test
  // instead of hanging it.
  std::unique_ptr<grpc::ClientReader<Delivery>> Subscribe(grpc::ClientContext& context,
                                                          const SubscribeRequest& request) {
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->Subscribe(&context, request);
  }

  // "event id@stream_sequence/case_sequence" of the next `count` deliveries.
  static std::vector<std::string> ReadDeliveries(grpc::ClientReader<Delivery>& reader, int count) {
    std::vector<std::string> read;
    Delivery delivery;
    while (static_cast<int>(read.size()) < count && reader.Read(&delivery)) {
      read.push_back(delivery.event().id() + "@" + std::to_string(delivery.stream_sequence()) +
                     "/" + std::to_string(delivery.case_sequence()));
    }
    return read;
  }

  static SubscribeRequest SubscribeTo(const std::string& recipient, uint64_t after = 0,
                                      const std::string& subject = "") {
    SubscribeRequest request;
    request.set_recipient(recipient);
    request.set_after_stream_sequence(after);
    request.set_subject(subject);
    return request;
  }

  TempDir dir_;
  FakeClock clock_{kNow};
  MemoryPublisher publisher_;
  MemoryPublisher audit_publisher_;
  std::unique_ptr<AuditLog> audit_;
  DeliveryNotifier notifier_;
  config::v1::CoordinationServiceConfig config_;
  std::unique_ptr<Pseudonymizer> pseudonymizer_;
  std::unique_ptr<CoordinationStore> store_;
  std::unique_ptr<EventRecorder> recorder_;
  std::unique_ptr<CoordinationServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<CoordinationService::Stub> stub_;
};

// --- Validation -------------------------------------------------------------

struct BadRequest {
  std::string field;
  std::function<void(AssignRoleRequest&)> spoil;
};

class AssignRoleValidationTest : public CoordinationServiceTest,
                                 public ::testing::WithParamInterface<BadRequest> {};

TEST_P(AssignRoleValidationTest, BadFieldIsInvalidArgumentNamingIt) {
  AssignRoleRequest request = ValidRequest();
  GetParam().spoil(request);

  EXPECT_THAT(ValidateAssignRole(request, Scope()),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith(GetParam().field + ": ")));
  AssignRoleResponse response;
  EXPECT_THAT(AssignRole(request, response),
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT, StartsWith(GetParam().field)));
  EXPECT_THAT(publisher_.records(), ::testing::IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(
    EachField, AssignRoleValidationTest,
    ::testing::Values(
        BadRequest{"idempotency_key", [](auto& r) { r.clear_idempotency_key(); }},
        BadRequest{"idempotency_key", [](auto& r) { r.set_idempotency_key("with space"); }},
        BadRequest{"idempotency_key",
                   [](auto& r) { r.set_idempotency_key(std::string(129, 'k')); }},
        BadRequest{"case_ref", [](auto& r) { r.clear_case_ref(); }},
        BadRequest{"case_ref.subject", [](auto& r) { r.mutable_case_ref()->set_subject("ABC"); }},
        BadRequest{"case_ref.cpr", [](auto& r) { r.mutable_case_ref()->set_cpr("3213701234"); }},
        BadRequest{"role", [](auto& r) { r.set_role(ROLE_UNSPECIFIED); }},
        BadRequest{"recipient", [](auto& r) { r.clear_recipient(); }},
        BadRequest{"unit.id", [](auto& r) { r.mutable_unit()->clear_id(); }},
        BadRequest{"actor.role", [](auto& r) { r.clear_actor(); }},
        BadRequest{"actor.unit", [](auto& r) { r.mutable_actor()->clear_unit(); }}));

TEST_F(CoordinationServiceTest, UnknownRecipientIsNotFound) {
  AssignRoleRequest request = ValidRequest();
  request.set_recipient("nobody");
  AssignRoleResponse response;

  EXPECT_THAT(AssignRole(request, response),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND,
                           Eq("recipient: unknown recipient \"nobody\"")));
}

TEST_F(CoordinationServiceTest, SubscribeRequestsAreValidated) {
  EXPECT_THAT(ValidateSubscribe(SubscribeTo(""), Scope()),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("recipient: ")));
  EXPECT_THAT(ValidateSubscribe(SubscribeTo("mentorhuset", 0, "ABC"), Scope()),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("subject: ")));
  EXPECT_THAT(ValidateSubscribe(SubscribeTo("mentorhuset", uint64_t{1} << 63), Scope()),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("after_stream_sequence: ")));
  EXPECT_THAT(ValidateSubscribe(SubscribeTo("nobody"), Scope()),
              StatusIs(absl::StatusCode::kNotFound, StartsWith("recipient: ")));
  EXPECT_THAT(ValidateSubscribe(SubscribeTo("mentorhuset", 7, kSubject), Scope()), IsOk());
}

// --- AssignRole -------------------------------------------------------------

TEST_F(CoordinationServiceTest, AssignRolePublishesRoleAssignedEventKeyedBySubject) {
  AssignRoleResponse response;

  ASSERT_THAT(AssignRole(ValidRequest(), response), GrpcStatusIs(grpc::StatusCode::OK, ""));

  ASSERT_THAT(publisher_.records(), SizeIs(1));
  EXPECT_EQ(publisher_.records()[0].key, kSubject);
  const CaseEvent event = PublishedEvents()[0];
  EXPECT_EQ(event.type(), "dk.casebridge.role.assigned.v1");
  EXPECT_EQ(event.source(), "/casebridge/coordination/0751");
  EXPECT_EQ(event.source_system(), events::v1::SOURCE_SYSTEM_COORDINATION);
  EXPECT_EQ(event.subject(), kSubject);
  EXPECT_EQ(event.sensitivity(), events::v1::SENSITIVITY_ORDINARY);
  EXPECT_EQ(event.occurred_at().seconds(), absl::ToUnixSeconds(kNow));
  EXPECT_EQ(event.role_assignment().role(), ROLE_MENTOR);
  EXPECT_EQ(event.role_assignment().recipient(), "mentorhuset");
  EXPECT_EQ(event.role_assignment().unit().id(), "mentorhuset-team-1");
  EXPECT_FALSE(event.role_assignment().released());
  EXPECT_EQ(event.actor().role(), ROLE_COORDINATING_CASEWORKER);
  EXPECT_EQ(response.event_id(), event.id());
  EXPECT_EQ(response.subject(), kSubject);
  EXPECT_EQ(response.sequence(), 1u);
  EXPECT_FALSE(response.replayed());
}

TEST_F(CoordinationServiceTest, RepeatedAssignRoleIsReplayedWithoutPublishingAgain) {
  AssignRoleResponse first;
  ASSERT_THAT(AssignRole(ValidRequest(), first), GrpcStatusIs(grpc::StatusCode::OK, ""));

  AssignRoleResponse second;
  ASSERT_THAT(AssignRole(ValidRequest(), second), GrpcStatusIs(grpc::StatusCode::OK, ""));

  EXPECT_TRUE(second.replayed());
  EXPECT_EQ(second.event_id(), first.event_id());
  EXPECT_EQ(second.sequence(), first.sequence());
  EXPECT_THAT(publisher_.records(), SizeIs(1));
}

TEST_F(CoordinationServiceTest, ReleasePublishesRoleReleasedEvent) {
  AssignRoleRequest request = ValidRequest();
  request.set_release(true);
  AssignRoleResponse response;

  ASSERT_THAT(AssignRole(request, response), GrpcStatusIs(grpc::StatusCode::OK, ""));

  EXPECT_EQ(PublishedEvents()[0].type(), "dk.casebridge.role.released.v1");
}

TEST_F(CoordinationServiceTest, CaseNamedByCprIsPseudonymisedBeforePublishing) {
  AssignRoleRequest request = ValidRequest();
  request.mutable_case_ref()->set_cpr(kCpr);
  AssignRoleResponse response;

  ASSERT_THAT(AssignRole(request, response), GrpcStatusIs(grpc::StatusCode::OK, ""));

  auto subject = pseudonymizer_->SubjectFor("0751", kCpr);
  ASSERT_THAT(subject, IsOk());
  EXPECT_EQ(response.subject(), *subject);
  EXPECT_EQ(publisher_.records()[0].key, *subject);
  EXPECT_THAT(publisher_.records()[0].value, ::testing::Not(HasSubstr(kCpr)));
}

// --- ListParties ------------------------------------------------------------

TEST_F(CoordinationServiceTest, ListPartiesReturnsTheCurrentHoldersByRole) {
  Apply(RoleEvent("r1", ROLE_MENTOR, "mentorhuset"));
  Apply(RoleEvent("r2", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  ListPartiesRequest request;
  request.mutable_case_ref()->set_subject(kSubject);
  ListPartiesResponse response;
  grpc::ServerContext context;

  ASSERT_THAT(service_->ListParties(&context, &request, &response),
              GrpcStatusIs(grpc::StatusCode::OK, ""));

  EXPECT_EQ(response.subject(), kSubject);
  ASSERT_THAT(response.parties(), SizeIs(2));
  EXPECT_EQ(response.parties(0).recipient(), "aarhus-jobcenter");
  EXPECT_EQ(response.parties(1).recipient(), "mentorhuset");
}

// --- Subscribe (through a real in-process server) ---------------------------

TEST_F(CoordinationServiceTest, SubscribeStreamsStoredDeliveriesInOrder) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  Apply(RoleEvent("r2", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter", false, kOtherSubject));
  Apply(DecisionEvent("d1"));
  StartServer();
  grpc::ClientContext context;

  auto reader = Subscribe(context, SubscribeTo("aarhus-jobcenter"));

  EXPECT_THAT(ReadDeliveries(*reader, 3), ElementsAre("r1@1/1", "r2@2/1", "d1@3/2"));
  context.TryCancel();
}

TEST_F(CoordinationServiceTest, SubscribeResumesAfterStreamSequenceAndFiltersBySubject) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  Apply(RoleEvent("r2", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter", false, kOtherSubject));
  Apply(DecisionEvent("d1"));
  Apply(DecisionEvent("d2", kOtherSubject));
  StartServer();
  grpc::ClientContext resumed;
  grpc::ClientContext filtered;

  auto resumed_reader = Subscribe(resumed, SubscribeTo("aarhus-jobcenter", 2));
  auto filtered_reader = Subscribe(filtered, SubscribeTo("aarhus-jobcenter", 0, kOtherSubject));

  EXPECT_THAT(ReadDeliveries(*resumed_reader, 2), ElementsAre("d1@3/2", "d2@4/2"));
  EXPECT_THAT(ReadDeliveries(*filtered_reader, 2), ElementsAre("r2@2/1", "d2@4/2"));
  resumed.TryCancel();
  filtered.TryCancel();
}

TEST_F(CoordinationServiceTest, SubscribeReplaysOneCaseFromACaseSequence) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  Apply(RoleEvent("r2", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter", false, kOtherSubject));
  Apply(DecisionEvent("d1"));
  Apply(DecisionEvent("d2", kOtherSubject));
  Apply(DecisionEvent("d3"));
  StartServer();
  grpc::ClientContext context;
  SubscribeRequest request = SubscribeTo("aarhus-jobcenter", 0, kSubject);
  request.set_after_case_sequence(1);  // the consumer has case sequence 1 of kSubject

  auto reader = Subscribe(context, request);
  EXPECT_THAT(ReadDeliveries(*reader, 2), ElementsAre("d1@3/2", "d3@5/3"));
  context.TryCancel();

  grpc::ClientContext without_subject;
  SubscribeRequest bad = SubscribeTo("aarhus-jobcenter");
  bad.set_after_case_sequence(1);
  auto refused = Subscribe(without_subject, bad);
  Delivery delivery;
  EXPECT_FALSE(refused->Read(&delivery));
  EXPECT_THAT(refused->Finish(), GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                                              StartsWith("after_case_sequence: needs subject")));
}

TEST_F(CoordinationServiceTest, SubscribeStreamsNewDeliveriesAsTheyArrive) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  StartServer();
  grpc::ClientContext context;
  auto reader = Subscribe(context, SubscribeTo("aarhus-jobcenter"));
  ASSERT_THAT(ReadDeliveries(*reader, 1), ElementsAre("r1@1/1"));

  Apply(DecisionEvent("d1"));
  notifier_.Notify();

  EXPECT_THAT(ReadDeliveries(*reader, 1), ElementsAre("d1@2/2"));
  context.TryCancel();
}

TEST_F(CoordinationServiceTest, SubscribeToUnknownRecipientIsNotFound) {
  StartServer();
  grpc::ClientContext context;

  auto reader = Subscribe(context, SubscribeTo("nobody"));

  EXPECT_THAT(ReadDeliveries(*reader, 1), ::testing::IsEmpty());
  EXPECT_THAT(reader->Finish(),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND, StartsWith("recipient:")));
}

TEST_F(CoordinationServiceTest, ShutdownEndsOpenStreams) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  StartServer();
  grpc::ClientContext context;
  auto reader = Subscribe(context, SubscribeTo("aarhus-jobcenter"));
  ASSERT_THAT(ReadDeliveries(*reader, 1), ElementsAre("r1@1/1"));

  service_->Shutdown();

  EXPECT_THAT(ReadDeliveries(*reader, 1), ::testing::IsEmpty());
  EXPECT_THAT(reader->Finish(),
              GrpcStatusIs(grpc::StatusCode::UNAVAILABLE, HasSubstr("shutting down")));
}

// --- SendReceipt and GetDeliveryStatus -------------------------------------

TEST_F(CoordinationServiceTest, ReceiptRequestsAreValidated) {
  const auto accepted = v1::RECEIPT_STATUS_ACCEPTED;
  EXPECT_THAT(ValidateSendReceipt(Receipt("", "d1", accepted), Scope()),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("recipient: ")));
  EXPECT_THAT(ValidateSendReceipt(Receipt("mentorhuset", "", accepted), Scope()),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("event_id: ")));
  EXPECT_THAT(ValidateSendReceipt(Receipt("mentorhuset", "d1", v1::RECEIPT_STATUS_UNSPECIFIED),
                                  Scope()),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("status: ")));
  EXPECT_THAT(ValidateSendReceipt(Receipt("mentorhuset", "d1", static_cast<v1::ReceiptStatus>(9)),
                                  Scope()),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("status: ")));
  EXPECT_THAT(ValidateSendReceipt(Receipt("mentorhuset", "d1", accepted, std::string(1001, 'x')),
                                  Scope()),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("reason: ")));
  EXPECT_THAT(ValidateSendReceipt(Receipt("nobody", "d1", accepted), Scope()),
              StatusIs(absl::StatusCode::kNotFound, StartsWith("recipient: ")));
  EXPECT_THAT(ValidateSendReceipt(Receipt("mentorhuset", "d1", accepted), Scope()), IsOk());
}

TEST_F(CoordinationServiceTest, ReceiptShowsInTheDeliveryStatusOfThatRecipientOnly) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  Apply(RoleEvent("r2", ROLE_MENTOR, "mentorhuset"));
  Apply(DecisionEvent("d1"));
  clock_.Advance(absl::Minutes(5));

  grpc::ServerContext context;
  const SendReceiptRequest receipt = Receipt("mentorhuset", "d1", v1::RECEIPT_STATUS_ACCEPTED);
  SendReceiptResponse receipt_response;
  ASSERT_THAT(service_->SendReceipt(&context, &receipt, &receipt_response),
              GrpcStatusIs(grpc::StatusCode::OK, ""));
  EXPECT_EQ(receipt_response.recorded_at().seconds(), absl::ToUnixSeconds(clock_.Now()));

  DeliveryStatus status;
  ASSERT_THAT(GetDeliveryStatus("d1", status), GrpcStatusIs(grpc::StatusCode::OK, ""));
  EXPECT_EQ(status.event_id(), "d1");
  EXPECT_EQ(status.type(), "dk.casebridge.decision.refused.v1");
  ASSERT_THAT(status.recipients(), SizeIs(2));
  EXPECT_EQ(status.recipients(0).recipient(), "aarhus-jobcenter");
  EXPECT_EQ(status.recipients(0).state(), v1::DELIVERY_STATE_ROUTED);
  EXPECT_EQ(status.recipients(1).recipient(), "mentorhuset");
  EXPECT_EQ(status.recipients(1).state(), v1::DELIVERY_STATE_ACCEPTED);
  EXPECT_EQ(status.recipients(1).acknowledged_at().seconds(), absl::ToUnixSeconds(clock_.Now()));
  EXPECT_THAT(status.unacknowledged(), ElementsAre("aarhus-jobcenter"));
}

TEST_F(CoordinationServiceTest, ReceiptForAnEventNotDeliveredToTheRecipientIsNotFound) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  Apply(DecisionEvent("d1"));

  EXPECT_THAT(SendReceipt(Receipt("mentorhuset", "d1", v1::RECEIPT_STATUS_RECEIVED)),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND, StartsWith("event_id: ")));
  EXPECT_THAT(SendReceipt(Receipt("aarhus-jobcenter", "d9", v1::RECEIPT_STATUS_RECEIVED)),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND, StartsWith("event_id: ")));
}

TEST_F(CoordinationServiceTest, DeliveryStatusOfAnUnknownEventIsNotFound) {
  DeliveryStatus status;
  EXPECT_THAT(GetDeliveryStatus("d9", status),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND, StartsWith("event_id: ")));
  EXPECT_THAT(GetDeliveryStatus("", status),
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT, StartsWith("event_id: ")));
}

// --- GetTimeline ---------------------------------------------------------------

TEST_F(CoordinationServiceTest, TimelineOrdersEveryEventOfTheCaseAndResolvesCorrections) {
  // Consumed in another order than they happened, from three systems.
  Apply(At(DecisionEvent("d1"), kNow - absl::Hours(48)));
  Apply(At(AppointmentEvent("a1"), kNow - absl::Hours(72)));
  Apply(At(ReferralEvent("s1"), kNow - absl::Hours(24)));
  Apply(At(CorrectionOf("d1", "d2"), kNow - absl::Hours(12)));
  Apply(At(DecisionEvent("x1", kOtherSubject), kNow));

  EXPECT_THAT(TimelineOf(false), ElementsAre("a1", "s1", "d2"));
  EXPECT_THAT(TimelineOf(true), ElementsAre("a1", "d1>d2", "s1", "d2"));
}

TEST_F(CoordinationServiceTest, TimelineOfACaseNamedByCprIsItsPseudonymsTimeline) {
  auto subject = pseudonymizer_->SubjectFor("0751", kCpr);
  ASSERT_THAT(subject, IsOk());
  Apply(DecisionEvent("d1", *subject));
  common::v1::CaseRef by_cpr;
  by_cpr.set_cpr(kCpr);

  EXPECT_THAT(TimelineOf(by_cpr, false), ElementsAre("d1"));
}

TEST_F(CoordinationServiceTest, TimelineOfAnUnknownCaseIsEmptyAndABadCaseIsRefused) {
  EXPECT_THAT(TimelineOf(false), ::testing::IsEmpty());
  grpc::ServerContext context;
  GetTimelineRequest request;
  request.mutable_case_ref()->set_subject("ABC");
  Timeline response;
  EXPECT_THAT(service_->GetTimeline(&context, &request, &response),
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT, StartsWith("case_ref.subject")));
}

// --- Tasks ---------------------------------------------------------------------

struct BadTask {
  std::string field;
  std::function<void(CreateTaskRequest&)> spoil;
};

class CreateTaskValidationTest : public CoordinationServiceTest,
                                 public ::testing::WithParamInterface<BadTask> {};

TEST_P(CreateTaskValidationTest, BadFieldIsInvalidArgumentNamingIt) {
  CreateTaskRequest request = ValidCreateTask();
  GetParam().spoil(request);

  EXPECT_THAT(ValidateCreateTask(request, Scope()),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith(GetParam().field + ": ")));
  TaskResponse response;
  EXPECT_THAT(CreateTask(request, response),
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT, StartsWith(GetParam().field)));
  EXPECT_THAT(publisher_.records(), ::testing::IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(
    EachField, CreateTaskValidationTest,
    ::testing::Values(
        BadTask{"idempotency_key", [](auto& r) { r.clear_idempotency_key(); }},
        BadTask{"case_ref", [](auto& r) { r.clear_case_ref(); }},
        BadTask{"case_ref.subject", [](auto& r) { r.mutable_case_ref()->set_subject("x"); }},
        BadTask{"title", [](auto& r) { r.clear_title(); }},
        BadTask{"title", [](auto& r) { r.set_title("   "); }},
        BadTask{"title", [](auto& r) { r.set_title(std::string(501, 't')); }},
        BadTask{"owner_role", [](auto& r) { r.set_owner_role(ROLE_UNSPECIFIED); }},
        BadTask{"owner_role", [](auto& r) { r.set_owner_role(static_cast<common::v1::Role>(77)); }},
        BadTask{"due", [](auto& r) { r.clear_due(); }},
        BadTask{"due", [](auto& r) { r.mutable_due()->set_nanos(-1); }},
        BadTask{"actor.role", [](auto& r) { r.clear_actor(); }},
        BadTask{"actor.unit", [](auto& r) { r.mutable_actor()->clear_unit(); }}));

TEST_F(CoordinationServiceTest, CreateTaskPublishesAnOpenTaskOwnedByTheRoleAndItsHolder) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  const CreateTaskRequest request = ValidCreateTask();
  TaskResponse response;

  ASSERT_THAT(CreateTask(request, response), GrpcStatusIs(grpc::StatusCode::OK, ""));

  ASSERT_THAT(publisher_.records(), SizeIs(1));
  EXPECT_EQ(publisher_.records()[0].key, kSubject);
  const CaseEvent event = PublishedEvents()[0];
  EXPECT_EQ(event.type(), "dk.casebridge.task.created.v1");
  EXPECT_EQ(event.source(), "/casebridge/coordination/0751");
  EXPECT_EQ(event.occurred_at().seconds(), absl::ToUnixSeconds(kNow));
  EXPECT_EQ(event.actor().role(), ROLE_COORDINATING_CASEWORKER);
  const events::v1::Task& task = event.task();
  EXPECT_EQ(task.state(), events::v1::TASK_STATE_OPEN);
  EXPECT_EQ(task.task_id(), TaskIdFor(event.id()));
  EXPECT_THAT(task.task_id(), ::testing::MatchesRegex("T-[0-9a-f]{12}"));
  EXPECT_EQ(task.title(), request.title());
  EXPECT_EQ(task.owner_role(), ROLE_COORDINATING_CASEWORKER);
  EXPECT_EQ(task.owner_recipient(), "aarhus-jobcenter");
  EXPECT_EQ(task.due().seconds(), request.due().seconds());
  EXPECT_EQ(response.event_id(), event.id());
  EXPECT_EQ(response.task_id(), task.task_id());
  EXPECT_EQ(response.subject(), kSubject);
  EXPECT_FALSE(response.replayed());
}

TEST_F(CoordinationServiceTest, TaskOfARoleWithoutHolderHasNoOwnerRecipient) {
  CreateTaskRequest request = ValidCreateTask();
  request.set_owner_role(ROLE_BENEFITS_UNIT);
  TaskResponse response;

  ASSERT_THAT(CreateTask(request, response), GrpcStatusIs(grpc::StatusCode::OK, ""));

  EXPECT_EQ(PublishedEvents()[0].task().owner_recipient(), "");
}

TEST_F(CoordinationServiceTest, RepeatedCreateTaskIsReplayedWithTheSameTask) {
  TaskResponse first;
  ASSERT_THAT(CreateTask(ValidCreateTask(), first), GrpcStatusIs(grpc::StatusCode::OK, ""));
  TaskResponse second;

  ASSERT_THAT(CreateTask(ValidCreateTask(), second), GrpcStatusIs(grpc::StatusCode::OK, ""));

  EXPECT_TRUE(second.replayed());
  EXPECT_EQ(second.task_id(), first.task_id());
  EXPECT_EQ(second.event_id(), first.event_id());
  EXPECT_THAT(publisher_.records(), SizeIs(1));
}

TEST_F(CoordinationServiceTest, CompleteTaskRequestsAreValidated) {
  CompleteTaskRequest request = ValidCompleteTask("T-1");
  request.clear_task_id();
  EXPECT_THAT(ValidateCompleteTask(request, Scope()),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("task_id: ")));
  request = ValidCompleteTask("T-1");
  request.set_idempotency_key("");
  EXPECT_THAT(ValidateCompleteTask(request, Scope()),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("idempotency_key: ")));
  request = ValidCompleteTask("T-1");
  request.clear_actor();
  EXPECT_THAT(ValidateCompleteTask(request, Scope()),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("actor.role: ")));
}

TEST_F(CoordinationServiceTest, CompletingAnUnknownTaskIsNotFoundAndPublishesNothing) {
  TaskResponse response;

  EXPECT_THAT(CompleteTask(ValidCompleteTask("T-000000000000"), response),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND, StartsWith("task_id: ")));
  EXPECT_THAT(publisher_.records(), ::testing::IsEmpty());
}

TEST_F(CoordinationServiceTest, CompletingAnOpenTaskPublishesTaskCompletedOnce) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  TaskResponse created;
  ASSERT_THAT(CreateTask(ValidCreateTask(), created), GrpcStatusIs(grpc::StatusCode::OK, ""));
  ApplyPublished();
  TaskResponse completed;

  ASSERT_THAT(CompleteTask(ValidCompleteTask(created.task_id()), completed),
              GrpcStatusIs(grpc::StatusCode::OK, ""));

  const CaseEvent event = PublishedEvents().back();
  EXPECT_EQ(event.type(), "dk.casebridge.task.completed.v1");
  EXPECT_EQ(event.task().task_id(), created.task_id());
  EXPECT_EQ(event.task().owner_recipient(), "aarhus-jobcenter");
  EXPECT_EQ(completed.task_id(), created.task_id());
  EXPECT_EQ(completed.event_id(), event.id());
  // The same key again: the first answer, even though the task is done now.
  ApplyPublished();
  TaskResponse replayed;
  ASSERT_THAT(CompleteTask(ValidCompleteTask(created.task_id()), replayed),
              GrpcStatusIs(grpc::StatusCode::OK, ""));
  EXPECT_TRUE(replayed.replayed());
  // A new key: the task is no longer open.
  CompleteTaskRequest again = ValidCompleteTask(created.task_id());
  again.set_idempotency_key("complete-again");
  TaskResponse refused;
  EXPECT_THAT(CompleteTask(again, refused),
              GrpcStatusIs(grpc::StatusCode::FAILED_PRECONDITION, StartsWith("task_id: ")));
}

TEST_F(CoordinationServiceTest, ListTasksReturnsTheCaseRulesViewOfTheTasks) {
  TaskResponse created;
  ASSERT_THAT(CreateTask(ValidCreateTask(), created), GrpcStatusIs(grpc::StatusCode::OK, ""));
  ApplyPublished();
  grpc::ServerContext context;
  ListTasksRequest request;
  request.mutable_case_ref()->set_subject(kSubject);
  ListTasksResponse response;

  ASSERT_THAT(service_->ListTasks(&context, &request, &response),
              GrpcStatusIs(grpc::StatusCode::OK, ""));

  auto history = store_->History(kSubject);
  ASSERT_THAT(history, IsOk());
  std::vector<std::string> expected;
  for (const auto& task : CurrentTasks(*history)) expected.push_back(task.SerializeAsString());
  std::vector<std::string> listed;
  for (const auto& task : response.tasks()) listed.push_back(task.SerializeAsString());
  EXPECT_THAT(listed, ElementsAreArray(expected));
}

// --- Authorisation, consent and audit ------------------------------------------

// A client context that names its caller (insecure development mode; with
// mutual TLS the certificate's CN plays this part).
std::unique_ptr<grpc::ClientContext> As(const std::string& identity) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata(common::kDevelopmentIdentityHeader, identity);
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return context;
}

class AuthorizationTest : public CoordinationServiceTest {
 protected:
  void SetUp() override {
    CoordinationServiceTest::SetUp();
    StartServer();
    Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
    Apply(RoleEvent("r2", ROLE_MENTOR, "mentorhuset"));
    Apply(RoleEvent("r3", common::v1::ROLE_HEALTH_ADMINISTRATION, "aarhus-sundhed"));
  }

  v1::RecordConsentRequest HealthConsentForTheJobCentre() {
    v1::RecordConsentRequest request;
    request.set_idempotency_key("consent-1");
    request.mutable_case_ref()->set_subject(kSubject);
    events::v1::ConsentGrant& grant = *request.add_grants();
    grant.set_administration(common::v1::ADMINISTRATION_JOB_CENTRE);
    grant.add_sensitivities(events::v1::SENSITIVITY_SPECIAL_HEALTH);
    request.set_purpose("Udveksling af helbredsoplysninger i ressourceforløbet");
    request.set_form("written");
    request.mutable_actor()->set_role(ROLE_COORDINATING_CASEWORKER);
    request.mutable_actor()->set_unit("Jobcenter Aarhus");
    return request;
  }

  // The audit records written so far.
  std::vector<audit::v1::AuditRecord> AuditRecords() const {
    std::vector<audit::v1::AuditRecord> records;
    for (const kafka::Record& record : audit_publisher_.records()) {
      EXPECT_EQ(record.topic, kDefaultAuditTopic);
      auto decoded = DecodeAuditRecord(record);
      EXPECT_THAT(decoded, IsOk());
      if (decoded.ok()) records.push_back(*decoded);
    }
    return records;
  }
};

TEST_F(AuthorizationTest, ARecipientMayOnlySubscribeAndSendReceiptsAsItself) {
  Delivery delivery;
  auto context = As("mentorhuset");
  auto other = stub_->Subscribe(context.get(), SubscribeTo("aarhus-jobcenter"));
  EXPECT_FALSE(other->Read(&delivery));
  EXPECT_THAT(other->Finish(),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED,
                           "recipient: caller \"mentorhuset\" may not act for recipient "
                           "\"aarhus-jobcenter\""));
  SendReceiptRequest receipt = Receipt("aarhus-jobcenter", "r1", v1::RECEIPT_STATUS_ACCEPTED);
  SendReceiptResponse response;
  EXPECT_THAT(stub_->SendReceipt(As("mentorhuset").get(), receipt, &response),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED, StartsWith("recipient: ")));
  EXPECT_THAT(stub_->SendReceipt(As("aarhus-jobcenter").get(), receipt, &response),
              GrpcStatusIs(grpc::StatusCode::OK, ""));
}

TEST_F(AuthorizationTest, APartyNotOnTheCaseIsRefusedAndNothingIsDisclosedOrAudited) {
  GetTimelineRequest request;
  request.mutable_case_ref()->set_subject(kSubject);
  Timeline timeline;
  EXPECT_THAT(stub_->GetTimeline(As("aarhus-jobcenter-vest").get(), request, &timeline),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED,
                           "case_ref: caller \"aarhus-jobcenter-vest\" may not read the "
                           "timeline: not a party on this case"));
  EXPECT_EQ(timeline.entries_size(), 0);
  // An administrator administers but does not read content.
  EXPECT_THAT(stub_->GetTimeline(As("aarhus-admin").get(), request, &timeline),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED, StartsWith("case_ref: ")));
  ListPartiesRequest parties;
  parties.mutable_case_ref()->set_subject(kSubject);
  ListPartiesResponse listed;
  EXPECT_THAT(stub_->ListParties(As("aarhus-jobcenter-vest").get(), parties, &listed),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED, StartsWith("case_ref: ")));
  EXPECT_THAT(AuditRecords(), ::testing::IsEmpty());
  EXPECT_THAT(stub_->ListParties(As("aarhus-admin").get(), parties, &listed),
              GrpcStatusIs(grpc::StatusCode::OK, ""));
  ASSERT_EQ(AuditRecords().size(), 1u);
  EXPECT_EQ(AuditRecords()[0].action(), audit::v1::AUDIT_ACTION_CASE_READ);
  EXPECT_EQ(AuditRecords()[0].caller(), "aarhus-admin");
}

TEST_F(AuthorizationTest, OnlyAdministratorsAndTheCoordinatorChangeRolesAndConsent) {
  AssignRoleRequest assign = ValidRequest();
  AssignRoleResponse assigned;
  EXPECT_THAT(stub_->AssignRole(As("mentorhuset").get(), assign, &assigned),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED,
                           "case_ref: caller \"mentorhuset\" may not assign or release roles "
                           "on this case: neither an administrator nor its coordinating "
                           "caseworker"));
  v1::ConsentResponse consent;
  EXPECT_THAT(stub_->RecordConsent(As("aarhus-sundhed").get(), HealthConsentForTheJobCentre(),
                                   &consent),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED, StartsWith("case_ref: ")));
  EXPECT_THAT(PublishedEvents(), ::testing::IsEmpty());
  EXPECT_THAT(stub_->AssignRole(As("aarhus-admin").get(), assign, &assigned),
              GrpcStatusIs(grpc::StatusCode::OK, ""));
  EXPECT_THAT(stub_->RecordConsent(As("aarhus-jobcenter").get(), HealthConsentForTheJobCentre(),
                                   &consent),
              GrpcStatusIs(grpc::StatusCode::OK, ""));
  EXPECT_THAT(PublishedEvents(), SizeIs(2));
}

TEST_F(AuthorizationTest, ConsentRequestsAreValidated) {
  const std::vector<std::pair<std::string, std::function<void(v1::RecordConsentRequest&)>>> bad = {
      {"grants: at least one", [](auto& r) { r.clear_grants(); }},
      {"grants[0].administration: required",
       [](auto& r) { r.mutable_grants(0)->clear_administration(); }},
      {"grants[0].administration: unknown value",
       [](auto& r) { r.mutable_grants(0)->set_administration(static_cast<common::v1::Administration>(99)); }},
      {"grants[1].administration: granted twice", [](auto& r) { *r.add_grants() = r.grants(0); }},
      {"grants[0].sensitivities: at least one",
       [](auto& r) { r.mutable_grants(0)->clear_sensitivities(); }},
      {"grants[0].sensitivities[1]: ordinary content needs no consent",
       [](auto& r) { r.mutable_grants(0)->add_sensitivities(events::v1::SENSITIVITY_ORDINARY); }},
      {"grants[0].sensitivities[1]: unknown value",
       [](auto& r) { r.mutable_grants(0)->add_sensitivities(static_cast<events::v1::Sensitivity>(42)); }},
      {"purpose: required", [](auto& r) { r.set_purpose("  "); }},
      {"form: required", [](auto& r) { r.clear_form(); }},
      {"case_ref", [](auto& r) { r.clear_case_ref(); }},
  };
  for (const auto& [message, spoil] : bad) {
    v1::RecordConsentRequest request = HealthConsentForTheJobCentre();
    spoil(request);
    v1::ConsentResponse response;
    EXPECT_THAT(stub_->RecordConsent(As("aarhus-admin").get(), request, &response),
                GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT, StartsWith(message)));
  }
  EXPECT_THAT(PublishedEvents(), ::testing::IsEmpty());
}

TEST_F(AuthorizationTest, ConsentChangesTheTimelineAndEveryReadIsAudited) {
  Apply(AppointmentEvent("a1"));  // health, special category
  GetTimelineRequest request;
  request.mutable_case_ref()->set_subject(kSubject);

  // Without consent the job centre sees that the appointment exists.
  Timeline without;
  ASSERT_THAT(stub_->GetTimeline(As("aarhus-jobcenter").get(), request, &without),
              GrpcStatusIs(grpc::StatusCode::OK, ""));
  const auto entry_a1 = [](const Timeline& timeline) {
    for (const auto& entry : timeline.entries()) {
      if (entry.event().id() == "a1") return entry;
    }
    return v1::TimelineEntry();
  };
  const v1::TimelineEntry minimal = entry_a1(without);
  EXPECT_EQ(minimal.event().id(), "a1");
  EXPECT_EQ(minimal.disclosure(), v1::DISCLOSURE_MINIMAL);
  EXPECT_EQ(minimal.event().appointment().kind(), events::v1::APPOINTMENT_KIND_UNSPECIFIED);
  // Health sees its own event whole.
  Timeline own;
  ASSERT_THAT(stub_->GetTimeline(As("aarhus-sundhed").get(), request, &own),
              GrpcStatusIs(grpc::StatusCode::OK, ""));
  EXPECT_EQ(entry_a1(own).event().appointment().kind(),
            events::v1::APPOINTMENT_KIND_HEALTH_SESSION);

  // Consent recorded and consumed: the job centre's read now shows it whole.
  v1::ConsentResponse consent;
  ASSERT_THAT(stub_->RecordConsent(As("aarhus-jobcenter").get(), HealthConsentForTheJobCentre(),
                                   &consent),
              GrpcStatusIs(grpc::StatusCode::OK, ""));
  ApplyPublished();
  EXPECT_EQ(consent.consent_id(), consent.event_id());
  Timeline with;
  ASSERT_THAT(stub_->GetTimeline(As("aarhus-jobcenter").get(), request, &with),
              GrpcStatusIs(grpc::StatusCode::OK, ""));
  bool found = false;
  for (const auto& entry : with.entries()) {
    if (entry.event().id() != "a1") continue;
    found = true;
    EXPECT_EQ(entry.disclosure(), v1::DISCLOSURE_FULL);
    EXPECT_EQ(entry.event().appointment().kind(), events::v1::APPOINTMENT_KIND_HEALTH_SESSION);
  }
  EXPECT_TRUE(found);

  // Withdrawn: minimal again; a second withdrawal is refused.
  v1::WithdrawConsentRequest withdraw;
  withdraw.set_idempotency_key("withdraw-1");
  withdraw.mutable_case_ref()->set_subject(kSubject);
  withdraw.set_consent_id(consent.consent_id());
  *withdraw.mutable_actor() = HealthConsentForTheJobCentre().actor();
  v1::ConsentResponse withdrawn;
  ASSERT_THAT(stub_->WithdrawConsent(As("aarhus-jobcenter").get(), withdraw, &withdrawn),
              GrpcStatusIs(grpc::StatusCode::OK, ""));
  ApplyPublished();
  withdraw.set_idempotency_key("withdraw-2");
  EXPECT_THAT(stub_->WithdrawConsent(As("aarhus-jobcenter").get(), withdraw, &withdrawn),
              GrpcStatusIs(grpc::StatusCode::FAILED_PRECONDITION, StartsWith("consent_id: ")));
  withdraw.set_consent_id("no-such-consent");
  EXPECT_THAT(stub_->WithdrawConsent(As("aarhus-jobcenter").get(), withdraw, &withdrawn),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND, StartsWith("consent_id: ")));
  Timeline after;
  ASSERT_THAT(stub_->GetTimeline(As("aarhus-jobcenter").get(), request, &after),
              GrpcStatusIs(grpc::StatusCode::OK, ""));
  for (const auto& entry : after.entries()) {
    if (entry.event().id() == "a1") {
      EXPECT_EQ(entry.disclosure(), v1::DISCLOSURE_MINIMAL);
    }
  }

  // One audit record per timeline read, listing each event and its disclosure.
  std::vector<audit::v1::AuditRecord> reads;
  for (const auto& record : AuditRecords()) {
    if (record.action() == audit::v1::AUDIT_ACTION_TIMELINE_READ) reads.push_back(record);
  }
  ASSERT_EQ(reads.size(), 4u);
  EXPECT_EQ(reads[0].caller(), "aarhus-jobcenter");
  EXPECT_EQ(reads[0].subject(), kSubject);
  EXPECT_EQ(reads[0].municipality(), "0751");
  EXPECT_EQ(reads[1].caller(), "aarhus-sundhed");
  const auto disclosed_a1 = [](const audit::v1::AuditRecord& record) {
    for (const auto& event : record.events()) {
      if (event.event_id() == "a1") return event;
    }
    return audit::v1::DisclosedEvent();
  };
  EXPECT_EQ(disclosed_a1(reads[0]).basis(), "no-consent");
  EXPECT_EQ(disclosed_a1(reads[1]).basis(), "own-administration");
  EXPECT_EQ(disclosed_a1(reads[2]).basis(), "consent");
  EXPECT_THAT(disclosed_a1(reads[2]).consent_ids(), ElementsAre(consent.consent_id()));
  EXPECT_EQ(disclosed_a1(reads[3]).basis(), "no-consent");
}

TEST_F(AuthorizationTest, AStreamBatchIsAuditedBeforeItIsSent) {
  auto context = As("mentorhuset");
  auto reader = Subscribe(*context, SubscribeTo("mentorhuset"));
  ASSERT_THAT(ReadDeliveries(*reader, 1), SizeIs(1));
  context->TryCancel();
  std::vector<audit::v1::AuditRecord> records = AuditRecords();
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records[0].action(), audit::v1::AUDIT_ACTION_STREAM_READ);
  EXPECT_EQ(records[0].recipient(), "mentorhuset");
  EXPECT_EQ(records[0].first_stream_sequence(), 1u);
  ASSERT_GE(records[0].events_size(), 1);
}

}  // namespace
}  // namespace casebridge::coordination
