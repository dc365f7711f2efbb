// The delivery processor: the consume loop that turns the canonical topic
// into deliveries on the recipients' topics.
//
// For each record of the canonical topic, on its own thread:
//
//   decode → skip other municipalities' events → derive (`DeriveFromEvent`)
//   and record the derived events → `CoordinationStore::Apply` (one
//   transaction) → publish every pending delivery to its recipient's topic →
//   wait until all are durable → `MarkPublished` → wake `Subscribe` streams →
//   commit the offset
//
// in batches: a poll takes up to `max_poll_records` records already fetched;
// a run of ordinary events (nothing the case rules derive from, nothing to
// dead-letter) is applied in one transaction, its deliveries are published
// together and waited for once, marked in one transaction, and the batch is
// committed with one asynchronous offset commit (what a lost commit costs
// is records consumed again, which yield nothing new). Everything else in the batch goes
// through the steps above alone, in its place, so order is kept.
//
// One municipality per instance. Every coordination instance consumes the
// one canonical topic (in its own consumer group); an event whose
// `municipality` is not the instance's own is counted, committed and skipped:
// not derived from, not stored, not delivered.
//
// Derived events. Before an event E is applied, the case rules see the
// case's history with E appended (and the holders after E), and every event
// they derive is recorded through the coordination `EventRecorder` onto the
// canonical topic, where it comes back round to be routed like any event.
// Derivation happens before `Apply` and before the commit, and each derived
// event's idempotency key names its situation: a crash in between derives the
// same events again with the same keys, and the recorder records nothing
// twice. An event already applied (consumed again) is not derived from again.
// If recording fails (Kafka), E is retried with backoff, not skipped.
//
// Crash safety: at-least-once with de-duplication. The offset is committed
// only after the deliveries are durable; a record consumed again after a
// crash is recognised by its event id and yields nothing new except the
// publishing of its deliveries still pending. A recipient may therefore
// receive a delivery twice (same `ce_recipientseq`) if a crash falls between
// its durability and `MarkPublished`, never miss one.
//
// Replicas (a PostgreSQL store shared by several instances in one consumer
// group): the group gives each canonical partition, and so each case, to one
// instance at a time, and the loop finishes a batch (stored, published,
// marked, its commit sent) before it polls again;
// the consumer's rebalance callback runs inside `Poll` (kafka/consumer.cc),
// so a rebalance hands a partition over between batches (records gathered
// before a revocation in the same `PollBatch` are dropped, not handled). Pending deliveries
// are published only by whoever consumes their record — never in a sweep at
// start — so a replica that takes over a partition publishes what the
// previous owner left pending, and a live replica is never raced. An
// instance that stalls past `max.poll.interval.ms` loses its partitions and
// may publish one record's deliveries a second time (same
// `ce_recipientseq`).
//
// Poison records — those that can never be applied: undecodable records,
// events without id or subject, role events naming a recipient that is not
// configured (AssignRole refuses those) — are copied to the dead-letter topic
// with the reason and where they came from (headers `casebridge_dlq_reason`,
// `casebridge_dlq_source` = "<topic>/<partition>/<offset>",
// `casebridge_dlq_consumer`), counted, logged without personal data, and
// committed, so nothing blocks the partition. The copy is durable before the
// commit; if the dead-letter topic cannot be written the record is retried
// like any publishing failure, never dropped. Publishing failures are retried
// with backoff, without committing and without skipping.
//
// On a recipient's topic a delivery is `kafka::CaseEventRecord(topic, event)`
// — the event as the recipient may see it (projection.h) — plus the headers
// `ce_recipient` (the recipient id), `ce_recipientseq`
// (`FormatSequence(case_sequence)`) and `ce_disclosure` ("full" or
// "minimal"); the key is the subject. Each delivery's audit record goes to
// the audit topic alongside it (audit_log.h).
//
// Tracing (W3C Trace Context, docs/adr/0022-w3c-trace-context.md). Handling
// one canonical record is one span, a child of the trace the record carries
// (`kafka::TraceContextOf`; a new trace if it carries none). Its deliveries
// are stored with that span's context and carry it on the recipients'
// topics, as do their audit records; the events derived from the record are
// recorded with it, so they continue the trace. A poison record's
// dead-letter copy keeps every original header, the trace headers included.
//
// Thread safety: `Start` and `Stop` are called from one thread.
// `PublishPending` and `Process` are for tests and must not run while the
// thread runs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "casebridge/coordination/v1/coordination_service.pb.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/clock.h"
#include "services/common/event_recorder.h"
#include "services/common/kafka/consumer.h"
#include "services/common/kafka/publisher.h"
#include "services/common/kafka/record.h"
#include "services/coordination/audit_log.h"
#include "services/coordination/case_rules.h"
#include "services/coordination/coordination_store.h"
#include "services/coordination/delivery_notifier.h"

