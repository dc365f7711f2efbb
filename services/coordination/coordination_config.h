// The coordination service's configuration
// (`casebridge.config.v1.CoordinationServiceConfig`): its defaults and its
// validation, done once at start-up.
#pragma once

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "casebridge/config/v1/config.pb.h"

namespace casebridge::coordination {

inline constexpr char kDefaultCanonicalTopic[] = "casebridge.case-events.v1";
inline constexpr char kDefaultConsumerGroup[] = "casebridge-coordination";

// The default Kafka topic of recipient `id`: "casebridge.party.<id>.v1".
std::string DefaultRecipientTopic(absl::string_view id);

// Where the coordination service listens unless configured otherwise.
inline constexpr char kDefaultListenAddress[] = "0.0.0.0:50052";

// Returns `config` with every defaulted field filled in: `canonical_topic`,
// `consumer_group` and each recipient's `topic`.
casebridge::config::v1::CoordinationServiceConfig WithDefaults(
    casebridge::config::v1::CoordinationServiceConfig config);

// Returns kInvalidArgument with a message "<field path>: <reason>" for the
// first unusable field: `kafka` (see `ValidateKafkaConfig`), `municipality`
// (4 digits), `store_path` (required), `recipients` (at least one; ids 1–64
// characters from [a-z0-9-], unique), topic names (Kafka's characters;
// recipient topics unique and different from `canonical_topic`).
// Validate `WithDefaults(config)` to check the defaulted topics too.
absl::Status ValidateCoordinationConfig(
    const casebridge::config::v1::CoordinationServiceConfig& config);

// Recipient id → Kafka topic, for a config with defaults filled in.
std::map<std::string, std::string> RecipientTopics(
    const casebridge::config::v1::CoordinationServiceConfig& config);

// The `EventRecorder` ledger that `AssignRole` records into: a sibling of
// the store, `store_path` + ".ledger".
std::string LedgerPath(const casebridge::config::v1::CoordinationServiceConfig& config);

}  // namespace casebridge::coordination
