// The social-services service: what makes it the social-services service. Everything
// else (validation, recording, the referral and cancellation rules, the
// gRPC layer, the app) is shared in services/common/case_system_*.
#pragma once

#include "casebridge/social/v1/social_service.grpc.pb.h"
#include "services/common/case_system_app.h"
#include "services/common/case_system_service.h"

namespace casebridge::social {

// Where the social-services service listens unless configured otherwise.
inline constexpr char kDefaultListenAddress[] = "0.0.0.0:50053";

// The gRPC service: `casebridge.social.v1.SocialService` over the shared core.
using SocialServiceImpl = CaseSystemServiceImpl<casebridge::social::v1::SocialService>;

// The social-services service's profile: system "social", confidential content, addiction treatment
// (SEL-101, SEL-101a) special-addiction.
CaseSystemProfile SocialProfile();

// The social-services service as `CaseSystemApp` runs it: its profile, port 50053,
// `NewSocialAdapter` and `SocialService`.
CaseSystemDefinition SocialSystem();

}  // namespace casebridge::social
