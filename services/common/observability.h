// What operators watch, for one service process: the Prometheus endpoint,
// the probe port, and readiness that follows Kafka.
//
//   ObservabilityOptions options;
//   options.service = "jobcentre";
//   options.readiness_names = {"casebridge.jobcentre.v1.JobCentreService"};
//   options.publisher = publisher.get();
//   ASSIGN_OR_RETURN(auto observability,
//                    Observability::Start(config.observability(), options, server.get()));
//   ...
//   observability->Shutdown();   // first thing on SIGTERM
//
// Health statuses (grpc.health.v1), on the main server and on the probe
// server alike:
//   ""                      liveness: SERVING until shutdown, or until the
//                           Kafka producer hits a fatal error (only a
//                           restart cures that)
//   each readiness name     SERVING while the last Kafka check succeeded and
//                           the service is not shutting down; else NOT_SERVING
// A service stays able to record while Kafka is away (the outbox keeps what
// it accepts); readiness only steers new traffic to replicas that can
// publish now.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/kafka/publisher.h"
#include "services/common/metrics.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace casebridge {

struct ObservabilityOptions {
  // The service's short name ("jobcentre", "coordination"): the `service`
  // label of casebridge_build_info.
  std::string service;
  // The health names that follow readiness (the gRPC service's full name).
  std::vector<std::string> readiness_names;
  // Probed every `kafka_check_interval`; nullptr: Kafka counts as reachable.
  kafka::Publisher* publisher = nullptr;
  // TLS certificates in use: {config field, file}. Their expiry becomes
  // casebridge_certificate_expiry_timestamp_seconds{file}.
  std::vector<std::pair<std::string, std::string>> certificates;
};

// Checks `config`: addresses are host:port, the interval positive, the log
// level known. kInvalidArgument names the field ("observability.log_level:
// …").
absl::Status ValidateObservabilityConfig(const casebridge::config::v1::ObservabilityConfig& config);

// The certificates a service uses, from its server and Kafka TLS config, as
// {config field, file} for `ObservabilityOptions::certificates`.
std::vector<std::pair<std::string, std::string>> ConfiguredCertificates(
    const casebridge::config::v1::ServerConfig& server,
    const casebridge::config::v1::KafkaConfig& kafka);

// The notAfter time of the first certificate in the PEM file at `path`.
absl::StatusOr<absl::Time> CertificateExpiry(const std::string& path);

class Observability {
 public:
  // Sets the log level, checks Kafka once, sets the health statuses of
  // `main_server` (not owned; must outlive this), starts the metrics
  // endpoint and the probe server if configured, and the periodic Kafka
  // check. kUnavailable if an address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Observability>> Start(
      const casebridge::config::v1::ObservabilityConfig& config, ObservabilityOptions options,
      grpc::Server* main_server);

  Observability(const Observability&) = delete;
  Observability& operator=(const Observability&) = delete;
  ~Observability();

  // The metrics and probe ports (0 when not configured).
  int metrics_port() const { return metrics_port_; }
  int health_port() const { return health_port_; }
  bool ready() const { return ready_; }

  // Every status NOT_SERVING from now on (the kubelet and load balancers
  // stop sending traffic); stops the Kafka check. The servers keep
  // answering until destruction. Idempotent.
  void Shutdown();

 private:
  Observability() = default;
  void CheckKafka();
  void Publish(bool ready);

  casebridge::config::v1::ObservabilityConfig config_;
  ObservabilityOptions options_;
  grpc::Server* main_server_ = nullptr;
  std::unique_ptr<grpc::Server> health_server_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int metrics_port_ = 0;
  int health_port_ = 0;
  absl::Duration check_interval_ = absl::Seconds(10);

  std::atomic<bool> ready_{false};
  std::atomic<bool> kafka_connected_{false};
  bool checked_once_ = false;   // only the checking thread (or Start) touches it
  bool reported_fatal_ = false;  // guarded by mu_
  std::vector<metrics::GaugeCallback> gauges_;

  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mu_
  std::thread checker_;
};

}  // namespace casebridge
