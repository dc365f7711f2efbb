// The recorder's background drain against librdkafka's mock cluster, with
// the real librdkafka publisher: while the broker is down a recording call
// answers UNAVAILABLE and its event stays pending; when the broker is back,
// the pending events reach the topic per case in sequence order without any
// further call.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/event_recorder.h"
#include "services/common/kafka/kafka_publisher.h"
#include "tests/support/mock_kafka.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge {
namespace {

using ::casebridge::events::v1::CaseEvent;
using ::casebridge::testing::PollUntil;
using ::casebridge::testing::StatusIs;
using ::casebridge::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kTopic[] = "casebridge.case-events.v1";
const std::string kCaseA(64, 'a');
const std::string kCaseB(64, 'b');

class OutboxDrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::v1::KafkaConfig kafka;
    kafka.set_bootstrap_servers(cluster_.bootstrap());
    // Kafka "does not confirm in time" after one second.
    kafka.mutable_delivery_timeout()->set_seconds(1);
    (*kafka.mutable_properties())["reconnect.backoff.ms"] = "20";
    (*kafka.mutable_properties())["reconnect.backoff.max.ms"] = "100";
    (*kafka.mutable_properties())["log_level"] = "0";
    absl::StatusOr<std::unique_ptr<kafka::Publisher>> publisher =
        kafka::NewKafkaPublisher(kafka, {kTopic});
    ASSERT_OK(publisher);
    publisher_ = *std::move(publisher);
    RecorderOptions options;
    options.topic = kTopic;
    options.system = "jobcentre";
    options.source_system = events::v1::SOURCE_SYSTEM_JOB_CENTRE;
    options.municipality = "0751";
    options.delivery_timeout = absl::Seconds(1);
    absl::StatusOr<std::unique_ptr<EventRecorder>> recorder =
        EventRecorder::Create(dir_.File("ledger.db"), options, *publisher_);
    ASSERT_OK(recorder);
    recorder_ = *std::move(recorder);
  }
  void TearDown() override {
    recorder_.reset();
    publisher_.reset();
  }

  absl::StatusOr<RecordOutcome> Record(const std::string& key, const std::string& subject) {
    return recorder_->Record(RecordRequest{key, subject, key},
                             [&]() -> absl::StatusOr<ActionResult> {
                               ActionResult result;
                               result.record_id = "A-" + key;
                               result.event.mutable_appointment()->set_appointment_id(
                                   result.record_id);
                               result.event.mutable_appointment()->set_status(
                                   events::v1::APPOINTMENT_STATUS_SCHEDULED);
                               return result;
                             });
  }

  int64_t Pending() {
    absl::StatusOr<int64_t> count = recorder_->PendingCount();
    return count.ok() ? *count : -1;
  }

  // Per case, the sequences on the topic, duplicates (same id) dropped.
  static std::map<std::string, std::vector<uint64_t>> SequencesByCase(
      const std::vector<CaseEvent>& events) {
    std::map<std::string, std::vector<uint64_t>> sequences;
    std::set<std::string> seen;
    for (const CaseEvent& event : events) {
      if (!seen.insert(event.id()).second) continue;
      sequences[event.subject()].push_back(event.sequence());
    }
    return sequences;
  }

  testing::MockKafkaCluster cluster_{kTopic};
  TempDir dir_;
  std::unique_ptr<kafka::Publisher> publisher_;
  std::unique_ptr<EventRecorder> recorder_;
};

TEST_F(OutboxDrainTest, BrokerDownIsUnavailableAndKeepsTheEventsPending) {
  ASSERT_OK(Record("k-1", kCaseA));
  cluster_.Down();

  EXPECT_THAT(Record("k-2", kCaseA),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("retry with the same")));
  EXPECT_THAT(Record("k-3", kCaseA), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(Pending(), 2);
  // Nothing accepted is lost: the ledger still has both, unpublished.
  absl::StatusOr<std::vector<CaseEvent>> listed = recorder_->ListEvents(kCaseA, 0, 10);
  ASSERT_OK(listed);
  EXPECT_EQ(listed->size(), 1u);
}

TEST_F(OutboxDrainTest, PendingEventsAreDrainedInCaseOrderWhenTheBrokerReturns) {
  recorder_->StartBackgroundDrain({absl::Milliseconds(50), absl::Milliseconds(400)});
  ASSERT_OK(Record("k-1", kCaseA));
  cluster_.Down();
  EXPECT_THAT(Record("k-2", kCaseA), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(Record("k-3", kCaseB), StatusIs(absl::StatusCode::kUnavailable));
  // A new event of a case with a pending one still waits behind it.
  EXPECT_THAT(Record("k-4", kCaseA), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(Pending(), 3);

  cluster_.Up();
  // No further call: the drain alone empties the outbox.
  ASSERT_TRUE(PollUntil([&] { return Pending() == 0; }, absl::Seconds(30)));

  const std::vector<CaseEvent> events = cluster_.ReadAll(4);
  const auto sequences = SequencesByCase(events);
  ASSERT_TRUE(sequences.contains(kCaseA));
  ASSERT_TRUE(sequences.contains(kCaseB));
  EXPECT_THAT(sequences.at(kCaseA), ElementsAre(1, 2, 3));
  EXPECT_THAT(sequences.at(kCaseB), ElementsAre(1));
  // A retry of a drained call is answered from the ledger.
  absl::StatusOr<RecordOutcome> retry = Record("k-2", kCaseA);
  ASSERT_OK(retry);
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->event.sequence(), 2u);
}

TEST_F(OutboxDrainTest, DrainStartsWithEventsLeftPendingByAnEarlierRun) {
  cluster_.Down();
  EXPECT_THAT(Record("k-1", kCaseA), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(Record("k-2", kCaseA), StatusIs(absl::StatusCode::kUnavailable));
  // A restart over the same ledger (as after kill -9: the ledger is fsync'd).
  recorder_.reset();
  RecorderOptions options;
  options.topic = kTopic;
  options.system = "jobcentre";
  options.source_system = events::v1::SOURCE_SYSTEM_JOB_CENTRE;
  options.municipality = "0751";
  options.delivery_timeout = absl::Seconds(1);
  absl::StatusOr<std::unique_ptr<EventRecorder>> recorder =
      EventRecorder::Create(dir_.File("ledger.db"), options, *publisher_);
  ASSERT_OK(recorder);
  recorder_ = *std::move(recorder);
  EXPECT_EQ(Pending(), 2);
  recorder_->StartBackgroundDrain({absl::Milliseconds(50), absl::Milliseconds(400)});

  cluster_.Up();
  ASSERT_TRUE(PollUntil([&] { return Pending() == 0; }, absl::Seconds(30)));
  EXPECT_THAT(SequencesByCase(cluster_.ReadAll(2)).at(kCaseA), ElementsAre(1, 2));
}

TEST_F(OutboxDrainTest, StopBackgroundDrainIsIdempotent) {
  recorder_->StartBackgroundDrain({absl::Milliseconds(50), absl::Milliseconds(400)});
  recorder_->StopBackgroundDrain();
  recorder_->StopBackgroundDrain();
  ASSERT_OK(Record("k-1", kCaseA));
  EXPECT_EQ(Pending(), 0);
}

}  // namespace
}  // namespace casebridge
