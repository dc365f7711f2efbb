// What the coordination service adds on its own, end to end on the real
// broker, and who receives it: a refused referral flags re-planning to the
// coordinating caseworker and the rehabilitation team; a double booking
// across systems warns the parties who booked; a change of coordinating
// caseworker hands the open task over; an unacknowledged referral fires the
// watchdog when (injected) time has passed — once.
#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "casebridge/coordination/v1/coordination_service.grpc.pb.h"
#include "casebridge/health/v1/health_service.grpc.pb.h"
#include "casebridge/jobcentre/v1/jobcentre_service.grpc.pb.h"
#include "casebridge/social/v1/social_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/case_system_app.h"
#include "services/common/clock.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/proto_time.h"
#include "services/coordination/coordination_app.h"
#include "services/health/health_system.h"
#include "services/jobcentre/jobcentre_system.h"
#include "services/social/social_system.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge {
namespace {

using ::casebridge::common::v1::Role;
using ::casebridge::events::v1::CaseEvent;
using ::casebridge::recording::v1::RecordResponse;
using ::casebridge::testing::TempDir;
using ::casebridge::testing::UniqueName;
using ::testing::Contains;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

constexpr char kCpr[] = "030388-1237";
const std::string kKey(40, 'd');

const std::vector<std::pair<std::string, Role>> kParties = {
    {"citizen-portal", common::v1::ROLE_CITIZEN},
    {"aarhus-jobcenter", common::v1::ROLE_COORDINATING_CASEWORKER},
    {"aarhus-rehabteam", common::v1::ROLE_REHABILITATION_TEAM},
    {"mentorhuset", common::v1::ROLE_MENTOR},
    {"aarhus-sundhed", common::v1::ROLE_HEALTH_ADMINISTRATION},
};

class DerivedFlowsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    canonical_ = UniqueName("casebridge.case-events.derived");
    config::v1::KafkaConfig kafka = testing::TestKafkaConfig();
    kafka.set_create_topics(true);

