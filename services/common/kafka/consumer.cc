#include "services/common/kafka/consumer.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/kafka/kafka_config.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"

namespace casebridge::kafka {

std::vector<Record> Consumer::PollBatch(absl::Duration timeout, size_t max_records) {
  std::vector<Record> batch;
  while (batch.size() < max_records) {
    std::optional<Record> record = Poll(batch.empty() ? timeout : absl::ZeroDuration());
    if (!record.has_value()) break;
    batch.push_back(std::move(*record));
  }
  return batch;
}

namespace {

// The last record of each partition in `records`.
std::map<std::pair<std::string, int32_t>, const Record*> LastPerPartition(
    const std::vector<Record>& records) {
  std::map<std::pair<std::string, int32_t>, const Record*> last;
  for (const Record& record : records) last[{record.topic, record.partition}] = &record;
  return last;
}

}  // namespace

absl::Status Consumer::Commit(const std::vector<Record>& records) {
  for (const auto& [partition, record] : LastPerPartition(records)) {
    RETURN_IF_ERROR(Commit(*record));
  }
  return absl::OkStatus();
}

void Consumer::CommitAsync(const std::vector<Record>& records) {
  if (absl::Status status = Commit(records); !status.ok()) {
    LogWarning("kafka commit failed", {{"error", std::string(status.message())}});
  }
}

namespace {

// Partitions are assigned and revoked from inside `consume()` — on the
// thread that polls, between two records or batches — never by librdkafka's
// own thread while records are being handled. (Without a rebalance callback
// librdkafka revokes at once in the background, and the partition's next
// owner could take up the records in hand: both would handle them.) With the
// callback, librdkafka rejoins the group only after the unassign here, so the
// group waits (up to `max.poll.interval.ms`) until the records in hand are
// done; `PollBatch` drops what it gathered before a revocation.
class PollThreadRebalance final : public RdKafka::RebalanceCb {
 public:
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      consumer->assign(partitions);
      LogInfo("kafka partitions assigned", {{"partitions", std::to_string(partitions.size())}});
    } else {
      consumer->unassign();
      ++revocations_;
      LogInfo("kafka partitions revoked", {{"partitions", std::to_string(partitions.size())}});
    }
  }
  // How many times partitions were revoked (read on the polling thread,
  // which is the one the callback runs on).
  int64_t revocations() const { return revocations_; }

 private:
  int64_t revocations_ = 0;
};

// The offsets to commit for `records`: after the last record of each
// partition.
struct Offsets {
  explicit Offsets(const std::vector<Record>& records) {
    for (const auto& [partition, record] : LastPerPartition(records)) {
      owned.emplace_back(
          RdKafka::TopicPartition::create(record->topic, record->partition, record->offset + 1));
      list.push_back(owned.back().get());
    }
  }
  std::vector<std::unique_ptr<RdKafka::TopicPartition>> owned;
  std::vector<RdKafka::TopicPartition*> list;
};

class KafkaConsumer final : public Consumer {
 public:
  KafkaConsumer(std::unique_ptr<RdKafka::KafkaConsumer> consumer,
                std::unique_ptr<PollThreadRebalance> rebalance)
      : rebalance_(std::move(rebalance)), consumer_(std::move(consumer)) {}
  ~KafkaConsumer() override { Close(); }

  std::optional<Record> Poll(absl::Duration timeout) override {
    std::unique_ptr<RdKafka::Message> message(
        consumer_->consume(static_cast<int>(absl::ToInt64Milliseconds(timeout))));
    if (message == nullptr) return std::nullopt;
    switch (message->err()) {
      case RdKafka::ERR_NO_ERROR:
        break;
      case RdKafka::ERR__TIMED_OUT:
      case RdKafka::ERR__PARTITION_EOF:
        return std::nullopt;
      default:
        LogWarning("kafka consume error", {{"error", message->errstr()}});
        return std::nullopt;
    }
    Record record;
    record.topic = message->topic_name();
    record.partition = message->partition();
    record.offset = message->offset();
    if (message->key() != nullptr) record.key = *message->key();
    if (message->payload() != nullptr) {
      record.value.assign(static_cast<const char*>(message->payload()), message->len());
    }
    if (RdKafka::Headers* headers = message->headers(); headers != nullptr) {
      for (const RdKafka::Headers::Header& header : headers->get_all()) {
        record.headers.push_back(
            {header.key(), header.value() != nullptr
                               ? std::string(static_cast<const char*>(header.value()),
                                             header.value_size())
                               : std::string()});
      }
    }
    return record;
  }

  std::vector<Record> PollBatch(absl::Duration timeout, size_t max_records) override {
    std::vector<Record> batch;
    int64_t revocations = rebalance_->revocations();
    while (batch.size() < max_records) {
      std::optional<Record> record = Poll(batch.empty() ? timeout : absl::ZeroDuration());
      // The eager protocol revokes every partition at once: what was
      // gathered before belongs to the old assignment.
      if (rebalance_->revocations() != revocations) {
        revocations = rebalance_->revocations();
        batch.clear();
      }
      if (!record.has_value()) break;
      batch.push_back(std::move(*record));
    }
    return batch;
  }

  absl::Status Commit(const Record& record) override { return Commit(std::vector<Record>{record}); }

  absl::Status Commit(const std::vector<Record>& records) override {
    if (records.empty()) return absl::OkStatus();
    Offsets offsets(records);
    const RdKafka::ErrorCode code = consumer_->commitSync(offsets.list);
    if (code != RdKafka::ERR_NO_ERROR) {
      return absl::UnavailableError(absl::StrCat("kafka commit: ", RdKafka::err2str(code)));
    }
    return absl::OkStatus();
  }

