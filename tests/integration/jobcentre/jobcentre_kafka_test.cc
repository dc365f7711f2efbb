// The job-centre service against the real broker: what an RPC puts on the
// canonical topic, exactly once, and nothing for a bad request. Also grpcurl
// (an independent client) through server reflection.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <filesystem>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "adapters/jobcentre/reference/reference_jobcentre_system.h"
#include "casebridge/jobcentre/v1/jobcentre_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "services/common/event_recorder.h"
#include "services/common/grpc_server.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/kafka/consumer.h"
#include "services/common/kafka/kafka_publisher.h"
#include "services/common/pseudonym.h"
#include "services/common/case_system_service.h"
#include "services/jobcentre/jobcentre_system.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge::jobcentre {
namespace {

using ::casebridge::events::v1::CaseEvent;
using ::casebridge::testing::GrpcStatusIs;
using ::casebridge::testing::ReadAtLeast;
using ::casebridge::testing::TempDir;
using ::google::protobuf::util::TimeUtil;
using ::testing::HasSubstr;
using ::testing::Not;
namespace v1 = ::casebridge::jobcentre::v1;

constexpr char kCpr[] = "1502851234";
constexpr char kCprDashed[] = "150285-1234";
constexpr char kKey[] = "integration-test-key-0123456789abcdef";

// One job-centre service, in process, on a free port, publishing to its own
// canonical topic on the real broker. State lives in `dir` and survives
// `Restart()`. `server` is the gRPC server's config (its listen address is
// set here).
class JobCentreUnderTest {
 public:
  explicit JobCentreUnderTest(const TempDir& dir, config::v1::ServerConfig server = {})
      : dir_(dir),
        server_config_(std::move(server)),
        topic_(testing::UniqueName("casebridge.case-events.it")) {
    kafka_ = testing::TestKafkaConfig();
    EXPECT_OK(kafka::EnsureTopics(kafka_, {topic_}, 3, 1));
    Start();
  }
  ~JobCentreUnderTest() { Stop(); }

  void Restart() {
    Stop();
    Start();
  }

  v1::JobCentreService::Stub& stub() { return *stub_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  const std::string& topic() const { return topic_; }
  int port() const { return server_.port; }

 private:
  void Start() {
    config::v1::ReferenceSystemConfig reference;
    reference.set_database_path(dir_.File("jobcentre.db"));
    adapter_ = *reference::NewReferenceJobCentreSystem(reference);
    publisher_ = *kafka::NewKafkaPublisher(kafka_, {topic_});
    RecorderOptions options;
    options.topic = topic_;
    options.system = "jobcentre";
    options.source_system = events::v1::SOURCE_SYSTEM_JOB_CENTRE;
    options.municipality = "0751";
    options.delivery_timeout = absl::Seconds(15);
    recorder_ = *EventRecorder::Create(dir_.File("ledger.db"), options, *publisher_);
    pseudonymizer_ = *Pseudonymizer::Create(std::string(40, 'k'));
    core_ = std::make_unique<CaseSystemCore>(JobCentreProfile(), *adapter_, *recorder_,
                                             *pseudonymizer_, "0751", absl::Seconds(5));
    service_ = std::make_unique<JobCentreServiceImpl>(*core_);
    config::v1::ServerConfig server = server_config_;
    server.set_listen_address("127.0.0.1:0");
    server.set_insecure_development_mode(true);
    server_ = *StartGrpcServer(server, {service_.get()});
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_.port),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::JobCentreService::NewStub(channel_);
  }
  void Stop() {
    if (server_.server) server_.server->Shutdown();
    server_.server.reset();
    service_.reset();
    core_.reset();
    recorder_.reset();
    publisher_.reset();
    adapter_.reset();
  }

