// librdkafka's mock cluster for unit tests that need the real librdkafka
// publisher but no broker: one mock broker (id 1) that a test can take down
// and bring back, and a reader for what reached a topic. Link
// PkgConfig::RDKAFKA to use it.
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "casebridge/events/v1/case_event.pb.h"

namespace casebridge::testing {

class MockKafkaCluster {
 public:
  // Starts the cluster and creates `topic` with one partition.
  explicit MockKafkaCluster(const std::string& topic) : topic_(topic) {
    char error[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", error, sizeof error);
    host_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    cluster_ = rd_kafka_mock_cluster_new(host_, 1);
    rd_kafka_mock_topic_create(cluster_, topic_.c_str(), 1, 1);
  }
  ~MockKafkaCluster() {
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(host_);
  }
  MockKafkaCluster(const MockKafkaCluster&) = delete;
  MockKafkaCluster& operator=(const MockKafkaCluster&) = delete;

  // The bootstrap address for `kafka.bootstrap_servers`.
  std::string bootstrap() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }
  // Disconnects the broker and refuses new connections.
  void Down() { rd_kafka_mock_broker_set_down(cluster_, 1); }
  // Accepts connections again.
  void Up() { rd_kafka_mock_broker_set_up(cluster_, 1); }

  // The case events on the topic, in partition order; reads until at least
  // `at_least` arrived or 20 s passed.
  std::vector<casebridge::events::v1::CaseEvent> ReadAll(size_t at_least) const {
    char error[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap().c_str(), error, sizeof error);
    rd_kafka_conf_set(conf, "group.id", "mock-kafka-reader", error, sizeof error);
    rd_kafka_conf_set(conf, "log_level", "0", error, sizeof error);
    rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
    rd_kafka_topic_partition_list_t* partitions = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(partitions, topic_.c_str(), 0)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(consumer, partitions);
    rd_kafka_topic_partition_list_destroy(partitions);
    std::vector<casebridge::events::v1::CaseEvent> events;
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (events.size() < at_least && absl::Now() < deadline) {
      rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer, 100);
      if (message == nullptr) continue;
      if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        events.emplace_back().ParseFromArray(message->payload, static_cast<int>(message->len));
      }
      rd_kafka_message_destroy(message);
    }
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    return events;
  }

 private:
  std::string topic_;
  rd_kafka_t* host_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

}  // namespace casebridge::testing
