// A case-system service, assembled: everything the job-centre, social and
// health binaries run, built from one `CaseSystemDefinition` (what makes the
// system itself) and one config, so that tests run exactly what production
// runs.
//
// Example (a service's main.cc):
//   int main(int argc, char** argv) {
//     return casebridge::RunCaseSystemMain(casebridge::health::HealthSystem(), argc, argv);
//   }
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "adapters/common/case_system_adapter.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/case_system_service.h"
#include "services/common/event_recorder.h"
#include "services/common/grpc_server.h"
#include "services/common/kafka/publisher.h"
#include "services/common/metrics.h"
#include "services/common/observability.h"
#include "services/common/pseudonym.h"

namespace casebridge {

// What makes one administration's service: its profile (name, source
// system, sensitivity defaults), its port, its vendor factory and its gRPC
// service. services/<system>/<system>_system.cc defines one.
struct CaseSystemDefinition {
  CaseSystemProfile profile;
  // Where it listens unless `server.listen_address` says otherwise.
  std::string default_listen_address;
  // Chooses the vendor, e.g. `jobcentre::NewJobCentreAdapter`.
  std::function<absl::StatusOr<std::unique_ptr<CaseSystemAdapter>>(
      const casebridge::config::v1::CaseSystemAdapterConfig&)>
      new_adapter;
  // The gRPC service's full name (health checks), e.g.
  // "casebridge.health.v1.HealthService".
  std::string service_full_name;
  // Builds the gRPC service over the core, e.g.
  // `NewCaseSystemService<health::v1::HealthService>`.
  std::function<std::unique_ptr<grpc::Service>(CaseSystemCore&)> new_service;
};

class CaseSystemApp {
 public:
  // Validates `config` (after defaults), builds the adapter (wrapped in
  // deadlines, retries and a circuit breaker: adapters/common/
  // resilient_adapter.h), the Kafka publisher (creating the canonical topic
  // if `kafka.create_topics`), the ledger, publishes events left pending by
  // an earlier run, starts the ledger's background drain and the gRPC
  // server. `pseudonym_key` is the secret key itself.
  static absl::StatusOr<std::unique_ptr<CaseSystemApp>> Start(
      CaseSystemDefinition definition, casebridge::config::v1::CaseSystemServiceConfig config,
      const std::string& pseudonym_key);

  CaseSystemApp(const CaseSystemApp&) = delete;
  CaseSystemApp& operator=(const CaseSystemApp&) = delete;
  ~CaseSystemApp() { Shutdown(); }

  // The port the server listens on.
  int port() const { return server_.port; }
  // The metrics and probe ports (0 unless `observability` configures them).
  int metrics_port() const { return observability_->metrics_port(); }
  int health_port() const { return observability_->health_port(); }
  // The outbox depth: events in the ledger Kafka has not confirmed yet
  // (`EventRecorder::PendingCount`), for metrics.
  absl::StatusOr<int64_t> PendingEvents() { return recorder_->PendingCount(); }
  // The config as running, defaults filled in.
  const casebridge::config::v1::CaseSystemServiceConfig& config() const { return config_; }

  // Graceful shutdown within `shutdown_grace_period` (default 10 s): health
  // (readiness and liveness) turns NOT_SERVING, new calls are refused, in-flight calls finish (each
  // waits for its own delivery report; calls still running at the end of
  // the period are cancelled), the background drain stops, and the producer
  // queue is flushed with the time left. Idempotent.
  void Shutdown();

 private:
  CaseSystemApp() = default;

  CaseSystemDefinition definition_;
  casebridge::config::v1::CaseSystemServiceConfig config_;
  std::unique_ptr<Pseudonymizer> pseudonymizer_;
  std::unique_ptr<CaseSystemAdapter> adapter_;
  std::unique_ptr<kafka::Publisher> publisher_;
  std::unique_ptr<EventRecorder> recorder_;
  std::unique_ptr<CaseSystemCore> core_;
  std::unique_ptr<grpc::Service> service_;
  StartedServer server_;
  // After the server and the recorder: stops reading them first.
  std::unique_ptr<Observability> observability_;
  metrics::GaugeCallback outbox_gauge_;
  bool stopped_ = false;
};

// The whole `main` of a case-system binary, `casebridge-<system> --config
// <file.json>`: loads the config (casebridge.config.v1.CaseSystemServiceConfig)
// and the pseudonymisation key it names, starts the app, waits for SIGTERM or
// SIGINT, shuts down gracefully (`CaseSystemApp::Shutdown`). Returns the exit
// status: 0 after a shutdown, 2 for a usage or start-up error (logged and
// printed to stderr).
int RunCaseSystemMain(const CaseSystemDefinition& definition, int argc, char** argv);

}  // namespace casebridge
