#include "tests/support/prometheus_text.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace casebridge::testing {

absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect to 127.0.0.1:", port));
  }
  const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::InternalError("send");
  }
  std::string response;
  char buffer[8192];
  while (true) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    response.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  const size_t end_of_headers = response.find("\r\n\r\n");
  if (end_of_headers == std::string::npos) {
    return absl::InternalError(absl::StrCat("no HTTP response: ", response.substr(0, 200)));
  }
  const std::string status_line = response.substr(0, response.find("\r\n"));
  if (!absl::StrContains(status_line, " 200 ")) {
    return absl::InternalError(absl::StrCat("HTTP status: ", status_line));
  }
  return response.substr(end_of_headers + 4);
}

namespace {

// Parses `{a="x",b="y\"z"}` starting at text[pos] == '{'; moves pos past '}'.
bool ParseLabels(absl::string_view text, size_t& pos, std::map<std::string, std::string>& labels) {
  ++pos;  // '{'
  while (pos < text.size()) {
    if (text[pos] == '}') {
      ++pos;
      return true;
    }
    const size_t eq = text.find('=', pos);
    if (eq == absl::string_view::npos || eq + 1 >= text.size() || text[eq + 1] != '"') return false;
    std::string name(absl::StripAsciiWhitespace(text.substr(pos, eq - pos)));
    std::string value;
    size_t i = eq + 2;
    for (; i < text.size() && text[i] != '"'; ++i) {
      if (text[i] == '\\' && i + 1 < text.size()) {
        ++i;
        value.push_back(text[i] == 'n' ? '\n' : text[i]);
      } else {
        value.push_back(text[i]);
      }
    }
    if (i >= text.size()) return false;
    labels[name] = value;
    pos = i + 1;
    if (pos < text.size() && text[pos] == ',') ++pos;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::vector<MetricSample>> ParsePrometheusText(const std::string& text) {
  std::vector<MetricSample> samples;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    if (absl::StartsWith(line, "#")) continue;
    MetricSample sample;
    size_t pos = 0;
    while (pos < line.size() && line[pos] != '{' && line[pos] != ' ') ++pos;
    sample.name = std::string(line.substr(0, pos));
    if (pos < line.size() && line[pos] == '{' && !ParseLabels(line, pos, sample.labels)) {
      return absl::InvalidArgumentError(absl::StrCat("bad labels: ", line));
    }
    std::vector<absl::string_view> rest =
        absl::StrSplit(line.substr(pos), ' ', absl::SkipEmpty());
    if (sample.name.empty() || rest.empty() || rest.size() > 2) {
      return absl::InvalidArgumentError(absl::StrCat("bad sample: ", line));
    }
    const std::string value(rest[0]);
    char* end = nullptr;
    sample.value = std::strtod(value.c_str(), &end);
    if (end == value.c_str() || *end != '\0') {
      return absl::InvalidArgumentError(absl::StrCat("bad value: ", line));
    }
    samples.push_back(std::move(sample));
  }
  return samples;
}

std::vector<std::string> FamilyNames(const std::string& text) {
  std::vector<std::string> names;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (!absl::ConsumePrefix(&line, "# TYPE ")) continue;
    names.emplace_back(line.substr(0, line.find(' ')));
  }
  return names;
}

std::optional<double> SumOf(const std::vector<MetricSample>& samples, const std::string& name,
                            const std::map<std::string, std::string>& labels) {
  std::optional<double> sum;
  for (const MetricSample& sample : samples) {
    if (sample.name != name) continue;
    bool match = true;
    for (const auto& [key, value] : labels) {
      auto it = sample.labels.find(key);
      if (it == sample.labels.end() || it->second != value) {
        match = false;
        break;
      }
    }
    if (match) sum = sum.value_or(0) + sample.value;
  }
  return sum;
}

}  // namespace casebridge::testing

#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/rpc_method.h>

namespace casebridge::testing {

absl::StatusOr<int> HealthStatus(const std::shared_ptr<grpc::Channel>& channel,
                                 const std::string& service) {
  // HealthCheckRequest { string service = 1; }
  std::string request_bytes;
  request_bytes.push_back(0x0A);
  request_bytes.push_back(static_cast<char>(service.size()));  // names < 128 bytes
  request_bytes += service;
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  const grpc::Status status = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
      channel.get(),
      grpc::internal::RpcMethod("/grpc.health.v1.Health/Check",
                                grpc::internal::RpcMethod::NORMAL_RPC),
      &context, request, &response);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        status.error_message());
  }
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return absl::InternalError("unreadable response");
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  // HealthCheckResponse { ServingStatus status = 1; } — absent means 0.
  if (bytes.empty()) return 0;
  if (bytes.size() != 2 || bytes[0] != 0x08) return absl::InternalError("unexpected response");
  return static_cast<int>(bytes[1]);
}

}  // namespace casebridge::testing
