// Starting a service's gRPC server the same way everywhere: the services,
// the standard health service (grpc.health.v1) and server reflection, on the
// configured address, with the chosen port written to `port_file`.
//
// Usage in main.cc:
//   BlockTerminationSignals();            // first, before any thread starts
//   ... build the service ...
//   ASSIGN_OR_RETURN(auto server, StartGrpcServer(config.server(), {&service}));
//   WaitForTerminationSignal();
//   server->Shutdown(...);
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "casebridge/config/v1/config.pb.h"

namespace casebridge {

// A running server and the port it listens on.
struct StartedServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

// The default listen address when the config leaves it empty.
inline constexpr char kDefaultListenAddress[] = "0.0.0.0:50051";

// Builds and starts the server. The health service reports SERVING for ""
// and for every registered service name; callers flip it with
// `server->GetHealthCheckService()->SetServingStatus`. Returns kUnavailable if
// the address cannot be bound, kInternal if `port_file` cannot be written.
absl::StatusOr<StartedServer> StartGrpcServer(const casebridge::config::v1::ServerConfig& config,
                                              const std::vector<grpc::Service*>& services);

// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts
// afterwards, so that `WaitForTerminationSignal` receives them. Call first in
// main.
void BlockTerminationSignals();

// Waits for SIGTERM or SIGINT and returns its number.
int WaitForTerminationSignal();

}  // namespace casebridge
