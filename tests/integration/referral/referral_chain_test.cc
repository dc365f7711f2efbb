// A referral's status chain across administrations, on the real broker: the
// job-centre, health and social services run in process (each through
// `CaseSystemApp`, as their binaries do) and publish to one canonical topic.
// The job centre sends, the receiving administration records every later
// step in its own system; the tests read back what crossed the wire.
#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/case_system_app.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/proto_time.h"
#include "services/health/health_system.h"
#include "services/jobcentre/jobcentre_system.h"
#include "services/social/social_system.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge {
namespace {

using ::casebridge::events::v1::CaseEvent;
using ::casebridge::events::v1::Referral;
using ::casebridge::events::v1::ReferralStatus;
using ::casebridge::recording::v1::RecordReferralStepRequest;
using ::casebridge::recording::v1::RecordResponse;
using ::casebridge::testing::ReadAtLeast;
using ::casebridge::testing::TempDir;
using ::casebridge::testing::UniqueName;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kCpr[] = "1203851237";
constexpr char kCprDashed[] = "120385-1237";
constexpr char kMunicipality[] = "0751";
const std::string kKey(40, 'r');

constexpr char kJobCentreSource[] = "/casebridge/jobcentre/0751";
constexpr char kHealthSource[] = "/casebridge/health/0751";
constexpr char kSocialSource[] = "/casebridge/social/0751";

common::v1::Unit UnitOf(const std::string& id, const std::string& name,
                        common::v1::Administration administration) {
  common::v1::Unit unit;
  unit.set_id(id);
  unit.set_name(name);
  unit.set_administration(administration);
  return unit;
}

const common::v1::Unit kJobCentreUnit = UnitOf(
    "0751-jobcenter-rf", "Jobcenter Aarhus, Team Ressourceforløb",
    common::v1::ADMINISTRATION_JOB_CENTRE);
// Where the job centre sent the rehabilitation referral by mistake, and
// where it belongs.
const common::v1::Unit kWrongHealthUnit =
    UnitOf("0751-sundhed-forebyggelse", "Sundhed og Omsorg, Forebyggelse",
           common::v1::ADMINISTRATION_HEALTH);
const common::v1::Unit kRightHealthUnit =
    UnitOf("0751-sundhed-genoptraening", "Sundhed og Omsorg, Genoptræning",
           common::v1::ADMINISTRATION_HEALTH);
const common::v1::Unit kSocialUnit =
    UnitOf("0751-socialcenter", "Socialcenter Aarhus", common::v1::ADMINISTRATION_SOCIAL_SERVICES);

// One record of the canonical topic, decoded.
struct Seen {
  std::string type;
  std::string source;
  std::string sensitivity;
  CaseEvent event;
};

class ReferralChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    topic_ = UniqueName("casebridge.case-events.referral");
    jobcentre_ = Start(jobcentre::JobCentreSystem(), "jobcentre");
    health_ = Start(health::HealthSystem(), "health");
    social_ = Start(social::SocialSystem(), "social");
    ASSERT_TRUE(jobcentre_ && health_ && social_);
    jobcentre_stub_ = jobcentre::v1::JobCentreService::NewStub(Channel(*jobcentre_));
    health_stub_ = health::v1::HealthService::NewStub(Channel(*health_));
    social_stub_ = social::v1::SocialService::NewStub(Channel(*social_));
  }

  void TearDown() override {
    for (auto* app : {&jobcentre_, &health_, &social_}) {
      if (*app) (*app)->Shutdown();
    }
  }

  // Starts one system's service on a free port, publishing to `topic_`,
  // with its own reference system and ledger.
  std::unique_ptr<CaseSystemApp> Start(CaseSystemDefinition definition, const std::string& name) {
    config::v1::CaseSystemServiceConfig config;
    config.set_municipality(kMunicipality);
    config.mutable_server()->set_listen_address("127.0.0.1:0");
    config.mutable_server()->set_insecure_development_mode(true);
    *config.mutable_kafka() = testing::TestKafkaConfig();
    config.mutable_kafka()->set_create_topics(true);
    config.set_canonical_topic(topic_);
    config.mutable_adapter()->mutable_reference()->set_database_path(dir_.File(name + ".db"));
    config.set_ledger_path(dir_.File(name + "-ledger.db"));
    absl::StatusOr<std::unique_ptr<CaseSystemApp>> app =
        CaseSystemApp::Start(std::move(definition), config, kKey);
    EXPECT_OK(app) << name;
    return app.ok() ? *std::move(app) : nullptr;
  }

  static std::shared_ptr<grpc::Channel> Channel(const CaseSystemApp& app) {
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", app.port()),
                               grpc::InsecureChannelCredentials());
  }

  static RecordReferralStepRequest StepRequest(const std::string& key, ReferralStatus status,
                                               const std::string& referral_id,
                                               const common::v1::Unit& actor_unit) {
    RecordReferralStepRequest request;
    request.mutable_context()->set_idempotency_key(key);
    request.mutable_context()->mutable_case_ref()->set_cpr(kCprDashed);
    request.mutable_context()->mutable_actor()->set_role(common::v1::ROLE_CASEWORKER);
    request.mutable_context()->mutable_actor()->set_unit(actor_unit.name());
    request.mutable_referral()->set_status(status);
    request.mutable_referral()->set_referral_id(referral_id);
    return request;
  }

  // The job centre sends a referral to `offer` at `to` and returns its id.
  std::string Send(const std::string& key, const std::string& offer,
                   common::v1::Administration administration, const common::v1::Unit& to) {
    RecordReferralStepRequest request =
        StepRequest(key, events::v1::REFERRAL_STATUS_SENT, "", kJobCentreUnit);
    Referral& referral = *request.mutable_referral();
    referral.mutable_offer()->set_code(offer);
    referral.mutable_offer()->set_administration(administration);
    *referral.mutable_from_unit() = kJobCentreUnit;
    *referral.mutable_to_unit() = to;
    grpc::ClientContext context;
    RecordResponse response;
    const grpc::Status status = jobcentre_stub_->RecordReferralStep(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.record_id();
  }

  // Records a step in the health or the social system, expecting OK.
  template <typename Stub>
  RecordResponse Record(Stub& stub, const RecordReferralStepRequest& request) {
    grpc::ClientContext context;
    RecordResponse response;
    const grpc::Status status = stub.RecordReferralStep(&context, request, &response);
    EXPECT_TRUE(status.ok()) << request.context().idempotency_key() << ": "
                             << status.error_message();
    return response;
  }

  // Reads the canonical topic until `count` records are there (and a
  // moment longer, to catch any that should not be).
  std::vector<Seen> ReadCanonical(size_t count) {
    std::vector<kafka::Record> records = ReadAtLeast(topic_, count);
    std::vector<Seen> seen;
    for (const kafka::Record& record : records) {
      // No CPR number anywhere on the topic: key, headers, value.
      std::string everything = record.key + record.value;
      for (const kafka::Header& header : record.headers) everything += header.key + header.value;
      EXPECT_THAT(everything, Not(HasSubstr(kCpr)));
      EXPECT_THAT(everything, Not(HasSubstr(kCprDashed)));
      absl::StatusOr<CaseEvent> event = kafka::DecodeCaseEventRecord(record);
      EXPECT_OK(event);
      seen.push_back(Seen{record.HeaderValue("ce_type").value_or(""),
                          record.HeaderValue("ce_source").value_or(""),
                          record.HeaderValue("ce_sensitivity").value_or(""),
                          event.ok() ? *event : CaseEvent()});
    }
    return seen;
  }

  static std::vector<std::string> TypesFrom(const std::vector<Seen>& seen,
                                            const std::string& source) {
    std::vector<std::string> types;
    for (const Seen& s : seen) {
      if (s.source == source) types.push_back(s.type);
    }
    return types;
  }

  TempDir dir_;
  std::string topic_;
  std::unique_ptr<CaseSystemApp> jobcentre_, health_, social_;
  std::unique_ptr<jobcentre::v1::JobCentreService::Stub> jobcentre_stub_;
  std::unique_ptr<health::v1::HealthService::Stub> health_stub_;
  std::unique_ptr<social::v1::SocialService::Stub> social_stub_;
};