    config::v1::CoordinationServiceConfig coordination;
    coordination.mutable_server()->set_listen_address("127.0.0.1:0");
    coordination.mutable_server()->set_insecure_development_mode(true);
    *coordination.mutable_kafka() = kafka;
    coordination.set_canonical_topic(canonical_);
    coordination.set_consumer_group(UniqueName("coordination-derived"));
    coordination.set_municipality("0751");
    coordination.set_store_path(dir_.File("coordination.db"));
    for (const char* id : {"citizen-portal", "aarhus-jobcenter", "aarhus-jobcenter-team2",
                                  "aarhus-rehabteam", "mentorhuset", "aarhus-sundhed"}) {
      config::v1::Recipient* recipient = coordination.add_recipients();
      recipient->set_id(id);
      recipient->set_topic(UniqueName(std::string("casebridge.party.") + id));
      if (std::string(id) == "aarhus-jobcenter") {
        recipient->set_administration(common::v1::ADMINISTRATION_JOB_CENTRE);
      }
      topics_[id] = recipient->topic();
    }
    // Aarhus-like rules: decisions and appointments to the citizen and the
    // coordinating caseworker; referral steps to them and the rehab team;
    // health appointments also to the health administration.
    auto* rule = coordination.mutable_routing()->add_rules();
    rule->add_event_types("dk.casebridge.decision.*");
    rule->add_event_types("dk.casebridge.appointment.*");
    rule->add_roles(common::v1::ROLE_CITIZEN);
    rule->add_roles(common::v1::ROLE_COORDINATING_CASEWORKER);
    rule = coordination.mutable_routing()->add_rules();
    rule->add_event_types("dk.casebridge.referral.*");
    rule->add_roles(common::v1::ROLE_CITIZEN);
    rule->add_roles(common::v1::ROLE_COORDINATING_CASEWORKER);
    rule->add_roles(common::v1::ROLE_REHABILITATION_TEAM);
    coordination.mutable_watchdogs()->set_referral_ack_days(5);
    coordination.mutable_watchdogs()->set_waitlist_without_estimate_days(7);
    coordination.mutable_watchdogs()->set_min_follow_ups(6);
    coordination.mutable_watchdogs()->set_no_contact_days(30);
    coordination.mutable_load()->set_max_activities_per_day(2);
    auto app = coordination::CoordinationApp::Start(coordination, kKey, clock_);
    ASSERT_OK(app);
    coordination_app_ = *std::move(app);
    coordination_ = coordination::v1::CoordinationService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", coordination_app_->port()),
                            grpc::InsecureChannelCredentials()));

    jobcentre_app_ = StartSystem(jobcentre::JobCentreSystem(), "jobcentre", kafka);
    health_app_ = StartSystem(health::HealthSystem(), "health", kafka);
    social_app_ = StartSystem(social::SocialSystem(), "social", kafka);
    ASSERT_TRUE(jobcentre_app_ && health_app_ && social_app_);
    jobcentre_ = jobcentre::v1::JobCentreService::NewStub(Channel(*jobcentre_app_));
    health_ = health::v1::HealthService::NewStub(Channel(*health_app_));
    social_ = social::v1::SocialService::NewStub(Channel(*social_app_));

    for (const auto& [recipient, role] : kParties) subject_ = Assign(recipient, role, "");
  }

  std::unique_ptr<CaseSystemApp> StartSystem(CaseSystemDefinition definition,
                                             const std::string& name,
                                             const config::v1::KafkaConfig& kafka) {
    config::v1::CaseSystemServiceConfig config;
    config.set_municipality("0751");
    config.mutable_server()->set_listen_address("127.0.0.1:0");
    config.mutable_server()->set_insecure_development_mode(true);
    *config.mutable_kafka() = kafka;
    config.set_canonical_topic(canonical_);
    config.mutable_adapter()->mutable_reference()->set_database_path(dir_.File(name + ".db"));
    config.set_ledger_path(dir_.File(name + "-ledger.db"));
    auto app = CaseSystemApp::Start(std::move(definition), config, kKey);
    EXPECT_OK(app) << name;
    return app.ok() ? *std::move(app) : nullptr;
  }

  static std::shared_ptr<grpc::Channel> Channel(const CaseSystemApp& app) {
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", app.port()),
                               grpc::InsecureChannelCredentials());
  }

  std::string Assign(const std::string& recipient, Role role, const std::string& key_suffix) {
    coordination::v1::AssignRoleRequest request;
    request.set_idempotency_key("assign-" + recipient + key_suffix);
    request.mutable_case_ref()->set_cpr(kCpr);
    request.set_role(role);
    request.set_recipient(recipient);
    request.mutable_actor()->set_role(common::v1::ROLE_COORDINATING_CASEWORKER);
    request.mutable_actor()->set_unit("Jobcenter Aarhus");
    coordination::v1::AssignRoleResponse response;
    grpc::ClientContext context;
    const grpc::Status status = coordination_->AssignRole(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.subject();
  }

  static void FillContext(recording::v1::RecordContext* context, const std::string& key,
                          Role role, const std::string& unit) {
    context->set_idempotency_key(key);
    context->mutable_case_ref()->set_cpr(kCpr);
    context->mutable_actor()->set_role(role);
    context->mutable_actor()->set_unit(unit);
  }

  template <typename Stub>
  RecordResponse Step(Stub& stub, const std::string& key, events::v1::ReferralStatus status,
                      const std::string& referral_id,
                      const std::function<void(events::v1::Referral&)>& fill = nullptr) {
    recording::v1::RecordReferralStepRequest request;
    FillContext(request.mutable_context(), key, common::v1::ROLE_CASEWORKER, "Sagsbehandling");
    request.mutable_referral()->set_status(status);
    request.mutable_referral()->set_referral_id(referral_id);
    if (fill) fill(*request.mutable_referral());
    grpc::ClientContext context;
    RecordResponse response;
    const grpc::Status result = stub.RecordReferralStep(&context, request, &response);
    EXPECT_TRUE(result.ok()) << key << ": " << result.error_message();
    return response;
  }

  std::string SendReferral(const std::string& key, const std::string& offer,
                           common::v1::Administration administration, const std::string& unit) {
    return Step(*jobcentre_, key, events::v1::REFERRAL_STATUS_SENT, "",
                [&](events::v1::Referral& referral) {
                  referral.mutable_offer()->set_code(offer);
                  referral.mutable_offer()->set_administration(administration);
                  referral.mutable_from_unit()->set_id("0751-jobcenter-rf");
                  referral.mutable_to_unit()->set_id(unit);
                })
        .record_id();
  }

  template <typename Stub>
  RecordResponse Book(Stub& stub, const std::string& key, Role role, absl::Time start,
                      absl::Duration length) {
    recording::v1::BookAppointmentRequest request;
    FillContext(request.mutable_context(), key, role, "Booking unit");
    auto* appointment = request.mutable_appointment();
    appointment->set_kind(events::v1::APPOINTMENT_KIND_FOLLOW_UP_CONVERSATION);
    *appointment->mutable_start() = ToProtoTimestamp(start);
    *appointment->mutable_end() = ToProtoTimestamp(start + length);
    appointment->mutable_location()->set_name("Aarhus");
    appointment->add_attendees()->set_role(common::v1::ROLE_CITIZEN);
    grpc::ClientContext context;
    RecordResponse response;
    const grpc::Status result = stub.BookAppointment(&context, request, &response);
    EXPECT_TRUE(result.ok()) << key << ": " << result.error_message();
    return response;
  }

  // The events of `type` on `recipient`'s topic, waiting until `count` are
  // there (then a moment longer, to catch extra ones).
  std::vector<CaseEvent> Received(const std::string& recipient, const std::string& type,
                                  size_t count, absl::Duration timeout = absl::Seconds(30)) {
    std::vector<CaseEvent> matching;
    absl::Time settle = absl::InfiniteFuture();
    testing::ReadTopic(
        topics_[recipient],
        [&](const std::vector<kafka::Record>& records) {
          matching.clear();
          for (const kafka::Record& r : records) {
            if (r.HeaderValue("ce_type") != type) continue;
            absl::StatusOr<CaseEvent> event = kafka::DecodeCaseEventRecord(r);
            EXPECT_OK(event);
            if (event.ok()) matching.push_back(*event);
          }
          if (matching.size() < count) return false;
          if (settle == absl::InfiniteFuture()) settle = absl::Now() + absl::Milliseconds(1500);
          return absl::Now() >= settle;
        },
        timeout);
    return matching;
  }

  TempDir dir_;
  FakeClock clock_{absl::Now()};
  std::string canonical_;
  std::string subject_;
  std::map<std::string, std::string> topics_;
  std::unique_ptr<coordination::CoordinationApp> coordination_app_;
  std::unique_ptr<CaseSystemApp> jobcentre_app_, health_app_, social_app_;
  std::unique_ptr<coordination::v1::CoordinationService::Stub> coordination_;
  std::unique_ptr<jobcentre::v1::JobCentreService::Stub> jobcentre_;
  std::unique_ptr<health::v1::HealthService::Stub> health_;
  std::unique_ptr<social::v1::SocialService::Stub> social_;
};

