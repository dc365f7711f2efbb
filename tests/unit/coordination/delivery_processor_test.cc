#include "services/coordination/delivery_processor.h"

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/clock.h"
#include "services/common/event_recorder.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/kafka/memory_publisher.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"
#include "tests/unit/coordination/test_events.h"

namespace casebridge::coordination {
namespace {

using ::casebridge::common::v1::ROLE_COORDINATING_CASEWORKER;
using ::casebridge::common::v1::ROLE_MENTOR;
using ::casebridge::coordination::testing::DecisionEvent;
using ::casebridge::coordination::testing::InOdense;
using ::casebridge::coordination::testing::kSubject;
using ::casebridge::coordination::testing::RoleEvent;
using ::casebridge::events::v1::CaseEvent;
using ::casebridge::kafka::MemoryPublisher;
using ::casebridge::kafka::Record;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::PollUntil;
using ::casebridge::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr char kCanonicalTopic[] = "casebridge.case-events.v1";

// A consumer fed by the test. `Poll` waits up to its timeout for a record,
// as the real one does.
class FakeConsumer final : public kafka::Consumer {
 public:
  void Add(Record record) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      record.partition = 0;
      record.offset = next_offset_++;
      queue_.push_back(std::move(record));
    }
    arrived_.notify_all();
  }
  std::vector<int64_t> committed_offsets() const {
    std::lock_guard<std::mutex> lock(mu_);
    return committed_;
  }

  // kafka::Consumer:
  std::optional<Record> Poll(absl::Duration timeout) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (!arrived_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                           [this] { return !queue_.empty(); })) {
      return std::nullopt;
    }
    Record record = std::move(queue_.front());
    queue_.pop_front();
    return record;
  }
  absl::Status Commit(const Record& record) override {
    std::lock_guard<std::mutex> lock(mu_);
    committed_.push_back(record.offset);
    return absl::OkStatus();
  }
  void Close() override {}

 private:
  mutable std::mutex mu_;
  std::condition_variable arrived_;
  std::deque<Record> queue_;
  std::vector<int64_t> committed_;
  int64_t next_offset_ = 0;
};

// A replanning flag as the case rules would derive it from `trigger`.
DerivedEvent ReplanningFor(const CaseEvent& trigger) {
  DerivedEvent derived;
  derived.idempotency_key = "replanning:" + trigger.id();
  derived.event.mutable_replanning()->set_trigger_event_id(trigger.id());
  return derived;
}

std::vector<std::string> EventIds(const std::vector<CaseEvent>& events) {
  std::vector<std::string> ids;
  for (const CaseEvent& event : events) ids.push_back(event.id());
  return ids;
}

class DeliveryProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = CoordinationStore::Open(dir_.File("coordination.db"));
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    RecorderOptions recorder_options;
    recorder_options.topic = kCanonicalTopic;
    recorder_options.system = "coordination";
    recorder_options.source_system = events::v1::SOURCE_SYSTEM_COORDINATION;
    recorder_options.municipality = "0751";
    recorder_options.delivery_timeout = absl::Milliseconds(100);
    auto recorder = EventRecorder::Create(dir_.File("coordination.db.ledger"), recorder_options,
                                          canonical_, clock_);
    ASSERT_THAT(recorder, IsOk());
    recorder_ = *std::move(recorder);
    options_.municipality = "0751";
    options_.recipient_topics = {{"aarhus-jobcenter", "party.aarhus-jobcenter"},
                                 {"mentorhuset", "party.mentorhuset"}};
    options_.poll_timeout = absl::Milliseconds(20);
    options_.initial_backoff = absl::Milliseconds(1);
    options_.max_backoff = absl::Milliseconds(5);
    MakeProcessor();
  }

  // (Re)builds the processor with `options_`.
  void MakeProcessor() {
    processor_.reset();
    processor_ = std::make_unique<DeliveryProcessor>(*store_, consumer_, publisher_, *recorder_,
                                                     notifier_, options_, clock_);
  }

  // Replaces the case rules with `derive`.
  void DeriveWith(std::function<std::vector<DerivedEvent>(const CaseHistory&, const CaseEvent&)>
                      derive) {
    options_.derive = std::move(derive);
    MakeProcessor();
  }

  // The events the coordination recorder has in its ledger for the case.
  std::vector<CaseEvent> Ledger() {
    auto events = recorder_->ListEvents(kSubject, 0, 100);
    EXPECT_THAT(events, IsOk());
    return events.ok() ? *events : std::vector<CaseEvent>();
  }

  std::vector<std::string> HistoryIds() {
    auto history = store_->History(kSubject);
    EXPECT_THAT(history, IsOk());
    return history.ok() ? EventIds(history->events) : std::vector<std::string>();
  }

  static Record CanonicalRecord(const CaseEvent& event) {
    return kafka::CaseEventRecord(kCanonicalTopic, event);
  }

  size_t PendingCount() {
    auto pending = store_->PendingDeliveries(100);
    EXPECT_THAT(pending, IsOk());
    return pending.ok() ? pending->size() : 0;
  }

  // The topics the publisher has seen, in order.
  std::vector<std::string> PublishedTopics() const {
    std::vector<std::string> topics;
    for (const Record& record : publisher_.records()) topics.push_back(record.topic);
    return topics;
  }

  TempDir dir_;
  FakeClock clock_{absl::FromUnixSeconds(1767261600)};
  std::unique_ptr<CoordinationStore> store_;
  FakeConsumer consumer_;
  MemoryPublisher publisher_;  // the recipient topics
  MemoryPublisher canonical_;  // the canonical topic, for derived events
  std::unique_ptr<EventRecorder> recorder_;
  DeliveryNotifier notifier_;
  DeliveryProcessorOptions options_;
  std::unique_ptr<DeliveryProcessor> processor_;
};

