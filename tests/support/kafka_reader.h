// Reading what really crossed the wire in integration tests: every record on
// a topic, through a fresh consumer group, polling with a deadline.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/kafka/record.h"

namespace casebridge::testing {

// A KafkaConfig for the test broker.
casebridge::config::v1::KafkaConfig TestKafkaConfig();

// Reads `topic` from the beginning with a new consumer group until
// `done(records)` returns true or `timeout` passes; returns what it read.
std::vector<kafka::Record> ReadTopic(
    const std::string& topic, const std::function<bool(const std::vector<kafka::Record>&)>& done,
    absl::Duration timeout = absl::Seconds(30));

// Reads `topic` until at least `count` records arrived (or `timeout`), then
// keeps reading for `settle` to catch records that should not be there.
std::vector<kafka::Record> ReadAtLeast(const std::string& topic, size_t count,
                                       absl::Duration settle = absl::Milliseconds(1500),
                                       absl::Duration timeout = absl::Seconds(30));

// Runs `command` with /bin/sh and returns its stdout; sets `*exit_code`.
std::string RunCommand(const std::string& command, int* exit_code);

}  // namespace casebridge::testing
