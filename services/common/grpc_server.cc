#include "services/common/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/server_interceptor.h>
#include <signal.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "descriptor_anchors.h"
#include "services/common/log.h"
#include "services/common/metrics.h"
#include "services/common/status_macros.h"
#include "services/common/tls_files.h"

namespace casebridge {
namespace {

using ::casebridge::common::PemKind;
using ::casebridge::common::ReadPemFile;

// Mutual TLS: the client must present a certificate that chains to
// `client_ca_file`; gRPC verifies it before any call reaches a service.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MutualTlsCredentials(
    const casebridge::config::v1::ServerTlsConfig& tls) {
  absl::StatusOr<std::string> cert =
      ReadPemFile("server.tls.cert_file", tls.cert_file(), PemKind::kCertificates);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key =
      ReadPemFile("server.tls.key_file", tls.key_file(), PemKind::kPrivateKey);
  if (!key.ok()) return key.status();
  if (absl::Status status = common::CheckKeyMatchesCertificate(
          "server.tls.cert_file", *cert, "server.tls.key_file", *key);
      !status.ok()) {
    return status;
  }
  absl::StatusOr<std::string> client_ca =
      ReadPemFile("server.tls.client_ca_file", tls.client_ca_file(), PemKind::kCertificates);
  if (!client_ca.ok()) return client_ca.status();

  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = *client_ca;
  options.pem_key_cert_pairs.push_back({*key, *cert});
  return grpc::SslServerCredentials(options);
}

}  // namespace

absl::Status ValidateServerSecurity(const casebridge::config::v1::ServerConfig& config) {
  if (config.has_tls() && config.insecure_development_mode()) {
    return absl::InvalidArgumentError(
        "server.insecure_development_mode: must not be set together with server.tls");
  }
  if (config.insecure_development_mode()) return absl::OkStatus();
  if (!config.has_tls()) {
    return absl::InvalidArgumentError(
        "server.tls: required (mutual TLS); set server.insecure_development_mode only for local "
        "development");
  }
  if (config.tls().cert_file().empty()) {
    return absl::InvalidArgumentError("server.tls.cert_file: required");
  }
  if (config.tls().key_file().empty()) {
    return absl::InvalidArgumentError("server.tls.key_file: required");
  }
  if (config.tls().client_ca_file().empty()) {
    return absl::InvalidArgumentError("server.tls.client_ca_file: required");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const casebridge::config::v1::ServerConfig& config) {
  if (absl::Status status = ValidateServerSecurity(config); !status.ok()) return status;
  if (config.insecure_development_mode()) return grpc::InsecureServerCredentials();
  return MutualTlsCredentials(config.tls());
}

absl::StatusOr<StartedServer> StartGrpcServer(const casebridge::config::v1::ServerConfig& config,
                                              const std::vector<grpc::Service*>& services,
                                              const std::vector<std::string>& health_names) {
  // Service-only proto files must be linked in for reflection to find them.
  (void)casebridge::proto::ServiceDescriptorAnchors();
  // Both are process-global and must run before a ServerBuilder exists.
  grpc::EnableDefaultHealthCheckService(true);
  if (!config.disable_reflection()) grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  // Each service fills its own default (WithDefaults) before this.
  if (config.listen_address().empty()) {
    return absl::InvalidArgumentError("server.listen_address: required");
  }
  const std::string& address = config.listen_address();
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = ServerCredentials(config);
  if (!credentials.ok()) return credentials.status();
  StartedServer started;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, *credentials, &started.port);
  builder.SetMaxReceiveMessageSize(config.max_receive_message_bytes() > 0
                                       ? config.max_receive_message_bytes()
                                       : 4 * 1024 * 1024);
  for (grpc::Service* service : services) builder.RegisterService(service);
  // Every RPC counted and timed (grpc_server_* series, services/common/metrics.h).
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(metrics::NewServerMetricsInterceptor());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  started.server = builder.BuildAndStart();
  if (started.server == nullptr || started.port == 0) {
    return absl::UnavailableError(absl::StrCat("server.listen_address: cannot listen on ", address));
  }
  for (const std::string& name : health_names) {
    started.server->GetHealthCheckService()->SetServingStatus(name, true);
  }
  if (config.insecure_development_mode()) {
    LogWarning(
        "INSECURE DEVELOPMENT MODE: gRPC serves plain text and does not authenticate callers; "
        "any caller may name itself (casebridge-dev-identity) or act as superuser. Never use "
        "this outside local development: configure server.tls",
        {{"port", std::to_string(started.port)}});
  }
  if (!config.port_file().empty()) {
    RETURN_IF_ERROR(WritePortFile("server.port_file", config.port_file(), started.port));
  }
  return started;
}

absl::Status WritePortFile(absl::string_view field, const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << port << "\n";
    if (!out) return absl::InternalError(absl::StrCat(field, ": cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat(field, ": cannot write ", path));
  }
  return absl::OkStatus();
}

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForTerminationSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int signal = 0;
  sigwait(&set, &signal);
  return signal;
}

}  // namespace casebridge
