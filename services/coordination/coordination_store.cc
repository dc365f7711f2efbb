#include "services/coordination/coordination_store.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "services/common/proto_time.h"
#include "services/common/status_macros.h"
#include "services/coordination/projection.h"
#include "services/coordination/router.h"

namespace casebridge::coordination {
namespace {

using casebridge::common::v1::Role;
using casebridge::coordination::v1::Delivery;
using casebridge::coordination::v1::DeliveryStatus;
using casebridge::coordination::v1::Party;
using casebridge::coordination::v1::ReceiptStatus;
using casebridge::coordination::v1::RecipientDelivery;
using casebridge::events::v1::CaseEvent;
using casebridge::events::v1::Consent;
using casebridge::events::v1::RoleAssignment;

// Invariant: every delivery row's (recipient, stream_sequence) and
// (recipient, subject, case_sequence) are unique, and the sequences of a
// recipient (per case) are 1..n. `Apply` takes a recipient's next
// stream_sequence by incrementing its row in `stream_counters` inside the
// transaction that inserts the delivery: on PostgreSQL, where replicas apply
// concurrently, that row stays locked until the commit, so a recipient's
// stream sequences commit in order (a reader never sees n + 1 before n). The
// case_sequence is MAX + 1: a case is applied by one replica at a time (its
// canonical partition's owner), and a rare overlap fails on the UNIQUE
// constraint and is retried.
//
// Written for SQLite; `sql::SchemaFor` turns it into PostgreSQL.
constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS processed_events (
  event_id     TEXT    PRIMARY KEY,
  subject      TEXT    NOT NULL,
  processed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS role_holders (
  subject   TEXT    NOT NULL,
  role      INTEGER NOT NULL,
  recipient TEXT    NOT NULL,
  party     BLOB    NOT NULL,
  PRIMARY KEY (subject, role)
);
CREATE TABLE IF NOT EXISTS deliveries (
  position        INTEGER PRIMARY KEY AUTOINCREMENT,
  recipient       TEXT    NOT NULL,
  stream_sequence INTEGER NOT NULL,
  subject         TEXT    NOT NULL,
  case_sequence   INTEGER NOT NULL,
  event_id        TEXT    NOT NULL,
  delivery        BLOB    NOT NULL,
  published       INTEGER NOT NULL DEFAULT 0,
  UNIQUE (recipient, stream_sequence),
  UNIQUE (recipient, subject, case_sequence)
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (position) WHERE published = 0;
CREATE INDEX IF NOT EXISTS deliveries_by_event ON deliveries (event_id, recipient);
CREATE INDEX IF NOT EXISTS deliveries_by_case ON deliveries (recipient, subject, case_sequence);
CREATE TABLE IF NOT EXISTS case_events (
  position  INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id  TEXT    NOT NULL UNIQUE,
  subject   TEXT    NOT NULL,
  event     BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS case_events_by_subject ON case_events (subject, position);
CREATE TABLE IF NOT EXISTS consents (
  position    INTEGER PRIMARY KEY AUTOINCREMENT,
  subject     TEXT    NOT NULL,
  consent_id  TEXT    NOT NULL,
  consent     BLOB    NOT NULL,
  withdrawn   INTEGER NOT NULL DEFAULT 0,
  UNIQUE (subject, consent_id)
);
CREATE TABLE IF NOT EXISTS stream_counters (
  recipient TEXT    PRIMARY KEY,
  last      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS receipts (
  recipient   TEXT    NOT NULL,
  event_id    TEXT    NOT NULL,
  status      INTEGER NOT NULL,
  reason      TEXT    NOT NULL,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (recipient, event_id)
);
)sql";

// Columns added to tables since they were first shipped, nullable (rows
// written before read NULL): the W3C trace context each delivery is
// published with (docs/adr/0022-w3c-trace-context.md).
struct AddedColumn {
  const char* table;
  const char* column;
  const char* type;
};
constexpr AddedColumn kAddedColumns[] = {
    {"deliveries", "traceparent", "TEXT"},
    {"deliveries", "tracestate", "TEXT"},
};

// A SQLite store written before `stream_counters` existed: its counters
// start from the deliveries. Not run on PostgreSQL, whose stores have had the
// counters from the start: there the statement would wait on (and could
// deadlock with) the counter rows another replica's `Apply` holds.
constexpr char kSeedCounters[] =
    "INSERT INTO stream_counters (recipient, last) "
    "SELECT recipient, MAX(stream_sequence) FROM deliveries WHERE true GROUP BY recipient "
    "ON CONFLICT (recipient) DO NOTHING";

}  // namespace

absl::Status ValidateCaseEvent(const CaseEvent& event) {
  if (event.id().empty()) return absl::InvalidArgumentError("event: no id");
  if (event.subject().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("event ", event.id(), ": no subject"));
  }
  if (event.has_role_assignment()) {
    const RoleAssignment& assignment = event.role_assignment();
    if (assignment.role() == casebridge::common::v1::ROLE_UNSPECIFIED ||
        assignment.recipient().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("event ", event.id(), ": role event without role or recipient"));
    }
  }
  return absl::OkStatus();
}

namespace {

// Reads the rows of `select`, whose first column is a delivery and, if
// `traces` is not null, whose next two are its traceparent and tracestate.
absl::StatusOr<std::vector<Delivery>> ReadDeliveryRows(
    sql::Statement& select, std::vector<TraceContext>* traces = nullptr) {
  std::vector<Delivery> deliveries;
  if (traces != nullptr) traces->clear();
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    if (!deliveries.emplace_back().ParseFromString(select.ColumnBlob(0))) {
      return absl::InternalError("coordination store: stored delivery does not parse");
    }
    if (traces != nullptr) {
      traces->push_back(TraceContext::Parse(select.ColumnText(1), select.ColumnText(2))
                            .value_or(TraceContext()));
    }
  }
  return deliveries;
}

// The holders after `event` (see `HoldersAfter`); `displaced` receives the
// holder that a role event replaced or released.
std::vector<Party> ChangeHolders(const std::vector<Party>& holders, const CaseEvent& event,
                                 std::optional<Party>& displaced) {
  displaced.reset();
  if (!event.has_role_assignment()) return holders;
  const RoleAssignment& assignment = event.role_assignment();
  std::vector<Party> after;
  std::optional<Party> previous;
  for (const Party& holder : holders) {
    if (holder.role() == assignment.role()) {
      previous = holder;
    } else {
      after.push_back(holder);
    }
  }
  if (assignment.released()) {
    if (previous.has_value() && previous->recipient() != assignment.recipient()) {
      after.push_back(*previous);  // a stale release: the holder stays
    } else {
      displaced = previous;
    }
  } else {
    Party& party = after.emplace_back();
    party.set_role(assignment.role());
    party.set_recipient(assignment.recipient());
    party.set_holder_name(assignment.holder_name());
    *party.mutable_unit() = assignment.unit();
    party.set_assigned_by_event_id(event.id());
    if (previous.has_value() && previous->recipient() != assignment.recipient()) {
      displaced = previous;
    }
  }
  std::sort(after.begin(), after.end(),
            [](const Party& a, const Party& b) { return a.role() < b.role(); });
  return after;
}

casebridge::coordination::v1::DeliveryState DeliveryStateFor(ReceiptStatus status) {
  switch (status) {
    case casebridge::coordination::v1::RECEIPT_STATUS_RECEIVED:
      return casebridge::coordination::v1::DELIVERY_STATE_RECEIVED;
    case casebridge::coordination::v1::RECEIPT_STATUS_ACCEPTED:
      return casebridge::coordination::v1::DELIVERY_STATE_ACCEPTED;
    case casebridge::coordination::v1::RECEIPT_STATUS_REJECTED:
      return casebridge::coordination::v1::DELIVERY_STATE_REJECTED;
    default:
      return casebridge::coordination::v1::DELIVERY_STATE_UNSPECIFIED;
  }
}

absl::StatusOr<uint64_t> NextSequence(sql::Database& db, const char* sql,
                                      const std::vector<std::string>& params) {
  ASSIGN_OR_RETURN(sql::Statement select, db.Prepare(sql));
  for (size_t i = 0; i < params.size(); ++i) select.Bind(static_cast<int>(i) + 1, params[i]);
  ASSIGN_OR_RETURN(bool row, select.Step());
  return row ? static_cast<uint64_t>(select.ColumnInt64(0)) + 1 : 1;
}

}  // namespace

std::vector<Party> HoldersAfter(const std::vector<Party>& holders, const CaseEvent& event) {
  std::optional<Party> displaced;
  return ChangeHolders(holders, event, displaced);
}

absl::StatusOr<std::unique_ptr<CoordinationStore>> CoordinationStore::Open(
    const std::string& path, casebridge::config::v1::RoutingConfig routing,
    std::map<std::string, casebridge::common::v1::Administration> administrations) {
  ASSIGN_OR_RETURN(std::unique_ptr<sql::Database> db, sql::Database::Open(path));
  // Other replicas may be applying while this one starts (`CreateSchema`).
  RETURN_IF_ERROR(sql::CreateSchema(*db, kSchema));
  for (const AddedColumn& added : kAddedColumns) {
    RETURN_IF_ERROR(sql::AddColumnIfMissing(*db, added.table, added.column, added.type));
  }
  if (db->dialect() == sql::Dialect::kSqlite) RETURN_IF_ERROR(db->Exec(kSeedCounters));
  return std::unique_ptr<CoordinationStore>(
      new CoordinationStore(std::move(db), std::move(routing), std::move(administrations)));
}

casebridge::common::v1::Administration CoordinationStore::AdministrationOf(
    const std::string& recipient) const {
  auto it = administrations_.find(recipient);
  return it == administrations_.end() ? casebridge::common::v1::ADMINISTRATION_UNSPECIFIED
                                      : it->second;
}

absl::StatusOr<std::vector<Consent>> CoordinationStore::ConsentsInForce(
    const std::string& subject) {
  std::lock_guard<std::mutex> lock(mu_);
  return ConsentsInForceLocked(subject);
}

absl::StatusOr<std::vector<Consent>> CoordinationStore::ConsentsInForceLocked(
    const std::string& subject) {
  ASSIGN_OR_RETURN(sql::Statement select,
                   db_->Prepare("SELECT consent FROM consents WHERE subject = ?1 "
                                "AND withdrawn = 0 ORDER BY position"));
  select.Bind(1, subject);
  std::vector<Consent> consents;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    if (!consents.emplace_back().ParseFromString(select.ColumnBlob(0))) {
      return absl::InternalError("coordination store: stored consent does not parse");
    }
  }
  return consents;
}

