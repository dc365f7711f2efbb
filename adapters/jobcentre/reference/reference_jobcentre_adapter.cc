#include "adapters/jobcentre/reference/reference_jobcentre_adapter.h"

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
#include "services/common/proto_time.h"
#include "services/common/log.h"
#include "services/common/sqlite.h"
#include "services/common/status_macros.h"

namespace casebridge::jobcentre::reference {
namespace {

using ::casebridge::events::v1::Appointment;
using ::casebridge::events::v1::AppointmentStatus;
using ::casebridge::events::v1::Decision;

// `PRAGMA user_version` of the schema below. Bump it, and teach
// `InitialiseSchema` to migrate, when a table changes.
constexpr int64_t kSchemaVersion = 1;

// Bodies are serialised protos; the other columns exist to look records up.
// No column holds a CPR number: the reference system knows a citizen only by
// the pseudonymous subject.
constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS decisions (
  seq             INTEGER PRIMARY KEY,
  id              TEXT NOT NULL UNIQUE,     -- "D-000001"
  subject         TEXT NOT NULL,
  idempotency_key TEXT NOT NULL UNIQUE,
  body            BLOB NOT NULL,            -- casebridge.events.v1.Decision
  created_at      INTEGER NOT NULL          -- Unix microseconds
);
CREATE TABLE IF NOT EXISTS appointments (
  seq             INTEGER PRIMARY KEY,
  id              TEXT NOT NULL UNIQUE,     -- "A-000001"
  subject         TEXT NOT NULL,
  idempotency_key TEXT NOT NULL UNIQUE,     -- the booking call's key
  body            BLOB NOT NULL,            -- casebridge.events.v1.Appointment, current state
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
  idempotency_key TEXT PRIMARY KEY,
  operation       TEXT NOT NULL,            -- e.g. "reschedule_appointment"
  subject         TEXT NOT NULL,
  result          BLOB NOT NULL,            -- the id, or the serialised Appointment
  created_at      INTEGER NOT NULL
);
)sql";

// Operation names: in the idempotency table and in every error message.
constexpr char kRecordDecision[] = "record_decision";
constexpr char kBookAppointment[] = "book_appointment";
constexpr char kRescheduleAppointment[] = "reschedule_appointment";
constexpr char kCancelAppointment[] = "cancel_appointment";
constexpr char kRecordAttendance[] = "record_attendance";

// The one place errors leave the reference system. The contract's codes pass
// through; anything else (SQLite failures, a corrupt record) becomes
// kInternal and is logged, since only the operator can fix it. Every message
// is prefixed with the vendor and the operation.
absl::Status ToContractStatus(absl::string_view operation, const absl::Status& status) {
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
      LogError("reference job-centre storage failed; check the database file, its directory's "
               "permissions and free disk space",
               {{"operation", std::string(operation)}, {"error", message}});
      return absl::InternalError(message);
  }
}

// A lower-case name for a closed state, for error messages.
absl::string_view StateName(AppointmentStatus status) {
  switch (status) {
    case casebridge::events::v1::APPOINTMENT_STATUS_CANCELLED:
      return "cancelled";
    case casebridge::events::v1::APPOINTMENT_STATUS_ATTENDED:
      return "attended";
    case casebridge::events::v1::APPOINTMENT_STATUS_NO_SHOW:
      return "a no-show";
    default:
      return "closed";
  }
}

// Returns kFailedPrecondition unless `appointment` can still be changed:
// once cancelled, attended or missed it is history.
absl::Status RequireOpen(const Appointment& appointment) {
  const AppointmentStatus status = appointment.status();
  if (status == casebridge::events::v1::APPOINTMENT_STATUS_SCHEDULED ||
      status == casebridge::events::v1::APPOINTMENT_STATUS_RESCHEDULED) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      absl::StrCat("appointment ", appointment.appointment_id(), " is ", StateName(status)));
}

absl::Status InitialiseSchema(sqlite::Database& db) {
  int64_t version = 0;
  {
    ASSIGN_OR_RETURN(sqlite::Statement query, db.Prepare("PRAGMA user_version"));
    ASSIGN_OR_RETURN(bool row, query.Step());
    if (row) version = query.ColumnInt64(0);
  }
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrFormat("reference.database_path: schema version %d is newer than this "
                        "build's (%d)",
                        version, kSchemaVersion));
  }
  sqlite::Transaction transaction(db);
  RETURN_IF_ERROR(transaction.Begin());
  RETURN_IF_ERROR(db.Exec(kSchema));
  RETURN_IF_ERROR(db.Exec(absl::StrCat("PRAGMA user_version = ", kSchemaVersion)));
  return transaction.Commit();
}

