#include "services/common/record_validation.h"

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "casebridge/recording/v1/recording.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/pseudonym.h"
#include "services/common/status_macros.h"
#include "tests/support/status_matchers.h"

namespace casebridge {
namespace {

using ::casebridge::recording::v1::BookAppointmentRequest;
using ::casebridge::recording::v1::CancelAppointmentRequest;
using ::casebridge::recording::v1::RecordDecisionRequest;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kMunicipality[] = "0751";
constexpr char kKey[] = "unit-test-pseudonym-key-0123456789abcdef";
constexpr char kCpr[] = "0101901234";
constexpr int64_t kNowSeconds = 1767261600;  // 2026-01-01T10:00:00Z
const absl::Time kNow = absl::FromUnixSeconds(kNowSeconds);

const Pseudonymizer& TestPseudonymizer() {
  static const Pseudonymizer* pseudonymizer = Pseudonymizer::Create(kKey)->release();
  return *pseudonymizer;
}

void FillContext(recording::v1::RecordContext& context) {
  context.set_idempotency_key("decision-2026-0001");
  context.mutable_case_ref()->set_cpr("010190-1234");
  context.mutable_actor()->set_role(common::v1::ROLE_CASEWORKER);
  context.mutable_actor()->set_unit("Jobcenter Aarhus, Team Ressourceforløb");
  context.mutable_occurred_at()->set_seconds(kNowSeconds - 3600);
  common::v1::LegalReference* law = context.add_legal_basis();
  law->set_law("LAB");
  law->set_paragraph("68 a");
}

// A refusal that passes every check.
RecordDecisionRequest ValidRefusal() {
  RecordDecisionRequest request;
  FillContext(*request.mutable_context());
  events::v1::Decision& decision = *request.mutable_decision();
  decision.set_outcome(events::v1::DECISION_OUTCOME_REFUSED);
  decision.mutable_offer()->set_code("LAB-mentor");
  decision.mutable_offer()->set_administration(common::v1::ADMINISTRATION_JOB_CENTRE);
  events::v1::Reason* reason = decision.add_reasons();
  reason->set_code("not-in-target-group");
  reason->set_text("Du er ikke i målgruppen.");
  decision.add_alternatives()->mutable_offer()->set_code("SEL-85");
  decision.mutable_complaint()->set_text("Du kan klage inden 4 uger.");
  decision.mutable_complaint()->mutable_deadline()->set_seconds(kNowSeconds + 28 * 86400);
  decision.mutable_decided_by()->set_role(common::v1::ROLE_CASEWORKER);
  decision.mutable_decided_by()->set_unit("Jobcenter Aarhus");
  return request;
}

// An appointment booking that passes every check.
BookAppointmentRequest ValidBooking() {
  BookAppointmentRequest request;
  FillContext(*request.mutable_context());
  request.mutable_context()->clear_legal_basis();
  events::v1::Appointment& appointment = *request.mutable_appointment();
  appointment.set_kind(events::v1::APPOINTMENT_KIND_FOLLOW_UP_CONVERSATION);
  appointment.mutable_start()->set_seconds(kNowSeconds + 86400);
  appointment.mutable_end()->set_seconds(kNowSeconds + 86400 + 3600);
  appointment.mutable_location()->set_name("Jobcenter Aarhus, Værkmestergade 15");
  appointment.add_attendees()->set_role(common::v1::ROLE_CITIZEN);
  return request;
}

// What the service checks, in its order: the context, the payload, the case.
absl::Status Validate(const RecordDecisionRequest& request) {
  RETURN_IF_ERROR(ValidateRecordContext(request.context(), /*legal_basis_required=*/true, kNow));
  RETURN_IF_ERROR(ValidateDecision(request.decision(), "decision"));
  return ResolveCase(request.context().case_ref(), kMunicipality, TestPseudonymizer(),
                     "context.case_ref")
      .status();
}

absl::Status Validate(const BookAppointmentRequest& request) {
  RETURN_IF_ERROR(ValidateRecordContext(request.context(), /*legal_basis_required=*/false, kNow));
  RETURN_IF_ERROR(ValidateNewAppointment(request.appointment(), "appointment"));
  return ResolveCase(request.context().case_ref(), kMunicipality, TestPseudonymizer(),
                     "context.case_ref")
      .status();
}

// ---------------------------------------------------------------------------
// Valid requests

TEST(RecordValidationTest, ValidRefusalPasses) { EXPECT_OK(Validate(ValidRefusal())); }

TEST(RecordValidationTest, ValidBookingPasses) { EXPECT_OK(Validate(ValidBooking())); }

TEST(RecordValidationTest, GrantNeedsNoReasonsOrComplaintGuidance) {
  RecordDecisionRequest request = ValidRefusal();
  request.mutable_decision()->set_outcome(events::v1::DECISION_OUTCOME_GRANTED);
  request.mutable_decision()->clear_reasons();
  request.mutable_decision()->clear_complaint();
  EXPECT_OK(Validate(request));
}

TEST(RecordValidationTest, CaseMayBeNamedBySubject) {
  RecordDecisionRequest request = ValidRefusal();
  request.mutable_context()->mutable_case_ref()->set_subject(std::string(64, 'e'));
  EXPECT_OK(Validate(request));
}

TEST(RecordValidationTest, IdempotencyKeyOf128AllowedCharactersPasses) {
  RecordDecisionRequest request = ValidRefusal();
  request.mutable_context()->set_idempotency_key(std::string(124, 'a') + "._:-");
  EXPECT_OK(Validate(request));
}

TEST(RecordValidationTest, OccurredAtAFewMinutesAheadIsClockSkewNotFuture) {
  RecordDecisionRequest request = ValidRefusal();
  request.mutable_context()->mutable_occurred_at()->set_seconds(kNowSeconds + 4 * 60);
  EXPECT_OK(Validate(request));
}

TEST(RecordValidationTest, MissingOccurredAtPasses) {
  RecordDecisionRequest request = ValidRefusal();
  request.mutable_context()->clear_occurred_at();
  EXPECT_OK(Validate(request));
}

TEST(RecordValidationTest, OnlineLocationPasses) {
  BookAppointmentRequest request = ValidBooking();
  request.mutable_appointment()->mutable_location()->clear_name();
  request.mutable_appointment()->mutable_location()->set_online_url("https://meet.example/abc");
  EXPECT_OK(Validate(request));
}

TEST(RecordValidationTest, InvalidCprErrorDoesNotRepeatTheCpr) {
  RecordDecisionRequest request = ValidRefusal();
  request.mutable_context()->mutable_case_ref()->set_cpr("320190-1234");
  absl::Status status = Validate(request);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               Not(HasSubstr("320190"))));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("1234")));
}