absl::StatusOr<std::pair<Consent, bool>> CoordinationStore::FindConsent(
    const std::string& subject, const std::string& consent_id) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sql::Statement select,
                   db_->Prepare("SELECT consent, withdrawn FROM consents "
                                "WHERE subject = ?1 AND consent_id = ?2"));
  select.Bind(1, subject);
  select.Bind(2, consent_id);
  ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat("consent_id: unknown consent \"", consent_id, "\""));
  }
  std::pair<Consent, bool> found;
  if (!found.first.ParseFromString(select.ColumnBlob(0))) {
    return absl::InternalError("coordination store: stored consent does not parse");
  }
  found.second = select.ColumnInt64(1) != 0;
  return found;
}

absl::StatusOr<std::vector<Delivery>> CoordinationStore::Apply(const CaseEvent& event,
                                                               absl::Time routed_at,
                                                               const TraceContext& trace) {
  RETURN_IF_ERROR(ValidateCaseEvent(event));
  std::lock_guard<std::mutex> lock(mu_);
  return ApplyLocked(event, routed_at, trace);
}

absl::StatusOr<std::vector<std::optional<std::vector<Delivery>>>> CoordinationStore::ApplyBatch(
    const std::vector<CaseEvent>& events, absl::Time routed_at,
    const std::vector<TraceContext>& traces) {
  for (const CaseEvent& event : events) RETURN_IF_ERROR(ValidateCaseEvent(event));
  std::lock_guard<std::mutex> lock(mu_);
  sql::Transaction transaction(*db_);
  RETURN_IF_ERROR(transaction.Begin());
  if (db_->dialect() == sql::Dialect::kPostgres && events.size() > 1) {
    // Apply takes each event's counters in recipient order; across a batch
    // that order would differ from event to event, and two replicas'
    // batches could deadlock. So a batch takes every counter first, in
    // recipient order (replicas' batches then run one after another).
    ASSIGN_OR_RETURN(sql::Statement counters,
                     db_->Prepare("SELECT recipient FROM stream_counters "
                                  "ORDER BY recipient FOR UPDATE"));
    RETURN_IF_ERROR(counters.Run());
  }
  std::vector<std::optional<std::vector<Delivery>>> applied;
  applied.reserve(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    ASSIGN_OR_RETURN(applied.emplace_back(),
                     ApplyInTransaction(events[i], routed_at,
                                        i < traces.size() ? traces[i] : TraceContext()));
  }
  RETURN_IF_ERROR(transaction.Commit());
  return applied;
}

