// Publishing records to Kafka.
//
// Delivery semantics: `Send` enqueues a record and returns a future that
// becomes ready when the broker has acknowledged the record durably
// (acks=all, idempotent producer) — OK — or when it cannot be (an error,
// never OK). Records sent one after another from one thread, or under one
// lock, reach each partition in that order. Nothing is acknowledged that is
// not durable: an RPC that waits for its own future tells its caller the
// truth, and many RPCs wait in parallel (no global flush).
#pragma once

#include <future>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/common/kafka/record.h"

namespace casebridge::kafka {

// Thread safety: implementations are safe for concurrent use.
class Publisher {
 public:
  virtual ~Publisher() = default;

  // Enqueues `record`. The future's status is OK once the record is durable;
  // kUnavailable if the broker could not be reached in time, kInvalidArgument
  // if the record was rejected (e.g. too large), kInternal otherwise.
  virtual std::future<absl::Status> Send(Record record) = 0;

  // Waits until every enqueued record has its outcome, at most `timeout`.
  // kDeadlineExceeded if records are still outstanding.
  virtual absl::Status Flush(absl::Duration timeout) = 0;

  // True while the publisher believes the broker is reachable (for health
  // checks).
  virtual bool Healthy() const = 0;

  // Asks a broker for metadata, waiting at most `timeout`: OK if one
  // answered (readiness and `casebridge_kafka_connected`). The default (an
  // in-memory publisher) is always reachable.
  virtual absl::Status CheckConnectivity(absl::Duration timeout) {
    (void)timeout;
    return absl::OkStatus();
  }

  // Records waiting in the producer's queue (not yet acknowledged), for
  // metrics.
  virtual int64_t QueueLength() const { return 0; }
};

// Sends `record` and waits for its outcome, at most `timeout` beyond
// which the result is kUnavailable ("not known to be durable").
absl::Status SendAndWait(Publisher& publisher, Record record, absl::Duration timeout);

}  // namespace casebridge::kafka
