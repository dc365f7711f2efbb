// Reading the PEM files that TLS settings name, with errors that name the
// config field, so that a wrong path or a swapped file stops a service at
// start-up instead of failing every handshake later.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace casebridge::common {

// What a PEM file must hold.
enum class PemKind {
  kCertificates,  // one or more certificates (a chain or a CA bundle)
  kPrivateKey,    // one unencrypted private key
};

// Returns the contents of `path`, which `field` (e.g. "server.tls.cert_file")
// names. kInvalidArgument "<field>: required" if `path` is empty,
// "<field>: cannot read <path>" if it cannot be read, and
// "<field>: <path> holds no PEM certificate" / "... no unencrypted PEM
// private key" if its contents are not of `kind`.
absl::StatusOr<std::string> ReadPemFile(absl::string_view field, const std::string& path,
                                        PemKind kind);

// Returns kInvalidArgument "<key_field>: does not belong to the certificate in
// <cert_field>" unless `key_pem` is the private key of the first certificate
// in `cert_pem`.
absl::Status CheckKeyMatchesCertificate(absl::string_view cert_field, const std::string& cert_pem,
                                        absl::string_view key_field, const std::string& key_pem);

}  // namespace casebridge::common
