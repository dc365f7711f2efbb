// Who is calling: the authenticated identity of a gRPC peer, which every
// authorisation decision starts from.
//
// With mutual TLS (the default) the identity is the common name (CN) of the
// subject of the client certificate the server verified against its client
// CA, e.g. "aarhus-jobcenter". The same name is the Kafka principal of that
// organisation and, for a recipient organisation, its recipient id.
//
// Only when a server runs in insecure development mode (plain text,
// `server.insecure_development_mode`) is there no certificate: the caller may
// then name itself in the `casebridge-dev-identity` metadata entry, and a
// caller that does not is the development superuser (allowed everything).
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

namespace casebridge::common {

// The metadata key a caller names itself with in insecure development mode.
inline constexpr char kDevelopmentIdentityHeader[] = "casebridge-dev-identity";

struct Caller {
  // The certificate's subject CN, or in development mode the name given in
  // `casebridge-dev-identity` (empty if none was given).
  std::string identity;
  // True when the peer presented no verified certificate, which a server only
  // accepts in insecure development mode.
  bool development = false;

  // True for the development superuser: development mode and no name given.
  bool superuser() const { return development && identity.empty(); }
};

// Returns the caller of the RPC that `context` belongs to.
Caller CallerOf(const grpc::ServerContext& context);

}  // namespace casebridge::common