class ReferenceJobCentreAdapter final : public JobCentreAdapter {
 public:
  ReferenceJobCentreAdapter(std::unique_ptr<sqlite::Database> db, Clock& clock)
      : db_(std::move(db)), clock_(clock) {}

  // JobCentreAdapter:
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

 private:
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
                                     absl::FunctionRef<absl::Status(Appointment&)> change)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The stored result for `key`, if any. kInvalidArgument if the key was
  // used for another operation or another case.
  absl::StatusOr<std::optional<std::string>> Replay(const char* operation, const std::string& key,
                                                    const std::string& subject)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Remember(const char* operation, const std::string& key, const std::string& subject,
                        const std::string& result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The next sequence number in `table` (ids are never reused: nothing is
  // deleted).
  absl::StatusOr<int64_t> NextSeq(absl::string_view table) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::StatusOr<Appointment> LoadAppointment(const std::string& subject,
                                              const std::string& appointment_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SaveAppointment(const Appointment& appointment) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::unique_ptr<sqlite::Database> db_ ABSL_GUARDED_BY(mu_);
  Clock& clock_;
};

absl::StatusOr<std::string> ReferenceJobCentreAdapter::RecordDecision(const CallOptions& options,
                                                                      const Citizen& citizen,
                                                                      const Decision& decision) {
  return Record(kRecordDecision, options, citizen, [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(int64_t seq, NextSeq("decisions"));
    Decision recorded = decision;
    recorded.set_decision_id(absl::StrFormat("D-%06d", seq));
    ASSIGN_OR_RETURN(sqlite::Statement insert,
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

absl::StatusOr<std::string> ReferenceJobCentreAdapter::BookAppointment(
    const CallOptions& options, const Citizen& citizen, const Appointment& appointment) {
  return Record(kBookAppointment, options, citizen, [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(int64_t seq, NextSeq("appointments"));
    Appointment booked = appointment;
    booked.set_appointment_id(absl::StrFormat("A-%06d", seq));
    booked.set_status(casebridge::events::v1::APPOINTMENT_STATUS_SCHEDULED);
    const int64_t now = absl::ToUnixMicros(clock_.Now());
    ASSIGN_OR_RETURN(
        sqlite::Statement insert,
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

absl::StatusOr<Appointment> ReferenceJobCentreAdapter::RescheduleAppointment(
    const CallOptions& options, const Citizen& citizen, const AppointmentChange& change) {
  return Change(kRescheduleAppointment, options, citizen, change.appointment_id,
                [&](Appointment& appointment) -> absl::Status {
                  RETURN_IF_ERROR(RequireOpen(appointment));
                  if (change.end <= change.start) {
                    return absl::InvalidArgumentError("the new end must be after the new start");
                  }
                  *appointment.mutable_previous_start() = appointment.start();
                  *appointment.mutable_start() = ToProtoTimestamp(change.start);
                  *appointment.mutable_end() = ToProtoTimestamp(change.end);
                  if (change.location.has_value()) *appointment.mutable_location() = *change.location;
                  appointment.set_reason(change.reason);
                  appointment.set_status(casebridge::events::v1::APPOINTMENT_STATUS_RESCHEDULED);
                  return absl::OkStatus();
                });
}

absl::StatusOr<Appointment> ReferenceJobCentreAdapter::CancelAppointment(
    const CallOptions& options, const Citizen& citizen, const std::string& appointment_id,
    const std::string& reason) {
  return Change(kCancelAppointment, options, citizen, appointment_id,
                [&](Appointment& appointment) -> absl::Status {
                  RETURN_IF_ERROR(RequireOpen(appointment));
                  appointment.set_reason(reason);
                  appointment.set_status(casebridge::events::v1::APPOINTMENT_STATUS_CANCELLED);
                  return absl::OkStatus();
                });
}

absl::StatusOr<Appointment> ReferenceJobCentreAdapter::RecordAttendance(
    const CallOptions& options, const Citizen& citizen, const std::string& appointment_id,
    bool attended) {
  return Change(kRecordAttendance, options, citizen, appointment_id,
                [&](Appointment& appointment) -> absl::Status {
                  // Attendance is recorded once; a correction is a new event
                  // that supersedes the old one, not a change here.
                  RETURN_IF_ERROR(RequireOpen(appointment));
                  appointment.set_status(attended
                                             ? casebridge::events::v1::APPOINTMENT_STATUS_ATTENDED
                                             : casebridge::events::v1::APPOINTMENT_STATUS_NO_SHOW);
                  return absl::OkStatus();
                });
}

absl::StatusOr<std::string> ReferenceJobCentreAdapter::Record(
    const char* operation, const CallOptions& options, const Citizen& citizen,
    absl::FunctionRef<absl::StatusOr<std::string>()> record) {
  absl::StatusOr<std::string> result = RecordInTransaction(operation, options, citizen, record);
  if (!result.ok()) return ToContractStatus(operation, result.status());
  return result;
}

absl::StatusOr<std::string> ReferenceJobCentreAdapter::RecordInTransaction(
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
  sqlite::Transaction transaction(*db_);
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

absl::StatusOr<Appointment> ReferenceJobCentreAdapter::Change(
    const char* operation, const CallOptions& options, const Citizen& citizen,
    const std::string& appointment_id, absl::FunctionRef<absl::Status(Appointment&)> change) {
  auto change_stored = [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(Appointment appointment, LoadAppointment(citizen.subject, appointment_id));
    RETURN_IF_ERROR(change(appointment));
    RETURN_IF_ERROR(SaveAppointment(appointment));
    return appointment.SerializeAsString();
  };
  ASSIGN_OR_RETURN(std::string bytes, Record(operation, options, citizen, change_stored));
  Appointment appointment;
  if (!appointment.ParseFromString(bytes)) {
    return absl::InternalError(absl::StrCat("reference ", operation, ": stored result is corrupt"));
  }
  return appointment;
}

absl::StatusOr<std::optional<std::string>> ReferenceJobCentreAdapter::Replay(
    const char* operation, const std::string& key, const std::string& subject) {
  ASSIGN_OR_RETURN(
      sqlite::Statement query,
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

absl::Status ReferenceJobCentreAdapter::Remember(const char* operation, const std::string& key,
                                                 const std::string& subject,
                                                 const std::string& result) {
  ASSIGN_OR_RETURN(sqlite::Statement insert,
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

absl::StatusOr<int64_t> ReferenceJobCentreAdapter::NextSeq(absl::string_view table) {
  ASSIGN_OR_RETURN(sqlite::Statement query,
                   db_->Prepare(absl::StrCat("SELECT COALESCE(MAX(seq), 0) + 1 FROM ", table)));
  ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return absl::InternalError(absl::StrCat("no next sequence number in ", table));
  return query.ColumnInt64(0);
}

absl::StatusOr<Appointment> ReferenceJobCentreAdapter::LoadAppointment(
    const std::string& subject, const std::string& appointment_id) {
  // Matching on the subject too means another citizen's appointment looks
  // exactly like a missing one: the caller learns nothing about other cases.
  ASSIGN_OR_RETURN(sqlite::Statement query,
                   db_->Prepare("SELECT body FROM appointments WHERE id = ?1 AND subject = ?2"));
  query.Bind(1, appointment_id);
  query.Bind(2, subject);
  ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) {
    return absl::NotFoundError(
        absl::StrCat("appointment ", appointment_id, " not found on this case"));
  }
  Appointment appointment;
  if (!appointment.ParseFromString(query.ColumnBlob(0))) {
    return absl::InternalError(absl::StrCat("appointment ", appointment_id, " is corrupt"));
  }
  return appointment;
}

absl::Status ReferenceJobCentreAdapter::SaveAppointment(const Appointment& appointment) {
  ASSIGN_OR_RETURN(sqlite::Statement update,
                   db_->Prepare("UPDATE appointments SET body = ?2, updated_at = ?3 WHERE id = ?1"));
  update.Bind(1, appointment.appointment_id());
  update.BindBlob(2, appointment.SerializeAsString());
  update.Bind(3, absl::ToUnixMicros(clock_.Now()));
  return update.Run();
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobCentreAdapter>> NewReferenceJobCentreAdapter(
    const casebridge::config::v1::ReferenceJobCentreConfig& config, Clock& clock) {
  if (config.database_path().empty()) {
    return absl::InvalidArgumentError("reference.database_path: required");
  }
  absl::StatusOr<std::unique_ptr<sqlite::Database>> db =
      sqlite::Database::Open(config.database_path());
  if (!db.ok()) return absl::InternalError(absl::StrCat("reference: ", db.status().message()));
  absl::Status schema = InitialiseSchema(**db);
  if (!schema.ok()) {
    if (absl::IsFailedPrecondition(schema)) return schema;
    return absl::InternalError(absl::StrCat("reference: ", schema.message()));
  }
  return std::make_unique<ReferenceJobCentreAdapter>(std::move(*db), clock);
}

}  // namespace casebridge::jobcentre::reference
