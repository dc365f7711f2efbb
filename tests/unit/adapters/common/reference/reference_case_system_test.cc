// The reference case system over a TempDir file with a test profile (prefixes
// D-/A-/R-, a two-offer catalogue): idempotency, appointments, decisions, the
// referral state machine, withdrawal of records, restarts and the schema.
#include "adapters/common/reference/reference_case_system.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "adapters/common/case_system_adapter.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/clock.h"
#include "services/common/proto_time.h"
#include "services/common/sql.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge::reference {
namespace {

using ::casebridge::events::v1::Appointment;
using ::casebridge::events::v1::Decision;
using ::casebridge::events::v1::Referral;
using ::casebridge::events::v1::ReferralStatus;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::StatusIs;
using ::casebridge::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kSubject[] = "3f1c0a9e";
constexpr char kOtherSubject[] = "77b2d4c1";
constexpr char kCpr[] = "0101701234";

const absl::Time kNow = absl::FromUnixSeconds(1767261600);  // 2026-01-01 10:00 UTC
const absl::Time kBookedStart = kNow + absl::Hours(24);

// A system of its own, so that these tests do not depend on any real
// administration's catalogue.
ReferenceSystemProfile TestProfile() {
  return ReferenceSystemProfile{
      .name = "test",
      .decision_prefix = "D-",
      .appointment_prefix = "A-",
      .referral_prefix = "R-",
      .offers = {{"LAB-mentor", "Mentorstøtte", common::v1::ADMINISTRATION_JOB_CENTRE},
                 {"SUL-140", "Genoptræning", common::v1::ADMINISTRATION_HEALTH}},
  };
}

common::v1::Unit UnitWithId(const std::string& id) {
  common::v1::Unit unit;
  unit.set_id(id);
  return unit;
}

class ReferenceCaseSystemTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  std::string DatabasePath() const { return dir_.File("system.db"); }

  void Open() {
    config::v1::ReferenceSystemConfig config;
    config.set_database_path(DatabasePath());
    auto adapter = NewReferenceCaseSystem(TestProfile(), config, clock_);
    ASSERT_THAT(adapter, IsOk());
    adapter_ = *std::move(adapter);
  }

  // Simulates a restart: the adapter (and its connection) goes away and a
  // new one opens the same file.
  void Reopen() {
    adapter_.reset();
    Open();
  }

  static CallOptions Key(const std::string& key) { return CallOptions{.idempotency_key = key}; }
  static Citizen Case(const std::string& subject = kSubject) {
    return Citizen{.subject = subject, .cpr = kCpr};
  }

  // --- decisions and appointments ------------------------------------------

  absl::StatusOr<std::string> Decide(const std::string& key, const std::string& subject = kSubject,
                                     const std::string& offer = "LAB-mentor") {
    Decision decision;
    decision.set_outcome(events::v1::DECISION_OUTCOME_GRANTED);
    decision.mutable_offer()->set_code(offer);
    return adapter_->RecordDecision(Key(key), Case(subject), decision);
  }

  absl::StatusOr<std::string> Book(const std::string& key, const std::string& subject = kSubject) {
    Appointment appointment;
    appointment.set_kind(events::v1::APPOINTMENT_KIND_FOLLOW_UP_CONVERSATION);
    appointment.mutable_start()->set_seconds(absl::ToUnixSeconds(kBookedStart));
    appointment.mutable_end()->set_seconds(absl::ToUnixSeconds(kBookedStart + absl::Hours(1)));
    appointment.mutable_location()->set_name("Jobcenter Aarhus");
    return adapter_->BookAppointment(Key(key), Case(subject), appointment);
  }

  absl::StatusOr<Appointment> Reschedule(const std::string& key, const std::string& id,
                                         absl::Time start, const std::string& subject = kSubject) {
    AppointmentChange change{.appointment_id = id,
                             .start = start,
                             .end = start + absl::Hours(1),
                             .location = std::nullopt,
                             .reason = "caseworker ill"};
    return adapter_->RescheduleAppointment(Key(key), Case(subject), change);
  }

  absl::StatusOr<Appointment> Cancel(const std::string& key, const std::string& id,
                                     const std::string& subject = kSubject) {
    return adapter_->CancelAppointment(Key(key), Case(subject), id, "citizen moved");
  }

  absl::StatusOr<Appointment> Attend(const std::string& key, const std::string& id, bool attended,
                                     const std::string& subject = kSubject) {
    return adapter_->RecordAttendance(Key(key), Case(subject), id, attended);
  }

