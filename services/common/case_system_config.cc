#include "services/common/case_system_config.h"

#include <algorithm>

#include "services/common/grpc_server.h"
#include "services/common/kafka/kafka_config.h"
#include "services/common/observability.h"
#include "services/common/status_macros.h"

namespace casebridge {

absl::Status ValidateCaseSystemConfig(
    const casebridge::config::v1::CaseSystemServiceConfig& config) {
  const std::string& m = config.municipality();
  if (m.size() != 4 ||
      !std::all_of(m.begin(), m.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return absl::InvalidArgumentError("municipality: required, 4 digits (kommunekode)");
  }
  RETURN_IF_ERROR(ValidateServerSecurity(config.server()));
  if (!config.has_kafka()) return absl::InvalidArgumentError("kafka: required");
  RETURN_IF_ERROR(kafka::ValidateKafkaConfig(config.kafka()));
  RETURN_IF_ERROR(ValidateObservabilityConfig(config.observability()));
  if (config.adapter().vendor_case() ==
      casebridge::config::v1::CaseSystemAdapterConfig::VENDOR_NOT_SET) {
    return absl::InvalidArgumentError(
        "adapter: exactly one vendor must be set (e.g. \"reference\")");
  }
  if (config.ledger_path().empty()) return absl::InvalidArgumentError("ledger_path: required");
  auto positive = [](const google::protobuf::Duration& d) {
    return d.seconds() > 0 || (d.seconds() == 0 && d.nanos() > 0);
  };
  if (config.adapter().has_call_timeout() && !positive(config.adapter().call_timeout())) {
    return absl::InvalidArgumentError("adapter.call_timeout: must be positive");
  }
  if (config.outbox().has_drain_initial_backoff() &&
      !positive(config.outbox().drain_initial_backoff())) {
    return absl::InvalidArgumentError("outbox.drain_initial_backoff: must be positive");
  }
  if (config.outbox().has_drain_max_backoff() && !positive(config.outbox().drain_max_backoff())) {
    return absl::InvalidArgumentError("outbox.drain_max_backoff: must be positive");
  }
  if (config.has_shutdown_grace_period() && !positive(config.shutdown_grace_period())) {
    return absl::InvalidArgumentError("shutdown_grace_period: must be positive");
  }
  return absl::OkStatus();
}

casebridge::config::v1::CaseSystemServiceConfig WithDefaults(
    casebridge::config::v1::CaseSystemServiceConfig config,
    const std::string& default_listen_address) {
  if (config.canonical_topic().empty()) config.set_canonical_topic(kDefaultCanonicalTopic);
  if (config.server().listen_address().empty()) {
    config.mutable_server()->set_listen_address(default_listen_address);
  }
  return config;
}

}  // namespace casebridge
