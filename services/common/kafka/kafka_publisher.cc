#include "services/common/kafka/kafka_publisher.h"

#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "services/common/kafka/kafka_config.h"
#include "services/common/log.h"
#include "services/common/metrics.h"

namespace casebridge::kafka {

absl::Status SendAndWait(Publisher& publisher, Record record, absl::Duration timeout) {
  std::future<absl::Status> outcome = publisher.Send(std::move(record));
  if (outcome.wait_for(absl::ToChronoMilliseconds(timeout)) != std::future_status::ready) {
    return absl::UnavailableError("kafka: the event is not known to be durable yet (timeout)");
  }
  return outcome.get();
}

namespace {

absl::Status StatusFromError(RdKafka::ErrorCode code) {
  const std::string text = absl::StrCat("kafka: ", RdKafka::err2str(code));
  switch (code) {
    case RdKafka::ERR_NO_ERROR:
      return absl::OkStatus();
    case RdKafka::ERR_MSG_SIZE_TOO_LARGE:
    case RdKafka::ERR__MSG_TIMED_OUT:
      if (code == RdKafka::ERR_MSG_SIZE_TOO_LARGE) return absl::InvalidArgumentError(text);
      return absl::UnavailableError(text);
    case RdKafka::ERR__TRANSPORT:
    case RdKafka::ERR__ALL_BROKERS_DOWN:
    case RdKafka::ERR__QUEUE_FULL:
    case RdKafka::ERR__TIMED_OUT:
    case RdKafka::ERR_NOT_ENOUGH_REPLICAS:
    case RdKafka::ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RdKafka::ERR_LEADER_NOT_AVAILABLE:
    case RdKafka::ERR_NOT_LEADER_FOR_PARTITION:
    case RdKafka::ERR_REQUEST_TIMED_OUT:
      return absl::UnavailableError(text);
    case RdKafka::ERR_TOPIC_AUTHORIZATION_FAILED:
    case RdKafka::ERR_CLUSTER_AUTHORIZATION_FAILED:
      return absl::PermissionDeniedError(text);
    default:
      return absl::InternalError(text);
  }
}

// Routes delivery reports to the promise each record carries as its opaque.
class DeliveryReports final : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& message) override {
    if (message.err() != RdKafka::ERR_NO_ERROR) metrics::KafkaDeliveryError(message.topic_name());
    auto* promise = static_cast<std::promise<absl::Status>*>(message.msg_opaque());
    if (promise == nullptr) return;
    promise->set_value(StatusFromError(message.err()));
    delete promise;
  }
};

// Tracks broker reachability and fatal errors.
class Events final : public RdKafka::EventCb {
 public:
  void event_cb(RdKafka::Event& event) override {
    if (event.type() != RdKafka::Event::EVENT_ERROR) return;
    if (event.fatal()) {
      fatal_ = true;
      LogError("kafka fatal error: producer stops", {{"error", event.str()}});
      return;
    }
    if (event.err() == RdKafka::ERR__ALL_BROKERS_DOWN) healthy_ = false;
    LogWarning("kafka error", {{"error", RdKafka::err2str(event.err())}, {"detail", event.str()}});
  }
  std::atomic<bool> healthy_{true};
  std::atomic<bool> fatal_{false};
};

class KafkaPublisher final : public Publisher {
 public:
  KafkaPublisher(std::unique_ptr<DeliveryReports> reports, std::unique_ptr<Events> events)
      : reports_(std::move(reports)), events_(std::move(events)) {}

  absl::Status Init(RdKafka::Conf& conf, const std::vector<std::string>& topics) {
    std::string error;
    producer_.reset(RdKafka::Producer::create(&conf, error));
    if (producer_ == nullptr) return absl::InvalidArgumentError(absl::StrCat("kafka: ", error));
    poller_ = std::thread([this] {
      while (!stop_) producer_->poll(50);
    });
    // Warm the topics' metadata: otherwise the first record waits for
    // librdkafka's periodic topic scan (about 1 s).
    for (const std::string& name : topics) {
      metrics::DeclareTopic(name);
      std::unique_ptr<RdKafka::Topic> topic(
          RdKafka::Topic::create(producer_.get(), name, nullptr, error));
      if (topic == nullptr) continue;
      RdKafka::Metadata* metadata = nullptr;
      if (producer_->metadata(false, topic.get(), &metadata, 5000) == RdKafka::ERR_NO_ERROR) {
        delete metadata;
      }
    }
    return absl::OkStatus();
  }