  absl::Status Withdraw(const std::string& key, const std::string& record_id,
                        const std::string& subject = kSubject) {
    return adapter_->CancelRecord(Key(key), Case(subject), record_id);
  }

  // --- referrals -----------------------------------------------------------

  // Records one step; `edit` adds what the step needs. Keys are unique per
  // call unless given.
  absl::StatusOr<Referral> Step(ReferralStatus status, const std::string& referral_id,
                                const std::function<void(Referral&)>& edit = nullptr,
                                const std::string& subject = kSubject, std::string key = "") {
    Referral referral;
    referral.set_referral_id(referral_id);
    referral.set_status(status);
    if (edit) edit(referral);
    if (key.empty()) key = "step-" + std::to_string(++steps_);
    return adapter_->RecordReferralStep(Key(key), Case(subject), referral);
  }

  // Sends a referral from here to the rehabilitation offer and returns its id.
  std::string Send(const std::string& offer = "SUL-140") {
    absl::StatusOr<Referral> sent = Step(events::v1::REFERRAL_STATUS_SENT, "", [&](Referral& r) {
      r.mutable_offer()->set_code(offer);
      *r.mutable_from_unit() = UnitWithId("0751-jobcenter-rf");
      *r.mutable_to_unit() = UnitWithId("0751-sundhed-wrong");
    });
    EXPECT_OK(sent);
    return sent.ok() ? sent->referral_id() : "";
  }

  // Receives another system's referral `id` here, with the offer and units
  // its SENT event carried.
  absl::StatusOr<Referral> Receive(const std::string& id, const std::string& offer = "SUL-140") {
    return Step(events::v1::REFERRAL_STATUS_RECEIVED, id, [&](Referral& r) {
      r.mutable_offer()->set_code(offer);
      *r.mutable_from_unit() = UnitWithId("0751-jobcenter-rf");
      *r.mutable_to_unit() = UnitWithId("0751-sundhed-genoptraening");
    });
  }

  absl::StatusOr<Referral> Waitlist(const std::string& id, absl::Time estimate) {
    return Step(events::v1::REFERRAL_STATUS_WAITLISTED, id, [&](Referral& r) {
      *r.mutable_estimated_start() = ToProtoTimestamp(estimate);
    });
  }

  absl::StatusOr<Referral> ChangeEstimate(const std::string& id, absl::Time estimate) {
    return Step(events::v1::REFERRAL_STATUS_ESTIMATE_CHANGED, id, [&](Referral& r) {
      *r.mutable_estimated_start() = ToProtoTimestamp(estimate);
    });
  }

  absl::StatusOr<Referral> Forward(const std::string& id, const std::string& unit) {
    return Step(events::v1::REFERRAL_STATUS_FORWARDED, id,
                [&](Referral& r) { *r.mutable_forwarded_to() = UnitWithId(unit); });
  }

  // Records `path` on referral `id` (the first step RECEIVED of another
  // system's referral, or SENT from here); returns the id, or "" after a
  // failed step.
  std::string Walk(const std::vector<ReferralStatus>& path, std::string id = "SR-000042") {
    ReferralStatus previous = events::v1::REFERRAL_STATUS_UNSPECIFIED;
    for (ReferralStatus status : path) {
      absl::StatusOr<Referral> recorded;
      if (status == events::v1::REFERRAL_STATUS_SENT) {
        id = Send();
        previous = status;
        continue;
      }
      if (status == events::v1::REFERRAL_STATUS_RECEIVED &&
          previous == events::v1::REFERRAL_STATUS_UNSPECIFIED) {
        recorded = Receive(id);
      } else if (status == events::v1::REFERRAL_STATUS_WAITLISTED) {
        recorded = Waitlist(id, kNow + absl::Hours(24 * 30));
      } else if (status == events::v1::REFERRAL_STATUS_ESTIMATE_CHANGED) {
        recorded = ChangeEstimate(id, kNow + absl::Hours(24 * 60));
      } else if (status == events::v1::REFERRAL_STATUS_FORWARDED) {
        recorded = Forward(id, "0751-sundhed-genoptraening-nord");
      } else {
        recorded = Step(status, id);
      }
      EXPECT_OK(recorded) << "step " << ReferralStatus_Name(status);
      if (!recorded.ok()) return "";
      previous = status;
    }
    return id;
  }

  TempDir dir_;
  FakeClock clock_{kNow};
  std::unique_ptr<CaseSystemAdapter> adapter_;
  int steps_ = 0;
};

// ---------------------------------------------------------------------------
// Decisions and idempotency