// ---------------------------------------------------------------------------
// Bad requests: each is kInvalidArgument "<field path>: <reason>".

template <typename Request>
struct BadRequest {
  std::string name;
  std::function<void(Request&)> mutate;
  // The field path the message must start with.
  std::string field;
};

// Names the case in test output (and in ctest's test names).
template <typename Request>
void PrintTo(const BadRequest<Request>& c, std::ostream* os) {
  *os << c.name;
}

using BadDecision = BadRequest<RecordDecisionRequest>;
using BadBooking = BadRequest<BookAppointmentRequest>;

class BadDecisionTest : public ::testing::TestWithParam<BadDecision> {};

TEST_P(BadDecisionTest, IsInvalidArgumentNamingTheField) {
  RecordDecisionRequest request = ValidRefusal();
  GetParam().mutate(request);
  EXPECT_THAT(Validate(request), StatusIs(absl::StatusCode::kInvalidArgument,
                                          StartsWith(GetParam().field + ": ")));
}

TEST_P(BadDecisionTest, ErrorNeverContainsTheCpr) {
  RecordDecisionRequest request = ValidRefusal();
  GetParam().mutate(request);
  EXPECT_THAT(std::string(Validate(request).message()), Not(HasSubstr(kCpr)));
}

INSTANTIATE_TEST_SUITE_P(
    Context, BadDecisionTest,
    ::testing::Values(
        BadDecision{"IdempotencyKeyEmpty",
                    [](auto& r) { r.mutable_context()->clear_idempotency_key(); },
                    "context.idempotency_key"},
        BadDecision{"IdempotencyKeyTooLong",
                    [](auto& r) { r.mutable_context()->set_idempotency_key(std::string(129, 'k')); },
                    "context.idempotency_key"},
        BadDecision{"IdempotencyKeyWithSpace",
                    [](auto& r) { r.mutable_context()->set_idempotency_key("key 1"); },
                    "context.idempotency_key"},
        BadDecision{"IdempotencyKeyWithSlash",
                    [](auto& r) { r.mutable_context()->set_idempotency_key("key/1"); },
                    "context.idempotency_key"},
        BadDecision{"IdempotencyKeyNonAscii",
                    [](auto& r) { r.mutable_context()->set_idempotency_key("nøgle"); },
                    "context.idempotency_key"},
        BadDecision{"CaseRefMissing", [](auto& r) { r.mutable_context()->clear_case_ref(); },
                    "context.case_ref"},
        BadDecision{"CprWithDayThirtyTwo",
                    [](auto& r) { r.mutable_context()->mutable_case_ref()->set_cpr("3201901234"); },
                    "context.case_ref.cpr"},
        BadDecision{"CprTooShort",
                    [](auto& r) { r.mutable_context()->mutable_case_ref()->set_cpr("010190123"); },
                    "context.case_ref.cpr"},
        BadDecision{"SubjectUpperCase",
                    [](auto& r) {
                      r.mutable_context()->mutable_case_ref()->set_subject(std::string(64, 'A'));
                    },
                    "context.case_ref.subject"},
        BadDecision{"SubjectNotHex",
                    [](auto& r) {
                      r.mutable_context()->mutable_case_ref()->set_subject(std::string(64, 'z'));
                    },
                    "context.case_ref.subject"},
        BadDecision{"SubjectIsACpr",
                    [](auto& r) { r.mutable_context()->mutable_case_ref()->set_subject(kCpr); },
                    "context.case_ref.subject"},
        BadDecision{"ActorMissing", [](auto& r) { r.mutable_context()->clear_actor(); },
                    "context.actor"},
        BadDecision{"ActorRoleUnspecified",
                    [](auto& r) {
                      r.mutable_context()->mutable_actor()->set_role(common::v1::ROLE_UNSPECIFIED);
                    },
                    "context.actor.role"},
        BadDecision{"ActorRoleUnknown",
                    [](auto& r) {
                      r.mutable_context()->mutable_actor()->set_role(
                          static_cast<common::v1::Role>(999));
                    },
                    "context.actor.role"},
        BadDecision{"ActorUnitEmpty",
                    [](auto& r) { r.mutable_context()->mutable_actor()->clear_unit(); },
                    "context.actor.unit"},
        BadDecision{"LegalBasisMissingForADecision",
                    [](auto& r) { r.mutable_context()->clear_legal_basis(); },
                    "context.legal_basis"},
        BadDecision{"LegalBasisLawEmpty",
                    [](auto& r) { r.mutable_context()->mutable_legal_basis(0)->clear_law(); },
                    "context.legal_basis[0].law"},
        BadDecision{"SecondLegalBasisParagraphEmpty",
                    [](auto& r) { r.mutable_context()->add_legal_basis()->set_law("SEL"); },
                    "context.legal_basis[1].paragraph"},
        BadDecision{"OccurredAtInTheFuture",
                    [](auto& r) {
                      r.mutable_context()->mutable_occurred_at()->set_seconds(kNowSeconds + 3600);
                    },
                    "context.occurred_at"},
        BadDecision{"OccurredAtNanosOutOfRange",
                    [](auto& r) {
                      r.mutable_context()->mutable_occurred_at()->set_nanos(1000000000);
                    },
                    "context.occurred_at"},
        BadDecision{"OccurredAtBeforeYearOne",
                    [](auto& r) {
                      r.mutable_context()->mutable_occurred_at()->set_seconds(-62135596801LL);
                    },
                    "context.occurred_at"},
        BadDecision{"SensitivityUnknown",
                    [](auto& r) {
                      r.mutable_context()->set_sensitivity(
                          static_cast<events::v1::Sensitivity>(99));
                    },
                    "context.sensitivity"},
        BadDecision{"SupersedesWithoutEventId",
                    [](auto& r) {
                      r.mutable_context()->mutable_supersedes()->set_kind(
                          events::v1::Supersession::KIND_CORRECTION);
                    },
                    "context.supersedes.event_id"},
        BadDecision{"SupersedesWithoutKind",
                    [](auto& r) {
                      r.mutable_context()->mutable_supersedes()->set_event_id(
                          "11111111-2222-8333-8444-555555555555");
                    },
                    "context.supersedes.kind"}),
    [](const auto& info) { return info.param.name; });