TEST_F(DeliveryProcessorTest, PublishesEachDeliveryToItsRecipientTopicAsACloudEvent) {
  ASSERT_THAT(store_->Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"),
                            clock_.Now()),
              IsOk());
  ASSERT_THAT(processor_->PublishPending(), IsOk());
  ASSERT_THAT(store_->Apply(RoleEvent("r2", ROLE_MENTOR, "mentorhuset"), clock_.Now()), IsOk());
  ASSERT_THAT(processor_->PublishPending(), IsOk());
  const CaseEvent decision = DecisionEvent("d1");

  ASSERT_THAT(processor_->Process(CanonicalRecord(decision)), IsOk());

  const std::vector<Record> records = publisher_.records();
  ASSERT_EQ(records.size(), 5u);
  const Record& to_jobcenter = records[3];
  EXPECT_EQ(to_jobcenter.topic, "party.aarhus-jobcenter");
  EXPECT_EQ(to_jobcenter.key, kSubject);
  EXPECT_EQ(to_jobcenter.HeaderValue("ce_recipient"), "aarhus-jobcenter");
  EXPECT_EQ(to_jobcenter.HeaderValue("ce_recipientseq"), kafka::FormatSequence(3));
  auto decoded = kafka::DecodeCaseEventRecord(to_jobcenter);
  ASSERT_THAT(decoded, IsOk());
  EXPECT_EQ(decoded->SerializeAsString(), decision.SerializeAsString());
  EXPECT_EQ(records[4].topic, "party.mentorhuset");
  EXPECT_EQ(records[4].HeaderValue("ce_recipientseq"), kafka::FormatSequence(2));
  EXPECT_EQ(PendingCount(), 0u);
}

