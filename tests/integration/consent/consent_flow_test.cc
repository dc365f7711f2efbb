// Consent, sensitivity and audit end to end on the real broker: the health
// administration books appointments (special category: health) on a case
// with four parties. Without consent the job centre and the mentor receive
// the minimal projection on their topics; a consent granting the job centre
// health data makes the next appointment reach it whole (and only it); the
// withdrawal stops that for the one after. Every delivery on every party
// topic has its audit record on the audit topic, with the same decision; a
// timeline read is audited too.
#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "casebridge/coordination/v1/coordination_service.grpc.pb.h"
#include "casebridge/health/v1/health_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/case_system_app.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/peer_identity.h"
#include "services/common/proto_time.h"
#include "services/coordination/audit_log.h"
#include "services/coordination/coordination_app.h"
#include "services/health/health_system.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge {
namespace {

using ::casebridge::common::v1::Role;
using ::casebridge::events::v1::CaseEvent;
using ::casebridge::testing::TempDir;
using ::casebridge::testing::UniqueName;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
namespace cv1 = ::casebridge::coordination::v1;

constexpr char kCpr[] = "030388-1237";
const std::string kKey(40, 'c');
// Words only the full appointment carries.
constexpr char kClinicalPlace[] = "Rusmiddelcenter Aarhus";
constexpr char kClinicalPurpose[] = "Opfoelgning paa alkoholbehandling";

struct Party {
  std::string recipient;
  Role role;
  common::v1::Administration administration;
};
const std::vector<Party> kParties = {
    {"citizen-portal", common::v1::ROLE_CITIZEN, common::v1::ADMINISTRATION_UNSPECIFIED},
    {"aarhus-jobcenter", common::v1::ROLE_COORDINATING_CASEWORKER,
     common::v1::ADMINISTRATION_JOB_CENTRE},
    {"mentorhuset", common::v1::ROLE_MENTOR, common::v1::ADMINISTRATION_UNSPECIFIED},
    {"aarhus-sundhed", common::v1::ROLE_HEALTH_ADMINISTRATION, common::v1::ADMINISTRATION_HEALTH},
};

// One delivery as read back from a party topic.
struct Received {
  std::string disclosure;  // the ce_disclosure header
  CaseEvent event;
  std::string value;  // the raw record value
};

class ConsentFlowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    canonical_ = UniqueName("casebridge.case-events.consent");
    audit_topic_ = UniqueName("casebridge.audit.consent");
    config::v1::KafkaConfig kafka = testing::TestKafkaConfig();
    kafka.set_create_topics(true);

