// casebridge-jobcentre: runs the job-centre service.
//
//   casebridge-jobcentre --config jobcentre.json
//
// The config schema is casebridge.config.v1.CaseSystemServiceConfig (see
// jobcentre.sample.json); the pseudonymisation key comes from the file or
// environment variable it names. What the service is made of:
// `JobCentreSystem()` in jobcentre_system.cc (profile, port 50051, `NewJobCentreAdapter`,
// `JobCentreService`), assembled by `CaseSystemApp`. SIGTERM or SIGINT drains
// in-flight calls and the producer, then exits.
#include "services/common/case_system_app.h"
#include "services/jobcentre/jobcentre_system.h"

int main(int argc, char** argv) {
  return casebridge::RunCaseSystemMain(casebridge::jobcentre::JobCentreSystem(), argc, argv);
}