TEST_F(ReferralChainTest, HealthReferralSentToTheWrongUnitIsForwardedAndRunsItsWholeChain) {
  const std::string id = Send("send-genoptraening", "SUL-140", common::v1::ADMINISTRATION_HEALTH,
                              kWrongHealthUnit);
  ASSERT_EQ(id, "R-000001");
  const absl::Time first_estimate = absl::Now() + absl::Hours(24 * 30);
  const absl::Time second_estimate = absl::Now() + absl::Hours(24 * 51);

  // The wrong unit acknowledges it (the health system learns the offer and
  // units from the job centre's SENT event) and forwards it.
  RecordReferralStepRequest received = StepRequest(
      "received-wrong-unit", events::v1::REFERRAL_STATUS_RECEIVED, id, kWrongHealthUnit);
  received.mutable_referral()->mutable_offer()->set_code("SUL-140");
  received.mutable_referral()->mutable_offer()->set_administration(
      common::v1::ADMINISTRATION_HEALTH);
  *received.mutable_referral()->mutable_from_unit() = kJobCentreUnit;
  *received.mutable_referral()->mutable_to_unit() = kWrongHealthUnit;
  Record(*health_stub_, received);
  RecordReferralStepRequest forwarded =
      StepRequest("forwarded", events::v1::REFERRAL_STATUS_FORWARDED, id, kWrongHealthUnit);
  *forwarded.mutable_referral()->mutable_forwarded_to() = kRightHealthUnit;
  Record(*health_stub_, forwarded);
  // The right unit takes it from there.
  Record(*health_stub_, StepRequest("received-right-unit", events::v1::REFERRAL_STATUS_RECEIVED,
                                    id, kRightHealthUnit));
  RecordReferralStepRequest assessed =
      StepRequest("assessed", events::v1::REFERRAL_STATUS_ASSESSED, id, kRightHealthUnit);
  assessed.mutable_referral()->mutable_assessment()->set_in_target_group(true);
  Record(*health_stub_, assessed);
  Record(*health_stub_,
         StepRequest("accepted", events::v1::REFERRAL_STATUS_ACCEPTED, id, kRightHealthUnit));
  RecordReferralStepRequest waitlisted =
      StepRequest("waitlisted", events::v1::REFERRAL_STATUS_WAITLISTED, id, kRightHealthUnit);
  *waitlisted.mutable_referral()->mutable_estimated_start() = ToProtoTimestamp(first_estimate);
  Record(*health_stub_, waitlisted);
  RecordReferralStepRequest changed = StepRequest(
      "estimate-changed", events::v1::REFERRAL_STATUS_ESTIMATE_CHANGED, id, kRightHealthUnit);
  *changed.mutable_referral()->mutable_estimated_start() = ToProtoTimestamp(second_estimate);
  Record(*health_stub_, changed);
  Record(*health_stub_,
         StepRequest("started", events::v1::REFERRAL_STATUS_STARTED, id, kRightHealthUnit));
  Record(*health_stub_,
         StepRequest("ended", events::v1::REFERRAL_STATUS_ENDED, id, kRightHealthUnit));

  const std::vector<Seen> seen = ReadCanonical(10);
  ASSERT_EQ(seen.size(), 10u);
  EXPECT_THAT(TypesFrom(seen, kJobCentreSource), ElementsAre("dk.casebridge.referral.sent.v1"));
  EXPECT_THAT(TypesFrom(seen, kHealthSource),
              ElementsAre("dk.casebridge.referral.received.v1",
                          "dk.casebridge.referral.forwarded.v1",
                          "dk.casebridge.referral.received.v1",
                          "dk.casebridge.referral.assessed.v1",
                          "dk.casebridge.referral.accepted.v1",
                          "dk.casebridge.referral.waitlisted.v1",
                          "dk.casebridge.referral.estimate-changed.v1",
                          "dk.casebridge.referral.started.v1",
                          "dk.casebridge.referral.ended.v1"));
  uint64_t health_sequence = 0;
  for (const Seen& s : seen) {
    EXPECT_EQ(s.event.referral().referral_id(), id) << s.type;
    EXPECT_EQ(s.event.referral().offer().code(), "SUL-140") << s.type;
    EXPECT_EQ(s.event.subject(), seen[0].event.subject());
    // A referral to a health offer is special-category health data, in the
    // sending and in the receiving system.
    EXPECT_EQ(s.sensitivity, "special-health") << s.type;
    if (s.source == kHealthSource) {
      EXPECT_EQ(s.event.source_system(), events::v1::SOURCE_SYSTEM_HEALTH);
      EXPECT_EQ(s.event.sequence(), ++health_sequence) << "health's own order";
    }
  }
  EXPECT_EQ(seen[0].source, kJobCentreSource);
  EXPECT_EQ(seen[0].event.referral().to_unit().id(), kWrongHealthUnit.id());
  EXPECT_EQ(seen[2].event.referral().forwarded_to().id(), kRightHealthUnit.id());
  EXPECT_EQ(seen[3].event.referral().to_unit().id(), kRightHealthUnit.id());
  EXPECT_TRUE(seen[4].event.referral().assessment().in_target_group());
  EXPECT_EQ(ToAbslTime(seen[6].event.referral().estimated_start()), first_estimate);
  const Referral& estimate_changed = seen[7].event.referral();
  EXPECT_EQ(ToAbslTime(estimate_changed.previous_estimated_start()), first_estimate);
  EXPECT_EQ(ToAbslTime(estimate_changed.estimated_start()), second_estimate);
  // Every step after the forward belongs to the right unit.
  for (size_t i = 3; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].event.referral().to_unit().id(), kRightHealthUnit.id()) << seen[i].type;
  }
}

