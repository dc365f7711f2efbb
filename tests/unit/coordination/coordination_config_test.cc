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
  config.mutable_kafka()->set_bootstrap_servers("127.0.0.1:9092");
  config.set_municipality("0751");
  config.set_store_path("/tmp/coordination.db");
  config.add_recipients()->set_id("aarhus-jobcenter");
  config.add_recipients()->set_id("mentorhuset");
  return config;
}

TEST(CoordinationConfigTest, SampleConfigIsValid) {
  auto config = LoadConfig<CoordinationServiceConfig>(
      SourceDir() + "/services/coordination/coordination.sample.json");
  ASSERT_THAT(config, IsOk());

  EXPECT_THAT(ValidateCoordinationConfig(WithDefaults(*config)), IsOk());
  EXPECT_EQ(config->recipients_size(), 4);
  EXPECT_EQ(config->municipality(), "0751");
}

TEST(CoordinationConfigTest, DefaultsFillTopicsAndConsumerGroup) {
  CoordinationServiceConfig config = ValidConfig();
  config.mutable_recipients(1)->set_topic("mentors.v1");

  const CoordinationServiceConfig filled = WithDefaults(config);

  EXPECT_EQ(filled.canonical_topic(), "casebridge.case-events.v1");
  EXPECT_EQ(filled.consumer_group(), "casebridge-coordination");
  EXPECT_THAT(RecipientTopics(filled),
              ElementsAre(Pair("aarhus-jobcenter", "casebridge.party.aarhus-jobcenter.v1"),
                          Pair("mentorhuset", "mentors.v1")));
  EXPECT_EQ(LedgerPath(filled), "/tmp/coordination.db.ledger");
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
        BadConfig{"kafka", [](auto& c) { c.clear_kafka(); }},
        BadConfig{"kafka.bootstrap_servers",
                  [](auto& c) { c.mutable_kafka()->clear_bootstrap_servers(); }},
        BadConfig{"municipality", [](auto& c) { c.set_municipality("751"); }},
        BadConfig{"municipality", [](auto& c) { c.set_municipality("07a1"); }},
        BadConfig{"store_path", [](auto& c) { c.clear_store_path(); }},
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
        BadConfig{"recipients[1].topic", [](auto& c) {
                    c.mutable_recipients(1)->set_topic("casebridge.party.aarhus-jobcenter.v1");
                  }}));

}  // namespace
}  // namespace casebridge::coordination
