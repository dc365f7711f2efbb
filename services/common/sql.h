// A thin RAII layer over the two SQL stores casebridge writes to: SQLite, the
// embedded store of the reference vendor systems, the service ledgers and a
// single coordination instance (docs/adr/0004-sqlite-embedded-store.md), and
// PostgreSQL, the shared store of coordination replicas
// (docs/adr/0019-postgresql-shared-coordination-store.md).
//
// `Database::Open(target)` opens PostgreSQL when `target` is a libpq URI
// ("postgresql://…" or "postgres://…", see `IsPostgresTarget`) and SQLite
// otherwise (a file path). Callers write one SQL text for both: parameters
// are `?1`, `?2`, … (the PostgreSQL backend rewrites them to `$1`, `$2`, …),
// upserts are `INSERT … ON CONFLICT …`, and the few statements that differ
// (the schema) are chosen by `dialect()`.
//
// Errors come back as `absl::Status`: kNotFound never (queries return empty
// results); kAlreadyExists for a UNIQUE/PRIMARY KEY conflict; kAborted for a
// conflict between concurrent transactions that a retry resolves
// (PostgreSQL's serialization failure or deadlock); kUnavailable when the
// PostgreSQL server cannot be reached (the next call reconnects); kInternal
// for everything else — with the store's own message, which never contains
// bound values, so no personal data.
//
// Durability: SQLite runs in WAL mode with `synchronous=FULL`; PostgreSQL
// commits are durable as the server is configured (`synchronous_commit=on`,
// its default, is what casebridge expects). Either way a successful `Commit`
// has reached stable storage.
//
// Thread safety: a `Database` and its `Statement`s are not safe for
// concurrent use; callers serialise access (every user here holds a mutex).
//
// Example:
//   ASSIGN_OR_RETURN(auto db, sql::Database::Open(path_or_url));
//   RETURN_IF_ERROR(db->Exec("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v BLOB)"));
//   ASSIGN_OR_RETURN(auto insert, db->Prepare("INSERT INTO t VALUES (?1, ?2)"));
//   insert.Bind(1, key); insert.BindBlob(2, bytes);
//   RETURN_IF_ERROR(insert.Run());
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace casebridge::sql {

enum class Dialect { kSqlite, kPostgres };

// True if `target` names a PostgreSQL server (a libpq URI) rather than a
// SQLite file.
bool IsPostgresTarget(std::string_view target);

// What a backend implements for one prepared statement.
class StatementImpl {
 public:
  virtual ~StatementImpl() = default;
  virtual void Bind(int index, int64_t value) = 0;
  virtual void Bind(int index, std::string_view text) = 0;
  virtual void BindBlob(int index, std::string_view bytes) = 0;
  virtual void BindNull(int index) = 0;
  virtual absl::StatusOr<bool> Step() = 0;
  virtual void Reset() = 0;
  virtual int64_t ColumnInt64(int column) const = 0;
  virtual std::string ColumnText(int column) const = 0;
  virtual std::string ColumnBlob(int column) const = 0;
  virtual bool ColumnIsNull(int column) const = 0;
};

class Statement {
 public:
  explicit Statement(std::unique_ptr<StatementImpl> impl) : impl_(std::move(impl)) {}
  Statement(Statement&&) noexcept = default;
  Statement& operator=(Statement&&) noexcept = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Binds parameter `index` (1-based).
  void Bind(int index, int64_t value) { impl_->Bind(index, value); }
  void Bind(int index, std::string_view text) { impl_->Bind(index, text); }
  void BindBlob(int index, std::string_view bytes) { impl_->BindBlob(index, bytes); }
  void BindNull(int index) { impl_->BindNull(index); }

  // Advances to the next row (running the statement on the first call).
  // Returns true if a row is available, false when the statement is done.
  absl::StatusOr<bool> Step() { return impl_->Step(); }
  // Steps to completion, for statements that return no rows.
  absl::Status Run();
  // Resets the statement and clears its bindings, for reuse.
  void Reset() { impl_->Reset(); }

  // Columns of the current row (0-based). A NULL reads as 0 or "".
  int64_t ColumnInt64(int column) const { return impl_->ColumnInt64(column); }
  std::string ColumnText(int column) const { return impl_->ColumnText(column); }
  std::string ColumnBlob(int column) const { return impl_->ColumnBlob(column); }
  bool ColumnIsNull(int column) const { return impl_->ColumnIsNull(column); }

 private:
  std::unique_ptr<StatementImpl> impl_;
};

class Database {
 public:
  // Opens the store `target`: a PostgreSQL server if `IsPostgresTarget`
  // (connecting once to check it is reachable), else a SQLite file, created
  // if missing. kUnavailable if the server cannot be reached, kInternal if
  // the file cannot be opened.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& target);

  Database() = default;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  virtual ~Database() = default;

  virtual Dialect dialect() const = 0;

  // Runs one or more SQL statements without parameters.
  virtual absl::Status Exec(std::string_view sql) = 0;
  // Prepares one statement.
  virtual absl::StatusOr<Statement> Prepare(std::string_view sql) = 0;

  // Transactions. SQLite's `Begin` is `BEGIN IMMEDIATE` (it takes the write
  // lock at once); PostgreSQL's is `BEGIN` (READ COMMITTED).
  virtual absl::Status Begin() = 0;
  absl::Status Commit() { return Exec("COMMIT"); }
  absl::Status Rollback() { return Exec("ROLLBACK"); }
};

// Rolls back on destruction unless committed.
class Transaction {
 public:
  explicit Transaction(Database& db) : db_(db) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    if (open_) db_.Rollback().IgnoreError();
  }
  absl::Status Begin() {
    absl::Status s = db_.Begin();
    open_ = s.ok();
    return s;
  }
  absl::Status Commit() {
    absl::Status s = db_.Commit();
    if (s.ok()) open_ = false;
    return s;
  }
  // Rolls back now (also after a failed statement or `Commit`).
  absl::Status Rollback() {
    if (!open_) return absl::OkStatus();
    open_ = false;
    return db_.Rollback();
  }

 private:
  Database& db_;
  bool open_ = false;
};

