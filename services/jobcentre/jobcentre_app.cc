#include "services/jobcentre/jobcentre_app.h"

#include <chrono>

#include "services/common/kafka/consumer.h"
#include "services/common/kafka/kafka_config.h"
#include "services/common/kafka/kafka_publisher.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"

namespace casebridge::jobcentre {

absl::StatusOr<std::unique_ptr<JobCentreApp>> JobCentreApp::Start(
    casebridge::config::v1::JobCentreServiceConfig config, const std::string& pseudonym_key) {
  std::unique_ptr<JobCentreApp> app(new JobCentreApp());
  app->config_ = WithDefaults(std::move(config));
  const auto& c = app->config_;
  RETURN_IF_ERROR(ValidateJobCentreConfig(c));
  ASSIGN_OR_RETURN(app->pseudonymizer_, Pseudonymizer::Create(pseudonym_key));
  ASSIGN_OR_RETURN(app->adapter_, NewJobCentreAdapter(c.adapter()));
  RETURN_IF_ERROR(kafka::CreateTopicsIfEnabled(c.kafka(), {c.canonical_topic()}));
  ASSIGN_OR_RETURN(app->publisher_, kafka::NewKafkaPublisher(c.kafka(), {c.canonical_topic()}));

  RecorderOptions options;
  options.topic = c.canonical_topic();
  options.system = "jobcentre";
  options.source_system = events::v1::SOURCE_SYSTEM_JOB_CENTRE;
  options.municipality = c.municipality();
  options.delivery_timeout = kafka::DeliveryTimeout(c.kafka());
  ASSIGN_OR_RETURN(app->recorder_, EventRecorder::Create(c.ledger_path(), options, *app->publisher_));
  // Events recorded but not confirmed before a crash go out first, in order.
  if (absl::StatusOr<int> drained = app->recorder_->DrainPending(); !drained.ok()) {
    LogWarning("ledger drain failed; pending events are retried on the next call",
               {{"error", std::string(drained.status().message())}});
  }

  const absl::Duration call_timeout = c.adapter().has_call_timeout()
                                          ? absl::Seconds(c.adapter().call_timeout().seconds()) +
                                                absl::Nanoseconds(c.adapter().call_timeout().nanos())
                                          : absl::Seconds(5);
  app->service_ = std::make_unique<JobCentreServiceImpl>(*app->adapter_, *app->recorder_,
                                                         *app->pseudonymizer_, c.municipality(),
                                                         call_timeout);
  ASSIGN_OR_RETURN(app->server_,
                   StartGrpcServer(c.server(), {app->service_.get()},
                                   {v1::JobCentreService::service_full_name()}));
  LogInfo("ready", {{"port", std::to_string(app->server_.port)},
                    {"topic", c.canonical_topic()},
                    {"municipality", c.municipality()}});
  return app;
}

void JobCentreApp::Shutdown() {
  if (stopped_) return;
  stopped_ = true;
  if (server_.server != nullptr) {
    server_.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(15));
  }
  if (publisher_ != nullptr) publisher_->Flush(absl::Seconds(15)).IgnoreError();
}

}  // namespace casebridge::jobcentre
