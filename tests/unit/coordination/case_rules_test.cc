#include "services/coordination/case_rules.h"

#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/event_ids.h"
#include "services/common/proto_time.h"

namespace casebridge::coordination {
namespace {

namespace ev = ::casebridge::events::v1;
using ::casebridge::common::v1::ROLE_ADDICTION_CASE_MANAGER;
using ::casebridge::common::v1::ROLE_COMPANY_CONSULTANT;
using ::casebridge::common::v1::ROLE_COORDINATING_CASEWORKER;
using ::casebridge::common::v1::ROLE_HEALTH_ADMINISTRATION;
using ::casebridge::common::v1::ROLE_MENTOR;
using ::casebridge::common::v1::ROLE_SOCIAL_SERVICES;
using ::casebridge::common::v1::ROLE_UNSPECIFIED;
using ::casebridge::common::v1::Role;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::StartsWith;

const std::string kSubject(64, 'a');

// Monday 3 March 2025, 00:00 UTC.
const absl::Time kT0 = absl::FromCivil(absl::CivilDay(2025, 3, 3), absl::UTCTimeZone());

// `days` days after kT0, at `hour`:`minute` UTC.
absl::Time Day(int days, int hour = 0, int minute = 0) {
  return kT0 + absl::Hours(24 * days + hour) + absl::Minutes(minute);
}

constexpr absl::Duration kSecond = absl::Seconds(1);

std::string SourceOf(ev::SourceSystem system) {
  switch (system) {
    case ev::SOURCE_SYSTEM_JOB_CENTRE: return "/casebridge/jobcentre/0751";
    case ev::SOURCE_SYSTEM_SOCIAL: return "/casebridge/social/0751";
    case ev::SOURCE_SYSTEM_HEALTH: return "/casebridge/health/0751";
    case ev::SOURCE_SYSTEM_COORDINATION: return "/casebridge/coordination/0751";
    default: return "/casebridge/unknown/0751";
  }
}

bool IsValidKey(const std::string& key) {
  static const std::regex kKey("[A-Za-z0-9._:-]{1,128}");
  return std::regex_match(key, kKey);
}

// A case built up event by event with helper verbs. Verbs without an
// explicit time happen at `clock_`.
class CaseRulesTest : public ::testing::Test {
 protected:
  CaseRulesTest() { history_.subject = kSubject; }

  // ---- envelope ----------------------------------------------------------

  // Appends an event recorded by `system` at `at`; returns it for the verb
  // to fill in (valid until the next Append).
  ev::CaseEvent& Append(ev::SourceSystem system, absl::Time at, Role actor = ROLE_UNSPECIFIED) {
    ev::CaseEvent event;
    ++counter_;
    event.set_id(EventIdFor(SourceOf(system), absl::StrCat("test-", counter_)));
    event.set_source(SourceOf(system));
    event.set_source_system(system);
    event.set_subject(kSubject);
    event.set_municipality("0751");
    event.set_sequence(static_cast<uint64_t>(counter_));
    *event.mutable_occurred_at() = ToProtoTimestamp(at);
    event.set_sensitivity(ev::SENSITIVITY_ORDINARY);
    if (actor != ROLE_UNSPECIFIED) {
      event.mutable_actor()->set_role(actor);
      event.mutable_actor()->set_unit("unit");
    }
    history_.events.push_back(std::move(event));
    return history_.events.back();
  }

  // Sets the type once the payload is in, and returns the id.
  std::string Done(ev::CaseEvent& event) {
    event.set_type(EventTypeFor(event));
    return event.id();
  }

  ev::CaseEvent& Last() { return history_.events.back(); }

  // ---- referrals ---------------------------------------------------------

  std::string Step(const std::string& referral_id, ev::ReferralStatus status, absl::Time at,
                   ev::SourceSystem system = ev::SOURCE_SYSTEM_HEALTH) {
    ev::CaseEvent& event = Append(system, at, ROLE_HEALTH_ADMINISTRATION);
    event.mutable_referral()->set_referral_id(referral_id);
    event.mutable_referral()->set_status(status);
    event.mutable_referral()->mutable_offer()->set_code("SUL-119");
    return Done(event);
  }
  std::string Sent(const std::string& referral_id, absl::Time at) {
    return Step(referral_id, ev::REFERRAL_STATUS_SENT, at, ev::SOURCE_SYSTEM_JOB_CENTRE);
  }
  std::string Received(const std::string& referral_id, absl::Time at) {
    return Step(referral_id, ev::REFERRAL_STATUS_RECEIVED, at);
  }
  std::string Forwarded(const std::string& referral_id, absl::Time at) {
    return Step(referral_id, ev::REFERRAL_STATUS_FORWARDED, at);
  }
  std::string Refused(const std::string& referral_id, absl::Time at,
                      const std::string& reason_code = "no-capacity") {
    Step(referral_id, ev::REFERRAL_STATUS_REFUSED, at);
    Last().mutable_referral()->add_reasons()->set_code(reason_code);
    return Last().id();
  }
  std::string Assessed(const std::string& referral_id, bool in_target_group, absl::Time at) {
    Step(referral_id, ev::REFERRAL_STATUS_ASSESSED, at);
    ev::Assessment& assessment = *Last().mutable_referral()->mutable_assessment();
    assessment.set_in_target_group(in_target_group);
    if (!in_target_group) {
      assessment.add_reasons()->set_code("not-in-target-group");
      assessment.add_alternatives()->mutable_offer()->set_code("SEL-85");
    }
    return Last().id();
  }
  std::string Waitlisted(const std::string& referral_id, absl::Time at,
                         std::optional<absl::Time> estimate = std::nullopt) {
    Step(referral_id, ev::REFERRAL_STATUS_WAITLISTED, at);
    if (estimate) *Last().mutable_referral()->mutable_estimated_start() = ToProtoTimestamp(*estimate);
    return Last().id();
  }
  std::string EstimateChanged(const std::string& referral_id, absl::Time at, absl::Time estimate) {
    Step(referral_id, ev::REFERRAL_STATUS_ESTIMATE_CHANGED, at);
    *Last().mutable_referral()->mutable_estimated_start() = ToProtoTimestamp(estimate);
    return Last().id();
  }

  // ---- appointments ------------------------------------------------------

