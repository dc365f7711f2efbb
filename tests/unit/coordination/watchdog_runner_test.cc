#include "services/coordination/watchdog_runner.h"

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/clock.h"
#include "services/common/event_recorder.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/kafka/memory_publisher.h"
#include "services/coordination/derived_events.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"
#include "tests/unit/coordination/test_events.h"

namespace casebridge::coordination {
namespace {

using ::casebridge::coordination::testing::DecisionEvent;
using ::casebridge::coordination::testing::kOtherSubject;
using ::casebridge::coordination::testing::kSubject;
using ::casebridge::events::v1::CaseEvent;
using ::casebridge::kafka::MemoryPublisher;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::PollUntil;
using ::casebridge::testing::StatusIs;
using ::casebridge::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::SizeIs;

const absl::Time kNow = absl::FromUnixSeconds(1767261600);  // 2026-01-01 10:00 UTC

// A "no contact" alert for the case, keyed by the case and the day.
DerivedEvent NoContactAlert(const CaseHistory& history, absl::Time now) {
  DerivedEvent alert;
  alert.idempotency_key = "no-contact:" + history.subject.substr(0, 8) + ":" +
                          std::to_string(absl::ToUnixSeconds(now) / 86400);
  alert.event.mutable_watchdog_alert()->set_kind(events::v1::WATCHDOG_KIND_NO_CONTACT);
  alert.event.mutable_watchdog_alert()->set_threshold_days(30);
  return alert;
}

class WatchdogRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = CoordinationStore::Open(dir_.File("coordination.db"));
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    RecorderOptions options;
    options.topic = "casebridge.case-events.v1";
    options.system = "coordination";
    options.source_system = events::v1::SOURCE_SYSTEM_COORDINATION;
    options.municipality = "0751";
    options.delivery_timeout = absl::Milliseconds(100);
    auto recorder =
        EventRecorder::Create(dir_.File("coordination.db.ledger"), options, canonical_, clock_);
    ASSERT_THAT(recorder, IsOk());
    recorder_ = *std::move(recorder);
    ASSERT_THAT(store_->Apply(DecisionEvent("d1", kSubject), kNow), IsOk());
    ASSERT_THAT(store_->Apply(DecisionEvent("d2", kOtherSubject), kNow), IsOk());
  }

  // A runner whose watchdogs report `NoContactAlert` for every case and note
  // what they were asked.
  std::unique_ptr<WatchdogRunner> RunnerReportingNoContact(
      absl::Duration interval = absl::Hours(1)) {
    return std::make_unique<WatchdogRunner>(
        *store_, *recorder_, config::v1::WatchdogConfig(), interval, clock_,
        [this](const CaseHistory& history, absl::Time now) {
          std::lock_guard<std::mutex> lock(mu_);
          checked_.emplace_back(history.subject, now);
          return std::vector<DerivedEvent>{NoContactAlert(history, now)};
        });
  }

  std::vector<std::pair<std::string, absl::Time>> checked() {
    std::lock_guard<std::mutex> lock(mu_);
    return checked_;
  }

  std::vector<CaseEvent> Published() {
    std::vector<CaseEvent> events;
    for (const kafka::Record& record : canonical_.records()) {
      auto event = kafka::DecodeCaseEventRecord(record);
      EXPECT_THAT(event, IsOk());
      if (event.ok()) events.push_back(*event);
    }
    return events;
  }

  TempDir dir_;
  FakeClock clock_{kNow};
  MemoryPublisher canonical_;
  std::unique_ptr<CoordinationStore> store_;
  std::unique_ptr<EventRecorder> recorder_;
  std::mutex mu_;
  std::vector<std::pair<std::string, absl::Time>> checked_;  // guarded by mu_
};

TEST_F(WatchdogRunnerTest, RunOnceChecksEveryCaseAtTheClocksTimeAndRecordsTheAlerts) {
  auto runner = RunnerReportingNoContact();
  clock_.Advance(absl::Hours(24 * 31));

  auto recorded = runner->RunOnce();

  ASSERT_THAT(recorded, IsOk());
  EXPECT_EQ(*recorded, 2);
  EXPECT_THAT(checked(),
              ElementsAre(Pair(kSubject, clock_.Now()), Pair(kOtherSubject, clock_.Now())));
  const std::vector<CaseEvent> published = Published();
  ASSERT_THAT(published, SizeIs(2));
  EXPECT_EQ(published[0].type(), "dk.casebridge.watchdog.no-contact.v1");
  EXPECT_EQ(published[0].subject(), kSubject);
  EXPECT_EQ(published[0].source(), "/casebridge/coordination/0751");
  EXPECT_EQ(published[0].recorded_at().seconds(), absl::ToUnixSeconds(clock_.Now()));
  EXPECT_EQ(published[1].subject(), kOtherSubject);
}

