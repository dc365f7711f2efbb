#include "adapters/jobcentre/reference/reference_jobcentre_adapter.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "adapters/jobcentre/jobcentre_adapter.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/clock.h"
#include "services/common/sqlite.h"


#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge::jobcentre::reference {
namespace {

using ::casebridge::events::v1::Appointment;
using ::casebridge::events::v1::Decision;
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

absl::Time FromProto(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) + absl::Nanoseconds(timestamp.nanos());
}

class ReferenceJobCentreAdapterTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  std::string DatabasePath() const { return dir_.File("jobcentre.db"); }

  void Open() {
    config::v1::ReferenceJobCentreConfig config;
    config.set_database_path(DatabasePath());
    auto adapter = NewReferenceJobCentreAdapter(config, clock_);
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

  absl::StatusOr<std::string> Decide(const std::string& key, const std::string& subject = kSubject) {
    Decision decision;
    decision.set_outcome(events::v1::DECISION_OUTCOME_GRANTED);
    decision.mutable_offer()->set_code("LAB-mentor");
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

  TempDir dir_;
  FakeClock clock_{kNow};
  std::unique_ptr<JobCentreAdapter> adapter_;
};

TEST_F(ReferenceJobCentreAdapterTest, RecordsADecisionAndReturnsItsId) {
  auto id = Decide("k1");

  ASSERT_THAT(id, IsOk());
  EXPECT_EQ(*id, "D-000001");
}

TEST_F(ReferenceJobCentreAdapterTest, RepeatedKeyReturnsTheSameIdAndRecordsOnce) {
  auto first = Decide("k1");
  ASSERT_THAT(first, IsOk());

  EXPECT_EQ(Decide("k1").value(), *first);
  // Had the repeat recorded a second decision, the next one would be 3.
  EXPECT_EQ(Decide("k2").value(), "D-000002");
  Reopen();
  EXPECT_EQ(Decide("k1").value(), *first);
  EXPECT_EQ(Decide("k3").value(), "D-000003");
}

TEST_F(ReferenceJobCentreAdapterTest, KeyReusedForAnotherOperationOrCaseIsInvalidArgument) {
  ASSERT_THAT(Decide("k1"), IsOk());

  EXPECT_THAT(Book("k1"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("idempotency")));
  EXPECT_THAT(Decide("k1", kOtherSubject), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ReferenceJobCentreAdapterTest, BookedAppointmentSurvivesARestart) {
  auto id = Book("book");
  ASSERT_THAT(id, IsOk());
  EXPECT_THAT(*id, StartsWith("A-"));

  Reopen();
  auto moved = Reschedule("move", *id, kBookedStart + absl::Hours(48));

  ASSERT_THAT(moved, IsOk());
  EXPECT_EQ(moved->appointment_id(), *id);
  EXPECT_EQ(moved->status(), events::v1::APPOINTMENT_STATUS_RESCHEDULED);
  EXPECT_EQ(FromProto(moved->previous_start()), kBookedStart);
  EXPECT_EQ(FromProto(moved->start()), kBookedStart + absl::Hours(48));
  EXPECT_EQ(moved->location().name(), "Jobcenter Aarhus");
  EXPECT_EQ(moved->reason(), "caseworker ill");
}

TEST_F(ReferenceJobCentreAdapterTest, RepeatedRescheduleReturnsTheFirstResultAndChangesNothing) {
  const std::string id = Book("book").value();
  const absl::Time first_start = kBookedStart + absl::Hours(48);
  ASSERT_THAT(Reschedule("move", id, first_start), IsOk());

  auto repeated = Reschedule("move", id, kBookedStart + absl::Hours(96));

  ASSERT_THAT(repeated, IsOk());
  EXPECT_EQ(FromProto(repeated->start()), first_start);
  EXPECT_EQ(FromProto(repeated->previous_start()), kBookedStart);
  // The stored appointment still starts at `first_start`.
  auto next = Reschedule("move-again", id, kBookedStart + absl::Hours(72));
  ASSERT_THAT(next, IsOk());
  EXPECT_EQ(FromProto(next->previous_start()), first_start);
}

TEST_F(ReferenceJobCentreAdapterTest, RescheduleOfUnknownAppointmentIsNotFound) {
  EXPECT_THAT(Reschedule("move", "A-999999", kBookedStart),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("appointment A-999999 not found on this case")));
}

TEST_F(ReferenceJobCentreAdapterTest, AppointmentOfAnotherCaseIsNotFound) {
  const std::string id = Book("book", kOtherSubject).value();

  EXPECT_THAT(Reschedule("move", id, kBookedStart), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Cancel("cancel", id), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Attend("attend", id, true), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ReferenceJobCentreAdapterTest, CancelSetsStatusAndReason) {
  const std::string id = Book("book").value();

  auto cancelled = Cancel("cancel", id);

  ASSERT_THAT(cancelled, IsOk());
  EXPECT_EQ(cancelled->appointment_id(), id);
  EXPECT_EQ(cancelled->status(), events::v1::APPOINTMENT_STATUS_CANCELLED);
  EXPECT_EQ(cancelled->reason(), "citizen moved");
}

TEST_F(ReferenceJobCentreAdapterTest, CancelledAppointmentCannotBeRescheduledOrCancelledAgain) {
  const std::string id = Book("book").value();
  ASSERT_THAT(Cancel("cancel", id), IsOk());

  EXPECT_THAT(Reschedule("move", id, kBookedStart),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("cancelled")));
  EXPECT_THAT(Cancel("cancel-again", id), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(ReferenceJobCentreAdapterTest, RecordsAttendanceAndNoShow) {
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

TEST_F(ReferenceJobCentreAdapterTest, RescheduleEndingBeforeItStartsIsInvalidArgument) {
  const std::string id = Book("book").value();
  AppointmentChange change{.appointment_id = id,
                           .start = kBookedStart,
                           .end = kBookedStart - absl::Minutes(30),
                           .location = std::nullopt,
                           .reason = ""};

  EXPECT_THAT(adapter_->RescheduleAppointment(Key("move"), Case(), change),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ReferenceJobCentreAdapterTest, PassedDeadlineIsDeadlineExceededAndRecordsNothing) {
  CallOptions late{.idempotency_key = "k1", .deadline = kNow - absl::Seconds(1)};

  EXPECT_THAT(adapter_->RecordDecision(late, Case(), Decision()),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(Decide("k2").value(), "D-000001");
}

TEST_F(ReferenceJobCentreAdapterTest, NeverStoresTheCprNumber) {
  const std::string id = Book("book").value();
  ASSERT_THAT(Decide("decide"), IsOk());
  ASSERT_THAT(Reschedule("move", id, kBookedStart + absl::Hours(2)), IsOk());
  adapter_.reset();

  for (const auto& file : std::filesystem::directory_iterator(dir_.path())) {
    std::ifstream in(file.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_THAT(bytes, Not(HasSubstr(kCpr))) << file.path();
    EXPECT_THAT(bytes, HasSubstr(kSubject)) << file.path();
  }
}

TEST_F(ReferenceJobCentreAdapterTest, DatabaseWithNewerSchemaIsRefused) {
  adapter_.reset();
  {
    auto db = sqlite::Database::Open(DatabasePath());
    ASSERT_THAT(db, IsOk());
    ASSERT_THAT((*db)->Exec("PRAGMA user_version = 2"), IsOk());
  }
  config::v1::ReferenceJobCentreConfig config;
  config.set_database_path(DatabasePath());

  EXPECT_THAT(NewReferenceJobCentreAdapter(config, clock_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("schema version 2")));
}

TEST(ReferenceJobCentreAdapterFactoryTest, EmptyDatabasePathIsInvalidArgument) {
  EXPECT_THAT(NewReferenceJobCentreAdapter(config::v1::ReferenceJobCentreConfig()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("database_path")));
}

TEST(JobCentreAdapterFactoryTest, ConfigWithoutVendorIsInvalidArgument) {
  EXPECT_THAT(NewJobCentreAdapter(config::v1::JobCentreAdapterConfig()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("adapter")));
}

TEST(JobCentreAdapterFactoryTest, ReferenceVendorBuildsTheReferenceAdapter) {
  TempDir dir;
  config::v1::JobCentreAdapterConfig config;
  config.mutable_reference()->set_database_path(dir.File("jobcentre.db"));

  auto adapter = NewJobCentreAdapter(config);

  ASSERT_THAT(adapter, IsOk());
  EXPECT_THAT((*adapter)->RecordDecision(CallOptions{.idempotency_key = "k1"},
                                         Citizen{.subject = kSubject, .cpr = ""}, Decision()),
              IsOk());
}

}  // namespace
}  // namespace casebridge::jobcentre::reference