  std::string Appointment(ev::SourceSystem system, const std::string& id,
                          ev::AppointmentStatus status, std::optional<absl::Time> start,
                          std::optional<absl::Time> end, Role role,
                          ev::AppointmentKind kind = ev::APPOINTMENT_KIND_UNSPECIFIED,
                          std::optional<absl::Time> at = std::nullopt) {
    ev::CaseEvent& event = Append(system, at.value_or(clock_), role);
    ev::Appointment& appointment = *event.mutable_appointment();
    appointment.set_appointment_id(id);
    appointment.set_status(status);
    appointment.set_kind(kind);
    if (start) *appointment.mutable_start() = ToProtoTimestamp(*start);
    if (end) *appointment.mutable_end() = ToProtoTimestamp(*end);
    return Done(event);
  }
  std::string Booked(ev::SourceSystem system, const std::string& id, absl::Time start,
                     absl::Time end, Role role,
                     ev::AppointmentKind kind = ev::APPOINTMENT_KIND_NETWORK_MEETING) {
    return Appointment(system, id, ev::APPOINTMENT_STATUS_SCHEDULED, start, end, role, kind);
  }
  std::string Rescheduled(ev::SourceSystem system, const std::string& id, absl::Time start,
                          absl::Time end, Role role) {
    return Appointment(system, id, ev::APPOINTMENT_STATUS_RESCHEDULED, start, end, role);
  }
  std::string Cancelled(ev::SourceSystem system, const std::string& id, Role role) {
    return Appointment(system, id, ev::APPOINTMENT_STATUS_CANCELLED, std::nullopt, std::nullopt,
                       role);
  }
  // Attendance is reported without times: the appointment keeps its own.
  std::string Attended(ev::SourceSystem system, const std::string& id, absl::Time at, Role role) {
    return Appointment(system, id, ev::APPOINTMENT_STATUS_ATTENDED, std::nullopt, std::nullopt,
                       role, ev::APPOINTMENT_KIND_UNSPECIFIED, at);
  }
  std::string FollowUp(const std::string& id, absl::Time start) {
    return Booked(ev::SOURCE_SYSTEM_JOB_CENTRE, id, start, start + absl::Hours(1),
                  ROLE_COORDINATING_CASEWORKER, ev::APPOINTMENT_KIND_FOLLOW_UP_CONVERSATION);
  }

  // ---- roles -------------------------------------------------------------

  std::string Assigned(Role role, const std::string& recipient, bool released = false) {
    ev::CaseEvent& event = Append(ev::SOURCE_SYSTEM_COORDINATION, clock_);
    event.mutable_role_assignment()->set_role(role);
    event.mutable_role_assignment()->set_recipient(recipient);
    event.mutable_role_assignment()->set_released(released);
    return Done(event);
  }
  std::string Released(Role role, const std::string& recipient) {
    return Assigned(role, recipient, /*released=*/true);
  }

  // ---- tasks -------------------------------------------------------------

  std::string TaskEvent(const std::string& task_id, ev::TaskState state,
                        const std::string& recipient = "", Role role = ROLE_UNSPECIFIED,
                        std::optional<absl::Time> due = std::nullopt,
                        const std::string& title = "") {
    ev::CaseEvent& event = Append(ev::SOURCE_SYSTEM_COORDINATION, clock_);
    ev::Task& task = *event.mutable_task();
    task.set_task_id(task_id);
    task.set_state(state);
    task.set_title(title);
    task.set_owner_role(role);
    task.set_owner_recipient(recipient);
    if (due) *task.mutable_due() = ToProtoTimestamp(*due);
    return Done(event);
  }
  std::string TaskCreated(const std::string& task_id, Role role, const std::string& recipient,
                          std::optional<absl::Time> due,
                          const std::string& title = "Kan psykologen betales?") {
    return TaskEvent(task_id, ev::TASK_STATE_OPEN, recipient, role, due, title);
  }
  std::string TaskCompleted(const std::string& task_id) {
    return TaskEvent(task_id, ev::TASK_STATE_COMPLETED);
  }
  std::string TaskOverdue(const std::string& task_id) {
    return TaskEvent(task_id, ev::TASK_STATE_OVERDUE);
  }
  std::string TaskHandedOver(const std::string& task_id, const std::string& recipient) {
    return TaskEvent(task_id, ev::TASK_STATE_HANDED_OVER, recipient);
  }

  // ---- the rules ---------------------------------------------------------

  // What the last event of the case calls for.
  std::vector<DerivedEvent> Derive() {
    return Checked(DeriveFromEvent(history_, history_.events.back(), load_));
  }
  // What the watchdogs say at `now`.
  std::vector<DerivedEvent> Watch(absl::Time now) {
    return Checked(CheckWatchdogs(history_, now, watchdogs_));
  }

  // Every derived event, in every test: a valid key and a typed payload.
  static std::vector<DerivedEvent> Checked(std::vector<DerivedEvent> derived) {
    for (const DerivedEvent& event : derived) {
      EXPECT_TRUE(IsValidKey(event.idempotency_key)) << event.idempotency_key;
      EXPECT_NE(EventTypeFor(event.event), "") << event.event.ShortDebugString();
      EXPECT_NE(event.event.sensitivity(), ev::SENSITIVITY_UNSPECIFIED);
    }
    return derived;
  }

