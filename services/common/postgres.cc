// The PostgreSQL backend of sql.h, over libpq.
//
// Statements are prepared on the server once per connection and SQL text
// (`PQprepare`, named "cb1", "cb2", …) and run with `PQexecPrepared`: the
// extended protocol, so parameters never mix with the SQL text, and the
// server parses and plans each text once. Text parameters, except blobs
// which go in binary; text results, bytea decoded with `PQunescapeBytea`.
//
// A lost connection is reconnected before the next statement. If it was lost
// inside a transaction, every statement up to the `COMMIT` or `ROLLBACK`
// fails and the `COMMIT` fails too (kUnavailable): the server rolled the
// transaction back, and nothing of it may run outside it.
#include <libpq-fe.h>

#include <cstdlib>
#include <map>
#include <string>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/common/sql.h"
#include "services/common/status_macros.h"

namespace casebridge::sql {
namespace {

// `?N` → `$N`: the SQL casebridge writes has no `?` elsewhere.
std::string ToPostgresParameters(std::string_view sql) {
  std::string out(sql);
  for (size_t i = 0; i + 1 < out.size(); ++i) {
    if (out[i] == '?' && absl::ascii_isdigit(static_cast<unsigned char>(out[i + 1]))) out[i] = '$';
  }
  return out;
}

absl::Status StatusFromResult(const PGresult* result, PGconn* conn, std::string_view what) {
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary =
      result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  // The primary message names the constraint, never the values (those are in
  // the detail, which is not used).
  std::string message = absl::StrCat(
      "postgresql ", absl::string_view(what.data(), what.size()), ": ",
      primary != nullptr ? primary : std::string(absl::StripAsciiWhitespace(PQerrorMessage(conn))));
  const std::string_view code = state != nullptr ? state : "";
  if (code.starts_with("23")) return absl::AlreadyExistsError(message);
  if (code == "40001" || code == "40P01") return absl::AbortedError(message);
  if (code.starts_with("08") || code.starts_with("57P") || PQstatus(conn) != CONNECTION_OK) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

class PostgresDatabase;

class PostgresStatement final : public StatementImpl {
 public:
  PostgresStatement(PostgresDatabase& db, std::string sql) : db_(db), sql_(std::move(sql)) {}

  void Bind(int index, int64_t value) override { Set(index, std::to_string(value), 0); }
  void Bind(int index, std::string_view text) override { Set(index, std::string(text), 0); }
  void BindBlob(int index, std::string_view bytes) override { Set(index, std::string(bytes), 1); }
  void BindNull(int index) override { Set(index, std::nullopt, 0); }

  absl::StatusOr<bool> Step() override;
  void Reset() override {
    result_.reset();
    row_ = -1;
    values_.clear();
    formats_.clear();
  }

  int64_t ColumnInt64(int column) const override {
    if (ColumnIsNull(column)) return 0;
    return std::strtoll(PQgetvalue(result_.get(), row_, column), nullptr, 10);
  }
  std::string ColumnText(int column) const override {
    if (ColumnIsNull(column)) return {};
    return std::string(PQgetvalue(result_.get(), row_, column),
                       static_cast<size_t>(PQgetlength(result_.get(), row_, column)));
  }
  std::string ColumnBlob(int column) const override {
    if (ColumnIsNull(column)) return {};
    size_t length = 0;
    unsigned char* bytes = PQunescapeBytea(
        reinterpret_cast<const unsigned char*>(PQgetvalue(result_.get(), row_, column)), &length);
    if (bytes == nullptr) return {};
    std::string out(reinterpret_cast<const char*>(bytes), length);
    PQfreemem(bytes);
    return out;
  }
  bool ColumnIsNull(int column) const override {
    return result_ == nullptr || row_ < 0 || PQgetisnull(result_.get(), row_, column) != 0;
  }

 private:
  void Set(int index, std::optional<std::string> value, int format) {
    if (index < 1) return;
    const size_t at = static_cast<size_t>(index - 1);
    if (values_.size() <= at) {
      values_.resize(at + 1);
      formats_.resize(at + 1, 0);
    }
    values_[at] = std::move(value);
    formats_[at] = format;
  }

  PostgresDatabase& db_;
  const std::string sql_;
  std::vector<std::optional<std::string>> values_;
  std::vector<int> formats_;
  Result result_;
  int row_ = -1;
};

class PostgresDatabase final : public Database {
 public:
  explicit PostgresDatabase(PGconn* conn) : conn_(conn) {}
  ~PostgresDatabase() override { PQfinish(conn_); }

  Dialect dialect() const override { return Dialect::kPostgres; }

  absl::Status Exec(std::string_view sql) override {
    const absl::string_view text(sql.data(), sql.size());
    const bool commit = absl::EqualsIgnoreCase(text, "COMMIT");
    const bool rollback = absl::EqualsIgnoreCase(text, "ROLLBACK");
    if (commit || rollback) {
      const bool lost = lost_transaction_;
      lost_transaction_ = false;
      in_transaction_ = false;
      if (lost) {
        return rollback ? absl::OkStatus()
                        : absl::UnavailableError(
                              "postgresql commit: the connection was lost; the transaction was "
                              "rolled back");
      }
    }
    RETURN_IF_ERROR(Usable("exec"));
    Result result(PQexec(conn_, std::string(sql).c_str()));
    const ExecStatusType status = PQresultStatus(result.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      absl::Status error = StatusFromResult(result.get(), conn_, commit ? "commit" : "exec");
      NoteFailure();
      return error;
    }
    if (absl::EqualsIgnoreCase(text, "BEGIN")) in_transaction_ = true;
    return absl::OkStatus();
  }

  absl::StatusOr<Statement> Prepare(std::string_view sql) override {
    return Statement(std::make_unique<PostgresStatement>(*this, ToPostgresParameters(sql)));
  }

  absl::Status Begin() override { return Exec("BEGIN"); }

  absl::StatusOr<Result> Run(const std::string& sql,
                             const std::vector<std::optional<std::string>>& values,
                             const std::vector<int>& formats) {
    RETURN_IF_ERROR(Usable("statement"));
    std::vector<const char*> pointers;
    std::vector<int> lengths;
    for (const auto& value : values) {
      pointers.push_back(value.has_value() ? value->data() : nullptr);
      lengths.push_back(value.has_value() ? static_cast<int>(value->size()) : 0);
    }
    ASSIGN_OR_RETURN(const std::string* name, PreparedName(sql));
    Result result(PQexecPrepared(conn_, name->c_str(), static_cast<int>(values.size()),
                                 pointers.data(), lengths.data(), formats.data(),
                                 /*resultFormat=*/0));
    const ExecStatusType status = PQresultStatus(result.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      absl::Status error = StatusFromResult(result.get(), conn_, "statement");
      NoteFailure();
      return error;
    }
    return result;
  }

 private:
  // The server-side name of `sql`, preparing it on first use.
  absl::StatusOr<const std::string*> PreparedName(const std::string& sql) {
    auto it = prepared_.find(sql);
    if (it != prepared_.end()) return &it->second;
    std::string name = absl::StrCat("cb", prepared_.size() + 1);
    Result result(PQprepare(conn_, name.c_str(), sql.c_str(), 0, nullptr));
    if (PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
      absl::Status error = StatusFromResult(result.get(), conn_, "prepare");
      NoteFailure();
      return error;
    }
    return &prepared_.emplace(sql, std::move(name)).first->second;
  }

  // Reconnects a lost connection; refuses inside a transaction it lost.
  absl::Status Usable(const char* what) {
    if (lost_transaction_) {
      return absl::UnavailableError(absl::StrCat(
          "postgresql ", what, ": the connection was lost inside this transaction"));
    }
    if (PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
    PQreset(conn_);
    prepared_.clear();  // a new session has none
    if (PQstatus(conn_) != CONNECTION_OK) {
      return absl::UnavailableError(
          absl::StrCat("postgresql: cannot reconnect: ",
                       absl::StripAsciiWhitespace(PQerrorMessage(conn_))));
    }
    return absl::OkStatus();
  }
  void NoteFailure() {
    if (in_transaction_ && PQstatus(conn_) != CONNECTION_OK) lost_transaction_ = true;
  }

  PGconn* conn_;
  // SQL text → its prepared statement's name on this connection.
  std::map<std::string, std::string> prepared_;
  bool in_transaction_ = false;
  bool lost_transaction_ = false;
};

absl::StatusOr<bool> PostgresStatement::Step() {
  if (result_ == nullptr) {
    // Unbound trailing parameters are NULL.
    absl::StatusOr<Result> result = db_.Run(sql_, values_, formats_);
    if (!result.ok()) return result.status();
    result_ = std::move(*result);
    row_ = -1;
  }
  ++row_;
  return row_ < PQntuples(result_.get());
}

}  // namespace

absl::StatusOr<std::unique_ptr<Database>> OpenPostgres(const std::string& url) {
  PGconn* conn = PQconnectdb(url.c_str());
  if (conn == nullptr) return absl::InternalError("postgresql: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    // libpq's message names host and port, never the password.
    absl::Status status = absl::UnavailableError(absl::StrCat(
        "postgresql connect: ", absl::StripAsciiWhitespace(PQerrorMessage(conn))));
    PQfinish(conn);
    return status;
  }
  auto database = std::make_unique<PostgresDatabase>(conn);
  // Quiet the NOTICEs of `CREATE … IF NOT EXISTS` on stderr.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  if (absl::Status status = database->Exec("SET client_min_messages = warning"); !status.ok()) {
    return status;
  }
  return std::unique_ptr<Database>(std::move(database));
}

}  // namespace casebridge::sql
