// A Kafka record as casebridge produces and consumes it, free of librdkafka
// types so that services and tests can use it without linking librdkafka.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace casebridge::kafka {

struct Header {
  std::string key;
  std::string value;
  bool operator==(const Header&) const = default;
};

struct Record {
  std::string topic;
  std::string key;
  std::string value;
  std::vector<Header> headers;
  // Set on consumed records.
  int32_t partition = -1;
  int64_t offset = -1;

  // Returns the value of the first header named `key`, if any.
  std::optional<std::string> HeaderValue(absl::string_view key) const {
    for (const Header& h : headers) {
      if (h.key == key) return h.value;
    }
    return std::nullopt;
  }
};

}  // namespace casebridge::kafka