absl::StatusOr<std::vector<Delivery>> CoordinationStore::ApplyLocked(const CaseEvent& event,
                                                                     absl::Time routed_at,
                                                                     const TraceContext& trace) {
  sql::Transaction transaction(*db_);
  RETURN_IF_ERROR(transaction.Begin());
  ASSIGN_OR_RETURN(std::optional<std::vector<Delivery>> deliveries,
                   ApplyInTransaction(event, routed_at, trace));
  if (!deliveries.has_value()) return std::vector<Delivery>();
  RETURN_IF_ERROR(transaction.Commit());
  return *std::move(deliveries);
}

absl::StatusOr<std::optional<std::vector<Delivery>>> CoordinationStore::ApplyInTransaction(
    const CaseEvent& event, absl::Time routed_at, const TraceContext& trace) {
  sql::Database& db = *db_;
  ASSIGN_OR_RETURN(sql::Statement seen,
                   db.Prepare("SELECT 1 FROM processed_events WHERE event_id = ?1"));
  seen.Bind(1, event.id());
  ASSIGN_OR_RETURN(bool already_applied, seen.Step());
  if (already_applied) return std::optional<std::vector<Delivery>>();

  const std::string& subject = event.subject();
  ASSIGN_OR_RETURN(const std::vector<Party> before, ListPartiesLocked(subject));
  std::optional<Party> displaced;
  std::vector<Party> holders = ChangeHolders(before, event, displaced);
  if (event.has_role_assignment()) {
    const Role role = event.role_assignment().role();
    ASSIGN_OR_RETURN(sql::Statement remove,
                     db.Prepare("DELETE FROM role_holders WHERE subject = ?1 AND role = ?2"));
    remove.Bind(1, subject);
    remove.Bind(2, static_cast<int64_t>(role));
    RETURN_IF_ERROR(remove.Run());
    ASSIGN_OR_RETURN(sql::Statement upsert,
                     db.Prepare("INSERT INTO role_holders (subject, role, recipient, party) "
                                "VALUES (?1, ?2, ?3, ?4)"));
    for (const Party& party : holders) {
      if (party.role() != role) continue;
      upsert.Bind(1, subject);
      upsert.Bind(2, static_cast<int64_t>(role));
      upsert.Bind(3, party.recipient());
      upsert.BindBlob(4, party.SerializeAsString());
      RETURN_IF_ERROR(upsert.Run());
    }
  }
  if (displaced.has_value()) holders.push_back(*displaced);

  // A correction or cancellation also reaches whoever received the event it
  // supersedes.
  std::vector<RoutedRecipient> superseded_recipients;
  if (!event.supersedes().event_id().empty()) {
    ASSIGN_OR_RETURN(sql::Statement earlier,
                     db.Prepare("SELECT delivery FROM deliveries WHERE event_id = ?1 "
                                "AND subject = ?2 ORDER BY recipient"));
    earlier.Bind(1, event.supersedes().event_id());
    earlier.Bind(2, subject);
    ASSIGN_OR_RETURN(const std::vector<Delivery> earlier_deliveries, ReadDeliveryRows(earlier));
    for (const Delivery& delivery : earlier_deliveries) {
      RoutedRecipient& routed = superseded_recipients.emplace_back();
      routed.recipient = delivery.recipient();
      for (int role : delivery.roles()) routed.roles.push_back(static_cast<Role>(role));
    }
  }

  // A consent given or withdrawn changes what every later event discloses;
  // the consent event itself is ordinary and reaches every party.
  if (event.has_consent() && !event.consent().consent_id().empty()) {
    if (event.consent().withdrawn()) {
      ASSIGN_OR_RETURN(sql::Statement withdraw,
                       db.Prepare("UPDATE consents SET withdrawn = 1 "
                                  "WHERE subject = ?1 AND consent_id = ?2"));
      withdraw.Bind(1, subject);
      withdraw.Bind(2, event.consent().consent_id());
      RETURN_IF_ERROR(withdraw.Run());
    } else {
      ASSIGN_OR_RETURN(sql::Statement give,
                       db.Prepare("INSERT INTO consents (subject, consent_id, consent) "
                                  "VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING"));
      give.Bind(1, subject);
      give.Bind(2, event.consent().consent_id());
      give.BindBlob(3, event.consent().SerializeAsString());
      RETURN_IF_ERROR(give.Run());
    }
  }
  ASSIGN_OR_RETURN(const std::vector<Consent> consents, ConsentsInForceLocked(subject));

  ASSIGN_OR_RETURN(sql::Statement history,
                   db.Prepare("INSERT INTO case_events (event_id, subject, event) "
                              "VALUES (?1, ?2, ?3)"));
  history.Bind(1, event.id());
  history.Bind(2, subject);
  history.BindBlob(3, event.SerializeAsString());
  RETURN_IF_ERROR(history.Run());

  std::vector<Delivery> deliveries;
  ASSIGN_OR_RETURN(sql::Statement insert,
                   db.Prepare("INSERT INTO deliveries (recipient, stream_sequence, subject, "
                              "case_sequence, event_id, delivery, traceparent, tracestate) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
  const std::vector<RoutedRecipient> routes = Route(event, holders, routing_, superseded_recipients);
  // Each recipient's counter is taken in recipient order, so two replicas'
  // transactions wait for each other rather than deadlock.
  std::map<std::string, uint64_t> stream_sequences;
  for (const RoutedRecipient& routed : routes) stream_sequences[routed.recipient] = 0;
  ASSIGN_OR_RETURN(sql::Statement next_stream,
                   db.Prepare("INSERT INTO stream_counters (recipient, last) VALUES (?1, 1) "
                              "ON CONFLICT (recipient) DO UPDATE SET last = stream_counters.last + 1 "
                              "RETURNING last"));
  for (auto& [recipient, sequence] : stream_sequences) {
    next_stream.Reset();
    next_stream.Bind(1, recipient);
    ASSIGN_OR_RETURN(bool row, next_stream.Step());
    if (!row) return absl::InternalError("coordination store: no stream sequence");
    sequence = static_cast<uint64_t>(next_stream.ColumnInt64(0));
    // Drain the statement so SQLite finishes it before the next one.
    ASSIGN_OR_RETURN(row, next_stream.Step());
  }
  for (const RoutedRecipient& routed : routes) {
    const uint64_t stream_sequence = stream_sequences[routed.recipient];
    ASSIGN_OR_RETURN(const uint64_t case_sequence,
                     NextSequence(db,
                                  "SELECT MAX(case_sequence) FROM deliveries "
                                  "WHERE recipient = ?1 AND subject = ?2",
                                  {routed.recipient, subject}));
    Delivery& delivery = deliveries.emplace_back();
    delivery.set_recipient(routed.recipient);
    delivery.set_subject(subject);
    delivery.set_case_sequence(case_sequence);
    delivery.set_stream_sequence(stream_sequence);
    *delivery.mutable_routed_at() = ToProtoTimestamp(routed_at);
    for (Role role : routed.roles) delivery.add_roles(role);
    const DisclosureDecision decision =
        DecideDisclosure(event, AdministrationOf(routed.recipient), routed.roles, consents);
    *delivery.mutable_event() = Project(event, decision);
    delivery.set_disclosure(decision.disclosure);
    delivery.set_disclosure_basis(decision.basis);
    for (const std::string& id : decision.consent_ids) delivery.add_consent_ids(id);

    insert.Reset();
    insert.Bind(1, routed.recipient);
    insert.Bind(2, static_cast<int64_t>(stream_sequence));
    insert.Bind(3, subject);
    insert.Bind(4, static_cast<int64_t>(case_sequence));
    insert.Bind(5, event.id());
    insert.BindBlob(6, delivery.SerializeAsString());
    if (trace.valid()) {
      insert.Bind(7, trace.traceparent());
      insert.Bind(8, trace.tracestate());
    } else {
      insert.BindNull(7);
      insert.BindNull(8);
    }
    RETURN_IF_ERROR(insert.Run());
  }

  ASSIGN_OR_RETURN(sql::Statement processed,
                   db.Prepare("INSERT INTO processed_events (event_id, subject, processed_at) "
                              "VALUES (?1, ?2, ?3)"));
  processed.Bind(1, event.id());
  processed.Bind(2, subject);
  processed.Bind(3, absl::ToUnixMillis(routed_at));
  RETURN_IF_ERROR(processed.Run());
  return std::optional<std::vector<Delivery>>(std::move(deliveries));
}

absl::StatusOr<std::vector<Delivery>> CoordinationStore::PendingDeliveries(
    int limit, std::vector<TraceContext>* traces) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sql::Statement select,
                   db_->Prepare("SELECT delivery, traceparent, tracestate FROM deliveries "
                                "WHERE published = 0 ORDER BY position LIMIT ?1"));
  select.Bind(1, static_cast<int64_t>(limit));
  return ReadDeliveryRows(select, traces);
}

