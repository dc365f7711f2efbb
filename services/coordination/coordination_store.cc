#include "services/common/proto_time.h"
#include "services/coordination/coordination_store.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "services/common/status_macros.h"
#include "services/coordination/router.h"

namespace casebridge::coordination {
namespace {

using casebridge::common::v1::Role;
using casebridge::coordination::v1::Delivery;
using casebridge::coordination::v1::Party;
using casebridge::events::v1::CaseEvent;
using casebridge::events::v1::RoleAssignment;

// Invariant: every delivery row's (recipient, stream_sequence) and
// (recipient, subject, case_sequence) are unique, and the sequences of a
// recipient (per case) are 1..n: `Apply` takes MAX + 1 inside the write
// transaction that inserts the row.
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
)sql";

absl::Status ValidateEvent(const CaseEvent& event) {
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

absl::StatusOr<std::vector<Delivery>> ReadDeliveryRows(sqlite::Statement& select) {
  std::vector<Delivery> deliveries;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    if (!deliveries.emplace_back().ParseFromString(select.ColumnBlob(0))) {
      return absl::InternalError("coordination store: stored delivery does not parse");
    }
  }
  return deliveries;
}

absl::StatusOr<uint64_t> NextSequence(sqlite::Database& db, const char* sql,
                                      const std::vector<std::string>& params) {
  ASSIGN_OR_RETURN(sqlite::Statement select, db.Prepare(sql));
  for (size_t i = 0; i < params.size(); ++i) select.Bind(static_cast<int>(i) + 1, params[i]);
  ASSIGN_OR_RETURN(bool row, select.Step());
  return row ? static_cast<uint64_t>(select.ColumnInt64(0)) + 1 : 1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CoordinationStore>> CoordinationStore::Open(
    const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<sqlite::Database> db, sqlite::Database::Open(path));
  RETURN_IF_ERROR(db->Exec(kSchema));
  return std::unique_ptr<CoordinationStore>(new CoordinationStore(std::move(db)));
}

absl::StatusOr<std::vector<Delivery>> CoordinationStore::Apply(const CaseEvent& event,
                                                               absl::Time routed_at) {
  RETURN_IF_ERROR(ValidateEvent(event));
  std::lock_guard<std::mutex> lock(mu_);
  return ApplyLocked(event, routed_at);
}

absl::StatusOr<std::vector<Delivery>> CoordinationStore::ApplyLocked(const CaseEvent& event,
                                                                     absl::Time routed_at) {
  sqlite::Database& db = *db_;
  sqlite::Transaction transaction(db);
  RETURN_IF_ERROR(transaction.Begin());

  ASSIGN_OR_RETURN(sqlite::Statement seen,
                   db.Prepare("SELECT 1 FROM processed_events WHERE event_id = ?1"));
  seen.Bind(1, event.id());
  ASSIGN_OR_RETURN(bool already_applied, seen.Step());
  if (already_applied) return std::vector<Delivery>();

  const std::string& subject = event.subject();
  std::vector<Party> displaced;
  if (event.has_role_assignment()) {
    const RoleAssignment& assignment = event.role_assignment();
    ASSIGN_OR_RETURN(sqlite::Statement current,
                     db.Prepare("SELECT party FROM role_holders WHERE subject = ?1 AND role = ?2"));
    current.Bind(1, subject);
    current.Bind(2, static_cast<int64_t>(assignment.role()));
    ASSIGN_OR_RETURN(bool held, current.Step());
    std::optional<Party> previous;
    if (held) {
      previous.emplace();
      if (!previous->ParseFromString(current.ColumnBlob(0))) {
        return absl::InternalError("coordination store: stored party does not parse");
      }
    }

    if (assignment.released()) {
      if (previous.has_value() && previous->recipient() == assignment.recipient()) {
        ASSIGN_OR_RETURN(sqlite::Statement remove,
                         db.Prepare("DELETE FROM role_holders WHERE subject = ?1 AND role = ?2"));
        remove.Bind(1, subject);
        remove.Bind(2, static_cast<int64_t>(assignment.role()));
        RETURN_IF_ERROR(remove.Run());
        displaced.push_back(*previous);
      }
    } else {
      Party party;
      party.set_role(assignment.role());
      party.set_recipient(assignment.recipient());
      party.set_holder_name(assignment.holder_name());
      *party.mutable_unit() = assignment.unit();
      party.set_assigned_by_event_id(event.id());
      ASSIGN_OR_RETURN(sqlite::Statement upsert,
                       db.Prepare("INSERT OR REPLACE INTO role_holders (subject, role, recipient, "
                                  "party) VALUES (?1, ?2, ?3, ?4)"));
      upsert.Bind(1, subject);
      upsert.Bind(2, static_cast<int64_t>(assignment.role()));
      upsert.Bind(3, assignment.recipient());
      upsert.BindBlob(4, party.SerializeAsString());
      RETURN_IF_ERROR(upsert.Run());
      if (previous.has_value() && previous->recipient() != assignment.recipient()) {
        displaced.push_back(*previous);
      }
    }
  }

  ASSIGN_OR_RETURN(std::vector<Party> holders, ListPartiesLocked(subject));
  holders.insert(holders.end(), displaced.begin(), displaced.end());

  std::vector<Delivery> deliveries;
  ASSIGN_OR_RETURN(sqlite::Statement insert,
                   db.Prepare("INSERT INTO deliveries (recipient, stream_sequence, subject, "
                              "case_sequence, event_id, delivery) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
  for (const RoutedRecipient& routed : Route(event, holders)) {
    ASSIGN_OR_RETURN(
        const uint64_t stream_sequence,
        NextSequence(db, "SELECT MAX(stream_sequence) FROM deliveries WHERE recipient = ?1",
                     {routed.recipient}));
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
    *delivery.mutable_event() = event;

    insert.Reset();
    insert.Bind(1, routed.recipient);
    insert.Bind(2, static_cast<int64_t>(stream_sequence));
    insert.Bind(3, subject);
    insert.Bind(4, static_cast<int64_t>(case_sequence));
    insert.Bind(5, event.id());
    insert.BindBlob(6, delivery.SerializeAsString());
    RETURN_IF_ERROR(insert.Run());
  }

  ASSIGN_OR_RETURN(sqlite::Statement processed,
                   db.Prepare("INSERT INTO processed_events (event_id, subject, processed_at) "
                              "VALUES (?1, ?2, ?3)"));
  processed.Bind(1, event.id());
  processed.Bind(2, subject);
  processed.Bind(3, absl::ToUnixMillis(routed_at));
  RETURN_IF_ERROR(processed.Run());
  RETURN_IF_ERROR(transaction.Commit());
  return deliveries;
}

absl::StatusOr<std::vector<Delivery>> CoordinationStore::PendingDeliveries(int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sqlite::Statement select,
                   db_->Prepare("SELECT delivery FROM deliveries WHERE published = 0 "
                                "ORDER BY position LIMIT ?1"));
  select.Bind(1, static_cast<int64_t>(limit));
  return ReadDeliveryRows(select);
}

absl::Status CoordinationStore::MarkPublished(const std::string& recipient,
                                              uint64_t stream_sequence) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sqlite::Statement update,
                   db_->Prepare("UPDATE deliveries SET published = 1 "
                                "WHERE recipient = ?1 AND stream_sequence = ?2"));
  update.Bind(1, recipient);
  update.Bind(2, static_cast<int64_t>(stream_sequence));
  return update.Run();
}