  CaseHistory history_;
  casebridge::config::v1::LoadConfig load_;
  casebridge::config::v1::WatchdogConfig watchdogs_;
  absl::Time clock_ = kT0;
  int counter_ = 0;
};

constexpr auto kJobCentre = ev::SOURCE_SYSTEM_JOB_CENTRE;
constexpr auto kSocial = ev::SOURCE_SYSTEM_SOCIAL;
constexpr auto kHealth = ev::SOURCE_SYSTEM_HEALTH;
constexpr auto kCoordination = ev::SOURCE_SYSTEM_COORDINATION;

// ===========================================================================
// Re-planning

TEST_F(CaseRulesTest, RefusedReferralFlagsReplanningWithItsReasons) {
  Sent("HR-000001", Day(0));
  const std::string refusal = Refused("HR-000001", Day(3), "no-capacity");
  Last().set_sensitivity(ev::SENSITIVITY_SPECIAL_HEALTH);

  const std::vector<DerivedEvent> derived = Derive();

  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(derived[0].idempotency_key, "replan:" + refusal);
  EXPECT_EQ(EventTypeFor(derived[0].event), "dk.casebridge.plan.replanning-needed.v1");
  EXPECT_EQ(derived[0].event.sensitivity(), ev::SENSITIVITY_SPECIAL_HEALTH);
  EXPECT_EQ(ToAbslTime(derived[0].event.occurred_at()), Day(3));
  const ev::ReplanningFlag& flag = derived[0].event.replanning();
  EXPECT_EQ(flag.referral_id(), "HR-000001");
  EXPECT_EQ(flag.trigger_event_id(), refusal);
  ASSERT_THAT(flag.reasons(), SizeIs(1));
  EXPECT_EQ(flag.reasons(0).code(), "no-capacity");
}

TEST_F(CaseRulesTest, AssessmentOutOfTargetGroupFlagsReplanningWithAlternatives) {
  Sent("HR-000001", Day(0));
  const std::string assessment = Assessed("HR-000001", /*in_target_group=*/false, Day(5));

  const std::vector<DerivedEvent> derived = Derive();

  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(derived[0].idempotency_key, "replan:" + assessment);
  const ev::ReplanningFlag& flag = derived[0].event.replanning();
  EXPECT_EQ(flag.trigger_event_id(), assessment);
  ASSERT_THAT(flag.reasons(), SizeIs(1));
  EXPECT_EQ(flag.reasons(0).code(), "not-in-target-group");
  ASSERT_THAT(flag.alternatives(), SizeIs(1));
  EXPECT_EQ(flag.alternatives(0).offer().code(), "SEL-85");
}

TEST_F(CaseRulesTest, AssessmentInTargetGroupFlagsNothing) {
  Sent("HR-000001", Day(0));
  Assessed("HR-000001", /*in_target_group=*/true, Day(5));

  EXPECT_THAT(Derive(), IsEmpty());
}

TEST_F(CaseRulesTest, OtherReferralStepsFlagNothing) {
  Sent("HR-000001", Day(0));
  EXPECT_THAT(Derive(), IsEmpty());
  Received("HR-000001", Day(1));
  EXPECT_THAT(Derive(), IsEmpty());
  Waitlisted("HR-000001", Day(2));
  EXPECT_THAT(Derive(), IsEmpty());
}

// ===========================================================================
// Load: double bookings

TEST_F(CaseRulesTest, OverlapAcrossSourcesWarnsBothBookersOfDoubleBooking) {
  const std::string meeting = Booked(kJobCentre, "A-000001", Day(7, 10), Day(7, 11),
                                     ROLE_COORDINATING_CASEWORKER);
  const std::string session =
      Booked(kHealth, "H-17", Day(7, 10, 30), Day(7, 12), ROLE_HEALTH_ADMINISTRATION);
  Last().set_sensitivity(ev::SENSITIVITY_SPECIAL_HEALTH);

  const std::vector<DerivedEvent> derived = Derive();

  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(derived[0].idempotency_key, "load:double:A-000001:H-17:" + session);
  EXPECT_EQ(EventTypeFor(derived[0].event), "dk.casebridge.load.double-booking.v1");
  EXPECT_EQ(derived[0].event.sensitivity(), ev::SENSITIVITY_SPECIAL_HEALTH);
  const ev::LoadWarning& warning = derived[0].event.load_warning();
  EXPECT_THAT(warning.appointment_ids(), ElementsAre("H-17", "A-000001"));
  EXPECT_THAT(warning.appointment_event_ids(), ElementsAre(session, meeting));
  EXPECT_EQ(ToAbslTime(warning.day()), Day(7));
  EXPECT_THAT(warning.notify_roles(),
              ElementsAre(ROLE_HEALTH_ADMINISTRATION, ROLE_COORDINATING_CASEWORKER));
}

TEST_F(CaseRulesTest, BackToBackAppointmentsDoNotOverlap) {
  Booked(kJobCentre, "A-000001", Day(7, 10), Day(7, 11), ROLE_COORDINATING_CASEWORKER);
  Booked(kSocial, "S-1", Day(7, 11), Day(7, 12), ROLE_SOCIAL_SERVICES);

  EXPECT_THAT(Derive(), IsEmpty());
}

TEST_F(CaseRulesTest, OneSecondOfOverlapIsADoubleBooking) {
  Booked(kJobCentre, "A-000001", Day(7, 10), Day(7, 11), ROLE_COORDINATING_CASEWORKER);
  Booked(kSocial, "S-1", Day(7, 11) - kSecond, Day(7, 12), ROLE_SOCIAL_SERVICES);

  EXPECT_THAT(Derive(), SizeIs(1));
}

TEST_F(CaseRulesTest, CancelledAppointmentIsNotDoubleBooked) {
  Booked(kJobCentre, "A-000001", Day(7, 10), Day(7, 11), ROLE_COORDINATING_CASEWORKER);
  Cancelled(kJobCentre, "A-000001", ROLE_COORDINATING_CASEWORKER);
  Booked(kHealth, "H-17", Day(7, 10), Day(7, 11), ROLE_HEALTH_ADMINISTRATION);

  EXPECT_THAT(Derive(), IsEmpty());
}

TEST_F(CaseRulesTest, RescheduledAppointmentIsCheckedAtItsNewTime) {
  Booked(kJobCentre, "A-000001", Day(7, 10), Day(7, 11), ROLE_COORDINATING_CASEWORKER);
  Booked(kHealth, "H-17", Day(7, 13), Day(7, 14), ROLE_HEALTH_ADMINISTRATION);
  // Moved away from 10:00 and onto the health session.
  const std::string moved =
      Rescheduled(kJobCentre, "A-000001", Day(7, 13, 30), Day(7, 14, 30), ROLE_MENTOR);
  Booked(kSocial, "S-1", Day(7, 10), Day(7, 11), ROLE_SOCIAL_SERVICES);

  // The old slot is free: the social booking at 10:00 is fine.
  EXPECT_THAT(Derive(), IsEmpty());

  history_.events.pop_back();  // back to the move itself
  const std::vector<DerivedEvent> derived = Derive();
  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(derived[0].idempotency_key, "load:double:A-000001:H-17:" + moved);
  // The move is the appointment's latest event: its booker is warned.
  EXPECT_THAT(derived[0].event.load_warning().notify_roles(),
              ElementsAre(ROLE_MENTOR, ROLE_HEALTH_ADMINISTRATION));
  EXPECT_EQ(derived[0].event.load_warning().appointment_event_ids(0), moved);
}

TEST_F(CaseRulesTest, AttendedAppointmentKeepsItsTimeAndWarnsWhoReportedIt) {
  Booked(kJobCentre, "A-000001", Day(7, 10), Day(7, 11), ROLE_COORDINATING_CASEWORKER);
  const std::string attended = Attended(kJobCentre, "A-000001", Day(7, 11), ROLE_MENTOR);
  Booked(kHealth, "H-17", Day(7, 10, 30), Day(7, 11, 30), ROLE_HEALTH_ADMINISTRATION);

  const std::vector<DerivedEvent> derived = Derive();

  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_THAT(derived[0].event.load_warning().appointment_event_ids(),
              ElementsAre(Last().id(), attended));
  EXPECT_THAT(derived[0].event.load_warning().notify_roles(),
              ElementsAre(ROLE_HEALTH_ADMINISTRATION, ROLE_MENTOR));
}

TEST_F(CaseRulesTest, AttendanceReportedWithoutTimesDoesNotStretchTheAppointment) {
  Booked(kJobCentre, "A-000001", Day(7, 10), Day(7, 11), ROLE_COORDINATING_CASEWORKER);
  Attended(kJobCentre, "A-000001", Day(7, 11), ROLE_COORDINATING_CASEWORKER);
  Booked(kHealth, "H-17", Day(6, 10), Day(6, 11), ROLE_HEALTH_ADMINISTRATION);

  EXPECT_THAT(Derive(), IsEmpty());
}

TEST_F(CaseRulesTest, DoubleBookingNamesTheDayTheOverlapBegins) {
  Booked(kJobCentre, "A-000001", Day(8, 10), Day(8, 11), ROLE_COORDINATING_CASEWORKER);
  Booked(kJobCentre, "A-000002", Day(7, 8), Day(9, 16), ROLE_COMPANY_CONSULTANT,
         ev::APPOINTMENT_KIND_INTERNSHIP_START);

  const std::vector<DerivedEvent> derived = Derive();

  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(ToAbslTime(derived[0].event.load_warning().day()), Day(8));
}

TEST_F(CaseRulesTest, NotifyRolesAreDeduplicatedAndSkipUnspecified) {
  Booked(kJobCentre, "A-000001", Day(7, 10), Day(7, 11), ROLE_UNSPECIFIED);
  Booked(kJobCentre, "A-000002", Day(7, 10), Day(7, 11), ROLE_COORDINATING_CASEWORKER);
  Booked(kJobCentre, "A-000003", Day(7, 10), Day(7, 11), ROLE_COORDINATING_CASEWORKER);

  const std::vector<DerivedEvent> derived = Derive();

  ASSERT_THAT(derived, SizeIs(2));  // A-000003 overlaps each of the others
  EXPECT_THAT(derived[0].event.load_warning().notify_roles(),
              ElementsAre(ROLE_COORDINATING_CASEWORKER));
  EXPECT_THAT(derived[1].event.load_warning().notify_roles(),
              ElementsAre(ROLE_COORDINATING_CASEWORKER));
  EXPECT_NE(derived[0].idempotency_key, derived[1].idempotency_key);
}

TEST_F(CaseRulesTest, SameAppointmentIdInTwoSourcesIsTwoAppointmentsWithDistinctKeys) {
  // Reference systems all number their appointments A-000001, A-000002, ….
  Booked(kJobCentre, "A-000001", Day(7, 10), Day(7, 11), ROLE_COORDINATING_CASEWORKER);
  Booked(kHealth, "A-000001", Day(7, 10), Day(7, 11), ROLE_HEALTH_ADMINISTRATION);
  const std::string social =
      Booked(kSocial, "A-000001", Day(7, 10, 30), Day(7, 11), ROLE_SOCIAL_SERVICES);

  const std::vector<DerivedEvent> derived = Derive();

  ASSERT_THAT(derived, SizeIs(2));
  EXPECT_EQ(derived[0].idempotency_key,
            "load:double:health.0751.A-000001:social.0751.A-000001:" + social);
  EXPECT_EQ(derived[1].idempotency_key,
            "load:double:jobcentre.0751.A-000001:social.0751.A-000001:" + social);
}

TEST_F(CaseRulesTest, AttendanceAndCancellationWarnOfNothing) {
  Booked(kJobCentre, "A-000001", Day(7, 10), Day(7, 11), ROLE_COORDINATING_CASEWORKER);
  Booked(kHealth, "H-17", Day(7, 10), Day(7, 11), ROLE_HEALTH_ADMINISTRATION);
  Attended(kHealth, "H-17", Day(7, 11), ROLE_HEALTH_ADMINISTRATION);
  EXPECT_THAT(Derive(), IsEmpty());
  Cancelled(kJobCentre, "A-000001", ROLE_COORDINATING_CASEWORKER);
  EXPECT_THAT(Derive(), IsEmpty());
}

TEST_F(CaseRulesTest, CorrectedBookingIsCheckedAtItsCorrectedTime) {
  const std::string wrong =
      Booked(kJobCentre, "A-000001", Day(7, 8), Day(7, 9), ROLE_COORDINATING_CASEWORKER);
  Booked(kHealth, "H-17", Day(7, 10), Day(7, 11), ROLE_HEALTH_ADMINISTRATION);
  EXPECT_THAT(Derive(), IsEmpty());

  Booked(kJobCentre, "A-000001", Day(7, 10, 30), Day(7, 11, 30), ROLE_COORDINATING_CASEWORKER);
  Last().mutable_supersedes()->set_event_id(wrong);
  Last().mutable_supersedes()->set_kind(ev::Supersession::KIND_CORRECTION);

  EXPECT_THAT(Derive(), SizeIs(1));
}

// ===========================================================================
// Load: activities per day

TEST_F(CaseRulesTest, DayBusierThanTheLimitWarnsWithAllItsAppointments) {
  load_.set_max_activities_per_day(2);
  const std::string a = Booked(kJobCentre, "A-000001", Day(7, 13), Day(7, 14), ROLE_MENTOR);
  const std::string b = Booked(kSocial, "S-1", Day(7, 8), Day(7, 9), ROLE_SOCIAL_SERVICES);
  const std::string c = Booked(kHealth, "H-17", Day(7, 10), Day(7, 11), ROLE_HEALTH_ADMINISTRATION);

  const std::vector<DerivedEvent> derived = Derive();

  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(derived[0].idempotency_key, "load:day:2025-03-10:" + c);
  EXPECT_EQ(EventTypeFor(derived[0].event), "dk.casebridge.load.too-many-activities.v1");
  const ev::LoadWarning& warning = derived[0].event.load_warning();
  EXPECT_THAT(warning.appointment_ids(), ElementsAre("S-1", "H-17", "A-000001"));
  EXPECT_THAT(warning.appointment_event_ids(), ElementsAre(b, c, a));
  EXPECT_EQ(warning.activities(), 3);
  EXPECT_EQ(warning.limit(), 2);
  EXPECT_EQ(ToAbslTime(warning.day()), Day(7));
  EXPECT_THAT(warning.notify_roles(),
              ElementsAre(ROLE_SOCIAL_SERVICES, ROLE_HEALTH_ADMINISTRATION, ROLE_MENTOR));
}

TEST_F(CaseRulesTest, DayAtTheLimitDoesNotWarn) {
  load_.set_max_activities_per_day(2);
  Booked(kJobCentre, "A-000001", Day(7, 8), Day(7, 9), ROLE_MENTOR);
  Booked(kHealth, "H-17", Day(7, 10), Day(7, 11), ROLE_HEALTH_ADMINISTRATION);

  EXPECT_THAT(Derive(), IsEmpty());
}

TEST_F(CaseRulesTest, NoDailyLimitWhenZero) {
  for (int i = 0; i < 8; ++i) {
    Booked(kJobCentre, absl::StrCat("A-00000", i), Day(7, 8 + i), Day(7, 9 + i), ROLE_MENTOR);
  }
  EXPECT_THAT(Derive(), IsEmpty());
}

TEST_F(CaseRulesTest, ActivitiesCountByUtcStartDayAndSkipCancelled) {
  load_.set_max_activities_per_day(2);
  Booked(kJobCentre, "A-000001", Day(6, 23, 30), Day(7, 0, 30), ROLE_MENTOR);  // the day before
  Booked(kJobCentre, "A-000002", Day(8, 0), Day(8, 1), ROLE_MENTOR);           // the day after
  Booked(kSocial, "S-1", Day(7, 8), Day(7, 9), ROLE_SOCIAL_SERVICES);
  Cancelled(kSocial, "S-1", ROLE_SOCIAL_SERVICES);
  Booked(kSocial, "S-2", Day(7, 9), Day(7, 10), ROLE_SOCIAL_SERVICES);
  Booked(kHealth, "H-17", Day(7, 10), Day(7, 11), ROLE_HEALTH_ADMINISTRATION);

  EXPECT_THAT(Derive(), IsEmpty());
}

TEST_F(CaseRulesTest, RescheduleOntoABusyDayWarnsForTheNewDay) {
  load_.set_max_activities_per_day(1);
  Booked(kHealth, "H-17", Day(9, 10), Day(9, 11), ROLE_HEALTH_ADMINISTRATION);
  Booked(kJobCentre, "A-000001", Day(7, 8), Day(7, 9), ROLE_MENTOR);
  const std::string moved = Rescheduled(kJobCentre, "A-000001", Day(9, 13), Day(9, 14), ROLE_MENTOR);

  const std::vector<DerivedEvent> derived = Derive();

  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(derived[0].idempotency_key, "load:day:2025-03-12:" + moved);
}

// ===========================================================================
// Task handover

TEST_F(CaseRulesTest, NewHolderTakesTheRolesOpenTasks) {
  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");
  TaskCreated("T-1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter", Day(30));
  const std::string change = Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter-vest");

  const std::vector<DerivedEvent> derived = Derive();

  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(derived[0].idempotency_key, "task-handover:T-1:" + change);
  EXPECT_EQ(EventTypeFor(derived[0].event), "dk.casebridge.task.handed-over.v1");
  const ev::Task& task = derived[0].event.task();
  EXPECT_EQ(task.task_id(), "T-1");
  EXPECT_EQ(task.state(), ev::TASK_STATE_HANDED_OVER);
  EXPECT_EQ(task.title(), "Kan psykologen betales?");
  EXPECT_EQ(task.owner_role(), ROLE_COORDINATING_CASEWORKER);
  EXPECT_EQ(task.owner_recipient(), "aarhus-jobcenter-vest");
  EXPECT_EQ(ToAbslTime(task.due()), Day(30));
}

TEST_F(CaseRulesTest, CompletedTasksAndOtherRolesTasksStay) {
  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");
  Assigned(ROLE_MENTOR, "mentorhuset");
  TaskCreated("T-1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter", Day(30));
  TaskCompleted("T-1");
  TaskCreated("T-2", ROLE_MENTOR, "mentorhuset", Day(30));
  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter-vest");

  EXPECT_THAT(Derive(), IsEmpty());
}

TEST_F(CaseRulesTest, OverdueAndHandedOverTasksAreStillOpenAndMoveAgain) {
  Assigned(ROLE_COORDINATING_CASEWORKER, "a");
  TaskCreated("T-1", ROLE_COORDINATING_CASEWORKER, "a", Day(1));
  TaskOverdue("T-1");
  TaskCreated("T-2", ROLE_COORDINATING_CASEWORKER, "a", Day(30));
  Assigned(ROLE_COORDINATING_CASEWORKER, "b");
  TaskHandedOver("T-2", "b");
  Assigned(ROLE_COORDINATING_CASEWORKER, "c");

  const std::vector<DerivedEvent> derived = Derive();

  ASSERT_THAT(derived, SizeIs(2));
  EXPECT_EQ(derived[0].event.task().task_id(), "T-1");
  EXPECT_EQ(derived[1].event.task().task_id(), "T-2");
  EXPECT_EQ(derived[1].event.task().owner_recipient(), "c");
}

TEST_F(CaseRulesTest, ReassigningTheSameHolderHandsNothingOver) {
  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");
  TaskCreated("T-1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter", Day(30));
  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");

  EXPECT_THAT(Derive(), IsEmpty());
}

TEST_F(CaseRulesTest, ReleaseHandsNothingOverButTheNextHolderTakesTheTasks) {
  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");
  TaskCreated("T-1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter", Day(30));
  Released(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");
  EXPECT_THAT(Derive(), IsEmpty());

  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter-vest");
  const std::vector<DerivedEvent> derived = Derive();
  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(derived[0].event.task().owner_recipient(), "aarhus-jobcenter-vest");
}

// The common case: a new coordinating caseworker in the same job centre.
TEST_F(CaseRulesTest, NewPersonAtTheSameRecipientTakesTheOpenTasks) {
  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");
  history_.events.back().mutable_role_assignment()->set_holder_name("Mette Sørensen");
  TaskCreated("T-1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter", Day(30));
  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");
  history_.events.back().mutable_role_assignment()->set_holder_name("Søren Nielsen");

  const std::vector<DerivedEvent> derived = Derive();
  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(derived[0].event.task().state(), casebridge::events::v1::TASK_STATE_HANDED_OVER);
  EXPECT_EQ(derived[0].event.task().task_id(), "T-1");
}

TEST_F(CaseRulesTest, StaleReleaseDoesNotMakeTheSameHolderNew) {
  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");
  TaskCreated("T-1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter", Day(30));
  Released(ROLE_COORDINATING_CASEWORKER, "someone-else");  // not the holder: changes nothing
  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");

  EXPECT_THAT(Derive(), IsEmpty());
}

TEST_F(CaseRulesTest, ReassigningAfterAReleaseToTheSameHolderHandsNothingOver) {
  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");
  TaskCreated("T-1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter", Day(30));
  Released(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");
  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");  // the task is already theirs

  EXPECT_THAT(Derive(), IsEmpty());
}

TEST_F(CaseRulesTest, StaleReleaseDoesNotClearTheHolder) {
  Assigned(ROLE_COORDINATING_CASEWORKER, "a");
  TaskCreated("T-1", ROLE_COORDINATING_CASEWORKER, "a", Day(30));
  Assigned(ROLE_COORDINATING_CASEWORKER, "b");  // its handover is not consumed yet
  Released(ROLE_COORDINATING_CASEWORKER, "x");  // stale: x does not hold the role
  EXPECT_THAT(Derive(), IsEmpty());
  Assigned(ROLE_COORDINATING_CASEWORKER, "b");  // b still holds it: no change

  EXPECT_THAT(Derive(), IsEmpty());
}

TEST_F(CaseRulesTest, HandoverKeepsTheTasksSensitivity) {
  Assigned(ROLE_ADDICTION_CASE_MANAGER, "rusmiddelcenter");
  TaskCreated("T-1", ROLE_ADDICTION_CASE_MANAGER, "rusmiddelcenter", Day(30));
  Last().set_sensitivity(ev::SENSITIVITY_SPECIAL_ADDICTION);
  Assigned(ROLE_ADDICTION_CASE_MANAGER, "rusmiddelcenter-nord");

  const std::vector<DerivedEvent> derived = Derive();

  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(derived[0].event.sensitivity(), ev::SENSITIVITY_SPECIAL_ADDICTION);
}

// ===========================================================================
// No loops

TEST_F(CaseRulesTest, CoordinationSourcedEventsDeriveNothing) {
  Booked(kJobCentre, "A-000001", Day(7, 10), Day(7, 11), ROLE_COORDINATING_CASEWORKER);
  Appointment(kCoordination, "A-000001", ev::APPOINTMENT_STATUS_SCHEDULED, Day(7, 10), Day(7, 11),
              ROLE_COORDINATING_CASEWORKER);
  EXPECT_THAT(Derive(), IsEmpty());

  Step("HR-000001", ev::REFERRAL_STATUS_REFUSED, Day(8), kCoordination);
  EXPECT_THAT(Derive(), IsEmpty());

  TaskCreated("T-1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter", Day(30));
  EXPECT_THAT(Derive(), IsEmpty());

  // What the coordination service derives is itself coordination-sourced:
  // fed back, it derives nothing.
  Refused("HR-000002", Day(9));
  const std::vector<DerivedEvent> first = Derive();
  ASSERT_THAT(first, SizeIs(1));
  ev::CaseEvent& flag = Append(kCoordination, Day(9));
  *flag.mutable_replanning() = first[0].event.replanning();
  Done(flag);
  EXPECT_THAT(Derive(), IsEmpty());
}

// ===========================================================================
// Watchdog: referral not acknowledged

TEST_F(CaseRulesTest, UnacknowledgedReferralAlertsOneSecondPastTheThreshold) {
  watchdogs_.set_referral_ack_days(5);
  Sent("HR-000001", Day(0, 9));

  EXPECT_THAT(Watch(Day(5, 9)), IsEmpty());  // exactly 5 days: not yet
  const std::vector<DerivedEvent> derived = Watch(Day(5, 9) + kSecond);

  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(derived[0].idempotency_key,
            absl::StrCat("watchdog:ack:HR-000001:", absl::ToUnixSeconds(Day(0, 9))));
  EXPECT_EQ(EventTypeFor(derived[0].event), "dk.casebridge.watchdog.referral-not-acknowledged.v1");
  EXPECT_EQ(ToAbslTime(derived[0].event.occurred_at()), Day(5, 9) + kSecond);
  EXPECT_EQ(derived[0].event.sensitivity(), ev::SENSITIVITY_ORDINARY);
  const ev::WatchdogAlert& alert = derived[0].event.watchdog_alert();
  EXPECT_EQ(alert.referral_id(), "HR-000001");
  EXPECT_EQ(ToAbslTime(alert.since()), Day(0, 9));
  EXPECT_EQ(alert.threshold_days(), 5);
}

TEST_F(CaseRulesTest, ReceivedReferralIsAcknowledged) {
  watchdogs_.set_referral_ack_days(5);
  Sent("HR-000001", Day(0));
  Received("HR-000001", Day(4));

  EXPECT_THAT(Watch(Day(30)), IsEmpty());
}

TEST_F(CaseRulesTest, AnyLaterStepOfTheReceiverIsAnAcknowledgement) {
  watchdogs_.set_referral_ack_days(5);
  Sent("HR-000001", Day(0));
  Refused("HR-000001", Day(3));

  EXPECT_THAT(Watch(Day(30)), IsEmpty());
}

TEST_F(CaseRulesTest, ForwardRestartsTheAcknowledgementClock) {
  watchdogs_.set_referral_ack_days(5);
  Sent("HR-000001", Day(0));
  Received("HR-000001", Day(1));  // by the wrong unit
  Forwarded("HR-000001", Day(2));

  EXPECT_THAT(Watch(Day(7)), IsEmpty());
  const std::vector<DerivedEvent> derived = Watch(Day(7) + kSecond);
  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(ToAbslTime(derived[0].event.watchdog_alert().since()), Day(2));
  EXPECT_EQ(derived[0].idempotency_key,
            absl::StrCat("watchdog:ack:HR-000001:", absl::ToUnixSeconds(Day(2))));

  Received("HR-000001", Day(8));  // by the right unit
  EXPECT_THAT(Watch(Day(30)), IsEmpty());
}

TEST_F(CaseRulesTest, CorrectionTakesThePlaceOfWhatItCorrects) {
  watchdogs_.set_referral_ack_days(5);
  const std::string sent = Sent("HR-000001", Day(0));
  Received("HR-000001", Day(2));
  // The sender corrects the sending time later; the referral is still
  // received after it.
  Sent("HR-000001", Day(1));
  Last().mutable_supersedes()->set_event_id(sent);
  Last().mutable_supersedes()->set_kind(ev::Supersession::KIND_CORRECTION);

  EXPECT_THAT(Watch(Day(30)), IsEmpty());
}

TEST_F(CaseRulesTest, AcknowledgementWatchdogIsOffAtZero) {
  Sent("HR-000001", Day(0));
  EXPECT_THAT(Watch(Day(365)), IsEmpty());
}

TEST_F(CaseRulesTest, OddReferralIdsStillGiveValidDistinctKeys) {
  watchdogs_.set_referral_ack_days(1);
  Sent("Henvisning 17/2025 (psykiatri)", Day(0));
  Sent(std::string(200, 'R'), Day(0));

  const std::vector<DerivedEvent> derived = Watch(Day(3));

  ASSERT_THAT(derived, SizeIs(2));  // the fixture checks both keys are valid
  EXPECT_THAT(derived[0].idempotency_key, StartsWith("watchdog:ack:digest:"));
  EXPECT_THAT(derived[1].idempotency_key, StartsWith("watchdog:ack:digest:"));
  EXPECT_NE(derived[0].idempotency_key, derived[1].idempotency_key);
  EXPECT_EQ(derived[0].event.watchdog_alert().referral_id(), "Henvisning 17/2025 (psykiatri)");
  // Stable: the same situation gives the same key on the next run.
  EXPECT_EQ(Watch(Day(4))[0].idempotency_key, derived[0].idempotency_key);
}

// ===========================================================================
// Watchdog: waitlisted without an estimate

TEST_F(CaseRulesTest, WaitlistWithoutEstimateAlertsOneSecondPastTheThreshold) {
  watchdogs_.set_waitlist_without_estimate_days(14);
  Sent("HR-000001", Day(0));
  Received("HR-000001", Day(1));
  const std::string waitlisted = Waitlisted("HR-000001", Day(2));

  EXPECT_THAT(Watch(Day(16)), IsEmpty());
  const std::vector<DerivedEvent> derived = Watch(Day(16) + kSecond);

  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(derived[0].idempotency_key, "watchdog:waitlist:HR-000001:" + waitlisted);
  const ev::WatchdogAlert& alert = derived[0].event.watchdog_alert();
  EXPECT_EQ(alert.kind(), ev::WATCHDOG_KIND_WAITLIST_WITHOUT_ESTIMATE);
  EXPECT_EQ(alert.referral_id(), "HR-000001");
  EXPECT_EQ(ToAbslTime(alert.since()), Day(2));
  EXPECT_EQ(alert.threshold_days(), 14);
}

TEST_F(CaseRulesTest, WaitlistWithAnEstimateDoesNotAlert) {
  watchdogs_.set_waitlist_without_estimate_days(14);
  Sent("HR-000001", Day(0));
  Received("HR-000001", Day(1));
  Waitlisted("HR-000001", Day(2), Day(90));

  EXPECT_THAT(Watch(Day(60)), IsEmpty());
}

TEST_F(CaseRulesTest, EstimateChangeClearsTheWaitlistWatchdog) {
  watchdogs_.set_waitlist_without_estimate_days(14);
  Sent("HR-000001", Day(0));
  Received("HR-000001", Day(1));
  Waitlisted("HR-000001", Day(2));
  ASSERT_THAT(Watch(Day(20)), SizeIs(1));

  EstimateChanged("HR-000001", Day(21), Day(60));
  EXPECT_THAT(Watch(Day(40)), IsEmpty());
}

TEST_F(CaseRulesTest, CancelledWaitlistingDropsOut) {
  watchdogs_.set_waitlist_without_estimate_days(14);
  Sent("HR-000001", Day(0));
  Received("HR-000001", Day(1));
  const std::string waitlisted = Waitlisted("HR-000001", Day(2));
  ev::CaseEvent& cancellation = Append(kHealth, Day(3));
  cancellation.mutable_supersedes()->set_event_id(waitlisted);
  cancellation.mutable_supersedes()->set_kind(ev::Supersession::KIND_CANCELLATION);
  Done(cancellation);

  EXPECT_THAT(Watch(Day(30)), IsEmpty());
}

// ===========================================================================
// Watchdog: too few follow-up conversations

TEST_F(CaseRulesTest, TooFewFollowUpsAlertOnceTheCourseHasLastedAWindow) {
  watchdogs_.set_min_follow_ups(6);
  for (int i = 0; i < 5; ++i) FollowUp(absl::StrCat("F-", i), Day(30 + 60 * i, 10));
  const absl::Time now = Day(365) + kSecond;  // the course began at Day(0)

  const std::vector<DerivedEvent> derived = Watch(now);

  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(derived[0].idempotency_key, "watchdog:followups:" + kSubject + ":2026-03");
  EXPECT_EQ(EventTypeFor(derived[0].event), "dk.casebridge.watchdog.too-few-follow-ups.v1");
  const ev::WatchdogAlert& alert = derived[0].event.watchdog_alert();
  EXPECT_EQ(alert.count(), 5);
  EXPECT_EQ(alert.required(), 6);
  EXPECT_EQ(alert.threshold_days(), 365);
}

TEST_F(CaseRulesTest, NoFollowUpAlertBeforeTheCourseHasLastedAWholeWindow) {
  watchdogs_.set_min_follow_ups(6);
  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");

  EXPECT_THAT(Watch(Day(365)), IsEmpty());
  EXPECT_THAT(Watch(Day(365) + kSecond), SizeIs(1));
}

TEST_F(CaseRulesTest, FollowUpsCountOnlyWhenActiveAndInsideTheWindow) {
  watchdogs_.set_min_follow_ups(3);
  watchdogs_.set_follow_up_window_days(100);
  const absl::Time now = Day(200);
  FollowUp("F-early", now - absl::Hours(24 * 100));  // on the window's open edge: out
  FollowUp("F-1", now - absl::Hours(24 * 100) + kSecond);
  FollowUp("F-2", now);  // on the window's closed edge: in
  FollowUp("F-later", now + kSecond);
  FollowUp("F-cancelled", Day(150));
  Cancelled(kJobCentre, "F-cancelled", ROLE_COORDINATING_CASEWORKER);
  Booked(kJobCentre, "M-1", Day(160), Day(160, 1), ROLE_MENTOR, ev::APPOINTMENT_KIND_MENTOR_MEETING);

  const std::vector<DerivedEvent> derived = Watch(now);

  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(derived[0].event.watchdog_alert().count(), 2);
  EXPECT_EQ(derived[0].event.watchdog_alert().threshold_days(), 100);
}

TEST_F(CaseRulesTest, EnoughFollowUpsDoNotAlert) {
  watchdogs_.set_min_follow_ups(6);
  for (int i = 0; i < 6; ++i) FollowUp(absl::StrCat("F-", i), Day(10 + 60 * i));

  EXPECT_THAT(Watch(Day(366)), IsEmpty());
}

TEST_F(CaseRulesTest, FollowUpAlertKeyChangesOncePerMonth) {
  watchdogs_.set_min_follow_ups(6);
  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");

  const std::string early_march = Watch(Day(366))[0].idempotency_key;   // 2026-03-04
  const std::string late_march = Watch(Day(390))[0].idempotency_key;    // 2026-03-28
  const std::string april = Watch(Day(395))[0].idempotency_key;         // 2026-04-02
  EXPECT_EQ(early_march, late_march);
  EXPECT_NE(late_march, april);
  EXPECT_EQ(april, "watchdog:followups:" + kSubject + ":2026-04");
}

// ===========================================================================
// Watchdog: no contact

TEST_F(CaseRulesTest, NoContactAlertsSinceTheLatestAttendance) {
  watchdogs_.set_no_contact_days(30);
  Booked(kJobCentre, "A-000001", Day(5, 10), Day(5, 11), ROLE_COORDINATING_CASEWORKER);
  Attended(kJobCentre, "A-000001", Day(5, 11), ROLE_COORDINATING_CASEWORKER);
  Booked(kHealth, "H-1", Day(10, 10), Day(10, 11), ROLE_HEALTH_ADMINISTRATION);
  Attended(kHealth, "H-1", Day(10, 11), ROLE_HEALTH_ADMINISTRATION);
  Booked(kJobCentre, "A-000002", Day(20, 10), Day(20, 11), ROLE_COORDINATING_CASEWORKER);

  EXPECT_THAT(Watch(Day(40, 11)), IsEmpty());
  const std::vector<DerivedEvent> derived = Watch(Day(40, 11) + kSecond);

  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(derived[0].idempotency_key,
            absl::StrCat("watchdog:contact:", kSubject, ":", absl::ToUnixSeconds(Day(10, 11))));
  const ev::WatchdogAlert& alert = derived[0].event.watchdog_alert();
  EXPECT_EQ(alert.kind(), ev::WATCHDOG_KIND_NO_CONTACT);
  EXPECT_EQ(ToAbslTime(alert.since()), Day(10, 11));
  EXPECT_EQ(alert.threshold_days(), 30);
}

TEST_F(CaseRulesTest, BackfilledAttendanceDoesNotMoveTheLastContactBack) {
  watchdogs_.set_no_contact_days(30);
  Booked(kJobCentre, "A-000001", Day(5, 10), Day(5, 11), ROLE_COORDINATING_CASEWORKER);
  Booked(kJobCentre, "A-000002", Day(10, 10), Day(10, 11), ROLE_COORDINATING_CASEWORKER);
  Attended(kJobCentre, "A-000002", Day(10, 11), ROLE_COORDINATING_CASEWORKER);
  Attended(kJobCentre, "A-000001", Day(5, 11), ROLE_COORDINATING_CASEWORKER);  // reported late

  EXPECT_THAT(Watch(Day(40, 11)), IsEmpty());
}

TEST_F(CaseRulesTest, NoContactCountsFromTheCourseStartWithoutAttendance) {
  watchdogs_.set_no_contact_days(30);
  clock_ = Day(3);
  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");
  clock_ = Day(10);
  Booked(kJobCentre, "A-000001", Day(12), Day(12, 1), ROLE_COORDINATING_CASEWORKER);

  const std::vector<DerivedEvent> derived = Watch(Day(33) + kSecond);

  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(ToAbslTime(derived[0].event.watchdog_alert().since()), Day(3));
}

TEST_F(CaseRulesTest, NoContactWatchdogIsOffAtZeroAndSilentForAnEmptyCase) {
  Assigned(ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter");
  EXPECT_THAT(Watch(Day(1000)), IsEmpty());

  history_.events.clear();
  watchdogs_.set_no_contact_days(30);
  watchdogs_.set_min_follow_ups(6);
  EXPECT_THAT(Watch(Day(1000)), IsEmpty());
}

// ===========================================================================
// Overdue tasks

TEST_F(CaseRulesTest, OpenTaskPastItsDueDateIsOverdueOnceWithTheSameKey) {
  TaskCreated("T-1", ROLE_COORDINATING_CASEWORKER, "aarhus-jobcenter", Day(10));

  EXPECT_THAT(Watch(Day(10)), IsEmpty());  // due now: not yet overdue
  const std::vector<DerivedEvent> first = Watch(Day(10) + kSecond);
  ASSERT_THAT(first, SizeIs(1));
  EXPECT_EQ(first[0].idempotency_key, "task-overdue:T-1");
  EXPECT_EQ(EventTypeFor(first[0].event), "dk.casebridge.task.overdue.v1");
  EXPECT_EQ(first[0].event.task().state(), ev::TASK_STATE_OVERDUE);
  EXPECT_EQ(first[0].event.task().owner_recipient(), "aarhus-jobcenter");
  EXPECT_EQ(ToAbslTime(first[0].event.occurred_at()), Day(10) + kSecond);

  // Before the overdue event is consumed, a later run names the same
  // situation; once it is consumed, nothing more.
  const std::vector<DerivedEvent> again = Watch(Day(12));
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_EQ(again[0].idempotency_key, first[0].idempotency_key);
  TaskOverdue("T-1");
  EXPECT_THAT(Watch(Day(20)), IsEmpty());
}

TEST_F(CaseRulesTest, HandedOverTaskCanBeOverdueButCompletedAndUndatedTasksCannot) {
  TaskCreated("T-1", ROLE_COORDINATING_CASEWORKER, "a", Day(10));
  TaskHandedOver("T-1", "b");
  TaskCreated("T-2", ROLE_COORDINATING_CASEWORKER, "a", Day(10));
  TaskCompleted("T-2");
  TaskCreated("T-3", ROLE_COORDINATING_CASEWORKER, "a", std::nullopt);

  const std::vector<DerivedEvent> derived = Watch(Day(30));

  ASSERT_THAT(derived, SizeIs(1));
  EXPECT_EQ(derived[0].event.task().task_id(), "T-1");
  EXPECT_EQ(derived[0].event.task().owner_recipient(), "b");
}

// ===========================================================================
// Current tasks

TEST_F(CaseRulesTest, CurrentTasksFoldStatesOpenFirstThenByDueThenId) {
  TaskCreated("T-b", ROLE_COORDINATING_CASEWORKER, "a", Day(5));
  TaskCreated("T-a", ROLE_COORDINATING_CASEWORKER, "a", Day(5));
  TaskCreated("T-c", ROLE_MENTOR, "m", Day(3));
  TaskCreated("T-d", ROLE_MENTOR, "m", Day(1));
  TaskCreated("T-e", ROLE_MENTOR, "m", std::nullopt);
  TaskHandedOver("T-a", "b");
  TaskOverdue("T-c");
  TaskCompleted("T-d");

  const std::vector<ev::Task> tasks = CurrentTasks(history_);

  ASSERT_THAT(tasks, SizeIs(5));
  EXPECT_EQ(tasks[0].task_id(), "T-c");
  EXPECT_EQ(tasks[0].state(), ev::TASK_STATE_OVERDUE);
  EXPECT_EQ(tasks[1].task_id(), "T-a");
  EXPECT_EQ(tasks[1].state(), ev::TASK_STATE_HANDED_OVER);
  EXPECT_EQ(tasks[1].owner_recipient(), "b");
  EXPECT_EQ(tasks[1].title(), "Kan psykologen betales?");
  EXPECT_EQ(tasks[2].task_id(), "T-b");
  EXPECT_EQ(tasks[2].state(), ev::TASK_STATE_OPEN);
  EXPECT_EQ(tasks[3].task_id(), "T-e");  // no due date: last of the open ones
  EXPECT_EQ(tasks[4].task_id(), "T-d");
  EXPECT_EQ(tasks[4].state(), ev::TASK_STATE_COMPLETED);
}

TEST_F(CaseRulesTest, CompletedTaskStaysCompleted) {
  TaskCreated("T-1", ROLE_COORDINATING_CASEWORKER, "a", Day(5));
  TaskCompleted("T-1");
  TaskOverdue("T-1");  // derived before the completion was consumed
  TaskHandedOver("T-1", "b");

  const std::vector<ev::Task> tasks = CurrentTasks(history_);

  ASSERT_THAT(tasks, SizeIs(1));
  EXPECT_EQ(tasks[0].state(), ev::TASK_STATE_COMPLETED);
  EXPECT_EQ(tasks[0].owner_recipient(), "a");
}

}  // namespace
}  // namespace casebridge::coordination

namespace casebridge::coordination {
namespace {

// `RulesMayDeriveFrom` and `RulesReadHistoryFor` let the delivery processor
// skip the history; they must never hide a derivation. Every payload of the
// CaseEvent oneof (by reflection, so a new payload is covered), from every
// source, with every status an appointment or referral can have, against a
// busy case (an overlapping booking, an open task, a role holder): no
// derivation unless `RulesMayDeriveFrom`, and the same derivation from the
// event alone unless `RulesReadHistoryFor`.
TEST_F(CaseRulesTest, ShortcutsNeverHideADerivation) {
  Booked(kJobCentre, "A-busy", Day(7, 10), Day(7, 11), ROLE_COORDINATING_CASEWORKER);
  config::v1::LoadConfig load;
  load.set_max_activities_per_day(1);
  const CaseHistory busy = history_;
  const google::protobuf::OneofDescriptor* payload =
      ev::CaseEvent::descriptor()->FindOneofByName("payload");
  ASSERT_NE(payload, nullptr);
  int checked = 0;
  for (int f = 0; f < payload->field_count(); ++f) {
    const google::protobuf::FieldDescriptor* field = payload->field(f);
    for (ev::SourceSystem system : {kJobCentre, kSocial, kHealth, kCoordination}) {
      for (int status = 0; status < 12; ++status) {
        ev::CaseEvent event = busy.events.front();
        event.set_id(absl::StrCat("probe-", f, "-", system, "-", status));
        event.set_source(SourceOf(system));
        event.set_source_system(system);
        google::protobuf::Message* message =
            event.GetReflection()->MutableMessage(&event, field);
        if (event.has_appointment()) {
          if (!ev::AppointmentStatus_IsValid(status)) continue;
          event.mutable_appointment()->set_appointment_id("A-probe");
          event.mutable_appointment()->set_status(static_cast<ev::AppointmentStatus>(status));
          *event.mutable_appointment()->mutable_start() = ToProtoTimestamp(Day(7, 10));
          *event.mutable_appointment()->mutable_end() = ToProtoTimestamp(Day(7, 11));
        } else if (event.has_referral()) {
          if (!ev::ReferralStatus_IsValid(status)) continue;
          event.mutable_referral()->set_referral_id("R-probe");
          event.mutable_referral()->set_status(static_cast<ev::ReferralStatus>(status));
        } else if (status > 0) {
          continue;
        }
        (void)message;
        event.set_type(EventTypeFor(event));
        CaseHistory whole = busy;
        whole.events.push_back(event);
        CaseHistory alone;
        alone.subject = busy.subject;
        alone.events.push_back(event);
        std::vector<std::string> from_whole, from_alone;
        for (const DerivedEvent& d : DeriveFromEvent(whole, event, load)) {
          from_whole.push_back(d.idempotency_key);
        }
        for (const DerivedEvent& d : DeriveFromEvent(alone, event, load)) {
          from_alone.push_back(d.idempotency_key);
        }
        if (!RulesMayDeriveFrom(event)) {
          EXPECT_THAT(from_whole, IsEmpty()) << field->name() << " from " << system;
        }
        if (!RulesReadHistoryFor(event)) {
          EXPECT_EQ(from_whole, from_alone) << field->name() << " from " << system;
        }
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 4 * payload->field_count());
}

}  // namespace
}  // namespace casebridge::coordination
