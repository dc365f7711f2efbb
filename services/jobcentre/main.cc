// casebridge-jobcentre: runs the job-centre service.
//
//   casebridge-jobcentre --config jobcentre.json
//
// The config schema is casebridge.config.v1.JobCentreServiceConfig; the
// pseudonymisation key comes from the file or environment variable it names.
// SIGTERM or SIGINT drains in-flight calls and the producer, then exits.
#include <cstring>
#include <iostream>

#include "services/common/config.h"
#include "services/common/grpc_server.h"
#include "services/common/log.h"
#include "services/common/pseudonym.h"
#include "services/jobcentre/jobcentre_app.h"

namespace {

int Fail(const absl::Status& status) {
  casebridge::LogError("start-up failed", {{"error", std::string(status.message())}});
  std::cerr << "casebridge-jobcentre: " << status.message() << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace casebridge;
  SetLogService("jobcentre");
  BlockTerminationSignals();
  if (argc != 3 || std::strcmp(argv[1], "--config") != 0) {
    std::cerr << "usage: casebridge-jobcentre --config <file.json>\n";
    return 2;
  }
  absl::StatusOr<config::v1::JobCentreServiceConfig> config =
      LoadConfig<config::v1::JobCentreServiceConfig>(argv[2]);
  if (!config.ok()) return Fail(config.status());
  absl::StatusOr<std::string> key = LoadPseudonymKey(config->pseudonym());
  if (!key.ok()) return Fail(key.status());
  absl::StatusOr<std::unique_ptr<jobcentre::JobCentreApp>> app =
      jobcentre::JobCentreApp::Start(*config, *key);
  if (!app.ok()) return Fail(app.status());

  const int signal = WaitForTerminationSignal();
  LogInfo("shutting down", {{"signal", std::to_string(signal)}});
  (*app)->Shutdown();
  LogInfo("stopped");
  return 0;
}
