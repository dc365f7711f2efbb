#include "services/coordination/coordination_store.h"

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/sql.h"
#include "services/common/trace_context.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"
#include "tests/unit/coordination/test_events.h"

namespace casebridge::coordination {
namespace {

using ::casebridge::common::v1::ROLE_COORDINATING_CASEWORKER;
using ::casebridge::common::v1::ROLE_MENTOR;
using ::casebridge::common::v1::ROLE_CITIZEN;
using ::casebridge::common::v1::ROLE_HEALTH_ADMINISTRATION;
using ::casebridge::coordination::testing::AppointmentEvent;
using ::casebridge::coordination::testing::CancellationOf;
using ::casebridge::coordination::testing::CorrectionOf;
using ::casebridge::coordination::testing::DecisionEvent;
using ::casebridge::coordination::testing::kOtherSubject;
using ::casebridge::coordination::testing::kSubject;
using ::casebridge::coordination::testing::ReferralEvent;
using ::casebridge::coordination::testing::RoleEvent;
using ::casebridge::coordination::v1::DeliveryStatus;
using ::casebridge::coordination::v1::Delivery;
using ::casebridge::coordination::v1::Party;
using ::casebridge::coordination::v1::RECEIPT_STATUS_ACCEPTED;
using ::casebridge::coordination::v1::RECEIPT_STATUS_RECEIVED;
using ::casebridge::coordination::v1::RECEIPT_STATUS_REJECTED;
using ::casebridge::coordination::v1::RecipientDelivery;
using ::casebridge::events::v1::CaseEvent;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::StatusIs;
using ::casebridge::testing::TempDir;
using ::casebridge::testing::TestStore;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

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

std::vector<std::string> EventIds(const std::vector<CaseEvent>& events) {
  std::vector<std::string> ids;
  for (const CaseEvent& event : events) ids.push_back(event.id());
  return ids;
}

// "recipient:STATE" per entry of a delivery status.
std::vector<std::string> States(const DeliveryStatus& status) {
  std::vector<std::string> states;
  for (const RecipientDelivery& entry : status.recipients()) {
    states.push_back(entry.recipient() + ":" +
                     coordination::v1::DeliveryState_Name(entry.state()).substr(15));
  }
  return states;
}

class CoordinationStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen(config::v1::RoutingConfig routing = {},
              std::map<std::string, common::v1::Administration> administrations = {}) {
    store_.reset();
    auto store =
        CoordinationStore::Open(TestStore(dir_, "coordination.db"), routing, administrations);
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

  CaseHistory History(const std::string& subject = kSubject) {
    auto history = store_->History(subject);
    EXPECT_THAT(history, IsOk());
    return history.ok() ? *history : CaseHistory();
  }

  DeliveryStatus Status(const std::string& event_id) {
    auto status = store_->GetDeliveryStatus(event_id);
    EXPECT_THAT(status, IsOk());
    return status.ok() ? *status : DeliveryStatus();
  }

  // Mentor and coordinating caseworker on the case, then decision d1.
  void DecisionToTwoParties() {
    Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
    Apply(RoleEvent("r2", ROLE_MENTOR, "mentorhuset"));
    Apply(DecisionEvent("d1"));
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

// --- History -----------------------------------------------------------------

TEST_F(CoordinationStoreTest, HistoryKeepsEveryEventOfTheCaseInApplyOrderWithTheHolders) {
  Apply(DecisionEvent("d0"));  // before anyone holds a role: routed to nobody
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  Apply(DecisionEvent("x1", kOtherSubject));
  Apply(AppointmentEvent("a1"));

  const CaseHistory history = History();

  EXPECT_EQ(history.subject, kSubject);
  EXPECT_THAT(EventIds(history.events), ElementsAre("d0", "r1", "a1"));
  EXPECT_EQ(history.events[2].SerializeAsString(), AppointmentEvent("a1").SerializeAsString());
  EXPECT_THAT(Recipients(history.holders), ElementsAre("aarhus-jobcenter"));
}

TEST_F(CoordinationStoreTest, ReappliedEventIsInTheHistoryOnce) {
  Apply(DecisionEvent("d1"));
  Apply(DecisionEvent("d1"));

  EXPECT_THAT(EventIds(History().events), ElementsAre("d1"));
  auto applied = store_->IsApplied("d1");
  ASSERT_THAT(applied, IsOk());
  EXPECT_TRUE(*applied);
  auto unknown = store_->IsApplied("d2");
  ASSERT_THAT(unknown, IsOk());
  EXPECT_FALSE(*unknown);
}

TEST_F(CoordinationStoreTest, UnknownCaseHasAnEmptyHistory) {
  const CaseHistory history = History(kOtherSubject);

  EXPECT_EQ(history.subject, kOtherSubject);
  EXPECT_THAT(history.events, IsEmpty());
  EXPECT_THAT(history.holders, IsEmpty());
}

TEST_F(CoordinationStoreTest, SubjectsListsEveryCaseOnce) {
  Apply(DecisionEvent("d1", kOtherSubject));
  Apply(DecisionEvent("d2", kSubject));
  Apply(DecisionEvent("d3", kOtherSubject));

  auto subjects = store_->Subjects();
  ASSERT_THAT(subjects, IsOk());
  EXPECT_THAT(*subjects, ElementsAre(kSubject, kOtherSubject));
}

TEST_F(CoordinationStoreTest, HoldersAfterAppliesAssignmentsAndReleases) {
  std::vector<Party> holders = HoldersAfter({}, RoleEvent("r1", ROLE_MENTOR, "mentorhuset"));
  holders =
      HoldersAfter(holders, RoleEvent("r2", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  EXPECT_THAT(Recipients(holders), ElementsAre("aarhus-jobcenter", "mentorhuset"));
  EXPECT_EQ(holders[1].assigned_by_event_id(), "r1");

  EXPECT_THAT(Recipients(HoldersAfter(holders, RoleEvent("r3", ROLE_MENTOR, "other"))),
              ElementsAre("aarhus-jobcenter", "other"));
  EXPECT_THAT(Recipients(HoldersAfter(holders, RoleEvent("r4", ROLE_MENTOR, "mentorhuset", true))),
              ElementsAre("aarhus-jobcenter"));
  EXPECT_THAT(Recipients(HoldersAfter(holders, RoleEvent("r5", ROLE_MENTOR, "other", true))),
              ElementsAre("aarhus-jobcenter", "mentorhuset"));
  EXPECT_THAT(Recipients(HoldersAfter(holders, DecisionEvent("d1"))),
              ElementsAre("aarhus-jobcenter", "mentorhuset"));
}

// --- Routing rules in the store ---------------------------------------------

TEST_F(CoordinationStoreTest, ApplyRoutesByTheConfiguredRules) {
  config::v1::RoutingConfig routing;
  auto& rule = *routing.add_rules();
  rule.add_event_types("dk.casebridge.appointment.*");
  rule.add_roles(ROLE_HEALTH_ADMINISTRATION);
  rule.add_roles(ROLE_CITIZEN);
  Reopen(routing);
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  Apply(RoleEvent("r2", ROLE_HEALTH_ADMINISTRATION, "aarhus-sundhed"));

  EXPECT_THAT(Describe(Apply(AppointmentEvent("a1"))), ElementsAre("aarhus-sundhed/2/2/a1"));
  EXPECT_THAT(Apply(DecisionEvent("d1")), IsEmpty());
  // Routed to nobody, still part of the case.
  EXPECT_THAT(EventIds(History().events), ElementsAre("r1", "r2", "a1", "d1"));
}

TEST_F(CoordinationStoreTest, CorrectionReachesFormerRecipientsOfTheCorrectedEvent) {
  DecisionToTwoParties();
  Apply(RoleEvent("r3", ROLE_MENTOR, "mentorhuset", /*released=*/true));

  EXPECT_THAT(Describe(Apply(CorrectionOf("d1", "d2"))),
              ElementsAre("aarhus-jobcenter/5/5/d2", "mentorhuset/4/4/d2"));
}

// --- Receipts and delivery status --------------------------------------------

TEST_F(CoordinationStoreTest, DeliveryStatusListsEveryRecipientAsRoutedUntilPublished) {
  DecisionToTwoParties();

  const DeliveryStatus status = Status("d1");

  EXPECT_EQ(status.event_id(), "d1");
  EXPECT_EQ(status.subject(), kSubject);
  EXPECT_EQ(status.type(), "dk.casebridge.decision.refused.v1");
  EXPECT_THAT(States(status), ElementsAre("aarhus-jobcenter:ROUTED", "mentorhuset:ROUTED"));
  EXPECT_THAT(status.unacknowledged(), ElementsAre("aarhus-jobcenter", "mentorhuset"));
  EXPECT_EQ(status.recipients(0).case_sequence(), 3u);
  EXPECT_EQ(status.recipients(1).case_sequence(), 2u);
  EXPECT_THAT(status.recipients(1).roles(), ElementsAre(ROLE_MENTOR));
  EXPECT_EQ(status.recipients(0).routed_at().seconds(), absl::ToUnixSeconds(kNow));
  EXPECT_FALSE(status.recipients(0).has_acknowledged_at());
}

TEST_F(CoordinationStoreTest, PublishedDeliveryIsPublished) {
  DecisionToTwoParties();
  ASSERT_THAT(store_->MarkPublished(Pending()), IsOk());

  EXPECT_THAT(States(Status("d1")),
              ElementsAre("aarhus-jobcenter:PUBLISHED", "mentorhuset:PUBLISHED"));
}

TEST_F(CoordinationStoreTest, ReceiptSetsStateTimeAndReasonAndLeavesOthersUnacknowledged) {
  DecisionToTwoParties();
  const absl::Time later = kNow + absl::Minutes(3);

  ASSERT_THAT(store_->RecordReceipt("mentorhuset", "d1", RECEIPT_STATUS_REJECTED,
                                    "unknown case in our system", later),
              IsOk());

  const DeliveryStatus status = Status("d1");
  EXPECT_THAT(States(status), ElementsAre("aarhus-jobcenter:ROUTED", "mentorhuset:REJECTED"));
  EXPECT_EQ(status.recipients(1).reason(), "unknown case in our system");
  EXPECT_EQ(status.recipients(1).acknowledged_at().seconds(), absl::ToUnixSeconds(later));
  EXPECT_THAT(status.unacknowledged(), ElementsAre("aarhus-jobcenter"));
}

TEST_F(CoordinationStoreTest, LaterReceiptReplacesEarlierOne) {
  DecisionToTwoParties();
  ASSERT_THAT(store_->RecordReceipt("mentorhuset", "d1", RECEIPT_STATUS_RECEIVED, "", kNow),
              IsOk());

  ASSERT_THAT(store_->RecordReceipt("mentorhuset", "d1", RECEIPT_STATUS_ACCEPTED, "",
                                    kNow + absl::Seconds(1)),
              IsOk());

  const DeliveryStatus status = Status("d1");
  EXPECT_THAT(States(status), ElementsAre("aarhus-jobcenter:ROUTED", "mentorhuset:ACCEPTED"));
  EXPECT_EQ(status.recipients(1).acknowledged_at().seconds(), absl::ToUnixSeconds(kNow) + 1);
}

TEST_F(CoordinationStoreTest, LateReceivedReceiptDoesNotUndoAnAcceptance) {
  DecisionToTwoParties();
  ASSERT_THAT(store_->RecordReceipt("mentorhuset", "d1", RECEIPT_STATUS_ACCEPTED, "", kNow),
              IsOk());
  ASSERT_THAT(store_->RecordReceipt("mentorhuset", "d1", RECEIPT_STATUS_RECEIVED, "",
                                    kNow + absl::Seconds(1)),
              IsOk());
  const DeliveryStatus status = Status("d1");
  EXPECT_THAT(States(status), ElementsAre("aarhus-jobcenter:ROUTED", "mentorhuset:ACCEPTED"));
  EXPECT_EQ(status.recipients(1).acknowledged_at().seconds(), absl::ToUnixSeconds(kNow));
}

TEST_F(CoordinationStoreTest, ReceiptForAnEventNotDeliveredToTheRecipientIsNotFound) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  Apply(DecisionEvent("d1"));

  EXPECT_THAT(store_->RecordReceipt("mentorhuset", "d1", RECEIPT_STATUS_ACCEPTED, "", kNow),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->RecordReceipt("aarhus-jobcenter", "nope", RECEIPT_STATUS_ACCEPTED, "", kNow),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(CoordinationStoreTest, DeliveryStatusOfAnEventRoutedToNobodyHasNoRecipients) {
  Apply(DecisionEvent("d1"));

  const DeliveryStatus status = Status("d1");

  EXPECT_EQ(status.type(), "dk.casebridge.decision.refused.v1");
  EXPECT_THAT(status.recipients(), IsEmpty());
  EXPECT_THAT(status.unacknowledged(), IsEmpty());
}

TEST_F(CoordinationStoreTest, DeliveryStatusOfAnUnknownEventIsNotFound) {
  EXPECT_THAT(store_->GetDeliveryStatus("nope"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(CoordinationStoreTest, ReceiptsSurviveReopen) {
  DecisionToTwoParties();
  ASSERT_THAT(store_->RecordReceipt("mentorhuset", "d1", RECEIPT_STATUS_ACCEPTED, "", kNow),
              IsOk());

  Reopen();

  EXPECT_THAT(States(Status("d1")), ElementsAre("aarhus-jobcenter:ROUTED", "mentorhuset:ACCEPTED"));
  EXPECT_THAT(EventIds(History().events), ElementsAre("r1", "r2", "d1"));
}

// A consent event from the coordination service on `subject`: consent `id`
// given (granting the job centre health data) or withdrawn.
CaseEvent ConsentEvent(const std::string& event_id, const std::string& consent_id,
                       bool withdrawn) {
  CaseEvent event = RoleEvent(event_id, ROLE_MENTOR, "x");
  event.clear_role_assignment();
  events::v1::Consent& consent = *event.mutable_consent();
  consent.set_consent_id(consent_id);
  consent.set_withdrawn(withdrawn);
  if (!withdrawn) {
    events::v1::ConsentGrant& grant = *consent.add_grants();
    grant.set_administration(common::v1::ADMINISTRATION_JOB_CENTRE);
    grant.add_sensitivities(events::v1::SENSITIVITY_SPECIAL_HEALTH);
  }
  event.set_type(EventTypeFor(event));
  return event;
}

TEST_F(CoordinationStoreTest, ConsentDecidesWhatEachRecipientReceivesFromTheNextEventOn) {
  Reopen({}, {{"aarhus-jobcenter", common::v1::ADMINISTRATION_JOB_CENTRE},
              {"aarhus-sundhed", common::v1::ADMINISTRATION_HEALTH},
              {"mentorhuset", common::v1::ADMINISTRATION_UNSPECIFIED}});
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  Apply(RoleEvent("r2", ROLE_HEALTH_ADMINISTRATION, "aarhus-sundhed"));
  Apply(RoleEvent("r3", ROLE_MENTOR, "mentorhuset"));
  Apply(RoleEvent("r4", ROLE_CITIZEN, "citizen-portal"));

  // Health data, no consent yet: the job centre and the mentor get the
  // minimal projection; health (its own) and the citizen get it whole.
  std::map<std::string, Delivery> before;
  for (const Delivery& d : Apply(AppointmentEvent("a1"))) before[d.recipient()] = d;
  ASSERT_EQ(before.size(), 4u);
  EXPECT_EQ(before["aarhus-jobcenter"].disclosure(), v1::DISCLOSURE_MINIMAL);
  EXPECT_EQ(before["aarhus-jobcenter"].disclosure_basis(), "no-consent");
  EXPECT_EQ(before["aarhus-jobcenter"].event().appointment().kind(),
            events::v1::APPOINTMENT_KIND_UNSPECIFIED);
  EXPECT_EQ(before["mentorhuset"].disclosure(), v1::DISCLOSURE_MINIMAL);
  EXPECT_EQ(before["aarhus-sundhed"].disclosure_basis(), "own-administration");
  EXPECT_EQ(before["aarhus-sundhed"].event().appointment().kind(),
            events::v1::APPOINTMENT_KIND_HEALTH_SESSION);
  EXPECT_EQ(before["citizen-portal"].disclosure_basis(), "citizen");

  // The consent reaches every party, and from the next event on the job
  // centre (granted health data) sees it whole; the mentor still does not.
  EXPECT_THAT(Apply(ConsentEvent("c-event", "consent-1", false)), SizeIs(4));
  auto consents = store_->ConsentsInForce(kSubject);
  ASSERT_THAT(consents, IsOk());
  ASSERT_THAT(*consents, SizeIs(1));
  std::map<std::string, Delivery> with;
  for (const Delivery& d : Apply(AppointmentEvent("a2"))) with[d.recipient()] = d;
  EXPECT_EQ(with["aarhus-jobcenter"].disclosure(), v1::DISCLOSURE_FULL);
  EXPECT_EQ(with["aarhus-jobcenter"].disclosure_basis(), "consent");
  EXPECT_THAT(with["aarhus-jobcenter"].consent_ids(), ElementsAre("consent-1"));
  EXPECT_EQ(with["aarhus-jobcenter"].event().appointment().kind(),
            events::v1::APPOINTMENT_KIND_HEALTH_SESSION);
  EXPECT_EQ(with["mentorhuset"].disclosure(), v1::DISCLOSURE_MINIMAL);

  // Withdrawn: minimal again for every event after the withdrawal.
  Apply(ConsentEvent("w-event", "consent-1", true));
  consents = store_->ConsentsInForce(kSubject);
  ASSERT_THAT(consents, IsOk());
  EXPECT_THAT(*consents, IsEmpty());
  auto found = store_->FindConsent(kSubject, "consent-1");
  ASSERT_THAT(found, IsOk());
  EXPECT_TRUE(found->second);
  std::map<std::string, Delivery> after;
  for (const Delivery& d : Apply(AppointmentEvent("a3"))) after[d.recipient()] = d;
  EXPECT_EQ(after["aarhus-jobcenter"].disclosure(), v1::DISCLOSURE_MINIMAL);
  EXPECT_THAT(after["aarhus-jobcenter"].consent_ids(), IsEmpty());

  // What was stored is what Subscribe serves.
  std::vector<Delivery> stored = Read("aarhus-jobcenter", 0);
  ASSERT_FALSE(stored.empty());
  EXPECT_EQ(stored.back().disclosure(), v1::DISCLOSURE_MINIMAL);
  EXPECT_THAT(store_->FindConsent(kSubject, "no-such-consent"),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace casebridge::coordination

namespace casebridge::coordination {
namespace {

// A replica starting while another applies (found by the fault suite: the
// schema, run as one batch on PostgreSQL, held its locks from statement to
// statement and deadlocked with an Apply). Opening must succeed every time,
// and the applier must never fail.
TEST_F(CoordinationStoreTest, OpeningTheStoreWhileAnotherInstanceAppliesSucceeds) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  Apply(RoleEvent("r2", ROLE_MENTOR, "mentorhuset"));
  std::atomic<bool> done{false};
  std::atomic<int> applied{0};
  std::atomic<int> failed{0};
  std::thread applier([&] {
    for (int i = 0; !done.load(); ++i) {
      auto deliveries = store_->Apply(DecisionEvent(absl::StrCat("d", i)), kNow);
      (deliveries.ok() ? applied : failed).fetch_add(1);
    }
  });
  for (int i = 0; i < 15; ++i) {
    auto other = CoordinationStore::Open(TestStore(dir_, "coordination.db"));
    EXPECT_THAT(other, IsOk()) << "open " << i;
  }
  done = true;
  applier.join();
  EXPECT_GT(applied.load(), 0);
  EXPECT_EQ(failed.load(), 0);
}

// --- W3C trace context (docs/adr/0022-w3c-trace-context.md) ----------------

const TraceContext kHopSpan =
    *TraceContext::Parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                         "congo=t61rcWkgMzE");

TEST_F(CoordinationStoreTest, DeliveriesKeepTheTraceTheyWereAppliedWith) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  Apply(RoleEvent("r2", ROLE_MENTOR, "mentorhuset"));
  ASSERT_THAT(store_->MarkPublished(Pending()), IsOk());
  ASSERT_THAT(store_->Apply(DecisionEvent("d1"), kNow, kHopSpan), IsOk());

  std::vector<TraceContext> traces;
  auto pending = store_->PendingDeliveriesOf("d1", &traces);
  ASSERT_THAT(pending, IsOk());
  ASSERT_THAT(*pending, SizeIs(2));
  EXPECT_THAT(traces, ElementsAre(kHopSpan, kHopSpan));

  Reopen();
  auto again = store_->PendingDeliveries(100, &traces);
  ASSERT_THAT(again, IsOk());
  EXPECT_THAT(Describe(*again), ElementsAre("aarhus-jobcenter/3/3/d1", "mentorhuset/2/2/d1"));
  EXPECT_THAT(traces, ElementsAre(kHopSpan, kHopSpan));
}

TEST_F(CoordinationStoreTest, DeliveriesAppliedWithoutATraceHaveNone) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  std::vector<TraceContext> traces;
  auto pending = store_->PendingDeliveries(100, &traces);
  ASSERT_THAT(pending, IsOk());
  ASSERT_THAT(traces, SizeIs(1));
  EXPECT_FALSE(traces[0].valid());
}

TEST_F(CoordinationStoreTest, ApplyBatchStoresEachEventsOwnTrace) {
  Apply(RoleEvent("r1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"));
  ASSERT_THAT(store_->MarkPublished(Pending()), IsOk());
  const TraceContext other = TraceContext::NewRoot();
  ASSERT_THAT(store_->ApplyBatch({DecisionEvent("d1"), DecisionEvent("d2"), DecisionEvent("d3")},
                                 kNow, {kHopSpan, other}),
              IsOk());
  std::vector<TraceContext> traces;
  auto pending = store_->PendingDeliveries(100, &traces);
  ASSERT_THAT(pending, IsOk());
  EXPECT_THAT(Describe(*pending), ElementsAre("aarhus-jobcenter/2/2/d1", "aarhus-jobcenter/3/3/d2",
                                              "aarhus-jobcenter/4/4/d3"));
  ASSERT_THAT(traces, SizeIs(3));
  EXPECT_EQ(traces[0], kHopSpan);
  EXPECT_EQ(traces[1], other);
  EXPECT_FALSE(traces[2].valid());  // no trace given for it
}

// A store created before deliveries kept their trace: its `deliveries`
// table has no trace columns, and one delivery is pending.
TEST_F(CoordinationStoreTest, AStoreWithoutTraceColumnsIsMigratedOnOpen) {
  const std::string path = TestStore(dir_, "legacy-coordination.db");
  {
    auto db = sql::Database::Open(path);
    ASSERT_THAT(db, IsOk());
    ASSERT_THAT(sql::CreateSchema(**db, R"sql(
CREATE TABLE IF NOT EXISTS deliveries (
  position        INTEGER PRIMARY KEY AUTOINCREMENT,
  recipient       TEXT    NOT NULL,
  stream_sequence INTEGER NOT NULL,
  subject         TEXT    NOT NULL,
  case_sequence   INTEGER NOT NULL,
  event_id        TEXT    NOT NULL,
  delivery        BLOB    NOT NULL,
  published       INTEGER NOT NULL DEFAULT 0,
  UNIQUE (recipient, stream_sequence),
  UNIQUE (recipient, subject, case_sequence)
);
)sql"),
                IsOk());
    Delivery old;
    old.set_recipient("aarhus-jobcenter");
    old.set_subject(kSubject);
    old.set_stream_sequence(1);
    old.set_case_sequence(1);
    *old.mutable_event() = DecisionEvent("d0");
    auto insert = (*db)->Prepare(
        "INSERT INTO deliveries (recipient, stream_sequence, subject, case_sequence, event_id, "
        "delivery) VALUES ('aarhus-jobcenter', 1, ?1, 1, 'd0', ?2)");
    ASSERT_THAT(insert, IsOk());
    insert->Bind(1, kSubject);
    insert->BindBlob(2, old.SerializeAsString());
    ASSERT_THAT(insert->Run(), IsOk());
  }

  auto store = CoordinationStore::Open(path);
  ASSERT_THAT(store, IsOk());
  std::vector<TraceContext> traces;
  auto pending = (*store)->PendingDeliveries(100, &traces);
  ASSERT_THAT(pending, IsOk());
  EXPECT_THAT(Describe(*pending), ElementsAre("aarhus-jobcenter/1/1/d0"));
  ASSERT_THAT(traces, SizeIs(1));
  EXPECT_FALSE(traces[0].valid());

  // New deliveries keep their trace; opening again changes nothing.
  ASSERT_THAT((*store)->Apply(RoleEvent("r1", ROLE_MENTOR, "mentorhuset"), kNow, kHopSpan),
              IsOk());
  store->reset();
  auto reopened = CoordinationStore::Open(path);
  ASSERT_THAT(reopened, IsOk());
  auto of_r1 = (*reopened)->PendingDeliveriesOf("r1", &traces);
  ASSERT_THAT(of_r1, IsOk());
  EXPECT_THAT(Describe(*of_r1), ElementsAre("mentorhuset/1/1/r1"));
  EXPECT_THAT(traces, ElementsAre(kHopSpan));
}

}  // namespace
}  // namespace casebridge::coordination