  void CommitAsync(const std::vector<Record>& records) override {
    if (records.empty()) return;
    Offsets offsets(records);
    // librdkafka copies the list; the outcome is not waited for.
    if (const RdKafka::ErrorCode code = consumer_->commitAsync(offsets.list);
        code != RdKafka::ERR_NO_ERROR) {
      LogWarning("kafka commit failed", {{"error", RdKafka::err2str(code)}});
    }
  }

  void Close() override {
    if (!closed_) {
      closed_ = true;
      consumer_->close();
    }
  }

  std::vector<PartitionLag> Lag() override {
    std::vector<PartitionLag> lags;
    if (closed_) return lags;
    std::vector<RdKafka::TopicPartition*> partitions;
    if (consumer_->assignment(partitions) != RdKafka::ERR_NO_ERROR) return lags;
    if (consumer_->position(partitions) == RdKafka::ERR_NO_ERROR) {
      for (const RdKafka::TopicPartition* partition : partitions) {
        if (partition->offset() < 0) continue;  // nothing consumed since assigned
        int64_t low = 0, high = 0;
        // The watermarks of the last fetch response: no broker round trip.
        if (consumer_->get_watermark_offsets(partition->topic(), partition->partition(), &low,
                                             &high) != RdKafka::ERR_NO_ERROR ||
            high < 0) {
          continue;
        }
        lags.push_back({partition->topic(), partition->partition(),
                        std::max<int64_t>(0, high - partition->offset())});
      }
    }
    RdKafka::TopicPartition::destroy(partitions);
    return lags;
  }

 private:
  // Declared first: it must outlive the consumer that calls it.
  std::unique_ptr<PollThreadRebalance> rebalance_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::atomic<bool> closed_{false};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Consumer>> NewKafkaConsumer(
    const casebridge::config::v1::KafkaConfig& config, const std::string& group,
    const std::vector<std::string>& topics) {
  if (absl::Status status = ValidateKafkaConfig(config); !status.ok()) return status;
  if (absl::Status status = CheckKafkaTlsFiles(config); !status.ok()) return status;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string error;
  std::map<std::string, std::string> properties = ClientProperties(config);
  properties["group.id"] = group;
  properties["enable.auto.commit"] = "false";
  properties["enable.auto.offset.store"] = "false";
  properties.try_emplace("auto.offset.reset", "earliest");
  properties.try_emplace("topic.metadata.refresh.interval.ms", "2000");
  for (const auto& [key, value] : properties) {
    if (conf->set(key, value, error) != RdKafka::Conf::CONF_OK) {
      return absl::InvalidArgumentError(absl::StrCat("kafka.properties.", key, ": ", error));
    }
  }
  auto rebalance = std::make_unique<PollThreadRebalance>();
  if (conf->set("rebalance_cb", rebalance.get(), error) != RdKafka::Conf::CONF_OK) {
    return absl::InternalError(absl::StrCat("kafka rebalance_cb: ", error));
  }
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), error));
  if (consumer == nullptr) return absl::InvalidArgumentError(absl::StrCat("kafka: ", error));
  if (RdKafka::ErrorCode code = consumer->subscribe(topics); code != RdKafka::ERR_NO_ERROR) {
    return absl::InvalidArgumentError(absl::StrCat("kafka subscribe: ", RdKafka::err2str(code)));
  }
  return std::unique_ptr<Consumer>(new KafkaConsumer(std::move(consumer), std::move(rebalance)));
}

absl::Status EnsureTopics(const casebridge::config::v1::KafkaConfig& config,
                          const std::vector<std::string>& topics, int partitions,
                          int replication_factor) {
  if (topics.empty()) return absl::OkStatus();
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [key, value] : ClientProperties(config)) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof error) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(absl::StrCat("kafka.properties.", key, ": ", error));
    }
  }
  rd_kafka_t* admin = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (admin == nullptr) return absl::InvalidArgumentError(absl::StrCat("kafka: ", error));
  std::vector<rd_kafka_NewTopic_t*> new_topics;
  for (const std::string& topic : topics) {
    new_topics.push_back(
        rd_kafka_NewTopic_new(topic.c_str(), partitions, replication_factor, error, sizeof error));
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(admin);
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(admin, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(options, 10000, error, sizeof error);
  rd_kafka_CreateTopics(admin, new_topics.data(), new_topics.size(), options, queue);
  absl::Status status = absl::OkStatus();
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 20000);
  if (event == nullptr) {
    status = absl::UnavailableError("kafka: creating topics timed out");
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    status = absl::UnavailableError(
        absl::StrCat("kafka: creating topics: ", rd_kafka_event_error_string(event)));
  } else {
    size_t count = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count);
    for (size_t i = 0; i < count; ++i) {
      const rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        status = absl::UnavailableError(absl::StrCat("kafka: creating topic ",
                                                     rd_kafka_topic_result_name(results[i]), ": ",
                                                     rd_kafka_err2str(err)));
      }
    }
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  for (rd_kafka_NewTopic_t* topic : new_topics) rd_kafka_NewTopic_destroy(topic);
  rd_kafka_destroy(admin);
  return status;
}

absl::Status CreateTopicsIfEnabled(const casebridge::config::v1::KafkaConfig& config,
                                   const std::vector<std::string>& topics) {
  if (!config.create_topics()) return absl::OkStatus();
  return EnsureTopics(config, topics, config.topic_partitions() > 0 ? config.topic_partitions() : 3,
                      config.topic_replication_factor() > 0 ? config.topic_replication_factor() : 1);
}

}  // namespace casebridge::kafka