TEST_F(ReferenceCaseSystemTest, RecordsADecisionAndReturnsItsId) {
  auto id = Decide("k1");

  ASSERT_THAT(id, IsOk());
  EXPECT_EQ(*id, "D-000001");
}

TEST_F(ReferenceCaseSystemTest, RepeatedKeyReturnsTheSameIdAndRecordsOnce) {
  auto first = Decide("k1");
  ASSERT_THAT(first, IsOk());

  EXPECT_EQ(Decide("k1").value(), *first);
  // Had the repeat recorded a second decision, the next one would be 3.
  EXPECT_EQ(Decide("k2").value(), "D-000002");
  Reopen();
  EXPECT_EQ(Decide("k1").value(), *first);
  EXPECT_EQ(Decide("k3").value(), "D-000003");
}

TEST_F(ReferenceCaseSystemTest, KeyReusedForAnotherOperationOrCaseIsInvalidArgument) {
  ASSERT_THAT(Decide("k1"), IsOk());

  EXPECT_THAT(Book("k1"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("idempotency")));
  EXPECT_THAT(Decide("k1", kOtherSubject), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ReferenceCaseSystemTest, DecisionOnAnOfferOutsideTheCatalogueIsInvalidArgument) {
  EXPECT_THAT(Decide("k1", kSubject, "SEL-85"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("decision.offer.code: not in the test catalogue")));
  // Nothing was recorded and the key is not used up.
  EXPECT_EQ(Decide("k1").value(), "D-000001");
}

// ---------------------------------------------------------------------------
// Appointments

TEST_F(ReferenceCaseSystemTest, BookedAppointmentSurvivesARestart) {
  auto id = Book("book");
  ASSERT_THAT(id, IsOk());
  EXPECT_THAT(*id, StartsWith("A-"));

  Reopen();
  auto moved = Reschedule("move", *id, kBookedStart + absl::Hours(48));

  ASSERT_THAT(moved, IsOk());
  EXPECT_EQ(moved->appointment_id(), *id);
  EXPECT_EQ(moved->status(), events::v1::APPOINTMENT_STATUS_RESCHEDULED);
  EXPECT_EQ(ToAbslTime(moved->previous_start()), kBookedStart);
  EXPECT_EQ(ToAbslTime(moved->start()), kBookedStart + absl::Hours(48));
  EXPECT_EQ(moved->location().name(), "Jobcenter Aarhus");
  EXPECT_EQ(moved->reason(), "caseworker ill");
}

TEST_F(ReferenceCaseSystemTest, RepeatedRescheduleReturnsTheFirstResultAndChangesNothing) {
  const std::string id = Book("book").value();
  const absl::Time first_start = kBookedStart + absl::Hours(48);
  ASSERT_THAT(Reschedule("move", id, first_start), IsOk());

  auto repeated = Reschedule("move", id, kBookedStart + absl::Hours(96));

  ASSERT_THAT(repeated, IsOk());
  EXPECT_EQ(ToAbslTime(repeated->start()), first_start);
  EXPECT_EQ(ToAbslTime(repeated->previous_start()), kBookedStart);
  // The stored appointment still starts at `first_start`.
  auto next = Reschedule("move-again", id, kBookedStart + absl::Hours(72));
  ASSERT_THAT(next, IsOk());
  EXPECT_EQ(ToAbslTime(next->previous_start()), first_start);
}

TEST_F(ReferenceCaseSystemTest, RescheduleOfUnknownAppointmentIsNotFound) {
  EXPECT_THAT(Reschedule("move", "A-999999", kBookedStart),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("appointment A-999999 not found on this case")));
}

