// The durable recording path every recording RPC goes through, in the
// system services and in coordination's `AssignRole`:
//
//   idempotency check → the caller's action (the adapter call) → the event
//   → the ledger (SQLite, fsync'd; or PostgreSQL) → Kafka (acks=all) → OK
//
// Guarantees:
//  * OK only when the event is durable in Kafka.
//  * One event per idempotency key: a repeated key returns the first result
//    (`replayed`), publishes nothing new, and does not run the action again.
//    The same key with a different request is kAlreadyExists.
//  * If Kafka does not confirm in time the caller gets kUnavailable; the
//    event stays in the ledger as pending and a retry with the same key
//    publishes exactly that event (same id, same sequence).
//  * Events of one subject are numbered 1, 2, 3, … per source and reach
//    Kafka in that order.
//  * With the background drain started (`StartBackgroundDrain`), pending
//    events reach Kafka once it is back, without waiting for a retry or the
//    case's next call: per case in sequence order, with capped exponential
//    backoff between failed passes.
//
// Group commit. Concurrent calls share ledger transactions: new events and
// "published" marks queue up, and the call at the front commits the whole
// queue in one transaction (one fsync), then hands the new events to the
// publisher in ledger order. Under load one fsync serves many calls; alone,
// a call commits by itself as before. Nothing is answered before its own
// event is in the ledger and durable in Kafka.
//
// Thread safety: safe for concurrent use.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "services/common/clock.h"
#include "services/common/kafka/publisher.h"
#include "services/common/sql.h"
#include "services/common/trace_context.h"

namespace casebridge {

// What a recording RPC asks for.
struct RecordRequest {
  // The caller's idempotency key (validated).
  std::string idempotency_key;
  // The case's subject (pseudonymised).
  std::string subject;
  // A fingerprint of the request (e.g. its serialised bytes, CPR replaced by
  // the subject): a repeated key with a different fingerprint is refused.
  std::string fingerprint;
  // The key's field path in the request, for error messages.
  std::string key_field = "context.idempotency_key";
  // The trace context the event is published with: the span of the call
  // that records it (`TraceContext::ChildOf` the caller's). Kept in the
  // ledger with the event, so that a publish by a retry, the background
  // drain or after a restart carries it too. Not valid: the recorder starts
  // a new trace (`TraceContext::NewRoot`), so every event has one. A
  // repeated key replays the event with the trace it was recorded under.
  TraceContext trace = {};
};

// What the caller's action produced: the event's content (payload, actor,
// legal basis, sensitivity, supersedes, occurred_at) and the id the source
// system gave the record. The recorder sets every other envelope field.
struct ActionResult {
  casebridge::events::v1::CaseEvent event;
  std::string record_id;
};

// What a recording RPC returns.
struct RecordOutcome {
  casebridge::events::v1::CaseEvent event;
  std::string record_id;
  bool replayed = false;
};

// Where the recorder publishes and how it names its events.
struct RecorderOptions {
  // The canonical topic, e.g. "casebridge.case-events.v1".
  std::string topic;
  // "jobcentre", "social", "health", "coordination".
  std::string system;
  casebridge::events::v1::SourceSystem source_system =
      casebridge::events::v1::SOURCE_SYSTEM_UNSPECIFIED;
  // Kommunekode.
  std::string municipality;
  // How long to wait for Kafka before answering kUnavailable.
  absl::Duration delivery_timeout = absl::Seconds(10);
};

// How the background drain retries pending events while Kafka is away.
struct DrainOptions {
  // The pause after the first failed pass; doubled after each further
  // failure, up to `max_backoff`, and reset by a pass that succeeds.
  absl::Duration initial_backoff = absl::Milliseconds(500);
  // The longest pause between failed passes. Also how often an idle drain
  // looks at the ledger anyway (a safety net: it is woken whenever a
  // publish fails).
  absl::Duration max_backoff = absl::Seconds(30);
};

class EventRecorder {
 public:
  // Opens (creating) the ledger at `ledger_path`: a SQLite file, or a
  // PostgreSQL URL (`sql::IsPostgresTarget`) that several instances may
  // share — coordination replicas do. Sharing, a key recorded by another
  // instance replays its event, and a race for the same key or the same
  // case's next sequence number is kAborted (retry).
  static absl::StatusOr<std::unique_ptr<EventRecorder>> Create(const std::string& ledger_path,
                                                               RecorderOptions options,
                                                               kafka::Publisher& publisher,
                                                               Clock& clock = RealClock());

