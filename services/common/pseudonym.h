// Pseudonymisation of CPR numbers.
//
// A CPR number is accepted only at the gRPC edge. It is validated (format
// and the date part) and turned into the case's `subject`: the lower-case hex
// HMAC-SHA256, under a secret key, of the municipality code and the
// normalised CPR number. The subject is what events, Kafka keys and logs
// carry; without the key it cannot be turned back into a CPR number, and
// without the key no one can compute the subject of a known CPR number.
//
// The key comes from a file or an environment variable (never from a config
// file) and is never logged. Rotation is documented in docs/operations.md.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "casebridge/config/v1/config.pb.h"

namespace casebridge {

// The shortest key accepted, in bytes.
inline constexpr size_t kMinPseudonymKeyBytes = 32;

// Returns the CPR number as 10 digits if `cpr` is DDMMYYSSSS or DDMMYY-SSSS
// with a valid date (the seventh digit decides the century). Otherwise
// returns kInvalidArgument naming `field`; the message never repeats the
// input.
absl::StatusOr<std::string> NormalizeCpr(absl::string_view cpr, absl::string_view field);

// Returns true if `subject` looks like a subject: 64 lower-case hex digits.
bool IsSubject(absl::string_view subject);

// Computes subjects. Thread safety: safe for concurrent use (immutable).
class Pseudonymizer {
 public:
  // Returns kInvalidArgument if `key` is shorter than kMinPseudonymKeyBytes.
  static absl::StatusOr<std::unique_ptr<Pseudonymizer>> Create(std::string key);

  // Returns the subject of the citizen with CPR number `cpr` in
  // `municipality`, or kInvalidArgument naming `field` if `cpr` is invalid.
  absl::StatusOr<std::string> SubjectFor(absl::string_view municipality, absl::string_view cpr,
                                         absl::string_view field = "cpr") const;

 private:
  explicit Pseudonymizer(std::string key) : key_(std::move(key)) {}
  std::string key_;
};

// Reads the key named by `config`: `key_file` if set, else the environment
// variable `key_env` (default CASEBRIDGE_PSEUDONYM_KEY). Trailing newlines
// of a key file are ignored. Returns kFailedPrecondition naming the source
// (never the key) if it is missing or too short.
absl::StatusOr<std::string> LoadPseudonymKey(const casebridge::config::v1::PseudonymConfig& config);

}  // namespace casebridge
