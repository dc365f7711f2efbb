#include "tests/support/kafka_reader.h"

#include <cstdio>
#include <iostream>
#include <sys/wait.h>

#include "services/common/kafka/consumer.h"
#include "tests/support/test_env.h"

namespace casebridge::testing {

casebridge::config::v1::KafkaConfig TestKafkaConfig() {
  casebridge::config::v1::KafkaConfig config;
  config.set_bootstrap_servers(KafkaBootstrap());
  config.mutable_delivery_timeout()->set_seconds(15);
  return config;
}

std::vector<kafka::Record> ReadTopic(
    const std::string& topic, const std::function<bool(const std::vector<kafka::Record>&)>& done,
    absl::Duration timeout) {
  auto consumer = kafka::NewKafkaConsumer(TestKafkaConfig(), UniqueName("test-reader"), {topic});
  if (!consumer.ok()) {
    std::cerr << "ReadTopic: " << consumer.status() << "\n";
    return {};
  }
  std::vector<kafka::Record> records;
  const absl::Time deadline = absl::Now() + timeout;
  while (!done(records) && absl::Now() < deadline) {
    if (auto record = (*consumer)->Poll(absl::Milliseconds(200)); record.has_value()) {
      records.push_back(std::move(*record));
    }
  }
  (*consumer)->Close();
  return records;
}

std::vector<kafka::Record> ReadAtLeast(const std::string& topic, size_t count,
                                       absl::Duration settle, absl::Duration timeout) {
  absl::Time settled_at = absl::InfiniteFuture();
  return ReadTopic(
      topic,
      [&](const std::vector<kafka::Record>& records) {
        if (records.size() < count) return false;
        if (settled_at == absl::InfiniteFuture()) settled_at = absl::Now() + settle;
        return absl::Now() >= settled_at;
      },
      timeout + settle);
}

std::string RunCommand(const std::string& command, int* exit_code) {
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    *exit_code = -1;
    return output;
  }
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return output;
}

}  // namespace casebridge::testing
