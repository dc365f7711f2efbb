#include "services/common/pseudonym.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace casebridge {
namespace {

int Digits(absl::string_view s, size_t pos, size_t n) {
  int value = 0;
  for (size_t i = pos; i < pos + n; ++i) value = value * 10 + (s[i] - '0');
  return value;
}

bool IsLeap(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

// The century of a CPR number follows from the year and the seventh digit
// (CPR-kontoret's table).
int FullYear(int yy, int seventh) {
  if (seventh <= 3) return 1900 + yy;
  if (seventh == 4 || seventh == 9) return yy <= 36 ? 2000 + yy : 1900 + yy;
  return yy <= 57 ? 2000 + yy : 1800 + yy;  // 5–8
}

}  // namespace

absl::StatusOr<std::string> NormalizeCpr(absl::string_view cpr, absl::string_view field) {
  std::string digits;
  if (cpr.size() == 11 && cpr[6] == '-') {
    digits = absl::StrCat(cpr.substr(0, 6), cpr.substr(7));
  } else {
    digits = std::string(cpr);
  }
  if (digits.size() != 10 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": not a CPR number (expected 10 digits, DDMMYY-SSSS)"));
  }
  const int day = Digits(digits, 0, 2);
  const int month = Digits(digits, 2, 2);
  const int year = FullYear(Digits(digits, 4, 2), digits[6] - '0');
  static constexpr int kDaysInMonth[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 ||
      day > kDaysInMonth[month - 1] + (month == 2 && IsLeap(year) ? 1 : 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": not a CPR number (the date part DDMMYY is not a date)"));
  }
  return digits;
}

bool IsSubject(absl::string_view subject) {
  return subject.size() == 64 && std::all_of(subject.begin(), subject.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

absl::StatusOr<std::unique_ptr<Pseudonymizer>> Pseudonymizer::Create(std::string key) {
  if (key.size() < kMinPseudonymKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("pseudonym key: must be at least ",
                                                   kMinPseudonymKeyBytes, " bytes"));
  }
  return std::unique_ptr<Pseudonymizer>(new Pseudonymizer(std::move(key)));
}

absl::StatusOr<std::string> Pseudonymizer::SubjectFor(absl::string_view municipality,
                                                      absl::string_view cpr,
                                                      absl::string_view field) const {
  absl::StatusOr<std::string> normalized = NormalizeCpr(cpr, field);
  if (!normalized.ok()) return normalized.status();
  const std::string message = absl::StrCat("casebridge/subject/v1/", municipality, "/", *normalized);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac,
           &mac_len) == nullptr) {
    return absl::InternalError("pseudonym: HMAC-SHA256 failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(mac_len * 2);
  for (unsigned int i = 0; i < mac_len; ++i) {
    hex.push_back(kHex[mac[i] >> 4]);
    hex.push_back(kHex[mac[i] & 0xf]);
  }
  return hex;
}

absl::StatusOr<std::string> LoadPseudonymKey(const casebridge::config::v1::PseudonymConfig& config) {
  std::string key;
  std::string source;
  if (!config.key_file().empty()) {
    source = absl::StrCat("pseudonym.key_file ", config.key_file());
    std::ifstream in(config.key_file(), std::ios::binary);
    if (!in) return absl::FailedPreconditionError(absl::StrCat(source, ": cannot be read"));
    std::stringstream buffer;
    buffer << in.rdbuf();
    key = buffer.str();
    while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  } else {
    const std::string env = config.key_env().empty() ? "CASEBRIDGE_PSEUDONYM_KEY" : config.key_env();
    source = absl::StrCat("environment variable ", env);
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) return absl::FailedPreconditionError(absl::StrCat(source, ": not set"));
    key = value;
  }
  if (key.size() < kMinPseudonymKeyBytes) {
    return absl::FailedPreconditionError(
        absl::StrCat(source, ": the key must be at least ", kMinPseudonymKeyBytes, " bytes"));
  }
  return key;
}

}  // namespace casebridge
