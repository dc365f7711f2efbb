// The delivery processor: the consume loop that turns the canonical topic
// into deliveries on the recipients' topics.
//
// For each record of the canonical topic, on its own thread:
//
//   decode → `CoordinationStore::Apply` (one transaction) → publish every
//   pending delivery to its recipient's topic → wait until all are durable →
//   `MarkPublished` → wake `Subscribe` streams → commit the record's offset
//
// Crash safety: at-least-once with de-duplication. The offset is committed
// only after the deliveries are durable; a record consumed again after a
// crash is recognised by its event id and yields nothing new, and deliveries
// stored but not yet published are published first when the processor
// starts. A recipient may therefore receive a delivery twice (same
// `ce_recipientseq`), never miss one.
//
// Records that can never be applied are logged (without personal data),
// counted, committed and skipped: undecodable records and role events naming
// a recipient that is not configured (AssignRole refuses those; a dead-letter
// topic comes later). Publishing failures are retried with backoff, without
// committing and without skipping.
//
// On a recipient's topic a delivery is `kafka::CaseEventRecord(topic, event)`
// plus the headers `ce_recipient` (the recipient id) and `ce_recipientseq`
// (`FormatSequence(case_sequence)`); the key is the subject.
//
// Thread safety: `Start` and `Stop` are called from one thread.
// `PublishPending` and `Process` are for tests and must not run while the
// thread runs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "casebridge/coordination/v1/coordination_service.pb.h"
#include "services/common/clock.h"
#include "services/common/kafka/consumer.h"
#include "services/common/kafka/publisher.h"
#include "services/common/kafka/record.h"
#include "services/coordination/coordination_store.h"
#include "services/coordination/delivery_notifier.h"

namespace casebridge::coordination {

struct DeliveryProcessorOptions {
  // Recipient id → its Kafka topic (`RecipientTopics(config)`). A stored
  // delivery to a recipient missing here is logged as an error and marked
  // published without being sent.
  std::map<std::string, std::string> recipient_topics;
  // How long one `Consumer::Poll` waits; bounds how long `Stop` takes.
  absl::Duration poll_timeout = absl::Milliseconds(200);
  // How long to wait for the deliveries of one batch to become durable.
  absl::Duration delivery_timeout = absl::Seconds(10);
  // Retry backoff after a failure: doubles from `initial_backoff` up to
  // `max_backoff`.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);
  // Deliveries published per batch.
  int batch_size = 100;
};

// Counters since construction.
struct DeliveryProcessorStats {
  int64_t records = 0;              // records taken from the canonical topic
  int64_t undecodable = 0;          // skipped: not a CaseEvent record
  int64_t skipped = 0;              // skipped: unknown recipient or unusable event
  int64_t deliveries_published = 0; // deliveries durable on a recipient topic
  int64_t publish_failures = 0;     // batches that failed and were retried
};

// The header names a delivery adds to the CloudEvents record.
inline constexpr char kRecipientHeader[] = "ce_recipient";
inline constexpr char kRecipientSequenceHeader[] = "ce_recipientseq";

// Builds the record of `delivery` on `topic`.
kafka::Record DeliveryRecord(const std::string& topic,
                             const casebridge::coordination::v1::Delivery& delivery);

class DeliveryProcessor {
 public:
  // Every reference must outlive the processor.
  DeliveryProcessor(CoordinationStore& store, kafka::Consumer& consumer,
                    kafka::Publisher& publisher, DeliveryNotifier& notifier,
                    DeliveryProcessorOptions options, Clock& clock = RealClock());
  DeliveryProcessor(const DeliveryProcessor&) = delete;
  DeliveryProcessor& operator=(const DeliveryProcessor&) = delete;
  // Stops the thread if it runs.
  ~DeliveryProcessor();

  // Starts the thread: pending deliveries first, then the consume loop.
  // REQUIRES: not started before.
  void Start();

  // Stops the thread and joins it. A record in flight is not committed (it
  // is consumed again on the next start). Idempotent.
  void Stop();

  // Publishes every pending delivery in the store, in batches, and marks the
  // durable ones published. Returns the first publishing error (the failed
  // deliveries stay pending) or a store error.
  absl::Status PublishPending();

  // Handles one consumed record up to, not including, the commit: OK when the
  // record may be committed (applied and published, or skipped).
  absl::Status Process(const kafka::Record& record);

  DeliveryProcessorStats stats() const;

 private:
  void Run();
  // Retries `step` with backoff until it succeeds (true) or `Stop` (false).
  template <typename Step>
  bool RetryUntilDone(const char* what, Step step);
  // Sleeps `duration` unless `Stop` is called first. Returns false if stopped.
  bool SleepUnlessStopped(absl::Duration duration);
  bool stopping() const;

  CoordinationStore& store_;
  kafka::Consumer& consumer_;
  kafka::Publisher& publisher_;
  DeliveryNotifier& notifier_;
  const DeliveryProcessorOptions options_;
  Clock& clock_;

  std::atomic<int64_t> records_{0};
  std::atomic<int64_t> undecodable_{0};
  std::atomic<int64_t> skipped_{0};
  std::atomic<int64_t> deliveries_published_{0};
  std::atomic<int64_t> publish_failures_{0};

  mutable std::mutex mu_;
  std::condition_variable stop_requested_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace casebridge::coordination
