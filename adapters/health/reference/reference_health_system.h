// The reference health system: the shared reference case system
// (adapters/common/reference) with the municipal health administration's
// offer catalogue (sundhedsloven: health courses, rehabilitation, alcohol
// treatment; a psychological conversation course) and id prefixes HD-, HA-
// and HR-. README.md beside this file lists the catalogue.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "adapters/common/case_system_adapter.h"
#include "adapters/common/reference/reference_case_system.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/clock.h"

namespace casebridge::health::reference {

// The health administration's name, id prefixes and offer catalogue.
const casebridge::reference::ReferenceSystemProfile& HealthProfile();

// Opens the reference health system at `config.database_path`; errors as
// for `casebridge::reference::NewReferenceCaseSystem`.
absl::StatusOr<std::unique_ptr<CaseSystemAdapter>> NewReferenceHealthSystem(
    const casebridge::config::v1::ReferenceSystemConfig& config, Clock& clock = RealClock());

}  // namespace casebridge::health::reference
