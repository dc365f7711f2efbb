// Fuzzes the strict JSON config loader (services/common/config.h) with the
// case-system services' config, `casebridge.config.v1.CaseSystemServiceConfig`,
// and what a service does with it at start-up: defaults, validation, and,
// for a valid config, the Kafka client properties and delivery timeout.
//
// Checked besides ASan/UBSan: errors are INVALID_ARGUMENT; a valid config
// has a positive delivery timeout and never lets `acks` or
// `enable.idempotence` through to the client properties.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "casebridge/config/v1/config.pb.h"
#include "services/common/case_system_config.h"
#include "services/common/config.h"
#include "services/common/kafka/kafka_config.h"

namespace {

void Fail(const char* what, const absl::Status& status) {
  fprintf(stderr, "case_system_config_fuzzer: %s: %s\n", what, status.ToString().c_str());
  abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using casebridge::config::v1::CaseSystemServiceConfig;
  const std::string json(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<CaseSystemServiceConfig> parsed =
      casebridge::ParseConfig<CaseSystemServiceConfig>(json);
  if (!parsed.ok()) {
    if (parsed.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail("parse error is not INVALID_ARGUMENT", parsed.status());
    }
    return 0;
  }
  const CaseSystemServiceConfig config = casebridge::WithDefaults(*parsed, "0.0.0.0:50051");
  const absl::Status valid = casebridge::ValidateCaseSystemConfig(config);
  if (!valid.ok()) {
    if (valid.code() != absl::StatusCode::kInvalidArgument) Fail("not INVALID_ARGUMENT", valid);
    return 0;
  }
  if (casebridge::kafka::DeliveryTimeout(config.kafka()) <= absl::ZeroDuration()) {
    Fail("a valid config has a delivery timeout that is not positive", valid);
  }
  const auto properties = casebridge::kafka::ClientProperties(config.kafka());
  for (const char* forbidden : {"acks", "request.required.acks", "enable.idempotence"}) {
    if (properties.contains(forbidden)) Fail("a forbidden Kafka property passed", valid);
  }
  return 0;
}