TEST_F(ReferenceCaseSystemTest, AppointmentOfAnotherCaseIsNotFound) {
  const std::string id = Book("book", kOtherSubject).value();

  EXPECT_THAT(Reschedule("move", id, kBookedStart), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Cancel("cancel", id), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Attend("attend", id, true), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ReferenceCaseSystemTest, CancelSetsStatusAndReason) {
  const std::string id = Book("book").value();

  auto cancelled = Cancel("cancel", id);

  ASSERT_THAT(cancelled, IsOk());
  EXPECT_EQ(cancelled->appointment_id(), id);
  EXPECT_EQ(cancelled->status(), events::v1::APPOINTMENT_STATUS_CANCELLED);
  EXPECT_EQ(cancelled->reason(), "citizen moved");
}

TEST_F(ReferenceCaseSystemTest, CancelledAppointmentCannotBeRescheduledOrCancelledAgain) {
  const std::string id = Book("book").value();
  ASSERT_THAT(Cancel("cancel", id), IsOk());

  EXPECT_THAT(Reschedule("move", id, kBookedStart),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("cancelled")));
  EXPECT_THAT(Cancel("cancel-again", id), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(ReferenceCaseSystemTest, RecordsAttendanceAndNoShow) {
  const std::string attended_id = Book("book-1").value();
  const std::string missed_id = Book("book-2").value();

  auto attended = Attend("attend", attended_id, true);
  auto missed = Attend("miss", missed_id, false);

  ASSERT_THAT(attended, IsOk());
  EXPECT_EQ(attended->appointment_id(), attended_id);
  EXPECT_EQ(attended->status(), events::v1::APPOINTMENT_STATUS_ATTENDED);
  ASSERT_THAT(missed, IsOk());
  EXPECT_EQ(missed->status(), events::v1::APPOINTMENT_STATUS_NO_SHOW);
  EXPECT_THAT(Reschedule("move", attended_id, kBookedStart),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(Attend("attend-again", missed_id, true),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(ReferenceCaseSystemTest, RescheduleEndingBeforeItStartsIsInvalidArgument) {
  const std::string id = Book("book").value();
  AppointmentChange change{.appointment_id = id,
                           .start = kBookedStart,
                           .end = kBookedStart - absl::Minutes(30),
                           .location = std::nullopt,
                           .reason = ""};

  EXPECT_THAT(adapter_->RescheduleAppointment(Key("move"), Case(), change),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ReferenceCaseSystemTest, PassedDeadlineIsDeadlineExceededAndRecordsNothing) {
  CallOptions late{.idempotency_key = "k1", .deadline = kNow - absl::Seconds(1)};

  EXPECT_THAT(adapter_->RecordDecision(late, Case(), Decision()),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(Decide("k2").value(), "D-000001");
}

// ---------------------------------------------------------------------------
// Withdrawing records (CancelRecord)

TEST_F(ReferenceCaseSystemTest, WithdrawnAppointmentCannotBeRescheduled) {
  const std::string id = Book("book").value();

  ASSERT_OK(Withdraw("withdraw", id));

  EXPECT_THAT(Reschedule("move", id, kBookedStart + absl::Hours(2)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("appointment " + id + " is withdrawn")));
  EXPECT_THAT(Attend("attend", id, true), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(ReferenceCaseSystemTest, WithdrawnStateSurvivesARestart) {
  const std::string id = Book("book").value();
  ASSERT_OK(Withdraw("withdraw", id));

  Reopen();

  EXPECT_THAT(Cancel("cancel", id),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("withdrawn")));
}

TEST_F(ReferenceCaseSystemTest, DecisionCanBeWithdrawnOnce) {
  const std::string id = Decide("decide").value();

  ASSERT_OK(Withdraw("withdraw-1", id));

  EXPECT_THAT(Withdraw("withdraw-2", id),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("decision " + id + " is already withdrawn")));
}

TEST_F(ReferenceCaseSystemTest, RepeatedWithdrawKeyIsOkAndChangesNothing) {
  const std::string id = Decide("decide").value();
  ASSERT_OK(Withdraw("withdraw-1", id));

  EXPECT_OK(Withdraw("withdraw-1", id));
}

TEST_F(ReferenceCaseSystemTest, WithdrawingAnUnknownRecordIsNotFound) {
  EXPECT_THAT(Withdraw("withdraw", "D-999999"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("record D-999999 not found on this case")));
}

TEST_F(ReferenceCaseSystemTest, WithdrawingAnotherCasesRecordIsNotFound) {
  const std::string decision = Decide("decide", kOtherSubject).value();
  const std::string appointment = Book("book", kOtherSubject).value();

  EXPECT_THAT(Withdraw("withdraw-1", decision), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Withdraw("withdraw-2", appointment), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ReferenceCaseSystemTest, WithdrawingAReferralTakesBackItsLatestStep) {
  const std::string id = Walk({events::v1::REFERRAL_STATUS_RECEIVED,
                               events::v1::REFERRAL_STATUS_ASSESSED});

  ASSERT_OK(Withdraw("withdraw", id));

  // Back at RECEIVED: the assessment can be recorded again, acceptance not.
  EXPECT_THAT(Step(events::v1::REFERRAL_STATUS_ACCEPTED, id),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("referral SR-000042: accepted cannot follow received")));
  EXPECT_OK(Step(events::v1::REFERRAL_STATUS_ASSESSED, id));
}

TEST_F(ReferenceCaseSystemTest, ReferralWithEveryStepWithdrawnHasNothingLeftToWithdraw) {
  const std::string id = Walk({events::v1::REFERRAL_STATUS_RECEIVED});
  ASSERT_OK(Withdraw("withdraw-1", id));

  EXPECT_THAT(Withdraw("withdraw-2", id),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no step left")));
}

// ---------------------------------------------------------------------------
// Referrals: sending and receiving

TEST_F(ReferenceCaseSystemTest, SendAssignsAReferralIdWithTheSystemsPrefix) {
  EXPECT_EQ(Send(), "R-000001");
  EXPECT_EQ(Send(), "R-000002");
}

TEST_F(ReferenceCaseSystemTest, SendMayNameAnotherAdministrationsOffer) {
  absl::StatusOr<Referral> sent =
      Step(events::v1::REFERRAL_STATUS_SENT, "", [](Referral& r) {
        r.mutable_offer()->set_code("SEL-85");
        *r.mutable_to_unit() = UnitWithId("0751-socialcenter");
      });

  ASSERT_OK(sent);
  EXPECT_EQ(sent->offer().code(), "SEL-85");
  EXPECT_EQ(sent->status(), events::v1::REFERRAL_STATUS_SENT);
}

TEST_F(ReferenceCaseSystemTest, SendWithAReferralIdIsInvalidArgument) {
  EXPECT_THAT(Step(events::v1::REFERRAL_STATUS_SENT, "R-000009"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("referral.referral_id")));
}

TEST_F(ReferenceCaseSystemTest, ReceivingAnotherSystemsReferralStartsItsChainHere) {
  absl::StatusOr<Referral> received = Receive("SR-000042");

  ASSERT_OK(received);
  EXPECT_EQ(received->referral_id(), "SR-000042");
  EXPECT_EQ(received->status(), events::v1::REFERRAL_STATUS_RECEIVED);
  EXPECT_EQ(received->to_unit().id(), "0751-sundhed-genoptraening");
}

TEST_F(ReferenceCaseSystemTest, ReceivedOfferOutsideTheCatalogueIsInvalidArgument) {
  EXPECT_THAT(Receive("SR-000042", "SEL-85"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("referral.offer.code: not in the test catalogue")));
}

TEST_F(ReferenceCaseSystemTest, ReceivingAnUnknownReferralWithoutItsOfferIsInvalidArgument) {
  EXPECT_THAT(Step(events::v1::REFERRAL_STATUS_RECEIVED, "SR-000042"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("referral.offer: required (the referral is new to the test "
                                 "system)")));
}

TEST_F(ReferenceCaseSystemTest, ReferralSentWithinTheSystemIsReceivedWithItsOffer) {
  const std::string id = Send();

  absl::StatusOr<Referral> received = Step(events::v1::REFERRAL_STATUS_RECEIVED, id);

  ASSERT_OK(received);
  EXPECT_EQ(received->offer().code(), "SUL-140");
  EXPECT_EQ(received->from_unit().id(), "0751-jobcenter-rf");
}

TEST_F(ReferenceCaseSystemTest, StepOnAnUnknownReferralIsNotFound) {
  EXPECT_THAT(Step(events::v1::REFERRAL_STATUS_ASSESSED, "SR-000099"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("referral SR-000099 not found on this case")));
}

TEST_F(ReferenceCaseSystemTest, AnotherCasesReferralIsNotFound) {
  ASSERT_OK(Receive("SR-000042"));

  EXPECT_THAT(Step(events::v1::REFERRAL_STATUS_ASSESSED, "SR-000042", nullptr, kOtherSubject),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ReferenceCaseSystemTest, LaterStepsCarryTheReferralsOfferAndUnits) {
  const std::string id = Walk({events::v1::REFERRAL_STATUS_RECEIVED});

  absl::StatusOr<Referral> assessed = Step(events::v1::REFERRAL_STATUS_ASSESSED, id);

  ASSERT_OK(assessed);
  EXPECT_EQ(assessed->offer().code(), "SUL-140");
  EXPECT_EQ(assessed->from_unit().id(), "0751-jobcenter-rf");
  EXPECT_EQ(assessed->to_unit().id(), "0751-sundhed-genoptraening");
}

TEST_F(ReferenceCaseSystemTest, RepeatedStepKeyReturnsTheFirstResultAndRecordsOnce) {
  const std::string id = Walk({events::v1::REFERRAL_STATUS_RECEIVED});
  absl::StatusOr<Referral> first =
      Step(events::v1::REFERRAL_STATUS_ASSESSED, id, nullptr, kSubject, "assess");
  ASSERT_OK(first);

  absl::StatusOr<Referral> again =
      Step(events::v1::REFERRAL_STATUS_ASSESSED, id, nullptr, kSubject, "assess");

  ASSERT_OK(again);
  EXPECT_EQ(again->SerializeAsString(), first->SerializeAsString());
  // Recorded once: the next step follows ASSESSED.
  EXPECT_OK(Step(events::v1::REFERRAL_STATUS_ACCEPTED, id));
}

// ---------------------------------------------------------------------------
// Referrals: the state machine

struct Path {
  std::string name;
  std::vector<ReferralStatus> steps;
};

void PrintTo(const Path& path, std::ostream* os) { *os << path.name; }

class AllowedReferralPathTest : public ReferenceCaseSystemTest,
                                public ::testing::WithParamInterface<Path> {};

// Together the paths take every allowed transition at least once.
TEST_P(AllowedReferralPathTest, EveryStepIsAccepted) {
  EXPECT_NE(Walk(GetParam().steps), "");
}

using enum ::casebridge::events::v1::ReferralStatus;

INSTANTIATE_TEST_SUITE_P(
    Paths, AllowedReferralPathTest,
    ::testing::Values(
        Path{"WaitlistedWithEstimateChangesThenEnded",
             {REFERRAL_STATUS_RECEIVED, REFERRAL_STATUS_ASSESSED, REFERRAL_STATUS_ACCEPTED,
              REFERRAL_STATUS_WAITLISTED, REFERRAL_STATUS_ESTIMATE_CHANGED,
              REFERRAL_STATUS_ESTIMATE_CHANGED, REFERRAL_STATUS_STARTED, REFERRAL_STATUS_ENDED}},
        Path{"AssessedAndRefused",
             {REFERRAL_STATUS_RECEIVED, REFERRAL_STATUS_ASSESSED, REFERRAL_STATUS_REFUSED}},
        Path{"AcceptedStraightToStartedThenInterrupted",
             {REFERRAL_STATUS_RECEIVED, REFERRAL_STATUS_ASSESSED, REFERRAL_STATUS_ACCEPTED,
              REFERRAL_STATUS_STARTED, REFERRAL_STATUS_INTERRUPTED}},
        Path{"WaitlistedThenStarted",
             {REFERRAL_STATUS_RECEIVED, REFERRAL_STATUS_ASSESSED, REFERRAL_STATUS_ACCEPTED,
              REFERRAL_STATUS_WAITLISTED, REFERRAL_STATUS_STARTED, REFERRAL_STATUS_ENDED}},
        Path{"ForwardedAndReceivedAgain",
             {REFERRAL_STATUS_RECEIVED, REFERRAL_STATUS_FORWARDED, REFERRAL_STATUS_RECEIVED,
              REFERRAL_STATUS_ASSESSED}},
        Path{"SentAndReceivedWithinTheSystem",
             {REFERRAL_STATUS_SENT, REFERRAL_STATUS_RECEIVED, REFERRAL_STATUS_ASSESSED}}),
    [](const auto& info) { return info.param.name; });

struct ForbiddenStep {
  std::vector<ReferralStatus> before;
  ReferralStatus next;
  std::string message;
};

void PrintTo(const ForbiddenStep& step, std::ostream* os) { *os << step.message; }

class ForbiddenReferralStepTest : public ReferenceCaseSystemTest,
                                  public ::testing::WithParamInterface<ForbiddenStep> {};

TEST_P(ForbiddenReferralStepTest, IsFailedPreconditionNamingBothSteps) {
  const std::string id = Walk(GetParam().before);
  ASSERT_NE(id, "");

  EXPECT_THAT(Step(GetParam().next, id),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("referral " + id + ": " + GetParam().message)));
}

INSTANTIATE_TEST_SUITE_P(
    Samples, ForbiddenReferralStepTest,
    ::testing::Values(
        ForbiddenStep{{REFERRAL_STATUS_RECEIVED}, REFERRAL_STATUS_ACCEPTED,
                      "accepted cannot follow received"},
        ForbiddenStep{{REFERRAL_STATUS_RECEIVED}, REFERRAL_STATUS_RECEIVED,
                      "received cannot follow received"},
        ForbiddenStep{{REFERRAL_STATUS_RECEIVED}, REFERRAL_STATUS_STARTED,
                      "started cannot follow received"},
        ForbiddenStep{{REFERRAL_STATUS_SENT}, REFERRAL_STATUS_ASSESSED,
                      "assessed cannot follow sent"},
        ForbiddenStep{{REFERRAL_STATUS_RECEIVED, REFERRAL_STATUS_ASSESSED},
                      REFERRAL_STATUS_WAITLISTED, "waitlisted cannot follow assessed"},
        ForbiddenStep{{REFERRAL_STATUS_RECEIVED, REFERRAL_STATUS_ASSESSED},
                      REFERRAL_STATUS_FORWARDED, "forwarded cannot follow assessed"},
        ForbiddenStep{{REFERRAL_STATUS_RECEIVED, REFERRAL_STATUS_ASSESSED,
                       REFERRAL_STATUS_ACCEPTED},
                      REFERRAL_STATUS_ESTIMATE_CHANGED, "estimate-changed cannot follow accepted"},
        ForbiddenStep{{REFERRAL_STATUS_RECEIVED, REFERRAL_STATUS_ASSESSED,
                       REFERRAL_STATUS_REFUSED},
                      REFERRAL_STATUS_ACCEPTED, "accepted cannot follow refused"},
        ForbiddenStep{{REFERRAL_STATUS_RECEIVED, REFERRAL_STATUS_FORWARDED},
                      REFERRAL_STATUS_ASSESSED, "assessed cannot follow forwarded"},
        ForbiddenStep{{REFERRAL_STATUS_RECEIVED, REFERRAL_STATUS_ASSESSED,
                       REFERRAL_STATUS_ACCEPTED, REFERRAL_STATUS_STARTED},
                      REFERRAL_STATUS_WAITLISTED, "waitlisted cannot follow started"},
        ForbiddenStep{{REFERRAL_STATUS_RECEIVED, REFERRAL_STATUS_ASSESSED,
                       REFERRAL_STATUS_ACCEPTED, REFERRAL_STATUS_STARTED,
                       REFERRAL_STATUS_ENDED},
                      REFERRAL_STATUS_STARTED, "started cannot follow ended"}));

TEST_F(ReferenceCaseSystemTest, ReceivedAfterForwardingIsAtTheUnitItWasForwardedTo) {
  const std::string id = Walk({REFERRAL_STATUS_RECEIVED});
  ASSERT_OK(Forward(id, "0751-sundhed-genoptraening-nord"));

  absl::StatusOr<Referral> received = Step(REFERRAL_STATUS_RECEIVED, id);

  ASSERT_OK(received);
  EXPECT_EQ(received->to_unit().id(), "0751-sundhed-genoptraening-nord");
  EXPECT_EQ(received->offer().code(), "SUL-140");
}

TEST_F(ReferenceCaseSystemTest, ReceivedByAnotherUnitThanItWasForwardedToIsFailedPrecondition) {
  const std::string id = Walk({REFERRAL_STATUS_RECEIVED});
  ASSERT_OK(Forward(id, "0751-sundhed-genoptraening-nord"));

  EXPECT_THAT(Step(REFERRAL_STATUS_RECEIVED, id,
                   [](Referral& r) { *r.mutable_to_unit() = UnitWithId("0751-sundhed-syd"); }),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("forwarded to unit 0751-sundhed-genoptraening-nord")));
}

TEST_F(ReferenceCaseSystemTest, EstimateChangeFillsThePreviousEstimate) {
  const absl::Time first = kNow + absl::Hours(24 * 30);
  const absl::Time second = kNow + absl::Hours(24 * 45);
  const absl::Time third = kNow + absl::Hours(24 * 20);
  const std::string id =
      Walk({REFERRAL_STATUS_RECEIVED, REFERRAL_STATUS_ASSESSED, REFERRAL_STATUS_ACCEPTED});
  ASSERT_OK(Waitlist(id, first));

  absl::StatusOr<Referral> changed = ChangeEstimate(id, second);
  absl::StatusOr<Referral> changed_again = ChangeEstimate(id, third);

  ASSERT_OK(changed);
  EXPECT_EQ(ToAbslTime(changed->previous_estimated_start()), first);
  EXPECT_EQ(ToAbslTime(changed->estimated_start()), second);
  ASSERT_OK(changed_again);
  EXPECT_EQ(ToAbslTime(changed_again->previous_estimated_start()), second);
  EXPECT_EQ(ToAbslTime(changed_again->estimated_start()), third);
}

TEST_F(ReferenceCaseSystemTest, FirstEstimateAfterAWaitlistWithoutOneHasNoPreviousEstimate) {
  const std::string id =
      Walk({REFERRAL_STATUS_RECEIVED, REFERRAL_STATUS_ASSESSED, REFERRAL_STATUS_ACCEPTED});
  ASSERT_OK(Step(REFERRAL_STATUS_WAITLISTED, id));

  absl::StatusOr<Referral> changed = ChangeEstimate(id, kNow + absl::Hours(24 * 30));

  ASSERT_OK(changed);
  EXPECT_FALSE(changed->has_previous_estimated_start());
  EXPECT_EQ(ToAbslTime(changed->estimated_start()), kNow + absl::Hours(24 * 30));
}

TEST_F(ReferenceCaseSystemTest, ReferralStateSurvivesARestart) {
  const std::string id = Walk({REFERRAL_STATUS_RECEIVED, REFERRAL_STATUS_ASSESSED,
                               REFERRAL_STATUS_ACCEPTED});
  ASSERT_OK(Waitlist(id, kNow + absl::Hours(24 * 30)));

  Reopen();

  EXPECT_THAT(Step(REFERRAL_STATUS_ASSESSED, id),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("assessed cannot follow waitlisted")));
  absl::StatusOr<Referral> changed = ChangeEstimate(id, kNow + absl::Hours(24 * 40));
  ASSERT_OK(changed);
  EXPECT_EQ(ToAbslTime(changed->previous_estimated_start()), kNow + absl::Hours(24 * 30));
  EXPECT_EQ(Send(), "R-000001");
  Reopen();
  EXPECT_EQ(Send(), "R-000002");
}

// ---------------------------------------------------------------------------
// Storage

TEST_F(ReferenceCaseSystemTest, NeverStoresTheCprNumber) {
  const std::string id = Book("book").value();
  ASSERT_THAT(Decide("decide"), IsOk());
  ASSERT_THAT(Reschedule("move", id, kBookedStart + absl::Hours(2)), IsOk());
  ASSERT_NE(Walk({REFERRAL_STATUS_SENT, REFERRAL_STATUS_RECEIVED}), "");
  adapter_.reset();

  for (const auto& file : std::filesystem::directory_iterator(dir_.path())) {
    std::ifstream in(file.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_THAT(bytes, Not(HasSubstr(kCpr))) << file.path();
    EXPECT_THAT(bytes, HasSubstr(kSubject)) << file.path();
  }
}

TEST_F(ReferenceCaseSystemTest, DatabaseWithNewerSchemaIsRefused) {
  adapter_.reset();
  {
    auto db = sql::Database::Open(DatabasePath());
    ASSERT_THAT(db, IsOk());
    ASSERT_THAT((*db)->Exec("PRAGMA user_version = 3"), IsOk());
  }
  config::v1::ReferenceSystemConfig config;
  config.set_database_path(DatabasePath());

  EXPECT_THAT(NewReferenceCaseSystem(TestProfile(), config, clock_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("schema version 3")));
}

TEST(ReferenceCaseSystemSchemaTest, FileOfTheFirstSchemaIsMigratedKeepingItsRecords) {
  TempDir dir;
  FakeClock clock(kNow);
  const std::string path = dir.File("v1.db");
  {
    auto db = sql::Database::Open(path);
    ASSERT_OK(db);
    // Version 1, as the job-centre reference system wrote it.
    ASSERT_OK((*db)->Exec(R"sql(
      CREATE TABLE decisions (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
        subject TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE, body BLOB NOT NULL,
        created_at INTEGER NOT NULL);
      CREATE TABLE appointments (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
        subject TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE, body BLOB NOT NULL,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
      CREATE TABLE idempotency (idempotency_key TEXT PRIMARY KEY, operation TEXT NOT NULL,
        subject TEXT NOT NULL, result BLOB NOT NULL, created_at INTEGER NOT NULL);
      INSERT INTO decisions VALUES (1, 'D-000001', '3f1c0a9e', 'old-key', x'', 0);
      PRAGMA user_version = 1;
    )sql"));
  }
  config::v1::ReferenceSystemConfig config;
  config.set_database_path(path);

  auto adapter = NewReferenceCaseSystem(TestProfile(), config, clock);

  ASSERT_OK(adapter);
  EXPECT_OK((*adapter)->CancelRecord(CallOptions{.idempotency_key = "withdraw"},
                                     Citizen{.subject = kSubject, .cpr = ""}, "D-000001"));
  Decision decision;
  decision.mutable_offer()->set_code("LAB-mentor");
  EXPECT_EQ((*adapter)
                ->RecordDecision(CallOptions{.idempotency_key = "new-key"},
                                 Citizen{.subject = kSubject, .cpr = ""}, decision)
                .value(),
            "D-000002");
}

TEST(ReferenceCaseSystemFactoryTest, EmptyDatabasePathIsInvalidArgument) {
  EXPECT_THAT(NewReferenceCaseSystem(TestProfile(), config::v1::ReferenceSystemConfig()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("database_path")));
}

}  // namespace
}  // namespace casebridge::reference
