#include "services/common/event_ids.h"

#include <ostream>
#include <string>

#include "casebridge/events/v1/case_event.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace casebridge {
namespace {

using ::casebridge::events::v1::CaseEvent;
using ::testing::MatchesRegex;

constexpr char kSource[] = "/casebridge/jobcentre/0751";

// ---------------------------------------------------------------------------
// EventIdFor

TEST(EventIdForTest, IsDeterministic) {
  EXPECT_EQ(EventIdFor(kSource, "key-1"), EventIdFor(kSource, "key-1"));
}

TEST(EventIdForTest, IsAVersion8UuidWithTheRfc9562Variant) {
  for (const char* key : {"key-1", "key-2", "", "a:b.c_d-e", "x"}) {
    const std::string id = EventIdFor(kSource, key);
    EXPECT_THAT(id, MatchesRegex("[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"))
        << "key " << key;
  }
}

TEST(EventIdForTest, DiffersByIdempotencyKey) {
  EXPECT_NE(EventIdFor(kSource, "key-1"), EventIdFor(kSource, "key-2"));
}

TEST(EventIdForTest, DiffersBySource) {
  EXPECT_NE(EventIdFor("/casebridge/jobcentre/0751", "key-1"),
            EventIdFor("/casebridge/jobcentre/0101", "key-1"));
  EXPECT_NE(EventIdFor("/casebridge/jobcentre/0751", "key-1"),
            EventIdFor("/casebridge/social/0751", "key-1"));
}

TEST(EventIdForTest, SourceAndKeyCannotBeShiftedIntoEachOther) {
  // The separator keeps ("a/b", "c") and ("a", "b/c")-style pairs apart.
  EXPECT_NE(EventIdFor("/casebridge/jobcentre/0751x", "y"),
            EventIdFor("/casebridge/jobcentre/0751", "xy"));
}

TEST(EventSourceTest, NamesSystemAndMunicipality) {
  EXPECT_EQ(EventSource("jobcentre", "0751"), "/casebridge/jobcentre/0751");
}

// ---------------------------------------------------------------------------
// EventTypeFor

CaseEvent DecisionEvent(events::v1::DecisionOutcome outcome) {
  CaseEvent event;
  event.mutable_decision()->set_outcome(outcome);
  return event;
}

CaseEvent AppointmentEvent(events::v1::AppointmentStatus status) {
  CaseEvent event;
  event.mutable_appointment()->set_status(status);
  return event;
}

CaseEvent ReferralEvent(events::v1::ReferralStatus status) {
  CaseEvent event;
  event.mutable_referral()->set_status(status);
  return event;
}

struct TypeCase {
  std::string name;
  CaseEvent event;
  std::string type;
};

// Names the case in test output (and in ctest's test names).
void PrintTo(const TypeCase& c, std::ostream* os) { *os << c.name; }

class EventTypeForTest : public ::testing::TestWithParam<TypeCase> {};

TEST_P(EventTypeForTest, NamesThePayloadAndItsState) {
  EXPECT_EQ(EventTypeFor(GetParam().event), GetParam().type);
}

INSTANTIATE_TEST_SUITE_P(
    Decisions, EventTypeForTest,
    ::testing::Values(
        TypeCase{"Granted", DecisionEvent(events::v1::DECISION_OUTCOME_GRANTED),
                 "dk.casebridge.decision.granted.v1"},
        TypeCase{"PartiallyGranted", DecisionEvent(events::v1::DECISION_OUTCOME_PARTIALLY_GRANTED),
                 "dk.casebridge.decision.partially-granted.v1"},
        TypeCase{"Refused", DecisionEvent(events::v1::DECISION_OUTCOME_REFUSED),
                 "dk.casebridge.decision.refused.v1"},
        TypeCase{"Waitlisted", DecisionEvent(events::v1::DECISION_OUTCOME_WAITLISTED),
                 "dk.casebridge.decision.waitlisted.v1"},
        TypeCase{"Closed", DecisionEvent(events::v1::DECISION_OUTCOME_CLOSED),
                 "dk.casebridge.decision.closed.v1"},
        TypeCase{"Unspecified", DecisionEvent(events::v1::DECISION_OUTCOME_UNSPECIFIED), ""}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Appointments, EventTypeForTest,
    ::testing::Values(
        TypeCase{"Scheduled", AppointmentEvent(events::v1::APPOINTMENT_STATUS_SCHEDULED),
                 "dk.casebridge.appointment.scheduled.v1"},
        TypeCase{"Rescheduled", AppointmentEvent(events::v1::APPOINTMENT_STATUS_RESCHEDULED),
                 "dk.casebridge.appointment.rescheduled.v1"},
        TypeCase{"Cancelled", AppointmentEvent(events::v1::APPOINTMENT_STATUS_CANCELLED),
                 "dk.casebridge.appointment.cancelled.v1"},
        TypeCase{"Attended", AppointmentEvent(events::v1::APPOINTMENT_STATUS_ATTENDED),
                 "dk.casebridge.appointment.attended.v1"},
        TypeCase{"NoShow", AppointmentEvent(events::v1::APPOINTMENT_STATUS_NO_SHOW),
                 "dk.casebridge.appointment.no-show.v1"},
        TypeCase{"Unspecified", AppointmentEvent(events::v1::APPOINTMENT_STATUS_UNSPECIFIED), ""}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Referrals, EventTypeForTest,
    ::testing::Values(
        TypeCase{"Sent", ReferralEvent(events::v1::REFERRAL_STATUS_SENT),
                 "dk.casebridge.referral.sent.v1"},
        TypeCase{"Received", ReferralEvent(events::v1::REFERRAL_STATUS_RECEIVED),
                 "dk.casebridge.referral.received.v1"},
        TypeCase{"Assessed", ReferralEvent(events::v1::REFERRAL_STATUS_ASSESSED),
                 "dk.casebridge.referral.assessed.v1"},
        TypeCase{"Accepted", ReferralEvent(events::v1::REFERRAL_STATUS_ACCEPTED),
                 "dk.casebridge.referral.accepted.v1"},
        TypeCase{"Refused", ReferralEvent(events::v1::REFERRAL_STATUS_REFUSED),
                 "dk.casebridge.referral.refused.v1"},
        TypeCase{"Waitlisted", ReferralEvent(events::v1::REFERRAL_STATUS_WAITLISTED),
                 "dk.casebridge.referral.waitlisted.v1"},
        TypeCase{"Started", ReferralEvent(events::v1::REFERRAL_STATUS_STARTED),
                 "dk.casebridge.referral.started.v1"},
        TypeCase{"Ended", ReferralEvent(events::v1::REFERRAL_STATUS_ENDED),
                 "dk.casebridge.referral.ended.v1"},
        TypeCase{"Interrupted", ReferralEvent(events::v1::REFERRAL_STATUS_INTERRUPTED),
                 "dk.casebridge.referral.interrupted.v1"},
        TypeCase{"Forwarded", ReferralEvent(events::v1::REFERRAL_STATUS_FORWARDED),
                 "dk.casebridge.referral.forwarded.v1"},
        TypeCase{"Unspecified", ReferralEvent(events::v1::REFERRAL_STATUS_UNSPECIFIED), ""}),
    [](const auto& info) { return info.param.name; });

CaseEvent RoleEvent(bool released) {
  CaseEvent event;
  event.mutable_role_assignment()->set_role(common::v1::ROLE_MENTOR);
  event.mutable_role_assignment()->set_recipient("aarhus-mentor");
  event.mutable_role_assignment()->set_released(released);
  return event;
}

CaseEvent Cancellation() {
  CaseEvent event;
  event.mutable_supersedes()->set_event_id("11111111-2222-8333-8444-555555555555");
  event.mutable_supersedes()->set_kind(events::v1::Supersession::KIND_CANCELLATION);
  return event;
}

CaseEvent CorrectionWithoutPayload() {
  CaseEvent event;
  event.mutable_supersedes()->set_event_id("11111111-2222-8333-8444-555555555555");
  event.mutable_supersedes()->set_kind(events::v1::Supersession::KIND_CORRECTION);
  return event;
}

INSTANTIATE_TEST_SUITE_P(
    Others, EventTypeForTest,
    ::testing::Values(
        TypeCase{"RoleAssigned", RoleEvent(false), "dk.casebridge.role.assigned.v1"},
        TypeCase{"RoleReleased", RoleEvent(true), "dk.casebridge.role.released.v1"},
        TypeCase{"CancellationWithoutPayload", Cancellation(), "dk.casebridge.event.cancelled.v1"},
        TypeCase{"CorrectionWithoutPayload", CorrectionWithoutPayload(), ""},
        TypeCase{"NoPayload", CaseEvent(), ""}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace casebridge
