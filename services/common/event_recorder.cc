#include "services/common/event_recorder.h"

#include <openssl/sha.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "services/common/event_ids.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/log.h"
#include "services/common/metrics.h"
#include "services/common/proto_time.h"
#include "services/common/status_macros.h"

namespace casebridge {
namespace {

using casebridge::events::v1::CaseEvent;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS ledger (
  position        INTEGER PRIMARY KEY AUTOINCREMENT,
  idempotency_key TEXT    NOT NULL UNIQUE,
  event_id        TEXT    NOT NULL UNIQUE,
  fingerprint     BLOB    NOT NULL,
  subject         TEXT    NOT NULL,
  sequence        INTEGER NOT NULL,
  record_id       TEXT    NOT NULL,
  event           BLOB    NOT NULL,
  published       INTEGER NOT NULL DEFAULT 0,
  UNIQUE (subject, sequence)
);
CREATE INDEX IF NOT EXISTS ledger_pending ON ledger (subject, sequence) WHERE published = 0;
)sql";

// Columns added to the ledger since it was first shipped, nullable (rows
// recorded before read NULL): the W3C trace context each event was
// recorded under (docs/adr/0022-w3c-trace-context.md).
constexpr std::pair<const char*, const char*> kAddedColumns[] = {
    {"traceparent", "TEXT"},
    {"tracestate", "TEXT"},
};

std::string Sha256(const std::string& bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

struct LedgerEntry {
  std::string fingerprint;
  std::string record_id;
  CaseEvent event;
  bool published = false;
};

absl::StatusOr<std::optional<LedgerEntry>> FindEntry(sql::Database& db, const std::string& key) {
  ASSIGN_OR_RETURN(sql::Statement select,
                   db.Prepare("SELECT fingerprint, record_id, event, published FROM ledger "
                              "WHERE idempotency_key = ?1"));
  select.Bind(1, key);
  ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) return std::optional<LedgerEntry>();
  LedgerEntry entry;
  entry.fingerprint = select.ColumnBlob(0);
  entry.record_id = select.ColumnText(1);
  if (!entry.event.ParseFromString(select.ColumnBlob(2))) {
    return absl::InternalError("ledger: stored event does not parse");
  }
  entry.published = select.ColumnInt64(3) != 0;
  return std::optional<LedgerEntry>(std::move(entry));
}

absl::Status MarkPublished(sql::Database& db, const std::string& key) {
  ASSIGN_OR_RETURN(sql::Statement update,
                   db.Prepare("UPDATE ledger SET published = 1 WHERE idempotency_key = ?1"));
  update.Bind(1, key);
  return update.Run();
}

// The most writes one group commit takes.
constexpr size_t kMaxGroup = 256;

// Whether a second connection sees the same ledger: a SQLite file or a
// PostgreSQL database, not an in-memory SQLite database.
bool CanOpenTwice(const std::string& path) {
  return !path.empty() && path != ":memory:" && !path.starts_with("file:");
}

absl::Status NotDurable(const absl::Status& cause) {
  return absl::UnavailableError(absl::StrCat(
      "the event is recorded but not yet durable in Kafka (", cause.message(),
      "); retry with the same idempotency_key"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventRecorder>> EventRecorder::Create(const std::string& ledger_path,
                                                                     RecorderOptions options,
                                                                     kafka::Publisher& publisher,
                                                                     Clock& clock) {
  ASSIGN_OR_RETURN(std::unique_ptr<sql::Database> db, sql::Database::Open(ledger_path));
  // A shared PostgreSQL ledger may be in use by other instances.
  RETURN_IF_ERROR(sql::CreateSchema(*db, kSchema));
  for (const auto& [column, type] : kAddedColumns) {
    RETURN_IF_ERROR(sql::AddColumnIfMissing(*db, "ledger", column, type));
  }
  std::unique_ptr<sql::Database> reader;
  if (CanOpenTwice(ledger_path)) {
    ASSIGN_OR_RETURN(reader, sql::Database::Open(ledger_path));
  }
  const bool shared = sql::IsPostgresTarget(ledger_path);
  return std::unique_ptr<EventRecorder>(new EventRecorder(
      std::move(db), std::move(reader), shared, std::move(options), publisher, clock));
}

// One ledger write waiting for its group commit.
struct EventRecorder::Writer {
  enum class Kind { kInsert, kMark };
  Kind kind = Kind::kInsert;
  // The idempotency key: of the new event, or of the event to mark.
  std::string key;
  // kInsert: the new event (its sequence is set by the commit), the
  // request's fingerprint and the source system's record id.
  CaseEvent* event = nullptr;
  const std::string* fingerprint = nullptr;
  const std::string* record_id = nullptr;
  const TraceContext* trace = nullptr;

  // Set by the committing writer.
  absl::Status status;
  // kInsert: the key was in the ledger already (nothing written).
  std::optional<LedgerEntry> existing;
  // kInsert: an earlier event of the subject is pending and not in flight,
  // so this one was not sent; else `sent` holds its publication.
  bool earlier_pending = false;
  InFlight sent;

  bool done = false;  // guarded by queue_mu_
  std::condition_variable cv;
};

EventRecorder::EventRecorder(std::unique_ptr<sql::Database> db,
                             std::unique_ptr<sql::Database> reader, bool shared,
                             RecorderOptions options, kafka::Publisher& publisher, Clock& clock)
    : db_(std::move(db)),
      reader_(std::move(reader)),
      shared_(shared),
      options_(std::move(options)),
      source_(EventSource(options_.system, options_.municipality)),
      publisher_(publisher),
      clock_(clock) {}

EventRecorder::InFlight EventRecorder::SendLocked(const std::string& key, const CaseEvent& event,
                                                  const TraceContext& trace) {
  in_flight_keys_.insert(key);
  return InFlight{key, publisher_.Send(kafka::CaseEventRecord(options_.topic, event, trace)),
                  event.type()};
}

absl::Status EventRecorder::AwaitAndMark(InFlight& record, absl::Status* cause) {
  // The producer's own timeout (message.timeout.ms) equals the delivery
  // timeout; the margin lets its verdict arrive.
  const absl::Status status =
      record.outcome.wait_for(absl::ToChronoMilliseconds(options_.delivery_timeout +
                                                         absl::Seconds(2))) ==
              std::future_status::ready
          ? record.outcome.get()
          : absl::DeadlineExceededError("timeout");
  if (cause != nullptr) *cause = status;
  absl::Status marked;
  if (status.ok()) {
    metrics::EventPublished(options_.topic, record.type);
    // The mark joins a group commit, which also clears the in-flight key.
    Writer mark;
    mark.kind = Writer::Kind::kMark;
    mark.key = record.key;
    Write(mark);
    marked = mark.status;
  } else {
    {
      std::lock_guard<std::mutex> lock(mu_);
      in_flight_keys_.erase(record.key);
    }
    in_flight_done_.notify_all();
    marked = NotDurable(status);
  }
  // The event is pending now: the background drain takes it from here.
  if (!marked.ok()) WakeDrain();
  return marked;
}

absl::Status EventRecorder::AwaitOtherSender(const std::string& key, const char* busy) {
  std::unique_lock<std::mutex> lock(mu_);
  // The other sender waits for its verdict at most this long, too.
  in_flight_done_.wait_for(
      lock, absl::ToChronoMilliseconds(options_.delivery_timeout + absl::Seconds(3)),
      [&] { return !in_flight_keys_.contains(key); });
  ASSIGN_OR_RETURN(std::optional<LedgerEntry> now, FindEntry(*db_, key));
  if (!now.has_value() || !now->published) return NotDurable(absl::UnavailableError(busy));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> EventRecorder::FirstPendingLocked(
    const std::string& subject, uint64_t up_to_sequence, CaseEvent* event, TraceContext* trace) {
  ASSIGN_OR_RETURN(sql::Statement select,
                   db_->Prepare("SELECT idempotency_key, event, traceparent, tracestate "
                                "FROM ledger WHERE subject = ?1 AND published = 0 "
                                "AND sequence <= ?2 ORDER BY sequence"));
  select.Bind(1, subject);
  select.Bind(2, static_cast<int64_t>(up_to_sequence));
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) return std::optional<std::string>();
    std::string key = select.ColumnText(0);
    // An event in flight is already queued ahead of anything sent now.
    if (in_flight_keys_.contains(key)) continue;
    if (event != nullptr && !event->ParseFromString(select.ColumnBlob(1))) {
      return absl::InternalError("ledger: stored event does not parse");
    }
    // NULL (recorded before the ledger kept traces): published without one.
    if (trace != nullptr) {
      *trace = TraceContext::Parse(select.ColumnText(2), select.ColumnText(3))
                   .value_or(TraceContext());
    }
    return std::optional<std::string>(std::move(key));
  }
}

absl::StatusOr<int> EventRecorder::PublishPendingInOrder(const std::string& subject,
                                                         uint64_t up_to_sequence,
                                                         absl::Status* cause,
                                                         std::string* failed_trace_id) {
  int published = 0;
  while (true) {
    InFlight record;
    TraceContext trace;
    {
      std::lock_guard<std::mutex> lock(mu_);
      CaseEvent event;
      ASSIGN_OR_RETURN(std::optional<std::string> key,
                       FirstPendingLocked(subject, up_to_sequence, &event, &trace));
      if (!key.has_value()) return published;
      record = SendLocked(*key, event, trace);
    }
    // One at a time: a later event of the subject goes out only once the
    // earlier one is durable, so a failure can never reorder them.
    if (absl::Status marked = AwaitAndMark(record, cause); !marked.ok()) {
      if (failed_trace_id != nullptr) *failed_trace_id = trace.trace_id();
      return marked;
    }
    ++published;
  }
}

absl::StatusOr<RecordOutcome> EventRecorder::Record(
    const RecordRequest& request, const std::function<absl::StatusOr<ActionResult>()>& action) {
  const std::string fingerprint = Sha256(request.fingerprint);
  auto replay = [&](const LedgerEntry& entry) -> absl::StatusOr<RecordOutcome> {
    if (entry.fingerprint != fingerprint) {
      return absl::AlreadyExistsError(
          absl::StrCat(request.key_field, ": already used for a different request"));
    }
    if (!entry.published) {
      // Not durable yet: publish it (again), after any earlier pending event
      // of the same subject, so that Kafka keeps the ledger's order.
      RETURN_IF_ERROR(
          PublishPendingInOrder(entry.event.subject(), entry.event.sequence()).status());
      // Another call with this key (or the background drain) may be the
      // one publishing it right now: wait for its verdict.
      RETURN_IF_ERROR(
          AwaitOtherSender(request.idempotency_key, "a call with this key is in progress"));
    }
    return RecordOutcome{entry.event, entry.record_id, /*replayed=*/true};
  };

  std::optional<LedgerEntry> existing;
  if (reader_ != nullptr) {
    // The read connection: not held up by a group commit in progress.
    std::lock_guard<std::mutex> lock(reader_mu_);
    ASSIGN_OR_RETURN(existing, FindEntry(*reader_, request.idempotency_key));
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(existing, FindEntry(*db_, request.idempotency_key));
  }
  if (existing.has_value()) return replay(*existing);

  // The vendor call runs without the lock: it is slow and idempotent per key.
  ASSIGN_OR_RETURN(ActionResult result, action());

  CaseEvent& event = result.event;
  event.set_id(EventIdFor(source_, request.idempotency_key));
  event.set_source(source_);
  event.set_source_system(options_.source_system);
  event.set_subject(request.subject);
  event.set_municipality(options_.municipality);
  event.set_idempotency_key(request.idempotency_key);
  *event.mutable_recorded_at() = ToProtoTimestamp(clock_.Now());
  if (!event.has_occurred_at()) *event.mutable_occurred_at() = event.recorded_at();
  event.set_type(EventTypeFor(event));
  if (event.type().empty()) {
    return absl::InvalidArgumentError("the event's state is unspecified (no event type)");
  }
  const TraceContext trace = request.trace.valid() ? request.trace : TraceContext::NewRoot();

  Writer insert;
  insert.kind = Writer::Kind::kInsert;
  insert.key = request.idempotency_key;
  insert.event = &event;
  insert.fingerprint = &fingerprint;
  insert.record_id = &result.record_id;
  insert.trace = &trace;
  Write(insert);
  // A concurrent call with the same key (or, sharing the ledger, another
  // instance) recorded it meanwhile.
  if (insert.existing.has_value()) return replay(*insert.existing);
  RETURN_IF_ERROR(insert.status);
  if (insert.earlier_pending) {
    RETURN_IF_ERROR(PublishPendingInOrder(request.subject, event.sequence()).status());
    // Another call (or the background drain) may have been the one to send
    // this event: answer OK only once it is durable, waiting for that
    // sender's verdict.
    RETURN_IF_ERROR(AwaitOtherSender(request.idempotency_key, "another call is publishing it"));
  } else {
    RETURN_IF_ERROR(AwaitAndMark(insert.sent));
  }
  return RecordOutcome{std::move(event), std::move(result.record_id), /*replayed=*/false};
}

void EventRecorder::Write(Writer& writer) {
  std::unique_lock<std::mutex> queue(queue_mu_);
  writers_.push_back(&writer);
  writer.cv.wait(queue, [&] { return writer.done || writers_.front() == &writer; });
  if (writer.done) return;
  // At the front: commit everyone queued so far. A shared ledger takes one
  // write at a time (a conflict with another instance fails the whole
  // transaction).
  const size_t limit = shared_ ? 1 : kMaxGroup;
  std::vector<Writer*> group;
  for (Writer* queued : writers_) {
    if (group.size() == limit) break;
    group.push_back(queued);
  }
  ++commits_;
  writes_ += static_cast<int64_t>(group.size());
  queue.unlock();
  {
    std::lock_guard<std::mutex> lock(mu_);
    CommitGroupLocked(group);
  }
  in_flight_done_.notify_all();
  queue.lock();
  for (Writer* committed : group) {
    writers_.pop_front();
    if (committed == &writer) continue;
    committed->done = true;
    committed->cv.notify_one();
  }
  if (!writers_.empty()) writers_.front()->cv.notify_one();
}

EventRecorder::LedgerStats EventRecorder::ledger_stats() {
  std::lock_guard<std::mutex> queue(queue_mu_);
  return LedgerStats{commits_, writes_, static_cast<int64_t>(writers_.size())};
}

void EventRecorder::CommitGroupLocked(const std::vector<Writer*>& group) {
  sql::Transaction transaction(*db_);
  absl::Status status = transaction.Begin();
  for (Writer* writer : group) {
    if (!status.ok()) break;
    if (writer->kind == Writer::Kind::kMark) {
      status = MarkPublished(*db_, writer->key);
      continue;
    }
    // Recorded already, by a call committed earlier or earlier in this group?
    absl::StatusOr<std::optional<LedgerEntry>> existing = FindEntry(*db_, writer->key);
    if (!existing.ok()) {
      status = existing.status();
      break;
    }
    if (existing->has_value()) {
      writer->existing = std::move(*existing);
      continue;
    }
    CaseEvent& event = *writer->event;
    absl::StatusOr<sql::Statement> last =
        db_->Prepare("SELECT COALESCE(MAX(sequence), 0) FROM ledger WHERE subject = ?1");
    if (!last.ok()) {
      status = last.status();
      break;
    }
    last->Bind(1, event.subject());
    absl::StatusOr<bool> row = last->Step();
    if (!row.ok()) {
      status = row.status();
      break;
    }
    event.set_sequence(*row ? static_cast<uint64_t>(last->ColumnInt64(0)) + 1 : 1);
    absl::StatusOr<sql::Statement> insert =
        db_->Prepare("INSERT INTO ledger (idempotency_key, fingerprint, subject, "
                     "sequence, record_id, event, event_id, traceparent, tracestate) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    if (!insert.ok()) {
      status = insert.status();
      break;
    }
    insert->Bind(1, writer->key);
    insert->BindBlob(2, *writer->fingerprint);
    insert->Bind(3, event.subject());
    insert->Bind(4, static_cast<int64_t>(event.sequence()));
    insert->Bind(5, *writer->record_id);
    insert->BindBlob(6, event.SerializeAsString());
    insert->Bind(7, event.id());
    if (writer->trace != nullptr && writer->trace->valid()) {
      insert->Bind(8, writer->trace->traceparent());
      insert->Bind(9, writer->trace->tracestate());
    } else {
      insert->BindNull(8);
      insert->BindNull(9);
    }
    status = insert->Run();
  }
  if (status.ok()) status = transaction.Commit();

  if (!status.ok()) {
    transaction.Rollback().IgnoreError();
    for (Writer* writer : group) {
      writer->existing.reset();
      writer->status = status;
      if (writer->kind == Writer::Kind::kMark) {
        // Still pending in the ledger: the drain (or a retry) sends it again.
        in_flight_keys_.erase(writer->key);
        continue;
      }
      if (!absl::IsAlreadyExists(status) && !absl::IsAborted(status)) continue;
      // Sharing the ledger (one write per group): another instance recorded
      // this key, or took this sequence, first.
      absl::StatusOr<std::optional<LedgerEntry>> existing = FindEntry(*db_, writer->key);
      if (existing.ok() && existing->has_value()) {
        writer->existing = std::move(*existing);
        writer->status = absl::OkStatus();
      } else {
        writer->status = absl::AbortedError(
            "another instance recorded an event of this case at the same moment; retry");
      }
    }
    if (absl::c_any_of(group, [](const Writer* w) { return w->kind == Writer::Kind::kMark; })) {
      WakeDrain();
    }
    return;
  }

  // Committed. In ledger order: hand each new event to the publisher unless
  // an earlier event of its subject is pending and nobody is sending it
  // (then it must go first; the caller publishes in order).
  for (Writer* writer : group) {
    writer->status = absl::OkStatus();
    if (writer->kind == Writer::Kind::kMark) {
      in_flight_keys_.erase(writer->key);
      continue;
    }
    if (writer->existing.has_value()) continue;
    const CaseEvent& event = *writer->event;
    metrics::EventRecorded(event.type());
    absl::StatusOr<std::optional<std::string>> earlier =
        FirstPendingLocked(event.subject(), event.sequence() - 1, nullptr);
    if (!earlier.ok()) {
      // In the ledger, not sent: the drain or a retry publishes it.
      writer->status = earlier.status();
      continue;
    }
    writer->earlier_pending = earlier->has_value();
    // The normal path: enqueued under the lock, so the ledger's order is
    // Kafka's order, and pipelined with every other in-flight event (the
    // producer's gapless guarantee keeps a failure from reordering them).
    if (!writer->earlier_pending) {
      writer->sent = SendLocked(writer->key, event,
                                writer->trace != nullptr ? *writer->trace : TraceContext());
    }
  }
}

absl::StatusOr<std::optional<CaseEvent>> EventRecorder::FindEvent(const std::string& event_id) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sql::Statement select,
                   db_->Prepare("SELECT event FROM ledger WHERE event_id = ?1"));
  select.Bind(1, event_id);
  ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) return std::optional<CaseEvent>();
  CaseEvent event;
  if (!event.ParseFromString(select.ColumnBlob(0))) {
    return absl::InternalError("ledger: stored event does not parse");
  }
  return std::optional<CaseEvent>(std::move(event));
}

