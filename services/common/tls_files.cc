#include "services/common/tls_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace casebridge::common {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* x509) const { X509_free(x509); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Certificate = std::unique_ptr<X509, X509Free>;
using PrivateKey = std::unique_ptr<EVP_PKEY, PkeyFree>;

Bio MemoryBio(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

Certificate FirstCertificate(const std::string& pem) {
  Bio bio = MemoryBio(pem);
  Certificate cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return cert;
}

// An encrypted key must not prompt for a pass phrase on the terminal.
int NoPassphrase(char*, int, int, void*) { return -1; }

PrivateKey ReadKey(const std::string& pem) {
  Bio bio = MemoryBio(pem);
  PrivateKey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  return key;
}

}  // namespace

absl::StatusOr<std::string> ReadPemFile(absl::string_view field, const std::string& path,
                                        PemKind kind) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(field, ": cannot read ", path));
  std::ostringstream contents;
  contents << in.rdbuf();
  std::string pem = contents.str();
  switch (kind) {
    case PemKind::kCertificates:
      if (FirstCertificate(pem) == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": ", path, " holds no PEM certificate"));
      }
      break;
    case PemKind::kPrivateKey:
      if (ReadKey(pem) == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": ", path, " holds no unencrypted PEM private key"));
      }
      break;
  }
  return pem;
}

absl::Status CheckKeyMatchesCertificate(absl::string_view cert_field, const std::string& cert_pem,
                                        absl::string_view key_field, const std::string& key_pem) {
  Certificate cert = FirstCertificate(cert_pem);
  PrivateKey key = ReadKey(key_pem);
  const bool match =
      cert != nullptr && key != nullptr && X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  if (!match) {
    return absl::InvalidArgumentError(
        absl::StrCat(key_field, ": does not belong to the certificate in ", cert_field));
  }
  return absl::OkStatus();
}

}  // namespace casebridge::common
