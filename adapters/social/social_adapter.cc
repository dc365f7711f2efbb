#include "adapters/social/social_adapter.h"

#include "absl/status/status.h"
#include "adapters/social/reference/reference_social_system.h"

namespace casebridge::social {

absl::StatusOr<std::unique_ptr<CaseSystemAdapter>> NewSocialAdapter(
    const casebridge::config::v1::CaseSystemAdapterConfig& config) {
  // One case per vendor; -Wswitch flags a vendor added to the proto `oneof`
  // but not here.
  switch (config.vendor_case()) {
    case casebridge::config::v1::CaseSystemAdapterConfig::kReference:
      return reference::NewReferenceSocialSystem(config.reference());
    case casebridge::config::v1::CaseSystemAdapterConfig::VENDOR_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("adapter: exactly one vendor must be set (e.g. \"reference\")");
}

}  // namespace casebridge::social
