#include "services/coordination/coordination_config.h"

#include <functional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/config.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge::coordination {
namespace {

using ::casebridge::config::v1::CoordinationServiceConfig;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::SourceDir;
using ::casebridge::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::Pair;
using ::testing::StartsWith;

CoordinationServiceConfig ValidConfig() {
  CoordinationServiceConfig config;
  config.mutable_server()->set_insecure_development_mode(true);
  config.mutable_kafka()->set_bootstrap_servers("127.0.0.1:9092");
  config.set_municipality("0751");
  config.set_store_path("/tmp/coordination.db");
  config.add_recipients()->set_id("aarhus-jobcenter");
  config.add_recipients()->set_id("mentorhuset");
  return config;
}

TEST(CoordinationConfigTest, AarhusSampleConfigIsValid) {
  auto config = LoadConfig<CoordinationServiceConfig>(
      SourceDir() + "/services/coordination/coordination.sample.json");
  ASSERT_THAT(config, IsOk());

  EXPECT_THAT(ValidateCoordinationConfig(WithDefaults(*config)), IsOk());
  EXPECT_EQ(config->recipients_size(), 7);
  EXPECT_EQ(config->municipality(), "0751");
  EXPECT_EQ(config->consumer_group(), "casebridge-coordination-0751");
  EXPECT_EQ(config->routing().rules_size(), 4);
  EXPECT_EQ(config->watchdogs().referral_ack_days(), 5);
  EXPECT_EQ(config->watchdogs().waitlist_without_estimate_days(), 14);
  EXPECT_EQ(config->watchdogs().min_follow_ups(), 6);
  EXPECT_EQ(config->watchdogs().no_contact_days(), 30);
  EXPECT_EQ(config->load().max_activities_per_day(), 2);
}

TEST(CoordinationConfigTest, OdenseSampleConfigIsValidAndDiffersFromAarhus) {
  auto odense = LoadConfig<CoordinationServiceConfig>(
      SourceDir() + "/services/coordination/coordination.odense.sample.json");
  auto aarhus = LoadConfig<CoordinationServiceConfig>(
      SourceDir() + "/services/coordination/coordination.sample.json");
  ASSERT_THAT(odense, IsOk());
  ASSERT_THAT(aarhus, IsOk());

  EXPECT_THAT(ValidateCoordinationConfig(WithDefaults(*odense)), IsOk());
  EXPECT_EQ(odense->municipality(), "0461");
  EXPECT_EQ(odense->watchdogs().referral_ack_days(), 3);
  EXPECT_EQ(odense->load().max_activities_per_day(), 3);
  // Two instances on one canonical topic need their own consumer groups.
  EXPECT_EQ(odense->canonical_topic(), aarhus->canonical_topic());
  EXPECT_NE(odense->consumer_group(), aarhus->consumer_group());
  EXPECT_NE(odense->routing().SerializeAsString(), aarhus->routing().SerializeAsString());
}

TEST(CoordinationConfigTest, DefaultsFillTopicsAndConsumerGroup) {
  CoordinationServiceConfig config = ValidConfig();
  config.mutable_recipients(1)->set_topic("mentors.v1");

  const CoordinationServiceConfig filled = WithDefaults(config);

  EXPECT_EQ(filled.canonical_topic(), "casebridge.case-events.v1");
  EXPECT_EQ(filled.consumer_group(), "casebridge-coordination-" + filled.municipality());
  EXPECT_THAT(RecipientTopics(filled),
              ElementsAre(Pair("aarhus-jobcenter", "casebridge.party.aarhus-jobcenter.v1"),
                          Pair("mentorhuset", "mentors.v1")));
  EXPECT_EQ(LedgerPath(filled), "/tmp/coordination.db.ledger");
  EXPECT_EQ(filled.watchdogs().follow_up_window_days(), 365);
  EXPECT_EQ(WatchdogInterval(filled), absl::Seconds(60));
  EXPECT_EQ(WatchdogInterval(config), absl::Seconds(60));
}

TEST(CoordinationConfigTest, ConfiguredWatchdogSettingsAreKept) {
  CoordinationServiceConfig config = ValidConfig();
  config.mutable_watchdogs()->mutable_check_interval()->set_seconds(5);
  config.mutable_watchdogs()->set_follow_up_window_days(180);

  const CoordinationServiceConfig filled = WithDefaults(config);

  EXPECT_EQ(WatchdogInterval(filled), absl::Seconds(5));
  EXPECT_EQ(filled.watchdogs().follow_up_window_days(), 180);
}

struct BadConfig {
  std::string field;
  std::function<void(CoordinationServiceConfig&)> spoil;
};

class CoordinationConfigFieldTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(CoordinationConfigFieldTest, BadFieldIsNamed) {
  CoordinationServiceConfig config = ValidConfig();
  GetParam().spoil(config);

  EXPECT_THAT(ValidateCoordinationConfig(WithDefaults(config)),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith(GetParam().field + ":")));
}

