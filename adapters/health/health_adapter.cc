#include "adapters/health/health_adapter.h"

#include "absl/status/status.h"
#include "adapters/health/reference/reference_health_system.h"

namespace casebridge::health {

absl::StatusOr<std::unique_ptr<CaseSystemAdapter>> NewHealthAdapter(
    const casebridge::config::v1::CaseSystemAdapterConfig& config) {
  // One case per vendor; -Wswitch flags a vendor added to the proto `oneof`
  // but not here.
  switch (config.vendor_case()) {
    case casebridge::config::v1::CaseSystemAdapterConfig::kReference:
      return reference::NewReferenceHealthSystem(config.reference());
    case casebridge::config::v1::CaseSystemAdapterConfig::VENDOR_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("adapter: exactly one vendor must be set (e.g. \"reference\")");
}

}  // namespace casebridge::health
