// librdkafka configuration from a `casebridge.config.v1.KafkaConfig`.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "casebridge/config/v1/config.pb.h"

namespace casebridge::kafka {

// The delivery timeout in force (config value or the 10 s default).
absl::Duration DeliveryTimeout(const casebridge::config::v1::KafkaConfig& config);

// Returns kInvalidArgument naming the field if `config` is unusable:
// `kafka.bootstrap_servers` empty, or `kafka.properties` setting a
// durability property ("acks", "enable.idempotence", "request.required.acks").
absl::Status ValidateKafkaConfig(const casebridge::config::v1::KafkaConfig& config);

// The librdkafka properties common to producers and consumers:
// bootstrap.servers plus `config.properties`.
std::map<std::string, std::string> ClientProperties(
    const casebridge::config::v1::KafkaConfig& config);

}  // namespace casebridge::kafka