absl::StatusOr<std::vector<Delivery>> CoordinationStore::PendingDeliveriesOf(
    const std::string& event_id, std::vector<TraceContext>* traces) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sql::Statement select,
                   db_->Prepare("SELECT delivery, traceparent, tracestate FROM deliveries "
                                "WHERE event_id = ?1 AND published = 0 ORDER BY position"));
  select.Bind(1, event_id);
  return ReadDeliveryRows(select, traces);
}

absl::Status CoordinationStore::MarkPublished(const std::string& recipient,
                                              uint64_t stream_sequence) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sql::Statement update,
                   db_->Prepare("UPDATE deliveries SET published = 1 "
                                "WHERE recipient = ?1 AND stream_sequence = ?2"));
  update.Bind(1, recipient);
  update.Bind(2, static_cast<int64_t>(stream_sequence));
  return update.Run();
}

absl::Status CoordinationStore::MarkPublished(const std::vector<Delivery>& deliveries) {
  if (deliveries.empty()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(mu_);
  sql::Transaction transaction(*db_);
  RETURN_IF_ERROR(transaction.Begin());
  ASSIGN_OR_RETURN(sql::Statement update,
                   db_->Prepare("UPDATE deliveries SET published = 1 "
                                "WHERE recipient = ?1 AND stream_sequence = ?2"));
  for (const Delivery& delivery : deliveries) {
    update.Reset();
    update.Bind(1, delivery.recipient());
    update.Bind(2, static_cast<int64_t>(delivery.stream_sequence()));
    RETURN_IF_ERROR(update.Run());
  }
  return transaction.Commit();
}

absl::StatusOr<std::vector<Delivery>> CoordinationStore::ReadDeliveries(
    const std::string& recipient, uint64_t after_stream_sequence, const std::string& subject,
    int limit, uint64_t after_case_sequence) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sql::Statement select,
                   db_->Prepare("SELECT delivery FROM deliveries WHERE recipient = ?1 "
                                "AND stream_sequence > ?2 AND (?3 = '' OR subject = ?3) "
                                "AND case_sequence > ?5 "
                                "ORDER BY stream_sequence LIMIT ?4"));
  select.Bind(1, recipient);
  select.Bind(2, static_cast<int64_t>(after_stream_sequence));
  select.Bind(3, subject);
  select.Bind(4, static_cast<int64_t>(limit));
  select.Bind(5, static_cast<int64_t>(after_case_sequence));
  return ReadDeliveryRows(select);
}