TEST(RecordValidationTest, OccurredAtInYear2200IsRejectedAsFuture) {
  RecordDecisionRequest request = ValidRefusal();
  request.mutable_context()->mutable_occurred_at()->set_seconds(7258118400LL);  // 2200-01-01
  EXPECT_THAT(Validate(request), StatusIs(absl::StatusCode::kInvalidArgument,
                                          StartsWith("context.occurred_at: ")));
}

// Year 3000 is a valid RFC 3339 timestamp (ValidateTimestamp accepts up to
// 9999) but lies beyond int64 nanoseconds (year 2262).
TEST(RecordValidationTest, OccurredAtCenturiesInTheFutureIsRejected) {
  RecordDecisionRequest request = ValidRefusal();
  request.mutable_context()->mutable_occurred_at()->set_seconds(32503680000LL);  // 3000-01-01
  EXPECT_THAT(Validate(request), StatusIs(absl::StatusCode::kInvalidArgument,
                                          StartsWith("context.occurred_at: ")));
}

INSTANTIATE_TEST_SUITE_P(
    Decision, BadDecisionTest,
    ::testing::Values(
        BadDecision{"DecisionIdSet",
                    [](auto& r) { r.mutable_decision()->set_decision_id("D-000001"); },
                    "decision.decision_id"},
        BadDecision{"OutcomeUnspecified",
                    [](auto& r) {
                      r.mutable_decision()->set_outcome(events::v1::DECISION_OUTCOME_UNSPECIFIED);
                    },
                    "decision.outcome"},
        BadDecision{"OutcomeUnknown",
                    [](auto& r) {
                      r.mutable_decision()->set_outcome(
                          static_cast<events::v1::DecisionOutcome>(77));
                    },
                    "decision.outcome"},
        BadDecision{"OfferMissing", [](auto& r) { r.mutable_decision()->clear_offer(); },
                    "decision.offer"},
        BadDecision{"OfferCodeEmpty",
                    [](auto& r) { r.mutable_decision()->mutable_offer()->clear_code(); },
                    "decision.offer.code"},
        BadDecision{"OfferAdministrationUnknown",
                    [](auto& r) {
                      r.mutable_decision()->mutable_offer()->set_administration(
                          static_cast<common::v1::Administration>(42));
                    },
                    "decision.offer.administration"},
        BadDecision{"ReasonCodeEmpty",
                    [](auto& r) { r.mutable_decision()->mutable_reasons(0)->clear_code(); },
                    "decision.reasons[0].code"},
        BadDecision{"ReasonsMissingForARefusal",
                    [](auto& r) { r.mutable_decision()->clear_reasons(); }, "decision.reasons"},
        BadDecision{"ReasonsMissingForAPartialGrant",
                    [](auto& r) {
                      r.mutable_decision()->set_outcome(
                          events::v1::DECISION_OUTCOME_PARTIALLY_GRANTED);
                      r.mutable_decision()->clear_reasons();
                    },
                    "decision.reasons"},
        BadDecision{"AlternativeOfferCodeEmpty",
                    [](auto& r) {
                      r.mutable_decision()->mutable_alternatives(0)->mutable_offer()->clear_code();
                    },
                    "decision.alternatives[0].offer.code"},
        BadDecision{"ComplaintTextMissingForARefusal",
                    [](auto& r) { r.mutable_decision()->mutable_complaint()->clear_text(); },
                    "decision.complaint.text"},
        BadDecision{"ComplaintDeadlineMissingForARefusal",
                    [](auto& r) { r.mutable_decision()->mutable_complaint()->clear_deadline(); },
                    "decision.complaint.deadline"},
        BadDecision{"ComplaintDeadlineInvalid",
                    [](auto& r) {
                      r.mutable_decision()->mutable_complaint()->mutable_deadline()->set_nanos(-1);
                    },
                    "decision.complaint.deadline"},
        BadDecision{"DecidedByMissing", [](auto& r) { r.mutable_decision()->clear_decided_by(); },
                    "decision.decided_by"},
        BadDecision{"DecidedByRoleUnspecified",
                    [](auto& r) {
                      r.mutable_decision()->mutable_decided_by()->set_role(
                          common::v1::ROLE_UNSPECIFIED);
                    },
                    "decision.decided_by.role"},
        BadDecision{"DecidedByUnitEmpty",
                    [](auto& r) { r.mutable_decision()->mutable_decided_by()->clear_unit(); },
                    "decision.decided_by.unit"},
        BadDecision{"EffectiveFromInvalid",
                    [](auto& r) {
                      r.mutable_decision()->mutable_effective_from()->set_seconds(
                          253402300800LL);  // 10000-01-01
                    },
                    "decision.effective_from"}),
    [](const auto& info) { return info.param.name; });

