// The SQLite backend of sql.h.
#include <sqlite3.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "services/common/sql.h"

namespace casebridge::sql {
namespace {

absl::Status ErrorFrom(sqlite3* db, int rc, std::string_view what) {
  const char* message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string text = absl::StrCat("sqlite ", std::string(what), ": ", message);
  if ((rc & 0xff) == SQLITE_CONSTRAINT) return absl::AlreadyExistsError(text);
  return absl::InternalError(text);
}

// Prepared statements kept for reuse, per SQL text: parsing and planning a
// statement costs more than running most of ours, and the same few run for
// every event. A statement goes back here, reset, when its `Statement` is
// destroyed. Used under the owning database's lock, like the connection.
class StatementCache {
 public:
  ~StatementCache() {
    for (auto& [sql, statements] : free_) {
      for (sqlite3_stmt* stmt : statements) sqlite3_finalize(stmt);
    }
  }
  sqlite3_stmt* Take(std::string_view sql) {
    auto it = free_.find(sql);
    if (it == free_.end() || it->second.empty()) return nullptr;
    sqlite3_stmt* stmt = it->second.back();
    it->second.pop_back();
    return stmt;
  }
  void Give(sqlite3_stmt* stmt) {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    std::vector<sqlite3_stmt*>& statements = free_[sqlite3_sql(stmt)];
    // More than a few of one text at once means nesting, not reuse.
    if (statements.size() >= 4) {
      sqlite3_finalize(stmt);
      return;
    }
    statements.push_back(stmt);
  }

 private:
  std::map<std::string, std::vector<sqlite3_stmt*>, std::less<>> free_;
};

class SqliteStatement final : public StatementImpl {
 public:
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt, StatementCache* cache)
      : db_(db), stmt_(stmt), cache_(cache) {}
  ~SqliteStatement() override { cache_->Give(stmt_); }

  void Bind(int index, int64_t value) override { sqlite3_bind_int64(stmt_, index, value); }
  void Bind(int index, std::string_view text) override {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int index, std::string_view bytes) override {
    sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()),
                      SQLITE_TRANSIENT);
  }
  void BindNull(int index) override { sqlite3_bind_null(stmt_, index); }

  absl::StatusOr<bool> Step() override {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return ErrorFrom(db_, rc, "step");
  }
  void Reset() override {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  int64_t ColumnInt64(int column) const override { return sqlite3_column_int64(stmt_, column); }
  std::string ColumnText(int column) const override {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    if (text == nullptr) return {};
    return std::string(reinterpret_cast<const char*>(text),
                       static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
  }
  std::string ColumnBlob(int column) const override {
    const void* blob = sqlite3_column_blob(stmt_, column);
    if (blob == nullptr) return {};
    return std::string(static_cast<const char*>(blob),
                       static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
  }
  bool ColumnIsNull(int column) const override {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  StatementCache* cache_;
};

class SqliteDatabase final : public Database {
 public:
  explicit SqliteDatabase(sqlite3* db) : db_(db) {}
  ~SqliteDatabase() override {
    cache_.reset();  // finalizes the cached statements first
    sqlite3_close(db_);
  }

  Dialect dialect() const override { return Dialect::kSqlite; }

  absl::Status Exec(std::string_view sql) override {
    std::string text(sql);
    char* error = nullptr;
    int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error);
    if (rc != SQLITE_OK) {
      std::string message = error != nullptr ? error : sqlite3_errstr(rc);
      sqlite3_free(error);
      if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        return absl::AlreadyExistsError("sqlite exec: " + message);
      }
      return absl::InternalError("sqlite exec: " + message);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Statement> Prepare(std::string_view sql) override {
    sqlite3_stmt* stmt = cache_->Take(sql);
    if (stmt == nullptr) {
      // Persistent: the statement is expected to be reused.
      int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                  SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      if (rc != SQLITE_OK) return ErrorFrom(db_, rc, "prepare");
    }
    return Statement(std::make_unique<SqliteStatement>(db_, stmt, cache_.get()));
  }

  absl::Status Begin() override { return Exec("BEGIN IMMEDIATE"); }

 private:
  sqlite3* db_;
  std::unique_ptr<StatementCache> cache_ = std::make_unique<StatementCache>();
};

}  // namespace

absl::StatusOr<std::unique_ptr<Database>> OpenSqlite(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = absl::InternalError(
        absl::StrCat("sqlite open ", path, ": ", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    sqlite3_close(db);
    return status;
  }
  auto database = std::make_unique<SqliteDatabase>(db);
  sqlite3_busy_timeout(db, 5000);
  // WAL + FULL: a COMMIT returns only after the log is fsync'd.
  absl::Status status = database->Exec(
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
  if (!status.ok()) return status;
  return std::unique_ptr<Database>(std::move(database));
}

absl::Status Statement::Run() {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

std::string SchemaFor(Dialect dialect, std::string_view schema) {
  std::string out(schema);
  if (dialect == Dialect::kSqlite) return out;
  out = absl::StrReplaceAll(out, {{"INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY"}});
  out = absl::StrReplaceAll(out, {{"INTEGER", "BIGINT"}, {"BLOB", "BYTEA"}});
  return out;
}

absl::Status CreateSchema(Database& db, std::string_view schema) {
  const std::string translated = SchemaFor(db.dialect(), schema);
  for (absl::string_view statement : absl::StrSplit(translated, ';')) {
    if (absl::StripAsciiWhitespace(statement).empty()) continue;
    absl::Status status;
    for (int attempt = 1; attempt <= 5; ++attempt) {
      status = db.Exec(std::string_view(statement.data(), statement.size()));
      if (!absl::IsAborted(status)) break;
      absl::SleepFor(absl::Milliseconds(100 * attempt));
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status AddColumnIfMissing(Database& db, std::string_view table, std::string_view column,
                                std::string_view type) {
  const bool postgres = db.dialect() == Dialect::kPostgres;
  absl::StatusOr<Statement> present =
      db.Prepare(postgres ? "SELECT 1 FROM information_schema.columns WHERE table_schema = "
                            "current_schema() AND table_name = ?1 AND column_name = ?2"
                          : "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2");
  if (!present.ok()) return present.status();
  present->Bind(1, table);
  present->Bind(2, column);
  absl::StatusOr<bool> found = present->Step();
  if (!found.ok()) return found.status();
  if (*found) return absl::OkStatus();
  const std::string alter =
      absl::StrCat("ALTER TABLE ", std::string(table), " ADD COLUMN ",
                   postgres ? "IF NOT EXISTS " : "", std::string(column), " ",
                   SchemaFor(db.dialect(), type));
  absl::Status status;
  for (int attempt = 1; attempt <= 5; ++attempt) {
    status = db.Exec(alter);
    if (!absl::IsAborted(status)) break;
    absl::SleepFor(absl::Milliseconds(100 * attempt));
  }
  return status;
}

bool IsPostgresTarget(std::string_view target) {
  return target.starts_with("postgresql://") || target.starts_with("postgres://");
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& target) {
  if (IsPostgresTarget(target)) return OpenPostgres(target);
  return OpenSqlite(target);
}

}  // namespace casebridge::sql
