// Two coordination instances, Aarhus (0751) and Odense (0461), as two
// municipalities run them: one shared canonical topic, their own consumer
// groups, stores and recipient topics, and different routing rules. Events
// of both municipalities are produced onto the canonical topic; each
// recipient topic must hold exactly what its municipality's rules route to
// it, and nothing of the other municipality. Receipts, delivery status and
// the timeline are then read back through gRPC.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "casebridge/coordination/v1/coordination_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/event_ids.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/kafka/kafka_publisher.h"
#include "services/common/proto_time.h"
#include "services/common/pseudonym.h"
#include "services/coordination/coordination_app.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge::coordination {
namespace {

using ::casebridge::common::v1::Role;
using ::casebridge::events::v1::CaseEvent;
using ::casebridge::kafka::Record;
using ::casebridge::testing::GrpcStatusIs;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::PollUntil;
using ::casebridge::testing::ReadTopic;
using ::casebridge::testing::TempDir;
using ::casebridge::testing::UniqueName;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;
namespace v1 = ::casebridge::coordination::v1;
namespace common = ::casebridge::common::v1;
namespace ev = ::casebridge::events::v1;

const std::string kKey(40, 'k');
constexpr char kAarhusCpr[] = "1502851234";
constexpr char kOdenseCpr[] = "0303901234";
// The produced events happened in January 2020, long before the role
// events, which happen now.
const absl::Time kJan1 = absl::FromUnixSeconds(1577872800);  // 2020-01-01 10:00 UTC

absl::Time Day(int n) { return kJan1 + absl::Hours(24 * (n - 1)); }

// One municipality's coordination instance, its stub and its parties.
struct Instance {
  std::string municipality;
  std::unique_ptr<CoordinationApp> app;
  std::unique_ptr<v1::CoordinationService::Stub> stub;
  // Recipient id → its role on the test case.
  std::map<std::string, Role> roles;
  // Recipient id → its Kafka topic.
  std::map<std::string, std::string> topics;
  // The test case of this municipality.
  std::string subject;
};

struct Rule {
  std::vector<std::string> event_types;
  std::vector<Role> roles;
};

std::unique_ptr<grpc::ClientContext> ContextWithDeadline() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return context;
}

class TwoMunicipalitiesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    canonical_ = UniqueName("casebridge.case-events.municipalities");
    kafka_ = testing::TestKafkaConfig();
    kafka_.set_create_topics(true);

    // Aarhus: decisions and appointments to citizen, KS and mentor; referral
    // steps to KS, citizen and rehabilitation team; the health
    // administration gets referral steps and appointments.
    Start(aarhus_, "0751",
          {{"aarhus-borger", common::ROLE_CITIZEN},
           {"aarhus-jobcenter", common::ROLE_COORDINATING_CASEWORKER},
           {"mentorhuset", common::ROLE_MENTOR},
           {"aarhus-sundhed", common::ROLE_HEALTH_ADMINISTRATION},
           {"aarhus-rehab", common::ROLE_REHABILITATION_TEAM}},
          {{{"dk.casebridge.decision.*", "dk.casebridge.appointment.*"},
            {common::ROLE_CITIZEN, common::ROLE_COORDINATING_CASEWORKER, common::ROLE_MENTOR}},
           {{"dk.casebridge.referral.*"},
            {common::ROLE_COORDINATING_CASEWORKER, common::ROLE_CITIZEN,
             common::ROLE_REHABILITATION_TEAM}},
           {{"dk.casebridge.referral.*", "dk.casebridge.appointment.*"},
            {common::ROLE_HEALTH_ADMINISTRATION}}});
    // Odense: the mentor gets no decisions, the benefits unit does; the
    // company consultant gets appointments.
    Start(odense_, "0461",
          {{"odense-borger", common::ROLE_CITIZEN},
           {"odense-jobcenter", common::ROLE_COORDINATING_CASEWORKER},
           {"odense-mentor", common::ROLE_MENTOR},
           {"odense-ydelse", common::ROLE_BENEFITS_UNIT},
           {"odense-virksomhed", common::ROLE_COMPANY_CONSULTANT}},
          {{{"dk.casebridge.decision.*"},
            {common::ROLE_CITIZEN, common::ROLE_COORDINATING_CASEWORKER,
             common::ROLE_BENEFITS_UNIT}},
           {{"dk.casebridge.appointment.*"},
            {common::ROLE_CITIZEN, common::ROLE_COORDINATING_CASEWORKER, common::ROLE_MENTOR,
             common::ROLE_COMPANY_CONSULTANT}}});

    auto publisher = kafka::NewKafkaPublisher(kafka_, {canonical_});
    ASSERT_THAT(publisher, IsOk());
    publisher_ = *std::move(publisher);

    // Every party of each case, through each instance's own AssignRole.
    aarhus_.subject = AssignAll(aarhus_, kAarhusCpr);
    odense_.subject = AssignAll(odense_, kOdenseCpr);
    ASSERT_NE(aarhus_.subject, odense_.subject);
    ASSERT_TRUE(PollUntil([&] { return PartyCount(aarhus_) == 5 && PartyCount(odense_) == 5; }));
  }

  void TearDown() override {
    for (Instance* instance : {&aarhus_, &odense_}) {
      if (instance->app != nullptr) instance->app->Shutdown();
    }
  }

  void Start(Instance& instance, const std::string& municipality,
             std::vector<std::pair<std::string, Role>> parties, std::vector<Rule> rules) {
    instance.municipality = municipality;
    config::v1::CoordinationServiceConfig config;
    config.mutable_server()->set_listen_address("127.0.0.1:0");
    config.mutable_server()->set_insecure_development_mode(true);
    *config.mutable_kafka() = kafka_;
    config.set_canonical_topic(canonical_);
    config.set_consumer_group(UniqueName("casebridge-coordination-" + municipality));
    config.set_municipality(municipality);
    config.set_store_path(dir_.File("coordination-" + municipality + ".db"));
    for (const auto& [id, role] : parties) {
      config::v1::Recipient& recipient = *config.add_recipients();
      recipient.set_id(id);
      recipient.set_topic(UniqueName("casebridge.party." + id));
      instance.roles[id] = role;
      instance.topics[id] = recipient.topic();
    }
    for (const Rule& rule : rules) {
      config::v1::RoutingRule& configured = *config.mutable_routing()->add_rules();
      for (const std::string& type : rule.event_types) configured.add_event_types(type);
      for (Role role : rule.roles) configured.add_roles(role);
    }
    // The watchdogs stay off and never run during the test.
    config.mutable_watchdogs()->mutable_check_interval()->set_seconds(3600);
    auto app = CoordinationApp::Start(config, kKey);
    ASSERT_THAT(app, IsOk());
    instance.app = *std::move(app);
    instance.stub = v1::CoordinationService::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(instance.app->port()),
                            grpc::InsecureChannelCredentials()));
  }

  // Assigns every party of `instance` its role on the case of `cpr`.
  std::string AssignAll(Instance& instance, const std::string& cpr) {
    std::string subject;
    for (const auto& [recipient, role] : instance.roles) {
      subject = Assign(instance, cpr, "assign-" + recipient, role, recipient);
    }
    return subject;
  }

  std::string Assign(Instance& instance, const std::string& cpr, const std::string& key,
                     Role role, const std::string& recipient) {
    v1::AssignRoleRequest request;
    request.set_idempotency_key(key);
    request.mutable_case_ref()->set_cpr(cpr);
    request.set_role(role);
    request.set_recipient(recipient);
    request.mutable_actor()->set_role(common::ROLE_COORDINATING_CASEWORKER);
    request.mutable_actor()->set_unit("Jobcenter, Team Ressourceforløb");
    v1::AssignRoleResponse response;
    auto context = ContextWithDeadline();
    EXPECT_THAT(instance.stub->AssignRole(context.get(), request, &response),
                GrpcStatusIs(grpc::StatusCode::OK, ""));
    return response.subject();
  }

  int PartyCount(Instance& instance) {
    v1::ListPartiesRequest request;
    request.mutable_case_ref()->set_subject(instance.subject);
    v1::ListPartiesResponse response;
    auto context = ContextWithDeadline();
    if (!instance.stub->ListParties(context.get(), request, &response).ok()) return -1;
    return response.parties_size();
  }

  // Produces an event of `instance`'s municipality, recorded by `system`,
  // onto the canonical topic, as that system's service would.
  CaseEvent Produce(const Instance& instance, const std::string& system,
                    ev::SourceSystem source_system, absl::Time occurred,
                    const std::function<void(CaseEvent&)>& payload) {
    CaseEvent event;
    event.set_source(EventSource(system, instance.municipality));
    event.set_id(EventIdFor(event.source(), UniqueName("event")));
    event.set_source_system(source_system);
    event.set_subject(instance.subject);
    event.set_municipality(instance.municipality);
    event.set_sequence(++sequences_[event.source()]);
    event.set_sensitivity(ev::SENSITIVITY_ORDINARY);
    *event.mutable_occurred_at() = ToProtoTimestamp(occurred);
    *event.mutable_recorded_at() = ToProtoTimestamp(occurred + absl::Minutes(1));
    payload(event);
    event.set_type(EventTypeFor(event));
    EXPECT_THAT(kafka::SendAndWait(*publisher_, kafka::CaseEventRecord(canonical_, event),
                                   absl::Seconds(30)),
                IsOk());
    return event;
  }

  CaseEvent Decision(const Instance& instance, absl::Time occurred, ev::DecisionOutcome outcome,
                     const std::string& corrects = "") {
    return Produce(instance, "jobcentre", ev::SOURCE_SYSTEM_JOB_CENTRE, occurred,
                   [&](CaseEvent& event) {
                     event.mutable_decision()->set_outcome(outcome);
                     event.mutable_decision()->mutable_offer()->set_code("LAB-mentor");
                     if (!corrects.empty()) {
                       event.mutable_supersedes()->set_event_id(corrects);
                       event.mutable_supersedes()->set_kind(ev::Supersession::KIND_CORRECTION);
                     }
                   });
  }

  CaseEvent Appointment(const Instance& instance, const std::string& system,
                        ev::SourceSystem source_system, absl::Time occurred) {
    return Produce(instance, system, source_system, occurred, [&](CaseEvent& event) {
      ev::Appointment& appointment = *event.mutable_appointment();
      appointment.set_appointment_id(UniqueName("appointment"));
      appointment.set_status(ev::APPOINTMENT_STATUS_SCHEDULED);
      appointment.set_kind(ev::APPOINTMENT_KIND_NETWORK_MEETING);
      *appointment.mutable_start() = ToProtoTimestamp(occurred + absl::Hours(24 * 7));
      *appointment.mutable_end() = ToProtoTimestamp(occurred + absl::Hours(24 * 7 + 1));
    });
  }

  CaseEvent ReferralSent(const Instance& instance, absl::Time occurred) {
    return Produce(instance, "health", ev::SOURCE_SYSTEM_HEALTH, occurred, [&](CaseEvent& event) {
      event.mutable_referral()->set_referral_id(UniqueName("referral"));
      event.mutable_referral()->set_status(ev::REFERRAL_STATUS_SENT);
    });
  }

  // Records a role event every party of the case receives, after everything
  // produced so far, and returns its id: when it is on a recipient's topic,
  // everything routed to that recipient before it is there too (one case,
  // one partition, processed in order).
  std::string Marker(Instance& instance) {
    v1::AssignRoleRequest request;
    request.set_idempotency_key("marker");
    request.mutable_case_ref()->set_subject(instance.subject);
    request.set_role(common::ROLE_COORDINATING_CASEWORKER);
    request.set_recipient(instance.municipality == "0751" ? "aarhus-jobcenter"
                                                          : "odense-jobcenter");
    request.mutable_actor()->set_role(common::ROLE_COORDINATING_CASEWORKER);
    request.mutable_actor()->set_unit("Jobcenter, Team Ressourceforløb");
    v1::AssignRoleResponse response;
    auto context = ContextWithDeadline();
    EXPECT_THAT(instance.stub->AssignRole(context.get(), request, &response),
                GrpcStatusIs(grpc::StatusCode::OK, ""));
    return response.event_id();
  }

  // What crossed the wire to `recipient` up to `marker`: the ids of the
  // events other than role events, in order, after checking every record's
  // key, recipient header and gapless sequence numbers.
  std::vector<std::string> DeliveredTo(const Instance& instance, const std::string& recipient,
                                       const std::string& marker) {
    const std::vector<Record> records =
        ReadTopic(instance.topics.at(recipient), [&](const std::vector<Record>& read) {
          for (const Record& record : read) {
            if (record.HeaderValue("ce_id") == marker) return true;
          }
          return false;
        });
    std::vector<std::string> ids;
    uint64_t expected_sequence = 0;
    bool marker_seen = false;
    for (const Record& record : records) {
      EXPECT_EQ(record.key, instance.subject) << "a record of another case on " << recipient;
      EXPECT_EQ(record.HeaderValue("ce_recipient"), recipient);
      EXPECT_EQ(record.HeaderValue("ce_recipientseq"), kafka::FormatSequence(++expected_sequence));
      auto event = kafka::DecodeCaseEventRecord(record);
      EXPECT_THAT(event, IsOk());
      if (!event.ok()) continue;
      EXPECT_EQ(event->municipality(), instance.municipality);
      marker_seen = marker_seen || event->id() == marker;
      if (!event->has_role_assignment()) ids.push_back(event->id());
    }
    EXPECT_TRUE(marker_seen) << recipient << " never received the marker";
    return ids;
  }

  v1::Timeline Timeline(Instance& instance, const std::string& cpr, bool include_superseded) {
    v1::GetTimelineRequest request;
    request.mutable_case_ref()->set_cpr(cpr);
    request.set_include_superseded(include_superseded);
    v1::Timeline response;
    auto context = ContextWithDeadline();
    EXPECT_THAT(instance.stub->GetTimeline(context.get(), request, &response),
                GrpcStatusIs(grpc::StatusCode::OK, ""));
    return response;
  }

  grpc::Status DeliveryStatus(Instance& instance, const std::string& event_id,
                              v1::DeliveryStatus& response) {
    v1::GetDeliveryStatusRequest request;
    request.set_event_id(event_id);
    auto context = ContextWithDeadline();
    return instance.stub->GetDeliveryStatus(context.get(), request, &response);
  }

  grpc::Status SendReceipt(Instance& instance, const std::string& recipient,
                           const std::string& event_id, v1::ReceiptStatus status) {
    v1::SendReceiptRequest request;
    request.set_recipient(recipient);
    request.set_event_id(event_id);
    request.set_status(status);
    v1::SendReceiptResponse response;
    auto context = ContextWithDeadline();
    return instance.stub->SendReceipt(context.get(), request, &response);
  }

  TempDir dir_;
  std::string canonical_;
  config::v1::KafkaConfig kafka_;
  Instance aarhus_;
  Instance odense_;
  std::unique_ptr<kafka::Publisher> publisher_;
  std::map<std::string, uint64_t> sequences_;
};