namespace casebridge::coordination {

struct DeliveryProcessorOptions {
  // The instance's municipality (kommunekode). Events of any other
  // municipality are skipped. Required.
  std::string municipality;
  // The municipality's load limits, for `DeriveFromEvent`.
  casebridge::config::v1::LoadConfig load;
  // The case rules: what to record because of `event`, given the case's
  // `history` (`event` last, holders after it). Empty (the default):
  // `DeriveFromEvent(history, event, load)`. Tests replace it.
  std::function<std::vector<DerivedEvent>(const CaseHistory& history,
                                          const casebridge::events::v1::CaseEvent& event)>
      derive;
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
  // Deliveries published per batch (`PublishPending`).
  int batch_size = 100;
  // The most canonical records taken per poll: ordinary events among them
  // are applied in one store transaction, their deliveries published
  // together, and the batch committed with one offset commit.
  int max_poll_records = 500;
  // Where every delivery's audit record goes (`DeliveryAuditRecord`): a
  // delivery counts as published only when its audit record is durable too.
  // The app always sets it; null (tests only) audits nothing.
  AuditLog* audit = nullptr;
  // The dead-letter topic. Empty (tests only): poison records are logged,
  // counted and skipped.
  std::string dead_letter_topic;
};

// Counters since construction.
struct DeliveryProcessorStats {
  int64_t records = 0;              // records taken from the canonical topic
  int64_t undecodable = 0;          // skipped: not a CaseEvent record
  int64_t skipped = 0;              // skipped: unknown recipient or unusable event
  int64_t other_municipality = 0;   // skipped: another municipality's event
  int64_t derived_recorded = 0;     // derived events newly recorded
  int64_t deliveries_published = 0; // deliveries durable on a recipient topic
  int64_t publish_failures = 0;     // batches that failed and were retried
  int64_t dead_lettered = 0;        // poison records copied to the dead-letter topic
};

// The header names a delivery adds to the CloudEvents record.
inline constexpr char kRecipientHeader[] = "ce_recipient";
inline constexpr char kRecipientSequenceHeader[] = "ce_recipientseq";
// "full" or "minimal": whether the value is the whole event or its minimal
// projection (casebridge.coordination.v1.Delivery.disclosure).
inline constexpr char kDisclosureHeader[] = "ce_disclosure";
// The dead-letter headers.
inline constexpr char kDeadLetterReasonHeader[] = "casebridge_dlq_reason";
inline constexpr char kDeadLetterSourceHeader[] = "casebridge_dlq_source";
inline constexpr char kDeadLetterConsumerHeader[] = "casebridge_dlq_consumer";

// Builds the record of `delivery` on `topic`, with the trace headers of
// `trace` (none if it is not valid).
kafka::Record DeliveryRecord(const std::string& topic,
                             const casebridge::coordination::v1::Delivery& delivery,
                             const TraceContext& trace = {});

class DeliveryProcessor {
 public:
  // Every reference must outlive the processor. `recorder` records the
  // derived events (the coordination service's own ledger).
  DeliveryProcessor(CoordinationStore& store, kafka::Consumer& consumer,
                    kafka::Publisher& publisher, EventRecorder& recorder,
                    DeliveryNotifier& notifier, DeliveryProcessorOptions options,
                    Clock& clock = RealClock());
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
  // deliveries stay pending) or a store error. For one instance only (tests,
  // tools): with replicas it would race the one owning the records.
  absl::Status PublishPending();

  // Handles one consumed record up to, not including, the commit: OK when the
  // record may be committed (derived from, applied and published, or
  // skipped).
  absl::Status Process(const kafka::Record& record);

  // Handles a batch of consumed records, in order, as `Process` would one by
  // one: OK when the whole batch may be committed. Runs of ordinary events
  // (nothing to dead-letter, nothing the case rules derive from) are applied
  // in one transaction (`CoordinationStore::ApplyBatch`) and their
  // deliveries published and marked together. Idempotent: after a failure
  // the whole batch is handled again and yields only what is still missing.
  absl::Status ProcessBatch(const std::vector<kafka::Record>& records);

  DeliveryProcessorStats stats() const;

 private:
  void Run();
  // Applies `events` in one transaction, each with its span `traces[i]`,
  // and publishes their pending deliveries (those of events applied before
  // included).
  absl::Status ApplyAndPublish(const std::vector<casebridge::events::v1::CaseEvent>& events,
                               const std::vector<TraceContext>& traces);
  // Records what the case rules derive from `event` unless it was applied
  // before, in the span `trace`.
  absl::Status Derive(const casebridge::events::v1::CaseEvent& event, const TraceContext& trace);
  // Copies a poison record to the dead-letter topic (if configured) and
  // counts it; OK once the copy is durable.
  absl::Status DeadLetter(const kafka::Record& record, absl::string_view reason);
  // Publishes `pending`, each with its trace `traces[i]`, and marks the
  // durable ones published; the first publishing error, or a store error.
  absl::Status PublishBatch(const std::vector<casebridge::coordination::v1::Delivery>& pending,
                            const std::vector<TraceContext>& traces);
  // Retries `step` with backoff until it succeeds (true) or `Stop` (false).
  template <typename Step>
  bool RetryUntilDone(const char* what, Step step);
  // Sleeps `duration` unless `Stop` is called first. Returns false if stopped.
  bool SleepUnlessStopped(absl::Duration duration);
  bool stopping() const;

  CoordinationStore& store_;
  kafka::Consumer& consumer_;
  kafka::Publisher& publisher_;
  EventRecorder& recorder_;
  DeliveryNotifier& notifier_;
  const DeliveryProcessorOptions options_;
  Clock& clock_;

  std::atomic<int64_t> records_{0};
  std::atomic<int64_t> undecodable_{0};
  std::atomic<int64_t> skipped_{0};
  std::atomic<int64_t> other_municipality_{0};
  std::atomic<int64_t> derived_recorded_{0};
  std::atomic<int64_t> deliveries_published_{0};
  std::atomic<int64_t> publish_failures_{0};
  std::atomic<int64_t> dead_lettered_{0};

  // The trace id of the delivery whose publishing failed last, for the log
  // line of the retry. Used by the processing thread only.
  std::string failed_trace_id_;

  mutable std::mutex mu_;
  std::condition_variable stop_requested_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace casebridge::coordination