absl::StatusOr<std::vector<CaseEvent>> EventRecorder::ListEvents(const std::string& subject,
                                                                 uint64_t after_sequence,
                                                                 int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sql::Statement select,
                   db_->Prepare("SELECT event FROM ledger WHERE subject = ?1 AND sequence > ?2 "
                                "AND published = 1 ORDER BY sequence LIMIT ?3"));
  select.Bind(1, subject);
  select.Bind(2, static_cast<int64_t>(after_sequence));
  select.Bind(3, static_cast<int64_t>(limit));
  std::vector<CaseEvent> events;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    CaseEvent& event = events.emplace_back();
    if (!event.ParseFromString(select.ColumnBlob(0))) {
      return absl::InternalError("ledger: stored event does not parse");
    }
  }
  return events;
}

absl::StatusOr<int> EventRecorder::DrainPending() {
  std::vector<std::pair<std::string, uint64_t>> subjects;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(sql::Statement select,
                     db_->Prepare("SELECT subject, MAX(sequence) FROM ledger WHERE published = 0 "
                                  "GROUP BY subject ORDER BY MIN(position)"));
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) break;
      subjects.emplace_back(select.ColumnText(0), static_cast<uint64_t>(select.ColumnInt64(1)));
    }
  }
  int count = 0;
  absl::Status first_failure;
  for (const auto& [subject, up_to] : subjects) {
    absl::Status cause;
    std::string trace_id;
    absl::StatusOr<int> published = PublishPendingInOrder(subject, up_to, &cause, &trace_id);
    if (published.ok()) {
      count += *published;
      continue;
    }
    if (first_failure.ok()) first_failure = published.status();
    // Kafka is away (or slow): the other subjects would only wait as long.
    if (cause.ok() || absl::IsUnavailable(cause) || absl::IsDeadlineExceeded(cause)) break;
    // Kafka rejects this subject's event: it stays pending and holds back
    // only its own subject.
    LogWarning("ledger drain: an event is rejected; its case waits",
               {{"error", std::string(cause.message())}, {"trace_id", trace_id}});
  }
  if (count > 0) LogInfo("ledger drained", {{"events", std::to_string(count)}});
  if (!first_failure.ok()) return first_failure;
  return count;
}

