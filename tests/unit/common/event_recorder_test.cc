#include "services/common/event_recorder.h"

#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "services/common/clock.h"
#include "services/common/event_ids.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/kafka/memory_publisher.h"
#include "services/common/sql.h"
#include "services/common/trace_context.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge {
namespace {

using ::casebridge::events::v1::CaseEvent;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::StatusIs;
using ::casebridge::testing::TempDir;
using ::casebridge::testing::TestStore;
using ::google::protobuf::util::MessageDifferencer;
using ::google::protobuf::util::TimeUtil;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr char kTopic[] = "casebridge.case-events.v1";
constexpr char kSource[] = "/casebridge/jobcentre/0751";
const std::string kSubject(64, 'a');
const std::string kOtherSubject(64, 'b');
// 2026-01-01T10:00:00.250Z
const absl::Time kNow = absl::FromUnixSeconds(1767261600) + absl::Milliseconds(250);

class EventRecorderTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open() {
    RecorderOptions options;
    options.topic = kTopic;
    options.system = "jobcentre";
    options.source_system = events::v1::SOURCE_SYSTEM_JOB_CENTRE;
    options.municipality = "0751";
    options.delivery_timeout = absl::Seconds(5);
    absl::StatusOr<std::unique_ptr<EventRecorder>> recorder =
        EventRecorder::Create(TestStore(dir_, "ledger.db"), options, publisher_, clock_);
    ASSERT_OK(recorder);
    recorder_ = *std::move(recorder);
  }

  // Simulates a restart: a new recorder over the same ledger file.
  void Reopen() {
    recorder_.reset();
    Open();
  }

  // Records a scheduled appointment on `subject` under `key`; the action
  // counts its calls and returns record id "A-<n>".
  absl::StatusOr<RecordOutcome> Record(const std::string& key,
                                       const std::string& subject = kSubject,
                                       const std::string& fingerprint = "request-1",
                                       const TraceContext& trace = {}) {
    return recorder_->Record(RecordRequest{key, subject, fingerprint, "context.idempotency_key",
                                           trace},
                             [&]() -> absl::StatusOr<ActionResult> {
                               ++action_calls_;
                               ActionResult result;
                               result.record_id = "A-" + std::to_string(action_calls_);
                               result.event.mutable_appointment()->set_appointment_id(
                                   result.record_id);
                               result.event.mutable_appointment()->set_status(
                                   events::v1::APPOINTMENT_STATUS_SCHEDULED);
                               result.event.set_sensitivity(events::v1::SENSITIVITY_ORDINARY);
                               return result;
                             });
  }

  // Records with an action that fails with `error`.
  absl::StatusOr<RecordOutcome> RecordFailing(const std::string& key, absl::Status error) {
    return recorder_->Record(RecordRequest{key, kSubject, "request-1"},
                             [&]() -> absl::StatusOr<ActionResult> {
                               ++action_calls_;
                               return error;
                             });
  }

  // Every published record, decoded.
  std::vector<CaseEvent> Published() {
    std::vector<CaseEvent> events;
    for (const kafka::Record& record : publisher_.records()) {
      absl::StatusOr<CaseEvent> event = kafka::DecodeCaseEventRecord(record);
      EXPECT_OK(event);
      EXPECT_EQ(record.topic, kTopic);
      if (event.ok()) events.push_back(*std::move(event));
    }
    return events;
  }
  std::vector<uint64_t> PublishedSequences() {
    std::vector<uint64_t> sequences;
    for (const CaseEvent& event : Published()) sequences.push_back(event.sequence());
    return sequences;
  }
  static std::vector<uint64_t> Sequences(const std::vector<CaseEvent>& events) {
    std::vector<uint64_t> sequences;
    for (const CaseEvent& event : events) sequences.push_back(event.sequence());
    return sequences;
  }

  TempDir dir_;
  FakeClock clock_{kNow};
  kafka::MemoryPublisher publisher_;
  std::unique_ptr<EventRecorder> recorder_;
  int action_calls_ = 0;
};

TEST_F(EventRecorderTest, SourceNamesSystemAndMunicipality) {
  EXPECT_EQ(recorder_->source(), kSource);
}

TEST_F(EventRecorderTest, FirstRecordPublishesOneEvent) {
  ASSERT_OK(Record("key-1"));
  EXPECT_THAT(publisher_.records(), SizeIs(1));
  EXPECT_EQ(action_calls_, 1);
}

TEST_F(EventRecorderTest, FirstRecordSetsTheEnvelope) {
  absl::StatusOr<RecordOutcome> outcome = Record("key-1");
  ASSERT_OK(outcome);
  ASSERT_THAT(Published(), SizeIs(1));
  const CaseEvent event = Published()[0];
  EXPECT_EQ(event.id(), EventIdFor(kSource, "key-1"));
  EXPECT_EQ(event.source(), kSource);
  EXPECT_EQ(event.source_system(), events::v1::SOURCE_SYSTEM_JOB_CENTRE);
  EXPECT_EQ(event.subject(), kSubject);
  EXPECT_EQ(event.municipality(), "0751");
  EXPECT_EQ(event.sequence(), 1u);
  EXPECT_EQ(event.recorded_at().seconds(), 1767261600);
  EXPECT_EQ(event.recorded_at().nanos(), 250000000);
  EXPECT_EQ(event.type(), "dk.casebridge.appointment.scheduled.v1");
  EXPECT_EQ(event.idempotency_key(), "key-1");
  EXPECT_EQ(event.appointment().appointment_id(), "A-1");
}

