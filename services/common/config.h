// Loading a service's configuration: one JSON file in the canonical proto3
// JSON mapping, parsed strictly into the service's config message (unknown
// fields are errors, as typos must fail at start-up).
#pragma once

#include <fstream>
#include <sstream>
#include <string>

#include <google/protobuf/util/json_util.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace casebridge {

// Parses `json` into a `T`. Returns kInvalidArgument with protobuf's message,
// which names the offending field, if it does not parse.
template <typename T>
absl::StatusOr<T> ParseConfig(const std::string& json) {
  T config;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(json, &config, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", std::string(status.message())));
  }
  return config;
}

// Reads and parses the file at `path`. kNotFound if it cannot be read.
template <typename T>
absl::StatusOr<T> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("config: cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  absl::StatusOr<T> config = ParseConfig<T>(buffer.str());
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

}  // namespace casebridge
