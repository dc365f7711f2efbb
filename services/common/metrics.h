// Prometheus metrics: the process-wide registry and the series every part
// of casebridge updates. prometheus-cpp (Debian's prometheus-cpp-dev, ADR
// 0023) holds the values and writes the text format; this header keeps it
// out of every other header.
//
// The catalogue (names, labels, meaning) is docs/metrics.md, and
// deploy/monitoring/metrics.txt lists the names the dashboard and the alert
// rules use; tests/integration/metrics checks a running service against it.
//
//   metrics::EventPublished(topic, event.type());
//
// Counters only grow for the life of the process; label values must never
// carry personal data (event types, topics, recipient ids and codes only).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace prometheus {
class Collectable;
}  // namespace prometheus

namespace grpc::experimental {
class ServerInterceptorFactoryInterface;
}  // namespace grpc::experimental

namespace casebridge::metrics {

// What an exposer serves: the process's registry (every series below) and
// the gauges read at scrape time.
std::vector<std::weak_ptr<prometheus::Collectable>> Collectables();

// --- Recording (every service that records events) ---
// A new event written to the ledger (not a replay).
void EventRecorded(absl::string_view event_type);
// Kafka acknowledged an event (acks=all) on `topic`.
void EventPublished(absl::string_view topic, absl::string_view event_type);
// A delivery report with an error (the record is not durable).
void KafkaDeliveryError(absl::string_view topic);
// Exposes casebridge_kafka_delivery_errors_total{topic} at 0 before the
// first error, so that rate() and increase() see the first one.
void DeclareTopic(absl::string_view topic);

// --- Coordination ---
// A canonical event applied to the coordination store.
void EventConsumed(absl::string_view event_type);
// A delivery Kafka acknowledged on a party topic.
void Delivered(absl::string_view recipient, absl::string_view event_type,
               absl::string_view disclosure);
// A record copied to the dead-letter topic.
void DeadLettered();
// Exposes casebridge_dead_letters_total at 0 (the coordination service).
void DeclareDeadLetters();
// A watchdog fired (recorded its event).
void WatchdogFired(absl::string_view watchdog);

// --- gRPC ---
// A server interceptor that counts and times every RPC:
// grpc_server_started_total, grpc_server_handled_total{grpc_code} and
// grpc_server_handling_seconds (the names of go-grpc-prometheus, so that
// existing dashboards work).
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewServerMetricsInterceptor();

// --- Values read when scraped ---
// One sample of a gauge read at scrape time: its labels and value.
struct Sample {
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};
// A gauge whose samples a function returns at every scrape, e.g. the
// outbox depth, for as long as this object lives (it unregisters when
// destroyed, so `read` may use objects that outlive it). `read` runs on
// the scraping thread and must be thread-safe and quick. If two objects
// register the same name (several services in one test process), the
// newest one is served.
class GaugeCallback {
 public:
  GaugeCallback() = default;
  GaugeCallback(std::string name, std::string help, std::function<std::vector<Sample>()> read);
  // A gauge with no labels.
  GaugeCallback(std::string name, std::string help, std::function<double()> read);
  ~GaugeCallback();
  GaugeCallback(GaugeCallback&& other) noexcept;
  GaugeCallback& operator=(GaugeCallback&& other) noexcept;

 private:
  std::string name_;
  uint64_t id_ = 0;
};

// Sets casebridge_build_info{component, version} to 1; once per process.
void SetService(absl::string_view service);

// The Prometheus text format of everything above plus the process series
// (process_cpu_seconds_total, process_resident_memory_bytes,
// process_open_fds, process_start_time_seconds). For tests and for the
// HTTP endpoint.
std::string TextFormat();

}  // namespace casebridge::metrics
