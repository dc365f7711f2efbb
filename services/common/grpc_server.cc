#include "services/common/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "descriptor_anchors.h"

namespace casebridge {

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
  StartedServer started;
  grpc::ServerBuilder builder;
  // TODO(casebridge): mutual TLS (issue: consent, sensitivity, mTLS and audit).
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &started.port);
  builder.SetMaxReceiveMessageSize(config.max_receive_message_bytes() > 0
                                       ? config.max_receive_message_bytes()
                                       : 4 * 1024 * 1024);
  for (grpc::Service* service : services) builder.RegisterService(service);
  started.server = builder.BuildAndStart();
  if (started.server == nullptr || started.port == 0) {
    return absl::UnavailableError(absl::StrCat("server.listen_address: cannot listen on ", address));
  }
  for (const std::string& name : health_names) {
    started.server->GetHealthCheckService()->SetServingStatus(name, true);
  }
  if (!config.port_file().empty()) {
    const std::string tmp = config.port_file() + ".tmp";
    {
      std::ofstream out(tmp);
      out << started.port << "\n";
      if (!out) return absl::InternalError(absl::StrCat("server.port_file: cannot write ", tmp));
    }
    if (std::rename(tmp.c_str(), config.port_file().c_str()) != 0) {
      return absl::InternalError(
          absl::StrCat("server.port_file: cannot write ", config.port_file()));
    }
  }
  return started;
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
