// The reference social-services system: the shared reference case system
// (adapters/common/reference) with social services' offer catalogue
// (serviceloven: support in the home, housing support, temporary housing,
// addiction treatment) and id prefixes SD-, SA- and SR-. README.md beside
// this file lists the catalogue.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "adapters/common/case_system_adapter.h"
#include "adapters/common/reference/reference_case_system.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/clock.h"

namespace casebridge::social::reference {

// Social services' name, id prefixes and offer catalogue.
const casebridge::reference::ReferenceSystemProfile& SocialProfile();

// Opens the reference social-services system at `config.database_path`;
// errors as for `casebridge::reference::NewReferenceCaseSystem`.
absl::StatusOr<std::unique_ptr<CaseSystemAdapter>> NewReferenceSocialSystem(
    const casebridge::config::v1::ReferenceSystemConfig& config, Clock& clock = RealClock());

}  // namespace casebridge::social::reference
