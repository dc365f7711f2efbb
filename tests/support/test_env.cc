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

namespace {

// The first line of `file` in the directory named by `$env`, which the ctest
// fixture `fixture` writes; aborts with a clear message without it.
std::string FixtureValue(const char* env, const char* file, const char* fixture) {
  const char* dir = std::getenv(env);
  if (dir == nullptr) {
    std::cerr << env << " is not set: run these tests through ctest (the " << fixture
              << " fixture starts the server)\n";
    std::abort();
  }
  std::ifstream in(absl::StrCat(dir, "/", file));
  std::string line;
  if (!std::getline(in, line) || line.empty()) {
    std::cerr << "nothing in " << dir << "/" << file << ": did " << fixture << " start?\n";
    std::abort();
  }
  return std::string(absl::StripAsciiWhitespace(line));
}

}  // namespace

std::string KafkaBootstrap() {
  return FixtureValue("CASEBRIDGE_KAFKA_DIR", "bootstrap", "kafka_broker");
}

bool UsePostgres() { return std::getenv("CASEBRIDGE_POSTGRES_DIR") != nullptr; }

std::string PostgresUrl() {
  return FixtureValue("CASEBRIDGE_POSTGRES_DIR", "url", "postgres_server");
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

// The environment wins; else the trees this test binary was built from
// (ctest's ENVIRONMENT does not always reach every discovered test).
std::string SourceDir() {
  const char* dir = std::getenv("CASEBRIDGE_SOURCE_DIR");
  return dir != nullptr ? dir : CASEBRIDGE_BUILT_SOURCE_DIR;
}

std::string BinaryDir() {
  const char* dir = std::getenv("CASEBRIDGE_BINARY_DIR");
  return dir != nullptr ? dir : CASEBRIDGE_BUILT_BINARY_DIR;
}

}  // namespace casebridge::testing