  const TempDir& dir_;
  const config::v1::ServerConfig server_config_;
  std::string topic_;
  config::v1::KafkaConfig kafka_;
  std::unique_ptr<CaseSystemAdapter> adapter_;
  std::unique_ptr<kafka::Publisher> publisher_;
  std::unique_ptr<EventRecorder> recorder_;
  std::unique_ptr<Pseudonymizer> pseudonymizer_;
  std::unique_ptr<CaseSystemCore> core_;
  std::unique_ptr<JobCentreServiceImpl> service_;
  StartedServer server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::JobCentreService::Stub> stub_;
};

class JobCentreKafkaTest : public ::testing::Test {
 protected:
  explicit JobCentreKafkaTest(config::v1::ServerConfig server = {})
      : service_(dir_, std::move(server)) {}

  static void FillContext(recording::v1::RecordContext* context, const std::string& key) {
    context->set_idempotency_key(key);
    context->mutable_case_ref()->set_cpr(kCprDashed);
    context->mutable_actor()->set_role(common::v1::ROLE_CASEWORKER);
    context->mutable_actor()->set_unit("Jobcenter Aarhus, Team Ressourceforløb");
  }

  recording::v1::RecordDecisionRequest Refusal(const std::string& key) {
    recording::v1::RecordDecisionRequest request;
    FillContext(request.mutable_context(), key);
    auto* basis = request.mutable_context()->add_legal_basis();
    basis->set_law("LAB");
    basis->set_paragraph("78");
    basis->set_subsection("1");
    basis->set_version("LBK nr 701 af 22/05/2022");
    auto* decision = request.mutable_decision();
    decision->set_outcome(events::v1::DECISION_OUTCOME_REFUSED);
    decision->mutable_offer()->set_code("LAB-mentor");
    decision->mutable_offer()->set_name("Mentorstøtte");
    auto* reason = decision->add_reasons();
    reason->set_code("other-support-covers-need");
    reason->set_text("Støtten dækkes af SEL § 85-bostøtte.");
    decision->add_alternatives()->mutable_offer()->set_code("SEL-85");
    decision->mutable_complaint()->set_text("Du kan klage inden 4 uger.");
    decision->mutable_complaint()->set_complaint_body("Ankestyrelsen");
    *decision->mutable_complaint()->mutable_deadline() = TimeUtil::GetCurrentTime() + TimeUtil::HoursToDuration(24 * 28);
    decision->mutable_decided_by()->set_role(common::v1::ROLE_CASEWORKER);
    decision->mutable_decided_by()->set_unit("Jobcenter Aarhus");
    return request;
  }

  recording::v1::BookAppointmentRequest FollowUp(const std::string& key) {
    recording::v1::BookAppointmentRequest request;
    FillContext(request.mutable_context(), key);
    auto* appointment = request.mutable_appointment();
    appointment->set_kind(events::v1::APPOINTMENT_KIND_FOLLOW_UP_CONVERSATION);
    *appointment->mutable_start() = TimeUtil::GetCurrentTime() + TimeUtil::HoursToDuration(72);
    *appointment->mutable_end() = appointment->start() + TimeUtil::MinutesToDuration(45);
    appointment->mutable_location()->set_name("Jobcenter Aarhus, Værkmestergade 15");
    appointment->add_attendees()->set_role(common::v1::ROLE_CITIZEN);
    appointment->add_attendees()->set_role(common::v1::ROLE_MENTOR);
    return request;
  }

  static std::vector<kafka::Record> WithId(const std::vector<kafka::Record>& records,
                                           const std::string& id) {
    std::vector<kafka::Record> matching;
    for (const kafka::Record& r : records) {
      if (r.HeaderValue("ce_id") == id) matching.push_back(r);
    }
    return matching;
  }

