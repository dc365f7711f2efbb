#include "services/common/config.h"

#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_replace.h"
#include "casebridge/config/v1/config.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/case_system_config.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge {
namespace {

using ::casebridge::config::v1::CaseSystemServiceConfig;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::StatusIs;
using ::casebridge::testing::TempDir;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A service's default listen address, as `WithDefaults` takes it.
constexpr char kListen[] = "0.0.0.0:50051";

// A complete, valid job-centre config in the canonical JSON mapping.
constexpr char kValidJson[] = R"json({
  "municipality": "0751",
  "server": {"listenAddress": "127.0.0.1:0", "insecureDevelopmentMode": true},
  "kafka": {
    "bootstrapServers": "localhost:9092",
    "properties": {"security.protocol": "plaintext"},
    "deliveryTimeout": "5s"
  },
  "adapter": {"reference": {"databasePath": "/var/lib/casebridge/jobcentre.db"}},
  "ledgerPath": "/var/lib/casebridge/ledger.db",
  "pseudonym": {"keyFile": "/run/secrets/pseudonym-key"}
})json";

class ConfigTest : public ::testing::Test {
 protected:
  // `kValidJson` with `from` replaced by `to` (which must occur).
  static std::string ValidJsonWith(const std::string& from, const std::string& to) {
    const std::string json(kValidJson);
    EXPECT_THAT(json, HasSubstr(from));
    return absl::StrReplaceAll(json, {{from, to}});
  }
  static CaseSystemServiceConfig Valid() {
    absl::StatusOr<CaseSystemServiceConfig> config = ParseConfig<CaseSystemServiceConfig>(kValidJson);
    EXPECT_OK(config);
    return config.ok() ? *config : CaseSystemServiceConfig();
  }
  std::string WriteFile(const std::string& name, const std::string& contents) {
    const std::string path = dir_.File(name);
    std::ofstream(path) << contents;
    return path;
  }

  TempDir dir_;
};

// ---------------------------------------------------------------------------
// ParseConfig / LoadConfig

TEST_F(ConfigTest, ParsesAValidConfig) {
  const CaseSystemServiceConfig config = Valid();
  EXPECT_EQ(config.municipality(), "0751");
  EXPECT_EQ(config.server().listen_address(), "127.0.0.1:0");
  EXPECT_EQ(config.kafka().bootstrap_servers(), "localhost:9092");
  EXPECT_EQ(config.kafka().properties().at("security.protocol"), "plaintext");
  EXPECT_EQ(config.kafka().delivery_timeout().seconds(), 5);
  EXPECT_EQ(config.adapter().reference().database_path(), "/var/lib/casebridge/jobcentre.db");
  EXPECT_EQ(config.ledger_path(), "/var/lib/casebridge/ledger.db");
  EXPECT_EQ(config.pseudonym().key_file(), "/run/secrets/pseudonym-key");
}

TEST_F(ConfigTest, AcceptsProtoFieldNames) {
  EXPECT_OK(ParseConfig<CaseSystemServiceConfig>(
      ValidJsonWith("\"ledgerPath\"", "\"ledger_path\"")));
}

TEST_F(ConfigTest, RejectsAnUnknownFieldNamingIt) {
  EXPECT_THAT(
      ParseConfig<CaseSystemServiceConfig>(ValidJsonWith("\"municipality\"", "\"munipality\"")),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(StartsWith("config: "), HasSubstr("munipality"))));
}

TEST_F(ConfigTest, RejectsAnUnknownNestedFieldNamingIt) {
  EXPECT_THAT(ParseConfig<CaseSystemServiceConfig>(
                  ValidJsonWith("\"deliveryTimeout\"", "\"deliveryTimout\"")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("deliveryTimout")));
}

