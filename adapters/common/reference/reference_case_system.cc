#include "adapters/common/reference/reference_case_system.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"
#include "services/common/log.h"
#include "services/common/proto_time.h"
#include "services/common/sql.h"
#include "services/common/status_macros.h"

namespace casebridge::reference {
namespace {

using ::casebridge::events::v1::Appointment;
using ::casebridge::events::v1::AppointmentStatus;
using ::casebridge::events::v1::Decision;
using ::casebridge::events::v1::Referral;
using ::casebridge::events::v1::ReferralStatus;

// `PRAGMA user_version` of the schema below. Bump it, and teach
// `InitialiseSchema` to migrate, when a table changes.
//   1: decisions, appointments, idempotency.
//   2: `withdrawn` on decisions and appointments; referral_steps.
constexpr int64_t kSchemaVersion = 2;

// Bodies are serialised protos; the other columns exist to look records up.
// No column holds a CPR number: the reference system knows a citizen only by
// the pseudonymous subject.
constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS decisions (
  seq             INTEGER PRIMARY KEY,
  id              TEXT NOT NULL UNIQUE,     -- "D-000001" (the system's prefix)
  subject         TEXT NOT NULL,
  idempotency_key TEXT NOT NULL UNIQUE,
  body            BLOB NOT NULL,            -- casebridge.events.v1.Decision
  created_at      INTEGER NOT NULL,         -- Unix microseconds
  withdrawn       INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS appointments (
  seq             INTEGER PRIMARY KEY,
  id              TEXT NOT NULL UNIQUE,     -- "A-000001"
  subject         TEXT NOT NULL,
  idempotency_key TEXT NOT NULL UNIQUE,     -- the booking call's key
  body            BLOB NOT NULL,            -- casebridge.events.v1.Appointment, current state
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  withdrawn       INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS idempotency (
  idempotency_key TEXT PRIMARY KEY,
  operation       TEXT NOT NULL,            -- e.g. "reschedule_appointment"
  subject         TEXT NOT NULL,
  result          BLOB NOT NULL,            -- the id, or the serialised Appointment/Referral
  created_at      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS referral_steps (
  seq             INTEGER PRIMARY KEY,
  subject         TEXT NOT NULL,
  referral_id     TEXT NOT NULL,            -- "R-000001" if sent from here, else the sender's id
  status          INTEGER NOT NULL,         -- casebridge.events.v1.ReferralStatus
  idempotency_key TEXT NOT NULL UNIQUE,
  body            BLOB NOT NULL,            -- casebridge.events.v1.Referral as recorded
  created_at      INTEGER NOT NULL,
  withdrawn       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS referral_steps_by_referral
  ON referral_steps (subject, referral_id, seq);
)sql";

// Version 1 had no `withdrawn` columns; the new tables come from `kSchema`.
constexpr char kMigrateFrom1[] = R"sql(
ALTER TABLE decisions ADD COLUMN withdrawn INTEGER NOT NULL DEFAULT 0;
ALTER TABLE appointments ADD COLUMN withdrawn INTEGER NOT NULL DEFAULT 0;
)sql";

// Operation names: in the idempotency table and in every error message.
constexpr char kRecordDecision[] = "record_decision";
constexpr char kBookAppointment[] = "book_appointment";
constexpr char kRescheduleAppointment[] = "reschedule_appointment";
constexpr char kCancelAppointment[] = "cancel_appointment";
constexpr char kRecordAttendance[] = "record_attendance";
constexpr char kRecordReferralStep[] = "record_referral_step";
constexpr char kCancelRecord[] = "cancel_record";

// A lower-case name for a referral step, for error messages.
absl::string_view StepName(ReferralStatus status) {
  switch (status) {
    case events::v1::REFERRAL_STATUS_SENT: return "sent";
    case events::v1::REFERRAL_STATUS_RECEIVED: return "received";
    case events::v1::REFERRAL_STATUS_ASSESSED: return "assessed";
    case events::v1::REFERRAL_STATUS_ACCEPTED: return "accepted";
    case events::v1::REFERRAL_STATUS_REFUSED: return "refused";
    case events::v1::REFERRAL_STATUS_WAITLISTED: return "waitlisted";
    case events::v1::REFERRAL_STATUS_STARTED: return "started";
    case events::v1::REFERRAL_STATUS_ENDED: return "ended";
    case events::v1::REFERRAL_STATUS_INTERRUPTED: return "interrupted";
    case events::v1::REFERRAL_STATUS_FORWARDED: return "forwarded";
    case events::v1::REFERRAL_STATUS_ESTIMATE_CHANGED: return "estimate-changed";
    default: return "unspecified";
  }
}

// The receiving side's state machine: whether `next` may follow `previous`
// (`REFERRAL_STATUS_UNSPECIFIED`: the referral is not known here yet).
//
//   (none) → SENT | RECEIVED        SENT → RECEIVED (a referral within one system)
//   RECEIVED → ASSESSED | FORWARDED FORWARDED → RECEIVED (at the unit it went to)
//   ASSESSED → ACCEPTED | REFUSED   ACCEPTED → WAITLISTED | STARTED
//   WAITLISTED | ESTIMATE_CHANGED → ESTIMATE_CHANGED | STARTED
//   STARTED → ENDED | INTERRUPTED   REFUSED, ENDED, INTERRUPTED: closed
bool Follows(ReferralStatus previous, ReferralStatus next) {
  using namespace casebridge::events::v1;  // NOLINT: the enum values only
  switch (previous) {
    case REFERRAL_STATUS_UNSPECIFIED:
      return next == REFERRAL_STATUS_SENT || next == REFERRAL_STATUS_RECEIVED;
    case REFERRAL_STATUS_SENT:
    case REFERRAL_STATUS_FORWARDED:
      return next == REFERRAL_STATUS_RECEIVED;
    case REFERRAL_STATUS_RECEIVED:
      return next == REFERRAL_STATUS_ASSESSED || next == REFERRAL_STATUS_FORWARDED;
    case REFERRAL_STATUS_ASSESSED:
      return next == REFERRAL_STATUS_ACCEPTED || next == REFERRAL_STATUS_REFUSED;
    case REFERRAL_STATUS_ACCEPTED:
      return next == REFERRAL_STATUS_WAITLISTED || next == REFERRAL_STATUS_STARTED;
    case REFERRAL_STATUS_WAITLISTED:
    case REFERRAL_STATUS_ESTIMATE_CHANGED:
      return next == REFERRAL_STATUS_ESTIMATE_CHANGED || next == REFERRAL_STATUS_STARTED;
    case REFERRAL_STATUS_STARTED:
      return next == REFERRAL_STATUS_ENDED || next == REFERRAL_STATUS_INTERRUPTED;
    default:
      return false;
  }
}

// The referral as the steps recorded so far leave it: the latest step's
// content, plus what earlier steps established and later ones did not
// restate (the estimate, the assessment).
void Fold(Referral& current, const Referral& recorded) {
  Referral next = recorded;
  if (!next.has_estimated_start() && current.has_estimated_start() &&
      recorded.status() != events::v1::REFERRAL_STATUS_WAITLISTED) {
    *next.mutable_estimated_start() = current.estimated_start();
  }
  if (!next.has_assessment() && current.has_assessment()) {
    *next.mutable_assessment() = current.assessment();
  }
  current = std::move(next);
}

// A lower-case name for a closed state, for error messages.
absl::string_view StateName(AppointmentStatus status) {
  switch (status) {
    case events::v1::APPOINTMENT_STATUS_CANCELLED:
      return "cancelled";
    case events::v1::APPOINTMENT_STATUS_ATTENDED:
      return "attended";
    case events::v1::APPOINTMENT_STATUS_NO_SHOW:
      return "a no-show";
    default:
      return "closed";
  }
}

// An appointment as stored: its current state and whether an event about it
// was cancelled (withdrawn).
struct StoredAppointment {
  Appointment appointment;
  bool withdrawn = false;
};

// Returns kFailedPrecondition unless `stored` can still be changed: once
// withdrawn, cancelled, attended or missed it is history.
absl::Status RequireOpen(const StoredAppointment& stored) {
  const Appointment& appointment = stored.appointment;
  if (stored.withdrawn) {
    return absl::FailedPreconditionError(
        absl::StrCat("appointment ", appointment.appointment_id(), " is withdrawn"));
  }
  const AppointmentStatus status = appointment.status();
  if (status == events::v1::APPOINTMENT_STATUS_SCHEDULED ||
      status == events::v1::APPOINTMENT_STATUS_RESCHEDULED) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      absl::StrCat("appointment ", appointment.appointment_id(), " is ", StateName(status)));
}

absl::Status InitialiseSchema(sql::Database& db) {
  int64_t version = 0;
  {
    ASSIGN_OR_RETURN(sql::Statement query, db.Prepare("PRAGMA user_version"));
    ASSIGN_OR_RETURN(bool row, query.Step());
    if (row) version = query.ColumnInt64(0);
  }
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrFormat("reference.database_path: schema version %d is newer than this "
                        "build's (%d)",
                        version, kSchemaVersion));
  }
  if (version == kSchemaVersion) return absl::OkStatus();
  sql::Transaction transaction(db);
  RETURN_IF_ERROR(transaction.Begin());
  if (version == 1) RETURN_IF_ERROR(db.Exec(kMigrateFrom1));
  RETURN_IF_ERROR(db.Exec(kSchema));
  RETURN_IF_ERROR(db.Exec(absl::StrCat("PRAGMA user_version = ", kSchemaVersion)));
  return transaction.Commit();
}

class ReferenceCaseSystem final : public CaseSystemAdapter {
 public:
  ReferenceCaseSystem(ReferenceSystemProfile profile, std::unique_ptr<sql::Database> db,
                      Clock& clock)
      : profile_(std::move(profile)), db_(std::move(db)), clock_(clock) {}