  EventRecorder(const EventRecorder&) = delete;
  EventRecorder& operator=(const EventRecorder&) = delete;
  // Stops the background drain first.
  ~EventRecorder();

  // Records one event. `action` runs at most once per idempotency key that
  // reaches the ledger (it must itself be idempotent per key: it may run
  // again if a previous call failed before the ledger write). Errors of
  // `action` are returned unchanged and nothing is published.
  absl::StatusOr<RecordOutcome> Record(const RecordRequest& request,
                                       const std::function<absl::StatusOr<ActionResult>()>& action);

  // The events recorded on `subject` with a sequence above
  // `after_sequence`, oldest first, at most `limit`.
  absl::StatusOr<std::vector<casebridge::events::v1::CaseEvent>> ListEvents(
      const std::string& subject, uint64_t after_sequence, int limit);

  // The event with id `event_id` this recorder recorded (durable or not),
  // or nullopt.
  absl::StatusOr<std::optional<casebridge::events::v1::CaseEvent>> FindEvent(
      const std::string& event_id);

  // Publishes every event still pending in the ledger (e.g. after a crash),
  // per subject in sequence order, one at a time. A subject whose event
  // Kafka rejects (anything but kUnavailable, e.g. too large) is skipped, so
  // that it cannot hold back other subjects; the pass stops at the first
  // event Kafka does not confirm in time (kUnavailable: it is away). Returns
  // kUnavailable if any event was not published, else the number published.
  absl::StatusOr<int> DrainPending();

  // Starts a thread that runs `DrainPending` whenever a publish has failed
  // (and at least every `options.max_backoff`), pausing with capped
  // exponential backoff while passes fail. New calls are unaffected: a
  // case's new event still waits behind the case's pending ones. Call at
  // most once; stopped by `StopBackgroundDrain` or the destructor.
  void StartBackgroundDrain(DrainOptions options = {});

  // Stops the background drain, waiting for a pass in progress (at most
  // about `delivery_timeout + 2 s`). Idempotent.
  void StopBackgroundDrain();

  // The outbox depth: events in the ledger that Kafka has not confirmed yet
  // (pending or in flight). For metrics and tests.
  absl::StatusOr<int64_t> PendingCount();

  // Ledger transactions since construction, for metrics and tests.
  struct LedgerStats {
    int64_t commits = 0;  // group commits (transactions attempted)
    int64_t writes = 0;   // writes they carried: new events and marks
    int64_t queued = 0;   // writes queued now, the committing ones included
  };
  LedgerStats ledger_stats();

  // The source of this recorder's events, "/casebridge/<system>/<municipality>".
  const std::string& source() const { return source_; }