  TempDir dir_;
  JobCentreUnderTest service_;
};

TEST_F(JobCentreKafkaTest, RefusalLandsOnCanonicalTopicAsCloudEvent) {
  grpc::ClientContext context;
  recording::v1::RecordResponse response;
  ASSERT_TRUE(service_.stub().RecordDecision(&context, Refusal(kKey), &response).ok());

  std::vector<kafka::Record> records = ReadAtLeast(service_.topic(), 1);
  ASSERT_EQ(records.size(), 1u);
  const kafka::Record& record = records[0];
  EXPECT_EQ(record.key, response.subject());
  EXPECT_EQ(record.HeaderValue("content-type"), "application/protobuf");
  EXPECT_EQ(record.HeaderValue("ce_specversion"), "1.0");
  EXPECT_EQ(record.HeaderValue("ce_id"), response.event_id());
  EXPECT_EQ(record.HeaderValue("ce_type"), "dk.casebridge.decision.refused.v1");
  EXPECT_EQ(record.HeaderValue("ce_source"), "/casebridge/jobcentre/0751");
  EXPECT_EQ(record.HeaderValue("ce_subject"), response.subject());
  EXPECT_EQ(record.HeaderValue("ce_sequence"), "00000000000000000001");
  EXPECT_EQ(record.HeaderValue("ce_sensitivity"), "ordinary");

  absl::StatusOr<CaseEvent> event = kafka::DecodeCaseEventRecord(record);
  ASSERT_OK(event);
  EXPECT_EQ(event->decision().decision_id(), response.record_id());
  EXPECT_EQ(event->decision().reasons(0).code(), "other-support-covers-need");
  EXPECT_EQ(event->decision().alternatives(0).offer().code(), "SEL-85");
  EXPECT_EQ(event->decision().complaint().complaint_body(), "Ankestyrelsen");
  EXPECT_EQ(event->legal_basis(0).paragraph(), "78");
  EXPECT_EQ(event->legal_basis(0).version(), "LBK nr 701 af 22/05/2022");
  EXPECT_EQ(event->idempotency_key(), kKey);

  // No CPR number anywhere on Kafka: key, headers, value.
  std::string everything = record.key + record.value;
  for (const kafka::Header& h : record.headers) everything += h.key + h.value;
  EXPECT_THAT(everything, Not(HasSubstr(kCpr)));
  EXPECT_THAT(everything, Not(HasSubstr(kCprDashed)));
}

TEST_F(JobCentreKafkaTest, RetriesWithSameKeyYieldExactlyOneRecord) {
  // Built once: a retry repeats the request exactly (its times included).
  const recording::v1::RecordDecisionRequest refusal = Refusal(kKey);
  std::string first_id;
  for (int attempt = 0; attempt < 3; ++attempt) {
    grpc::ClientContext context;
    recording::v1::RecordResponse response;
    ASSERT_TRUE(service_.stub().RecordDecision(&context, refusal, &response).ok());
    EXPECT_EQ(response.replayed(), attempt > 0);
    if (attempt == 0) first_id = response.event_id();
    EXPECT_EQ(response.event_id(), first_id);
  }
  std::vector<kafka::Record> records = ReadAtLeast(service_.topic(), 1);
  EXPECT_EQ(WithId(records, first_id).size(), 1u);
  EXPECT_EQ(records.size(), 1u);
}

TEST_F(JobCentreKafkaTest, InvalidRequestIsRefusedAndPublishesNothing) {
  recording::v1::RecordDecisionRequest bad = Refusal("bad-request-key");
  bad.mutable_decision()->clear_complaint();
  grpc::ClientContext context;
  recording::v1::RecordResponse response;
  EXPECT_THAT(service_.stub().RecordDecision(&context, bad, &response),
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("decision.complaint")));

  recording::v1::BookAppointmentRequest bad_cpr = FollowUp("bad-cpr-key");
  bad_cpr.mutable_context()->mutable_case_ref()->set_cpr("320185-1234");
  grpc::ClientContext context2;
  EXPECT_THAT(service_.stub().BookAppointment(&context2, bad_cpr, &response),
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                           HasSubstr("context.case_ref.cpr: not a CPR number")));

  // A valid call afterwards: once it is on the topic, anything published
  // before it on the same partition would be too.
  grpc::ClientContext context3;
  ASSERT_TRUE(service_.stub().BookAppointment(&context3, FollowUp("sentinel"), &response).ok());
  std::vector<kafka::Record> records = ReadAtLeast(service_.topic(), 1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].HeaderValue("ce_id"), response.event_id());
}

