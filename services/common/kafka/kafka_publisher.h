// The librdkafka `Publisher`: an idempotent producer with acks=all, a poll
// thread that serves delivery reports, and one promise per record.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/kafka/publisher.h"

namespace casebridge::kafka {

// Creates a producer for `config`. `topics` are warmed up (metadata fetched)
// so that the first record does not wait for librdkafka's periodic topic
// scan. Returns kInvalidArgument naming the property librdkafka rejected, or
// if `config.properties` tries to set "acks" or "enable.idempotence".
absl::StatusOr<std::unique_ptr<Publisher>> NewKafkaPublisher(
    const casebridge::config::v1::KafkaConfig& config, const std::vector<std::string>& topics = {});

}  // namespace casebridge::kafka