 private:
  EventRecorder(std::unique_ptr<sql::Database> db, std::unique_ptr<sql::Database> reader,
                bool shared, RecorderOptions options, kafka::Publisher& publisher, Clock& clock);
  // A record handed to the publisher, and the ledger key to mark when it
  // is durable.
  struct InFlight {
    std::string key;
    std::future<absl::Status> outcome;
    std::string type;  // the event's type, for metrics
  };
  // One ledger write (a new event, or a published mark) waiting in
  // `writers_` for its group commit. Defined in the .cc.
  struct Writer;
  // Group commit (leveldb's writer queue): `writer` joins the queue; the
  // writer at its front commits everyone queued at that moment in one
  // transaction — one fsync for the group — while later writers queue up
  // behind it. Returns when `writer`'s write is committed or has failed
  // (its `status`).
  void Write(Writer& writer);
  // Applies `group` in one transaction, then sends the new events in
  // ledger order and clears the marked keys from `in_flight_keys_`.
  // REQUIRES: `mu_` held.
  void CommitGroupLocked(const std::vector<Writer*>& group);
  // Sends `event` with the trace headers of `trace` and notes `key` as in
  // flight. REQUIRES: `mu_` held.
  InFlight SendLocked(const std::string& key, const casebridge::events::v1::CaseEvent& event,
                      const TraceContext& trace);
  // Waits for `record`, clears it from the in-flight set and marks it
  // published when durable. Returns kUnavailable ("retry with the same
  // idempotency_key") if it is not, and then sets `*cause` (if not null) to
  // the publisher's own verdict.
  absl::Status AwaitAndMark(InFlight& record, absl::Status* cause = nullptr);
  // Returns the key of the first event of `subject` (sequence up to
  // `up_to_sequence`) that is neither durable nor in flight, and fills
  // `event` and `trace` (the trace it was recorded under; not valid for an
  // event recorded before the ledger kept traces) if not null.
  // REQUIRES: `mu_` held.
  absl::StatusOr<std::optional<std::string>> FirstPendingLocked(
      const std::string& subject, uint64_t up_to_sequence,
      casebridge::events::v1::CaseEvent* event, TraceContext* trace = nullptr);
  // Publishes the pending events of `subject` with a sequence up to
  // `up_to_sequence`, one at a time in sequence order, stopping at the first
  // that does not become durable. Returns how many were published.
  // `*cause` as in `AwaitAndMark`; `*failed_trace_id` (if not null) is set
  // to the trace id of the event that did not become durable.
  absl::StatusOr<int> PublishPendingInOrder(const std::string& subject, uint64_t up_to_sequence,
                                            absl::Status* cause = nullptr,
                                            std::string* failed_trace_id = nullptr);
  // Waits (at most about the delivery timeout) while another call has the
  // event of `key` in flight, then returns OK if the ledger marks it
  // published and kUnavailable (`busy`) if not.
  absl::Status AwaitOtherSender(const std::string& key, const char* busy);
  // Asks the background drain (if running) for a pass.
  void WakeDrain();
  // The background drain's loop.
  void DrainLoop(DrainOptions options);

  std::mutex queue_mu_;  // guards writers_
  // Writers waiting for a group commit; the front one commits.
  std::deque<Writer*> writers_;
  int64_t commits_ = 0;  // guarded by queue_mu_
  int64_t writes_ = 0;   // guarded by queue_mu_

  std::mutex mu_;  // serialises the ledger, the enqueue order and in_flight_keys_
  // Keys of events handed to the publisher whose outcome is not known yet.
  std::set<std::string> in_flight_keys_;
  // Notified whenever a key leaves `in_flight_keys_`.
  std::condition_variable in_flight_done_;

  std::mutex drain_mu_;  // guards the three fields below
  std::condition_variable drain_cv_;
  bool drain_wanted_ = false;
  bool drain_stop_ = false;
  std::thread drainer_;
  std::unique_ptr<sql::Database> db_;
  // A second connection to the ledger, for the idempotency check that opens
  // each call, so that it does not wait for a group commit's fsync (SQLite's
  // WAL readers run beside the writer). Null for an in-memory ledger.
  std::mutex reader_mu_;
  std::unique_ptr<sql::Database> reader_;  // guarded by reader_mu_
  // The ledger is shared with other instances (PostgreSQL): a race with
  // another instance surfaces as a failed INSERT, so groups hold one write.
  const bool shared_;
  RecorderOptions options_;
  std::string source_;
  kafka::Publisher& publisher_;
  Clock& clock_;
};

}  // namespace casebridge
