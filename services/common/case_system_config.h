// The config of a case-system service (job centre, social, health):
// `casebridge.config.v1.CaseSystemServiceConfig`, its defaults and its
// validation. Each service differs only in its default listen address.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "casebridge/config/v1/config.pb.h"

namespace casebridge {

// The topic of casebridge's canonical case events.
inline constexpr char kDefaultCanonicalTopic[] = "casebridge.case-events.v1";

// Returns kInvalidArgument naming the field if `config` is unusable.
absl::Status ValidateCaseSystemConfig(
    const casebridge::config::v1::CaseSystemServiceConfig& config);

// Fills the documented defaults into `config`: the canonical topic and, if
// none is configured, `default_listen_address` (the service's own port, e.g.
// "0.0.0.0:50051" for the job centre).
casebridge::config::v1::CaseSystemServiceConfig WithDefaults(
    casebridge::config::v1::CaseSystemServiceConfig config,
    const std::string& default_listen_address);

}  // namespace casebridge
