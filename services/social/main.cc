// casebridge-social: runs the social-services service.
//
//   casebridge-social --config social.json
//
// The config schema is casebridge.config.v1.CaseSystemServiceConfig (see
// social.sample.json); the pseudonymisation key comes from the file or
// environment variable it names. What the service is made of:
// `SocialSystem()` in social_system.cc (profile, port 50053, `NewSocialAdapter`,
// `SocialService`), assembled by `CaseSystemApp`. SIGTERM or SIGINT drains
// in-flight calls and the producer, then exits.
#include "services/common/case_system_app.h"
#include "services/social/social_system.h"

int main(int argc, char** argv) {
  return casebridge::RunCaseSystemMain(casebridge::social::SocialSystem(), argc, argv);
}
