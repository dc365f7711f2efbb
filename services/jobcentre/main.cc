// casebridge-jobcentre: wires the job-centre service together and runs it.
//
//   casebridge-jobcentre --config jobcentre.json
//
// The config schema is casebridge.config.v1.JobCentreServiceConfig; the
// pseudonymisation key comes from the file or environment variable it names.
#include <cstring>
#include <iostream>

#include "adapters/jobcentre/jobcentre_adapter.h"
#include "google/protobuf/util/time_util.h"
#include "services/common/config.h"
#include "services/common/event_recorder.h"
#include "services/common/grpc_server.h"
#include "services/common/kafka/consumer.h"
#include "services/common/kafka/kafka_config.h"
#include "services/common/kafka/kafka_publisher.h"
#include "services/common/log.h"
#include "services/common/pseudonym.h"
#include "services/jobcentre/jobcentre_service.h"

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

  absl::StatusOr<config::v1::JobCentreServiceConfig> loaded =
      LoadConfig<config::v1::JobCentreServiceConfig>(argv[2]);
  if (!loaded.ok()) return Fail(loaded.status());
  const config::v1::JobCentreServiceConfig config = jobcentre::WithDefaults(*loaded);
  if (absl::Status status = jobcentre::ValidateJobCentreConfig(config); !status.ok()) {
    return Fail(status);
  }

  absl::StatusOr<std::string> key = LoadPseudonymKey(config.pseudonym());
  if (!key.ok()) return Fail(key.status());
  absl::StatusOr<std::unique_ptr<Pseudonymizer>> pseudonymizer = Pseudonymizer::Create(*key);
  if (!pseudonymizer.ok()) return Fail(pseudonymizer.status());

  absl::StatusOr<std::unique_ptr<jobcentre::JobCentreAdapter>> adapter =
      jobcentre::NewJobCentreAdapter(config.adapter());
  if (!adapter.ok()) return Fail(adapter.status());

  if (config.kafka().create_topics()) {
    const int partitions = config.kafka().topic_partitions() > 0 ? config.kafka().topic_partitions() : 3;
    const int replication =
        config.kafka().topic_replication_factor() > 0 ? config.kafka().topic_replication_factor() : 1;
    if (absl::Status status =
            kafka::EnsureTopics(config.kafka(), {config.canonical_topic()}, partitions, replication);
        !status.ok()) {
      return Fail(status);
    }
  }
  absl::StatusOr<std::unique_ptr<kafka::Publisher>> publisher =
      kafka::NewKafkaPublisher(config.kafka(), {config.canonical_topic()});
  if (!publisher.ok()) return Fail(publisher.status());

  RecorderOptions options;
  options.topic = config.canonical_topic();
  options.system = "jobcentre";
  options.source_system = events::v1::SOURCE_SYSTEM_JOB_CENTRE;
  options.municipality = config.municipality();
  options.delivery_timeout = kafka::DeliveryTimeout(config.kafka());
  absl::StatusOr<std::unique_ptr<EventRecorder>> recorder =
      EventRecorder::Create(config.ledger_path(), options, **publisher);
  if (!recorder.ok()) return Fail(recorder.status());
  // Events recorded but not confirmed before a crash go out first, in order.
  if (absl::StatusOr<int> drained = (*recorder)->DrainPending(); !drained.ok()) {
    LogWarning("ledger drain failed; pending events are retried on the next call",
               {{"error", std::string(drained.status().message())}});
  }

  const absl::Duration call_timeout =
      config.adapter().has_call_timeout()
          ? absl::Milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(
                config.adapter().call_timeout()))
          : absl::Seconds(5);
  jobcentre::JobCentreServiceImpl service(**adapter, **recorder, **pseudonymizer,
                                          config.municipality(), call_timeout);
  absl::StatusOr<StartedServer> server = StartGrpcServer(config.server(), {&service});
  if (!server.ok()) return Fail(server.status());
  LogInfo("ready", {{"port", std::to_string(server->port)},
                    {"topic", config.canonical_topic()},
                    {"municipality", config.municipality()}});

  const int signal = WaitForTerminationSignal();
  LogInfo("shutting down", {{"signal", std::to_string(signal)}});
  // In-flight RPCs finish (they wait for their own delivery reports), then
  // the producer queue is flushed.
  server->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(15));
  (*publisher)->Flush(absl::Seconds(15)).IgnoreError();
  LogInfo("stopped");
  return 0;
}
