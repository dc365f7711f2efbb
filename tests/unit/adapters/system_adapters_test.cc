// The three administrations' adapters: each factory chooses its vendor, and
// each reference system has its own catalogue and id prefixes (the shared
// behaviour is tested in common/reference/reference_case_system_test.cc).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "adapters/common/case_system_adapter.h"
#include "adapters/health/health_adapter.h"
#include "adapters/health/reference/reference_health_system.h"
#include "adapters/jobcentre/jobcentre_adapter.h"
#include "adapters/jobcentre/reference/reference_jobcentre_system.h"
#include "adapters/social/reference/reference_social_system.h"
#include "adapters/social/social_adapter.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge {
namespace {

using ::casebridge::events::v1::Decision;
using ::casebridge::events::v1::Referral;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::StatusIs;
using ::casebridge::testing::TempDir;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kSubject[] = "3f1c0a9e";

struct System {
  std::string name;
  std::function<absl::StatusOr<std::unique_ptr<CaseSystemAdapter>>(
      const config::v1::CaseSystemAdapterConfig&)>
      new_adapter;
  const reference::ReferenceSystemProfile& profile;
  std::vector<std::string> catalogue;
  // An offer of another administration.
  std::string foreign_offer;
  std::string decision_prefix, appointment_prefix, referral_prefix;
};

class SystemAdapterTest : public ::testing::TestWithParam<System> {
 protected:
  void SetUp() override {
    config::v1::CaseSystemAdapterConfig config;
    config.mutable_reference()->set_database_path(dir_.File("system.db"));
    auto adapter = GetParam().new_adapter(config);
    ASSERT_OK(adapter);
    adapter_ = *std::move(adapter);
  }

  static CallOptions Key(const std::string& key) { return CallOptions{.idempotency_key = key}; }
  static Citizen Case() { return Citizen{.subject = kSubject, .cpr = ""}; }

  absl::StatusOr<std::string> Decide(const std::string& key, const std::string& offer) {
    Decision decision;
    decision.set_outcome(events::v1::DECISION_OUTCOME_GRANTED);
    decision.mutable_offer()->set_code(offer);
    return adapter_->RecordDecision(Key(key), Case(), decision);
  }

  absl::StatusOr<Referral> Receive(const std::string& key, const std::string& offer) {
    Referral referral;
    referral.set_referral_id("X-000001");
    referral.set_status(events::v1::REFERRAL_STATUS_RECEIVED);
    referral.mutable_offer()->set_code(offer);
    return adapter_->RecordReferralStep(Key(key), Case(), referral);
  }

  TempDir dir_;
  std::unique_ptr<CaseSystemAdapter> adapter_;
};

TEST_P(SystemAdapterTest, CatalogueHoldsTheAdministrationsOffers) {
  std::vector<std::string> codes;
  for (const reference::CatalogueOffer& offer : GetParam().profile.offers) {
    codes.push_back(offer.code);
    EXPECT_FALSE(offer.name.empty()) << offer.code;
  }
  EXPECT_THAT(codes, ElementsAreArray(GetParam().catalogue));
}

TEST_P(SystemAdapterTest, EveryCatalogueOfferCanBeDecidedOnAndReceived) {
  int n = 0;
  for (const std::string& offer : GetParam().catalogue) {
    ++n;
    EXPECT_OK(Decide("decide-" + std::to_string(n), offer)) << offer;
  }
  EXPECT_OK(Receive("receive", GetParam().catalogue.front()));
}

TEST_P(SystemAdapterTest, AnotherAdministrationsOfferIsRefusedAsNotInTheCatalogue) {
  const std::string message = " not in the " + GetParam().profile.name + " catalogue";
  EXPECT_THAT(Decide("decide", GetParam().foreign_offer),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("decision.offer.code:" + message)));
  EXPECT_THAT(Receive("receive", GetParam().foreign_offer),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("referral.offer.code:" + message)));
}

TEST_P(SystemAdapterTest, RecordIdsCarryTheSystemsPrefixes) {
  EXPECT_EQ(Decide("decide", GetParam().catalogue.front()).value(),
            GetParam().decision_prefix + "000001");
  events::v1::Appointment appointment;
  appointment.set_kind(events::v1::APPOINTMENT_KIND_HEALTH_SESSION);
  EXPECT_EQ(adapter_->BookAppointment(Key("book"), Case(), appointment).value(),
            GetParam().appointment_prefix + "000001");
  Referral referral;
  referral.set_status(events::v1::REFERRAL_STATUS_SENT);
  referral.mutable_offer()->set_code(GetParam().foreign_offer);
  absl::StatusOr<Referral> sent = adapter_->RecordReferralStep(Key("send"), Case(), referral);
  ASSERT_OK(sent);
  EXPECT_EQ(sent->referral_id(), GetParam().referral_prefix + "000001");
}

TEST_P(SystemAdapterTest, ConfigWithoutVendorIsInvalidArgument) {
  EXPECT_THAT(GetParam().new_adapter(config::v1::CaseSystemAdapterConfig()),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("adapter: ")));
}

INSTANTIATE_TEST_SUITE_P(
    Systems, SystemAdapterTest,
    ::testing::Values(
        System{"JobCentre", &jobcentre::NewJobCentreAdapter,
               jobcentre::reference::JobCentreProfile(),
               {"LAB-resource-course", "LAB-mentor", "LAB-mentor-extended", "LAB-internship"},
               "SEL-85", "D-", "A-", "R-"},
        System{"Social", &social::NewSocialAdapter, social::reference::SocialProfile(),
               {"SEL-85", "SEL-85-bostøtte", "SEL-107", "SEL-101", "SEL-101a"},
               "SUL-140", "SD-", "SA-", "SR-"},
        System{"Health", &health::NewHealthAdapter, health::reference::HealthProfile(),
               {"SUL-119", "SUL-140", "SUL-141", "PSYK-samtaleforløb"},
               "LAB-mentor", "HD-", "HA-", "HR-"}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace casebridge
