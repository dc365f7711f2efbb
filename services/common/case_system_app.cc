#include "services/common/case_system_app.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "adapters/common/resilient_adapter.h"

#include "google/protobuf/descriptor.h"
#include "services/common/case_system_config.h"
#include "services/common/config.h"
#include "services/common/kafka/consumer.h"
#include "services/common/kafka/kafka_config.h"
#include "services/common/kafka/kafka_publisher.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"

namespace casebridge {
namespace {

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// How messages to callers name the vendor system ("job-centre system
// unavailable: circuit open, …").
std::string SystemName(const std::string& system) {
  if (system == "jobcentre") return "job-centre system";
  if (system == "social") return "social-services system";
  if (system == "health") return "health system";
  return system + " system";
}

}  // namespace

absl::StatusOr<std::unique_ptr<CaseSystemApp>> CaseSystemApp::Start(
    CaseSystemDefinition definition, casebridge::config::v1::CaseSystemServiceConfig config,
    const std::string& pseudonym_key) {
  std::unique_ptr<CaseSystemApp> app(new CaseSystemApp());
  app->definition_ = std::move(definition);
  const CaseSystemDefinition& d = app->definition_;
  app->config_ = WithDefaults(std::move(config), d.default_listen_address);
  const auto& c = app->config_;
  RETURN_IF_ERROR(ValidateCaseSystemConfig(c));
  // Server reflection describes the service from the generated pool; a
  // service-only proto file is there only if proto/descriptor_anchors.cc
  // anchors it.
  if (google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          d.service_full_name) == nullptr) {
    return absl::InternalError(absl::StrCat(
        d.service_full_name, ": its descriptor is not linked in (proto/descriptor_anchors.cc)"));
  }
  ASSIGN_OR_RETURN(app->pseudonymizer_, Pseudonymizer::Create(pseudonym_key));
  // Every vendor adapter gets deadlines, retries and a circuit breaker.
  ASSIGN_OR_RETURN(ResilienceOptions resilience,
                   ResilienceOptionsFromConfig(c.adapter(), SystemName(d.profile.system)));
  ASSIGN_OR_RETURN(std::unique_ptr<CaseSystemAdapter> vendor, d.new_adapter(c.adapter()));
  app->adapter_ = NewResilientAdapter(std::move(vendor), std::move(resilience));
  RETURN_IF_ERROR(kafka::CreateTopicsIfEnabled(c.kafka(), {c.canonical_topic()}));
  ASSIGN_OR_RETURN(app->publisher_, kafka::NewKafkaPublisher(c.kafka(), {c.canonical_topic()}));

  RecorderOptions options;
  options.topic = c.canonical_topic();
  options.system = d.profile.system;
  options.source_system = d.profile.source_system;
  options.municipality = c.municipality();
  options.delivery_timeout = kafka::DeliveryTimeout(c.kafka());
  ASSIGN_OR_RETURN(app->recorder_,
                   EventRecorder::Create(c.ledger_path(), options, *app->publisher_));
  // Events recorded but not confirmed before a crash go out first, in order.
  if (absl::StatusOr<int> drained = app->recorder_->DrainPending(); !drained.ok()) {
    LogWarning("ledger drain failed; the background drain retries",
               {{"error", std::string(drained.status().message())}});
  }
  // From now on pending events go out as soon as Kafka takes them.
  DrainOptions drain;
  if (c.outbox().has_drain_initial_backoff()) {
    drain.initial_backoff = FromProto(c.outbox().drain_initial_backoff());
  }
  if (c.outbox().has_drain_max_backoff()) {
    drain.max_backoff = FromProto(c.outbox().drain_max_backoff());
  }
  app->recorder_->StartBackgroundDrain(drain);