// Returns `schema`, written for SQLite, in `dialect`: for PostgreSQL
// `INTEGER PRIMARY KEY AUTOINCREMENT` becomes `BIGSERIAL PRIMARY KEY`,
// `INTEGER` `BIGINT` and `BLOB` `BYTEA`. Schemas are written with exactly
// these spellings.
std::string SchemaFor(Dialect dialect, std::string_view schema);

// Creates what is missing of `schema` (written for SQLite; `SchemaFor`
// translates it): one statement at a time, each in its own transaction, so
// that on a PostgreSQL store other instances are using no lock is held from
// one statement to the next (a multi-statement batch would hold them all and
// can deadlock with their transactions); a conflict (kAborted) is retried a
// few times with a short backoff.
absl::Status CreateSchema(Database& db, std::string_view schema);

// Adds the nullable column `column` of type `type` (written for SQLite, as
// in `SchemaFor`) to `table` unless the table has it already: a migration of
// a store created by an earlier version. Rows written before read NULL, and
// an earlier version's statements, which name their columns, keep working.
// It looks before it alters, so that on a PostgreSQL store other instances
// are using the table is locked only when the column is really missing; two
// instances adding it at once are fine (`ADD COLUMN IF NOT EXISTS`).
absl::Status AddColumnIfMissing(Database& db, std::string_view table, std::string_view column,
                                std::string_view type);

// The backends, for `Database::Open` and tests.
absl::StatusOr<std::unique_ptr<Database>> OpenSqlite(const std::string& path);
absl::StatusOr<std::unique_ptr<Database>> OpenPostgres(const std::string& url);

}  // namespace casebridge::sql