absl::Status CoordinationStore::MarkPublished(const std::vector<Delivery>& deliveries) {
  if (deliveries.empty()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(mu_);
  sqlite::Transaction transaction(*db_);
  RETURN_IF_ERROR(transaction.Begin());
  ASSIGN_OR_RETURN(sqlite::Statement update,
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
    int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(sqlite::Statement select,
                   db_->Prepare("SELECT delivery FROM deliveries WHERE recipient = ?1 "
                                "AND stream_sequence > ?2 AND (?3 = '' OR subject = ?3) "
                                "ORDER BY stream_sequence LIMIT ?4"));
  select.Bind(1, recipient);
  select.Bind(2, static_cast<int64_t>(after_stream_sequence));
  select.Bind(3, subject);
  select.Bind(4, static_cast<int64_t>(limit));
  return ReadDeliveryRows(select);
}

absl::StatusOr<std::vector<Party>> CoordinationStore::ListParties(const std::string& subject) {
  std::lock_guard<std::mutex> lock(mu_);
  return ListPartiesLocked(subject);
}

absl::StatusOr<std::vector<Party>> CoordinationStore::ListPartiesLocked(
    const std::string& subject) {
  ASSIGN_OR_RETURN(sqlite::Statement select,
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

}  // namespace casebridge::coordination
