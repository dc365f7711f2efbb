#include "services/common/observability.h"

#include <grpcpp/health_check_service_interface.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <prometheus/exposer.h>

#include <cstdio>
#include <ctime>
#include <exception>
#include <optional>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/common/grpc_server.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"

namespace casebridge {
namespace {

using ::casebridge::config::v1::ObservabilityConfig;

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::Status CheckHostPort(absl::string_view field, const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(absl::string_view(address).substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", address, "\" is not host:port (e.g. \"0.0.0.0:9464\")"));
  }
  return absl::OkStatus();
}

std::optional<LogLevel> ParseLogLevel(const std::string& level) {
  if (level.empty() || level == "info") return LogLevel::kInfo;
  if (level == "debug") return LogLevel::kDebug;
  if (level == "warning") return LogLevel::kWarning;
  if (level == "error") return LogLevel::kError;
  return std::nullopt;
}

}  // namespace

absl::Status ValidateObservabilityConfig(const ObservabilityConfig& config) {
  if (!config.metrics_address().empty()) {
    RETURN_IF_ERROR(CheckHostPort("observability.metrics_address", config.metrics_address()));
  }
  if (!config.health_address().empty()) {
    RETURN_IF_ERROR(CheckHostPort("observability.health_address", config.health_address()));
  }
  if (config.has_kafka_check_interval() &&
      FromProto(config.kafka_check_interval()) < absl::Milliseconds(100)) {
    return absl::InvalidArgumentError(
        "observability.kafka_check_interval: must be at least 0.1s");
  }
  if (!ParseLogLevel(config.log_level()).has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("observability.log_level: \"",
                                                   config.log_level(),
                                                   "\" is not one of debug, info, warning, error"));
  }
  return absl::OkStatus();
}

std::vector<std::pair<std::string, std::string>> ConfiguredCertificates(
    const casebridge::config::v1::ServerConfig& server,
    const casebridge::config::v1::KafkaConfig& kafka) {
  std::vector<std::pair<std::string, std::string>> files;
  auto add = [&](const char* field, const std::string& path) {
    if (!path.empty()) files.emplace_back(field, path);
  };
  if (server.has_tls()) {
    add("server.tls.cert_file", server.tls().cert_file());
    add("server.tls.client_ca_file", server.tls().client_ca_file());
  }
  if (kafka.has_tls()) {
    add("kafka.tls.ca_file", kafka.tls().ca_file());
    add("kafka.tls.cert_file", kafka.tls().cert_file());
  }
  return files;
}

absl::StatusOr<absl::Time> CertificateExpiry(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  X509* certificate = PEM_read_X509(file, nullptr, nullptr, nullptr);
  std::fclose(file);
  if (certificate == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no PEM certificate"));
  }
  std::tm tm{};
  const bool ok = ASN1_TIME_to_tm(X509_get0_notAfter(certificate), &tm) == 1;
  X509_free(certificate);
  if (!ok) return absl::InvalidArgumentError(absl::StrCat(path, ": unreadable notAfter"));
  return absl::FromTimeT(timegm(&tm));
}