TEST_F(ReferralChainTest, SocialReferralIsRefusedWithReasonsAndAlternatives) {
  const std::string id =
      Send("send-sel85", "SEL-85", common::v1::ADMINISTRATION_SOCIAL_SERVICES, kSocialUnit);
  ASSERT_EQ(id, "R-000001");

  RecordReferralStepRequest received =
      StepRequest("received", events::v1::REFERRAL_STATUS_RECEIVED, id, kSocialUnit);
  received.mutable_referral()->mutable_offer()->set_code("SEL-85");
  *received.mutable_referral()->mutable_from_unit() = kJobCentreUnit;
  *received.mutable_referral()->mutable_to_unit() = kSocialUnit;
  Record(*social_stub_, received);
  RecordReferralStepRequest assessed =
      StepRequest("assessed", events::v1::REFERRAL_STATUS_ASSESSED, id, kSocialUnit);
  events::v1::Assessment& assessment = *assessed.mutable_referral()->mutable_assessment();
  assessment.set_in_target_group(false);
  events::v1::Reason* reason = assessment.add_reasons();
  reason->set_code("needs-housing-support-not-home-support");
  reason->set_text("Behovet er bostøtte, ikke praktisk hjælp i hjemmet.");
  reason->mutable_legal_basis()->set_law("SEL");
  reason->mutable_legal_basis()->set_paragraph("85");
  events::v1::Alternative* alternative = assessment.add_alternatives();
  alternative->mutable_offer()->set_code("SEL-85-bostøtte");
  alternative->mutable_offer()->set_administration(common::v1::ADMINISTRATION_SOCIAL_SERVICES);
  alternative->set_description("Bostøtte to gange om ugen.");
  Record(*social_stub_, assessed);
  RecordReferralStepRequest refused =
      StepRequest("refused", events::v1::REFERRAL_STATUS_REFUSED, id, kSocialUnit);
  refused.mutable_referral()->add_reasons()->set_code("not-in-target-group");
  Record(*social_stub_, refused);

  const std::vector<Seen> seen = ReadCanonical(4);
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_THAT(TypesFrom(seen, kJobCentreSource), ElementsAre("dk.casebridge.referral.sent.v1"));
  EXPECT_THAT(TypesFrom(seen, kSocialSource),
              ElementsAre("dk.casebridge.referral.received.v1",
                          "dk.casebridge.referral.assessed.v1",
                          "dk.casebridge.referral.refused.v1"));
  for (const Seen& s : seen) {
    EXPECT_EQ(s.event.referral().referral_id(), id) << s.type;
    EXPECT_EQ(s.sensitivity, "confidential") << s.type;
  }
  const events::v1::Assessment& published = seen[2].event.referral().assessment();
  EXPECT_FALSE(published.in_target_group());
  ASSERT_EQ(published.reasons_size(), 1);
  EXPECT_EQ(published.reasons(0).code(), "needs-housing-support-not-home-support");
  EXPECT_EQ(published.reasons(0).legal_basis().paragraph(), "85");
  ASSERT_EQ(published.alternatives_size(), 1);
  EXPECT_EQ(published.alternatives(0).offer().code(), "SEL-85-bostøtte");
  EXPECT_EQ(published.alternatives(0).description(), "Bostøtte to gange om ugen.");
  const Referral& refusal = seen[3].event.referral();
  EXPECT_EQ(refusal.status(), events::v1::REFERRAL_STATUS_REFUSED);
  ASSERT_EQ(refusal.reasons_size(), 1);
  EXPECT_EQ(refusal.reasons(0).code(), "not-in-target-group");
  EXPECT_EQ(refusal.offer().code(), "SEL-85");
  EXPECT_EQ(seen[3].event.source_system(), events::v1::SOURCE_SYSTEM_SOCIAL);
}