TEST_F(ConfigTest, RejectsAnObjectWhereAStringBelongs) {
  EXPECT_THAT(ParseConfig<CaseSystemServiceConfig>(
                  ValidJsonWith("\"municipality\": \"0751\"", "\"municipality\": {\"code\": 751}")),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ConfigTest, RejectsAStringWhereAnObjectBelongs) {
  EXPECT_THAT(ParseConfig<CaseSystemServiceConfig>(
                  ValidJsonWith("\"pseudonym\": {\"keyFile\": \"/run/secrets/pseudonym-key\"}",
                                "\"pseudonym\": \"/run/secrets/pseudonym-key\"")),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ConfigTest, RejectsTextWhereANumberBelongs) {
  EXPECT_THAT(ParseConfig<CaseSystemServiceConfig>(ValidJsonWith(
                  "\"listenAddress\": \"127.0.0.1:0\"",
                  "\"listenAddress\": \"127.0.0.1:0\", \"maxReceiveMessageBytes\": \"lots\"")),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ConfigTest, RejectsAMalformedDuration) {
  EXPECT_THAT(ParseConfig<CaseSystemServiceConfig>(ValidJsonWith("\"5s\"", "\"five seconds\"")),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ConfigTest, RejectsSomethingThatIsNotJson) {
  EXPECT_THAT(ParseConfig<CaseSystemServiceConfig>("municipality = 0751"),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("config: ")));
}

TEST_F(ConfigTest, LoadsAConfigFile) {
  absl::StatusOr<CaseSystemServiceConfig> config =
      LoadConfig<CaseSystemServiceConfig>(WriteFile("jobcentre.json", kValidJson));
  ASSERT_OK(config);
  EXPECT_EQ(config->municipality(), "0751");
}

TEST_F(ConfigTest, MissingConfigFileIsNotFoundNamingThePath) {
  const std::string path = dir_.File("missing.json");
  EXPECT_THAT(LoadConfig<CaseSystemServiceConfig>(path),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
}

TEST_F(ConfigTest, BadConfigFileIsInvalidArgumentNamingThePathAndTheField) {
  const std::string path =
      WriteFile("bad.json", ValidJsonWith("\"ledgerPath\"", "\"ledgerPth\""));
  EXPECT_THAT(LoadConfig<CaseSystemServiceConfig>(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(StartsWith(path + ": "), HasSubstr("ledgerPth"))));
}

// ---------------------------------------------------------------------------
// ValidateCaseSystemConfig / WithDefaults

TEST_F(ConfigTest, ValidConfigPassesValidation) { EXPECT_OK(ValidateCaseSystemConfig(Valid())); }

TEST_F(ConfigTest, MunicipalityIsRequired) {
  CaseSystemServiceConfig config = Valid();
  config.clear_municipality();
  EXPECT_THAT(ValidateCaseSystemConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("municipality: ")));
}

TEST_F(ConfigTest, MunicipalityMustBeFourDigits) {
  for (const char* bad : {"751", "07510", "07a1", "Aarh"}) {
    CaseSystemServiceConfig config = Valid();
    config.set_municipality(bad);
    EXPECT_THAT(ValidateCaseSystemConfig(config),
                StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("municipality: ")))
        << bad;
  }
}

TEST_F(ConfigTest, KafkaIsRequired) {
  CaseSystemServiceConfig config = Valid();
  config.clear_kafka();
  EXPECT_THAT(ValidateCaseSystemConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("kafka")));
}

TEST_F(ConfigTest, KafkaBootstrapServersAreRequired) {
  CaseSystemServiceConfig config = Valid();
  config.mutable_kafka()->clear_bootstrap_servers();
  EXPECT_THAT(ValidateCaseSystemConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       StartsWith("kafka.bootstrap_servers: ")));
}

TEST_F(ConfigTest, KafkaPropertiesCannotSetAcks) {
  CaseSystemServiceConfig config = Valid();
  (*config.mutable_kafka()->mutable_properties())["acks"] = "1";
  EXPECT_THAT(ValidateCaseSystemConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(StartsWith("kafka.properties: "), HasSubstr("acks"))));
}

TEST_F(ConfigTest, KafkaPropertiesCannotTurnOffIdempotence) {
  for (const char* property : {"enable.idempotence", "request.required.acks"}) {
    CaseSystemServiceConfig config = Valid();
    (*config.mutable_kafka()->mutable_properties())[property] = "false";
    EXPECT_THAT(ValidateCaseSystemConfig(config),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(StartsWith("kafka.properties: "), HasSubstr(property))));
  }
}

