// The coordination service against the real broker: role events recorded by
// AssignRole come back through the canonical topic, and a decision produced
// onto the canonical topic reaches every party on the case — on its own
// topic (CloudEvents record + ce_recipient/ce_recipientseq) and on its
// Subscribe stream — exactly once, also when the records are consumed again.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "casebridge/coordination/v1/coordination_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/event_ids.h"
#include "services/common/event_recorder.h"
#include "services/common/grpc_server.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/kafka/consumer.h"
#include "services/common/kafka/kafka_config.h"
#include "services/common/kafka/kafka_publisher.h"
#include "services/common/pseudonym.h"
#include "services/coordination/coordination_config.h"
#include "services/coordination/coordination_service.h"
#include "services/coordination/coordination_store.h"
#include "services/coordination/delivery_notifier.h"
#include "services/coordination/delivery_processor.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge::coordination {
namespace {

using ::casebridge::common::v1::ROLE_COORDINATING_CASEWORKER;
using ::casebridge::common::v1::ROLE_MENTOR;
using ::casebridge::common::v1::Role;
using ::casebridge::events::v1::CaseEvent;
using ::casebridge::kafka::Record;
using ::casebridge::testing::GrpcStatusIs;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::PollUntil;
using ::casebridge::testing::ReadAtLeast;
using ::casebridge::testing::ReadTopic;
using ::casebridge::testing::TempDir;
using ::casebridge::testing::UniqueName;
using ::testing::ElementsAre;
using ::testing::SizeIs;
namespace v1 = ::casebridge::coordination::v1;

constexpr char kCpr[] = "1502851234";
constexpr char kJobcenter[] = "aarhus-jobcenter";
constexpr char kMentor[] = "mentorhuset";

// The records on `topic` that carry event `event_id`.
std::vector<Record> RecordsOf(const std::vector<Record>& records, const std::string& event_id) {
  std::vector<Record> matching;
  for (const Record& record : records) {
    if (record.HeaderValue("ce_id") == event_id) matching.push_back(record);
  }
  return matching;
}

// The coordination service as main.cc wires it, in process, against the
// test broker, with its own canonical and recipient topics.
class CoordinationKafkaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kafka_ = testing::TestKafkaConfig();
    config_.mutable_kafka()->CopyFrom(kafka_);
    config_.mutable_server()->set_insecure_development_mode(true);
    config_.set_municipality("0751");
    config_.set_store_path(dir_.File("coordination.db"));
    config_.set_canonical_topic(UniqueName("casebridge.case-events.it"));
    config_.set_consumer_group(UniqueName("casebridge-coordination-it"));
    for (const char* id : {kJobcenter, kMentor}) {
      config::v1::Recipient& recipient = *config_.add_recipients();
      recipient.set_id(id);
      recipient.set_topic(UniqueName(std::string("casebridge.party.") + id + ".it"));
    }
    config_ = WithDefaults(config_);
    ASSERT_THAT(ValidateCoordinationConfig(config_), IsOk());
    std::vector<std::string> topics = {config_.canonical_topic()};
    for (const auto& [id, topic] : RecipientTopics(config_)) topics.push_back(topic);
    ASSERT_THAT(kafka::EnsureTopics(kafka_, topics, 3, 1), IsOk());

    auto publisher = kafka::NewKafkaPublisher(kafka_, topics);
    ASSERT_THAT(publisher, IsOk());
    publisher_ = *std::move(publisher);
    auto store = CoordinationStore::Open(config_.store_path());
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    RecorderOptions options;
    options.topic = config_.canonical_topic();
    options.system = "coordination";
    options.source_system = events::v1::SOURCE_SYSTEM_COORDINATION;
    options.municipality = config_.municipality();
    options.delivery_timeout = kafka::DeliveryTimeout(kafka_);
    auto recorder = EventRecorder::Create(LedgerPath(config_), options, *publisher_);
    ASSERT_THAT(recorder, IsOk());
    recorder_ = *std::move(recorder);
    auto pseudonymizer = Pseudonymizer::Create(std::string(40, 'k'));
    ASSERT_THAT(pseudonymizer, IsOk());
    pseudonymizer_ = *std::move(pseudonymizer);

    StartProcessor(config_.consumer_group());

