// The coordination service, assembled: everything `main.cc` runs, built from
// one config, so that tests run exactly what production runs.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/clock.h"
#include "services/common/event_recorder.h"
#include "services/common/grpc_server.h"
#include "services/common/kafka/consumer.h"
#include "services/common/kafka/publisher.h"
#include "services/common/metrics.h"
#include "services/common/observability.h"
#include "services/common/pseudonym.h"
#include "services/coordination/audit_log.h"
#include "services/coordination/coordination_service.h"
#include "services/coordination/coordination_store.h"
#include "services/coordination/delivery_notifier.h"
#include "services/coordination/delivery_processor.h"
#include "services/coordination/watchdog_runner.h"

namespace casebridge::coordination {

class CoordinationApp {
 public:
  // Validates `config` (after defaults), opens the store and the ledger,
  // creates the topics if `kafka.create_topics`, publishes events left
  // pending by an earlier run, starts the consume-and-deliver loop, the
  // watchdogs and the gRPC server. `pseudonym_key` is the secret key itself.
  // Every time stamp and every watchdog decision reads `clock` (tests pass a
  // `FakeClock`); it must outlive the app.
  static absl::StatusOr<std::unique_ptr<CoordinationApp>> Start(
      casebridge::config::v1::CoordinationServiceConfig config, const std::string& pseudonym_key,
      Clock& clock = RealClock());

  CoordinationApp(const CoordinationApp&) = delete;
  CoordinationApp& operator=(const CoordinationApp&) = delete;
  ~CoordinationApp() { Shutdown(); }

  // The port the server listens on.
  int port() const { return server_.port; }
  // The metrics and probe ports (0 unless `observability` configures them).
  int metrics_port() const { return observability_->metrics_port(); }
  int health_port() const { return observability_->health_port(); }
  const casebridge::config::v1::CoordinationServiceConfig& config() const { return config_; }
  // The consume loop's counters.
  DeliveryProcessorStats delivery_stats() const { return processor_->stats(); }
  // The watchdogs; tests call `RunOnce` instead of waiting for the timer.
  WatchdogRunner& watchdogs() { return *watchdogs_; }

  // Ends Subscribe streams, lets unary calls finish, stops the consume loop
  // between records, and flushes the producer. Idempotent.
  void Shutdown();

 private:
  explicit CoordinationApp(Clock& clock) : clock_(clock) {}

  Clock& clock_;
  casebridge::config::v1::CoordinationServiceConfig config_;
  std::unique_ptr<Pseudonymizer> pseudonymizer_;
  std::unique_ptr<CoordinationStore> store_;
  std::unique_ptr<kafka::Publisher> publisher_;
  std::unique_ptr<EventRecorder> recorder_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<kafka::Consumer> consumer_;
  DeliveryNotifier notifier_;
  std::unique_ptr<DeliveryProcessor> processor_;
  std::unique_ptr<WatchdogRunner> watchdogs_;
  std::unique_ptr<CoordinationServiceImpl> service_;
  StartedServer server_;
  // After everything its gauges read: stops reading them first.
  std::unique_ptr<Observability> observability_;
  std::vector<metrics::GaugeCallback> gauges_;
  bool stopped_ = false;
};

}  // namespace casebridge::coordination