TEST_F(JobCentreKafkaTest, AppointmentLifecycleArrivesInOrder) {
  const recording::v1::BookAppointmentRequest book = FollowUp("book-1");
  recording::v1::RecordResponse booked;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(service_.stub().BookAppointment(&context, book, &booked).ok());
  }
  recording::v1::RescheduleAppointmentRequest reschedule;
  FillContext(reschedule.mutable_context(), "move-1");
  reschedule.set_appointment_id(booked.record_id());
  *reschedule.mutable_start() = TimeUtil::GetCurrentTime() + TimeUtil::HoursToDuration(96);
  *reschedule.mutable_end() = reschedule.start() + TimeUtil::MinutesToDuration(45);
  reschedule.set_reason("Borgeren er til lægeundersøgelse.");
  recording::v1::RecordResponse moved;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(service_.stub().RescheduleAppointment(&context, reschedule, &moved).ok());
  }
  recording::v1::CancelAppointmentRequest cancel;
  FillContext(cancel.mutable_context(), "cancel-1");
  cancel.set_appointment_id(booked.record_id());
  cancel.set_reason("Forløbet er sat på pause.");
  recording::v1::RecordResponse cancelled;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(service_.stub().CancelAppointment(&context, cancel, &cancelled).ok());
  }

  std::vector<kafka::Record> records = ReadAtLeast(service_.topic(), 3);
  ASSERT_EQ(records.size(), 3u);
  std::vector<std::string> types;
  for (const kafka::Record& r : records) {
    EXPECT_EQ(r.partition, records[0].partition) << "one case, one partition";
    types.push_back(*r.HeaderValue("ce_type"));
  }
  EXPECT_THAT(types, ::testing::ElementsAre("dk.casebridge.appointment.scheduled.v1",
                                            "dk.casebridge.appointment.rescheduled.v1",
                                            "dk.casebridge.appointment.cancelled.v1"));
  absl::StatusOr<CaseEvent> rescheduled = kafka::DecodeCaseEventRecord(records[1]);
  ASSERT_OK(rescheduled);
  EXPECT_EQ(rescheduled->sequence(), 2u);
  EXPECT_EQ(rescheduled->appointment().previous_start(), book.appointment().start());
  EXPECT_EQ(rescheduled->appointment().start(), reschedule.start());
}

TEST_F(JobCentreKafkaTest, RestartKeepsIdempotencyAndState) {
  // Built once: the retry must be the same request (its start time included,
  // which FollowUp takes from the clock), or it is ALREADY_EXISTS.
  const recording::v1::BookAppointmentRequest booking = FollowUp("restart-key");
  recording::v1::RecordResponse first;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(service_.stub().BookAppointment(&context, booking, &first).ok());
  }
  service_.Restart();
  recording::v1::RecordResponse again;
  {
    grpc::ClientContext context;
    const grpc::Status status = service_.stub().BookAppointment(&context, booking, &again);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.event_id(), first.event_id());
  // The reference system's state survived too: the appointment can be moved.
  recording::v1::CancelAppointmentRequest cancel;
  FillContext(cancel.mutable_context(), "cancel-after-restart");
  cancel.set_appointment_id(first.record_id());
  cancel.set_reason("Aflyst.");
  recording::v1::RecordResponse cancelled;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(service_.stub().CancelAppointment(&context, cancel, &cancelled).ok());
  }
  EXPECT_EQ(cancelled.sequence(), 2u);
  std::vector<kafka::Record> records = ReadAtLeast(service_.topic(), 2);
  EXPECT_EQ(records.size(), 2u);
}

