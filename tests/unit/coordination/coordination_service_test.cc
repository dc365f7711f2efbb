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
#include "services/common/pseudonym.h"
#include "services/coordination/coordination_store.h"
#include "services/coordination/delivery_notifier.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"
#include "tests/unit/coordination/test_events.h"

namespace casebridge::coordination {
namespace {

using ::casebridge::common::v1::ROLE_COORDINATING_CASEWORKER;
using ::casebridge::common::v1::ROLE_MENTOR;
using ::casebridge::common::v1::ROLE_UNSPECIFIED;
using ::casebridge::coordination::testing::DecisionEvent;
using ::casebridge::coordination::testing::kOtherSubject;
using ::casebridge::coordination::testing::kSubject;
using ::casebridge::coordination::testing::RoleEvent;
using ::casebridge::coordination::v1::AssignRoleRequest;
using ::casebridge::coordination::v1::AssignRoleResponse;
using ::casebridge::coordination::v1::CoordinationService;
using ::casebridge::coordination::v1::Delivery;
using ::casebridge::coordination::v1::ListPartiesRequest;
using ::casebridge::coordination::v1::ListPartiesResponse;
using ::casebridge::coordination::v1::SubscribeRequest;
using ::casebridge::events::v1::CaseEvent;
using ::casebridge::kafka::MemoryPublisher;
using ::casebridge::testing::GrpcStatusIs;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::StatusIs;
using ::casebridge::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr char kCanonicalTopic[] = "casebridge.case-events.v1";
constexpr char kCpr[] = "0101701234";
const absl::Time kNow = absl::FromUnixSeconds(1767261600);  // 2026-01-01 10:00 UTC

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
    auto store = CoordinationStore::Open(dir_.File("coordination.db"));
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
    service_ = std::make_unique<CoordinationServiceImpl>(*store_, *recorder_, *pseudonymizer_,
                                                         config_, notifier_, clock_);
  }

  void TearDown() override {
    if (server_ != nullptr) {
      service_->Shutdown();
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    }
  }

  RequestScope Scope() const {
    return RequestScope{*pseudonymizer_, "0751", {"aarhus-jobcenter", "mentorhuset"}};
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

  // Starts the service on 127.0.0.1:0 and connects a stub to it.
  void StartServer() {
    config::v1::ServerConfig server_config;
    server_config.set_listen_address("127.0.0.1:0");
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

}  // namespace
}  // namespace casebridge::coordination