TEST_F(TwoMunicipalitiesTest, EachRecipientGetsWhatItsMunicipalitysRulesRouteAndNothingElse) {
  // Interleaved on the one canonical topic.
  const CaseEvent a_decision = Decision(aarhus_, Day(2), ev::DECISION_OUTCOME_GRANTED);
  const CaseEvent o_decision = Decision(odense_, Day(2), ev::DECISION_OUTCOME_REFUSED);
  const CaseEvent a_referral = ReferralSent(aarhus_, Day(1));
  const CaseEvent o_appointment =
      Appointment(odense_, "health", ev::SOURCE_SYSTEM_HEALTH, Day(3));
  const CaseEvent a_appointment =
      Appointment(aarhus_, "social", ev::SOURCE_SYSTEM_SOCIAL, Day(3));
  const CaseEvent a_correction =
      Decision(aarhus_, Day(4), ev::DECISION_OUTCOME_PARTIALLY_GRANTED, a_decision.id());
  const std::string aarhus_marker = Marker(aarhus_);
  const std::string odense_marker = Marker(odense_);

  const std::string a1 = a_decision.id(), a2 = a_referral.id(), a3 = a_appointment.id(),
                    a4 = a_correction.id(), o1 = o_decision.id(), o2 = o_appointment.id();
  const std::map<std::string, std::vector<std::string>> aarhus_expected = {
      {"aarhus-borger", {a1, a2, a3, a4}},
      {"aarhus-jobcenter", {a1, a2, a3, a4}},
      {"mentorhuset", {a1, a3, a4}},
      {"aarhus-sundhed", {a2, a3}},
      {"aarhus-rehab", {a2}}};
  const std::map<std::string, std::vector<std::string>> odense_expected = {
      {"odense-borger", {o1, o2}},
      {"odense-jobcenter", {o1, o2}},
      {"odense-mentor", {o2}},
      {"odense-ydelse", {o1}},
      {"odense-virksomhed", {o2}}};
  for (const auto& [recipient, ids] : aarhus_expected) {
    SCOPED_TRACE(recipient);
    EXPECT_THAT(DeliveredTo(aarhus_, recipient, aarhus_marker), ElementsAreArray(ids));
  }
  for (const auto& [recipient, ids] : odense_expected) {
    SCOPED_TRACE(recipient);
    EXPECT_THAT(DeliveredTo(odense_, recipient, odense_marker), ElementsAreArray(ids));
  }

  // Each instance skipped every record of the other municipality: its six
  // role events (five assignments and the marker) and its two events.
  EXPECT_TRUE(PollUntil([&] {
    return aarhus_.app->delivery_stats().other_municipality == 8 &&
           odense_.app->delivery_stats().other_municipality == 10;
  })) << "aarhus skipped " << aarhus_.app->delivery_stats().other_municipality
      << ", odense skipped " << odense_.app->delivery_stats().other_municipality;
  v1::DeliveryStatus status;
  EXPECT_THAT(DeliveryStatus(aarhus_, o1, status),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND, ::testing::_));
  EXPECT_THAT(DeliveryStatus(odense_, a1, status),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND, ::testing::_));
}

