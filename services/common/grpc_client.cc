#include "services/common/grpc_client.h"

#include "services/common/tls_files.h"

namespace casebridge::common {

bool UsesTls(const casebridge::config::v1::ClientTlsConfig& tls) {
  return !tls.ca_file().empty() || !tls.cert_file().empty() || !tls.key_file().empty();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ClientCredentials(
    const casebridge::config::v1::ClientTlsConfig& tls) {
  if (!UsesTls(tls)) return grpc::InsecureChannelCredentials();
  if (tls.cert_file().empty() != tls.key_file().empty()) {
    return absl::InvalidArgumentError(
        tls.cert_file().empty() ? "tls.cert_file: required together with tls.key_file"
                                : "tls.key_file: required together with tls.cert_file");
  }
  grpc::SslCredentialsOptions options;
  absl::StatusOr<std::string> ca = ReadPemFile("tls.ca_file", tls.ca_file(), PemKind::kCertificates);
  if (!ca.ok()) return ca.status();
  options.pem_root_certs = *ca;
  if (!tls.cert_file().empty()) {
    absl::StatusOr<std::string> cert =
        ReadPemFile("tls.cert_file", tls.cert_file(), PemKind::kCertificates);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key =
        ReadPemFile("tls.key_file", tls.key_file(), PemKind::kPrivateKey);
    if (!key.ok()) return key.status();
    if (absl::Status status =
            CheckKeyMatchesCertificate("tls.cert_file", *cert, "tls.key_file", *key);
        !status.ok()) {
      return status;
    }
    options.pem_cert_chain = *cert;
    options.pem_private_key = *key;
  }
  return grpc::SslCredentials(options);
}

}  // namespace casebridge::common