absl::StatusOr<std::vector<Party>> CoordinationStore::ListParties(const std::string& subject) {
  std::lock_guard<std::mutex> lock(mu_);
  return ListPartiesLocked(subject);
}

absl::StatusOr<std::vector<Party>> CoordinationStore::ListPartiesLocked(
    const std::string& subject) {
  ASSIGN_OR_RETURN(sql::Statement select,
                   db_->Prepare("SELECT party FROM role_holders WHERE subject = ?1 ORDER BY role"));
  select.Bind(1, subject);
  std::vector<Party> parties;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    if (!parties.emplace_back().ParseFromString(select.ColumnBlob(0))) {
      return absl::InternalError("coordination store: stored party does not parse");
    }
  }
  return parties;
}

absl::StatusOr<bool> CoordinationStore::IsApplied(const std::string& event_id) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sql::Statement seen,
                   db_->Prepare("SELECT 1 FROM processed_events WHERE event_id = ?1"));
  seen.Bind(1, event_id);
  return seen.Step();
}

absl::StatusOr<CaseHistory> CoordinationStore::History(const std::string& subject) {
  std::lock_guard<std::mutex> lock(mu_);
  CaseHistory history;
  history.subject = subject;
  ASSIGN_OR_RETURN(sql::Statement select,
                   db_->Prepare("SELECT event FROM case_events WHERE subject = ?1 "
                                "ORDER BY position"));
  select.Bind(1, subject);
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    if (!history.events.emplace_back().ParseFromString(select.ColumnBlob(0))) {
      return absl::InternalError("coordination store: stored case event does not parse");
    }
  }
  ASSIGN_OR_RETURN(history.holders, ListPartiesLocked(subject));
  return history;
}