TEST_F(TwoMunicipalitiesTest, ReceiptShowsAsAcceptedAndTheOtherRecipientsAsUnacknowledged) {
  const CaseEvent decision = Decision(aarhus_, Day(2), ev::DECISION_OUTCOME_GRANTED);
  const std::string marker = Marker(aarhus_);
  ASSERT_THAT(DeliveredTo(aarhus_, "mentorhuset", marker), ElementsAre(decision.id()));

  // The mentor's system read it from its topic and accepted it.
  ASSERT_THAT(SendReceipt(aarhus_, "mentorhuset", decision.id(), v1::RECEIPT_STATUS_ACCEPTED),
              GrpcStatusIs(grpc::StatusCode::OK, ""));
  // The health administration never received it; Odense does not know it.
  EXPECT_THAT(SendReceipt(aarhus_, "aarhus-sundhed", decision.id(), v1::RECEIPT_STATUS_ACCEPTED),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND, ::testing::_));
  EXPECT_THAT(SendReceipt(odense_, "odense-jobcenter", decision.id(), v1::RECEIPT_STATUS_ACCEPTED),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND, ::testing::_));

  v1::DeliveryStatus status;
  ASSERT_THAT(DeliveryStatus(aarhus_, decision.id(), status),
              GrpcStatusIs(grpc::StatusCode::OK, ""));
  EXPECT_EQ(status.subject(), aarhus_.subject);
  EXPECT_EQ(status.type(), "dk.casebridge.decision.granted.v1");
  std::vector<std::string> states;
  for (const v1::RecipientDelivery& entry : status.recipients()) {
    states.push_back(entry.recipient() + ":" + v1::DeliveryState_Name(entry.state()));
    EXPECT_TRUE(entry.has_routed_at());
    EXPECT_EQ(entry.acknowledged_at().seconds() != 0, entry.recipient() == "mentorhuset");
  }
  // The marker is on every topic, so the decision was durable on each before.
  EXPECT_THAT(states, ElementsAre("aarhus-borger:DELIVERY_STATE_PUBLISHED",
                                  "aarhus-jobcenter:DELIVERY_STATE_PUBLISHED",
                                  "mentorhuset:DELIVERY_STATE_ACCEPTED"));
  EXPECT_THAT(status.unacknowledged(), ElementsAre("aarhus-borger", "aarhus-jobcenter"));
}