    service_ = std::make_unique<CoordinationServiceImpl>(*store_, *recorder_, *pseudonymizer_,
                                                         config_, notifier_);
    config::v1::ServerConfig server;
    server.set_listen_address("127.0.0.1:0");
    server.set_insecure_development_mode(true);
    auto started = StartGrpcServer(server, {service_.get()});
    ASSERT_THAT(started, IsOk());
    server_ = std::move(started->server);
    stub_ = v1::CoordinationService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(started->port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (service_ != nullptr) service_->Shutdown();
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    }
    StopProcessor();
  }

  // Starts the consume loop in consumer group `group`.
  void StartProcessor(const std::string& group) {
    auto consumer = kafka::NewKafkaConsumer(kafka_, group, {config_.canonical_topic()});
    ASSERT_THAT(consumer, IsOk());
    consumer_ = *std::move(consumer);
    DeliveryProcessorOptions options;
    options.municipality = config_.municipality();
    options.recipient_topics = RecipientTopics(config_);
    options.delivery_timeout = kafka::DeliveryTimeout(kafka_);
    processor_ = std::make_unique<DeliveryProcessor>(*store_, *consumer_, *publisher_, *recorder_,
                                                     notifier_, options);
    processor_->Start();
  }

  void StopProcessor() {
    if (processor_ != nullptr) processor_->Stop();
    if (consumer_ != nullptr) consumer_->Close();
    processor_.reset();
    consumer_.reset();
  }

  std::string TopicOf(const std::string& recipient) { return RecipientTopics(config_)[recipient]; }

  // Assigns `recipient` to `role` on the citizen's case; returns the subject.
  std::string AssignRole(const std::string& key, Role role, const std::string& recipient) {
    v1::AssignRoleRequest request;
    request.set_idempotency_key(key);
    request.mutable_case_ref()->set_cpr(kCpr);
    request.set_role(role);
    request.set_recipient(recipient);
    request.mutable_actor()->set_role(ROLE_COORDINATING_CASEWORKER);
    request.mutable_actor()->set_unit("Jobcenter Aarhus, Team Ressourceforløb");
    v1::AssignRoleResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    EXPECT_THAT(stub_->AssignRole(&context, request, &response),
                GrpcStatusIs(grpc::StatusCode::OK, ""));
    return response.subject();
  }

  size_t PartyCount(const std::string& subject) {
    v1::ListPartiesRequest request;
    request.mutable_case_ref()->set_subject(subject);
    v1::ListPartiesResponse response;
    grpc::ClientContext context;
    if (!stub_->ListParties(&context, request, &response).ok()) return 0;
    return static_cast<size_t>(response.parties_size());
  }

  // A job-centre refusal on `subject`, produced onto the canonical topic as
  // the job-centre service would.
  CaseEvent ProduceDecision(const std::string& subject) {
    CaseEvent event;
    event.set_source(EventSource("jobcentre", "0751"));
    event.set_id(EventIdFor(event.source(), UniqueName("decision")));
    event.set_source_system(events::v1::SOURCE_SYSTEM_JOB_CENTRE);
    event.set_subject(subject);
    event.set_municipality("0751");
    event.set_sequence(1);
    event.set_sensitivity(events::v1::SENSITIVITY_ORDINARY);
    event.mutable_decision()->set_outcome(events::v1::DECISION_OUTCOME_REFUSED);
    event.mutable_decision()->mutable_offer()->set_code("LAB-mentor");
    event.set_type(EventTypeFor(event));
    EXPECT_THAT(kafka::SendAndWait(*publisher_,
                                   kafka::CaseEventRecord(config_.canonical_topic(), event),
                                   absl::Seconds(30)),
                IsOk());
    return event;
  }

  // Reads `recipient`'s topic until the record of `event_id` is there.
  std::vector<Record> ReadUntilEvent(const std::string& recipient, const std::string& event_id) {
    return ReadTopic(TopicOf(recipient), [&](const std::vector<Record>& records) {
      return !RecordsOf(records, event_id).empty();
    });
  }

  TempDir dir_;
  config::v1::KafkaConfig kafka_;
  config::v1::CoordinationServiceConfig config_;
  DeliveryNotifier notifier_;
  std::unique_ptr<kafka::Publisher> publisher_;
  std::unique_ptr<CoordinationStore> store_;
  std::unique_ptr<EventRecorder> recorder_;
  std::unique_ptr<Pseudonymizer> pseudonymizer_;
  std::unique_ptr<kafka::Consumer> consumer_;
  std::unique_ptr<DeliveryProcessor> processor_;
  std::unique_ptr<CoordinationServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::CoordinationService::Stub> stub_;
};

