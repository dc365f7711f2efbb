// casebridge-health: runs the health service.
//
//   casebridge-health --config health.json
//
// The config schema is casebridge.config.v1.CaseSystemServiceConfig (see
// health.sample.json); the pseudonymisation key comes from the file or
// environment variable it names. What the service is made of:
// `HealthSystem()` in health_system.cc (profile, port 50054, `NewHealthAdapter`,
// `HealthService`), assembled by `CaseSystemApp`. SIGTERM or SIGINT drains
// in-flight calls and the producer, then exits.
#include "services/common/case_system_app.h"
#include "services/health/health_system.h"

int main(int argc, char** argv) {
  return casebridge::RunCaseSystemMain(casebridge::health::HealthSystem(), argc, argv);
}