TEST_F(TwoMunicipalitiesTest, TimelineOrdersEventsFromEverySourceAndMarksTheCorrectedOne) {
  const CaseEvent decision = Decision(aarhus_, Day(2), ev::DECISION_OUTCOME_GRANTED);
  const CaseEvent referral = ReferralSent(aarhus_, Day(1));
  const CaseEvent appointment = Appointment(aarhus_, "social", ev::SOURCE_SYSTEM_SOCIAL, Day(3));
  const CaseEvent correction =
      Decision(aarhus_, Day(4), ev::DECISION_OUTCOME_PARTIALLY_GRANTED, decision.id());
  Decision(odense_, Day(2), ev::DECISION_OUTCOME_REFUSED);
  ASSERT_THAT(DeliveredTo(aarhus_, "aarhus-jobcenter", Marker(aarhus_)),
              ElementsAre(decision.id(), referral.id(), appointment.id(), correction.id()));

  // "source event-id" per entry, "superseded by …" where not current. The
  // role events happened today, after the four dated ones.
  auto describe = [](const v1::Timeline& timeline) {
    std::vector<std::string> entries;
    for (const v1::TimelineEntry& entry : timeline.entries()) {
      if (entry.event().has_role_assignment()) continue;
      entries.push_back(entry.event().source() + " " + entry.event().id() +
                        (entry.current() ? "" : " superseded by " + entry.superseded_by()));
    }
    return entries;
  };
  const v1::Timeline current = Timeline(aarhus_, kAarhusCpr, false);
  const v1::Timeline everything = Timeline(aarhus_, kAarhusCpr, true);

  EXPECT_EQ(current.subject(), aarhus_.subject);
  EXPECT_THAT(describe(current), ElementsAre("/casebridge/health/0751 " + referral.id(),
                                             "/casebridge/social/0751 " + appointment.id(),
                                             "/casebridge/jobcentre/0751 " + correction.id()));
  EXPECT_THAT(describe(everything),
              ElementsAre("/casebridge/health/0751 " + referral.id(),
                          "/casebridge/jobcentre/0751 " + decision.id() + " superseded by " +
                              correction.id(),
                          "/casebridge/social/0751 " + appointment.id(),
                          "/casebridge/jobcentre/0751 " + correction.id()));
  // Six role events from the coordination source close the timeline.
  ASSERT_EQ(everything.entries_size(), 4 + 6);
  for (int i = 4; i < everything.entries_size(); ++i) {
    EXPECT_EQ(everything.entries(i).event().source(), "/casebridge/coordination/0751");
  }
  // Odense never saw the Aarhus case.
  v1::GetTimelineRequest request;
  request.mutable_case_ref()->set_subject(aarhus_.subject);
  v1::Timeline other;
  auto context = ContextWithDeadline();
  ASSERT_THAT(odense_.stub->GetTimeline(context.get(), request, &other),
              GrpcStatusIs(grpc::StatusCode::OK, ""));
  EXPECT_THAT(other.entries(), IsEmpty());
}

}  // namespace
}  // namespace casebridge::coordination