TEST_F(ReferralChainTest, ReceivingSystemRefusesAStepOutOfOrderAndPublishesNothing) {
  const std::string id = Send("send-genoptraening", "SUL-140", common::v1::ADMINISTRATION_HEALTH,
                              kRightHealthUnit);
  RecordReferralStepRequest received =
      StepRequest("received", events::v1::REFERRAL_STATUS_RECEIVED, id, kRightHealthUnit);
  received.mutable_referral()->mutable_offer()->set_code("SUL-140");
  Record(*health_stub_, received);

  grpc::ClientContext context;
  RecordResponse response;
  EXPECT_THAT(health_stub_->RecordReferralStep(
                  &context,
                  StepRequest("started", events::v1::REFERRAL_STATUS_STARTED, id, kRightHealthUnit),
                  &response),
              testing::GrpcStatusIs(grpc::FAILED_PRECONDITION,
                                    HasSubstr("started cannot follow received")));
  // A later valid step is next on the topic: nothing was published between.
  RecordReferralStepRequest assessed =
      StepRequest("assessed", events::v1::REFERRAL_STATUS_ASSESSED, id, kRightHealthUnit);
  assessed.mutable_referral()->mutable_assessment()->set_in_target_group(true);
  Record(*health_stub_, assessed);
  const std::vector<Seen> seen = ReadCanonical(3);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[2].type, "dk.casebridge.referral.assessed.v1");
}

}  // namespace
}  // namespace casebridge