TEST_F(EventRecorderTest, OccurredAtDefaultsToRecordedAt) {
  ASSERT_OK(Record("key-1"));
  const CaseEvent event = Published().at(0);
  EXPECT_TRUE(MessageDifferencer::Equals(event.occurred_at(), event.recorded_at()));
}

TEST_F(EventRecorderTest, KeepsTheOccurredAtTheActionGives) {
  ASSERT_OK(recorder_->Record(RecordRequest{"key-1", kSubject, "f"},
                              []() -> absl::StatusOr<ActionResult> {
                                ActionResult result;
                                result.record_id = "D-1";
                                result.event.mutable_decision()->set_outcome(
                                    events::v1::DECISION_OUTCOME_GRANTED);
                                result.event.mutable_occurred_at()->set_seconds(1767000000);
                                return result;
                              }));
  const CaseEvent event = Published().at(0);
  EXPECT_EQ(event.occurred_at().seconds(), 1767000000);
  EXPECT_EQ(event.type(), "dk.casebridge.decision.granted.v1");
}

TEST_F(EventRecorderTest, OutcomeIsTheEventAsPublished) {
  absl::StatusOr<RecordOutcome> outcome = Record("key-1");
  ASSERT_OK(outcome);
  EXPECT_FALSE(outcome->replayed);
  EXPECT_EQ(outcome->record_id, "A-1");
  EXPECT_TRUE(MessageDifferencer::Equals(outcome->event, Published().at(0)));
}

TEST_F(EventRecorderTest, SequencesOfOneSubjectCountOneTwoThree) {
  ASSERT_OK(Record("key-1"));
  ASSERT_OK(Record("key-2"));
  ASSERT_OK(Record("key-3"));
  EXPECT_THAT(PublishedSequences(), ElementsAre(1u, 2u, 3u));
}

TEST_F(EventRecorderTest, SequencesAreIndependentPerSubject) {
  ASSERT_OK(Record("key-1", kSubject));
  ASSERT_OK(Record("key-2", kOtherSubject));
  ASSERT_OK(Record("key-3", kSubject));
  ASSERT_OK(Record("key-4", kOtherSubject));
  const std::vector<CaseEvent> events = Published();
  ASSERT_THAT(events, SizeIs(4));
  EXPECT_EQ(events[0].subject(), kSubject);
  EXPECT_EQ(events[1].subject(), kOtherSubject);
  EXPECT_THAT(PublishedSequences(), ElementsAre(1u, 1u, 2u, 2u));
}

TEST_F(EventRecorderTest, RepeatedKeyReplaysTheFirstResult) {
  absl::StatusOr<RecordOutcome> first = Record("key-1");
  ASSERT_OK(first);
  clock_.Advance(absl::Minutes(1));
  absl::StatusOr<RecordOutcome> again = Record("key-1");
  ASSERT_OK(again);
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->record_id, first->record_id);
  EXPECT_TRUE(MessageDifferencer::Equals(again->event, first->event));
}

TEST_F(EventRecorderTest, RepeatedKeyDoesNotRunTheActionAgain) {
  ASSERT_OK(Record("key-1"));
  ASSERT_OK(Record("key-1"));
  EXPECT_EQ(action_calls_, 1);
}

TEST_F(EventRecorderTest, RepeatedKeyPublishesNothingNew) {
  ASSERT_OK(Record("key-1"));
  ASSERT_OK(Record("key-1"));
  EXPECT_THAT(publisher_.records(), SizeIs(1));
}

TEST_F(EventRecorderTest, RepeatedKeyWithADifferentRequestIsAlreadyExists) {
  ASSERT_OK(Record("key-1", kSubject, "request-1"));
  EXPECT_THAT(Record("key-1", kSubject, "request-2"),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("context.idempotency_key")));
  EXPECT_EQ(action_calls_, 1);
  EXPECT_THAT(publisher_.records(), SizeIs(1));
}

TEST_F(EventRecorderTest, ActionErrorIsReturnedUnchanged) {
  const absl::Status error = absl::NotFoundError("reference: appointment A-9 not found");
  EXPECT_EQ(RecordFailing("key-1", error).status(), error);
}