absl::StatusOr<std::vector<std::string>> CoordinationStore::Subjects() {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sql::Statement select,
                   db_->Prepare("SELECT DISTINCT subject FROM case_events ORDER BY subject"));
  std::vector<std::string> subjects;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    subjects.push_back(select.ColumnText(0));
  }
  return subjects;
}

absl::Status CoordinationStore::RecordReceipt(const std::string& recipient,
                                              const std::string& event_id, ReceiptStatus status,
                                              const std::string& reason, absl::Time at) {
  std::lock_guard<std::mutex> lock(mu_);
  sql::Transaction transaction(*db_);
  RETURN_IF_ERROR(transaction.Begin());
  ASSIGN_OR_RETURN(sql::Statement delivered,
                   db_->Prepare("SELECT 1 FROM deliveries WHERE event_id = ?1 AND recipient = ?2"));
  delivered.Bind(1, event_id);
  delivered.Bind(2, recipient);
  ASSIGN_OR_RETURN(bool found, delivered.Step());
  if (!found) {
    return absl::NotFoundError(
        absl::StrCat("event_id: event ", event_id, " was not delivered to \"", recipient, "\""));
  }
  // A receipt never moves a delivery back: RECEIVED does not replace an
  // ACCEPTED or REJECTED that arrived first (receipts can overtake).
  ASSIGN_OR_RETURN(sql::Statement current,
                   db_->Prepare("SELECT status FROM receipts WHERE recipient = ?1 AND event_id = ?2"));
  current.Bind(1, recipient);
  current.Bind(2, event_id);
  ASSIGN_OR_RETURN(bool has_receipt, current.Step());
  if (has_receipt && status == casebridge::coordination::v1::RECEIPT_STATUS_RECEIVED &&
      current.ColumnInt64(0) != casebridge::coordination::v1::RECEIPT_STATUS_RECEIVED) {
    return transaction.Commit();
  }
  ASSIGN_OR_RETURN(sql::Statement upsert,
                   db_->Prepare("INSERT INTO receipts (recipient, event_id, status, reason, received_at) "
                                "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (recipient, event_id) "
                                "DO UPDATE SET status = excluded.status, reason = excluded.reason, "
                                "received_at = excluded.received_at"));
  upsert.Bind(1, recipient);
  upsert.Bind(2, event_id);
  upsert.Bind(3, static_cast<int64_t>(status));
  upsert.Bind(4, reason);
  upsert.Bind(5, absl::ToUnixMicros(at));
  RETURN_IF_ERROR(upsert.Run());
  return transaction.Commit();
}