  ~KafkaPublisher() override {
    // Records still queued would be dropped by destroying the handle.
    if (producer_ != nullptr) producer_->flush(10000);
    stop_ = true;
    if (poller_.joinable()) poller_.join();
  }

  std::future<absl::Status> Send(Record record) override {
    auto* promise = new std::promise<absl::Status>();
    std::future<absl::Status> future = promise->get_future();
    if (events_->fatal_) {
      promise->set_value(absl::InternalError("kafka: the producer hit a fatal error"));
      delete promise;
      return future;
    }
    RdKafka::Headers* headers = RdKafka::Headers::create();
    for (const Header& header : record.headers) headers->add(header.key, header.value);
    const RdKafka::ErrorCode code = producer_->produce(
        record.topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
        record.value.data(), record.value.size(), record.key.data(), record.key.size(),
        /*timestamp=*/0, headers, promise);
    if (code != RdKafka::ERR_NO_ERROR) {
      delete headers;  // owned by librdkafka only on success
      promise->set_value(StatusFromError(code));
      delete promise;
    }
    return future;
  }

  absl::Status Flush(absl::Duration timeout) override {
    if (producer_->flush(static_cast<int>(absl::ToInt64Milliseconds(timeout))) !=
        RdKafka::ERR_NO_ERROR) {
      return absl::DeadlineExceededError("kafka: records still outstanding after flush");
    }
    return absl::OkStatus();
  }

  bool Healthy() const override { return !events_->fatal_; }

  absl::Status CheckConnectivity(absl::Duration timeout) override {
    if (events_->fatal_) return absl::InternalError("kafka: the producer hit a fatal error");
    RdKafka::Metadata* metadata = nullptr;
    // Locally known topics only: a broker round trip, nothing more.
    const RdKafka::ErrorCode code = producer_->metadata(
        false, nullptr, &metadata, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    delete metadata;
    return code == RdKafka::ERR_NO_ERROR ? absl::OkStatus() : StatusFromError(code);
  }

  int64_t QueueLength() const override { return producer_->outq_len(); }

 private:
  std::unique_ptr<DeliveryReports> reports_;
  std::unique_ptr<Events> events_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::atomic<bool> stop_{false};
  std::thread poller_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Publisher>> NewKafkaPublisher(
    const casebridge::config::v1::KafkaConfig& config, const std::vector<std::string>& topics) {
  if (absl::Status status = ValidateKafkaConfig(config); !status.ok()) return status;
  if (absl::Status status = CheckKafkaTlsFiles(config); !status.ok()) return status;
  auto reports = std::make_unique<DeliveryReports>();
  auto events = std::make_unique<Events>();
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string error;
  std::map<std::string, std::string> properties = ClientProperties(config);
  properties["enable.idempotence"] = "true";
  properties["acks"] = "all";
  // Any failure that could leave a gap (and so reorder a retried event
  // behind a later one) stops the producer instead: see
  // docs/adr/0005-durable-recording-path.md.
  properties["enable.gapless.guarantee"] = "true";
  properties.try_emplace("linger.ms", "1");
  properties["message.timeout.ms"] =
      std::to_string(absl::ToInt64Milliseconds(DeliveryTimeout(config)));
  for (const auto& [key, value] : properties) {
    if (conf->set(key, value, error) != RdKafka::Conf::CONF_OK) {
      return absl::InvalidArgumentError(absl::StrCat("kafka.properties.", key, ": ", error));
    }
  }
  conf->set("dr_cb", reports.get(), error);
  conf->set("event_cb", events.get(), error);
  auto publisher = std::make_unique<KafkaPublisher>(std::move(reports), std::move(events));
  if (absl::Status status = publisher->Init(*conf, topics); !status.ok()) return status;
  return publisher;
}

}  // namespace casebridge::kafka