TEST_F(CoordinationKafkaTest, DecisionReachesEveryPartyOnItsTopicAndItsStream) {
  const std::string subject = AssignRole("assign-ks", ROLE_COORDINATING_CASEWORKER, kJobcenter);
  ASSERT_EQ(AssignRole("assign-mentor", ROLE_MENTOR, kMentor), subject);
  ASSERT_TRUE(PollUntil([&] { return PartyCount(subject) == 2; }));
  // A live stream, open before the decision exists.
  v1::SubscribeRequest subscribe;
  subscribe.set_recipient(kMentor);
  subscribe.set_subject(subject);
  grpc::ClientContext stream_context;
  stream_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub_->Subscribe(&stream_context, subscribe);
  v1::Delivery delivery;
  ASSERT_TRUE(stream->Read(&delivery));
  EXPECT_EQ(delivery.event().type(), "dk.casebridge.role.assigned.v1");

  const CaseEvent decision = ProduceDecision(subject);

  // On the stream: the decision, the mentor's second delivery on this case.
  ASSERT_TRUE(stream->Read(&delivery));
  EXPECT_EQ(delivery.event().id(), decision.id());
  EXPECT_EQ(delivery.case_sequence(), 2u);
  EXPECT_EQ(delivery.stream_sequence(), 2u);
  EXPECT_THAT(delivery.roles(), ElementsAre(ROLE_MENTOR));
  stream_context.TryCancel();

  // On each recipient's topic: the CloudEvents record with the recipient
  // headers. The job centre also received both role events first.
  for (const auto& [recipient, case_sequence] :
       std::vector<std::pair<std::string, uint64_t>>{{kJobcenter, 3}, {kMentor, 2}}) {
    SCOPED_TRACE(recipient);
    const std::vector<Record> records = RecordsOf(ReadUntilEvent(recipient, decision.id()),
                                                  decision.id());
    ASSERT_THAT(records, SizeIs(1));
    const Record& record = records[0];
    EXPECT_EQ(record.key, subject);
    EXPECT_EQ(record.HeaderValue("ce_recipient"), recipient);
    EXPECT_EQ(record.HeaderValue("ce_recipientseq"), kafka::FormatSequence(case_sequence));
    auto decoded = kafka::DecodeCaseEventRecord(record);
    ASSERT_THAT(decoded, IsOk());
    EXPECT_EQ(decoded->SerializeAsString(), decision.SerializeAsString());
  }

  // Catching up from the start: the job centre's whole case, numbered 1..3.
  v1::SubscribeRequest catch_up;
  catch_up.set_recipient(kJobcenter);
  grpc::ClientContext catch_up_context;
  catch_up_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto catch_up_stream = stub_->Subscribe(&catch_up_context, catch_up);
  std::vector<std::string> seen;
  while (seen.size() < 3 && catch_up_stream->Read(&delivery)) {
    seen.push_back(delivery.event().type() + "#" + std::to_string(delivery.case_sequence()));
  }
  EXPECT_THAT(seen, ElementsAre("dk.casebridge.role.assigned.v1#1",
                                "dk.casebridge.role.assigned.v1#2",
                                "dk.casebridge.decision.refused.v1#3"));
  catch_up_context.TryCancel();
}

TEST_F(CoordinationKafkaTest, RecordsConsumedAgainAreNotDeliveredTwice) {
  const std::string subject = AssignRole("assign-ks", ROLE_COORDINATING_CASEWORKER, kJobcenter);
  const CaseEvent decision = ProduceDecision(subject);
  ASSERT_THAT(RecordsOf(ReadUntilEvent(kJobcenter, decision.id()), decision.id()), SizeIs(1));

  // As after a crash before the commit: the whole canonical topic again.
  StopProcessor();
  StartProcessor(UniqueName("casebridge-coordination-it-replay"));
  const CaseEvent later = ProduceDecision(subject);

  const std::vector<Record> records = ReadUntilEvent(kJobcenter, later.id());
  std::vector<std::string> sequences;
  for (const Record& record : records) sequences.push_back(*record.HeaderValue("ce_recipientseq"));
  EXPECT_THAT(sequences, ElementsAre(kafka::FormatSequence(1), kafka::FormatSequence(2),
                                     kafka::FormatSequence(3)));
}

}  // namespace
}  // namespace casebridge::coordination
