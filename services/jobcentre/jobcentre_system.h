// The job-centre service: what makes it the job-centre service. Everything
// else (validation, recording, the referral and cancellation rules, the
// gRPC layer, the app) is shared in services/common/case_system_*.
#pragma once

#include "casebridge/jobcentre/v1/jobcentre_service.grpc.pb.h"
#include "services/common/case_system_app.h"
#include "services/common/case_system_service.h"

namespace casebridge::jobcentre {

// Where the job-centre service listens unless configured otherwise.
inline constexpr char kDefaultListenAddress[] = "0.0.0.0:50051";

// The gRPC service: `casebridge.jobcentre.v1.JobCentreService` over the shared core.
using JobCentreServiceImpl = CaseSystemServiceImpl<casebridge::jobcentre::v1::JobCentreService>;

// The job-centre service's profile: system "jobcentre", ordinary content, referrals it sends to
// addiction treatment special-addiction.
CaseSystemProfile JobCentreProfile();

// The job-centre service as `CaseSystemApp` runs it: its profile, port 50051,
// `NewJobCentreAdapter` and `JobCentreService`.
CaseSystemDefinition JobCentreSystem();

}  // namespace casebridge::jobcentre