class BadBookingTest : public ::testing::TestWithParam<BadBooking> {};

TEST_P(BadBookingTest, IsInvalidArgumentNamingTheField) {
  BookAppointmentRequest request = ValidBooking();
  GetParam().mutate(request);
  EXPECT_THAT(Validate(request), StatusIs(absl::StatusCode::kInvalidArgument,
                                          StartsWith(GetParam().field + ": ")));
}

INSTANTIATE_TEST_SUITE_P(
    Appointment, BadBookingTest,
    ::testing::Values(
        BadBooking{"AppointmentIdSet",
                   [](auto& r) { r.mutable_appointment()->set_appointment_id("A-000001"); },
                   "appointment.appointment_id"},
        BadBooking{"StatusCancelled",
                   [](auto& r) {
                     r.mutable_appointment()->set_status(events::v1::APPOINTMENT_STATUS_CANCELLED);
                   },
                   "appointment.status"},
        BadBooking{"KindUnspecified",
                   [](auto& r) {
                     r.mutable_appointment()->set_kind(events::v1::APPOINTMENT_KIND_UNSPECIFIED);
                   },
                   "appointment.kind"},
        BadBooking{"KindUnknown",
                   [](auto& r) {
                     r.mutable_appointment()->set_kind(static_cast<events::v1::AppointmentKind>(55));
                   },
                   "appointment.kind"},
        BadBooking{"StartMissing", [](auto& r) { r.mutable_appointment()->clear_start(); },
                   "appointment.start"},
        BadBooking{"EndMissing", [](auto& r) { r.mutable_appointment()->clear_end(); },
                   "appointment.end"},
        BadBooking{"EndBeforeStart",
                   [](auto& r) {
                     r.mutable_appointment()->mutable_end()->set_seconds(kNowSeconds + 86400 - 60);
                   },
                   "appointment.end"},
        BadBooking{"EndEqualsStart",
                   [](auto& r) {
                     *r.mutable_appointment()->mutable_end() = r.appointment().start();
                   },
                   "appointment.end"},
        BadBooking{"LocationMissing", [](auto& r) { r.mutable_appointment()->clear_location(); },
                   "appointment.location"},
        BadBooking{"LocationRoomOnly",
                   [](auto& r) {
                     r.mutable_appointment()->mutable_location()->clear_name();
                     r.mutable_appointment()->mutable_location()->set_room("Mødelokale 3");
                   },
                   "appointment.location"},
        BadBooking{"AttendeesMissing", [](auto& r) { r.mutable_appointment()->clear_attendees(); },
                   "appointment.attendees"},
        BadBooking{"AttendeeRoleUnspecified",
                   [](auto& r) { r.mutable_appointment()->add_attendees()->set_required(true); },
                   "appointment.attendees[1].role"},
        BadBooking{"IdempotencyKeyEmpty",
                   [](auto& r) { r.mutable_context()->clear_idempotency_key(); },
                   "context.idempotency_key"}),
    [](const auto& info) { return info.param.name; });

TEST(RecordValidationTest, LegalBasisIsOptionalForABooking) {
  BookAppointmentRequest request = ValidBooking();
  ASSERT_EQ(request.context().legal_basis_size(), 0);
  EXPECT_OK(Validate(request));
}

// ---------------------------------------------------------------------------
// Referral steps

// A step with `status` that passes every check: what the proto comment of
// RecordReferralStepRequest requires for it, and nothing more.
events::v1::Referral ValidStep(events::v1::ReferralStatus status) {
  events::v1::Referral referral;
  referral.set_status(status);
  switch (status) {
    case events::v1::REFERRAL_STATUS_SENT:
      referral.mutable_offer()->set_code("SUL-140");
      referral.mutable_to_unit()->set_id("0751-sundhed-genoptraening");
      return referral;
    case events::v1::REFERRAL_STATUS_ASSESSED:
      referral.mutable_assessment()->set_in_target_group(true);
      break;
    case events::v1::REFERRAL_STATUS_REFUSED:
    case events::v1::REFERRAL_STATUS_INTERRUPTED:
      referral.add_reasons()->set_code("capacity");
      break;
    case events::v1::REFERRAL_STATUS_ESTIMATE_CHANGED:
      referral.mutable_estimated_start()->set_seconds(kNowSeconds + 30 * 86400);
      break;
    case events::v1::REFERRAL_STATUS_FORWARDED:
      referral.mutable_forwarded_to()->set_id("0751-sundhed-nord");
      break;
    default:
      break;
  }
  referral.set_referral_id("R-000001");
  return referral;
}

class ValidReferralStepTest : public ::testing::TestWithParam<events::v1::ReferralStatus> {};

TEST_P(ValidReferralStepTest, Passes) {
  EXPECT_OK(ValidateReferralStep(ValidStep(GetParam()), "referral"));
}