  // CaseSystemAdapter:
  absl::StatusOr<std::string> RecordDecision(const CallOptions& options, const Citizen& citizen,
                                             const Decision& decision) override;
  absl::StatusOr<std::string> BookAppointment(const CallOptions& options, const Citizen& citizen,
                                              const Appointment& appointment) override;
  absl::StatusOr<Appointment> RescheduleAppointment(const CallOptions& options,
                                                    const Citizen& citizen,
                                                    const AppointmentChange& change) override;
  absl::StatusOr<Appointment> CancelAppointment(const CallOptions& options,
                                                const Citizen& citizen,
                                                const std::string& appointment_id,
                                                const std::string& reason) override;
  absl::StatusOr<Appointment> RecordAttendance(const CallOptions& options,
                                               const Citizen& citizen,
                                               const std::string& appointment_id,
                                               bool attended) override;
  absl::StatusOr<Referral> RecordReferralStep(const CallOptions& options, const Citizen& citizen,
                                              const Referral& referral) override;
  absl::Status CancelRecord(const CallOptions& options, const Citizen& citizen,
                            const std::string& record_id) override;

 private:
  // The one place errors leave the reference system. The contract's codes
  // pass through; anything else (SQLite failures, a corrupt record) becomes
  // kInternal and is logged, since only the operator can fix it. Every
  // message is prefixed with the vendor and the operation.
  absl::Status ToContractStatus(absl::string_view operation, const absl::Status& status) const;

