#include "services/coordination/coordination_config.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/common/grpc_server.h"
#include "services/common/kafka/kafka_config.h"
#include "services/common/observability.h"
#include "services/common/sql.h"
#include "services/common/status_macros.h"
#include "services/coordination/audit_log.h"
#include "services/coordination/router.h"

namespace casebridge::coordination {
namespace {

using casebridge::config::v1::CoordinationServiceConfig;
using casebridge::config::v1::Recipient;
using casebridge::config::v1::WatchdogConfig;

bool IsRecipientId(absl::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '-') return false;
  }
  return true;
}

// Kafka's rule for topic names: 1–249 characters from [a-zA-Z0-9._-].
absl::Status ValidateTopic(absl::string_view topic, absl::string_view field) {
  bool legal = !topic.empty() && topic.size() <= 249;
  for (char c : topic) {
    legal = legal && (absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-');
  }
  if (!legal) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be 1–249 characters from [a-zA-Z0-9._-]"));
  }
  return absl::OkStatus();
}

absl::Status NotNegative(int32_t value, absl::string_view field) {
  if (value < 0) return absl::InvalidArgumentError(absl::StrCat(field, ": must not be negative"));
  return absl::OkStatus();
}

absl::Status ValidateWatchdogs(const WatchdogConfig& watchdogs) {
  RETURN_IF_ERROR(NotNegative(watchdogs.referral_ack_days(), "watchdogs.referral_ack_days"));
  RETURN_IF_ERROR(NotNegative(watchdogs.waitlist_without_estimate_days(),
                              "watchdogs.waitlist_without_estimate_days"));
  RETURN_IF_ERROR(NotNegative(watchdogs.min_follow_ups(), "watchdogs.min_follow_ups"));
  RETURN_IF_ERROR(
      NotNegative(watchdogs.follow_up_window_days(), "watchdogs.follow_up_window_days"));
  RETURN_IF_ERROR(NotNegative(watchdogs.no_contact_days(), "watchdogs.no_contact_days"));
  if (watchdogs.has_check_interval()) {
    const auto& interval = watchdogs.check_interval();
    // Positive and within google.protobuf.Duration's range (10,000 years).
    const bool valid = interval.seconds() <= 315576000000LL && interval.nanos() >= 0 &&
                       interval.nanos() <= 999999999;
    if (!valid || interval.seconds() < 0 || (interval.seconds() == 0 && interval.nanos() == 0)) {
      return absl::InvalidArgumentError("watchdogs.check_interval: must be positive");
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string DefaultRecipientTopic(absl::string_view id) {
  return absl::StrCat("casebridge.party.", id, ".v1");
}

CoordinationServiceConfig WithDefaults(CoordinationServiceConfig config) {
  if (config.canonical_topic().empty()) config.set_canonical_topic(kDefaultCanonicalTopic);
  if (config.audit_topic().empty()) config.set_audit_topic(kDefaultAuditTopic);
  if (config.dead_letter_topic().empty()) config.set_dead_letter_topic(kDefaultDeadLetterTopic);
  if (config.consumer_group().empty()) {
    config.set_consumer_group(absl::StrCat(kDefaultConsumerGroup, "-", config.municipality()));
  }
  if (config.server().listen_address().empty()) {
    config.mutable_server()->set_listen_address(kDefaultListenAddress);
  }
  for (Recipient& recipient : *config.mutable_recipients()) {
    if (recipient.topic().empty()) recipient.set_topic(DefaultRecipientTopic(recipient.id()));
  }
  WatchdogConfig& watchdogs = *config.mutable_watchdogs();
  if (!watchdogs.has_check_interval()) {
    watchdogs.mutable_check_interval()->set_seconds(
        absl::ToInt64Seconds(kDefaultWatchdogInterval));
  }
  if (watchdogs.follow_up_window_days() == 0) {
    watchdogs.set_follow_up_window_days(kDefaultFollowUpWindowDays);
  }
  return config;
}

absl::Status ValidateCoordinationConfig(const CoordinationServiceConfig& config) {
  RETURN_IF_ERROR(ValidateServerSecurity(config.server()));
  if (!config.has_kafka()) return absl::InvalidArgumentError("kafka: required");
  RETURN_IF_ERROR(kafka::ValidateKafkaConfig(config.kafka()));
  RETURN_IF_ERROR(ValidateObservabilityConfig(config.observability()));
  const std::string& municipality = config.municipality();
  if (municipality.size() != 4 ||
      !std::all_of(municipality.begin(), municipality.end(), absl::ascii_isdigit)) {
    return absl::InvalidArgumentError("municipality: must be 4 digits (kommunekode)");
  }
  if (config.store_path().empty() && config.store_url().empty()) {
    return absl::InvalidArgumentError(
        "store_path: required unless store_url is set (an SQLite file for one instance, or a "
        "PostgreSQL URL shared by replicas)");
  }
  if (!config.store_path().empty() && !config.store_url().empty()) {
    return absl::InvalidArgumentError("store_url: set together with store_path; give one");
  }
  if (!config.store_url().empty() && !sql::IsPostgresTarget(config.store_url())) {
    return absl::InvalidArgumentError(
        "store_url: must be a PostgreSQL URI (postgresql://host:port/database)");
  }
  if (!config.canonical_topic().empty()) {
    RETURN_IF_ERROR(ValidateTopic(config.canonical_topic(), "canonical_topic"));
  }
  if (config.recipients().empty()) {
    return absl::InvalidArgumentError("recipients: at least one recipient is required");
  }
  const std::string canonical_topic =
      config.canonical_topic().empty() ? kDefaultCanonicalTopic : config.canonical_topic();
  if (!config.audit_topic().empty()) {
    RETURN_IF_ERROR(ValidateTopic(config.audit_topic(), "audit_topic"));
  }
  const std::string audit_topic =
      config.audit_topic().empty() ? kDefaultAuditTopic : config.audit_topic();
  if (audit_topic == canonical_topic) {
    return absl::InvalidArgumentError("audit_topic: must differ from canonical_topic");
  }
  if (!config.dead_letter_topic().empty()) {
    RETURN_IF_ERROR(ValidateTopic(config.dead_letter_topic(), "dead_letter_topic"));
    if (config.dead_letter_topic() == canonical_topic ||
        config.dead_letter_topic() == audit_topic) {
      return absl::InvalidArgumentError(
          "dead_letter_topic: must differ from canonical_topic and audit_topic");
    }
  }
  std::set<std::string> ids;
  std::set<std::string> topics;
  for (int i = 0; i < config.recipients_size(); ++i) {
    const Recipient& recipient = config.recipients(i);
    const std::string field = absl::StrCat("recipients[", i, "]");
    if (!IsRecipientId(recipient.id())) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".id: must be 1–64 characters from [a-z0-9-]"));
    }
    if (!ids.insert(recipient.id()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".id: duplicate recipient \"", recipient.id(), "\""));
    }
    const std::string topic =
        recipient.topic().empty() ? DefaultRecipientTopic(recipient.id()) : recipient.topic();
    RETURN_IF_ERROR(ValidateTopic(topic, absl::StrCat(field, ".topic")));
    // A recipient topic equal to the canonical one would feed deliveries back
    // into the consumer: an endless loop.
    if (topic == canonical_topic) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".topic: must differ from canonical_topic"));
    }
    if (!topics.insert(topic).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".topic: \"", topic, "\" is already another recipient's topic"));
    }
    if (topic == audit_topic) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".topic: must differ from audit_topic"));
    }
    if (!casebridge::common::v1::Administration_IsValid(recipient.administration())) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".administration: unknown value"));
    }
  }
  for (int i = 0; i < config.authorization().administrators_size(); ++i) {
    if (config.authorization().administrators(i).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("authorization.administrators[", i, "]: must not be empty"));
    }
  }
  RETURN_IF_ERROR(ValidateRoutingConfig(config.routing(), "routing"));
  RETURN_IF_ERROR(ValidateWatchdogs(config.watchdogs()));
  RETURN_IF_ERROR(
      NotNegative(config.load().max_activities_per_day(), "load.max_activities_per_day"));
  return absl::OkStatus();
}

absl::Duration WatchdogInterval(const CoordinationServiceConfig& config) {
  if (!config.watchdogs().has_check_interval()) return kDefaultWatchdogInterval;
  const auto& interval = config.watchdogs().check_interval();
  return absl::Seconds(interval.seconds()) + absl::Nanoseconds(interval.nanos());
}

std::map<std::string, std::string> RecipientTopics(const CoordinationServiceConfig& config) {
  std::map<std::string, std::string> topics;
  for (const Recipient& recipient : config.recipients()) {
    topics[recipient.id()] =
        recipient.topic().empty() ? DefaultRecipientTopic(recipient.id()) : recipient.topic();
  }
  return topics;
}

std::string StoreTarget(const CoordinationServiceConfig& config) {
  return config.store_url().empty() ? config.store_path() : config.store_url();
}

std::string LedgerPath(const CoordinationServiceConfig& config) {
  if (!config.store_url().empty()) return config.store_url();
  return absl::StrCat(config.store_path(), ".ledger");
}

}  // namespace casebridge::coordination