TEST_F(DerivedFlowsTest, RefusedReferralFlagsReplanningToCaseworkerAndRehabTeamOnly) {
  const std::string referral =
      SendReferral("send-1", "SEL-85", common::v1::ADMINISTRATION_SOCIAL_SERVICES, "0751-social");
  Step(*social_, "received-1", events::v1::REFERRAL_STATUS_RECEIVED, referral,
       [](events::v1::Referral& r) {  // new to the social system: what it is for
         r.mutable_offer()->set_code("SEL-85");
         r.mutable_offer()->set_administration(common::v1::ADMINISTRATION_SOCIAL_SERVICES);
       });
  Step(*social_, "assessed-1", events::v1::REFERRAL_STATUS_ASSESSED, referral,
       [](events::v1::Referral& r) { r.mutable_assessment()->set_in_target_group(true); });
  // The citizen lets the job centre see social data; the rehabilitation team
  // (no administration configured here) has no such consent.
  {
    coordination::v1::RecordConsentRequest consent;
    consent.set_idempotency_key("consent-social-to-jobcentre");
    consent.mutable_case_ref()->set_cpr(kCpr);
    auto* grant = consent.add_grants();
    grant->set_administration(common::v1::ADMINISTRATION_JOB_CENTRE);
    grant->add_sensitivities(events::v1::SENSITIVITY_CONFIDENTIAL);
    consent.set_purpose("Koordinering af ressourceforloebet");
    consent.set_form("written");
    consent.mutable_actor()->set_role(common::v1::ROLE_COORDINATING_CASEWORKER);
    consent.mutable_actor()->set_unit("Jobcenter Aarhus");
    coordination::v1::ConsentResponse response;
    grpc::ClientContext context;
    // Recorded (durable) before the refusal, and on the case's one
    // partition, so coordination applies it first.
    ASSERT_TRUE(coordination_->RecordConsent(&context, consent, &response).ok());
  }
  const RecordResponse refused =
      Step(*social_, "refused-1", events::v1::REFERRAL_STATUS_REFUSED, referral,
           [](events::v1::Referral& r) {
             auto* reason = r.add_reasons();
             reason->set_code("no-capacity");
             reason->set_text("Ingen ledige pladser.");
           });

  for (const char* recipient : {"aarhus-jobcenter", "aarhus-rehabteam"}) {
    std::vector<CaseEvent> flags =
        Received(recipient, "dk.casebridge.plan.replanning-needed.v1", 1);
    ASSERT_EQ(flags.size(), 1u) << recipient;
    EXPECT_EQ(flags[0].replanning().referral_id(), referral);
    EXPECT_EQ(flags[0].replanning().trigger_event_id(), refused.event_id());
    EXPECT_EQ(flags[0].source(), "/casebridge/coordination/0751");
    EXPECT_EQ(flags[0].sensitivity(), events::v1::SENSITIVITY_CONFIDENTIAL);
    if (std::string(recipient) == "aarhus-jobcenter") {
      // Under the consent: the reasons, whole.
      ASSERT_EQ(flags[0].replanning().reasons_size(), 1);
      EXPECT_EQ(flags[0].replanning().reasons(0).code(), "no-capacity");
    } else {
      // Without one: that re-planning is needed, not why.
      EXPECT_EQ(flags[0].replanning().reasons_size(), 0);
    }
  }
  // Every referral step reached the citizen; the re-planning flag did not,
  // and the mentor got neither.
  std::vector<CaseEvent> refusals = Received("citizen-portal", "dk.casebridge.referral.refused.v1", 1);
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_TRUE(Received("citizen-portal", "dk.casebridge.plan.replanning-needed.v1", 0).empty());
  EXPECT_TRUE(Received("mentorhuset", "dk.casebridge.referral.refused.v1", 0).empty());
}

