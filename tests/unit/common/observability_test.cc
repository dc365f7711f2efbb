// The metrics registry, the gauges read at scrape time, the gRPC
// interceptor's series, config checks, certificate expiry, and the probe
// server — without Kafka (the in-memory publisher is always reachable; a
// fake one is not).
#include "services/common/observability.h"

#include <grpcpp/grpcpp.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/kafka/memory_publisher.h"
#include "services/common/metrics.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/prometheus_text.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge {
namespace {

using ::casebridge::testing::HealthStatus;
using ::casebridge::testing::StatusIs;
using ::testing::HasSubstr;

std::vector<testing::MetricSample> Samples() {
  absl::StatusOr<std::vector<testing::MetricSample>> samples =
      testing::ParsePrometheusText(metrics::TextFormat());
  EXPECT_OK(samples);
  return samples.ok() ? *samples : std::vector<testing::MetricSample>{};
}

TEST(MetricsTest, CountersCarryTheirLabels) {
  metrics::EventPublished("topic-a", "dk.casebridge.decision.granted");
  metrics::EventPublished("topic-a", "dk.casebridge.decision.granted");
  metrics::Delivered("mentorhuset", "dk.casebridge.decision.granted", "minimal");
  EXPECT_EQ(testing::SumOf(Samples(), "casebridge_events_published_total",
                           {{"topic", "topic-a"}, {"event_type", "dk.casebridge.decision.granted"}}),
            2);
  EXPECT_EQ(testing::SumOf(Samples(), "casebridge_deliveries_total",
                           {{"recipient", "mentorhuset"}, {"disclosure", "minimal"}}),
            1);
}

TEST(MetricsTest, DeclaredSeriesStartAtZero) {
  metrics::DeclareTopic("topic-declared");
  EXPECT_EQ(testing::SumOf(Samples(), "casebridge_kafka_delivery_errors_total",
                           {{"topic", "topic-declared"}}),
            0);
  metrics::KafkaDeliveryError("topic-declared");
  EXPECT_EQ(testing::SumOf(Samples(), "casebridge_kafka_delivery_errors_total",
                           {{"topic", "topic-declared"}}),
            1);
}

TEST(MetricsTest, GaugeCallbackLivesAsLongAsItsObjectAndTheNewestWins) {
  {
    metrics::GaugeCallback older("casebridge_test_gauge", "help", [] { return 1.0; });
    EXPECT_EQ(testing::SumOf(Samples(), "casebridge_test_gauge"), 1);
    {
      metrics::GaugeCallback newer("casebridge_test_gauge", "help", [] { return 2.0; });
      EXPECT_EQ(testing::SumOf(Samples(), "casebridge_test_gauge"), 2);
    }
    EXPECT_EQ(testing::SumOf(Samples(), "casebridge_test_gauge"), 1);
  }
  EXPECT_EQ(testing::SumOf(Samples(), "casebridge_test_gauge"), std::nullopt);
}

TEST(MetricsTest, ProcessSeriesArePlausible) {
  const std::vector<testing::MetricSample> samples = Samples();
  EXPECT_GT(testing::SumOf(samples, "process_resident_memory_bytes").value_or(0), 1 << 20);
  EXPECT_GT(testing::SumOf(samples, "process_open_fds").value_or(0), 2);
  EXPECT_NEAR(testing::SumOf(samples, "process_start_time_seconds").value_or(0),
              absl::ToUnixSeconds(absl::Now()), 600);
}

TEST(ObservabilityConfigTest, ErrorsNameTheField) {
  config::v1::ObservabilityConfig config;
  config.set_metrics_address("9464");
  EXPECT_THAT(ValidateObservabilityConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("observability.metrics_address: \"9464\" is not host:port")));
  config.set_metrics_address("0.0.0.0:9464");
  config.set_health_address("0.0.0.0:99999");
  EXPECT_THAT(ValidateObservabilityConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("observability.health_address")));
  config.set_health_address("[::]:8086");
  config.set_log_level("verbose");
  EXPECT_THAT(ValidateObservabilityConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("observability.log_level: \"verbose\" is not one of debug, info, "
                                 "warning, error")));
  config.set_log_level("warning");
  config.mutable_kafka_check_interval()->set_nanos(1000);
  EXPECT_THAT(ValidateObservabilityConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("observability.kafka_check_interval")));
  config.mutable_kafka_check_interval()->set_seconds(10);
  EXPECT_OK(ValidateObservabilityConfig(config));
}

