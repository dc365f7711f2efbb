// casebridge-coordination: wires the coordination service together and runs
// it.
//
//   casebridge-coordination --config coordination.json
//
// The config schema is casebridge.config.v1.CoordinationServiceConfig; the
// pseudonymisation key comes from the file or environment variable it names.
#include <chrono>
#include <cstring>
#include <iostream>
#include <vector>

#include "services/common/config.h"
#include "services/common/event_recorder.h"
#include "services/common/grpc_server.h"
#include "services/common/kafka/consumer.h"
#include "services/common/kafka/kafka_config.h"
#include "services/common/kafka/kafka_publisher.h"
#include "services/common/log.h"
#include "services/common/pseudonym.h"
#include "services/coordination/coordination_config.h"
#include "services/coordination/coordination_service.h"
#include "services/coordination/coordination_store.h"
#include "services/coordination/delivery_notifier.h"
#include "services/coordination/delivery_processor.h"

namespace {

int Fail(const absl::Status& status) {
  casebridge::LogError("start-up failed", {{"error", std::string(status.message())}});
  std::cerr << "casebridge-coordination: " << status.message() << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace casebridge;
  using namespace casebridge::coordination;
  SetLogService("coordination");
  BlockTerminationSignals();
  if (argc != 3 || std::strcmp(argv[1], "--config") != 0) {
    std::cerr << "usage: casebridge-coordination --config <file.json>\n";
    return 2;
  }

  absl::StatusOr<config::v1::CoordinationServiceConfig> loaded =
      LoadConfig<config::v1::CoordinationServiceConfig>(argv[2]);
  if (!loaded.ok()) return Fail(loaded.status());
  const config::v1::CoordinationServiceConfig config = WithDefaults(*loaded);
  if (absl::Status status = ValidateCoordinationConfig(config); !status.ok()) return Fail(status);

  absl::StatusOr<std::string> key = LoadPseudonymKey(config.pseudonym());
  if (!key.ok()) return Fail(key.status());
  absl::StatusOr<std::unique_ptr<Pseudonymizer>> pseudonymizer = Pseudonymizer::Create(*key);
  if (!pseudonymizer.ok()) return Fail(pseudonymizer.status());

  absl::StatusOr<std::unique_ptr<CoordinationStore>> store =
      CoordinationStore::Open(config.store_path());
  if (!store.ok()) return Fail(store.status());

  const std::map<std::string, std::string> recipient_topics = RecipientTopics(config);
  std::vector<std::string> topics = {config.canonical_topic()};
  for (const auto& [recipient, topic] : recipient_topics) topics.push_back(topic);
  if (config.kafka().create_topics()) {
    const config::v1::KafkaConfig& kafka = config.kafka();
    const int partitions = kafka.topic_partitions() > 0 ? kafka.topic_partitions() : 3;
    const int replication =
        kafka.topic_replication_factor() > 0 ? kafka.topic_replication_factor() : 1;
    if (absl::Status status = kafka::EnsureTopics(config.kafka(), topics, partitions, replication);
        !status.ok()) {
      return Fail(status);
    }
  }
  absl::StatusOr<std::unique_ptr<kafka::Publisher>> publisher =
      kafka::NewKafkaPublisher(config.kafka(), topics);
  if (!publisher.ok()) return Fail(publisher.status());

  RecorderOptions options;
  options.topic = config.canonical_topic();
  options.system = "coordination";
  options.source_system = events::v1::SOURCE_SYSTEM_COORDINATION;
  options.municipality = config.municipality();
  options.delivery_timeout = kafka::DeliveryTimeout(config.kafka());
  absl::StatusOr<std::unique_ptr<EventRecorder>> recorder =
      EventRecorder::Create(LedgerPath(config), options, **publisher);
  if (!recorder.ok()) return Fail(recorder.status());
  // Role events recorded but not confirmed before a crash go out first.
  if (absl::StatusOr<int> drained = (*recorder)->DrainPending(); !drained.ok()) {
    LogWarning("ledger drain failed; pending events are retried on the next call",
               {{"error", std::string(drained.status().message())}});
  }

  absl::StatusOr<std::unique_ptr<kafka::Consumer>> consumer =
      kafka::NewKafkaConsumer(config.kafka(), config.consumer_group(), {config.canonical_topic()});
  if (!consumer.ok()) return Fail(consumer.status());

  DeliveryNotifier notifier;
  DeliveryProcessorOptions processor_options;
  processor_options.recipient_topics = recipient_topics;
  processor_options.delivery_timeout = kafka::DeliveryTimeout(config.kafka());
  DeliveryProcessor processor(**store, **consumer, **publisher, notifier, processor_options);
  processor.Start();

  CoordinationServiceImpl service(**store, **recorder, **pseudonymizer, config, notifier);
  absl::StatusOr<StartedServer> server = StartGrpcServer(config.server(), {&service});
  if (!server.ok()) {
    processor.Stop();
    return Fail(server.status());
  }
  LogInfo("ready", {{"port", std::to_string(server->port)},
                    {"canonical_topic", config.canonical_topic()},
                    {"consumer_group", config.consumer_group()},
                    {"recipients", std::to_string(recipient_topics.size())},
                    {"municipality", config.municipality()}});

  const int signal = WaitForTerminationSignal();
  LogInfo("shutting down", {{"signal", std::to_string(signal)}});
  // Subscribe streams end first (they would otherwise hold the server), then
  // in-flight unary RPCs finish, then the consume loop stops between records
  // and the producer queue is flushed.
  service.Shutdown();
  server->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  processor.Stop();
  (*consumer)->Close();
  (*publisher)->Flush(absl::Seconds(15)).IgnoreError();
  LogInfo("stopped");
  return 0;
}
