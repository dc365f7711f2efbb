// The reference job-centre system: the shared reference case system
// (adapters/common/reference) with the job centre's offer catalogue and id
// prefixes D- (decisions), A- (appointments) and R- (referrals it sends).
// README.md beside this file lists the catalogue.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "adapters/common/case_system_adapter.h"
#include "adapters/common/reference/reference_case_system.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/clock.h"

namespace casebridge::jobcentre::reference {

// The job centre's name, id prefixes and offer catalogue.
const casebridge::reference::ReferenceSystemProfile& JobCentreProfile();

// Opens the reference job-centre system at `config.database_path`; errors as
// for `casebridge::reference::NewReferenceCaseSystem`.
absl::StatusOr<std::unique_ptr<CaseSystemAdapter>> NewReferenceJobCentreSystem(
    const casebridge::config::v1::ReferenceSystemConfig& config, Clock& clock = RealClock());

}  // namespace casebridge::jobcentre::reference