TEST_F(DerivedFlowsTest, DoubleBookingAcrossSystemsWarnsThePartiesWhoBooked) {
  const absl::Time start = absl::Now() + absl::Hours(48);
  const RecordResponse meeting =
      Book(*jobcentre_, "meeting-1", common::v1::ROLE_COORDINATING_CASEWORKER, start, absl::Hours(1));
  const RecordResponse session = Book(*health_, "session-1", common::v1::ROLE_HEALTH_ADMINISTRATION,
                                      start + absl::Minutes(30), absl::Hours(1));

  for (const char* recipient : {"aarhus-jobcenter", "aarhus-sundhed"}) {
    std::vector<CaseEvent> warnings = Received(recipient, "dk.casebridge.load.double-booking.v1", 1);
    ASSERT_EQ(warnings.size(), 1u) << recipient;
    EXPECT_THAT(warnings[0].load_warning().appointment_ids(),
                UnorderedElementsAre(meeting.record_id(), session.record_id()));
  }
  EXPECT_TRUE(Received("mentorhuset", "dk.casebridge.load.double-booking.v1", 0).empty());
}

TEST_F(DerivedFlowsTest, NewCoordinatingCaseworkerTakesOverTheOpenTask) {
  coordination::v1::CreateTaskRequest create;
  create.set_idempotency_key("task-1");
  create.mutable_case_ref()->set_cpr(kCpr);
  create.set_title("Find out whether the psychologist can be paid for");
  create.set_owner_role(common::v1::ROLE_COORDINATING_CASEWORKER);
  *create.mutable_due() = ToProtoTimestamp(absl::Now() + absl::Hours(24 * 14));
  create.mutable_actor()->set_role(common::v1::ROLE_COORDINATING_CASEWORKER);
  create.mutable_actor()->set_unit("Jobcenter Aarhus");
  coordination::v1::TaskResponse task;
  {
    grpc::ClientContext context;
    const grpc::Status status = coordination_->CreateTask(&context, create, &task);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_EQ(Received("aarhus-jobcenter", "dk.casebridge.task.created.v1", 1).size(), 1u);

  Assign("aarhus-jobcenter-team2", common::v1::ROLE_COORDINATING_CASEWORKER, "-handover");

  std::vector<CaseEvent> handed = Received("aarhus-jobcenter-team2", "dk.casebridge.task.handed-over.v1", 1);
  ASSERT_EQ(handed.size(), 1u);
  EXPECT_EQ(handed[0].task().task_id(), task.task_id());
  EXPECT_EQ(handed[0].task().owner_recipient(), "aarhus-jobcenter-team2");
  EXPECT_EQ(handed[0].task().title(), create.title());

  coordination::v1::ListTasksRequest list;
  list.mutable_case_ref()->set_subject(subject_);
  coordination::v1::ListTasksResponse tasks;
  grpc::ClientContext context;
  ASSERT_TRUE(coordination_->ListTasks(&context, list, &tasks).ok());
  ASSERT_EQ(tasks.tasks_size(), 1);
  EXPECT_EQ(tasks.tasks(0).owner_recipient(), "aarhus-jobcenter-team2");
}

TEST_F(DerivedFlowsTest, UnacknowledgedReferralFiresTheWatchdogOnceAfterTheConfiguredDays) {
  const std::string referral =
      SendReferral("send-w", "SUL-119", common::v1::ADMINISTRATION_HEALTH, "0751-sundhed");
  ASSERT_EQ(Received("aarhus-jobcenter", "dk.casebridge.referral.sent.v1", 1).size(), 1u);

  ASSERT_OK(coordination_app_->watchdogs().RunOnce());  // day 0: nothing yet
  clock_.Advance(absl::Hours(24 * 6));                    // past referral_ack_days = 5
  ASSERT_OK(coordination_app_->watchdogs().RunOnce());
  ASSERT_OK(coordination_app_->watchdogs().RunOnce());  // fires once, not twice

  std::vector<CaseEvent> alerts =
      Received("aarhus-jobcenter", "dk.casebridge.watchdog.referral-not-acknowledged.v1", 1);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].watchdog_alert().referral_id(), referral);
  EXPECT_EQ(alerts[0].watchdog_alert().threshold_days(), 5);
  EXPECT_TRUE(
      Received("mentorhuset", "dk.casebridge.watchdog.referral-not-acknowledged.v1", 0).empty());
}