TEST_F(ConfigTest, KafkaDeliveryTimeoutMustBePositive) {
  CaseSystemServiceConfig config = Valid();
  config.mutable_kafka()->mutable_delivery_timeout()->set_seconds(0);
  EXPECT_THAT(ValidateCaseSystemConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("kafka.delivery_timeout: ")));
}

TEST_F(ConfigTest, AdapterVendorIsRequired) {
  CaseSystemServiceConfig config = Valid();
  config.mutable_adapter()->clear_reference();
  EXPECT_THAT(ValidateCaseSystemConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("adapter: ")));
}

TEST_F(ConfigTest, LedgerPathIsRequired) {
  CaseSystemServiceConfig config = Valid();
  config.clear_ledger_path();
  EXPECT_THAT(ValidateCaseSystemConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("ledger_path: ")));
}

TEST_F(ConfigTest, AdapterCallTimeoutMustBePositive) {
  CaseSystemServiceConfig config = Valid();
  config.mutable_adapter()->mutable_call_timeout()->set_seconds(-1);
  EXPECT_THAT(ValidateCaseSystemConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       StartsWith("adapter.call_timeout: must be positive")));
}

TEST_F(ConfigTest, OutboxDrainBackoffsMustBePositive) {
  CaseSystemServiceConfig config = Valid();
  config.mutable_outbox()->mutable_drain_initial_backoff()->set_seconds(0);
  EXPECT_THAT(ValidateCaseSystemConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       StartsWith("outbox.drain_initial_backoff: must be positive")));
  config = Valid();
  config.mutable_outbox()->mutable_drain_max_backoff()->set_seconds(-5);
  EXPECT_THAT(ValidateCaseSystemConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       StartsWith("outbox.drain_max_backoff: must be positive")));
}

TEST_F(ConfigTest, ShutdownGracePeriodMustBePositive) {
  CaseSystemServiceConfig config = Valid();
  config.mutable_shutdown_grace_period()->set_nanos(0);
  EXPECT_THAT(ValidateCaseSystemConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       StartsWith("shutdown_grace_period: must be positive")));
  config.mutable_shutdown_grace_period()->set_seconds(10);
  EXPECT_OK(ValidateCaseSystemConfig(config));
}

TEST_F(ConfigTest, DefaultsFillTheCanonicalTopic) {
  EXPECT_EQ(WithDefaults(Valid(), kListen).canonical_topic(), "casebridge.case-events.v1");
  EXPECT_EQ(std::string(kDefaultCanonicalTopic), "casebridge.case-events.v1");
}

TEST_F(ConfigTest, DefaultsKeepAGivenCanonicalTopic) {
  CaseSystemServiceConfig config = Valid();
  config.set_canonical_topic("test.case-events.v1");
  EXPECT_EQ(WithDefaults(config, kListen).canonical_topic(), "test.case-events.v1");
}

TEST_F(ConfigTest, EachCaseSystemSampleConfigIsValid) {
  for (const char* system : {"jobcentre", "social", "health"}) {
    absl::StatusOr<CaseSystemServiceConfig> config = LoadConfig<CaseSystemServiceConfig>(
        testing::SourceDir() + "/services/" + system + "/" + system + ".sample.json");
    ASSERT_OK(config) << system;
    EXPECT_OK(ValidateCaseSystemConfig(WithDefaults(*config, kListen))) << system;
  }
}

TEST_F(ConfigTest, DefaultsFillTheServicesListenAddress) {
  CaseSystemServiceConfig config = Valid();
  config.mutable_server()->clear_listen_address();
  EXPECT_EQ(WithDefaults(config, "0.0.0.0:50054").server().listen_address(), "0.0.0.0:50054");
}

TEST_F(ConfigTest, DefaultsChangeNothingElse) {
  CaseSystemServiceConfig config = WithDefaults(Valid(), kListen);
  config.clear_canonical_topic();
  EXPECT_EQ(config.SerializeAsString(), Valid().SerializeAsString());
}

}  // namespace
}  // namespace casebridge
