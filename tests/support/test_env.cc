#include "tests/support/test_env.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

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