INSTANTIATE_TEST_SUITE_P(
    EveryStatus, ValidReferralStepTest,
    ::testing::Values(events::v1::REFERRAL_STATUS_SENT, events::v1::REFERRAL_STATUS_RECEIVED,
                      events::v1::REFERRAL_STATUS_ASSESSED, events::v1::REFERRAL_STATUS_ACCEPTED,
                      events::v1::REFERRAL_STATUS_REFUSED, events::v1::REFERRAL_STATUS_WAITLISTED,
                      events::v1::REFERRAL_STATUS_ESTIMATE_CHANGED,
                      events::v1::REFERRAL_STATUS_STARTED, events::v1::REFERRAL_STATUS_ENDED,
                      events::v1::REFERRAL_STATUS_INTERRUPTED,
                      events::v1::REFERRAL_STATUS_FORWARDED),
    [](const auto& info) { return events::v1::ReferralStatus_Name(info.param); });

TEST(ValidReferralStepTest, AssessmentOutOfTheTargetGroupWithReasonsPasses) {
  events::v1::Referral referral = ValidStep(events::v1::REFERRAL_STATUS_ASSESSED);
  referral.mutable_assessment()->set_in_target_group(false);
  referral.mutable_assessment()->add_reasons()->set_code("not-in-target-group");
  referral.mutable_assessment()->add_alternatives()->mutable_offer()->set_code("SEL-85");
  EXPECT_OK(ValidateReferralStep(referral, "referral"));
}

struct BadReferralStep {
  std::string name;
  events::v1::ReferralStatus status;
  std::function<void(events::v1::Referral&)> mutate;
  // The field path the message must start with.
  std::string field;
};

void PrintTo(const BadReferralStep& c, std::ostream* os) { *os << c.name; }

class BadReferralStepTest : public ::testing::TestWithParam<BadReferralStep> {};

TEST_P(BadReferralStepTest, IsInvalidArgumentNamingTheField) {
  events::v1::Referral referral = ValidStep(GetParam().status);
  GetParam().mutate(referral);
  EXPECT_THAT(ValidateReferralStep(referral, "referral"),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith(GetParam().field + ": ")));
}

using events::v1::Referral;