absl::StatusOr<DeliveryStatus> CoordinationStore::GetDeliveryStatus(const std::string& event_id) {
  std::lock_guard<std::mutex> lock(mu_);
  DeliveryStatus status;
  ASSIGN_OR_RETURN(sql::Statement event_row,
                   db_->Prepare("SELECT event FROM case_events WHERE event_id = ?1"));
  event_row.Bind(1, event_id);
  ASSIGN_OR_RETURN(bool known, event_row.Step());
  CaseEvent event;
  if (known && !event.ParseFromString(event_row.ColumnBlob(0))) {
    return absl::InternalError("coordination store: stored case event does not parse");
  }

  ASSIGN_OR_RETURN(
      sql::Statement select,
      db_->Prepare("SELECT d.delivery, d.published, r.status, r.reason, r.received_at "
                   "FROM deliveries d LEFT JOIN receipts r "
                   "ON r.recipient = d.recipient AND r.event_id = d.event_id "
                   "WHERE d.event_id = ?1 ORDER BY d.recipient"));
  select.Bind(1, event_id);
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    Delivery delivery;
    if (!delivery.ParseFromString(select.ColumnBlob(0))) {
      return absl::InternalError("coordination store: stored delivery does not parse");
    }
    // Stores older than the case history know the event only from its
    // deliveries.
    if (!known) {
      event = delivery.event();
      known = true;
    }
    RecipientDelivery& entry = *status.add_recipients();
    entry.set_recipient(delivery.recipient());
    *entry.mutable_roles() = delivery.roles();
    entry.set_case_sequence(delivery.case_sequence());
    *entry.mutable_routed_at() = delivery.routed_at();
    if (select.ColumnIsNull(2)) {
      entry.set_state(select.ColumnInt64(1) != 0
                          ? casebridge::coordination::v1::DELIVERY_STATE_PUBLISHED
                          : casebridge::coordination::v1::DELIVERY_STATE_ROUTED);
      status.add_unacknowledged(delivery.recipient());
    } else {
      entry.set_state(DeliveryStateFor(static_cast<ReceiptStatus>(select.ColumnInt64(2))));
      entry.set_reason(select.ColumnText(3));
      *entry.mutable_acknowledged_at() =
          ToProtoTimestamp(absl::FromUnixMicros(select.ColumnInt64(4)));
    }
  }
  if (!known) return absl::NotFoundError(absl::StrCat("event_id: unknown event ", event_id));
  status.set_event_id(event_id);
  status.set_subject(event.subject());
  status.set_type(event.type());
  return status;
}

}  // namespace casebridge::coordination
