// The job-centre adapter factory: chooses the vendor of a municipality's job-centre
// system. The interface every vendor implements is `CaseSystemAdapter`
// (adapters/common/case_system_adapter.h); each vendor lives in
// adapters/jobcentre/<vendor>/ and is chosen here and nowhere else.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "adapters/common/case_system_adapter.h"
#include "casebridge/config/v1/config.pb.h"

namespace casebridge::jobcentre {

// Returns the adapter selected by `config.vendor`, or kInvalidArgument naming
// `adapter` if none is set. Defined in jobcentre_adapter.cc, the only file that
// knows every job-centre vendor.
absl::StatusOr<std::unique_ptr<CaseSystemAdapter>> NewJobCentreAdapter(
    const casebridge::config::v1::CaseSystemAdapterConfig& config);

}  // namespace casebridge::jobcentre
