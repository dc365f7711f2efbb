// Scraping a service's Prometheus endpoint in tests: an HTTP GET over a
// plain socket, and a parser for the text exposition format (version
// 0.0.4) that keeps every sample with its labels.
//
//   absl::StatusOr<std::string> text = HttpGet(port, "/metrics");
//   std::vector<MetricSample> samples = ParsePrometheusText(*text);
//   double ok = SumOf(samples, "grpc_server_handled_total",
//                     {{"grpc_method", "RecordDecision"}, {"grpc_code", "OK"}});
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace casebridge::testing {

// GET http://127.0.0.1:<port><path> (HTTP/1.0). Returns the body of a 200
// response; kUnavailable if the connection fails, kInternal otherwise.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

struct MetricSample {
  std::string name;  // with its suffix, e.g. "grpc_server_handling_seconds_bucket"
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Every sample line of `text`; comments (# HELP, # TYPE) skipped. A line
// that does not parse is a kInvalidArgument error naming it.
absl::StatusOr<std::vector<MetricSample>> ParsePrometheusText(const std::string& text);

// The names in `# TYPE` lines, i.e. the metric families exposed.
std::vector<std::string> FamilyNames(const std::string& text);

// The sum of the samples named `name` whose labels include `labels`.
// std::nullopt if there is none.
std::optional<double> SumOf(const std::vector<MetricSample>& samples, const std::string& name,
                            const std::map<std::string, std::string>& labels = {});

}  // namespace casebridge::testing

#include <grpcpp/grpcpp.h>

namespace casebridge::testing {

// grpc.health.v1.Health/Check for `service` on `channel`, encoded by hand
// (two fields) so that the test needs no generated health stubs. Returns
// the serving status: 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN; or the
// call's error (NOT_FOUND for an unknown name).
absl::StatusOr<int> HealthStatus(const std::shared_ptr<grpc::Channel>& channel,
                                 const std::string& service);

}  // namespace casebridge::testing