    config::v1::CoordinationServiceConfig coordination;
    coordination.mutable_server()->set_listen_address("127.0.0.1:0");
    coordination.mutable_server()->set_insecure_development_mode(true);
    *coordination.mutable_kafka() = kafka;
    coordination.set_canonical_topic(canonical_);
    coordination.set_audit_topic(audit_topic_);
    coordination.set_consumer_group(UniqueName("coordination-consent"));
    coordination.set_municipality("0751");
    coordination.set_store_path(dir_.File("coordination.db"));
    for (const Party& party : kParties) {
      config::v1::Recipient* recipient = coordination.add_recipients();
      recipient->set_id(party.recipient);
      recipient->set_topic(UniqueName("casebridge.party." + party.recipient));
      recipient->set_administration(party.administration);
      topics_[party.recipient] = recipient->topic();
    }
    coordination.mutable_authorization()->add_administrators("aarhus-jobcenter");
    auto app = coordination::CoordinationApp::Start(coordination, kKey);
    ASSERT_OK(app);
    coordination_app_ = *std::move(app);
    coordination_ = cv1::CoordinationService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", coordination_app_->port()),
                            grpc::InsecureChannelCredentials()));

    config::v1::CaseSystemServiceConfig health;
    health.set_municipality("0751");
    health.mutable_server()->set_listen_address("127.0.0.1:0");
    health.mutable_server()->set_insecure_development_mode(true);
    *health.mutable_kafka() = kafka;
    health.set_canonical_topic(canonical_);
    health.mutable_adapter()->mutable_reference()->set_database_path(dir_.File("health.db"));
    health.set_ledger_path(dir_.File("health-ledger.db"));
    auto health_app = CaseSystemApp::Start(health::HealthSystem(), health, kKey);
    ASSERT_OK(health_app);
    health_app_ = *std::move(health_app);
    health_ = health::v1::HealthService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", health_app_->port()),
                            grpc::InsecureChannelCredentials()));

    for (const Party& party : kParties) {
      cv1::AssignRoleRequest request;
      request.set_idempotency_key("assign-" + party.recipient);
      request.mutable_case_ref()->set_cpr(kCpr);
      request.set_role(party.role);
      request.set_recipient(party.recipient);
      request.mutable_actor()->set_role(common::v1::ROLE_COORDINATING_CASEWORKER);
      request.mutable_actor()->set_unit("Jobcenter Aarhus");
      cv1::AssignRoleResponse response;
      grpc::ClientContext context;
      ASSERT_TRUE(coordination_->AssignRole(&context, request, &response).ok());
      subject_ = response.subject();
    }
  }

  // Books a health appointment with clinical details; returns its event id.
  std::string BookHealthAppointment(const std::string& key, int day) {
    recording::v1::BookAppointmentRequest request;
    request.mutable_context()->set_idempotency_key(key);
    request.mutable_context()->mutable_case_ref()->set_cpr(kCpr);
    request.mutable_context()->mutable_actor()->set_role(common::v1::ROLE_HEALTH_ADMINISTRATION);
    request.mutable_context()->mutable_actor()->set_unit("Sundhed og Omsorg");
    auto* appointment = request.mutable_appointment();
    appointment->set_kind(events::v1::APPOINTMENT_KIND_TREATMENT_SESSION);
    const absl::Time start = absl::FromUnixSeconds(1893456000) + absl::Hours(24 * day);
    *appointment->mutable_start() = ToProtoTimestamp(start);
    *appointment->mutable_end() = ToProtoTimestamp(start + absl::Hours(1));
    appointment->mutable_location()->set_name(kClinicalPlace);
    appointment->set_purpose(kClinicalPurpose);
    appointment->add_attendees()->set_role(common::v1::ROLE_CITIZEN);
    grpc::ClientContext context;
    recording::v1::RecordResponse response;
    const grpc::Status status = health_->BookAppointment(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_FALSE(response.event_id().empty());
    return response.event_id();
  }

  // Waits until every party topic holds event `event_id`; returns what each
  // recipient received.
  std::map<std::string, Received> DeliveriesOf(const std::string& event_id) {
    std::map<std::string, Received> received;
    for (const Party& party : kParties) {
      std::vector<kafka::Record> records = testing::ReadTopic(
          topics_[party.recipient],
          [&](const std::vector<kafka::Record>& all) {
            for (const kafka::Record& r : all) {
              if (r.HeaderValue("ce_id") == event_id) return true;
            }
            return false;
          },
          absl::Seconds(30));
      for (const kafka::Record& r : records) {
        if (r.HeaderValue("ce_id") != event_id) continue;
        absl::StatusOr<CaseEvent> event = kafka::DecodeCaseEventRecord(r);
        EXPECT_OK(event);
        received[party.recipient] = {r.HeaderValue("ce_disclosure").value_or(""),
                                     event.ok() ? *event : CaseEvent(), r.value};
      }
      EXPECT_TRUE(received.contains(party.recipient)) << party.recipient << " " << event_id;
    }
    return received;
  }

  // Polls ListConsents (as the job centre) until `count` consents are in
  // force, i.e. the coordination service has consumed the consent events.
  std::vector<events::v1::Consent> WaitForConsents(size_t count) {
    std::vector<events::v1::Consent> consents;
    EXPECT_TRUE(testing::PollUntil(
        [&] {
          cv1::ListConsentsRequest request;
          request.mutable_case_ref()->set_subject(subject_);
          cv1::ListConsentsResponse response;
          grpc::ClientContext context;
          context.AddMetadata(common::kDevelopmentIdentityHeader, "aarhus-jobcenter");
          if (!coordination_->ListConsents(&context, request, &response).ok()) return false;
          consents.assign(response.consents().begin(), response.consents().end());
          return consents.size() == count;
        },
        absl::Seconds(30)));
    return consents;
  }

  static void ExpectMinimal(const Received& received, const std::string& who) {
    EXPECT_EQ(received.disclosure, "minimal") << who;
    EXPECT_FALSE(received.event.appointment().has_location()) << who;
    EXPECT_EQ(received.event.appointment().purpose(), "") << who;
    EXPECT_EQ(received.event.appointment().kind(), events::v1::APPOINTMENT_KIND_UNSPECIFIED)
        << who;
    EXPECT_TRUE(received.event.appointment().has_start()) << who;  // that it exists and when
    EXPECT_EQ(received.value.find("Rusmiddelcenter"), std::string::npos) << who;
    EXPECT_EQ(received.value.find("alkohol"), std::string::npos) << who;
  }
  static void ExpectFull(const Received& received, const std::string& who) {
    EXPECT_EQ(received.disclosure, "full") << who;
    EXPECT_EQ(received.event.appointment().location().name(), kClinicalPlace) << who;
    EXPECT_EQ(received.event.appointment().purpose(), kClinicalPurpose) << who;
  }

  TempDir dir_;
  std::string canonical_, audit_topic_, subject_;
  std::map<std::string, std::string> topics_;
  std::unique_ptr<coordination::CoordinationApp> coordination_app_;
  std::unique_ptr<CaseSystemApp> health_app_;
  std::unique_ptr<cv1::CoordinationService::Stub> coordination_;
  std::unique_ptr<health::v1::HealthService::Stub> health_;
};