  const absl::Duration call_timeout =
      c.adapter().has_call_timeout() ? FromProto(c.adapter().call_timeout()) : absl::Seconds(5);
  app->core_ = std::make_unique<CaseSystemCore>(d.profile, *app->adapter_, *app->recorder_,
                                                *app->pseudonymizer_, c.municipality(),
                                                call_timeout);
  app->core_->set_authorization(c.authorization());
  app->service_ = d.new_service(*app->core_);
  ASSIGN_OR_RETURN(app->server_,
                   StartGrpcServer(c.server(), {app->service_.get()}, {d.service_full_name}));
  ObservabilityOptions observability;
  observability.service = d.profile.system;
  observability.readiness_names = {d.service_full_name};
  observability.publisher = app->publisher_.get();
  observability.certificates = ConfiguredCertificates(c.server(), c.kafka());
  ASSIGN_OR_RETURN(app->observability_, Observability::Start(c.observability(), observability,
                                                             app->server_.server.get()));
  EventRecorder* recorder = app->recorder_.get();
  app->outbox_gauge_ = metrics::GaugeCallback(
      "casebridge_outbox_events", "Events in the ledger Kafka has not confirmed yet.",
      [recorder] {
        absl::StatusOr<int64_t> pending = recorder->PendingCount();
        return pending.ok() ? static_cast<double>(*pending) : -1.0;
      });
  LogInfo("ready", {{"port", std::to_string(app->server_.port)},
                    {"topic", c.canonical_topic()},
                    {"municipality", c.municipality()}});
  return app;
}

void CaseSystemApp::Shutdown() {
  if (stopped_) return;
  stopped_ = true;
  const absl::Duration grace = config_.has_shutdown_grace_period()
                                   ? FromProto(config_.shutdown_grace_period())
                                   : absl::Seconds(10);
  const absl::Time deadline = absl::Now() + grace;
  // Probes and load balancers see NOT_SERVING first.
  if (observability_ != nullptr) observability_->Shutdown();
  if (server_.server != nullptr) {
    // Load balancers see NOT_SERVING; new calls are refused; calls in
    // flight finish (each waits for its own delivery report) or are
    // cancelled at the deadline.
    server_.server->GetHealthCheckService()->Shutdown();
    server_.server->Shutdown(absl::ToChronoTime(deadline));
  }
  // No new drain pass; one in progress ends with its delivery report.
  if (recorder_ != nullptr) recorder_->StopBackgroundDrain();
  if (publisher_ != nullptr) {
    const absl::Duration left = std::max(deadline - absl::Now(), absl::Milliseconds(100));
    if (absl::Status flushed = publisher_->Flush(left); !flushed.ok()) {
      // What is unconfirmed stays pending in the ledger and goes out at the
      // next start.
      LogWarning("producer queue not flushed within the grace period",
                 {{"error", std::string(flushed.message())}});
    }
  }
  LogInfo("shut down", {{"grace_ms", std::to_string(absl::ToInt64Milliseconds(grace))}});
}

int RunCaseSystemMain(const CaseSystemDefinition& definition, int argc, char** argv) {
  const std::string binary = "casebridge-" + definition.profile.system;
  auto fail = [&](const absl::Status& status) {
    LogError("start-up failed", {{"error", std::string(status.message())}});
    std::cerr << binary << ": " << status.message() << "\n";
    return 2;
  };
  SetLogService(definition.profile.system);
  BlockTerminationSignals();
  if (argc != 3 || std::strcmp(argv[1], "--config") != 0) {
    std::cerr << "usage: " << binary << " --config <file.json>\n";
    return 2;
  }
  absl::StatusOr<config::v1::CaseSystemServiceConfig> config =
      LoadConfig<config::v1::CaseSystemServiceConfig>(argv[2]);
  if (!config.ok()) return fail(config.status());
  absl::StatusOr<std::string> key = LoadPseudonymKey(config->pseudonym());
  if (!key.ok()) return fail(key.status());
  absl::StatusOr<std::unique_ptr<CaseSystemApp>> app =
      CaseSystemApp::Start(definition, *config, *key);
  if (!app.ok()) return fail(app.status());

  const int signal = WaitForTerminationSignal();
  LogInfo("shutting down", {{"signal", std::to_string(signal)}});
  (*app)->Shutdown();
  LogInfo("stopped");
  return 0;
}

}  // namespace casebridge
