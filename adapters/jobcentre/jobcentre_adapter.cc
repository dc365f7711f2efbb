#include "adapters/jobcentre/jobcentre_adapter.h"

#include "absl/status/status.h"
#include "adapters/jobcentre/reference/reference_jobcentre_system.h"

namespace casebridge::jobcentre {

absl::StatusOr<std::unique_ptr<CaseSystemAdapter>> NewJobCentreAdapter(
    const casebridge::config::v1::CaseSystemAdapterConfig& config) {
  // One case per vendor; -Wswitch flags a vendor added to the proto `oneof`
  // but not here.
  switch (config.vendor_case()) {
    case casebridge::config::v1::CaseSystemAdapterConfig::kReference:
      return reference::NewReferenceJobCentreSystem(config.reference());
    case casebridge::config::v1::CaseSystemAdapterConfig::VENDOR_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("adapter: exactly one vendor must be set (e.g. \"reference\")");
}

}  // namespace casebridge::jobcentre
