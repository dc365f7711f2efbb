// Two coordination replicas of one municipality (ADR 0019): one consumer
// group on a canonical topic of four partitions, one PostgreSQL store, the
// real broker. Events of many cases go onto the canonical topic while one
// replica shuts down and later starts again (two rebalances), and every
// party topic must then hold every event routed to it exactly once, with
// each case's `ce_recipientseq` counting 1, 2, 3, … in the order the case's
// events were produced. Both replicas must have done part of the work, and
// `Subscribe` on either must stream a recipient's deliveries with stream
// sequences 1..n, whichever replica stored them.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "casebridge/coordination/v1/coordination_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/event_ids.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/kafka/kafka_publisher.h"
#include "services/common/proto_time.h"
#include "services/coordination/coordination_app.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge::coordination {
namespace {

using ::casebridge::common::v1::Role;
using ::casebridge::events::v1::CaseEvent;
using ::casebridge::kafka::Record;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::PollUntil;
using ::casebridge::testing::ReadTopic;
using ::casebridge::testing::TempDir;
using ::casebridge::testing::TestStore;
using ::casebridge::testing::UniqueName;
namespace v1 = ::casebridge::coordination::v1;
namespace common = ::casebridge::common::v1;
namespace ev = ::casebridge::events::v1;

const std::string kKey(40, 'k');
constexpr char kMunicipality[] = "0751";
constexpr int kCases = 16;
constexpr int kDecisionsPerPhase = 10;  // per case and phase; three phases
const std::vector<std::pair<std::string, Role>> kParties = {
    {"borger", common::ROLE_CITIZEN},
    {"jobcenter", common::ROLE_COORDINATING_CASEWORKER},
    {"mentor", common::ROLE_MENTOR}};

class CoordinationReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::UsePostgres()) << "runs under the postgres_server fixture only";
    kafka_ = testing::TestKafkaConfig();
    kafka_.set_create_topics(true);
    kafka_.set_topic_partitions(4);
    config_.mutable_server()->set_listen_address("127.0.0.1:0");
    config_.mutable_server()->set_insecure_development_mode(true);
    *config_.mutable_kafka() = kafka_;
    config_.set_canonical_topic(UniqueName("casebridge.case-events.replicas"));
    config_.set_consumer_group(UniqueName("casebridge-coordination-replicas"));
    config_.set_municipality(kMunicipality);
    config_.set_store_url(TestStore(dir_, "coordination"));
    for (const auto& [id, role] : kParties) {
      config::v1::Recipient& recipient = *config_.add_recipients();
      recipient.set_id(id);
      recipient.set_topic(UniqueName("casebridge.party.replicas." + id));
      topics_[id] = recipient.topic();
    }
    config_.mutable_watchdogs()->mutable_check_interval()->set_seconds(3600);

    auto publisher = kafka::NewKafkaPublisher(kafka_, {config_.canonical_topic()});
    ASSERT_THAT(publisher, IsOk());
    publisher_ = *std::move(publisher);
    for (int i = 0; i < kCases; ++i) {
      subjects_.push_back(absl::StrCat(std::string(60, 'a' + (i % 6)), 1000 + i));
    }
  }

  void TearDown() override {
    for (auto& app : apps_) {
      if (app != nullptr) app->Shutdown();
    }
  }

  std::unique_ptr<CoordinationApp> StartReplica() {
    auto app = CoordinationApp::Start(config_, kKey);
    EXPECT_THAT(app, IsOk());
    return app.ok() ? *std::move(app) : nullptr;
  }

  // Sends `event` onto the canonical topic as its source's service would.
  void Send(CaseEvent event, const std::string& system, ev::SourceSystem source_system,
            const std::string& subject) {
    event.set_source(EventSource(system, kMunicipality));
    event.set_id(EventIdFor(event.source(), UniqueName("event")));
    event.set_source_system(source_system);
    event.set_subject(subject);
    event.set_municipality(kMunicipality);
    event.set_sequence(++sequences_[event.source() + subject]);
    event.set_sensitivity(ev::SENSITIVITY_ORDINARY);
    *event.mutable_occurred_at() = ToProtoTimestamp(absl::Now());
    *event.mutable_recorded_at() = event.occurred_at();
    event.set_type(EventTypeFor(event));
    pending_.push_back(publisher_->Send(kafka::CaseEventRecord(config_.canonical_topic(), event)));
    order_[subject].push_back(event.id());
  }

  void AssignParties() {
    for (const std::string& subject : subjects_) {
      for (const auto& [recipient, role] : kParties) {
        CaseEvent event;
        event.mutable_role_assignment()->set_role(role);
        event.mutable_role_assignment()->set_recipient(recipient);
        Send(event, "coordination", ev::SOURCE_SYSTEM_COORDINATION, subject);
      }
    }
    AwaitSent();
  }

  // One phase: `kDecisionsPerPhase` decisions on every case, interleaved.
  void Decisions() {
    ++phases_;
    for (int n = 0; n < kDecisionsPerPhase; ++n) {
      for (const std::string& subject : subjects_) {
        CaseEvent event;
        event.mutable_decision()->set_outcome(ev::DECISION_OUTCOME_GRANTED);
        event.mutable_decision()->mutable_offer()->set_code("LAB-mentor");
        Send(event, "jobcentre", ev::SOURCE_SYSTEM_JOB_CENTRE, subject);
      }
    }
    AwaitSent();
  }

  // Produces phases (at least one) until `condition` holds, waiting up to
  // 10 s after each; false if it never did within ten phases.
  template <typename Condition>
  bool PhasesUntil(Condition condition) {
    for (int phase = 0; phase < 10; ++phase) {
      Decisions();
      if (PollUntil(condition, absl::Seconds(10))) return true;
    }
    return false;
  }

  void AwaitSent() {
    for (auto& outcome : pending_) ASSERT_THAT(outcome.get(), IsOk());
    pending_.clear();
  }

  int64_t Records(const CoordinationApp& app) { return app.delivery_stats().records; }

  // Everything on `recipient`'s topic once it holds `expected` records (or
  // the deadline passed).
  std::vector<Record> Topic(const std::string& recipient, size_t expected) {
    return ReadTopic(
        topics_.at(recipient),
        [&](const std::vector<Record>& read) { return read.size() >= expected; },
        absl::Seconds(90));
  }

  TempDir dir_;
  config::v1::KafkaConfig kafka_;
  config::v1::CoordinationServiceConfig config_;
  std::map<std::string, std::string> topics_;
  std::unique_ptr<kafka::Publisher> publisher_;
  std::vector<std::string> subjects_;
  std::map<std::string, uint64_t> sequences_;
  std::vector<std::future<absl::Status>> pending_;
  // Subject → its event ids in the order they were produced.
  std::map<std::string, std::vector<std::string>> order_;
  std::vector<std::unique_ptr<CoordinationApp>> apps_;
  int phases_ = 0;
};