TEST_F(DerivedFlowsTest, ThirdActivityOnADayWarnsAboutTheCitizensLoad) {
  // 08:00 UTC three days ahead: the load rules count UTC days, so all three
  // bookings must fall on one, whatever time of day the test runs.
  const absl::Time morning =
      absl::FromCivil(absl::ToCivilDay(absl::Now(), absl::UTCTimeZone()) + 3,
                      absl::UTCTimeZone()) +
      absl::Hours(8);
  Book(*jobcentre_, "day-1", common::v1::ROLE_COORDINATING_CASEWORKER, morning, absl::Hours(1));
  Book(*social_, "day-2", common::v1::ROLE_SOCIAL_SERVICES, morning + absl::Hours(2), absl::Hours(1));
  const RecordResponse third = Book(*health_, "day-3", common::v1::ROLE_HEALTH_ADMINISTRATION,
                                    morning + absl::Hours(4), absl::Hours(1));
  for (const char* recipient : {"aarhus-jobcenter", "aarhus-sundhed"}) {
    std::vector<CaseEvent> warnings =
        Received(recipient, "dk.casebridge.load.too-many-activities.v1", 1);
    ASSERT_EQ(warnings.size(), 1u) << recipient;
    EXPECT_EQ(warnings[0].load_warning().activities(), 3);
    EXPECT_EQ(warnings[0].load_warning().limit(), 2);
    EXPECT_THAT(warnings[0].load_warning().appointment_ids(), Contains(third.record_id()));
  }
  EXPECT_TRUE(Received("mentorhuset", "dk.casebridge.load.too-many-activities.v1", 0).empty());
}

