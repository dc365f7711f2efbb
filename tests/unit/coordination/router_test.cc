#include "services/coordination/router.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/coordination/test_events.h"

namespace casebridge::coordination {
namespace {

using ::casebridge::common::v1::ROLE_COORDINATING_CASEWORKER;
using ::casebridge::common::v1::ROLE_HEALTH_ADMINISTRATION;
using ::casebridge::common::v1::ROLE_MENTOR;
using ::casebridge::common::v1::Role;
using ::casebridge::coordination::testing::DecisionEvent;
using ::casebridge::coordination::testing::RoleEvent;
using ::casebridge::coordination::v1::Party;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

Party Holder(Role role, const std::string& recipient) {
  Party party;
  party.set_role(role);
  party.set_recipient(recipient);
  return party;
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
}

}  // namespace
}  // namespace casebridge::coordination
