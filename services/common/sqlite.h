// A thin RAII layer over SQLite, the embedded store of the reference vendor
// systems, the service ledgers and the coordination store
// (docs/adr/0004-sqlite-embedded-store.md).
//
// Errors come back as `absl::Status`: kNotFound never (queries return empty
// results), kAlreadyExists for a UNIQUE/PRIMARY KEY conflict, kInternal for
// everything else, with SQLite's message (which never contains bound
// values, so no personal data).
//
// Thread safety: a `Database` and its `Statement`s are not safe for
// concurrent use; callers serialise access (every user here holds a mutex).
//
// Example:
//   ASSIGN_OR_RETURN(auto db, sqlite::Database::Open(path));
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

struct sqlite3;
struct sqlite3_stmt;

namespace casebridge::sqlite {

// A prepared statement. Move-only.
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Binds parameter `index` (1-based).
  void Bind(int index, int64_t value);
  void Bind(int index, std::string_view text);
  void BindBlob(int index, std::string_view bytes);
  void BindNull(int index);

  // Advances to the next row. Returns true if a row is available, false when
  // the statement is done.
  absl::StatusOr<bool> Step();
  // Steps to completion, for statements that return no rows.
  absl::Status Run();
  // Resets the statement and clears its bindings, for reuse.
  void Reset();

  // Columns of the current row (0-based).
  int64_t ColumnInt64(int column) const;
  std::string ColumnText(int column) const;
  std::string ColumnBlob(int column) const;
  bool ColumnIsNull(int column) const;

 private:
  friend class Database;
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}

  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

// An open database file.
class Database {
 public:
  // Opens (creating if missing) the database at `path` in WAL mode with
  // `synchronous=FULL`: a committed transaction survives a crash or power
  // loss. Returns kInternal if the file cannot be opened.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path);

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  // Runs one or more SQL statements without parameters.
  absl::Status Exec(std::string_view sql);
  // Prepares one statement.
  absl::StatusOr<Statement> Prepare(std::string_view sql);

  // Transactions. `BEGIN IMMEDIATE` takes the write lock at once.
  absl::Status Begin() { return Exec("BEGIN IMMEDIATE"); }
  absl::Status Commit() { return Exec("COMMIT"); }
  absl::Status Rollback() { return Exec("ROLLBACK"); }

  // The rowid of the last INSERT on this connection.
  int64_t LastInsertRowId() const;

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// Rolls back the open transaction on destruction unless `Commit` succeeded.
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

 private:
  Database& db_;
  bool open_ = false;
};

}  // namespace casebridge::sqlite