TEST_F(JobCentreKafkaTest, ParallelCallsOnOneCaseYieldOneRecordEachInSequenceOrder) {
  constexpr int kCalls = 20;
  std::vector<std::thread> threads;
  std::vector<grpc::Status> statuses(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      grpc::ClientContext context;
      recording::v1::RecordResponse response;
      statuses[i] = service_.stub().BookAppointment(
          &context, FollowUp("parallel-" + std::to_string(i)), &response);
    });
  }
  for (std::thread& t : threads) t.join();
  for (const grpc::Status& status : statuses) ASSERT_TRUE(status.ok()) << status.error_message();

  std::vector<kafka::Record> records = ReadAtLeast(service_.topic(), kCalls);
  ASSERT_EQ(records.size(), static_cast<size_t>(kCalls)) << "no duplicates, none missing";
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_EQ(records[i].HeaderValue("ce_sequence"), kafka::FormatSequence(i + 1))
        << "offset order is sequence order";
  }
}

// Bad input (issue 4): requests that cannot be parsed, are too large, carry
// an unknown enum value or an invalid CPR number. Each is refused with a
// clear status, and nothing changes: no record on the canonical topic, no
// sequence number used, and the next valid call continues the case.
class JobCentreBadInputTest : public JobCentreKafkaTest {
 protected:
  static constexpr int kMaxReceiveBytes = 64 * 1024;

  JobCentreBadInputTest() : JobCentreKafkaTest(SmallMessages()) {}

  static config::v1::ServerConfig SmallMessages() {
    config::v1::ServerConfig server;
    server.set_max_receive_message_bytes(kMaxReceiveBytes);
    return server;
  }

