// The coordination service, assembled: everything `main.cc` runs, built from
// one config, so that tests run exactly what production runs.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/event_recorder.h"
#include "services/common/grpc_server.h"
#include "services/common/kafka/consumer.h"
#include "services/common/kafka/publisher.h"
#include "services/common/pseudonym.h"
#include "services/coordination/coordination_service.h"
#include "services/coordination/coordination_store.h"
#include "services/coordination/delivery_notifier.h"
#include "services/coordination/delivery_processor.h"

namespace casebridge::coordination {

class CoordinationApp {
 public:
  // Validates `config` (after defaults), opens the store and the ledger,
  // creates the topics if `kafka.create_topics`, publishes role events left
  // pending by an earlier run, starts the consume-and-deliver loop and the
  // gRPC server. `pseudonym_key` is the secret key itself.
  static absl::StatusOr<std::unique_ptr<CoordinationApp>> Start(
      casebridge::config::v1::CoordinationServiceConfig config, const std::string& pseudonym_key);

  CoordinationApp(const CoordinationApp&) = delete;
  CoordinationApp& operator=(const CoordinationApp&) = delete;
  ~CoordinationApp() { Shutdown(); }

  // The port the server listens on.
  int port() const { return server_.port; }
  const casebridge::config::v1::CoordinationServiceConfig& config() const { return config_; }

  // Ends Subscribe streams, lets unary calls finish, stops the consume loop
  // between records, and flushes the producer. Idempotent.
  void Shutdown();

 private:
  CoordinationApp() = default;

  casebridge::config::v1::CoordinationServiceConfig config_;
  std::unique_ptr<Pseudonymizer> pseudonymizer_;
  std::unique_ptr<CoordinationStore> store_;
  std::unique_ptr<kafka::Publisher> publisher_;
  std::unique_ptr<EventRecorder> recorder_;
  std::unique_ptr<kafka::Consumer> consumer_;
  DeliveryNotifier notifier_;
  std::unique_ptr<DeliveryProcessor> processor_;
  std::unique_ptr<CoordinationServiceImpl> service_;
  StartedServer server_;
  bool stopped_ = false;
};

}  // namespace casebridge::coordination
