// The coordination service's configuration
// (`casebridge.config.v1.CoordinationServiceConfig`): its defaults and its
// validation, done once at start-up.
#pragma once

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "casebridge/config/v1/config.pb.h"

namespace casebridge::coordination {

inline constexpr char kDefaultCanonicalTopic[] = "casebridge.case-events.v1";
inline constexpr char kDefaultDeadLetterTopic[] = "casebridge.dead-letter.v1";
// The default consumer group is this prefix, "-", and the municipality:
// every municipality's instance must read every record of the canonical topic.
inline constexpr char kDefaultConsumerGroup[] = "casebridge-coordination";

// The default Kafka topic of recipient `id`: "casebridge.party.<id>.v1".
std::string DefaultRecipientTopic(absl::string_view id);

// Where the coordination service listens unless configured otherwise.
inline constexpr char kDefaultListenAddress[] = "0.0.0.0:50052";

// How often the watchdogs run unless `watchdogs.check_interval` says otherwise.
inline constexpr absl::Duration kDefaultWatchdogInterval = absl::Seconds(60);
// The window of `watchdogs.min_follow_ups` unless configured: a year.
inline constexpr int kDefaultFollowUpWindowDays = 365;

// Returns `config` with every defaulted field filled in: `canonical_topic`,
// `consumer_group`, each recipient's `topic`, `watchdogs.check_interval`
// and `watchdogs.follow_up_window_days`.
casebridge::config::v1::CoordinationServiceConfig WithDefaults(
    casebridge::config::v1::CoordinationServiceConfig config);

// Returns kInvalidArgument with a message "<field path>: <reason>" for the
// first unusable field: `kafka` (see `ValidateKafkaConfig`), `municipality`
// (4 digits), exactly one of `store_path` and `store_url`, `recipients` (at least one; ids 1–64
// characters from [a-z0-9-], unique), topic names (Kafka's characters;
// recipient topics unique and different from `canonical_topic`), `routing`
// (see `ValidateRoutingConfig`: e.g. "routing.rules[1].roles: …"),
// `watchdogs` (thresholds not negative; `check_interval` positive) and
// `load.max_activities_per_day` (not negative).
// Validate `WithDefaults(config)` to check the defaulted topics too.
absl::Status ValidateCoordinationConfig(
    const casebridge::config::v1::CoordinationServiceConfig& config);

// Recipient id → Kafka topic, for a config with defaults filled in.
std::map<std::string, std::string> RecipientTopics(
    const casebridge::config::v1::CoordinationServiceConfig& config);

// How often the watchdogs run: `watchdogs.check_interval`, else
// `kDefaultWatchdogInterval`.
absl::Duration WatchdogInterval(const casebridge::config::v1::CoordinationServiceConfig& config);

// The store to open: `store_url` if set, else `store_path`.
std::string StoreTarget(const casebridge::config::v1::CoordinationServiceConfig& config);

// The `EventRecorder` ledger that `AssignRole` and the case rules record
// into: a sibling of the SQLite store, `store_path` + ".ledger", or the
// shared PostgreSQL database itself (`store_url`).
std::string LedgerPath(const casebridge::config::v1::CoordinationServiceConfig& config);

}  // namespace casebridge::coordination