  // Books a valid appointment on the case (`kCpr`) and returns the answer.
  recording::v1::RecordResponse BookOk(const std::string& key) {
    grpc::ClientContext context;
    recording::v1::RecordResponse response;
    const grpc::Status status = service_.stub().BookAppointment(&context, FollowUp(key), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // Records one valid event on the case and returns everything on the topic
  // then: the state a bad request must not change.
  std::vector<kafka::Record> Before() {
    first_ = BookOk("before-bad-input");
    EXPECT_EQ(first_.sequence(), 1u);
    std::vector<kafka::Record> records = ReadAtLeast(service_.topic(), 1);
    EXPECT_EQ(records.size(), 1u);
    return records;
  }

  // After the bad requests: a valid call succeeds with the next sequence
  // number, and the topic, read to its end, holds `before` and that call's
  // record, nothing else. The case's events in the ledger say the same.
  void ExpectNothingChanged(const std::vector<kafka::Record>& before) {
    const recording::v1::RecordResponse after = BookOk("after-bad-input");
    EXPECT_EQ(after.subject(), first_.subject());
    EXPECT_EQ(after.sequence(), first_.sequence() + 1) << "no sequence number was used up";

    const std::vector<kafka::Record> records = ReadAtLeast(service_.topic(), before.size() + 1);
    ASSERT_EQ(records.size(), before.size() + 1) << "exactly one new record: the valid call's";
    for (size_t i = 0; i < before.size(); ++i) {
      EXPECT_EQ(records[i].HeaderValue("ce_id"), before[i].HeaderValue("ce_id"));
      EXPECT_EQ(records[i].offset, before[i].offset);
    }
    EXPECT_EQ(records.back().HeaderValue("ce_id"), after.event_id());
    EXPECT_EQ(records.back().HeaderValue("ce_sequence"), kafka::FormatSequence(2));

    recording::v1::ListCaseEventsRequest list;
    list.mutable_case_ref()->set_cpr(kCpr);
    recording::v1::ListCaseEventsResponse events;
    grpc::ClientContext context;
    ASSERT_TRUE(service_.stub().ListCaseEvents(&context, list, &events).ok());
    ASSERT_EQ(events.events_size(), 2);
    EXPECT_EQ(events.events(0).id(), first_.event_id());
    EXPECT_EQ(events.events(1).id(), after.event_id());
  }

  // Sends `bytes` as the request of `method` with a generic stub: what a
  // client that does not use the generated code can put on the wire.
  grpc::Status CallWithBytes(const std::string& method, const std::string& bytes) {
    grpc::GenericStub stub(service_.channel());
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    std::promise<grpc::Status> done;
    stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                   [&done](grpc::Status status) { done.set_value(std::move(status)); });
    return done.get_future().get();
  }

  recording::v1::RecordResponse first_;
};

TEST_F(JobCentreBadInputTest, UnparsableRequestBytesAreRefusedAndChangeNothing) {
  const std::vector<kafka::Record> before = Before();
  const std::string method = "/casebridge.jobcentre.v1.JobCentreService/RecordDecision";
  // Each is not a RecordDecisionRequest: a length-delimited field (context)
  // longer than the message; a varint that never ends; wire type 7, which
  // does not exist; field number 0.
  const std::vector<std::string> malformed = {
      std::string("\x0a\x7f\x0a\x03" "abc", 6),
      std::string("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 12),
      std::string("\x0f\x00", 2),
      std::string("\x00\x01", 2),
  };
  for (const std::string& bytes : malformed) {
    // gRPC answers a request it cannot deserialise itself, before the
    // service sees it: INTERNAL (grpcpp's GenericDeserialize).
    EXPECT_THAT(CallWithBytes(method, bytes),
                GrpcStatusIs(grpc::StatusCode::INTERNAL, ::testing::_))
        << "request of " << bytes.size() << " bytes";
  }
  // The same way, well-formed bytes reach the service and its validation.
  std::string valid;
  ASSERT_TRUE(Refusal("generic-valid").SerializeToString(&valid));
  valid.resize(valid.size() / 2);  // cut inside a field: malformed again
  EXPECT_THAT(CallWithBytes(method, valid), GrpcStatusIs(grpc::StatusCode::INTERNAL, ::testing::_));
  EXPECT_THAT(CallWithBytes(method, ""),  // an empty message parses: every field is missing
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                           HasSubstr("context.idempotency_key: required")));
  ExpectNothingChanged(before);
}

TEST_F(JobCentreBadInputTest, OversizedRequestIsResourceExhaustedAndChangesNothing) {
  const std::vector<kafka::Record> before = Before();
  recording::v1::RecordDecisionRequest oversized = Refusal("oversized");
  oversized.mutable_decision()->mutable_reasons(0)->set_text(std::string(kMaxReceiveBytes, 'x'));
  ASSERT_GT(oversized.ByteSizeLong(), static_cast<size_t>(kMaxReceiveBytes));
  grpc::ClientContext context;
  recording::v1::RecordResponse response;
  EXPECT_THAT(service_.stub().RecordDecision(&context, oversized, &response),
              GrpcStatusIs(grpc::StatusCode::RESOURCE_EXHAUSTED, HasSubstr("larger than max")));

  // Just under the limit is accepted: the limit is the configured one.
  recording::v1::RecordDecisionRequest large = Refusal("large-but-allowed");
  large.mutable_decision()->mutable_reasons(0)->set_text(std::string(kMaxReceiveBytes / 2, 'x'));
  grpc::ClientContext context2;
  const grpc::Status status = service_.stub().RecordDecision(&context2, large, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.sequence(), 2u);
  first_ = response;  // the case's latest event before the check

  std::vector<kafka::Record> now = ReadAtLeast(service_.topic(), 2);
  ASSERT_EQ(now.size(), 2u);
  const recording::v1::RecordResponse after = BookOk("after-oversized");
  EXPECT_EQ(after.sequence(), 3u);
  const std::vector<kafka::Record> records = ReadAtLeast(service_.topic(), 3);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].HeaderValue("ce_id"), before[0].HeaderValue("ce_id"));
  EXPECT_EQ(records[2].HeaderValue("ce_id"), after.event_id());
}

