#include "services/common/kafka/kafka_config.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "services/common/tls_files.h"

namespace casebridge::kafka {
namespace {

// The librdkafka properties that `kafka.tls` sets.
constexpr const char* kTlsProperties[] = {"security.protocol", "ssl.ca.location",
                                          "ssl.certificate.location", "ssl.key.location"};

bool UsesTls(const casebridge::config::v1::KafkaConfig& config) {
  return config.has_tls();
}

absl::Status ValidateTls(const casebridge::config::v1::KafkaConfig& config) {
  const casebridge::config::v1::ClientTlsConfig& tls = config.tls();
  for (const char* property : kTlsProperties) {
    if (config.properties().contains(property)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kafka.properties: \"", property, "\" cannot be set together with kafka.tls"));
    }
  }
  if (tls.ca_file().empty()) return absl::InvalidArgumentError("kafka.tls.ca_file: required");
  if (tls.cert_file().empty() != tls.key_file().empty()) {
    return absl::InvalidArgumentError(
        tls.cert_file().empty() ? "kafka.tls.cert_file: required together with kafka.tls.key_file"
                                : "kafka.tls.key_file: required together with kafka.tls.cert_file");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Duration DeliveryTimeout(const casebridge::config::v1::KafkaConfig& config) {
  if (!config.has_delivery_timeout()) return absl::Seconds(10);
  return absl::Milliseconds(
      google::protobuf::util::TimeUtil::DurationToMilliseconds(config.delivery_timeout()));
}

absl::Status ValidateKafkaConfig(const casebridge::config::v1::KafkaConfig& config) {
  if (config.bootstrap_servers().empty()) {
    return absl::InvalidArgumentError("kafka.bootstrap_servers: required");
  }
  for (const char* forbidden : {"acks", "request.required.acks", "enable.idempotence"}) {
    if (config.properties().contains(forbidden)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kafka.properties: \"", forbidden,
          "\" cannot be set: casebridge always produces with acks=all and idempotence"));
    }
  }
  if (config.has_delivery_timeout() && DeliveryTimeout(config) <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("kafka.delivery_timeout: must be positive");
  }
  if (config.topic_partitions() < 0 || config.topic_replication_factor() < 0) {
    return absl::InvalidArgumentError(
        "kafka.topic_partitions/topic_replication_factor: must not be negative");
  }
  if (UsesTls(config)) return ValidateTls(config);
  return absl::OkStatus();
}

absl::Status CheckKafkaTlsFiles(const casebridge::config::v1::KafkaConfig& config) {
  using ::casebridge::common::PemKind;
  using ::casebridge::common::ReadPemFile;
  if (!UsesTls(config)) return absl::OkStatus();
  const casebridge::config::v1::ClientTlsConfig& tls = config.tls();
  absl::StatusOr<std::string> ca =
      ReadPemFile("kafka.tls.ca_file", tls.ca_file(), PemKind::kCertificates);
  if (!ca.ok()) return ca.status();
  if (tls.cert_file().empty()) return absl::OkStatus();
  absl::StatusOr<std::string> cert =
      ReadPemFile("kafka.tls.cert_file", tls.cert_file(), PemKind::kCertificates);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key =
      ReadPemFile("kafka.tls.key_file", tls.key_file(), PemKind::kPrivateKey);
  if (!key.ok()) return key.status();
  return common::CheckKeyMatchesCertificate("kafka.tls.cert_file", *cert, "kafka.tls.key_file",
                                            *key);
}

std::map<std::string, std::string> ClientProperties(
    const casebridge::config::v1::KafkaConfig& config) {
  std::map<std::string, std::string> properties = {
      {"bootstrap.servers", config.bootstrap_servers()},
      {"client.id", "casebridge"},
      {"broker.address.family", "v4"},
  };
  if (UsesTls(config)) {
    properties["security.protocol"] = "ssl";
    properties["ssl.ca.location"] = config.tls().ca_file();
    if (!config.tls().cert_file().empty()) {
      properties["ssl.certificate.location"] = config.tls().cert_file();
      properties["ssl.key.location"] = config.tls().key_file();
    }
  }
  for (const auto& [key, value] : config.properties()) properties[key] = value;
  return properties;
}

}  // namespace casebridge::kafka
