#include "services/coordination/timeline.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/coordination/test_events.h"

namespace casebridge::coordination {
namespace {

using ::casebridge::coordination::testing::AppointmentEvent;
using ::casebridge::coordination::testing::At;
using ::casebridge::coordination::testing::CancellationOf;
using ::casebridge::coordination::testing::CorrectionOf;
using ::casebridge::coordination::testing::DecisionEvent;
using ::casebridge::coordination::testing::ReferralEvent;
using ::casebridge::coordination::v1::TimelineEntry;
using ::casebridge::events::v1::CaseEvent;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kDay1 = absl::FromUnixSeconds(1767261600);  // 2026-01-01 10:00 UTC
const absl::Time kDay2 = kDay1 + absl::Hours(24);
const absl::Time kDay3 = kDay2 + absl::Hours(24);
const absl::Time kDay4 = kDay3 + absl::Hours(24);

// "id" for a current entry, "id>newest" for a superseded one.
std::vector<std::string> Describe(const std::vector<TimelineEntry>& entries) {
  std::vector<std::string> described;
  for (const TimelineEntry& entry : entries) {
    EXPECT_EQ(entry.current(), entry.superseded_by().empty());
    described.push_back(entry.current() ? entry.event().id()
                                        : entry.event().id() + ">" + entry.superseded_by());
  }
  return described;
}

TEST(TimelineTest, OrdersEventsFromEverySourceByWhenTheyHappened) {
  // Consumed in another order than they happened.
  const std::vector<CaseEvent> events = {At(DecisionEvent("jobcentre"), kDay3),
                                         At(AppointmentEvent("health"), kDay1),
                                         At(ReferralEvent("social"), kDay2)};

  EXPECT_THAT(Describe(BuildTimeline(events, false)), ElementsAre("health", "social", "jobcentre"));
}

TEST(TimelineTest, SameOccurredAtIsOrderedByRecordedAtThenId) {
  const std::vector<CaseEvent> events = {At(DecisionEvent("b"), kDay1, kDay2),
                                         At(DecisionEvent("c"), kDay1, kDay1),
                                         At(DecisionEvent("a"), kDay1, kDay2)};

  EXPECT_THAT(Describe(BuildTimeline(events, false)), ElementsAre("c", "a", "b"));
}

TEST(TimelineTest, CorrectedEventIsHiddenUnlessSupersededAreIncluded) {
  const std::vector<CaseEvent> events = {At(DecisionEvent("d1"), kDay1),
                                         At(AppointmentEvent("a1"), kDay2),
                                         At(CorrectionOf("d1", "d2"), kDay3)};

  EXPECT_THAT(Describe(BuildTimeline(events, false)), ElementsAre("a1", "d2"));
  EXPECT_THAT(Describe(BuildTimeline(events, true)), ElementsAre("d1>d2", "a1", "d2"));
}

TEST(TimelineTest, CorrectionChainResolvesToTheNewest) {
  const std::vector<CaseEvent> events = {At(DecisionEvent("d1"), kDay1),
                                         At(CorrectionOf("d1", "d2"), kDay2),
                                         At(CorrectionOf("d2", "d3"), kDay3)};

  EXPECT_THAT(Describe(BuildTimeline(events, true)), ElementsAre("d1>d3", "d2>d3", "d3"));
  EXPECT_THAT(Describe(BuildTimeline(events, false)), ElementsAre("d3"));
}

TEST(TimelineTest, CancellationIsCurrentAndItsTargetIsNot) {
  const std::vector<CaseEvent> events = {At(AppointmentEvent("a1"), kDay1),
                                         At(CancellationOf("a1", "c1"), kDay2)};

  EXPECT_THAT(Describe(BuildTimeline(events, false)), ElementsAre("c1"));
  EXPECT_THAT(Describe(BuildTimeline(events, true)), ElementsAre("a1>c1", "c1"));
}

TEST(TimelineTest, CancellingACorrectionSupersedesTheWholeChain) {
  const std::vector<CaseEvent> events = {At(DecisionEvent("d1"), kDay1),
                                         At(CorrectionOf("d1", "d2"), kDay2),
                                         At(CancellationOf("d2", "c1"), kDay3)};

  EXPECT_THAT(Describe(BuildTimeline(events, true)), ElementsAre("d1>c1", "d2>c1", "c1"));
}

TEST(TimelineTest, OfTwoCorrectionsOfOneEventTheLaterSupersedesBoth) {
  const std::vector<CaseEvent> events = {At(DecisionEvent("d1"), kDay1),
                                         At(CorrectionOf("d1", "d3"), kDay3),
                                         At(CorrectionOf("d1", "d2"), kDay2)};

  EXPECT_THAT(Describe(BuildTimeline(events, true)), ElementsAre("d1>d3", "d2>d3", "d3"));
}

TEST(TimelineTest, SupersessionOfAnUnknownEventChangesNothing) {
  const std::vector<CaseEvent> events = {At(DecisionEvent("d1"), kDay1),
                                         At(CorrectionOf("elsewhere", "d2"), kDay2)};

  EXPECT_THAT(Describe(BuildTimeline(events, false)), ElementsAre("d1", "d2"));
}

TEST(TimelineTest, EntriesCarryTheWholeEvent) {
  const CaseEvent event = At(ReferralEvent("r1"), kDay4);

  const std::vector<TimelineEntry> entries = BuildTimeline({event}, false);

  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].event().SerializeAsString(), event.SerializeAsString());
  EXPECT_THAT(BuildTimeline({}, true), IsEmpty());
}

}  // namespace
}  // namespace casebridge::coordination