// Sets the enum field `path` (dot-separated, from `message`) to `number`
// through reflection, as a client with a newer or broken schema can.
void SetEnumNumber(google::protobuf::Message& message, const std::string& path, int number) {
  google::protobuf::Message* holder = &message;
  std::vector<std::string> names = absl::StrSplit(path, '.');
  for (size_t i = 0; i + 1 < names.size(); ++i) {
    const auto* field = holder->GetDescriptor()->FindFieldByName(names[i]);
    ASSERT_NE(field, nullptr) << names[i];
    holder = holder->GetReflection()->MutableMessage(holder, field);
  }
  const auto* field = holder->GetDescriptor()->FindFieldByName(names.back());
  ASSERT_NE(field, nullptr) << names.back();
  holder->GetReflection()->SetEnumValue(holder, field, number);
}

TEST_F(JobCentreBadInputTest, UnknownEnumValuesAreRefusedNamingTheFieldAndChangeNothing) {
  const std::vector<kafka::Record> before = Before();
  for (const char* path : {"decision.outcome", "context.actor.role", "context.sensitivity",
                           "decision.offer.administration", "decision.decided_by.role"}) {
    SCOPED_TRACE(path);
    recording::v1::RecordDecisionRequest request = Refusal(absl::StrCat("enum-", path));
    SetEnumNumber(request, path, 99);  // travels as the number 99
    grpc::ClientContext context;
    recording::v1::RecordResponse response;
    EXPECT_THAT(service_.stub().RecordDecision(&context, request, &response),
                GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                             HasSubstr(absl::StrCat(path, ": unknown value"))));
  }
  recording::v1::BookAppointmentRequest booking = FollowUp("enum-kind");
  SetEnumNumber(booking, "appointment.kind", 99);
  grpc::ClientContext context;
  recording::v1::RecordResponse response;
  EXPECT_THAT(service_.stub().BookAppointment(&context, booking, &response),
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                           HasSubstr("appointment.kind: unknown value")));
  // A unit's administration was not checked before the fuzzer found it.
  recording::v1::RecordReferralStepRequest referral;
  FillContext(referral.mutable_context(), "enum-unit-administration");
  referral.mutable_referral()->set_status(events::v1::REFERRAL_STATUS_SENT);
  referral.mutable_referral()->mutable_offer()->set_code("LAB-resource-course");
  referral.mutable_referral()->mutable_to_unit()->set_id("0751-unit-b");
  SetEnumNumber(referral, "referral.to_unit.administration", 99);
  grpc::ClientContext context2;
  EXPECT_THAT(service_.stub().RecordReferralStep(&context2, referral, &response),
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                           HasSubstr("referral.to_unit.administration: unknown value")));
  ExpectNothingChanged(before);
}

TEST_F(JobCentreBadInputTest, InvalidCprIsRefusedWithoutEchoingItAndChangesNothing) {
  const std::vector<kafka::Record> before = Before();
  // A bad date part (32 January, 29 February 2001, month 13), wrong lengths,
  // letters, a misplaced dash.
  for (const char* cpr : {"320185-1234", "2902011234", "0113851234", "15028512", "150285-12345",
                          "15028a-1234", "ABCDEFGHIJ", "15028-51234"}) {
    SCOPED_TRACE(cpr);
    recording::v1::RecordDecisionRequest request = Refusal(absl::StrCat("cpr-", cpr));
    request.mutable_context()->mutable_case_ref()->set_cpr(cpr);
    grpc::ClientContext context;
    recording::v1::RecordResponse response;
    const grpc::Status status = service_.stub().RecordDecision(&context, request, &response);
    EXPECT_THAT(status, GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                                     HasSubstr("context.case_ref.cpr: not a CPR number")));
    EXPECT_THAT(status.error_message(), Not(HasSubstr(cpr)));
    EXPECT_THAT(status.error_details(), Not(HasSubstr(cpr)));
  }
  ExpectNothingChanged(before);
}

