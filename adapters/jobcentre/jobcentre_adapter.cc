#include "adapters/jobcentre/jobcentre_adapter.h"

#include "absl/status/status.h"
#include "adapters/jobcentre/reference/reference_jobcentre_adapter.h"

namespace casebridge::jobcentre {

absl::StatusOr<std::unique_ptr<JobCentreAdapter>> NewJobCentreAdapter(
    const casebridge::config::v1::JobCentreAdapterConfig& config) {
  // One case per vendor; -Wswitch flags a vendor added to the proto `oneof`
  // but not here.
  switch (config.vendor_case()) {
    case casebridge::config::v1::JobCentreAdapterConfig::kReference:
      return reference::NewReferenceJobCentreAdapter(config.reference());
    case casebridge::config::v1::JobCentreAdapterConfig::VENDOR_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("adapter: exactly one vendor must be set (e.g. \"reference\")");
}

}  // namespace casebridge::jobcentre