TEST_F(DerivedFlowsTest, OverdueTaskIsReportedToItsOwnerOnce) {
  coordination::v1::CreateTaskRequest create;
  create.set_idempotency_key("task-due");
  create.mutable_case_ref()->set_cpr(kCpr);
  create.set_title("Answer about transport support");
  create.set_owner_role(common::v1::ROLE_COORDINATING_CASEWORKER);
  *create.mutable_due() = ToProtoTimestamp(absl::Now() + absl::Hours(24));
  create.mutable_actor()->set_role(common::v1::ROLE_COORDINATING_CASEWORKER);
  create.mutable_actor()->set_unit("Jobcenter Aarhus");
  coordination::v1::TaskResponse task;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(coordination_->CreateTask(&context, create, &task).ok());
  }
  ASSERT_EQ(Received("aarhus-jobcenter", "dk.casebridge.task.created.v1", 1).size(), 1u);
  clock_.Advance(absl::Hours(48));
  ASSERT_OK(coordination_app_->watchdogs().RunOnce());
  ASSERT_OK(coordination_app_->watchdogs().RunOnce());
  std::vector<CaseEvent> overdue = Received("aarhus-jobcenter", "dk.casebridge.task.overdue.v1", 1);
  ASSERT_EQ(overdue.size(), 1u);
  EXPECT_EQ(overdue[0].task().task_id(), task.task_id());
  EXPECT_TRUE(Received("mentorhuset", "dk.casebridge.task.overdue.v1", 0).empty());
}

TEST_F(DerivedFlowsTest, WaitlistWithoutAnEstimateFiresItsWatchdog) {
  const std::string referral =
      SendReferral("send-wl", "SUL-119", common::v1::ADMINISTRATION_HEALTH, "0751-sundhed");
  auto offer = [](events::v1::Referral& r) {
    r.mutable_offer()->set_code("SUL-119");
    r.mutable_offer()->set_administration(common::v1::ADMINISTRATION_HEALTH);
  };
  Step(*health_, "wl-received", events::v1::REFERRAL_STATUS_RECEIVED, referral, offer);
  Step(*health_, "wl-assessed", events::v1::REFERRAL_STATUS_ASSESSED, referral,
       [](events::v1::Referral& r) { r.mutable_assessment()->set_in_target_group(true); });
  Step(*health_, "wl-accepted", events::v1::REFERRAL_STATUS_ACCEPTED, referral);
  Step(*health_, "wl-waitlisted", events::v1::REFERRAL_STATUS_WAITLISTED, referral);
  ASSERT_EQ(Received("aarhus-jobcenter", "dk.casebridge.referral.waitlisted.v1", 1).size(), 1u);
  clock_.Advance(absl::Hours(24 * 8));  // past waitlist_without_estimate_days = 7
  ASSERT_OK(coordination_app_->watchdogs().RunOnce());
  std::vector<CaseEvent> alerts =
      Received("aarhus-jobcenter", "dk.casebridge.watchdog.waitlist-without-estimate.v1", 1);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].watchdog_alert().referral_id(), referral);
}