TEST_F(WatchdogRunnerTest, TheSameSituationIsReportedOnce) {
  auto runner = RunnerReportingNoContact();
  ASSERT_THAT(runner->RunOnce(), IsOk());

  clock_.Advance(absl::Minutes(1));  // the same day: the same keys
  auto again = runner->RunOnce();

  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(*again, 0);
  EXPECT_THAT(canonical_.records(), SizeIs(2));

  clock_.Advance(absl::Hours(24));  // a new day: a new situation
  auto next_day = runner->RunOnce();
  ASSERT_THAT(next_day, IsOk());
  EXPECT_EQ(*next_day, 2);
}

TEST_F(WatchdogRunnerTest, AFailingCaseDoesNotStopTheOthersAndIsRetriedNextRun) {
  auto runner = RunnerReportingNoContact();
  canonical_.FailNext(absl::UnavailableError("broker down"));

  EXPECT_THAT(runner->RunOnce(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(canonical_.records(), SizeIs(1));

  auto retried = runner->RunOnce();
  ASSERT_THAT(retried, IsOk());
  EXPECT_THAT(canonical_.records(), SizeIs(2));
}

TEST_F(WatchdogRunnerTest, WatchdogsThatAreOffRecordNothing) {
  // The built-in rules with every threshold 0.
  WatchdogRunner runner(*store_, *recorder_, config::v1::WatchdogConfig(), absl::Hours(1), clock_);
  clock_.Advance(absl::Hours(24 * 400));

  auto recorded = runner.RunOnce();

  ASSERT_THAT(recorded, IsOk());
  EXPECT_EQ(*recorded, 0);
  EXPECT_THAT(canonical_.records(), IsEmpty());
}

TEST_F(WatchdogRunnerTest, StartedRunnerRunsOnItsIntervalUntilStopped) {
  auto runner = RunnerReportingNoContact(absl::Milliseconds(10));

  runner->Start();
  ASSERT_TRUE(PollUntil([&] { return checked().size() >= 4; }, absl::Seconds(10)));
  runner->Stop();

  const size_t after_stop = checked().size();
  EXPECT_THAT(canonical_.records(), SizeIs(2));  // every run after the first replays
  runner->Stop();                                // idempotent
  EXPECT_EQ(checked().size(), after_stop);
}

// --- RecordDerivedEvents -------------------------------------------------------

TEST_F(WatchdogRunnerTest, DerivedEventWithTheSameKeyButNewerContentIsReplayedNotRefused) {
  CaseHistory history;
  history.subject = kSubject;
  DerivedEvent first = NoContactAlert(history, kNow);
  DerivedEvent later = first;
  later.event.mutable_watchdog_alert()->set_threshold_days(31);

  ASSERT_THAT(RecordDerivedEvents(*recorder_, kSubject, {first}), IsOk());
  auto again = RecordDerivedEvents(*recorder_, kSubject, {later});

  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(*again, 0);
  ASSERT_THAT(Published(), SizeIs(1));
  EXPECT_EQ(Published()[0].watchdog_alert().threshold_days(), 30);
}

TEST_F(WatchdogRunnerTest, EachFiringStartsANewTrace) {
  auto runner = RunnerReportingNoContact();
  clock_.Advance(absl::Hours(24 * 31));
  ASSERT_THAT(runner->RunOnce(), IsOk());
  ASSERT_THAT(canonical_.records(), SizeIs(2));
  const TraceContext first = kafka::TraceContextOf(canonical_.records()[0]);
  const TraceContext second = kafka::TraceContextOf(canonical_.records()[1]);
  EXPECT_TRUE(first.valid());
  EXPECT_TRUE(second.valid());
  EXPECT_NE(first.trace_id(), second.trace_id());
}

}  // namespace
}  // namespace casebridge::coordination
