// The job-centre service against the real broker: what an RPC puts on the
// canonical topic, exactly once, and nothing for a bad request. Also grpcurl
// (an independent client) through server reflection.
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

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
// `Restart()`.
class JobCentreUnderTest {
 public:
  explicit JobCentreUnderTest(const TempDir& dir)
      : dir_(dir), topic_(testing::UniqueName("casebridge.case-events.it")) {
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
    config::v1::ServerConfig server;
    server.set_listen_address("127.0.0.1:0");
    server.set_insecure_development_mode(true);
    server_ = *StartGrpcServer(server, {service_.get()});
    stub_ = v1::JobCentreService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(server_.port), grpc::InsecureChannelCredentials()));
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
  std::string topic_;
  config::v1::KafkaConfig kafka_;
  std::unique_ptr<CaseSystemAdapter> adapter_;
  std::unique_ptr<kafka::Publisher> publisher_;
  std::unique_ptr<EventRecorder> recorder_;
  std::unique_ptr<Pseudonymizer> pseudonymizer_;
  std::unique_ptr<CaseSystemCore> core_;
  std::unique_ptr<JobCentreServiceImpl> service_;
  StartedServer server_;
  std::unique_ptr<v1::JobCentreService::Stub> stub_;
};

class JobCentreKafkaTest : public ::testing::Test {
 protected:
  JobCentreKafkaTest() : service_(dir_) {}

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
