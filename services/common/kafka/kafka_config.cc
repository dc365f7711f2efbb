#include "services/common/kafka/kafka_config.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace casebridge::kafka {

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
  return absl::OkStatus();
}

std::map<std::string, std::string> ClientProperties(
    const casebridge::config::v1::KafkaConfig& config) {
  std::map<std::string, std::string> properties = {
      {"bootstrap.servers", config.bootstrap_servers()},
      {"client.id", "casebridge"},
      {"broker.address.family", "v4"},
  };
  for (const auto& [key, value] : config.properties()) properties[key] = value;
  return properties;
}

}  // namespace casebridge::kafka
