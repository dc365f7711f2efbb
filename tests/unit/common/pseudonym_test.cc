#include "services/common/pseudonym.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "casebridge/config/v1/config.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge {
namespace {

using ::casebridge::testing::IsOk;
using ::casebridge::testing::StatusIs;
using ::casebridge::testing::TempDir;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

MATCHER_P(IsOkAndHolds, expected, "is OK and holds " + ::testing::PrintToString(expected)) {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  *result_listener << "holds " << ::testing::PrintToString(*arg);
  return *arg == expected;
}

constexpr char kKey[] = "unit-test-pseudonym-key-0123456789abcdef";      // 40 bytes
constexpr char kOtherKey[] = "another-pseudonym-key-for-tests-0123456789";  // 42 bytes
constexpr char kMunicipality[] = "0751";

// ---------------------------------------------------------------------------
// NormalizeCpr

class NormalizeCprTest : public ::testing::Test {
 protected:
  static absl::StatusOr<std::string> Normalize(const std::string& cpr) {
    return NormalizeCpr(cpr, "context.case_ref.cpr");
  }
  // Expects `cpr` to be rejected with a message that names the field and
  // never repeats the input (neither spelling, nor the date or serial part).
  static void ExpectRejected(const std::string& cpr) {
    SCOPED_TRACE(cpr);
    absl::StatusOr<std::string> result = Normalize(cpr);
    ASSERT_THAT(result, StatusIs(absl::StatusCode::kInvalidArgument,
                                 StartsWith("context.case_ref.cpr: ")));
    const std::string message(result.status().message());
    if (!cpr.empty()) {
      EXPECT_THAT(message, Not(HasSubstr(cpr)));
    }
    if (cpr.size() >= 6) {
      EXPECT_THAT(message, Not(HasSubstr(cpr.substr(0, 6))));
    }
    if (cpr.size() >= 4) {
      EXPECT_THAT(message, Not(HasSubstr(cpr.substr(cpr.size() - 4))));
    }
  }
};

TEST_F(NormalizeCprTest, AcceptsTenDigits) {
  EXPECT_THAT(Normalize("0101901234"), IsOkAndHolds(std::string("0101901234")));
}

TEST_F(NormalizeCprTest, AcceptsDashedSpellingAsTheSameNumber) {
  absl::StatusOr<std::string> dashed = Normalize("010190-1234");
  ASSERT_OK(dashed);
  EXPECT_EQ(*dashed, "0101901234");
  EXPECT_EQ(*dashed, *Normalize("0101901234"));
}

TEST_F(NormalizeCprTest, RejectsWrongLength) {
  ExpectRejected("");
  ExpectRejected("010190123");
  ExpectRejected("01019012345");
  ExpectRejected("010190-123");
  ExpectRejected("010190-12345");
}

TEST_F(NormalizeCprTest, RejectsDashInTheWrongPlace) { ExpectRejected("01019-01234"); }

TEST_F(NormalizeCprTest, RejectsLetters) {
  ExpectRejected("01019O1234");
  ExpectRejected("010190-12a4");
  ExpectRejected("abcdefghij");
}

TEST_F(NormalizeCprTest, RejectsMonthThirteen) { ExpectRejected("0113901234"); }

TEST_F(NormalizeCprTest, RejectsMonthZero) { ExpectRejected("0100901234"); }

TEST_F(NormalizeCprTest, RejectsDayThirtyTwo) { ExpectRejected("3201901234"); }

TEST_F(NormalizeCprTest, RejectsDayZero) { ExpectRejected("0001901234"); }

TEST_F(NormalizeCprTest, RejectsThirtyFirstOfAThirtyDayMonth) { ExpectRejected("3104901234"); }

TEST_F(NormalizeCprTest, RejectsTwentyNinthOfFebruaryInACommonYear) {
  ExpectRejected("290201-1234");  // 1901
  ExpectRejected("290290-1234");  // 1990
}

TEST_F(NormalizeCprTest, AcceptsTwentyNinthOfFebruaryInALeapYear) {
  EXPECT_OK(Normalize("290296-1234"));  // 1996
}

// The seventh digit picks the century, so the same DDMMYY can be a leap day
// in one century and no date in another.
TEST_F(NormalizeCprTest, SeventhDigitZeroToThreeMeansNineteenHundreds) {
  ExpectRejected("290200-0123");  // 1900: not a leap year
  ExpectRejected("290200-3123");
}

TEST_F(NormalizeCprTest, SeventhDigitFourOrNineUpToYear36MeansTwoThousands) {
  EXPECT_OK(Normalize("290200-4123"));  // 2000: a leap year
  EXPECT_OK(Normalize("290200-9123"));
  EXPECT_OK(Normalize("290236-4123"));  // 2036
}

// Outside year 00, 19yy and 20yy (and 18yy) agree on leap years, so these
// only check that the date part is still validated in every century.
TEST_F(NormalizeCprTest, SeventhDigitFourOrNineAfterYear36IsValidated) {
  EXPECT_OK(Normalize("290296-4123"));  // 1996: leap
  ExpectRejected("290237-4123");        // 1937: not leap
  EXPECT_OK(Normalize("290240-9123"));  // 1940: leap
}

TEST_F(NormalizeCprTest, SeventhDigitFiveToEightUpToYear57MeansTwoThousands) {
  EXPECT_OK(Normalize("290200-5123"));  // 2000: leap
  EXPECT_OK(Normalize("290256-8123"));  // 2056: leap
}

TEST_F(NormalizeCprTest, SeventhDigitFiveToEightAfterYear57IsValidated) {
  ExpectRejected("290297-5123");        // 1897: not leap
  EXPECT_OK(Normalize("290296-5123"));  // 1896: leap
  EXPECT_OK(Normalize("310158-7123"));  // 1858-01-31
}

TEST_F(NormalizeCprTest, CenturyDecidesWhetherYear00IsALeapYear) {
  // 2000 is a leap year (divisible by 400); 1900 is not (divisible by 100).
  EXPECT_OK(Normalize("2902004123"));
  ExpectRejected("2902001123");
}

// ---------------------------------------------------------------------------
// IsSubject

TEST(IsSubjectTest, AcceptsSixtyFourLowerCaseHexDigits) {
  EXPECT_TRUE(IsSubject(std::string(64, 'a')));
  EXPECT_TRUE(IsSubject("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
}

TEST(IsSubjectTest, RejectsWrongLength) {
  EXPECT_FALSE(IsSubject(""));
  EXPECT_FALSE(IsSubject(std::string(63, 'a')));
  EXPECT_FALSE(IsSubject(std::string(65, 'a')));
}

TEST(IsSubjectTest, RejectsUpperCaseAndNonHex) {
  EXPECT_FALSE(IsSubject(std::string(64, 'A')));
  EXPECT_FALSE(IsSubject(std::string(63, 'a') + "g"));
  EXPECT_FALSE(IsSubject(std::string(63, 'a') + "-"));
}

TEST(IsSubjectTest, RejectsACprNumber) { EXPECT_FALSE(IsSubject("0101901234")); }

// ---------------------------------------------------------------------------
// Pseudonymizer

class PseudonymizerTest : public ::testing::Test {
 protected:
  static std::unique_ptr<Pseudonymizer> Make(const std::string& key) {
    absl::StatusOr<std::unique_ptr<Pseudonymizer>> made = Pseudonymizer::Create(key);
    EXPECT_OK(made);
    return made.ok() ? *std::move(made) : nullptr;
  }
  std::string Subject(const std::string& cpr, const std::string& municipality = kMunicipality) {
    absl::StatusOr<std::string> subject = pseudonymizer_->SubjectFor(municipality, cpr);
    EXPECT_OK(subject);
    return subject.ok() ? *subject : "";
  }

  std::unique_ptr<Pseudonymizer> pseudonymizer_ = Make(kKey);
};

TEST_F(PseudonymizerTest, RejectsAKeyShorterThan32Bytes) {
  EXPECT_THAT(Pseudonymizer::Create(std::string(31, 'k')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("32")));
  EXPECT_THAT(Pseudonymizer::Create(""), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(PseudonymizerTest, AcceptsAKeyOfExactly32Bytes) {
  EXPECT_OK(Pseudonymizer::Create(std::string(32, 'k')));
}

TEST_F(PseudonymizerTest, SubjectIsSixtyFourHexDigits) {
  const std::string subject = Subject("0101901234");
  EXPECT_EQ(subject.size(), 64u);
  EXPECT_TRUE(IsSubject(subject));
}

TEST_F(PseudonymizerTest, SameCprAndMunicipalityGiveTheSameSubject) {
  EXPECT_EQ(Subject("0101901234"), Subject("0101901234"));
  EXPECT_EQ(Subject("0101901234"), Make(kKey)->SubjectFor(kMunicipality, "0101901234").value());
}

TEST_F(PseudonymizerTest, BothCprSpellingsGiveTheSameSubject) {
  EXPECT_EQ(Subject("010190-1234"), Subject("0101901234"));
}

TEST_F(PseudonymizerTest, DifferentMunicipalityGivesADifferentSubject) {
  EXPECT_NE(Subject("0101901234", "0751"), Subject("0101901234", "0101"));
}

TEST_F(PseudonymizerTest, DifferentKeyGivesADifferentSubject) {
  std::unique_ptr<Pseudonymizer> other = Make(kOtherKey);
  ASSERT_NE(other, nullptr);
  EXPECT_NE(Subject("0101901234"), other->SubjectFor(kMunicipality, "0101901234").value());
}

TEST_F(PseudonymizerTest, DifferentCprGivesADifferentSubject) {
  EXPECT_NE(Subject("0101901234"), Subject("0101901235"));
}

TEST_F(PseudonymizerTest, SubjectDoesNotContainTheCpr) {
  EXPECT_THAT(Subject("0101901234"), Not(HasSubstr("0101901234")));
}

TEST_F(PseudonymizerTest, InvalidCprIsRejectedNamingTheFieldAndNotTheInput) {
  absl::StatusOr<std::string> subject =
      pseudonymizer_->SubjectFor(kMunicipality, "3201901234", "case_ref.cpr");
  EXPECT_THAT(subject, StatusIs(absl::StatusCode::kInvalidArgument,
                                AllOf(StartsWith("case_ref.cpr: "), Not(HasSubstr("3201901234")),
                                      Not(HasSubstr("320190")))));
}

// ---------------------------------------------------------------------------
// LoadPseudonymKey

class LoadPseudonymKeyTest : public ::testing::Test {
 protected:
  static constexpr char kEnv[] = "CASEBRIDGE_UNIT_TEST_PSEUDONYM_KEY";

  void TearDown() override { unsetenv(kEnv); }

  std::string WriteKeyFile(const std::string& contents) {
    const std::string path = dir_.File("pseudonym.key");
    std::ofstream out(path, std::ios::binary);
    out << contents;
    return path;
  }
  static config::v1::PseudonymConfig FromFile(const std::string& path) {
    config::v1::PseudonymConfig config;
    config.set_key_file(path);
    return config;
  }
  static config::v1::PseudonymConfig FromEnv() {
    config::v1::PseudonymConfig config;
    config.set_key_env(kEnv);
    return config;
  }

  TempDir dir_;
};

TEST_F(LoadPseudonymKeyTest, ReadsAKeyFileAndStripsTrailingNewlines) {
  EXPECT_THAT(LoadPseudonymKey(FromFile(WriteKeyFile(std::string(kKey) + "\n"))),
              IsOkAndHolds(std::string(kKey)));
}

TEST_F(LoadPseudonymKeyTest, StripsCrLfFromAKeyFile) {
  EXPECT_THAT(LoadPseudonymKey(FromFile(WriteKeyFile(std::string(kKey) + "\r\n\n"))),
              IsOkAndHolds(std::string(kKey)));
}

TEST_F(LoadPseudonymKeyTest, ReadsAKeyFileWithoutNewlineUnchanged) {
  EXPECT_THAT(LoadPseudonymKey(FromFile(WriteKeyFile(kKey))),
              IsOkAndHolds(std::string(kKey)));
}

TEST_F(LoadPseudonymKeyTest, KeyFileTakesPrecedenceOverTheEnvironment) {
  setenv(kEnv, kOtherKey, 1);
  config::v1::PseudonymConfig config = FromFile(WriteKeyFile(kKey));
  config.set_key_env(kEnv);
  EXPECT_THAT(LoadPseudonymKey(config), IsOkAndHolds(std::string(kKey)));
}

TEST_F(LoadPseudonymKeyTest, ReadsTheNamedEnvironmentVariable) {
  setenv(kEnv, kKey, 1);
  EXPECT_THAT(LoadPseudonymKey(FromEnv()), IsOkAndHolds(std::string(kKey)));
}

TEST_F(LoadPseudonymKeyTest, MissingKeyFileIsFailedPreconditionNamingTheFile) {
  const std::string path = dir_.File("missing.key");
  EXPECT_THAT(LoadPseudonymKey(FromFile(path)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("pseudonym.key_file"), HasSubstr(path))));
}

TEST_F(LoadPseudonymKeyTest, UnsetEnvironmentVariableIsFailedPreconditionNamingIt) {
  unsetenv(kEnv);
  EXPECT_THAT(LoadPseudonymKey(FromEnv()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(kEnv)));
}

TEST_F(LoadPseudonymKeyTest, ShortKeyInTheEnvironmentIsRejectedWithoutRepeatingIt) {
  const std::string short_key = "short-secret-key-xyz";
  setenv(kEnv, short_key.c_str(), 1);
  EXPECT_THAT(LoadPseudonymKey(FromEnv()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(kEnv), Not(HasSubstr(short_key)))));
}

TEST_F(LoadPseudonymKeyTest, ShortKeyFileIsRejectedWithoutRepeatingIt) {
  const std::string short_key = "short-secret-key-xyz";
  EXPECT_THAT(LoadPseudonymKey(FromFile(WriteKeyFile(short_key + "\n"))),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("pseudonym.key_file"), Not(HasSubstr(short_key)))));
}

TEST_F(LoadPseudonymKeyTest, DefaultsToCasebridgePseudonymKey) {
  const char* saved = std::getenv("CASEBRIDGE_PSEUDONYM_KEY");
  const std::string saved_value = saved != nullptr ? saved : "";
  setenv("CASEBRIDGE_PSEUDONYM_KEY", kKey, 1);
  EXPECT_THAT(LoadPseudonymKey(config::v1::PseudonymConfig()),
              IsOkAndHolds(std::string(kKey)));
  if (saved != nullptr) {
    setenv("CASEBRIDGE_PSEUDONYM_KEY", saved_value.c_str(), 1);
  } else {
    unsetenv("CASEBRIDGE_PSEUDONYM_KEY");
  }
}

}  // namespace
}  // namespace casebridge
