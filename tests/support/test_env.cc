#include "tests/support/test_env.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "services/common/sql.h"

namespace casebridge::testing {

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/casebridge-test-XXXXXX");
  char* made = mkdtemp(pattern.data());
  if (made == nullptr) {
    std::cerr << "mkdtemp failed\n";
    std::abort();
  }
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string KafkaBootstrap() {
  const char* dir = std::getenv("CASEBRIDGE_KAFKA_DIR");
  if (dir == nullptr) {
    std::cerr << "CASEBRIDGE_KAFKA_DIR is not set: run integration tests through ctest "
                 "(the kafka_broker fixture starts the broker)\n";
    std::abort();
  }
  std::ifstream in(absl::StrCat(dir, "/bootstrap"));
  std::string line;
  if (!std::getline(in, line) || line.empty()) {
    std::cerr << "no broker bootstrap in " << dir << "/bootstrap: did kafka_broker_start run?\n";
    std::abort();
  }
  return std::string(absl::StripAsciiWhitespace(line));
}

bool UsePostgres() { return std::getenv("CASEBRIDGE_POSTGRES_DIR") != nullptr; }

std::string PostgresUrl() {
  const char* dir = std::getenv("CASEBRIDGE_POSTGRES_DIR");
  if (dir == nullptr) {
    std::cerr << "CASEBRIDGE_POSTGRES_DIR is not set: run PostgreSQL tests through ctest "
                 "(the postgres_server fixture starts the server)\n";
    std::abort();
  }
  std::ifstream in(absl::StrCat(dir, "/url"));
  std::string line;
  if (!std::getline(in, line) || line.empty()) {
    std::cerr << "no PostgreSQL URL in " << dir << "/url: did postgres_server_start run?\n";
    std::abort();
  }
  return std::string(absl::StripAsciiWhitespace(line));
}

std::string TestStore(const TempDir& dir, const std::string& name) {
  if (!UsePostgres()) return dir.File(name);
  static std::mutex mu;
  static std::map<std::string, std::string>* databases = new std::map<std::string, std::string>();
  std::lock_guard<std::mutex> lock(mu);
  const std::string key = dir.File(name);
  if (auto it = databases->find(key); it != databases->end()) return it->second;
  const std::string base = PostgresUrl();
  // Database names: lower case, unique per process and call.
  std::string database = absl::AsciiStrToLower(UniqueName("t"));
  absl::StrReplaceAll({{"-", "_"}}, &database);
  absl::StatusOr<std::unique_ptr<sql::Database>> admin = sql::Database::Open(base);
  if (!admin.ok() || !(*admin)->Exec(absl::StrCat("CREATE DATABASE ", database)).ok()) {
    std::cerr << "cannot create a test database on " << base << "\n";
    std::abort();
  }
  const std::string url = absl::StrCat(base.substr(0, base.rfind('/') + 1), database);
  (*databases)[key] = url;
  return url;
}

std::string UniqueName(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return absl::StrCat(prefix, "-", getpid(), "-", counter.fetch_add(1));
}

std::string SourceDir() {
  const char* dir = std::getenv("CASEBRIDGE_SOURCE_DIR");
  return dir != nullptr ? dir : ".";
}

std::string BinaryDir() {
  const char* dir = std::getenv("CASEBRIDGE_BINARY_DIR");
  return dir != nullptr ? dir : ".";
}

}  // namespace casebridge::testing
