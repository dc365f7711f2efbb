// Fuzzes CPR validation, normalisation and pseudonymisation, and the
// subject syntax check (services/common/pseudonym.*).
//
// Checked besides ASan/UBSan:
//   * a normalised CPR number is 10 digits, and normalises to itself;
//   * the dashed form DDMMYY-SSSS of a valid number is valid and gives the
//     same subject;
//   * `SubjectFor` succeeds exactly when `NormalizeCpr` does, and gives a
//     subject (`IsSubject`);
//   * an error names the field and is one of the two fixed texts (wrong
//     format, not a date), so it never repeats the input.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "services/common/pseudonym.h"

namespace {

void Fail(const char* what, absl::string_view input) {
  fprintf(stderr, "cpr_fuzzer: %s (input of %zu bytes)\n", what, input.size());
  abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using casebridge::IsSubject;
  using casebridge::NormalizeCpr;
  static const std::unique_ptr<casebridge::Pseudonymizer> pseudonymizer =
      *casebridge::Pseudonymizer::Create(std::string(32, 'k'));
  const absl::string_view input(reinterpret_cast<const char*>(data), size);

  const absl::StatusOr<std::string> normalized = NormalizeCpr(input, "context.case_ref.cpr");
  const absl::StatusOr<std::string> subject =
      pseudonymizer->SubjectFor("0751", input, "context.case_ref.cpr");
  if (normalized.ok() != subject.ok()) Fail("NormalizeCpr and SubjectFor disagree", input);

  if (!normalized.ok()) {
    // The message is one of the validator's fixed texts, so it cannot carry
    // the input.
    static const std::string kWrongFormat =
        NormalizeCpr("", "context.case_ref.cpr").status().ToString();
    static const std::string kNoDate =
        NormalizeCpr("3201851234", "context.case_ref.cpr").status().ToString();
    for (const absl::Status& status : {normalized.status(), subject.status()}) {
      if (status.code() != absl::StatusCode::kInvalidArgument) Fail("not INVALID_ARGUMENT", input);
      if (!absl::StartsWith(status.message(), "context.case_ref.cpr: ")) {
        Fail("the message does not start with the field", input);
      }
      if (status.ToString() != kWrongFormat && status.ToString() != kNoDate) {
        Fail("the message is not one of the fixed texts", input);
      }
    }
  } else {
    const std::string& digits = *normalized;
    if (digits.size() != 10 || !std::all_of(digits.begin(), digits.end(), [](char c) {
          return c >= '0' && c <= '9';
        })) {
      Fail("normalised CPR is not 10 digits", input);
    }
    if (NormalizeCpr(digits, "cpr").value_or("") != digits) Fail("not idempotent", input);
    const std::string dashed = absl::StrCat(digits.substr(0, 6), "-", digits.substr(6));
    if (NormalizeCpr(dashed, "cpr").value_or("") != digits) Fail("dashed form differs", input);
    if (!IsSubject(*subject)) Fail("subject is not 64 lower-case hex digits", input);
    if (pseudonymizer->SubjectFor("0751", dashed).value_or("") != *subject) {
      Fail("dashed form gives another subject", input);
    }
    if (pseudonymizer->SubjectFor("0101", digits).value_or("") == *subject) {
      Fail("another municipality gives the same subject", input);
    }
  }

  (void)IsSubject(input);
  return 0;
}