TEST_F(DeliveryProcessorTest, UndecodableRecordIsSkipped) {
  Record garbage;
  garbage.topic = kCanonicalTopic;
  garbage.value = "not a case event";

  EXPECT_THAT(processor_->Process(garbage), IsOk());
  EXPECT_EQ(processor_->stats().undecodable, 1);
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_F(DeliveryProcessorTest, RoleEventForUnknownRecipientIsSkipped) {
  EXPECT_THAT(processor_->Process(CanonicalRecord(RoleEvent("r1", ROLE_MENTOR, "nobody"))), IsOk());

  EXPECT_EQ(processor_->stats().skipped, 1);
  auto parties = store_->ListParties(kSubject);
  ASSERT_THAT(parties, IsOk());
  EXPECT_THAT(*parties, IsEmpty());
}

TEST_F(DeliveryProcessorTest, FailedPublishKeepsTheDeliveryPendingUntilARetrySucceeds) {
  const Record record =
      CanonicalRecord(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  publisher_.FailNext(absl::UnavailableError("broker down"));

  EXPECT_THAT(processor_->Process(record), Not(IsOk()));
  EXPECT_EQ(PendingCount(), 1u);

  EXPECT_THAT(processor_->Process(record), IsOk());
  EXPECT_THAT(PublishedTopics(), ElementsAre("party.aarhus-jobcenter"));
  EXPECT_EQ(PendingCount(), 0u);
}

TEST_F(DeliveryProcessorTest, LeftoverIsPublishedWhenItsRecordComesAgainThenTheBatchCommitted) {
  // A delivery stored but not published before a "crash": its record was not
  // committed, so it comes again.
  ASSERT_THAT(store_->Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"),
                            clock_.Now()),
              IsOk());
  publisher_.FailNext(absl::UnavailableError("broker down"));  // the first attempt fails
  consumer_.Add(CanonicalRecord(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter")));
  consumer_.Add(CanonicalRecord(DecisionEvent("d1")));
  consumer_.Add(CanonicalRecord(DecisionEvent("d2")));
  const uint64_t generation = notifier_.generation();

  processor_->Start();
  // The three records came in one batch: one commit, of the last.
  ASSERT_TRUE(PollUntil(
      [&] {
        const std::vector<int64_t> committed = consumer_.committed_offsets();
        return !committed.empty() && committed.back() == 2;
      },
      absl::Seconds(10)));
  processor_->Stop();

  EXPECT_THAT(consumer_.committed_offsets(), ElementsAre(2));
  std::vector<std::string> sequences;
  for (const Record& record : publisher_.records()) {
    sequences.push_back(*record.HeaderValue("ce_id") + "@" +
                        *record.HeaderValue("ce_recipientseq"));
  }
  EXPECT_THAT(sequences, ElementsAre("r1@" + kafka::FormatSequence(1),
                                     "d1@" + kafka::FormatSequence(2),
                                     "d2@" + kafka::FormatSequence(3)));
  EXPECT_GT(notifier_.generation(), generation);
}

TEST_F(DeliveryProcessorTest, StartDoesNotSweepLeftoversOfRecordsItDoesNotConsume) {
  // A delivery another replica left pending: its record belongs to a
  // partition this instance does not own, so only its owner publishes it.
  ASSERT_THAT(store_->Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"),
                            clock_.Now()),
              IsOk());
  consumer_.Add(CanonicalRecord(DecisionEvent("d1", testing::kOtherSubject)));

  processor_->Start();
  ASSERT_TRUE(PollUntil([&] { return consumer_.committed_offsets().size() == 1; },
                        absl::Seconds(10)));
  processor_->Stop();

  EXPECT_THAT(publisher_.records(), IsEmpty());  // d1's case has no parties
  auto pending = store_->PendingDeliveries(10);
  ASSERT_THAT(pending, IsOk());
  ASSERT_THAT(*pending, SizeIs(1));
  EXPECT_EQ(pending->front().event().id(), "r1");
}

// --- One municipality per instance -----------------------------------------

TEST_F(DeliveryProcessorTest, AnotherMunicipalitysEventIsCountedAndSkipped) {
  ASSERT_THAT(processor_->Process(CanonicalRecord(
                  RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"))),
              IsOk());
  ASSERT_THAT(publisher_.records(), SizeIs(1));
  int derive_calls = 0;
  DeriveWith([&](const CaseHistory&, const CaseEvent&) {
    ++derive_calls;
    return std::vector<DerivedEvent>();
  });

  // Even on a case this instance knows: the municipality decides.
  EXPECT_THAT(processor_->Process(CanonicalRecord(InOdense(DecisionEvent("d1")))), IsOk());
  EXPECT_THAT(processor_->Process(CanonicalRecord(
                  InOdense(RoleEvent("r2", ROLE_MENTOR, "mentorhuset")))),
              IsOk());

  EXPECT_EQ(processor_->stats().other_municipality, 2);
  EXPECT_EQ(derive_calls, 0);
  EXPECT_THAT(publisher_.records(), SizeIs(1));
  EXPECT_THAT(HistoryIds(), ElementsAre("r1"));
  auto parties = store_->ListParties(kSubject);
  ASSERT_THAT(parties, IsOk());
  EXPECT_THAT(*parties, SizeIs(1));
}

TEST_F(DeliveryProcessorTest, EventWithoutSubjectIsSkipped) {
  CaseEvent event = DecisionEvent("d1");
  event.clear_subject();

  EXPECT_THAT(processor_->Process(CanonicalRecord(event)), IsOk());
  EXPECT_EQ(processor_->stats().skipped, 1);
  EXPECT_THAT(Ledger(), IsEmpty());
}

// --- The derived-events hook -------------------------------------------------

TEST_F(DeliveryProcessorTest, WithTheBuiltInRulesAPlainDecisionRecordsNothing) {
  ASSERT_THAT(processor_->Process(CanonicalRecord(
                  RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"))),
              IsOk());

  ASSERT_THAT(processor_->Process(CanonicalRecord(DecisionEvent("d1"))), IsOk());

  EXPECT_THAT(Ledger(), IsEmpty());
  EXPECT_THAT(canonical_.records(), IsEmpty());
  EXPECT_EQ(processor_->stats().derived_recorded, 0);
}

TEST_F(DeliveryProcessorTest, RulesSeeTheHistoryWithTheEventLastAndTheHoldersAfterIt) {
  std::vector<std::vector<std::string>> seen_events;
  std::vector<std::vector<std::string>> seen_holders;
  DeriveWith([&](const CaseHistory& history, const CaseEvent& event) {
    EXPECT_EQ(history.subject, kSubject);
    EXPECT_EQ(history.events.back().id(), event.id());
    seen_events.push_back(EventIds(history.events));
    std::vector<std::string> holders;
    for (const auto& party : history.holders) holders.push_back(party.recipient());
    seen_holders.push_back(holders);
    return std::vector<DerivedEvent>();
  });

  ASSERT_THAT(processor_->Process(CanonicalRecord(
                  RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"))),
              IsOk());
  ASSERT_THAT(processor_->Process(CanonicalRecord(RoleEvent("r2", ROLE_MENTOR, "mentorhuset"))),
              IsOk());
  ASSERT_THAT(processor_->Process(CanonicalRecord(DecisionEvent("d1"))), IsOk());

  EXPECT_THAT(seen_events, ElementsAre(ElementsAre("r1"), ElementsAre("r1", "r2"),
                                       ElementsAre("r1", "r2", "d1")));
  EXPECT_THAT(seen_holders,
              ElementsAre(ElementsAre("aarhus-jobcenter"),
                          ElementsAre("aarhus-jobcenter", "mentorhuset"),
                          ElementsAre("aarhus-jobcenter", "mentorhuset")));
}

TEST_F(DeliveryProcessorTest, DerivedEventsGoToTheCanonicalTopicBeforeTheEventIsApplied) {
  DeriveWith([&](const CaseHistory&, const CaseEvent& event) {
    auto applied = store_->IsApplied(event.id());
    EXPECT_THAT(applied, IsOk());
    EXPECT_FALSE(applied.ok() && *applied);
    if (!event.has_decision()) return std::vector<DerivedEvent>();
    return std::vector<DerivedEvent>{ReplanningFor(event)};
  });
  ASSERT_THAT(processor_->Process(CanonicalRecord(
                  RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"))),
              IsOk());

  ASSERT_THAT(processor_->Process(CanonicalRecord(DecisionEvent("d1"))), IsOk());

  ASSERT_THAT(canonical_.records(), SizeIs(1));
  EXPECT_EQ(canonical_.records()[0].topic, kCanonicalTopic);
  EXPECT_EQ(canonical_.records()[0].key, kSubject);
  auto derived = kafka::DecodeCaseEventRecord(canonical_.records()[0]);
  ASSERT_THAT(derived, IsOk());
  EXPECT_EQ(derived->type(), "dk.casebridge.plan.replanning-needed.v1");
  EXPECT_EQ(derived->source(), "/casebridge/coordination/0751");
  EXPECT_EQ(derived->municipality(), "0751");
  EXPECT_EQ(derived->idempotency_key(), "replanning:d1");
  EXPECT_EQ(derived->replanning().trigger_event_id(), "d1");
  EXPECT_EQ(derived->sensitivity(), events::v1::SENSITIVITY_ORDINARY);
  EXPECT_EQ(processor_->stats().derived_recorded, 1);
  // The decision itself was delivered as usual.
  EXPECT_THAT(HistoryIds(), ElementsAre("r1", "d1"));
  EXPECT_THAT(publisher_.records(), SizeIs(2));
}

TEST_F(DeliveryProcessorTest, DerivingAgainAfterAFailureRecordsNothingTwice) {
  int derive_calls = 0;
  DeriveWith([&](const CaseHistory&, const CaseEvent& event) {
    ++derive_calls;
    return std::vector<DerivedEvent>{ReplanningFor(event)};
  });
  const Record decision = CanonicalRecord(DecisionEvent("d1"));
  canonical_.FailNext(absl::UnavailableError("broker down"));

  // The derived event is in the ledger but not durable: the decision is not
  // applied and the record not committable.
  EXPECT_THAT(processor_->Process(decision), Not(IsOk()));
  EXPECT_THAT(HistoryIds(), IsEmpty());

  ASSERT_THAT(processor_->Process(decision), IsOk());

  EXPECT_EQ(derive_calls, 2);
  EXPECT_THAT(Ledger(), SizeIs(1));
  EXPECT_THAT(canonical_.records(), SizeIs(1));
  EXPECT_THAT(HistoryIds(), ElementsAre("d1"));
}

TEST_F(DeliveryProcessorTest, EventConsumedAgainIsNotDerivedFromAgain) {
  int derive_calls = 0;
  DeriveWith([&](const CaseHistory&, const CaseEvent& event) {
    ++derive_calls;
    return std::vector<DerivedEvent>{ReplanningFor(event)};
  });
  const Record decision = CanonicalRecord(DecisionEvent("d1"));
  ASSERT_THAT(processor_->Process(decision), IsOk());

  ASSERT_THAT(processor_->Process(decision), IsOk());

  EXPECT_EQ(derive_calls, 1);
  EXPECT_THAT(canonical_.records(), SizeIs(1));
}

TEST_F(DeliveryProcessorTest, UnrecordableDerivedEventDoesNotBlockDelivery) {
  DeriveWith([&](const CaseHistory&, const CaseEvent& event) {
    DerivedEvent bad_key = ReplanningFor(event);
    bad_key.idempotency_key = "not a key";
    DerivedEvent no_state;
    no_state.idempotency_key = "task:" + event.id();
    no_state.event.mutable_task();  // no state: no event type
    return std::vector<DerivedEvent>{bad_key, no_state, ReplanningFor(event)};
  });
  ASSERT_THAT(processor_->Process(CanonicalRecord(
                  RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"))),
              IsOk());

  EXPECT_THAT(processor_->Process(CanonicalRecord(DecisionEvent("d1"))), IsOk());

  // Each event of the case yields one good replanning flag.
  EXPECT_THAT(Ledger(), SizeIs(2));
  EXPECT_THAT(HistoryIds(), ElementsAre("r1", "d1"));
  EXPECT_THAT(publisher_.records(), SizeIs(2));
}

TEST_F(DeliveryProcessorTest, PoisonRecordsGoToTheDeadLetterTopicWithTheirReasonAndSource) {
  options_.dead_letter_topic = "dead-letters";
  MakeProcessor();
  Record garbage;
  garbage.topic = kCanonicalTopic;
  garbage.partition = 2;
  garbage.offset = 41;
  garbage.key = "k";
  garbage.value = "not a case event";
  garbage.headers = {{"content-type", "application/protobuf"}};
  const Record unknown_recipient = CanonicalRecord(RoleEvent("r1", ROLE_MENTOR, "nobody"));

  ASSERT_THAT(processor_->Process(garbage), IsOk());
  ASSERT_THAT(processor_->Process(unknown_recipient), IsOk());

  ASSERT_THAT(publisher_.records(), SizeIs(2));
  const Record first = publisher_.records()[0];
  EXPECT_EQ(first.topic, "dead-letters");
  EXPECT_EQ(first.key, "k");
  EXPECT_EQ(first.value, "not a case event");  // the original bytes, untouched
  EXPECT_EQ(first.HeaderValue("content-type"), "application/protobuf");
  EXPECT_THAT(first.HeaderValue(kDeadLetterReasonHeader).value_or(""), Not(IsEmpty()));
  EXPECT_EQ(first.HeaderValue(kDeadLetterSourceHeader), kCanonicalTopic + std::string("/2/41"));
  EXPECT_EQ(first.HeaderValue(kDeadLetterConsumerHeader), "coordination-0751");
  EXPECT_EQ(publisher_.records()[1].HeaderValue(kDeadLetterReasonHeader),
            "role event for a recipient that is not configured");
  EXPECT_EQ(processor_->stats().dead_lettered, 2);
}

TEST_F(DeliveryProcessorTest, APoisonRecordIsNotCommittedUntilItsDeadLetterCopyIsDurable) {
  options_.dead_letter_topic = "dead-letters";
  MakeProcessor();
  Record garbage;
  garbage.topic = kCanonicalTopic;
  garbage.value = "not a case event";
  publisher_.FailNext(absl::UnavailableError("broker down"));

  EXPECT_THAT(processor_->Process(garbage), Not(IsOk()));  // retried, not skipped
  EXPECT_EQ(processor_->stats().dead_lettered, 0);
  EXPECT_THAT(processor_->Process(garbage), IsOk());
  EXPECT_EQ(processor_->stats().dead_lettered, 1);
}

// A batch: ordinary events are applied together, while a role event, a
// referral (the case rules may derive from both) and a poison record end the
// run and go alone, in their place; a record repeated in the batch yields
// nothing twice. Every delivery carries the next case sequence, in order.
TEST_F(DeliveryProcessorTest, ABatchKeepsTheOrderAroundRecordsThatGoAlone) {
  options_.dead_letter_topic = "dead-letters";
  MakeProcessor();
  Record garbage;
  garbage.topic = kCanonicalTopic;
  garbage.value = "not a case event";
  const std::vector<Record> batch = {
      CanonicalRecord(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter")),
      CanonicalRecord(DecisionEvent("d1")),
      CanonicalRecord(DecisionEvent("d2")),
      garbage,
      CanonicalRecord(testing::ReferralEvent("f1")),
      CanonicalRecord(DecisionEvent("d3")),
      CanonicalRecord(DecisionEvent("d3")),
      CanonicalRecord(DecisionEvent("d4")),
  };

  ASSERT_THAT(processor_->ProcessBatch(batch), IsOk());

  std::vector<std::string> delivered;
  for (const Record& record : publisher_.records()) {
    if (record.topic == "dead-letters") {
      delivered.push_back("dead-letter");
      continue;
    }
    EXPECT_EQ(record.topic, "party.aarhus-jobcenter");
    delivered.push_back(*record.HeaderValue("ce_id") + "@" +
                        *record.HeaderValue("ce_recipientseq"));
  }
  EXPECT_THAT(delivered,
              ElementsAre("r1@" + kafka::FormatSequence(1), "d1@" + kafka::FormatSequence(2),
                          "d2@" + kafka::FormatSequence(3), "dead-letter",
                          "f1@" + kafka::FormatSequence(4), "d3@" + kafka::FormatSequence(5),
                          "d4@" + kafka::FormatSequence(6)));
  EXPECT_THAT(HistoryIds(), ElementsAre("r1", "d1", "d2", "f1", "d3", "d4"));
  EXPECT_EQ(PendingCount(), 0u);

  // Consumed again (a crash before the commit): no delivery a second time.
  const size_t before = publisher_.records().size();
  ASSERT_THAT(processor_->ProcessBatch(batch), IsOk());
  for (size_t i = before; i < publisher_.records().size(); ++i) {
    EXPECT_EQ(publisher_.records()[i].topic, "dead-letters");
  }
}

// A batch whose publishing fails is handled again as a whole and yields each
// delivery once, in order.
TEST_F(DeliveryProcessorTest, AFailedBatchIsHandledAgainAndDeliversEachEventOnce) {
  ASSERT_THAT(processor_->Process(
                  CanonicalRecord(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"))),
              IsOk());
  const std::vector<Record> batch = {CanonicalRecord(DecisionEvent("d1")),
                                     CanonicalRecord(DecisionEvent("d2")),
                                     CanonicalRecord(DecisionEvent("d3"))};
  // The broker is away: the whole batch's sends fail (the idempotent
  // producer fails a partition's later records with an earlier one).
  for (int i = 0; i < 3; ++i) publisher_.FailNext(absl::UnavailableError("broker down"));

  EXPECT_THAT(processor_->ProcessBatch(batch), Not(IsOk()));
  EXPECT_EQ(PendingCount(), 3u);
  ASSERT_THAT(processor_->ProcessBatch(batch), IsOk());

  std::vector<std::string> delivered;
  for (const Record& record : publisher_.records()) {
    delivered.push_back(*record.HeaderValue("ce_id") + "@" +
                        *record.HeaderValue("ce_recipientseq"));
  }
  EXPECT_THAT(delivered,
              ElementsAre("r1@" + kafka::FormatSequence(1), "d1@" + kafka::FormatSequence(2),
                          "d2@" + kafka::FormatSequence(3), "d3@" + kafka::FormatSequence(4)));
  EXPECT_EQ(PendingCount(), 0u);
  EXPECT_EQ(processor_->stats().publish_failures, 1);
}

// --- W3C trace context (docs/adr/0022-w3c-trace-context.md) ----------------

constexpr char kCallerTraceparent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr char kCallerTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kCallerParentId[] = "00f067aa0ba902b7";

// `event`'s canonical record as the recorder publishes it in the caller's
// trace.
Record TracedRecord(const CaseEvent& event, const std::string& traceparent = kCallerTraceparent,
                    const std::string& tracestate = "congo=t61rcWkgMzE") {
  return kafka::CaseEventRecord(kCanonicalTopic, event,
                                *TraceContext::Parse(traceparent, tracestate));
}

class DeliveryProcessorTraceTest : public DeliveryProcessorTest {
 protected:
  void SetUp() override {
    DeliveryProcessorTest::SetUp();
    options_.audit = &audit_;
    MakeProcessor();
    ASSERT_THAT(processor_->Process(CanonicalRecord(
                    RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"))),
                IsOk());
    ASSERT_THAT(processor_->Process(CanonicalRecord(RoleEvent("r2", ROLE_MENTOR, "mentorhuset"))),
                IsOk());
    publisher_.Clear();
    audit_publisher_.Clear();
  }

  MemoryPublisher audit_publisher_;
  AuditLog audit_{audit_publisher_, "audit", "0751", "/casebridge/coordination/0751"};
};

TEST_F(DeliveryProcessorTraceTest, DeliveriesAndTheirAuditRecordsCarryTheHopsSpanOfTheTrace) {
  ASSERT_THAT(processor_->Process(TracedRecord(DecisionEvent("d1"))), IsOk());

  ASSERT_THAT(publisher_.records(), SizeIs(2));
  ASSERT_THAT(audit_publisher_.records(), SizeIs(2));
  const TraceContext hop = kafka::TraceContextOf(publisher_.records()[0]);
  EXPECT_EQ(hop.trace_id(), kCallerTraceId);
  EXPECT_NE(hop.parent_id(), kCallerParentId);  // coordination's own span
  EXPECT_EQ(hop.flags(), 0x01);
  EXPECT_EQ(hop.tracestate(), "congo=t61rcWkgMzE");
  for (const Record& record : publisher_.records()) {
    EXPECT_EQ(record.HeaderValue("traceparent"), hop.traceparent()) << record.topic;
    EXPECT_EQ(record.HeaderValue("ce_traceparent"), hop.traceparent()) << record.topic;
    EXPECT_EQ(record.HeaderValue("tracestate"), "congo=t61rcWkgMzE") << record.topic;
  }
  for (const Record& record : audit_publisher_.records()) {
    EXPECT_EQ(kafka::TraceContextOf(record), hop) << *record.HeaderValue("ce_id");
  }
}

TEST_F(DeliveryProcessorTraceTest, ARecordWithoutATraceGetsANewOneForItsDeliveries) {
  ASSERT_THAT(processor_->Process(CanonicalRecord(DecisionEvent("d1"))), IsOk());
  ASSERT_THAT(publisher_.records(), SizeIs(2));
  const TraceContext hop = kafka::TraceContextOf(publisher_.records()[0]);
  EXPECT_TRUE(hop.valid());
  EXPECT_EQ(kafka::TraceContextOf(publisher_.records()[1]), hop);
  EXPECT_EQ(kafka::TraceContextOf(audit_publisher_.records()[0]), hop);
}

TEST_F(DeliveryProcessorTraceTest, AnInvalidTraceparentIsIgnoredNotAnError) {
  Record record = CanonicalRecord(DecisionEvent("d1"));
  record.headers.push_back(
      {"traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"});
  record.headers.push_back({"tracestate", "congo=t61rcWkgMzE"});
  ASSERT_THAT(processor_->Process(record), IsOk());
  ASSERT_THAT(publisher_.records(), SizeIs(2));
  const TraceContext hop = kafka::TraceContextOf(publisher_.records()[0]);
  EXPECT_TRUE(hop.valid());
  EXPECT_NE(hop.trace_id(), "00000000000000000000000000000000");
  EXPECT_EQ(hop.tracestate(), "");  // not carried without a valid traceparent
}

TEST_F(DeliveryProcessorTraceTest, EachEventOfABatchKeepsItsOwnTrace) {
  const std::string other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
  ASSERT_THAT(processor_->ProcessBatch({TracedRecord(DecisionEvent("d1")),
                                        TracedRecord(DecisionEvent("d2"), other, "")}),
              IsOk());
  std::vector<std::string> traces;
  for (const Record& record : publisher_.records()) {
    const TraceContext trace = kafka::TraceContextOf(record);
    traces.push_back(*record.HeaderValue("ce_id") + ":" + trace.trace_id() + ":" +
                     std::to_string(trace.flags()));
  }
  EXPECT_THAT(traces, ElementsAre("d1:4bf92f3577b34da6a3ce929d0e0e4736:1",
                                  "d1:4bf92f3577b34da6a3ce929d0e0e4736:1",
                                  "d2:0af7651916cd43dd8448eb211c80319c:0",
                                  "d2:0af7651916cd43dd8448eb211c80319c:0"));
}

TEST_F(DeliveryProcessorTraceTest, ADeliveryPublishedLaterKeepsTheTraceItWasStoredWith) {
  const Record record = TracedRecord(DecisionEvent("d1"));
  publisher_.FailNext(absl::UnavailableError("broker down"));
  EXPECT_THAT(processor_->Process(record), Not(IsOk()));
  std::vector<TraceContext> stored;
  auto pending = store_->PendingDeliveries(10, &stored);
  ASSERT_THAT(pending, IsOk());
  ASSERT_THAT(stored, SizeIs(1));
  EXPECT_EQ(stored[0].trace_id(), kCallerTraceId);

  // Consumed again (after a crash, or by the replica that took over): the
  // stored span goes out, not a new one.
  publisher_.Clear();
  ASSERT_THAT(processor_->Process(record), IsOk());
  ASSERT_THAT(publisher_.records(), SizeIs(1));
  EXPECT_EQ(kafka::TraceContextOf(publisher_.records()[0]), stored[0]);
}

TEST_F(DeliveryProcessorTraceTest, PublishPendingSendsTheStoredTrace) {
  const TraceContext span = TraceContext::NewRoot();
  ASSERT_THAT(store_->Apply(DecisionEvent("d1"), clock_.Now(), span), IsOk());
  ASSERT_THAT(processor_->PublishPending(), IsOk());
  ASSERT_THAT(publisher_.records(), SizeIs(2));
  EXPECT_EQ(kafka::TraceContextOf(publisher_.records()[0]), span);
  EXPECT_EQ(kafka::TraceContextOf(audit_publisher_.records()[1]), span);
}

TEST_F(DeliveryProcessorTraceTest, DerivedEventsContinueTheTraceOfTheirEvent) {
  DeriveWith([&](const CaseHistory&, const CaseEvent& event) {
    if (!event.has_decision()) return std::vector<DerivedEvent>();
    return std::vector<DerivedEvent>{ReplanningFor(event)};
  });
  ASSERT_THAT(processor_->Process(TracedRecord(DecisionEvent("d1"))), IsOk());
  ASSERT_THAT(canonical_.records(), SizeIs(1));
  const TraceContext derived = kafka::TraceContextOf(canonical_.records()[0]);
  EXPECT_EQ(derived.trace_id(), kCallerTraceId);
  EXPECT_NE(derived.parent_id(), kCallerParentId);
  EXPECT_EQ(derived.tracestate(), "congo=t61rcWkgMzE");
  // Recorded in the hop that delivered the decision.
  ASSERT_THAT(publisher_.records(), SizeIs(2));
  EXPECT_EQ(derived, kafka::TraceContextOf(publisher_.records()[0]));
}

TEST_F(DeliveryProcessorTraceTest, ADeadLetterCopyKeepsTheTraceHeaders) {
  options_.dead_letter_topic = "dead-letters";
  MakeProcessor();
  Record poison = TracedRecord(RoleEvent("r3", ROLE_MENTOR, "nobody"));
  ASSERT_THAT(processor_->Process(poison), IsOk());
  ASSERT_THAT(publisher_.records(), SizeIs(1));
  const Record copy = publisher_.records()[0];
  EXPECT_EQ(copy.topic, "dead-letters");
  EXPECT_EQ(copy.HeaderValue("traceparent"), kCallerTraceparent);
  EXPECT_EQ(copy.HeaderValue("ce_traceparent"), kCallerTraceparent);
  EXPECT_EQ(copy.HeaderValue("tracestate"), "congo=t61rcWkgMzE");
}

}  // namespace
}  // namespace casebridge::coordination