TEST_F(ConsentFlowTest, ConsentOnAndOffChangesExactlyWhatEachPartyReceivesAndEveryDisclosureIsAudited) {
  // 1. No consent.
  const std::string before = BookHealthAppointment("h-before", 1);
  ASSERT_FALSE(before.empty());
  std::map<std::string, Received> got = DeliveriesOf(before);
  ExpectMinimal(got["aarhus-jobcenter"], "jobcenter, no consent");
  ExpectMinimal(got["mentorhuset"], "mentor, no consent");
  ExpectFull(got["aarhus-sundhed"], "health, its own event");
  ExpectFull(got["citizen-portal"], "citizen, own data");
  EXPECT_EQ(got["aarhus-jobcenter"].event.sensitivity(), events::v1::SENSITIVITY_SPECIAL_HEALTH);

  // 2. Consent: health data to the job centre.
  cv1::RecordConsentRequest give;
  give.set_idempotency_key("consent-health-to-jobcentre");
  give.mutable_case_ref()->set_cpr(kCpr);
  events::v1::ConsentGrant* grant = give.add_grants();
  grant->set_administration(common::v1::ADMINISTRATION_JOB_CENTRE);
  grant->add_sensitivities(events::v1::SENSITIVITY_SPECIAL_HEALTH);
  give.set_purpose("Udveksling af helbredsoplysninger i ressourceforloebet");
  give.set_form("written");
  give.mutable_actor()->set_role(common::v1::ROLE_COORDINATING_CASEWORKER);
  give.mutable_actor()->set_unit("Jobcenter Aarhus");
  cv1::ConsentResponse consent;
  {
    grpc::ClientContext context;
    context.AddMetadata(common::kDevelopmentIdentityHeader, "aarhus-jobcenter");
    ASSERT_TRUE(coordination_->RecordConsent(&context, give, &consent).ok());
  }
  ASSERT_EQ(WaitForConsents(1).size(), 1u);
  const std::string with = BookHealthAppointment("h-with", 2);
  got = DeliveriesOf(with);
  ExpectFull(got["aarhus-jobcenter"], "jobcenter, with consent");
  ExpectMinimal(got["mentorhuset"], "mentor: the consent is not for it");
  ExpectFull(got["aarhus-sundhed"], "health");
  ExpectFull(got["citizen-portal"], "citizen");
  // The consent event itself reached every party.
  EXPECT_EQ(DeliveriesOf(consent.event_id()).size(), kParties.size());

  // 3. Withdrawn: the job centre gets the minimal projection again.
  cv1::WithdrawConsentRequest withdraw;
  withdraw.set_idempotency_key("withdraw-health-to-jobcentre");
  withdraw.mutable_case_ref()->set_cpr(kCpr);
  withdraw.set_consent_id(consent.consent_id());
  *withdraw.mutable_actor() = give.actor();
  cv1::ConsentResponse withdrawn;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(coordination_->WithdrawConsent(&context, withdraw, &withdrawn).ok());
  }
  ASSERT_THAT(WaitForConsents(0), IsEmpty());
  const std::string after = BookHealthAppointment("h-after", 3);
  got = DeliveriesOf(after);
  ExpectMinimal(got["aarhus-jobcenter"], "jobcenter, after withdrawal");
  ExpectMinimal(got["mentorhuset"], "mentor, after withdrawal");
  ExpectFull(got["aarhus-sundhed"], "health");

  // 4. A timeline read by the job centre, now without consent.
  {
    cv1::GetTimelineRequest request;
    request.mutable_case_ref()->set_subject(subject_);
    cv1::Timeline timeline;
    grpc::ClientContext context;
    context.AddMetadata(common::kDevelopmentIdentityHeader, "aarhus-jobcenter");
    ASSERT_TRUE(coordination_->GetTimeline(&context, request, &timeline).ok());
    int minimal = 0;
    for (const auto& entry : timeline.entries()) {
      if (entry.event().has_appointment()) {
        EXPECT_EQ(entry.disclosure(), cv1::DISCLOSURE_MINIMAL) << entry.event().id();
        ++minimal;
      }
    }
    EXPECT_EQ(minimal, 3);
  }

  // 5. The audit topic: one DELIVERED record per delivery on every party
  // topic (same recipient, event, disclosure), and the timeline read.
  std::set<std::tuple<std::string, std::string, std::string>> delivered;  // recipient, id, disclosure
  for (const Party& party : kParties) {
    // One case, one key, one partition: once the last event is there, all are.
    const auto has_last = [&after](const std::vector<kafka::Record>& records) {
      for (const kafka::Record& r : records) {
        if (r.HeaderValue("ce_id") == after) return true;
      }
      return false;
    };
    for (const kafka::Record& r :
         testing::ReadTopic(topics_[party.recipient], has_last, absl::Seconds(30))) {
      delivered.insert({party.recipient, r.HeaderValue("ce_id").value_or(""),
                        r.HeaderValue("ce_disclosure").value_or("")});
    }
  }
  // 4 role events (to the holders so far: 1+2+3+4), 3 appointments and 2
  // consent events to all 4.
  ASSERT_EQ(delivered.size(), 10u + 3 * 4 + 2 * 4);
  std::set<std::tuple<std::string, std::string, std::string>> audited;
  bool timeline_read = false;
  testing::ReadTopic(
      audit_topic_,
      [&](const std::vector<kafka::Record>& records) {
        audited.clear();
        timeline_read = false;
        for (const kafka::Record& r : records) {
          absl::StatusOr<audit::v1::AuditRecord> record = coordination::DecodeAuditRecord(r);
          EXPECT_OK(record);
          if (!record.ok()) continue;
          EXPECT_EQ(record->municipality(), "0751");
          if (record->action() == audit::v1::AUDIT_ACTION_TIMELINE_READ) {
            timeline_read = record->caller() == "aarhus-jobcenter" &&
                            record->subject() == subject_ && record->events_size() >= 9;
          }
          if (record->action() != audit::v1::AUDIT_ACTION_DELIVERED) continue;
          for (const auto& event : record->events()) {
            audited.insert({record->recipient(), event.event_id(),
                            event.disclosure() == cv1::DISCLOSURE_FULL ? "full" : "minimal"});
          }
        }
        return timeline_read && audited.size() >= delivered.size();
      },
      absl::Seconds(30));
  EXPECT_TRUE(timeline_read);
  EXPECT_EQ(audited, delivered);
}

}  // namespace
}  // namespace casebridge
