// Starting a service's gRPC server the same way everywhere: the services,
// the standard health service (grpc.health.v1) and server reflection, on the
// configured address, with the chosen port written to `port_file`, and mutual
// TLS unless the config asks for insecure development mode.
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
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "casebridge/config/v1/config.pb.h"

namespace casebridge {

// A running server and the port it listens on.
struct StartedServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

// Returns kInvalidArgument naming the field unless `config` chooses exactly
// one of mutual TLS (`server.tls` with all three files named) and
// `server.insecure_development_mode`. Reads no files: config validation calls
// it, `ServerCredentials` checks the files.
absl::Status ValidateServerSecurity(const casebridge::config::v1::ServerConfig& config);

// The credentials `config` asks for: mutual TLS with `server.tls` (client
// certificates required and verified against `server.tls.client_ca_file`),
// plain text with `server.insecure_development_mode`. kInvalidArgument naming
// the field if neither or both are set, or if a file is missing, unreadable,
// not PEM, or the key does not match the certificate.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const casebridge::config::v1::ServerConfig& config);

// Builds and starts the server with `ServerCredentials(config)` (returning
// its error if that fails; in insecure development mode it logs a loud
// warning). The health service reports SERVING for "" and for each name in
// `health_names` (the full names of the services, e.g.
// "casebridge.jobcentre.v1.JobCentreService"); callers flip it with
// `server->GetHealthCheckService()->SetServingStatus`. Returns kUnavailable if
// the address cannot be bound, kInternal if `port_file` cannot be written.
absl::StatusOr<StartedServer> StartGrpcServer(const casebridge::config::v1::ServerConfig& config,
                                              const std::vector<grpc::Service*>& services,
                                              const std::vector<std::string>& health_names = {});

// Writes `port` to `path` (through a temporary file and a rename, so a
// reader never sees half a number). kInternal naming `field` on failure.
absl::Status WritePortFile(absl::string_view field, const std::string& path, int port);

// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts
// afterwards, so that `WaitForTerminationSignal` receives them. Call first in
// main.
void BlockTerminationSignals();

// Waits for SIGTERM or SIGINT and returns its number.
int WaitForTerminationSignal();

}  // namespace casebridge
