#include "services/coordination/coordination_app.h"

#include <chrono>

#include "services/common/kafka/kafka_config.h"
#include "services/common/kafka/kafka_publisher.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"
#include "services/coordination/coordination_config.h"

namespace casebridge::coordination {

absl::StatusOr<std::unique_ptr<CoordinationApp>> CoordinationApp::Start(
    casebridge::config::v1::CoordinationServiceConfig config, const std::string& pseudonym_key,
    Clock& clock) {
  std::unique_ptr<CoordinationApp> app(new CoordinationApp(clock));
  app->config_ = WithDefaults(std::move(config));
  const auto& c = app->config_;
  RETURN_IF_ERROR(ValidateCoordinationConfig(c));
  ASSIGN_OR_RETURN(app->pseudonymizer_, Pseudonymizer::Create(pseudonym_key));
  std::map<std::string, casebridge::common::v1::Administration> administrations;
  for (const auto& recipient : c.recipients()) {
    administrations[recipient.id()] = recipient.administration();
  }
  ASSIGN_OR_RETURN(app->store_,
                   CoordinationStore::Open(StoreTarget(c), c.routing(), administrations));

  const std::map<std::string, std::string> recipient_topics = RecipientTopics(c);
  std::vector<std::string> topics = {c.canonical_topic(), c.audit_topic(), c.dead_letter_topic()};
  for (const auto& [recipient, topic] : recipient_topics) topics.push_back(topic);
  RETURN_IF_ERROR(kafka::CreateTopicsIfEnabled(c.kafka(), topics));
  ASSIGN_OR_RETURN(app->publisher_, kafka::NewKafkaPublisher(c.kafka(), topics));

  RecorderOptions options;
  options.topic = c.canonical_topic();
  options.system = "coordination";
  options.source_system = events::v1::SOURCE_SYSTEM_COORDINATION;
  options.municipality = c.municipality();
  options.delivery_timeout = kafka::DeliveryTimeout(c.kafka());
  ASSIGN_OR_RETURN(app->recorder_,
                   EventRecorder::Create(LedgerPath(c), options, *app->publisher_, clock));
  app->audit_ = std::make_unique<AuditLog>(*app->publisher_, c.audit_topic(), c.municipality(),
                                           app->recorder_->source());
  // Role, task and derived events recorded but not confirmed before a crash
  // go out first.
  if (absl::StatusOr<int> drained = app->recorder_->DrainPending(); !drained.ok()) {
    LogWarning("ledger drain failed; the background drain retries it",
               {{"error", std::string(drained.status().message())}});
  }
  // Pending events reach Kafka when it returns, without waiting for a call.
  app->recorder_->StartBackgroundDrain();

  ASSIGN_OR_RETURN(app->consumer_,
                   kafka::NewKafkaConsumer(c.kafka(), c.consumer_group(), {c.canonical_topic()}));
  DeliveryProcessorOptions processor_options;
  processor_options.municipality = c.municipality();
  processor_options.load = c.load();
  processor_options.recipient_topics = recipient_topics;
  processor_options.delivery_timeout = kafka::DeliveryTimeout(c.kafka());
  processor_options.audit = app->audit_.get();
  processor_options.dead_letter_topic = c.dead_letter_topic();
  app->processor_ = std::make_unique<DeliveryProcessor>(*app->store_, *app->consumer_,
                                                        *app->publisher_, *app->recorder_,
                                                        app->notifier_, processor_options, clock);
  app->processor_->Start();
  app->watchdogs_ = std::make_unique<WatchdogRunner>(*app->store_, *app->recorder_, c.watchdogs(),
                                                     WatchdogInterval(c), clock);
  app->watchdogs_->Start();

  app->service_ = std::make_unique<CoordinationServiceImpl>(
      *app->store_, *app->recorder_, *app->pseudonymizer_, c, app->notifier_, clock,
      app->audit_.get());
  ASSIGN_OR_RETURN(app->server_,
                   StartGrpcServer(c.server(), {app->service_.get()},
                                   {v1::CoordinationService::service_full_name()}));
  ObservabilityOptions observability;
  observability.service = "coordination";
  observability.readiness_names = {v1::CoordinationService::service_full_name()};
  observability.publisher = app->publisher_.get();
  observability.certificates = ConfiguredCertificates(c.server(), c.kafka());
  ASSIGN_OR_RETURN(app->observability_, Observability::Start(c.observability(), observability,
                                                             app->server_.server.get()));
  EventRecorder* recorder = app->recorder_.get();
  app->gauges_.emplace_back(
      "casebridge_outbox_events",
      "Events in the ledger Kafka has not confirmed yet (role, task, derived and watchdog events).",
      [recorder] {
        absl::StatusOr<int64_t> pending = recorder->PendingCount();
        return pending.ok() ? static_cast<double>(*pending) : -1.0;
      });
  metrics::DeclareDeadLetters();
  kafka::Consumer* consumer = app->consumer_.get();
  app->gauges_.emplace_back(
      "casebridge_kafka_consumer_lag_messages",
      "Records of the canonical topic not consumed yet, per assigned partition.",
      std::function<std::vector<metrics::Sample>()>([consumer] {
        std::vector<metrics::Sample> samples;
        for (const kafka::Consumer::PartitionLag& lag : consumer->Lag()) {
          samples.push_back(metrics::Sample{
              {{"topic", lag.topic}, {"partition", std::to_string(lag.partition)}},
              static_cast<double>(lag.lag)});
        }
        return samples;
      }));
  CoordinationServiceImpl* service = app->service_.get();
  app->gauges_.emplace_back("casebridge_subscribe_streams", "Open Subscribe streams.",
                            [service] { return static_cast<double>(service->OpenStreams()); });
  LogInfo("ready", {{"port", std::to_string(app->server_.port)},
                    {"canonical_topic", c.canonical_topic()},
                    {"audit_topic", c.audit_topic()},
                    {"consumer_group", c.consumer_group()},
                    {"recipients", std::to_string(recipient_topics.size())},
                    {"routing_rules", std::to_string(c.routing().rules_size())},
                    {"municipality", c.municipality()}});
  return app;
}

void CoordinationApp::Shutdown() {
  if (stopped_) return;
  stopped_ = true;
  // Subscribe streams end first (they would otherwise hold the server), then
  // in-flight unary RPCs finish, then the consume loop stops between records
  // and the producer queue is flushed. Probes see NOT_SERVING first.
  if (observability_ != nullptr) observability_->Shutdown();
  gauges_.clear();  // the consumer closes below
  if (service_ != nullptr) service_->Shutdown();
  if (server_.server != nullptr) {
    server_.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
  if (watchdogs_ != nullptr) watchdogs_->Stop();
  if (processor_ != nullptr) processor_->Stop();
  if (recorder_ != nullptr) recorder_->StopBackgroundDrain();
  if (consumer_ != nullptr) consumer_->Close();
  if (publisher_ != nullptr) publisher_->Flush(absl::Seconds(15)).IgnoreError();
}

}  // namespace casebridge::coordination