absl::StatusOr<std::unique_ptr<Observability>> Observability::Start(
    const ObservabilityConfig& config, ObservabilityOptions options, grpc::Server* main_server) {
  RETURN_IF_ERROR(ValidateObservabilityConfig(config));
  SetLogLevel(*ParseLogLevel(config.log_level()));
  std::unique_ptr<Observability> o(new Observability());
  o->config_ = config;
  o->options_ = std::move(options);
  o->main_server_ = main_server;
  if (config.has_kafka_check_interval()) {
    o->check_interval_ = FromProto(config.kafka_check_interval());
  }
  metrics::SetService(o->options_.service);

  // The probe server: plain text, health only (the kubelet's gRPC probe
  // cannot present a client certificate). The health service is enabled
  // process-wide by StartGrpcServer.
  if (!config.health_address().empty()) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort(config.health_address(), grpc::InsecureServerCredentials(),
                             &o->health_port_);
    o->health_server_ = builder.BuildAndStart();
    if (o->health_server_ == nullptr || o->health_port_ == 0) {
      return absl::UnavailableError(absl::StrCat("observability.health_address: cannot listen on ",
                                                 config.health_address()));
    }
    if (!config.health_port_file().empty()) {
      RETURN_IF_ERROR(WritePortFile("observability.health_port_file", config.health_port_file(),
                                    o->health_port_));
    }
  }

  // Kafka once now, so that the first probe already tells the truth.
  o->CheckKafka();

  Observability* self = o.get();
  o->gauges_.emplace_back("casebridge_ready",
                          "1 while the service is ready for traffic (Kafka reachable, not "
                          "shutting down), else 0.",
                          [self] { return self->ready_ ? 1.0 : 0.0; });
  o->gauges_.emplace_back("casebridge_kafka_connected",
                          "1 if the last metadata request to Kafka succeeded, else 0.",
                          [self] { return self->kafka_connected_ ? 1.0 : 0.0; });
  if (kafka::Publisher* publisher = o->options_.publisher; publisher != nullptr) {
    o->gauges_.emplace_back("casebridge_kafka_producer_queue_messages",
                            "Records in the producer's queue not yet acknowledged by Kafka.",
                            [publisher] { return static_cast<double>(publisher->QueueLength()); });
  }
  std::vector<metrics::Sample> expiries;
  std::set<std::string> seen;  // one series per file, however many fields name it
  for (const auto& [field, path] : o->options_.certificates) {
    if (!seen.insert(path).second) continue;
    absl::StatusOr<absl::Time> expiry = CertificateExpiry(path);
    if (!expiry.ok()) {
      LogWarning("certificate expiry unknown", {{"field", field}, {"error", std::string(expiry.status().message())}});
      continue;
    }
    expiries.push_back(metrics::Sample{{{"file", path}}, absl::ToDoubleSeconds(*expiry - absl::UnixEpoch())});
  }
  if (!expiries.empty()) {
    o->gauges_.emplace_back(
        "casebridge_certificate_expiry_timestamp_seconds",
        "notAfter of each TLS certificate the service loaded at start, in unix seconds.",
        [expiries] { return expiries; });
  }

  if (!config.metrics_address().empty()) {
    try {
      o->exposer_ = std::make_unique<prometheus::Exposer>(config.metrics_address(), 1);
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat("observability.metrics_address: cannot listen on ",
                                                 config.metrics_address(), ": ", e.what()));
    }
    for (const auto& collectable : metrics::Collectables()) {
      o->exposer_->RegisterCollectable(collectable);
    }
    const std::vector<int> ports = o->exposer_->GetListeningPorts();
    o->metrics_port_ = ports.empty() ? 0 : ports.front();
    if (!config.metrics_port_file().empty()) {
      RETURN_IF_ERROR(WritePortFile("observability.metrics_port_file",
                                    config.metrics_port_file(), o->metrics_port_));
    }
  }

  o->checker_ = std::thread([self] {
    std::unique_lock<std::mutex> lock(self->mu_);
    while (!self->wake_.wait_for(lock, absl::ToChronoMilliseconds(self->check_interval_),
                                 [self] { return self->stopping_; })) {
      lock.unlock();
      self->CheckKafka();
      lock.lock();
    }
  });
  LogInfo("observability ready", {{"metrics_port", std::to_string(o->metrics_port_)},
                                  {"health_port", std::to_string(o->health_port_)},
                                  {"ready", o->ready_ ? "true" : "false"}});
  return o;
}

Observability::~Observability() {
  Shutdown();
  // Scrapes stop before the objects the gauges read go away.
  exposer_.reset();
  gauges_.clear();
  if (health_server_ != nullptr) health_server_->Shutdown(std::chrono::system_clock::now());
}

void Observability::CheckKafka() {
  absl::Status status = absl::OkStatus();
  if (options_.publisher != nullptr) {
    status = options_.publisher->CheckConnectivity(std::min(check_interval_, absl::Seconds(5)));
  }
  const bool connected = status.ok();
  const bool was_connected = kafka_connected_.exchange(connected);
  if (!connected && (was_connected || !checked_once_)) {
    LogWarning("kafka unreachable: not ready", {{"error", std::string(status.message())}});
  } else if (connected && !was_connected && checked_once_) {
    LogInfo("kafka reachable again: ready");
  }
  checked_once_ = true;
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  Publish(connected);
}

void Observability::Publish(bool ready) {
  ready_ = ready;
  for (grpc::Server* server : {main_server_, health_server_.get()}) {
    if (server == nullptr) continue;
    for (const std::string& name : options_.readiness_names) {
      server->GetHealthCheckService()->SetServingStatus(name, ready);
    }
  }
  // Liveness fails only when restarting is the cure: the producer hit a
  // fatal error and will not recover by itself.
  const bool alive = options_.publisher == nullptr || options_.publisher->Healthy();
  if (!alive && !reported_fatal_) {
    reported_fatal_ = true;
    LogError("kafka producer failed for good: liveness NOT_SERVING (restart the service)");
  }
  for (grpc::Server* server : {main_server_, health_server_.get()}) {
    if (server != nullptr) server->GetHealthCheckService()->SetServingStatus("", alive);
  }
}

void Observability::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    ready_ = false;
    // NOT_SERVING for every name from now on; later updates are ignored.
    for (grpc::Server* server : {main_server_, health_server_.get()}) {
      if (server != nullptr) server->GetHealthCheckService()->Shutdown();
    }
  }
  wake_.notify_all();
  if (checker_.joinable()) checker_.join();
}

}  // namespace casebridge