TEST_F(CoordinationReplicasTest, RebalancesLoseAndDuplicateNothingAndKeepEachCaseInOrder) {
  apps_.push_back(StartReplica());
  apps_.push_back(StartReplica());
  ASSERT_NE(apps_[0], nullptr);
  ASSERT_NE(apps_[1], nullptr);
  CoordinationApp& a = *apps_[0];
  CoordinationApp& b = *apps_[1];

  AssignParties();
  // Both replicas own partitions and work: phases until the group has
  // settled and each has taken part.
  ASSERT_TRUE(PhasesUntil([&] { return Records(a) > 0 && Records(b) > 0; }))
      << "a: " << Records(a) << " b: " << Records(b);

  // Replica a leaves while phase two is produced: b takes its partitions.
  a.Shutdown();
  Decisions();
  const int64_t b_before_rejoin = Records(b);
  ASSERT_TRUE(PollUntil([&] { return Records(b) > b_before_rejoin; }, absl::Seconds(60)));

  // A new replica joins during phase three: the partitions are shared again.
  apps_.push_back(StartReplica());
  ASSERT_NE(apps_[2], nullptr);
  CoordinationApp& c = *apps_[2];
  // Phases until the newcomer has taken part: its partitions arrive only
  // once the group has rebalanced, and b may have done a phase by then.
  ASSERT_TRUE(PhasesUntil([&] { return Records(c) > 0; }));

  // The k-th party assigned receives its own assignment and everything after
  // it: the case's events from the k-th on.
  const size_t per_case = kParties.size() + phases_ * kDecisionsPerPhase;
  for (size_t k = 0; k < kParties.size(); ++k) {
    const std::string& recipient = kParties[k].first;
    const std::vector<Record> records = Topic(recipient, kCases * (per_case - k));
    std::map<std::string, std::vector<std::string>> received;  // subject → ids
    std::map<std::string, int> copies;                          // event id → count
    for (const Record& record : records) {
      EXPECT_EQ(record.HeaderValue("ce_recipient"), recipient);
      auto event = kafka::DecodeCaseEventRecord(record);
      ASSERT_THAT(event, IsOk());
      std::vector<std::string>& ids = received[event->subject()];
      if (++copies[event->id()] > 1) continue;
      ids.push_back(event->id());
      // The case's deliveries to this recipient count 1, 2, 3, … in order.
      EXPECT_EQ(record.HeaderValue("ce_recipientseq"), kafka::FormatSequence(ids.size()))
          << recipient << " " << event->subject();
    }
    for (const auto& [id, count] : copies) {
      EXPECT_EQ(count, 1) << "event " << id << " reached " << recipient << " " << count
                          << " times";
    }
    for (const std::string& subject : subjects_) {
      // Every event of the case from the recipient's assignment on, in the
      // order it was produced.
      const std::vector<std::string> expected(order_[subject].begin() + k, order_[subject].end());
      EXPECT_EQ(received[subject], expected) << recipient << " " << subject;
    }
  }

  // Subscribe on the replica that stayed: the recipient's whole stream,
  // whichever replica stored each delivery, numbered 1..n without a gap.
  auto stub = v1::CoordinationService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", b.port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.AddMetadata("casebridge-dev-identity", "mentor");
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::SubscribeRequest request;
  request.set_recipient("mentor");
  auto stream = stub->Subscribe(&context, request);
  v1::Delivery response;
  const uint64_t mentor_total = kCases * (per_case - 2);  // the third party assigned
  uint64_t expected = 0;
  std::set<std::string> streamed;
  while (expected < mentor_total && stream->Read(&response)) {
    EXPECT_EQ(response.stream_sequence(), ++expected);
    streamed.insert(response.event().id());
  }
  context.TryCancel();
  EXPECT_EQ(expected, mentor_total);
  EXPECT_EQ(streamed.size(), mentor_total);
}

}  // namespace
}  // namespace casebridge::coordination