// A field this schema does not know (a newer client's, or arbitrary bytes)
// is accepted, as protobuf does, but never published: nothing validated it
// (found by recording_request_fuzzer).
TEST_F(JobCentreBadInputTest, FieldsUnknownToTheSchemaAreNotPublished) {
  recording::v1::RecordDecisionRequest request = Refusal("unknown-fields");
  events::v1::Decision* decision = request.mutable_decision();
  decision->GetReflection()
      ->MutableUnknownFields(decision)
      ->AddLengthDelimited(99, "unvalidated text 010190-1234");
  grpc::ClientContext context;
  recording::v1::RecordResponse response;
  const grpc::Status status = service_.stub().RecordDecision(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();

  const std::vector<kafka::Record> records = ReadAtLeast(service_.topic(), 1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_THAT(records[0].value, Not(HasSubstr("unvalidated text")));
  absl::StatusOr<CaseEvent> event = kafka::DecodeCaseEventRecord(records[0]);
  ASSERT_OK(event);
  const events::v1::Decision& published = event->decision();
  EXPECT_EQ(published.GetReflection()->GetUnknownFields(published).field_count(), 0);
  EXPECT_EQ(event->decision().offer().code(), "LAB-mentor");
}

std::string FindGrpcurl() {
  if (const char* path = std::getenv("CASEBRIDGE_GRPCURL"); path != nullptr) return path;
  const char* cache = std::getenv("CASEBRIDGE_CACHE");
  const char* home = std::getenv("HOME");
  std::string dir = cache != nullptr ? cache : std::string(home != nullptr ? home : "") + "/.cache/casebridge";
  return dir + "/tools/bin/grpcurl";
}

TEST_F(JobCentreKafkaTest, GrpcurlListsAndCallsTheServiceThroughReflection) {
  const std::string grpcurl = FindGrpcurl();
  if (!std::filesystem::exists(grpcurl)) {
    GTEST_SKIP() << "grpcurl not installed at " << grpcurl << " (deploy/local/install-tools)";
  }
  const std::string target = "127.0.0.1:" + std::to_string(service_.port());
  int code = 0;
  std::string listed = testing::RunCommand(grpcurl + " -plaintext " + target + " list 2>&1", &code);
  ASSERT_EQ(code, 0) << listed;
  EXPECT_THAT(listed, HasSubstr("casebridge.jobcentre.v1.JobCentreService"));
  EXPECT_THAT(listed, HasSubstr("grpc.health.v1.Health"));

  const std::string request =
      R"({"context":{"idempotencyKey":"grpcurl-1","caseRef":{"cpr":"150285-1234"},)"
      R"("actor":{"role":"ROLE_CASEWORKER","unit":"Jobcenter Aarhus"}},)"
      R"("appointment":{"kind":"APPOINTMENT_KIND_FOLLOW_UP_CONVERSATION",)"
      R"("start":"2030-03-04T09:00:00Z","end":"2030-03-04T09:45:00Z",)"
      R"("location":{"name":"Jobcenter Aarhus"},"attendees":[{"role":"ROLE_CITIZEN"}]}})";
  std::string called = testing::RunCommand(
      grpcurl + " -plaintext -d '" + request + "' " + target +
          " casebridge.jobcentre.v1.JobCentreService/BookAppointment 2>&1",
      &code);
  ASSERT_EQ(code, 0) << called;
  EXPECT_THAT(called, HasSubstr("\"event_id\""));
  EXPECT_THAT(called, HasSubstr("\"sequence\": \"1\""));

  std::vector<kafka::Record> records = ReadAtLeast(service_.topic(), 1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].HeaderValue("ce_type"), "dk.casebridge.appointment.scheduled.v1");
  EXPECT_EQ(records[0].HeaderValue("ce_subject"), records[0].key);

  // A bad request through grpcurl: the status names the field.
  std::string refused = testing::RunCommand(
      grpcurl + " -plaintext -d '{\"context\":{\"idempotencyKey\":\"x\"}}' " + target +
          " casebridge.jobcentre.v1.JobCentreService/BookAppointment 2>&1",
      &code);
  EXPECT_NE(code, 0);
  EXPECT_THAT(refused, HasSubstr("InvalidArgument"));
  EXPECT_THAT(refused, HasSubstr("context.case_ref"));
}

}  // namespace
}  // namespace casebridge::jobcentre
