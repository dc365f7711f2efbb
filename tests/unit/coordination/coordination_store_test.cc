#include "services/coordination/coordination_store.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"
#include "tests/unit/coordination/test_events.h"

namespace casebridge::coordination {
namespace {

using ::casebridge::common::v1::ROLE_COORDINATING_CASEWORKER;
using ::casebridge::common::v1::ROLE_MENTOR;
using ::casebridge::coordination::testing::DecisionEvent;
using ::casebridge::coordination::testing::kOtherSubject;
using ::casebridge::coordination::testing::kSubject;
using ::casebridge::coordination::testing::RoleEvent;
using ::casebridge::coordination::v1::Delivery;
using ::casebridge::coordination::v1::Party;
using ::casebridge::events::v1::CaseEvent;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kNow = absl::FromUnixSeconds(1767261600);  // 2026-01-01 10:00 UTC

// "recipient/stream_sequence/case_sequence/event id": one string per
// delivery, so expectations read as a table.
std::string Describe(const Delivery& delivery) {
  return delivery.recipient() + "/" + std::to_string(delivery.stream_sequence()) + "/" +
         std::to_string(delivery.case_sequence()) + "/" + delivery.event().id();
}

std::vector<std::string> Describe(const std::vector<Delivery>& deliveries) {
  std::vector<std::string> described;
  for (const Delivery& delivery : deliveries) described.push_back(Describe(delivery));
  return described;
}

std::vector<std::string> Recipients(const std::vector<Party>& parties) {
  std::vector<std::string> recipients;
  for (const Party& party : parties) recipients.push_back(party.recipient());
  return recipients;
}

class CoordinationStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    store_.reset();
    auto store = CoordinationStore::Open(dir_.File("coordination.db"));
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
  }

  std::vector<Delivery> Apply(const CaseEvent& event) {
    auto deliveries = store_->Apply(event, kNow);
    EXPECT_THAT(deliveries, IsOk());
    return deliveries.ok() ? *deliveries : std::vector<Delivery>();
  }

  std::vector<Party> Parties(const std::string& subject = kSubject) {
    auto parties = store_->ListParties(subject);
    EXPECT_THAT(parties, IsOk());
    return parties.ok() ? *parties : std::vector<Party>();
  }

  std::vector<Delivery> Read(const std::string& recipient, uint64_t after,
                             const std::string& subject = "") {
    auto deliveries = store_->ReadDeliveries(recipient, after, subject, 100);
    EXPECT_THAT(deliveries, IsOk());
    return deliveries.ok() ? *deliveries : std::vector<Delivery>();
  }

  std::vector<Delivery> Pending() {
    auto deliveries = store_->PendingDeliveries(100);
    EXPECT_THAT(deliveries, IsOk());
    return deliveries.ok() ? *deliveries : std::vector<Delivery>();
  }

  TempDir dir_;
  std::unique_ptr<CoordinationStore> store_;
};

TEST_F(CoordinationStoreTest, AssignsCaseAndStreamSequencesWithoutGapsPerRecipient) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  Apply(RoleEvent("r2", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter", false, kOtherSubject));
  Apply(RoleEvent("r3", ROLE_MENTOR, "mentorhuset"));

  EXPECT_THAT(Describe(Apply(DecisionEvent("d1", kSubject))),
              ElementsAre("aarhus-jobcenter/4/3/d1", "mentorhuset/2/2/d1"));
  EXPECT_THAT(Describe(Apply(DecisionEvent("d2", kOtherSubject))),
              ElementsAre("aarhus-jobcenter/5/2/d2"));
}

TEST_F(CoordinationStoreTest, DeliveryCarriesRolesSubjectRoutingTimeAndEvent) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  const CaseEvent decision = DecisionEvent("d1");

  const std::vector<Delivery> deliveries = Apply(decision);

  ASSERT_EQ(deliveries.size(), 1u);
  EXPECT_EQ(deliveries[0].subject(), kSubject);
  EXPECT_THAT(deliveries[0].roles(), ElementsAre(ROLE_COORDINATING_CASEWORKER));
  EXPECT_EQ(deliveries[0].routed_at().seconds(), absl::ToUnixSeconds(kNow));
  EXPECT_EQ(deliveries[0].event().SerializeAsString(), decision.SerializeAsString());
}

TEST_F(CoordinationStoreTest, ReappliedEventYieldsNothing) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  ASSERT_THAT(Apply(DecisionEvent("d1")), ::testing::SizeIs(1));

  EXPECT_THAT(Apply(DecisionEvent("d1")), IsEmpty());
  EXPECT_THAT(Describe(Read("aarhus-jobcenter", 0)),
              ElementsAre("aarhus-jobcenter/1/1/r1", "aarhus-jobcenter/2/2/d1"));
}