absl::StatusOr<int64_t> EventRecorder::PendingCount() {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sql::Statement count,
                   db_->Prepare("SELECT COUNT(*) FROM ledger WHERE published = 0"));
  ASSIGN_OR_RETURN(bool row, count.Step());
  return row ? count.ColumnInt64(0) : 0;
}

EventRecorder::~EventRecorder() { StopBackgroundDrain(); }

void EventRecorder::StartBackgroundDrain(DrainOptions options) {
  std::lock_guard<std::mutex> lock(drain_mu_);
  if (drainer_.joinable() || drain_stop_) return;
  // The first pass runs at once: events left pending by an earlier run.
  drain_wanted_ = true;
  drainer_ = std::thread([this, options] { DrainLoop(options); });
}

void EventRecorder::StopBackgroundDrain() {
  {
    std::lock_guard<std::mutex> lock(drain_mu_);
    drain_stop_ = true;
  }
  drain_cv_.notify_all();
  if (drainer_.joinable()) drainer_.join();
}

void EventRecorder::WakeDrain() {
  {
    std::lock_guard<std::mutex> lock(drain_mu_);
    drain_wanted_ = true;
  }
  drain_cv_.notify_all();
}

void EventRecorder::DrainLoop(DrainOptions options) {
  const absl::Duration initial = std::max(options.initial_backoff, absl::Milliseconds(1));
  const absl::Duration cap = std::max(options.max_backoff, initial);
  absl::Duration backoff = initial;
  bool failing = false;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(drain_mu_);
      // After a failed pass: a pause that new failures cannot cut short
      // (every call fails while Kafka is away). Idle: until a publish fails,
      // or `cap` passes.
      const absl::Duration pause = failing ? backoff : cap;
      drain_cv_.wait_for(lock, absl::ToChronoMilliseconds(pause),
                         [&] { return drain_stop_ || (!failing && drain_wanted_); });
      if (drain_stop_) return;
      drain_wanted_ = false;
    }
    absl::StatusOr<int> drained = DrainPending();
    if (drained.ok()) {
      failing = false;
      backoff = initial;
      continue;
    }
    if (!failing) {
      LogWarning("ledger drain failed; retrying with backoff",
                 {{"error", std::string(drained.status().message())},
                  {"backoff_ms", std::to_string(absl::ToInt64Milliseconds(backoff))}});
    }
    // Capped exponential backoff: `initial` after the first failed pass,
    // twice as long after each further one, at most `cap`.
    if (failing) backoff = std::min(backoff * 2, cap);
    failing = true;
  }
}

}  // namespace casebridge