TEST_F(DerivedFlowsTest, AYearWithoutContactOrFollowUpsFiresBothWatchdogs) {
  // AssignRole answers once its event is durable; the watchdogs see the case
  // once coordination has consumed it.
  ASSERT_TRUE(testing::PollUntil([&] {
    coordination::v1::ListPartiesRequest request;
    request.mutable_case_ref()->set_subject(subject_);
    coordination::v1::ListPartiesResponse parties;
    grpc::ClientContext context;
    return coordination_->ListParties(&context, request, &parties).ok() &&
           parties.parties_size() == static_cast<int>(kParties.size());
  }));
  clock_.Advance(absl::Hours(24 * 400));  // the course is older than the 365-day window
  ASSERT_OK(coordination_app_->watchdogs().RunOnce());
  std::vector<CaseEvent> no_contact =
      Received("aarhus-jobcenter", "dk.casebridge.watchdog.no-contact.v1", 1);
  ASSERT_EQ(no_contact.size(), 1u);
  EXPECT_EQ(no_contact[0].watchdog_alert().threshold_days(), 30);
  std::vector<CaseEvent> follow_ups =
      Received("aarhus-jobcenter", "dk.casebridge.watchdog.too-few-follow-ups.v1", 1);
  ASSERT_EQ(follow_ups.size(), 1u);
  EXPECT_EQ(follow_ups[0].watchdog_alert().count(), 0);
  EXPECT_EQ(follow_ups[0].watchdog_alert().required(), 6);
  EXPECT_TRUE(Received("citizen-portal", "dk.casebridge.watchdog.no-contact.v1", 0).empty());
}

TEST_F(DerivedFlowsTest, CancelledDecisionReachesItsRecipientsAndLeavesTheTimeline) {
  recording::v1::RecordDecisionRequest decision;
  FillContext(decision.mutable_context(), "grant-1", common::v1::ROLE_CASEWORKER, "Jobcenter Aarhus");
  auto* basis = decision.mutable_context()->add_legal_basis();
  basis->set_law("LAB");
  basis->set_paragraph("78");
  decision.mutable_decision()->set_outcome(events::v1::DECISION_OUTCOME_GRANTED);
  decision.mutable_decision()->mutable_offer()->set_code("LAB-mentor");
  decision.mutable_decision()->mutable_decided_by()->set_role(common::v1::ROLE_CASEWORKER);
  decision.mutable_decision()->mutable_decided_by()->set_unit("Jobcenter Aarhus");
  RecordResponse granted;
  {
    grpc::ClientContext context;
    const grpc::Status status = jobcentre_->RecordDecision(&context, decision, &granted);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  recording::v1::CancelEventRequest cancel;
  FillContext(cancel.mutable_context(), "cancel-grant-1", common::v1::ROLE_CASEWORKER,
              "Jobcenter Aarhus");
  cancel.mutable_context()->mutable_supersedes()->set_event_id(granted.event_id());
  cancel.mutable_context()->mutable_supersedes()->set_kind(
      events::v1::Supersession::KIND_CANCELLATION);
  cancel.mutable_context()->mutable_supersedes()->set_reason("Registered on the wrong citizen.");
  RecordResponse cancelled;
  {
    grpc::ClientContext context;
    const grpc::Status status = jobcentre_->CancelEvent(&context, cancel, &cancelled);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  for (const char* recipient : {"citizen-portal", "aarhus-jobcenter"}) {
    std::vector<CaseEvent> cancellations = Received(recipient, "dk.casebridge.event.cancelled.v1", 1);
    ASSERT_EQ(cancellations.size(), 1u) << recipient;
    EXPECT_EQ(cancellations[0].supersedes().event_id(), granted.event_id());
    EXPECT_EQ(cancellations[0].payload_case(), CaseEvent::PAYLOAD_NOT_SET);
  }
  coordination::v1::GetTimelineRequest request;
  request.mutable_case_ref()->set_subject(subject_);
  request.set_include_superseded(true);
  coordination::v1::Timeline timeline;
  ASSERT_TRUE(testing::PollUntil([&] {
    grpc::ClientContext context;
    timeline.Clear();
    if (!coordination_->GetTimeline(&context, request, &timeline).ok()) return false;
    for (const auto& entry : timeline.entries()) {
      if (entry.event().id() == cancelled.event_id()) return true;
    }
    return false;
  }));
  bool original_seen = false;
  for (const auto& entry : timeline.entries()) {
    if (entry.event().id() != granted.event_id()) continue;
    original_seen = true;
    EXPECT_FALSE(entry.current());
    EXPECT_EQ(entry.superseded_by(), cancelled.event_id());
  }
  EXPECT_TRUE(original_seen);
}

}  // namespace
}  // namespace casebridge