INSTANTIATE_TEST_SUITE_P(
    Fields, BadReferralStepTest,
    ::testing::Values(
        BadReferralStep{"StatusUnspecified", events::v1::REFERRAL_STATUS_RECEIVED,
                        [](Referral& r) { r.set_status(events::v1::REFERRAL_STATUS_UNSPECIFIED); },
                        "referral.status"},
        BadReferralStep{"StatusUnknown", events::v1::REFERRAL_STATUS_RECEIVED,
                        [](Referral& r) { r.set_status(static_cast<events::v1::ReferralStatus>(77)); },
                        "referral.status"},
        BadReferralStep{"SentWithReferralId", events::v1::REFERRAL_STATUS_SENT,
                        [](Referral& r) { r.set_referral_id("R-000001"); }, "referral.referral_id"},
        BadReferralStep{"SentWithoutOffer", events::v1::REFERRAL_STATUS_SENT,
                        [](Referral& r) { r.clear_offer(); }, "referral.offer"},
        BadReferralStep{"SentWithoutOfferCode", events::v1::REFERRAL_STATUS_SENT,
                        [](Referral& r) { r.mutable_offer()->clear_code(); },
                        "referral.offer.code"},
        BadReferralStep{"SentWithoutToUnit", events::v1::REFERRAL_STATUS_SENT,
                        [](Referral& r) { r.clear_to_unit(); }, "referral.to_unit"},
        BadReferralStep{"SentToUnitWithoutId", events::v1::REFERRAL_STATUS_SENT,
                        [](Referral& r) { r.mutable_to_unit()->clear_id(); },
                        "referral.to_unit.id"},
        BadReferralStep{"FromUnitWithoutId", events::v1::REFERRAL_STATUS_SENT,
                        [](Referral& r) { r.mutable_from_unit()->set_name("Jobcenter"); },
                        "referral.from_unit.id"},
        BadReferralStep{"ReceivedWithoutReferralId", events::v1::REFERRAL_STATUS_RECEIVED,
                        [](Referral& r) { r.clear_referral_id(); }, "referral.referral_id"},
        BadReferralStep{"StartedWithoutReferralId", events::v1::REFERRAL_STATUS_STARTED,
                        [](Referral& r) { r.clear_referral_id(); }, "referral.referral_id"},
        BadReferralStep{"AssessedWithoutAssessment", events::v1::REFERRAL_STATUS_ASSESSED,
                        [](Referral& r) { r.clear_assessment(); }, "referral.assessment"},
        BadReferralStep{"OutOfTargetGroupWithoutReasons", events::v1::REFERRAL_STATUS_ASSESSED,
                        [](Referral& r) { r.mutable_assessment()->set_in_target_group(false); },
                        "referral.assessment.reasons"},
        BadReferralStep{"AssessmentReasonWithoutCode", events::v1::REFERRAL_STATUS_ASSESSED,
                        [](Referral& r) { r.mutable_assessment()->add_reasons()->set_text("x"); },
                        "referral.assessment.reasons[0].code"},
        BadReferralStep{"AlternativeWithoutOfferCode", events::v1::REFERRAL_STATUS_ASSESSED,
                        [](Referral& r) { r.mutable_assessment()->add_alternatives(); },
                        "referral.assessment.alternatives[0].offer.code"},
        BadReferralStep{"AssessmentOnAnotherStep", events::v1::REFERRAL_STATUS_ACCEPTED,
                        [](Referral& r) { r.mutable_assessment()->set_in_target_group(true); },
                        "referral.assessment"},
        BadReferralStep{"RefusedWithoutReasons", events::v1::REFERRAL_STATUS_REFUSED,
                        [](Referral& r) { r.clear_reasons(); }, "referral.reasons"},
        BadReferralStep{"InterruptedWithoutReasons", events::v1::REFERRAL_STATUS_INTERRUPTED,
                        [](Referral& r) { r.clear_reasons(); }, "referral.reasons"},
        BadReferralStep{"ReasonWithoutCode", events::v1::REFERRAL_STATUS_REFUSED,
                        [](Referral& r) { r.mutable_reasons(0)->clear_code(); },
                        "referral.reasons[0].code"},
        BadReferralStep{"EstimateChangedWithoutEstimate", events::v1::REFERRAL_STATUS_ESTIMATE_CHANGED,
                        [](Referral& r) { r.clear_estimated_start(); }, "referral.estimated_start"},
        BadReferralStep{"EstimateInvalid", events::v1::REFERRAL_STATUS_WAITLISTED,
                        [](Referral& r) { r.mutable_estimated_start()->set_nanos(-1); },
                        "referral.estimated_start"},
        BadReferralStep{"PreviousEstimateGiven", events::v1::REFERRAL_STATUS_ESTIMATE_CHANGED,
                        [](Referral& r) { r.mutable_previous_estimated_start()->set_seconds(1); },
                        "referral.previous_estimated_start"},
        BadReferralStep{"ForwardedWithoutForwardedTo", events::v1::REFERRAL_STATUS_FORWARDED,
                        [](Referral& r) { r.clear_forwarded_to(); }, "referral.forwarded_to"},
        BadReferralStep{"ForwardedToWithoutId", events::v1::REFERRAL_STATUS_FORWARDED,
                        [](Referral& r) { r.mutable_forwarded_to()->clear_id(); },
                        "referral.forwarded_to.id"},
        BadReferralStep{"ForwardedToOnAnotherStep", events::v1::REFERRAL_STATUS_RECEIVED,
                        [](Referral& r) { r.mutable_forwarded_to()->set_id("0751-x"); },
                        "referral.forwarded_to"}),
    [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------
// RequestFingerprint

class RequestFingerprintTest : public ::testing::Test {
 protected:
  static std::string SubjectOf(const std::string& cpr) {
    return TestPseudonymizer().SubjectFor(kMunicipality, cpr).value();
  }
  // The fingerprint the service computes: the case resolved as it would be.
  template <typename Request>
  static std::string Fingerprint(const Request& request) {
    return RequestFingerprint(request, ResolveCase(request.context().case_ref(), kMunicipality,
                                                   TestPseudonymizer(), "context.case_ref")
                                           ->subject);
  }
};

TEST_F(RequestFingerprintTest, SameRequestByCprOrBySubjectIsEqual) {
  RecordDecisionRequest by_cpr = ValidRefusal();
  RecordDecisionRequest by_subject = ValidRefusal();
  by_subject.mutable_context()->mutable_case_ref()->set_subject(SubjectOf(kCpr));
  EXPECT_EQ(Fingerprint(by_cpr), Fingerprint(by_subject));
}

TEST_F(RequestFingerprintTest, BothCprSpellingsAreEqual) {
  RecordDecisionRequest dashed = ValidRefusal();
  RecordDecisionRequest plain = ValidRefusal();
  plain.mutable_context()->mutable_case_ref()->set_cpr(kCpr);
  EXPECT_EQ(Fingerprint(dashed), Fingerprint(plain));
}

TEST_F(RequestFingerprintTest, IsDeterministic) {
  EXPECT_EQ(Fingerprint(ValidRefusal()), Fingerprint(ValidRefusal()));
}

TEST_F(RequestFingerprintTest, DiffersWhenTheContentDiffers) {
  RecordDecisionRequest other = ValidRefusal();
  other.mutable_decision()->mutable_offer()->set_code("LAB-virksomhedspraktik");
  EXPECT_NE(Fingerprint(ValidRefusal()), Fingerprint(other));
}

TEST_F(RequestFingerprintTest, DiffersWhenTheContextDiffers) {
  RecordDecisionRequest other = ValidRefusal();
  other.mutable_context()->mutable_actor()->set_unit("Jobcenter Aarhus, Team Unge");
  EXPECT_NE(Fingerprint(ValidRefusal()), Fingerprint(other));
}

TEST_F(RequestFingerprintTest, DiffersWhenTheCaseDiffers) {
  RecordDecisionRequest other = ValidRefusal();
  other.mutable_context()->mutable_case_ref()->set_cpr("0101901235");
  EXPECT_NE(Fingerprint(ValidRefusal()), Fingerprint(other));
}

TEST_F(RequestFingerprintTest, DiffersBetweenRequestTypes) {
  CancelAppointmentRequest cancel;
  *cancel.mutable_context() = ValidRefusal().context();
  RecordDecisionRequest empty_decision;
  *empty_decision.mutable_context() = ValidRefusal().context();
  EXPECT_NE(Fingerprint(cancel), Fingerprint(empty_decision));
}

TEST_F(RequestFingerprintTest, DoesNotContainTheCpr) {
  const std::string fingerprint = Fingerprint(ValidRefusal());
  EXPECT_THAT(fingerprint, Not(HasSubstr(kCpr)));
  EXPECT_THAT(fingerprint, Not(HasSubstr("010190-1234")));
}

// ---------------------------------------------------------------------------
// ApplyContext and ToRecordResponse

TEST(ApplyContextTest, CopiesActorOccurredAtLegalBasisAndSupersession) {
  recording::v1::RecordContext context = ValidRefusal().context();
  context.mutable_supersedes()->set_event_id("11111111-2222-8333-8444-555555555555");
  context.mutable_supersedes()->set_kind(events::v1::Supersession::KIND_CORRECTION);
  events::v1::CaseEvent event;
  ApplyContext(context, event);
  EXPECT_EQ(event.actor().unit(), context.actor().unit());
  EXPECT_EQ(event.actor().role(), common::v1::ROLE_CASEWORKER);
  EXPECT_EQ(event.occurred_at().seconds(), kNowSeconds - 3600);
  ASSERT_EQ(event.legal_basis_size(), 1);
  EXPECT_EQ(event.legal_basis(0).law(), "LAB");
  EXPECT_EQ(event.supersedes().event_id(), "11111111-2222-8333-8444-555555555555");
}

TEST(ApplyContextTest, SensitivityDefaultsToOrdinary) {
  events::v1::CaseEvent event;
  ApplyContext(ValidRefusal().context(), event);
  EXPECT_EQ(event.sensitivity(), events::v1::SENSITIVITY_ORDINARY);
}

TEST(ApplyContextTest, KeepsAGivenSensitivity) {
  recording::v1::RecordContext context = ValidRefusal().context();
  context.set_sensitivity(events::v1::SENSITIVITY_CONFIDENTIAL);
  events::v1::CaseEvent event;
  ApplyContext(context, event);
  EXPECT_EQ(event.sensitivity(), events::v1::SENSITIVITY_CONFIDENTIAL);
}

// Found by recording_request_fuzzer: bytes of fields unknown to the schema
// in a request's payload were copied into the published event.
TEST(ApplyContextTest, DropsFieldsUnknownToTheSchema) {
  RecordDecisionRequest request = ValidRefusal();
  request.mutable_context()->mutable_actor()->GetReflection()->MutableUnknownFields(
      request.mutable_context()->mutable_actor())->AddLengthDelimited(99, "0101901234");
  events::v1::Decision& decision = *request.mutable_decision();
  decision.GetReflection()->MutableUnknownFields(&decision)->AddVarint(99, 7);
  decision.mutable_offer()->GetReflection()->MutableUnknownFields(decision.mutable_offer())
      ->AddLengthDelimited(42, "personal data");
  events::v1::CaseEvent event;
  *event.mutable_decision() = request.decision();
  ApplyContext(request.context(), event);

  const auto unknown = [](const google::protobuf::Message& m) {
    return m.GetReflection()->GetUnknownFields(m).field_count();
  };
  EXPECT_EQ(unknown(event.actor()), 0);
  EXPECT_EQ(unknown(event.decision()), 0);
  EXPECT_EQ(unknown(event.decision().offer()), 0);
  EXPECT_EQ(event.decision().offer().code(), "LAB-mentor");
  EXPECT_THAT(event.SerializeAsString(), Not(HasSubstr("personal data")));
  EXPECT_THAT(event.SerializeAsString(), Not(HasSubstr("0101901234")));
}

TEST(ToRecordResponseTest, CarriesTheEventsIdentity) {
  RecordOutcome outcome;
  outcome.event.set_id("0b3f5a2c-8d41-8e7a-9c10-5f2b7e4d1a60");
  outcome.event.set_subject(std::string(64, 'a'));
  outcome.event.set_sequence(7);
  outcome.event.mutable_recorded_at()->set_seconds(kNowSeconds);
  outcome.record_id = "D-000007";
  outcome.replayed = true;
  const recording::v1::RecordResponse response = ToRecordResponse(outcome);
  EXPECT_EQ(response.event_id(), "0b3f5a2c-8d41-8e7a-9c10-5f2b7e4d1a60");
  EXPECT_EQ(response.subject(), std::string(64, 'a'));
  EXPECT_EQ(response.sequence(), 7u);
  EXPECT_EQ(response.recorded_at().seconds(), kNowSeconds);
  EXPECT_EQ(response.record_id(), "D-000007");
  EXPECT_TRUE(response.replayed());
}

// ---------------------------------------------------------------------------
// Timestamps: what every consumer's protobuf library can convert (found by
// recording_request_fuzzer: a rescheduled appointment in the year 11476
// reached the published event; docs/fuzzing.md).

TEST(ValidateTimestampTest, AcceptsRfc3339sRange) {
  google::protobuf::Timestamp t;
  t.set_seconds(-62135596800LL);  // 0001-01-01T00:00:00Z
  EXPECT_OK(ValidateTimestamp(t, "start"));
  t.set_seconds(253402300799LL);  // 9999-12-31T23:59:59Z
  t.set_nanos(999999999);
  EXPECT_OK(ValidateTimestamp(t, "start"));
}

TEST(ValidateTimestampTest, RefusesBeyondTheRangeNamingTheField) {
  google::protobuf::Timestamp t;
  t.set_seconds(300000000000LL);  // the year 11476
  EXPECT_THAT(ValidateTimestamp(t, "start"),
              StatusIs(absl::StatusCode::kInvalidArgument, "start: not a valid timestamp"));
  t.set_seconds(-62135596801LL);
  EXPECT_THAT(ValidateTimestamp(t, "end"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                    "end: not a valid timestamp"));
  t.set_seconds(0);
  t.set_nanos(-1);
  EXPECT_THAT(ValidateTimestamp(t, "end"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                    HasSubstr("end: not a valid timestamp")));
  t.set_nanos(1000000000);
  EXPECT_THAT(ValidateTimestamp(t, "end"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                    HasSubstr("end: not a valid timestamp")));
}

// ---------------------------------------------------------------------------
// Unknown enum values. proto3 enums are open: a client with a newer or
// broken schema can send any number, and it parses. Every enum field of a
// valid request, set to a number its enum does not define, must be refused
// naming that field (found by recording_request_fuzzer, docs/fuzzing.md).

// The paths of the enum fields in `message`, as validation messages write
// them ("decision.alternatives[0].offer.administration"): every enum field
// of every present message, repeated ones by index.
void EnumPaths(const google::protobuf::Message& message, const std::string& path,
               std::vector<std::string>& paths) {
  const google::protobuf::Descriptor& descriptor = *message.GetDescriptor();
  const google::protobuf::Reflection& reflection = *message.GetReflection();
  for (int f = 0; f < descriptor.field_count(); ++f) {
    const google::protobuf::FieldDescriptor* field = descriptor.field(f);
    const std::string name = path.empty() ? field->name() : absl::StrCat(path, ".", field->name());
    if (field->is_repeated()) {
      for (int i = 0; i < reflection.FieldSize(message, field); ++i) {
        const std::string item = absl::StrCat(name, "[", i, "]");
        if (field->type() == google::protobuf::FieldDescriptor::TYPE_ENUM) paths.push_back(item);
        if (field->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE) {
          EnumPaths(reflection.GetRepeatedMessage(message, field, i), item, paths);
        }
      }
    } else if (field->type() == google::protobuf::FieldDescriptor::TYPE_ENUM) {
      paths.push_back(name);
    } else if (field->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE &&
               reflection.HasField(message, field)) {
      EnumPaths(reflection.GetMessage(message, field), name, paths);
    }
  }
}

// Sets the enum at `path` (as `EnumPaths` writes it) to `number`.
void SetEnumAt(google::protobuf::Message& message, const std::string& path, int number) {
  google::protobuf::Message* holder = &message;
  const std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t p = 0; p < parts.size(); ++p) {
    std::string name = parts[p];
    int index = -1;
    if (const size_t bracket = name.find('['); bracket != std::string::npos) {
      index = std::stoi(name.substr(bracket + 1));
      name.resize(bracket);
    }
    const google::protobuf::FieldDescriptor* field = holder->GetDescriptor()->FindFieldByName(name);
    ASSERT_NE(field, nullptr) << path;
    const google::protobuf::Reflection& reflection = *holder->GetReflection();
    if (p + 1 == parts.size()) {
      if (index >= 0) {
        reflection.SetRepeatedEnumValue(holder, field, index, number);
      } else {
        reflection.SetEnumValue(holder, field, number);
      }
      return;
    }
    holder = index >= 0 ? reflection.MutableRepeatedMessage(holder, field, index)
                        : reflection.MutableMessage(holder, field);
  }
}

// Refuses `valid` with every enum set to 99 in turn, naming the field.
template <typename Message>
void ExpectEveryUnknownEnumRefused(const Message& valid,
                                   const std::function<absl::Status(const Message&)>& validate) {
  ASSERT_OK(validate(valid));
  std::vector<std::string> paths;
  EnumPaths(valid, "", paths);
  ASSERT_FALSE(paths.empty());
  for (const std::string& path : paths) {
    SCOPED_TRACE(path);
    Message bad = valid;
    SetEnumAt(bad, path, 99);
    const absl::Status status = validate(bad);
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, StartsWith(path + ": ")));
    // The caller set it: "required" would mislead.
    EXPECT_THAT(status.message(), Not(HasSubstr("required")));
  }
}