TEST(CertificateExpiryTest, ReadsNotAfterLikeOpenssl) {
  testing::TempDir dir;
  int code = 0;
  testing::RunCommand(absl::StrCat("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=test "
                                   "-days 30 -keyout ", dir.File("key.pem"), " -out ",
                                   dir.File("cert.pem"), " 2>/dev/null"),
                      &code);
  ASSERT_EQ(code, 0);
  const std::string end = testing::RunCommand(
      absl::StrCat("date -u -d \"$(openssl x509 -noout -enddate -in ", dir.File("cert.pem"),
                   " | cut -d= -f2)\" +%s"),
      &code);
  ASSERT_EQ(code, 0);
  absl::StatusOr<absl::Time> expiry = CertificateExpiry(dir.File("cert.pem"));
  ASSERT_OK(expiry);
  EXPECT_EQ(absl::ToUnixSeconds(*expiry), std::stoll(end));
  EXPECT_THAT(CertificateExpiry(dir.File("key.pem")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no PEM certificate")));
  EXPECT_THAT(CertificateExpiry(dir.File("missing.pem")).status(),
              StatusIs(absl::StatusCode::kNotFound));
}

// A publisher whose broker never answers.
class UnreachablePublisher final : public kafka::Publisher {
 public:
  std::future<absl::Status> Send(kafka::Record) override {
    std::promise<absl::Status> failed;
    failed.set_value(absl::UnavailableError("kafka: all brokers down"));
    return failed.get_future();
  }
  absl::Status Flush(absl::Duration) override { return absl::OkStatus(); }
  bool Healthy() const override { return true; }
  absl::Status CheckConnectivity(absl::Duration) override {
    return absl::UnavailableError("kafka: all brokers down");
  }
};

TEST(ObservabilityTest, ProbeServerFollowsKafkaAndShutdown) {
  testing::TempDir dir;
  UnreachablePublisher down;
  config::v1::ObservabilityConfig config;
  config.set_health_address("127.0.0.1:0");
  config.set_health_port_file(dir.File("health-port"));
  config.set_metrics_address("127.0.0.1:0");
  ObservabilityOptions options;
  options.service = "test";
  options.readiness_names = {"casebridge.test.v1.TestService"};
  options.publisher = &down;
  absl::StatusOr<std::unique_ptr<Observability>> o = Observability::Start(config, options, nullptr);
  ASSERT_OK(o);
  EXPECT_FALSE((*o)->ready());
  EXPECT_EQ(std::to_string((*o)->health_port()) + "\n",
            [&] {
              std::ifstream in(dir.File("health-port"));
              return std::string(std::istreambuf_iterator<char>(in), {});
            }());
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*o)->health_port()),
                                     grpc::InsecureChannelCredentials());
  EXPECT_EQ(HealthStatus(channel, "").value_or(-1), 1);  // alive
  EXPECT_EQ(HealthStatus(channel, "casebridge.test.v1.TestService").value_or(-1), 2);
  absl::StatusOr<std::string> scraped = testing::HttpGet((*o)->metrics_port(), "/metrics");
  ASSERT_OK(scraped);
  EXPECT_THAT(*scraped, HasSubstr("\ncasebridge_ready 0"));
  EXPECT_THAT(*scraped, HasSubstr("\ncasebridge_kafka_connected 0"));
  EXPECT_THAT(*scraped, HasSubstr("casebridge_build_info{"));
  (*o)->Shutdown();
  EXPECT_EQ(HealthStatus(channel, "").value_or(-1), 2);
}

TEST(ObservabilityTest, ReadyWithAReachablePublisher) {
  kafka::MemoryPublisher up;
  config::v1::ObservabilityConfig config;
  config.set_health_address("127.0.0.1:0");
  ObservabilityOptions options;
  options.readiness_names = {"casebridge.test.v1.TestService"};
  options.publisher = &up;
  absl::StatusOr<std::unique_ptr<Observability>> o = Observability::Start(config, options, nullptr);
  ASSERT_OK(o);
  EXPECT_TRUE((*o)->ready());
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*o)->health_port()),
                                     grpc::InsecureChannelCredentials());
  EXPECT_EQ(HealthStatus(channel, "casebridge.test.v1.TestService").value_or(-1), 1);
}

TEST(ObservabilityTest, AnAddressInUseIsAStartUpErrorNamingTheField) {
  config::v1::ObservabilityConfig first;
  first.set_metrics_address("127.0.0.1:0");
  absl::StatusOr<std::unique_ptr<Observability>> a =
      Observability::Start(first, ObservabilityOptions{}, nullptr);
  ASSERT_OK(a);
  config::v1::ObservabilityConfig second;
  second.set_metrics_address(absl::StrCat("127.0.0.1:", (*a)->metrics_port()));
  EXPECT_THAT(Observability::Start(second, ObservabilityOptions{}, nullptr).status(),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("observability.metrics_address: cannot listen on")));
}

}  // namespace
}  // namespace casebridge