INSTANTIATE_TEST_SUITE_P(
    EachField, CoordinationConfigFieldTest,
    ::testing::Values(
        BadConfig{"server.tls", [](auto& c) { c.clear_server(); }},
        BadConfig{"kafka", [](auto& c) { c.clear_kafka(); }},
        BadConfig{"audit_topic", [](auto& c) { c.set_audit_topic("audit log"); }},
        BadConfig{"audit_topic",
                  [](auto& c) { c.set_audit_topic("casebridge.case-events.v1"); }},
        BadConfig{"recipients[1].topic",
                  [](auto& c) { c.mutable_recipients(1)->set_topic("casebridge.audit.v1"); }},
        BadConfig{"recipients[0].administration",
                  [](auto& c) {
                    c.mutable_recipients(0)->set_administration(
                        static_cast<common::v1::Administration>(77));
                  }},
        BadConfig{"authorization.administrators[0]",
                  [](auto& c) { c.mutable_authorization()->add_administrators(""); }},
        BadConfig{"kafka.bootstrap_servers",
                  [](auto& c) { c.mutable_kafka()->clear_bootstrap_servers(); }},
        BadConfig{"municipality", [](auto& c) { c.set_municipality("751"); }},
        BadConfig{"municipality", [](auto& c) { c.set_municipality("07a1"); }},
        BadConfig{"store_path", [](auto& c) { c.clear_store_path(); }},
        BadConfig{"store_url",
                  [](auto& c) { c.set_store_url("postgresql://db.example:5432/casebridge"); }},
        BadConfig{"store_url",
                  [](auto& c) {
                    c.clear_store_path();
                    c.set_store_url("mysql://db.example/casebridge");
                  }},
        BadConfig{"canonical_topic", [](auto& c) { c.set_canonical_topic("case events"); }},
        BadConfig{"recipients", [](auto& c) { c.clear_recipients(); }},
        BadConfig{"recipients[1].id", [](auto& c) { c.mutable_recipients(1)->set_id("Mentor"); }},
        BadConfig{"recipients[1].id", [](auto& c) { c.mutable_recipients(1)->set_id(""); }},
        BadConfig{"recipients[1].id",
                  [](auto& c) { c.mutable_recipients(1)->set_id(std::string(65, 'a')); }},
        BadConfig{"recipients[1].id",
                  [](auto& c) { c.mutable_recipients(1)->set_id("aarhus-jobcenter"); }},
        BadConfig{"recipients[0].topic",
                  [](auto& c) { c.mutable_recipients(0)->set_topic("casebridge.case-events.v1"); }},
        BadConfig{"recipients[1].topic",
                  [](auto& c) {
                    c.mutable_recipients(1)->set_topic("casebridge.party.aarhus-jobcenter.v1");
                  }},
        BadConfig{"routing.rules[0].event_types",
                  [](auto& c) {
                    c.mutable_routing()->add_rules()->add_roles(common::v1::ROLE_MENTOR);
                  }},
        BadConfig{"routing.rules[1].roles",
                  [](auto& c) {
                    auto& first = *c.mutable_routing()->add_rules();
                    first.add_event_types("dk.casebridge.decision.*");
                    first.add_roles(common::v1::ROLE_MENTOR);
                    c.mutable_routing()->add_rules()->add_event_types("dk.casebridge.referral.*");
                  }},
        BadConfig{"routing.rules[0].event_types[0]",
                  [](auto& c) {
                    auto& rule = *c.mutable_routing()->add_rules();
                    rule.add_event_types("decisions");
                    rule.add_roles(common::v1::ROLE_MENTOR);
                  }},
        BadConfig{"watchdogs.referral_ack_days",
                  [](auto& c) { c.mutable_watchdogs()->set_referral_ack_days(-1); }},
        BadConfig{"watchdogs.waitlist_without_estimate_days",
                  [](auto& c) { c.mutable_watchdogs()->set_waitlist_without_estimate_days(-1); }},
        BadConfig{"watchdogs.min_follow_ups",
                  [](auto& c) { c.mutable_watchdogs()->set_min_follow_ups(-6); }},
        BadConfig{"watchdogs.follow_up_window_days",
                  [](auto& c) { c.mutable_watchdogs()->set_follow_up_window_days(-1); }},
        BadConfig{"watchdogs.no_contact_days",
                  [](auto& c) { c.mutable_watchdogs()->set_no_contact_days(-30); }},
        BadConfig{"watchdogs.check_interval",
                  [](auto& c) { c.mutable_watchdogs()->mutable_check_interval()->set_seconds(0); }},
        BadConfig{"watchdogs.check_interval",
                  [](auto& c) {
                    c.mutable_watchdogs()->mutable_check_interval()->set_seconds(-5);
                  }},
        BadConfig{"load.max_activities_per_day",
                  [](auto& c) { c.mutable_load()->set_max_activities_per_day(-1); }}));

}  // namespace
}  // namespace casebridge::coordination