TEST(UnknownEnumTest, EveryEnumOfADecisionIsChecked) {
  ExpectEveryUnknownEnumRefused<RecordDecisionRequest>(
      ValidRefusal(), [](const RecordDecisionRequest& r) { return Validate(r); });
}

TEST(UnknownEnumTest, EveryEnumOfABookingIsChecked) {
  BookAppointmentRequest booking = ValidBooking();
  booking.mutable_appointment()->add_attendees()->set_role(common::v1::ROLE_MENTOR);
  booking.mutable_context()->mutable_supersedes()->set_event_id("e-1");
  booking.mutable_context()->mutable_supersedes()->set_kind(
      events::v1::Supersession::KIND_CORRECTION);
  ExpectEveryUnknownEnumRefused<BookAppointmentRequest>(
      booking, [](const BookAppointmentRequest& r) { return Validate(r); });
}

TEST(UnknownEnumTest, EveryEnumOfEveryReferralStepIsChecked) {
  for (const auto status :
       {events::v1::REFERRAL_STATUS_SENT, events::v1::REFERRAL_STATUS_ASSESSED,
        events::v1::REFERRAL_STATUS_FORWARDED, events::v1::REFERRAL_STATUS_REFUSED}) {
    SCOPED_TRACE(events::v1::ReferralStatus_Name(status));
    recording::v1::RecordReferralStepRequest request;
    FillContext(*request.mutable_context());
    events::v1::Referral& step = *request.mutable_referral();
    step = ValidStep(status);
    step.mutable_from_unit()->set_id("0751-jobcenter-rf");
    if (step.has_assessment()) {
      step.mutable_assessment()->add_alternatives()->mutable_offer()->set_code("SUL-140");
    }
    ExpectEveryUnknownEnumRefused<recording::v1::RecordReferralStepRequest>(
        request, [](const recording::v1::RecordReferralStepRequest& r) -> absl::Status {
          RETURN_IF_ERROR(ValidateRecordContext(r.context(), false, kNow));
          return ValidateReferralStep(r.referral(), "referral");
        });
  }
}

}  // namespace
}  // namespace casebridge
