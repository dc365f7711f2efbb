// Consuming records from Kafka in a consumer group, with manual commits:
// a record's offset is committed only after the caller has made its effect
// durable, so a crash re-delivers rather than loses.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/kafka/record.h"

namespace casebridge::kafka {

// Thread safety: not safe for concurrent use; one thread polls and commits.
class Consumer {
 public:
  virtual ~Consumer() = default;

  // Waits up to `timeout` for the next record. Returns std::nullopt when
  // none arrived; logs and skips transient consumer errors.
  virtual std::optional<Record> Poll(absl::Duration timeout) = 0;

  // Waits up to `timeout` for a first record, then takes those already
  // fetched, up to `max_records` in all, in consumption order. Records of a
  // partition revoked while the batch was gathered are dropped (they are
  // not the caller's any more; their next owner consumes them from the
  // committed offset). The default polls one at a time.
  virtual std::vector<Record> PollBatch(absl::Duration timeout, size_t max_records);

  // Commits everything up to and including `record` on its partition.
  virtual absl::Status Commit(const Record& record) = 0;

  // Commits, for each partition in `records`, everything up to and
  // including its last record there: one commit for a batch. The default
  // commits partition by partition.
  virtual absl::Status Commit(const std::vector<Record>& records);

  // Like `Commit(records)`, but does not wait for the broker: for callers
  // whose effects are idempotent, so that a commit lost in a crash or a
  // rebalance only means records consumed again. Failures are logged. The
  // default commits synchronously.
  virtual void CommitAsync(const std::vector<Record>& records);

  // Leaves the group cleanly (commits nothing further).
  virtual void Close() = 0;

  // How far this consumer is behind, per assigned partition: the log end
  // offset (as of the last fetch) minus the position. Safe to call from
  // another thread (metrics) until Close(). Partitions not consumed from
  // yet since their assignment are left out. The default has none.
  struct PartitionLag {
    std::string topic;
    int32_t partition = 0;
    int64_t lag = 0;
  };
  virtual std::vector<PartitionLag> Lag() { return {}; }
};

// Creates a consumer in `group` subscribed to `topics`, starting from the
// earliest offset when the group has no commit. Auto-commit is off.
absl::StatusOr<std::unique_ptr<Consumer>> NewKafkaConsumer(
    const casebridge::config::v1::KafkaConfig& config, const std::string& group,
    const std::vector<std::string>& topics);

// Creates each of `topics` that does not exist yet, with `partitions` and
// `replication_factor`. Existing topics are left alone.
absl::Status EnsureTopics(const casebridge::config::v1::KafkaConfig& config,
                          const std::vector<std::string>& topics, int partitions,
                          int replication_factor);

// Calls `EnsureTopics` with the configured partitions (default 3) and
// replication factor (default 1) if `config.create_topics` is set; else
// does nothing.
absl::Status CreateTopicsIfEnabled(const casebridge::config::v1::KafkaConfig& config,
                                   const std::vector<std::string>& topics);

}  // namespace casebridge::kafka
