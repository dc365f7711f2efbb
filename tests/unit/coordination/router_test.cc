#include "services/coordination/router.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/coordination/test_events.h"

namespace casebridge::coordination {
namespace {

using ::casebridge::common::v1::ROLE_BENEFITS_UNIT;
using ::casebridge::common::v1::ROLE_CITIZEN;
using ::casebridge::common::v1::ROLE_COMPANY_CONSULTANT;
using ::casebridge::common::v1::ROLE_COORDINATING_CASEWORKER;
using ::casebridge::common::v1::ROLE_HEALTH_ADMINISTRATION;
using ::casebridge::common::v1::ROLE_MENTOR;
using ::casebridge::common::v1::ROLE_REHABILITATION_TEAM;
using ::casebridge::common::v1::ROLE_UNSPECIFIED;
using ::casebridge::common::v1::Role;
using ::casebridge::config::v1::RoutingConfig;
using ::casebridge::coordination::testing::AppointmentEvent;
using ::casebridge::coordination::testing::CancellationOf;
using ::casebridge::coordination::testing::DecisionEvent;
using ::casebridge::coordination::testing::ReferralEvent;
using ::casebridge::coordination::testing::RoleEvent;
using ::casebridge::coordination::v1::Party;
using ::casebridge::events::v1::CaseEvent;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::StatusIs;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::StartsWith;

Party Holder(Role role, const std::string& recipient) {
  Party party;
  party.set_role(role);
  party.set_recipient(recipient);
  return party;
}

RoutingConfig Rules(std::vector<std::pair<std::vector<std::string>, std::vector<Role>>> rules) {
  RoutingConfig routing;
  for (const auto& [types, roles] : rules) {
    auto& rule = *routing.add_rules();
    for (const std::string& type : types) rule.add_event_types(type);
    for (Role role : roles) rule.add_roles(role);
  }
  return routing;
}

// Only the recipient ids, for tables.
std::vector<std::string> Recipients(const std::vector<RoutedRecipient>& routed) {
  std::vector<std::string> recipients;
  for (const RoutedRecipient& r : routed) recipients.push_back(r.recipient);
  return recipients;
}

// One case with a holder for each role the rules below care about.
const std::vector<Party>& CaseHolders() {
  static const std::vector<Party> holders = {
      Holder(ROLE_CITIZEN, "citizen-portal"),
      Holder(ROLE_COORDINATING_CASEWORKER, "jobcenter"),
      Holder(ROLE_COMPANY_CONSULTANT, "virksomhed"),
      Holder(ROLE_MENTOR, "mentor"),
      Holder(ROLE_REHABILITATION_TEAM, "rehab"),
      Holder(ROLE_BENEFITS_UNIT, "ydelse"),
      Holder(ROLE_HEALTH_ADMINISTRATION, "sundhed")};
  return holders;
}

// Aarhus-like: decisions and appointments to citizen, KS and mentor;
// referral steps to KS, citizen and rehab team; health gets referrals.
RoutingConfig AarhusRules() {
  return Rules({{{"dk.casebridge.decision.*", "dk.casebridge.appointment.*"},
                 {ROLE_CITIZEN, ROLE_COORDINATING_CASEWORKER, ROLE_MENTOR}},
                {{"dk.casebridge.referral.*"},
                 {ROLE_COORDINATING_CASEWORKER, ROLE_CITIZEN, ROLE_REHABILITATION_TEAM}},
                {{"dk.casebridge.referral.sent.v1"}, {ROLE_HEALTH_ADMINISTRATION}}});
}

TEST(RouterTest, EveryHolderReceivesADecision) {
  const std::vector<Party> holders = {Holder(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter"),
                                      Holder(ROLE_MENTOR, "mentorhuset"),
                                      Holder(ROLE_HEALTH_ADMINISTRATION, "aarhus-sundhed")};

  EXPECT_THAT(Route(DecisionEvent("e1"), holders),
              ElementsAre(RoutedRecipient{"aarhus-jobcenter", {ROLE_COORDINATING_CASEWORKER}},
                          RoutedRecipient{"aarhus-sundhed", {ROLE_HEALTH_ADMINISTRATION}},
                          RoutedRecipient{"mentorhuset", {ROLE_MENTOR}}));
}

TEST(RouterTest, RecipientWithSeveralRolesIsListedOnceWithAllRoles) {
  const std::vector<Party> holders = {Holder(ROLE_MENTOR, "aarhus-jobcenter"),
                                      Holder(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter")};

  EXPECT_THAT(Route(DecisionEvent("e1"), holders),
              ElementsAre(RoutedRecipient{"aarhus-jobcenter",
                                          {ROLE_COORDINATING_CASEWORKER, ROLE_MENTOR}}));
}

TEST(RouterTest, ReleasedHolderStillReceivesItsReleaseEvent) {
  // After the release the store no longer lists mentorhuset as a holder.
  const std::vector<Party> holders = {Holder(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter")};

  EXPECT_THAT(Route(RoleEvent("e1", ROLE_MENTOR, "mentorhuset", /*released=*/true), holders),
              ElementsAre(RoutedRecipient{"aarhus-jobcenter", {ROLE_COORDINATING_CASEWORKER}},
                          RoutedRecipient{"mentorhuset", {ROLE_MENTOR}}));
}

TEST(RouterTest, CaseWithoutHoldersRoutesNowhere) {
  EXPECT_THAT(Route(DecisionEvent("e1"), {}), IsEmpty());
  EXPECT_THAT(Route(DecisionEvent("e1"), {}, AarhusRules()), IsEmpty());
}

// --- Routing rules -----------------------------------------------------------

TEST(RouterTest, WithoutRulesEveryHolderReceivesEverything) {
  EXPECT_THAT(Recipients(Route(ReferralEvent("e1"), CaseHolders(), RoutingConfig())),
              ElementsAre("citizen-portal", "jobcenter", "mentor", "rehab", "sundhed", "virksomhed",
                          "ydelse"));
}

TEST(RouterTest, PrefixRuleRoutesEveryTypeUnderThePrefixToItsRoles) {
  EXPECT_THAT(Recipients(Route(DecisionEvent("e1"), CaseHolders(), AarhusRules())),
              ElementsAre("citizen-portal", "jobcenter", "mentor"));
  EXPECT_THAT(Recipients(Route(AppointmentEvent("e2"), CaseHolders(), AarhusRules())),
              ElementsAre("citizen-portal", "jobcenter", "mentor"));
}

TEST(RouterTest, EveryMatchingRuleAddsItsRoles) {
  // referral.* and the exact referral.sent.v1 both match.
  EXPECT_THAT(Recipients(Route(ReferralEvent("e1"), CaseHolders(), AarhusRules())),
              ElementsAre("citizen-portal", "jobcenter", "rehab", "sundhed"));
}

TEST(RouterTest, ExactRuleMatchesOnlyItsOwnType) {
  CaseEvent received = ReferralEvent("e1");
  received.mutable_referral()->set_status(events::v1::REFERRAL_STATUS_RECEIVED);
  received.set_type(EventTypeFor(received));

  EXPECT_THAT(Recipients(Route(received, CaseHolders(), AarhusRules())),
              ElementsAre("citizen-portal", "jobcenter", "rehab"));
}

TEST(RouterTest, TypeMatchingNoRuleReachesNobody) {
  const RoutingConfig decisions_only =
      Rules({{{"dk.casebridge.decision.*"}, {ROLE_COORDINATING_CASEWORKER}}});

  EXPECT_THAT(Route(AppointmentEvent("e1"), CaseHolders(), decisions_only), IsEmpty());
}

TEST(RouterTest, RoleHolderMissingOnTheCaseIsSimplyNotRouted) {
  const std::vector<Party> holders = {Holder(ROLE_COORDINATING_CASEWORKER, "jobcenter")};

  EXPECT_THAT(Route(DecisionEvent("e1"), holders, AarhusRules()),
              ElementsAre(RoutedRecipient{"jobcenter", {ROLE_COORDINATING_CASEWORKER}}));
}

TEST(RouterTest, RecipientReceivesOnlyThroughTheRolesARuleNames) {
  const std::vector<Party> holders = {Holder(ROLE_MENTOR, "jobcenter"),
                                      Holder(ROLE_BENEFITS_UNIT, "jobcenter")};

  EXPECT_THAT(Route(DecisionEvent("e1"), holders, AarhusRules()),
              ElementsAre(RoutedRecipient{"jobcenter", {ROLE_MENTOR}}));
}

TEST(RouterTest, RoleEventsReachEveryPartyWhateverTheRules) {
  const RoutingConfig decisions_only =
      Rules({{{"dk.casebridge.decision.*"}, {ROLE_COORDINATING_CASEWORKER}}});

  EXPECT_THAT(Recipients(Route(RoleEvent("e1", ROLE_MENTOR, "mentor"), CaseHolders(),
                               decisions_only)),
              ElementsAre("citizen-portal", "jobcenter", "mentor", "rehab", "sundhed", "virksomhed",
                          "ydelse"));
}

TEST(RouterTest, ReleasedHolderReceivesItsReleaseUnderRulesToo) {
  const std::vector<Party> holders = {Holder(ROLE_COORDINATING_CASEWORKER, "jobcenter")};

  EXPECT_THAT(Recipients(Route(RoleEvent("e1", ROLE_MENTOR, "mentor", /*released=*/true), holders,
                               AarhusRules())),
              ElementsAre("jobcenter", "mentor"));
}

TEST(RouterTest, LoadWarningReachesNotifyRolesAndTheCoordinatingCaseworker) {
  CaseEvent warning = DecisionEvent("e1");
  warning.clear_decision();
  warning.mutable_load_warning()->set_kind(events::v1::LOAD_WARNING_KIND_DOUBLE_BOOKING);
  warning.mutable_load_warning()->add_notify_roles(ROLE_HEALTH_ADMINISTRATION);
  warning.mutable_load_warning()->add_notify_roles(ROLE_MENTOR);
  warning.set_type(EventTypeFor(warning));

  EXPECT_THAT(Recipients(Route(warning, CaseHolders(), AarhusRules())),
              ElementsAre("jobcenter", "mentor", "sundhed"));
}

TEST(RouterTest, WatchdogAlertReachesTheCoordinatingCaseworkerWithoutARule) {
  CaseEvent alert = DecisionEvent("e1");
  alert.clear_decision();
  alert.mutable_watchdog_alert()->set_kind(events::v1::WATCHDOG_KIND_NO_CONTACT);
  alert.set_type(EventTypeFor(alert));

  EXPECT_THAT(Route(alert, CaseHolders(), AarhusRules()),
              ElementsAre(RoutedRecipient{"jobcenter", {ROLE_COORDINATING_CASEWORKER}}));
}

TEST(RouterTest, WatchdogRuleAddsRolesToTheCoordinatingCaseworker) {
  CaseEvent alert = DecisionEvent("e1");
  alert.clear_decision();
  alert.mutable_watchdog_alert()->set_kind(events::v1::WATCHDOG_KIND_NO_CONTACT);
  alert.set_type(EventTypeFor(alert));

  EXPECT_THAT(Recipients(Route(alert, CaseHolders(),
                               Rules({{{"dk.casebridge.watchdog.*"}, {ROLE_MENTOR}}}))),
              ElementsAre("jobcenter", "mentor"));
}

TEST(RouterTest, ReplanningFlagReachesCoordinatorAndRehabilitationTeam) {
  CaseEvent flag = DecisionEvent("e1");
  flag.clear_decision();
  flag.mutable_replanning()->set_referral_id("R-1");
  flag.set_type(EventTypeFor(flag));

  EXPECT_THAT(Recipients(Route(flag, CaseHolders(), AarhusRules())),
              ElementsAre("jobcenter", "rehab"));
}

TEST(RouterTest, TaskEventReachesTheHolderOfItsOwnerRole) {
  CaseEvent task = DecisionEvent("e1");
  task.clear_decision();
  task.mutable_task()->set_state(events::v1::TASK_STATE_OPEN);
  task.mutable_task()->set_owner_role(ROLE_BENEFITS_UNIT);
  task.set_type(EventTypeFor(task));

  EXPECT_THAT(Recipients(Route(task, CaseHolders(), AarhusRules())), ElementsAre("ydelse"));
}

TEST(RouterTest, CancellationReachesEveryoneWhoReceivedTheCancelledEvent) {
  // The mentor received the decision before it left the case.
  const std::vector<Party> holders = {Holder(ROLE_COORDINATING_CASEWORKER, "jobcenter")};
  const std::vector<RoutedRecipient> earlier = {{"jobcenter", {ROLE_COORDINATING_CASEWORKER}},
                                                {"mentor", {ROLE_MENTOR}}};

  EXPECT_THAT(Route(CancellationOf("d1", "c1"), holders, AarhusRules(), earlier),
              ElementsAre(RoutedRecipient{"jobcenter", {ROLE_COORDINATING_CASEWORKER}},
                          RoutedRecipient{"mentor", {ROLE_MENTOR}}));
}

TEST(RouterTest, PatternMatching) {
  EXPECT_TRUE(EventTypeMatches("dk.casebridge.referral.*", "dk.casebridge.referral.sent.v1"));
  EXPECT_TRUE(EventTypeMatches("dk.casebridge.referral.sent.v1", "dk.casebridge.referral.sent.v1"));
  EXPECT_FALSE(
      EventTypeMatches("dk.casebridge.referral.sent.v1", "dk.casebridge.referral.sent.v2"));
  EXPECT_FALSE(EventTypeMatches("dk.casebridge.referral.*", "dk.casebridge.decision.refused.v1"));
  EXPECT_FALSE(EventTypeMatches("dk.casebridge.referral", "dk.casebridge.referral.sent.v1"));
}

TEST(RouterTest, KnownEventTypesCoverEveryPayload) {
  const std::vector<std::string>& types = KnownEventTypes();

  EXPECT_THAT(types, Contains("dk.casebridge.decision.refused.v1"));
  EXPECT_THAT(types, Contains("dk.casebridge.referral.estimate-changed.v1"));
  EXPECT_THAT(types, Contains("dk.casebridge.role.released.v1"));
  EXPECT_THAT(types, Contains("dk.casebridge.task.handed-over.v1"));
  EXPECT_THAT(types, Contains("dk.casebridge.watchdog.too-few-follow-ups.v1"));
  EXPECT_THAT(types, Contains("dk.casebridge.load.too-many-activities.v1"));
  EXPECT_THAT(types, Contains("dk.casebridge.plan.replanning-needed.v1"));
  EXPECT_THAT(types, Contains("dk.casebridge.event.cancelled.v1"));
  EXPECT_THAT(types, ::testing::Not(Contains("")));
}

// --- Rule validation ---------------------------------------------------------

struct BadRules {
  std::string field;
  RoutingConfig routing;
};

class RoutingValidationTest : public ::testing::TestWithParam<BadRules> {};

TEST_P(RoutingValidationTest, BadRuleIsInvalidArgumentNamingTheField) {
  EXPECT_THAT(ValidateRoutingConfig(GetParam().routing, "routing"),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith(GetParam().field + ": ")));
}

INSTANTIATE_TEST_SUITE_P(
    EachMistake, RoutingValidationTest,
    ::testing::Values(
        BadRules{"routing.rules[1].event_types",
                 Rules({{{"dk.casebridge.decision.*"}, {ROLE_MENTOR}}, {{}, {ROLE_MENTOR}}})},
        BadRules{"routing.rules[1].roles",
                 Rules({{{"dk.casebridge.decision.*"}, {ROLE_MENTOR}},
                        {{"dk.casebridge.referral.*"}, {}}})},
        BadRules{"routing.rules[0].roles[1]",
                 Rules({{{"dk.casebridge.decision.*"}, {ROLE_MENTOR, ROLE_UNSPECIFIED}}})},
        BadRules{"routing.rules[0].roles[0]",
                 Rules({{{"dk.casebridge.decision.*"}, {static_cast<Role>(99)}}})},
        // A typo in an exact type.
        BadRules{"routing.rules[0].event_types[1]",
                 Rules({{{"dk.casebridge.decision.*", "dk.casebridge.decison.refused.v1"},
                         {ROLE_MENTOR}}})},
        // A prefix that matches nothing.
        BadRules{"routing.rules[0].event_types[0]",
                 Rules({{{"dk.casebridge.referal.*"}, {ROLE_MENTOR}}})},
        // "*" only at the end.
        BadRules{"routing.rules[0].event_types[0]",
                 Rules({{{"dk.casebridge.*.v1"}, {ROLE_MENTOR}}})},
        BadRules{"routing.rules[0].event_types[0]", Rules({{{""}, {ROLE_MENTOR}}})},
        BadRules{"routing.rules[0].event_types[0]", Rules({{{"*"}, {ROLE_MENTOR}}})}));

TEST(RouterTest, ValidRulesPass) {
  EXPECT_THAT(ValidateRoutingConfig(AarhusRules(), "routing"), IsOk());
  EXPECT_THAT(ValidateRoutingConfig(RoutingConfig(), "routing"), IsOk());
  EXPECT_THAT(ValidateRoutingConfig(Rules({{{"dk.casebridge.*"}, {ROLE_MENTOR}}}), "routing"),
              IsOk());
}

}  // namespace
}  // namespace casebridge::coordination
