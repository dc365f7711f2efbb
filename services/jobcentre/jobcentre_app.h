// The job-centre service, assembled: everything `main.cc` runs, built from
// one config, so that tests run exactly what production runs.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "adapters/jobcentre/jobcentre_adapter.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/event_recorder.h"
#include "services/common/grpc_server.h"
#include "services/common/kafka/publisher.h"
#include "services/common/pseudonym.h"
#include "services/jobcentre/jobcentre_service.h"

namespace casebridge::jobcentre {

class JobCentreApp {
 public:
  // Validates `config` (after defaults), builds the adapter, the Kafka
  // publisher (creating the canonical topic if `kafka.create_topics`), the
  // ledger, publishes events left pending by an earlier run, and starts the
  // gRPC server. `pseudonym_key` is the secret key itself.
  static absl::StatusOr<std::unique_ptr<JobCentreApp>> Start(
      casebridge::config::v1::JobCentreServiceConfig config, const std::string& pseudonym_key);

  JobCentreApp(const JobCentreApp&) = delete;
  JobCentreApp& operator=(const JobCentreApp&) = delete;
  ~JobCentreApp() { Shutdown(); }

  // The port the server listens on.
  int port() const { return server_.port; }
  const casebridge::config::v1::JobCentreServiceConfig& config() const { return config_; }

  // Stops taking calls, lets in-flight calls finish (each waits for its own
  // delivery report), then flushes the producer. Idempotent.
  void Shutdown();

 private:
  JobCentreApp() = default;

  casebridge::config::v1::JobCentreServiceConfig config_;
  std::unique_ptr<Pseudonymizer> pseudonymizer_;
  std::unique_ptr<JobCentreAdapter> adapter_;
  std::unique_ptr<kafka::Publisher> publisher_;
  std::unique_ptr<EventRecorder> recorder_;
  std::unique_ptr<JobCentreServiceImpl> service_;
  StartedServer server_;
  bool stopped_ = false;
};

}  // namespace casebridge::jobcentre
