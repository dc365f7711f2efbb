#include "services/coordination/delivery_processor.h"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/clock.h"
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

class DeliveryProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = CoordinationStore::Open(dir_.File("coordination.db"));
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    DeliveryProcessorOptions options;
    options.recipient_topics = {{"aarhus-jobcenter", "party.aarhus-jobcenter"},
                                {"mentorhuset", "party.mentorhuset"}};
    options.poll_timeout = absl::Milliseconds(20);
    options.initial_backoff = absl::Milliseconds(1);
    options.max_backoff = absl::Milliseconds(5);
    processor_ = std::make_unique<DeliveryProcessor>(*store_, consumer_, publisher_, notifier_,
                                                     options, clock_);
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
  MemoryPublisher publisher_;
  DeliveryNotifier notifier_;
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

TEST_F(DeliveryProcessorTest, RunningProcessorPublishesLeftoversFirstThenCommitsEachRecord) {
  // A delivery stored but not published before a "crash".
  ASSERT_THAT(store_->Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"),
                            clock_.Now()),
              IsOk());
  publisher_.FailNext(absl::UnavailableError("broker down"));  // the first attempt fails
  consumer_.Add(CanonicalRecord(DecisionEvent("d1")));
  consumer_.Add(CanonicalRecord(DecisionEvent("d2")));
  const uint64_t generation = notifier_.generation();

  processor_->Start();
  ASSERT_TRUE(PollUntil([&] { return consumer_.committed_offsets().size() == 2; },
                        absl::Seconds(10)));
  processor_->Stop();

  EXPECT_THAT(consumer_.committed_offsets(), ElementsAre(0, 1));
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

}  // namespace
}  // namespace casebridge::coordination
