// Channel credentials for casebridge's own gRPC clients (the sample player,
// tests, tools) from a `casebridge.config.v1.ClientTlsConfig`.
//
//   ClientTlsConfig tls;
//   tls.set_ca_file("certs/ca.pem");
//   tls.set_cert_file("certs/aarhus-jobcenter.pem");
//   tls.set_key_file("certs/aarhus-jobcenter.key");
//   ASSIGN_OR_RETURN(auto credentials, ClientCredentials(tls));
//   auto channel = grpc::CreateChannel("127.0.0.1:50051", credentials);
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/status/statusor.h"
#include "casebridge/config/v1/config.pb.h"

namespace casebridge::common {

// TLS credentials that trust `tls.ca_file` and, if `tls.cert_file` and
// `tls.key_file` are set, present that client certificate (mutual TLS).
// With no field set: insecure (plain-text) credentials, for servers in
// insecure development mode. kInvalidArgument naming the field ("tls.ca_file:
// ...") if a file is missing, unreadable or not PEM, if only one of
// cert/key is set, if the key does not match the certificate, or if a
// certificate is given without a CA.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ClientCredentials(
    const casebridge::config::v1::ClientTlsConfig& tls);

// True if `tls` names any file, i.e. the client uses TLS.
bool UsesTls(const casebridge::config::v1::ClientTlsConfig& tls);

}  // namespace casebridge::common