TEST_F(EventRecorderTest, ActionErrorPublishesNothing) {
  ASSERT_THAT(RecordFailing("key-1", absl::UnavailableError("vendor down")),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_F(EventRecorderTest, RetryAfterAnActionErrorRunsTheActionAgain) {
  ASSERT_THAT(RecordFailing("key-1", absl::UnavailableError("vendor down")),
              StatusIs(absl::StatusCode::kUnavailable));
  absl::StatusOr<RecordOutcome> retry = Record("key-1");
  ASSERT_OK(retry);
  EXPECT_FALSE(retry->replayed);
  EXPECT_EQ(action_calls_, 2);
  EXPECT_THAT(PublishedSequences(), ElementsAre(1u));
}

TEST_F(EventRecorderTest, ActionErrorDoesNotUseUpASequenceNumber) {
  ASSERT_THAT(RecordFailing("key-1", absl::InvalidArgumentError("vendor says no")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK(Record("key-2"));
  EXPECT_THAT(PublishedSequences(), ElementsAre(1u));
}

TEST_F(EventRecorderTest, EventWithoutAStateIsInvalidArgumentAndNotPublished) {
  EXPECT_THAT(recorder_->Record(RecordRequest{"key-1", kSubject, "f"},
                                []() -> absl::StatusOr<ActionResult> {
                                  ActionResult result;
                                  result.record_id = "A-1";
                                  result.event.mutable_appointment();  // status unspecified
                                  return result;
                                }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_F(EventRecorderTest, PublishFailureIsUnavailableAskingForARetryWithTheSameKey) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  EXPECT_THAT(Record("key-1"), StatusIs(absl::StatusCode::kUnavailable,
                                        HasSubstr("retry with the same idempotency_key")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_F(EventRecorderTest, RetryAfterAPublishFailurePublishesTheSameEvent) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  ASSERT_THAT(Record("key-1"), StatusIs(absl::StatusCode::kUnavailable));
  clock_.Advance(absl::Minutes(1));

  absl::StatusOr<RecordOutcome> retry = Record("key-1");
  ASSERT_OK(retry);
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->event.id(), EventIdFor(kSource, "key-1"));
  EXPECT_EQ(retry->event.sequence(), 1u);
  EXPECT_EQ(retry->event.recorded_at().seconds(), 1767261600);  // the first attempt's
  ASSERT_THAT(Published(), SizeIs(1));
  EXPECT_TRUE(MessageDifferencer::Equals(Published()[0], retry->event));
}

TEST_F(EventRecorderTest, RetryAfterAPublishFailureDoesNotRunTheActionAgain) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  ASSERT_THAT(Record("key-1"), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_OK(Record("key-1"));
  EXPECT_EQ(action_calls_, 1);
}

TEST_F(EventRecorderTest, SecondPublishFailureOnRetryIsUnavailableAgain) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  publisher_.FailNext(absl::UnavailableError("still down"));
  ASSERT_THAT(Record("key-1"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(Record("key-1"), StatusIs(absl::StatusCode::kUnavailable,
                                        HasSubstr("retry with the same idempotency_key")));
  ASSERT_OK(Record("key-1"));
  EXPECT_THAT(PublishedSequences(), ElementsAre(1u));
}

TEST_F(EventRecorderTest, ReplayAfterASuccessfulRetryPublishesNothingMore) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  ASSERT_THAT(Record("key-1"), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_OK(Record("key-1"));
  ASSERT_OK(Record("key-1"));
  EXPECT_THAT(publisher_.records(), SizeIs(1));
}

// The header promises: "Events of one subject are numbered 1, 2, 3, … per
// source and reach Kafka in that order."
TEST_F(EventRecorderTest, EventsOfOneSubjectReachKafkaInSequenceOrderAfterAPublishFailure) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  ASSERT_THAT(Record("key-1"), StatusIs(absl::StatusCode::kUnavailable));
  (void)Record("key-2");  // may succeed or ask for a retry; both are fine
  ASSERT_OK(Record("key-1"));
  (void)Record("key-2");
  ASSERT_OK(recorder_->DrainPending());
  EXPECT_THAT(PublishedSequences(), ElementsAre(1u, 2u));
}

TEST_F(EventRecorderTest, ListEventsReturnsPublishedEventsInSequenceOrder) {
  ASSERT_OK(Record("key-1"));
  ASSERT_OK(Record("key-2"));
  ASSERT_OK(Record("key-3"));
  absl::StatusOr<std::vector<CaseEvent>> events = recorder_->ListEvents(kSubject, 0, 100);
  ASSERT_OK(events);
  EXPECT_THAT(Sequences(*events), ElementsAre(1u, 2u, 3u));
  EXPECT_EQ((*events)[0].id(), EventIdFor(kSource, "key-1"));
  EXPECT_EQ((*events)[2].id(), EventIdFor(kSource, "key-3"));
}

TEST_F(EventRecorderTest, ListEventsPagesByAfterSequenceAndLimit) {
  for (const char* key : {"key-1", "key-2", "key-3", "key-4", "key-5"}) ASSERT_OK(Record(key));
  EXPECT_THAT(Sequences(recorder_->ListEvents(kSubject, 0, 2).value()), ElementsAre(1u, 2u));
  EXPECT_THAT(Sequences(recorder_->ListEvents(kSubject, 2, 2).value()), ElementsAre(3u, 4u));
  EXPECT_THAT(Sequences(recorder_->ListEvents(kSubject, 4, 2).value()), ElementsAre(5u));
  EXPECT_THAT(recorder_->ListEvents(kSubject, 5, 2).value(), IsEmpty());
}

TEST_F(EventRecorderTest, ListEventsReturnsOnlyTheSubjectsEvents) {
  ASSERT_OK(Record("key-1", kSubject));
  ASSERT_OK(Record("key-2", kOtherSubject));
  absl::StatusOr<std::vector<CaseEvent>> events = recorder_->ListEvents(kOtherSubject, 0, 100);
  ASSERT_OK(events);
  ASSERT_THAT(*events, SizeIs(1));
  EXPECT_EQ((*events)[0].subject(), kOtherSubject);
}

TEST_F(EventRecorderTest, ListEventsOfAnUnknownSubjectIsEmpty) {
  EXPECT_THAT(recorder_->ListEvents(std::string(64, 'c'), 0, 100).value(), IsEmpty());
}

TEST_F(EventRecorderTest, SequenceContinuesAfterARestart) {
  ASSERT_OK(Record("key-1"));
  ASSERT_OK(Record("key-2"));
  Reopen();
  ASSERT_OK(Record("key-3"));
  EXPECT_THAT(PublishedSequences(), ElementsAre(1u, 2u, 3u));
}

TEST_F(EventRecorderTest, IdempotencyKeysSurviveARestart) {
  ASSERT_OK(Record("key-1"));
  Reopen();
  absl::StatusOr<RecordOutcome> again = Record("key-1");
  ASSERT_OK(again);
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(action_calls_, 1);
  EXPECT_THAT(publisher_.records(), SizeIs(1));
  EXPECT_THAT(Record("key-1", kSubject, "request-2"), StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST_F(EventRecorderTest, ListEventsSeesEventsFromBeforeARestart) {
  ASSERT_OK(Record("key-1"));
  Reopen();
  EXPECT_THAT(Sequences(recorder_->ListEvents(kSubject, 0, 100).value()), ElementsAre(1u));
}

TEST_F(EventRecorderTest, DrainPendingWithNothingPendingPublishesNothing) {
  ASSERT_OK(Record("key-1"));
  EXPECT_EQ(recorder_->DrainPending().value(), 0);
  EXPECT_THAT(publisher_.records(), SizeIs(1));
}

TEST_F(EventRecorderTest, DrainPendingSkipsACaseWhoseEventKafkaRejects) {
  publisher_.FailNext(absl::InvalidArgumentError("kafka: Broker: Message size too large"));
  EXPECT_THAT(Record("key-1", kSubject), StatusIs(absl::StatusCode::kUnavailable));
  publisher_.FailNext(absl::UnavailableError("broker down"));
  EXPECT_THAT(Record("key-2", kOtherSubject), StatusIs(absl::StatusCode::kUnavailable));

  publisher_.FailNext(absl::InvalidArgumentError("kafka: Broker: Message size too large"));
  EXPECT_THAT(recorder_->DrainPending(), StatusIs(absl::StatusCode::kUnavailable));
  // The rejected event holds back only its own case.
  ASSERT_THAT(publisher_.records(), SizeIs(1));
  absl::StatusOr<CaseEvent> published = kafka::DecodeCaseEventRecord(publisher_.records()[0]);
  ASSERT_OK(published);
  EXPECT_EQ(published->subject(), kOtherSubject);
  EXPECT_EQ(*recorder_->PendingCount(), 1);
}

TEST_F(EventRecorderTest, DrainPendingStopsAtTheFirstCaseWhenKafkaIsAway) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  EXPECT_THAT(Record("key-1", kSubject), StatusIs(absl::StatusCode::kUnavailable));
  publisher_.FailNext(absl::UnavailableError("broker down"));
  EXPECT_THAT(Record("key-2", kOtherSubject), StatusIs(absl::StatusCode::kUnavailable));

  publisher_.FailNext(absl::UnavailableError("kafka: Local: Message timed out"));
  EXPECT_THAT(recorder_->DrainPending(), StatusIs(absl::StatusCode::kUnavailable));
  // The second case was not tried (it would only have waited as long).
  EXPECT_THAT(publisher_.records(), IsEmpty());
  EXPECT_EQ(*recorder_->PendingCount(), 2);
  absl::StatusOr<int> drained = recorder_->DrainPending();
  ASSERT_OK(drained);
  EXPECT_EQ(*drained, 2);
  EXPECT_EQ(*recorder_->PendingCount(), 0);
}

TEST_F(EventRecorderTest, DrainPendingPublishesAnEventLeftPending) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  ASSERT_THAT(Record("key-1"), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_THAT(publisher_.records(), IsEmpty());

  EXPECT_EQ(recorder_->DrainPending().value(), 1);
  ASSERT_THAT(Published(), SizeIs(1));
  EXPECT_EQ(Published()[0].id(), EventIdFor(kSource, "key-1"));
  EXPECT_EQ(Published()[0].sequence(), 1u);
}

TEST_F(EventRecorderTest, DrainPendingAfterARestartPublishesInLedgerOrder) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  publisher_.FailNext(absl::UnavailableError("broker down"));
  ASSERT_THAT(Record("key-1"), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_THAT(Record("key-2"), StatusIs(absl::StatusCode::kUnavailable));
  Reopen();
  EXPECT_EQ(recorder_->DrainPending().value(), 2);
  EXPECT_THAT(PublishedSequences(), ElementsAre(1u, 2u));
  EXPECT_EQ(recorder_->DrainPending().value(), 0);
}

TEST_F(EventRecorderTest, RetryAfterADrainReplaysWithoutPublishingAgain) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  ASSERT_THAT(Record("key-1"), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_EQ(recorder_->DrainPending().value(), 1);
  absl::StatusOr<RecordOutcome> retry = Record("key-1");
  ASSERT_OK(retry);
  EXPECT_TRUE(retry->replayed);
  EXPECT_THAT(publisher_.records(), SizeIs(1));
}

TEST_F(EventRecorderTest, DrainPendingFailureIsUnavailableAndKeepsTheEventPending) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  publisher_.FailNext(absl::UnavailableError("still down"));
  ASSERT_THAT(Record("key-1"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(recorder_->DrainPending(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(recorder_->DrainPending().value(), 1);
  EXPECT_THAT(PublishedSequences(), ElementsAre(1u));
}

// The W3C trace context an event was recorded under travels with it through
// the ledger (docs/adr/0022-w3c-trace-context.md).
const TraceContext kCallSpan =
    *TraceContext::Parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                         "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");

TEST_F(EventRecorderTest, EventIsPublishedWithTheTraceItWasRecordedUnder) {
  ASSERT_OK(Record("key-1", kSubject, "request-1", kCallSpan));
  ASSERT_THAT(publisher_.records(), SizeIs(1));
  const kafka::Record record = publisher_.records()[0];
  EXPECT_EQ(record.HeaderValue("traceparent"), kCallSpan.traceparent());
  EXPECT_EQ(record.HeaderValue("ce_traceparent"), kCallSpan.traceparent());
  EXPECT_EQ(record.HeaderValue("tracestate"), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
  EXPECT_EQ(kafka::TraceContextOf(record), kCallSpan);
}

TEST_F(EventRecorderTest, EventRecordedWithoutATraceStartsANewOne) {
  ASSERT_OK(Record("key-1"));
  ASSERT_OK(Record("key-2"));
  ASSERT_THAT(publisher_.records(), SizeIs(2));
  const TraceContext first = kafka::TraceContextOf(publisher_.records()[0]);
  const TraceContext second = kafka::TraceContextOf(publisher_.records()[1]);
  EXPECT_TRUE(first.valid());
  EXPECT_TRUE(first.sampled());
  EXPECT_EQ(first.tracestate(), "");
  EXPECT_TRUE(second.valid());
  EXPECT_NE(first.trace_id(), second.trace_id());
}

TEST_F(EventRecorderTest, TraceSurvivesTheOutboxToTheDrain) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  ASSERT_THAT(Record("key-1", kSubject, "request-1", kCallSpan),
              StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_THAT(publisher_.records(), IsEmpty());

  EXPECT_EQ(recorder_->DrainPending().value(), 1);
  ASSERT_THAT(publisher_.records(), SizeIs(1));
  EXPECT_EQ(kafka::TraceContextOf(publisher_.records()[0]), kCallSpan);
}

TEST_F(EventRecorderTest, TraceSurvivesARestartWhileTheEventIsPending) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  ASSERT_THAT(Record("key-1", kSubject, "request-1", kCallSpan),
              StatusIs(absl::StatusCode::kUnavailable));
  Reopen();
  EXPECT_EQ(recorder_->DrainPending().value(), 1);
  ASSERT_THAT(publisher_.records(), SizeIs(1));
  EXPECT_EQ(publisher_.records()[0].HeaderValue("traceparent"), kCallSpan.traceparent());
  EXPECT_EQ(publisher_.records()[0].HeaderValue("tracestate"), kCallSpan.tracestate());
}

TEST_F(EventRecorderTest, RetryWithTheSameKeyPublishesTheFirstCallsTrace) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  ASSERT_THAT(Record("key-1", kSubject, "request-1", kCallSpan),
              StatusIs(absl::StatusCode::kUnavailable));
  const TraceContext retry_span = TraceContext::NewRoot();
  absl::StatusOr<RecordOutcome> retry = Record("key-1", kSubject, "request-1", retry_span);
  ASSERT_OK(retry);
  EXPECT_TRUE(retry->replayed);
  ASSERT_THAT(publisher_.records(), SizeIs(1));
  EXPECT_EQ(kafka::TraceContextOf(publisher_.records()[0]), kCallSpan);
}

TEST_F(EventRecorderTest, EarlierPendingEventGoesOutWithItsOwnTrace) {
  // The first event stays pending; the second call publishes it first, each
  // with the trace it was recorded under.
  publisher_.FailNext(absl::UnavailableError("broker down"));
  ASSERT_THAT(Record("key-1", kSubject, "request-1", kCallSpan),
              StatusIs(absl::StatusCode::kUnavailable));
  const TraceContext second_span = kCallSpan.Child();
  ASSERT_OK(Record("key-2", kSubject, "request-2", second_span));
  ASSERT_THAT(publisher_.records(), SizeIs(2));
  EXPECT_EQ(kafka::TraceContextOf(publisher_.records()[0]), kCallSpan);
  EXPECT_EQ(kafka::TraceContextOf(publisher_.records()[1]), second_span);
}

// A ledger as the recorder created it before it kept traces, with one event
// still pending.
class LegacyLedgerTest : public EventRecorderTest {
 protected:
  // The ledger as the recorder created it before it kept traces, with one
  // pending event.
  void CreateLegacyLedger() {
    absl::StatusOr<std::unique_ptr<sql::Database>> db =
        sql::Database::Open(TestStore(dir_, "legacy-ledger.db"));
    ASSERT_OK(db);
    ASSERT_OK(sql::CreateSchema(**db, R"sql(
CREATE TABLE IF NOT EXISTS ledger (
  position        INTEGER PRIMARY KEY AUTOINCREMENT,
  idempotency_key TEXT    NOT NULL UNIQUE,
  event_id        TEXT    NOT NULL UNIQUE,
  fingerprint     BLOB    NOT NULL,
  subject         TEXT    NOT NULL,
  sequence        INTEGER NOT NULL,
  record_id       TEXT    NOT NULL,
  event           BLOB    NOT NULL,
  published       INTEGER NOT NULL DEFAULT 0,
  UNIQUE (subject, sequence)
);
CREATE INDEX IF NOT EXISTS ledger_pending ON ledger (subject, sequence) WHERE published = 0;
)sql"));
    CaseEvent event;
    event.set_id(EventIdFor(kSource, "old-key"));
    event.set_source(kSource);
    event.set_type("dk.casebridge.appointment.scheduled.v1");
    event.set_subject(kSubject);
    event.set_municipality("0751");
    event.set_sequence(1);
    event.set_idempotency_key("old-key");
    event.mutable_appointment()->set_appointment_id("A-old");
    event.mutable_appointment()->set_status(events::v1::APPOINTMENT_STATUS_SCHEDULED);
    absl::StatusOr<sql::Statement> insert = (*db)->Prepare(
        "INSERT INTO ledger (idempotency_key, event_id, fingerprint, subject, sequence, "
        "record_id, event) VALUES ('old-key', ?1, ?2, ?3, 1, 'A-old', ?4)");
    ASSERT_OK(insert);
    insert->Bind(1, event.id());
    insert->BindBlob(2, "fingerprint");
    insert->Bind(3, kSubject);
    insert->BindBlob(4, event.SerializeAsString());
    ASSERT_OK(insert->Run());
  }

  void SetUp() override {
    CreateLegacyLedger();
    if (HasFatalFailure()) return;

    RecorderOptions options;
    options.topic = kTopic;
    options.system = "jobcentre";
    options.source_system = events::v1::SOURCE_SYSTEM_JOB_CENTRE;
    options.municipality = "0751";
    options.delivery_timeout = absl::Seconds(5);
    absl::StatusOr<std::unique_ptr<EventRecorder>> recorder = EventRecorder::Create(
        TestStore(dir_, "legacy-ledger.db"), options, publisher_, clock_);
    ASSERT_OK(recorder);
    recorder_ = *std::move(recorder);
  }
};

TEST_F(LegacyLedgerTest, OpeningAddsTheTraceColumns) {
  recorder_.reset();
  absl::StatusOr<std::unique_ptr<sql::Database>> db =
      sql::Database::Open(TestStore(dir_, "legacy-ledger.db"));
  ASSERT_OK(db);
  absl::StatusOr<sql::Statement> select =
      (*db)->Prepare("SELECT traceparent, tracestate FROM ledger "
                     "WHERE idempotency_key = 'old-key'");
  ASSERT_OK(select);
  absl::StatusOr<bool> row = select->Step();
  ASSERT_OK(row);
  ASSERT_TRUE(*row);
  EXPECT_TRUE(select->ColumnIsNull(0));
  EXPECT_TRUE(select->ColumnIsNull(1));
}

TEST_F(LegacyLedgerTest, AnEventRecordedBeforeIsPublishedWithoutTraceHeaders) {
  EXPECT_EQ(recorder_->DrainPending().value(), 1);
  ASSERT_THAT(publisher_.records(), SizeIs(1));
  EXPECT_EQ(publisher_.records()[0].HeaderValue("ce_id"), EventIdFor(kSource, "old-key"));
  EXPECT_EQ(publisher_.records()[0].HeaderValue("traceparent"), std::nullopt);
  EXPECT_EQ(publisher_.records()[0].HeaderValue("ce_traceparent"), std::nullopt);
}

TEST_F(LegacyLedgerTest, NewEventsAfterTheMigrationCarryTheirTrace) {
  // The old pending event goes first, then the new one with its trace.
  absl::StatusOr<RecordOutcome> outcome = Record("key-1", kSubject, "request-1", kCallSpan);
  ASSERT_OK(outcome);
  EXPECT_EQ(outcome->event.sequence(), 2u);
  ASSERT_THAT(publisher_.records(), SizeIs(2));
  EXPECT_FALSE(kafka::TraceContextOf(publisher_.records()[0]).valid());
  EXPECT_EQ(kafka::TraceContextOf(publisher_.records()[1]), kCallSpan);
}

TEST_F(LegacyLedgerTest, OpeningAMigratedLedgerAgainChangesNothing) {
  ASSERT_OK(Record("key-1", kSubject, "request-1", kCallSpan));
  recorder_.reset();
  RecorderOptions options;
  options.topic = kTopic;
  options.system = "jobcentre";
  options.source_system = events::v1::SOURCE_SYSTEM_JOB_CENTRE;
  options.municipality = "0751";
  absl::StatusOr<std::unique_ptr<EventRecorder>> reopened =
      EventRecorder::Create(TestStore(dir_, "legacy-ledger.db"), options, publisher_, clock_);
  ASSERT_OK(reopened);
  absl::StatusOr<std::vector<CaseEvent>> listed = (*reopened)->ListEvents(kSubject, 0, 10);
  ASSERT_OK(listed);
  EXPECT_EQ(listed->size(), 2u);
}

}  // namespace
}  // namespace casebridge

namespace casebridge {
namespace {

// A publisher whose outcomes the test decides, to hold records in flight.
class ManualPublisher final : public kafka::Publisher {
 public:
  std::future<absl::Status> Send(kafka::Record record) override {
    std::unique_lock<std::mutex> lock(mu_);
    records_.push_back(std::move(record));
    promises_.emplace_back();
    std::future<absl::Status> future = promises_.back().get_future();
    released_.wait(lock, [this] { return !holding_; });
    return future;
  }
  // While held, `Send` does not return (the recorder sends under its lock).
  void HoldSends() {
    std::lock_guard<std::mutex> lock(mu_);
    holding_ = true;
  }
  void ReleaseSends() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      holding_ = false;
    }
    released_.notify_all();
  }
  absl::Status Flush(absl::Duration) override { return absl::OkStatus(); }
  bool Healthy() const override { return true; }

  size_t sent() const {
    std::lock_guard<std::mutex> lock(mu_);
    return records_.size();
  }
  // Resolves the `i`-th send with `status`.
  void Resolve(size_t i, absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    promises_[i].set_value(std::move(status));
  }
  uint64_t SequenceOf(size_t i) const {
    std::lock_guard<std::mutex> lock(mu_);
    CaseEvent event;
    event.ParseFromString(records_[i].value);
    return event.sequence();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable released_;
  bool holding_ = false;
  std::vector<kafka::Record> records_;
  std::deque<std::promise<absl::Status>> promises_;
};

class EventRecorderInFlightTest : public ::testing::Test {
 protected:
  EventRecorderInFlightTest() {
    RecorderOptions options;
    options.topic = kTopic;
    options.system = "jobcentre";
    options.source_system = events::v1::SOURCE_SYSTEM_JOB_CENTRE;
    options.municipality = "0751";
    options.delivery_timeout = absl::Seconds(20);
    recorder_ = *EventRecorder::Create(TestStore(dir_, "ledger.db"), options, publisher_);
  }

  // Records on kSubject in a thread; the result lands in `*out`.
  std::thread RecordAsync(const std::string& key, absl::StatusOr<RecordOutcome>* out) {
    return std::thread([this, key, out] {
      *out = recorder_->Record(RecordRequest{key, kSubject, key}, [] {
        ActionResult result;
        result.record_id = "A-1";
        result.event.mutable_appointment()->set_status(events::v1::APPOINTMENT_STATUS_SCHEDULED);
        return absl::StatusOr<ActionResult>(std::move(result));
      });
    });
  }

  TempDir dir_;
  ManualPublisher publisher_;
  std::unique_ptr<EventRecorder> recorder_;
};

// Regression: an event still in flight is not "pending"; a newer event of
// the same case must not send it again (that duplicated records on Kafka).
TEST_F(EventRecorderInFlightTest, ConcurrentEventsOfOneCaseAreEachSentOnce) {
  absl::StatusOr<RecordOutcome> first, second;
  std::thread a = RecordAsync("key-1", &first);
  ASSERT_TRUE(testing::PollUntil([&] { return publisher_.sent() == 1; }));
  std::thread b = RecordAsync("key-2", &second);
  ASSERT_TRUE(testing::PollUntil([&] { return publisher_.sent() == 2; }));
  publisher_.Resolve(0, absl::OkStatus());
  publisher_.Resolve(1, absl::OkStatus());
  a.join();
  b.join();
  ASSERT_OK(first);
  ASSERT_OK(second);
  EXPECT_EQ(publisher_.sent(), 2u);
  EXPECT_EQ(publisher_.SequenceOf(0), 1u);
  EXPECT_EQ(publisher_.SequenceOf(1), 2u);
}

// Regression: when an earlier event of the case failed, the call whose event
// another call happened to send answers only once that send has its
// outcome, and with that outcome (ADR 0016; it used to answer UNAVAILABLE at
// once).
TEST_F(EventRecorderInFlightTest, CallWhoseEventAnotherCallSendsWaitsForItsOutcome) {
  absl::StatusOr<RecordOutcome> failed, second, third;
  std::thread a = RecordAsync("key-1", &failed);
  ASSERT_TRUE(testing::PollUntil([&] { return publisher_.sent() == 1; }));
  publisher_.Resolve(0, absl::UnavailableError("broker down"));
  a.join();
  ASSERT_THAT(failed, StatusIs(absl::StatusCode::kUnavailable));

  std::thread x = RecordAsync("key-2", &second);  // re-sends key-1 first
  ASSERT_TRUE(testing::PollUntil([&] { return publisher_.sent() == 2; }));
  std::thread y = RecordAsync("key-3", &third);   // sends key-2 (key-1 is in flight)
  ASSERT_TRUE(testing::PollUntil([&] { return publisher_.sent() == 3; }));
  EXPECT_EQ(publisher_.SequenceOf(1), 1u);
  EXPECT_EQ(publisher_.SequenceOf(2), 2u);
  publisher_.Resolve(1, absl::OkStatus());  // key-1 durable; key-2 still in flight
  publisher_.Resolve(2, absl::OkStatus());  // key-2 durable; then key-3 goes out
  x.join();
  ASSERT_OK(second);
  EXPECT_EQ(second->event.sequence(), 2u);
  ASSERT_TRUE(testing::PollUntil([&] { return publisher_.sent() == 4; }));
  EXPECT_EQ(publisher_.SequenceOf(3), 3u);
  publisher_.Resolve(3, absl::OkStatus());
  y.join();
  ASSERT_OK(third);
  EXPECT_EQ(publisher_.sent(), 4u);
}

// A retry while the first call is still waiting for Kafka does not send the
// event a second time; it waits for the first call's outcome and answers
// with it.
TEST_F(EventRecorderInFlightTest, RetryWhileTheFirstCallWaitsGetsItsOutcome) {
  absl::StatusOr<RecordOutcome> first, retry;
  std::thread a = RecordAsync("key-1", &first);
  ASSERT_TRUE(testing::PollUntil([&] { return publisher_.sent() == 1; }));
  std::thread b = RecordAsync("key-1", &retry);
  publisher_.Resolve(0, absl::OkStatus());
  a.join();
  b.join();
  ASSERT_OK(first);
  ASSERT_OK(retry);
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->event.id(), first->event.id());
  EXPECT_EQ(publisher_.sent(), 1u);
}

// Group commit: calls that arrive while a commit is in progress are
// committed together by the next one, in one transaction, and still reach
// Kafka in ledger order with their own sequence numbers.
TEST_F(EventRecorderInFlightTest, CallsQueuedBehindACommitShareTheNextOne) {
  constexpr int kCalls = 16;
  publisher_.HoldSends();
  std::vector<absl::StatusOr<RecordOutcome>> outcomes(kCalls);
  std::vector<std::thread> threads;
  threads.push_back(RecordAsync("key-0", &outcomes[0]));
  // key-0's commit is done and its send is held (under the recorder's lock).
  ASSERT_TRUE(testing::PollUntil([&] { return publisher_.sent() == 1; }));
  EXPECT_EQ(recorder_->ledger_stats().commits, 1);
  for (int i = 1; i < kCalls; ++i) {
    threads.push_back(RecordAsync(absl::StrCat("key-", i), &outcomes[i]));
  }
  // key-0's writer and the 15 behind it.
  ASSERT_TRUE(testing::PollUntil([&] { return recorder_->ledger_stats().queued == kCalls; }));
  publisher_.ReleaseSends();
  ASSERT_TRUE(testing::PollUntil([&] { return publisher_.sent() == kCalls; }));
  // The 15 queued calls took one transaction between them (a shared
  // PostgreSQL ledger commits one write at a time).
  EXPECT_EQ(recorder_->ledger_stats().commits, testing::UsePostgres() ? kCalls : 2);
  for (size_t i = 0; i < kCalls; ++i) {
    EXPECT_EQ(publisher_.SequenceOf(i), i + 1) << "send " << i;
    publisher_.Resolve(i, absl::OkStatus());
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_OK(outcomes[i]) << "call " << i;
    EXPECT_FALSE(outcomes[i]->replayed);
  }
  // Every event and every "published" mark went through a group commit.
  const EventRecorder::LedgerStats stats = recorder_->ledger_stats();
  EXPECT_EQ(stats.writes, 2 * kCalls);
  if (!testing::UsePostgres()) {
    EXPECT_LT(stats.commits, stats.writes);
  }
  EXPECT_EQ(stats.queued, 0);
  EXPECT_EQ(*recorder_->PendingCount(), 0);
  std::set<uint64_t> sequences;
  for (const auto& outcome : outcomes) sequences.insert(outcome->event.sequence());
  EXPECT_EQ(sequences.size(), static_cast<size_t>(kCalls));
}

// A key repeated inside one group is recorded once; the repeat replays it.
TEST_F(EventRecorderInFlightTest, ARepeatedKeyInOneGroupIsRecordedOnce) {
  publisher_.HoldSends();
  absl::StatusOr<RecordOutcome> blocker, first, repeat;
  std::thread a = RecordAsync("key-0", &blocker);
  ASSERT_TRUE(testing::PollUntil([&] { return publisher_.sent() == 1; }));
  std::thread b = RecordAsync("key-1", &first);
  std::thread c = RecordAsync("key-1", &repeat);
  ASSERT_TRUE(testing::PollUntil([&] { return recorder_->ledger_stats().queued == 3; }));
  publisher_.ReleaseSends();
  ASSERT_TRUE(testing::PollUntil([&] { return publisher_.sent() == 2; }));
  publisher_.Resolve(0, absl::OkStatus());
  publisher_.Resolve(1, absl::OkStatus());
  a.join();
  b.join();
  c.join();
  ASSERT_OK(first);
  ASSERT_OK(repeat);
  EXPECT_EQ(first->event.id(), repeat->event.id());
  EXPECT_NE(first->replayed, repeat->replayed);
  EXPECT_EQ(publisher_.sent(), 2u);
  EXPECT_EQ(publisher_.SequenceOf(1), 2u);
}

TEST_F(EventRecorderInFlightTest, PendingCountIsTheOutboxDepth) {
  EXPECT_EQ(*recorder_->PendingCount(), 0);
  absl::StatusOr<RecordOutcome> first;
  std::thread a = RecordAsync("key-1", &first);
  ASSERT_TRUE(testing::PollUntil([&] { return publisher_.sent() == 1; }));
  EXPECT_EQ(*recorder_->PendingCount(), 1);  // in flight counts
  publisher_.Resolve(0, absl::OkStatus());
  a.join();
  ASSERT_OK(first);
  EXPECT_EQ(*recorder_->PendingCount(), 0);
}

}  // namespace
}  // namespace casebridge