  // Runs one recording call: checks the deadline, replays the stored result
  // if `options.idempotency_key` was seen before, and otherwise runs `record`
  // and stores its result under the key, all in one transaction. Returns
  // the contract's codes only.
  absl::StatusOr<std::string> Record(const char* operation, const CallOptions& options,
                                     const Citizen& citizen,
                                     absl::FunctionRef<absl::StatusOr<std::string>()> record)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::string> RecordInTransaction(
      const char* operation, const CallOptions& options, const Citizen& citizen,
      absl::FunctionRef<absl::StatusOr<std::string>()> record) ABSL_LOCKS_EXCLUDED(mu_);

  // `Record` for a change to a booked appointment: loads it from the
  // citizen's case, applies `change` and stores the result.
  absl::StatusOr<Appointment> Change(const char* operation, const CallOptions& options,
                                     const Citizen& citizen, const std::string& appointment_id,
                                     absl::FunctionRef<absl::Status(StoredAppointment&)> change)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The stored result for `key`, if any. kInvalidArgument if the key was
  // used for another operation or another case.
  absl::StatusOr<std::optional<std::string>> Replay(const char* operation, const std::string& key,
                                                    const std::string& subject)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Remember(const char* operation, const std::string& key, const std::string& subject,
                        const std::string& result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // kInvalidArgument naming `field` unless `code` is in the catalogue.
  absl::Status RequireCatalogued(const std::string& code, const std::string& field) const;

  // The next sequence number in `table` (ids are never reused: nothing is
  // deleted).
  absl::StatusOr<int64_t> NextSeq(absl::string_view table) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::StatusOr<StoredAppointment> LoadAppointment(const std::string& subject,
                                                    const std::string& appointment_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SaveAppointment(const Appointment& appointment) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The referral as its steps in force (not withdrawn) leave it; status
  // UNSPECIFIED if there are none.
  absl::StatusOr<Referral> LoadReferral(const std::string& subject,
                                        const std::string& referral_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checks that `step` follows `current` and returns it as recorded.
  absl::StatusOr<Referral> Advance(const Referral& current, const Referral& step) const;

  // Marks the record `id` of `table` (decisions, appointments) withdrawn.
  // Returns false if the table has no such record on this case.
  absl::StatusOr<bool> Withdraw(absl::string_view table, absl::string_view kind,
                                const std::string& subject, const std::string& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ReferenceSystemProfile profile_;
  absl::Mutex mu_;
  std::unique_ptr<sql::Database> db_ ABSL_GUARDED_BY(mu_);
  Clock& clock_;
};

absl::Status ReferenceCaseSystem::ToContractStatus(absl::string_view operation,
                                                   const absl::Status& status) const {
  if (status.ok()) return status;
  const std::string message = absl::StrCat("reference ", operation, ": ", status.message());
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnavailable:
      return absl::Status(status.code(), message);
    default:
      LogError(absl::StrCat("reference ", profile_.name,
                            " storage failed; check the database file, its directory's "
                            "permissions and free disk space"),
               {{"operation", std::string(operation)}, {"error", message}});
      return absl::InternalError(message);
  }
}

absl::Status ReferenceCaseSystem::RequireCatalogued(const std::string& code,
                                                    const std::string& field) const {
  const bool known = std::any_of(profile_.offers.begin(), profile_.offers.end(),
                                 [&](const CatalogueOffer& offer) { return offer.code == code; });
  if (known) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": not in the ", profile_.name, " catalogue"));
}

absl::StatusOr<std::string> ReferenceCaseSystem::RecordDecision(const CallOptions& options,
                                                                const Citizen& citizen,
                                                                const Decision& decision) {
  return Record(kRecordDecision, options, citizen, [&]() -> absl::StatusOr<std::string> {
    RETURN_IF_ERROR(RequireCatalogued(decision.offer().code(), "decision.offer.code"));
    ASSIGN_OR_RETURN(int64_t seq, NextSeq("decisions"));
    Decision recorded = decision;
    recorded.set_decision_id(absl::StrFormat("%s%06d", profile_.decision_prefix, seq));
    ASSIGN_OR_RETURN(sql::Statement insert,
                     db_->Prepare("INSERT INTO decisions"
                                  " (seq, id, subject, idempotency_key, body, created_at)"
                                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
    insert.Bind(1, seq);
    insert.Bind(2, recorded.decision_id());
    insert.Bind(3, citizen.subject);
    insert.Bind(4, options.idempotency_key);
    insert.BindBlob(5, recorded.SerializeAsString());
    insert.Bind(6, absl::ToUnixMicros(clock_.Now()));
    RETURN_IF_ERROR(insert.Run());
    return recorded.decision_id();
  });
}

absl::StatusOr<std::string> ReferenceCaseSystem::BookAppointment(const CallOptions& options,
                                                                 const Citizen& citizen,
                                                                 const Appointment& appointment) {
  return Record(kBookAppointment, options, citizen, [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(int64_t seq, NextSeq("appointments"));
    Appointment booked = appointment;
    booked.set_appointment_id(absl::StrFormat("%s%06d", profile_.appointment_prefix, seq));
    booked.set_status(events::v1::APPOINTMENT_STATUS_SCHEDULED);
    const int64_t now = absl::ToUnixMicros(clock_.Now());
    ASSIGN_OR_RETURN(
        sql::Statement insert,
        db_->Prepare("INSERT INTO appointments"
                     " (seq, id, subject, idempotency_key, body, created_at, updated_at)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)"));
    insert.Bind(1, seq);
    insert.Bind(2, booked.appointment_id());
    insert.Bind(3, citizen.subject);
    insert.Bind(4, options.idempotency_key);
    insert.BindBlob(5, booked.SerializeAsString());
    insert.Bind(6, now);
    RETURN_IF_ERROR(insert.Run());
    return booked.appointment_id();
  });
}

absl::StatusOr<Appointment> ReferenceCaseSystem::RescheduleAppointment(
    const CallOptions& options, const Citizen& citizen, const AppointmentChange& change) {
  return Change(kRescheduleAppointment, options, citizen, change.appointment_id,
                [&](StoredAppointment& stored) -> absl::Status {
                  RETURN_IF_ERROR(RequireOpen(stored));
                  if (change.end <= change.start) {
                    return absl::InvalidArgumentError("the new end must be after the new start");
                  }
                  Appointment& appointment = stored.appointment;
                  *appointment.mutable_previous_start() = appointment.start();
                  *appointment.mutable_start() = ToProtoTimestamp(change.start);
                  *appointment.mutable_end() = ToProtoTimestamp(change.end);
                  if (change.location.has_value()) {
                    *appointment.mutable_location() = *change.location;
                  }
                  appointment.set_reason(change.reason);
                  appointment.set_status(events::v1::APPOINTMENT_STATUS_RESCHEDULED);
                  return absl::OkStatus();
                });
}

absl::StatusOr<Appointment> ReferenceCaseSystem::CancelAppointment(
    const CallOptions& options, const Citizen& citizen, const std::string& appointment_id,
    const std::string& reason) {
  return Change(kCancelAppointment, options, citizen, appointment_id,
                [&](StoredAppointment& stored) -> absl::Status {
                  RETURN_IF_ERROR(RequireOpen(stored));
                  stored.appointment.set_reason(reason);
                  stored.appointment.set_status(events::v1::APPOINTMENT_STATUS_CANCELLED);
                  return absl::OkStatus();
                });
}

absl::StatusOr<Appointment> ReferenceCaseSystem::RecordAttendance(
    const CallOptions& options, const Citizen& citizen, const std::string& appointment_id,
    bool attended) {
  return Change(kRecordAttendance, options, citizen, appointment_id,
                [&](StoredAppointment& stored) -> absl::Status {
                  // Attendance is recorded once; a correction is a new event
                  // that supersedes the old one, not a change here.
                  RETURN_IF_ERROR(RequireOpen(stored));
                  stored.appointment.set_status(attended
                                                    ? events::v1::APPOINTMENT_STATUS_ATTENDED
                                                    : events::v1::APPOINTMENT_STATUS_NO_SHOW);
                  return absl::OkStatus();
                });
}

absl::StatusOr<Referral> ReferenceCaseSystem::Advance(const Referral& current,
                                                      const Referral& step) const {
  const ReferralStatus previous = current.status();
  const std::string& id = step.referral_id();
  if (!Follows(previous, step.status())) {
    if (previous == events::v1::REFERRAL_STATUS_UNSPECIFIED) {
      return absl::NotFoundError(absl::StrCat("referral ", id, " not found on this case"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "referral ", id, ": ", StepName(step.status()), " cannot follow ", StepName(previous)));
  }
  Referral recorded = step;
  if (step.status() == events::v1::REFERRAL_STATUS_RECEIVED &&
      previous == events::v1::REFERRAL_STATUS_FORWARDED) {
    // Received again, now by the unit it was forwarded to.
    if (step.has_to_unit() && step.to_unit().id() != current.forwarded_to().id()) {
      return absl::FailedPreconditionError(
          absl::StrCat("referral ", id, ": received by unit ", step.to_unit().id(),
                       ", but it was forwarded to unit ", current.forwarded_to().id()));
    }
    *recorded.mutable_to_unit() = current.forwarded_to();
  }
  if (!recorded.has_offer() && current.has_offer()) *recorded.mutable_offer() = current.offer();
  if (!recorded.has_from_unit() && current.has_from_unit()) {
    *recorded.mutable_from_unit() = current.from_unit();
  }
  if (!recorded.has_to_unit() && current.has_to_unit()) {
    *recorded.mutable_to_unit() = current.to_unit();
  }
  // The sender may refer to any administration's offer; the receiving
  // system's catalogue decides whether it can take the referral.
  if (step.status() == events::v1::REFERRAL_STATUS_RECEIVED) {
    if (recorded.offer().code().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "referral.offer: required (the referral is new to the ", profile_.name, " system)"));
    }
    RETURN_IF_ERROR(RequireCatalogued(recorded.offer().code(), "referral.offer.code"));
  } else if (step.status() != events::v1::REFERRAL_STATUS_SENT && step.has_offer() &&
             step.offer().code() != current.offer().code()) {
    RETURN_IF_ERROR(RequireCatalogued(step.offer().code(), "referral.offer.code"));
  }
  if (step.status() == events::v1::REFERRAL_STATUS_ESTIMATE_CHANGED &&
      current.has_estimated_start()) {
    *recorded.mutable_previous_estimated_start() = current.estimated_start();
  }
  return recorded;
}

absl::StatusOr<Referral> ReferenceCaseSystem::RecordReferralStep(const CallOptions& options,
                                                                 const Citizen& citizen,
                                                                 const Referral& referral) {
  auto record = [&]() -> absl::StatusOr<std::string> {
    const bool sent = referral.status() == events::v1::REFERRAL_STATUS_SENT;
    if (sent != referral.referral_id().empty()) {
      return absl::InvalidArgumentError(
          sent ? "referral.referral_id: must be empty when sending (the system assigns it)"
               : "referral.referral_id: required");
    }
    Referral step = referral;
    Referral current;
    if (sent) {
      ASSIGN_OR_RETURN(sql::Statement count,
                       db_->Prepare("SELECT COUNT(*) + 1 FROM referral_steps WHERE status = ?1"));
      count.Bind(1, static_cast<int64_t>(events::v1::REFERRAL_STATUS_SENT));
      ASSIGN_OR_RETURN(bool row, count.Step());
      if (!row) return absl::InternalError("no next referral number");
      step.set_referral_id(
          absl::StrFormat("%s%06d", profile_.referral_prefix, count.ColumnInt64(0)));
    } else {
      ASSIGN_OR_RETURN(current, LoadReferral(citizen.subject, step.referral_id()));
    }
    ASSIGN_OR_RETURN(Referral recorded, Advance(current, step));
    ASSIGN_OR_RETURN(sql::Statement insert,
                     db_->Prepare("INSERT INTO referral_steps (subject, referral_id, status, "
                                  "idempotency_key, body, created_at)"
                                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
    insert.Bind(1, citizen.subject);
    insert.Bind(2, recorded.referral_id());
    insert.Bind(3, static_cast<int64_t>(recorded.status()));
    insert.Bind(4, options.idempotency_key);
    insert.BindBlob(5, recorded.SerializeAsString());
    insert.Bind(6, absl::ToUnixMicros(clock_.Now()));
    RETURN_IF_ERROR(insert.Run());
    return recorded.SerializeAsString();
  };
  ASSIGN_OR_RETURN(std::string bytes, Record(kRecordReferralStep, options, citizen, record));
  Referral recorded;
  if (!recorded.ParseFromString(bytes)) {
    return absl::InternalError(
        absl::StrCat("reference ", kRecordReferralStep, ": stored result is corrupt"));
  }
  return recorded;
}

absl::Status ReferenceCaseSystem::CancelRecord(const CallOptions& options, const Citizen& citizen,
                                               const std::string& record_id) {
  return Record(kCancelRecord, options, citizen, [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(bool decision, Withdraw("decisions", "decision", citizen.subject, record_id));
    if (decision) return record_id;
    ASSIGN_OR_RETURN(bool appointment,
                     Withdraw("appointments", "appointment", citizen.subject, record_id));
    if (appointment) return record_id;
    // A referral: its latest step in force goes.
    ASSIGN_OR_RETURN(sql::Statement steps,
                     db_->Prepare("SELECT seq, withdrawn FROM referral_steps WHERE subject = ?1 "
                                  "AND referral_id = ?2 ORDER BY seq DESC"));
    steps.Bind(1, citizen.subject);
    steps.Bind(2, record_id);
    bool any = false;
    while (true) {
      ASSIGN_OR_RETURN(bool row, steps.Step());
      if (!row) break;
      any = true;
      if (steps.ColumnInt64(1) != 0) continue;
      ASSIGN_OR_RETURN(sql::Statement update,
                       db_->Prepare("UPDATE referral_steps SET withdrawn = 1 WHERE seq = ?1"));
      update.Bind(1, steps.ColumnInt64(0));
      RETURN_IF_ERROR(update.Run());
      return record_id;
    }
    if (any) {
      return absl::FailedPreconditionError(
          absl::StrCat("referral ", record_id, " has no step left to withdraw"));
    }
    return absl::NotFoundError(absl::StrCat("record ", record_id, " not found on this case"));
  }).status();
}

absl::StatusOr<bool> ReferenceCaseSystem::Withdraw(absl::string_view table,
                                                   absl::string_view kind,
                                                   const std::string& subject,
                                                   const std::string& id) {
  ASSIGN_OR_RETURN(sql::Statement query,
                   db_->Prepare(absl::StrCat("SELECT withdrawn FROM ", table,
                                             " WHERE id = ?1 AND subject = ?2")));
  query.Bind(1, id);
  query.Bind(2, subject);
  ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return false;
  if (query.ColumnInt64(0) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(kind, " ", id, " is already withdrawn"));
  }
  ASSIGN_OR_RETURN(sql::Statement update,
                   db_->Prepare(
                       absl::StrCat("UPDATE ", table, " SET withdrawn = 1 WHERE id = ?1")));
  update.Bind(1, id);
  RETURN_IF_ERROR(update.Run());
  return true;
}

absl::StatusOr<std::string> ReferenceCaseSystem::Record(
    const char* operation, const CallOptions& options, const Citizen& citizen,
    absl::FunctionRef<absl::StatusOr<std::string>()> record) {
  absl::StatusOr<std::string> result = RecordInTransaction(operation, options, citizen, record);
  if (!result.ok()) return ToContractStatus(operation, result.status());
  return result;
}

absl::StatusOr<std::string> ReferenceCaseSystem::RecordInTransaction(
    const char* operation, const CallOptions& options, const Citizen& citizen,
    absl::FunctionRef<absl::StatusOr<std::string>()> record) {
  if (options.idempotency_key.empty()) {
    return absl::InvalidArgumentError("idempotency_key: required");
  }
  absl::MutexLock lock(&mu_);
  // Checked under the lock, so time spent waiting for it counts.
  if (options.deadline < clock_.Now()) {
    return absl::DeadlineExceededError("the deadline passed before the call was made");
  }
  sql::Transaction transaction(*db_);
  RETURN_IF_ERROR(transaction.Begin());
  ASSIGN_OR_RETURN(std::optional<std::string> earlier,
                   Replay(operation, options.idempotency_key, citizen.subject));
  // A repeated key: the transaction rolls back, having changed nothing.
  if (earlier.has_value()) return *std::move(earlier);
  ASSIGN_OR_RETURN(std::string result, record());
  RETURN_IF_ERROR(Remember(operation, options.idempotency_key, citizen.subject, result));
  RETURN_IF_ERROR(transaction.Commit());
  return result;
}

absl::StatusOr<Appointment> ReferenceCaseSystem::Change(
    const char* operation, const CallOptions& options, const Citizen& citizen,
    const std::string& appointment_id, absl::FunctionRef<absl::Status(StoredAppointment&)> change) {
  auto change_stored = [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(StoredAppointment stored, LoadAppointment(citizen.subject, appointment_id));
    RETURN_IF_ERROR(change(stored));
    RETURN_IF_ERROR(SaveAppointment(stored.appointment));
    return stored.appointment.SerializeAsString();
  };
  ASSIGN_OR_RETURN(std::string bytes, Record(operation, options, citizen, change_stored));
  Appointment appointment;
  if (!appointment.ParseFromString(bytes)) {
    return absl::InternalError(absl::StrCat("reference ", operation, ": stored result is corrupt"));
  }
  return appointment;
}

absl::StatusOr<std::optional<std::string>> ReferenceCaseSystem::Replay(const char* operation,
                                                                       const std::string& key,
                                                                       const std::string& subject) {
  ASSIGN_OR_RETURN(
      sql::Statement query,
      db_->Prepare("SELECT operation, subject, result FROM idempotency WHERE idempotency_key = ?1"));
  query.Bind(1, key);
  ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return std::nullopt;
  if (query.ColumnText(0) != operation || query.ColumnText(1) != subject) {
    return absl::InvalidArgumentError(
        "the idempotency key was already used for another operation or case");
  }
  return query.ColumnBlob(2);
}

absl::Status ReferenceCaseSystem::Remember(const char* operation, const std::string& key,
                                           const std::string& subject,
                                           const std::string& result) {
  ASSIGN_OR_RETURN(sql::Statement insert,
                   db_->Prepare("INSERT INTO idempotency"
                                " (idempotency_key, operation, subject, result, created_at)"
                                " VALUES (?1, ?2, ?3, ?4, ?5)"));
  insert.Bind(1, key);
  insert.Bind(2, operation);
  insert.Bind(3, subject);
  insert.BindBlob(4, result);
  insert.Bind(5, absl::ToUnixMicros(clock_.Now()));
  return insert.Run();
}

absl::StatusOr<int64_t> ReferenceCaseSystem::NextSeq(absl::string_view table) {
  ASSIGN_OR_RETURN(sql::Statement query,
                   db_->Prepare(absl::StrCat("SELECT COALESCE(MAX(seq), 0) + 1 FROM ", table)));
  ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return absl::InternalError(absl::StrCat("no next sequence number in ", table));
  return query.ColumnInt64(0);
}

absl::StatusOr<StoredAppointment> ReferenceCaseSystem::LoadAppointment(
    const std::string& subject, const std::string& appointment_id) {
  // Matching on the subject too means another citizen's appointment looks
  // exactly like a missing one: the caller learns nothing about other cases.
  ASSIGN_OR_RETURN(
      sql::Statement query,
      db_->Prepare("SELECT body, withdrawn FROM appointments WHERE id = ?1 AND subject = ?2"));
  query.Bind(1, appointment_id);
  query.Bind(2, subject);
  ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) {
    return absl::NotFoundError(
        absl::StrCat("appointment ", appointment_id, " not found on this case"));
  }
  StoredAppointment stored;
  if (!stored.appointment.ParseFromString(query.ColumnBlob(0))) {
    return absl::InternalError(absl::StrCat("appointment ", appointment_id, " is corrupt"));
  }
  stored.withdrawn = query.ColumnInt64(1) != 0;
  return stored;
}

absl::Status ReferenceCaseSystem::SaveAppointment(const Appointment& appointment) {
  ASSIGN_OR_RETURN(sql::Statement update,
                   db_->Prepare("UPDATE appointments SET body = ?2, updated_at = ?3 WHERE id = ?1"));
  update.Bind(1, appointment.appointment_id());
  update.BindBlob(2, appointment.SerializeAsString());
  update.Bind(3, absl::ToUnixMicros(clock_.Now()));
  return update.Run();
}

absl::StatusOr<Referral> ReferenceCaseSystem::LoadReferral(const std::string& subject,
                                                           const std::string& referral_id) {
  // As for appointments, another citizen's referral looks like a missing one.
  ASSIGN_OR_RETURN(sql::Statement query,
                   db_->Prepare("SELECT body FROM referral_steps WHERE subject = ?1 AND "
                                "referral_id = ?2 AND withdrawn = 0 ORDER BY seq"));
  query.Bind(1, subject);
  query.Bind(2, referral_id);
  Referral current;
  while (true) {
    ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) break;
    Referral step;
    if (!step.ParseFromString(query.ColumnBlob(0))) {
      return absl::InternalError(absl::StrCat("a step of referral ", referral_id, " is corrupt"));
    }
    Fold(current, step);
  }
  return current;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CaseSystemAdapter>> NewReferenceCaseSystem(
    ReferenceSystemProfile profile, const casebridge::config::v1::ReferenceSystemConfig& config,
    Clock& clock) {
  if (config.database_path().empty()) {
    return absl::InvalidArgumentError("reference.database_path: required");
  }
  absl::StatusOr<std::unique_ptr<sql::Database>> db =
      sql::Database::Open(config.database_path());
  if (!db.ok()) return absl::InternalError(absl::StrCat("reference: ", db.status().message()));
  absl::Status schema = InitialiseSchema(**db);
  if (!schema.ok()) {
    if (absl::IsFailedPrecondition(schema)) return schema;
    return absl::InternalError(absl::StrCat("reference: ", schema.message()));
  }
  return std::make_unique<ReferenceCaseSystem>(std::move(profile), std::move(*db), clock);
}

}  // namespace casebridge::reference
