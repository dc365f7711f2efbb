// The health service: what makes it the health service. Everything
// else (validation, recording, the referral and cancellation rules, the
// gRPC layer, the app) is shared in services/common/case_system_*.
#pragma once

#include "casebridge/health/v1/health_service.grpc.pb.h"
#include "services/common/case_system_app.h"
#include "services/common/case_system_service.h"

namespace casebridge::health {

// Where the health service listens unless configured otherwise.
inline constexpr char kDefaultListenAddress[] = "0.0.0.0:50054";

// The gRPC service: `casebridge.health.v1.HealthService` over the shared core.
using HealthServiceImpl = CaseSystemServiceImpl<casebridge::health::v1::HealthService>;

// The health service's profile: system "health", special-health content, alcohol treatment
// (SUL-141) special-addiction.
CaseSystemProfile HealthProfile();

// The health service as `CaseSystemApp` runs it: its profile, port 50054,
// `NewHealthAdapter` and `HealthService`.
CaseSystemDefinition HealthSystem();

}  // namespace casebridge::health