TEST_F(CoordinationStoreTest, AssignmentReplacesHolderAndOldHolderLearnsOfIt) {
  Apply(RoleEvent("r1", ROLE_MENTOR, "mentorhuset"));

  EXPECT_THAT(Describe(Apply(RoleEvent("r2", ROLE_MENTOR, "aarhus-jobcenter"))),
              ElementsAre("aarhus-jobcenter/1/1/r2", "mentorhuset/2/2/r2"));
  EXPECT_THAT(Recipients(Parties()), ElementsAre("aarhus-jobcenter"));
  EXPECT_THAT(Describe(Apply(DecisionEvent("d1"))), ElementsAre("aarhus-jobcenter/2/2/d1"));
}

TEST_F(CoordinationStoreTest, ReleaseRemovesHolderAndReachesIt) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  Apply(RoleEvent("r2", ROLE_MENTOR, "mentorhuset"));

  EXPECT_THAT(Describe(Apply(RoleEvent("r3", ROLE_MENTOR, "mentorhuset", /*released=*/true))),
              ElementsAre("aarhus-jobcenter/3/3/r3", "mentorhuset/2/2/r3"));
  EXPECT_THAT(Recipients(Parties()), ElementsAre("aarhus-jobcenter"));
}

TEST_F(CoordinationStoreTest, ReleaseNamingAnotherRecipientLeavesTheHolder) {
  Apply(RoleEvent("r1", ROLE_MENTOR, "aarhus-jobcenter"));

  Apply(RoleEvent("r2", ROLE_MENTOR, "mentorhuset", /*released=*/true));

  EXPECT_THAT(Recipients(Parties()), ElementsAre("aarhus-jobcenter"));
}

TEST_F(CoordinationStoreTest, PartiesAreOrderedByRoleAndNameTheirAssigningEvent) {
  Apply(RoleEvent("r1", ROLE_MENTOR, "mentorhuset"));
  Apply(RoleEvent("r2", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));

  const std::vector<Party> parties = Parties();

  ASSERT_THAT(Recipients(parties), ElementsAre("aarhus-jobcenter", "mentorhuset"));
  EXPECT_EQ(parties[0].role(), ROLE_COORDINATING_CASEWORKER);
  EXPECT_EQ(parties[0].assigned_by_event_id(), "r2");
  EXPECT_THAT(Parties(kOtherSubject), IsEmpty());
}

TEST_F(CoordinationStoreTest, StateSurvivesReopen) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  Apply(DecisionEvent("d1"));

  Reopen();

  EXPECT_THAT(Recipients(Parties()), ElementsAre("aarhus-jobcenter"));
  EXPECT_THAT(Apply(DecisionEvent("d1")), IsEmpty());
  EXPECT_THAT(Describe(Apply(DecisionEvent("d2"))), ElementsAre("aarhus-jobcenter/3/3/d2"));
  EXPECT_THAT(Pending(), ::testing::SizeIs(3));
}

TEST_F(CoordinationStoreTest, ReadDeliveriesFiltersBySubjectAndResumes) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  Apply(RoleEvent("r2", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter", false, kOtherSubject));
  Apply(DecisionEvent("d1", kSubject));
  Apply(DecisionEvent("d2", kOtherSubject));

  EXPECT_THAT(Describe(Read("aarhus-jobcenter", 2)),
              ElementsAre("aarhus-jobcenter/3/2/d1", "aarhus-jobcenter/4/2/d2"));
  EXPECT_THAT(Describe(Read("aarhus-jobcenter", 0, kOtherSubject)),
              ElementsAre("aarhus-jobcenter/2/1/r2", "aarhus-jobcenter/4/2/d2"));
  EXPECT_THAT(Read("aarhus-jobcenter", 4), IsEmpty());
  EXPECT_THAT(Read("mentorhuset", 0), IsEmpty());
}

TEST_F(CoordinationStoreTest, DeliveriesStayPendingUntilMarkedPublished) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  Apply(RoleEvent("r2", ROLE_MENTOR, "mentorhuset"));
  ASSERT_THAT(Describe(Pending()), ElementsAre("aarhus-jobcenter/1/1/r1", "aarhus-jobcenter/2/2/r2",
                                               "mentorhuset/1/1/r2"));

  ASSERT_THAT(store_->MarkPublished("aarhus-jobcenter", 1), IsOk());
  EXPECT_THAT(Describe(Pending()), ElementsAre("aarhus-jobcenter/2/2/r2", "mentorhuset/1/1/r2"));

  ASSERT_THAT(store_->MarkPublished(Pending()), IsOk());
  EXPECT_THAT(Pending(), IsEmpty());
  EXPECT_THAT(Read("aarhus-jobcenter", 0), ::testing::SizeIs(2));
}

TEST_F(CoordinationStoreTest, RoleEventWithoutRecipientIsRefused) {
  EXPECT_THAT(store_->Apply(RoleEvent("r1", ROLE_MENTOR, ""), kNow),
              ::casebridge::testing::StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace casebridge::coordination
