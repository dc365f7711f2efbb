// The test environment: temporary directories and the real broker started
// by the `kafka_broker_start` ctest fixture.
#pragma once

#include <string>

#include "absl/time/time.h"

namespace casebridge::testing {

// A fresh, empty directory under $TMPDIR, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // `path()/name`.
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Returns the bootstrap address of the test broker, read from
// $CASEBRIDGE_KAFKA_DIR/bootstrap. Aborts the test binary with a clear
// message if the fixture did not start one: integration tests must not
// silently pass without a broker.
std::string KafkaBootstrap();

// True when this test binary runs against the PostgreSQL server of the
// `postgres_server` ctest fixture ($CASEBRIDGE_POSTGRES_DIR set).
bool UsePostgres();

// Returns the PostgreSQL URL of the fixture's server, database "casebridge".
// Aborts like `KafkaBootstrap` without the fixture.
std::string PostgresUrl();

// The store a test opens as `name`: with `UsePostgres()` a database of its
// own on the fixture's server (created on the first call for `dir` and
// `name`, the same URL after), else the SQLite file `dir.File(name)`. Store
// tests run against both: as `unit` tests on SQLite, and again under the
// `postgres` label.
std::string TestStore(const TempDir& dir, const std::string& name);

// A name unique to this process and call, for topics and consumer groups
// (tests share one broker).
std::string UniqueName(const std::string& prefix);

// The source and build trees ($CASEBRIDGE_SOURCE_DIR, $CASEBRIDGE_BINARY_DIR).
std::string SourceDir();
std::string BinaryDir();

// Polls `condition` every 20 ms until it returns true or `timeout` passes.
// Returns whether it became true. Tests use this instead of sleeping.
template <typename F>
bool PollUntil(F condition, absl::Duration timeout = absl::Seconds(30));

}  // namespace casebridge::testing

#include "absl/time/clock.h"

namespace casebridge::testing {
template <typename F>
bool PollUntil(F condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (condition()) return true;
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}
}  // namespace casebridge::testing
