// The case-system service end to end in one process, once per
// administration (job centre, social services, health): the real service
// (`CaseSystemServiceImpl<…Service>` over `CaseSystemCore`) on 127.0.0.1:0
// behind the generated stub, the administration's reference system in a
// TempDir, the real EventRecorder over a TempDir ledger and the in-memory
// publisher in place of Kafka. The three services expose the same
// behaviour, so almost every test runs against each of them.
#include "services/common/case_system_service.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "adapters/common/case_system_adapter.h"
#include "adapters/health/reference/reference_health_system.h"
#include "adapters/jobcentre/reference/reference_jobcentre_system.h"
#include "adapters/social/reference/reference_social_system.h"
#include "casebridge/config/v1/config.pb.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/case_system_app.h"
#include "services/common/peer_identity.h"
#include "services/common/clock.h"
#include "services/common/event_ids.h"
#include "services/common/event_recorder.h"
#include "services/common/grpc_server.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/kafka/memory_publisher.h"
#include "services/common/proto_time.h"
#include "services/common/pseudonym.h"
#include "services/health/health_system.h"
#include "services/jobcentre/jobcentre_system.h"
#include "services/social/social_system.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge {
namespace {

using ::casebridge::events::v1::CaseEvent;
using ::casebridge::events::v1::Referral;
using ::casebridge::events::v1::ReferralStatus;
using ::casebridge::events::v1::Sensitivity;
using ::casebridge::recording::v1::BookAppointmentRequest;
using ::casebridge::recording::v1::CancelAppointmentRequest;
using ::casebridge::recording::v1::CancelEventRequest;
using ::casebridge::recording::v1::ListCaseEventsRequest;
using ::casebridge::recording::v1::ListCaseEventsResponse;
using ::casebridge::recording::v1::RecordAttendanceRequest;
using ::casebridge::recording::v1::RecordDecisionRequest;
using ::casebridge::recording::v1::RecordReferralStepRequest;
using ::casebridge::recording::v1::RecordResponse;
using ::casebridge::recording::v1::RescheduleAppointmentRequest;
using ::casebridge::testing::GrpcStatusIs;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::TempDir;
using ::testing::_;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr char kMunicipality[] = "0751";
constexpr char kTopic[] = "casebridge.case-events.v1";
constexpr char kPseudonymKey[] = "jobcentre-service-test-key-0123456789abcdef";
// The citizen, as the caller writes the CPR number, and its 10 digits.
constexpr char kCpr[] = "010190-1234";
constexpr char kCprDigits[] = "0101901234";
constexpr char kOtherCpr[] = "020285-4321";
// The fake clock's start, 2026-01-01T10:00:00Z: before the real time, so a
// client deadline (real time) never undercuts the service's (fake) one.
constexpr int64_t kNowSeconds = 1767261600;
const absl::Time kNow = absl::FromUnixSeconds(kNowSeconds);
constexpr int64_t kDay = 86400;

// The RPCs of the three generated stubs, behind one interface, so that one
// test body drives any of them.
class Client {
 public:
  virtual ~Client() = default;
  virtual grpc::Status RecordDecision(grpc::ClientContext* c, const RecordDecisionRequest& r,
                                      RecordResponse* out) = 0;
  virtual grpc::Status BookAppointment(grpc::ClientContext* c, const BookAppointmentRequest& r,
                                       RecordResponse* out) = 0;
  virtual grpc::Status RescheduleAppointment(grpc::ClientContext* c,
                                             const RescheduleAppointmentRequest& r,
                                             RecordResponse* out) = 0;
  virtual grpc::Status CancelAppointment(grpc::ClientContext* c, const CancelAppointmentRequest& r,
                                         RecordResponse* out) = 0;
  virtual grpc::Status RecordAttendance(grpc::ClientContext* c, const RecordAttendanceRequest& r,
                                        RecordResponse* out) = 0;
  virtual grpc::Status RecordReferralStep(grpc::ClientContext* c,
                                          const RecordReferralStepRequest& r,
                                          RecordResponse* out) = 0;
  virtual grpc::Status CancelEvent(grpc::ClientContext* c, const CancelEventRequest& r,
                                   RecordResponse* out) = 0;
  virtual grpc::Status ListCaseEvents(grpc::ClientContext* c, const ListCaseEventsRequest& r,
                                      ListCaseEventsResponse* out) = 0;
  virtual std::unique_ptr<grpc::ClientReaderWriterInterface<recording::v1::ImportRequest,
                                                            recording::v1::ImportResult>>
  Import(grpc::ClientContext* c) = 0;
};

template <typename ServiceT>
class StubClient final : public Client {
 public:
  explicit StubClient(const std::shared_ptr<grpc::Channel>& channel)
      : stub_(ServiceT::NewStub(channel)) {}
  grpc::Status RecordDecision(grpc::ClientContext* c, const RecordDecisionRequest& r,
                              RecordResponse* out) override {
    return stub_->RecordDecision(c, r, out);
  }
  grpc::Status BookAppointment(grpc::ClientContext* c, const BookAppointmentRequest& r,
                               RecordResponse* out) override {
    return stub_->BookAppointment(c, r, out);
  }
  grpc::Status RescheduleAppointment(grpc::ClientContext* c, const RescheduleAppointmentRequest& r,
                                     RecordResponse* out) override {
    return stub_->RescheduleAppointment(c, r, out);
  }
  grpc::Status CancelAppointment(grpc::ClientContext* c, const CancelAppointmentRequest& r,
                                 RecordResponse* out) override {
    return stub_->CancelAppointment(c, r, out);
  }
  grpc::Status RecordAttendance(grpc::ClientContext* c, const RecordAttendanceRequest& r,
                                RecordResponse* out) override {
    return stub_->RecordAttendance(c, r, out);
  }
  grpc::Status RecordReferralStep(grpc::ClientContext* c, const RecordReferralStepRequest& r,
                                  RecordResponse* out) override {
    return stub_->RecordReferralStep(c, r, out);
  }
  grpc::Status CancelEvent(grpc::ClientContext* c, const CancelEventRequest& r,
                           RecordResponse* out) override {
    return stub_->CancelEvent(c, r, out);
  }
  grpc::Status ListCaseEvents(grpc::ClientContext* c, const ListCaseEventsRequest& r,
                              ListCaseEventsResponse* out) override {
    return stub_->ListCaseEvents(c, r, out);
  }
  std::unique_ptr<grpc::ClientReaderWriterInterface<recording::v1::ImportRequest,
                                                    recording::v1::ImportResult>>
  Import(grpc::ClientContext* c) override {
    return stub_->Import(c);
  }

 private:
  std::unique_ptr<typename ServiceT::Stub> stub_;
};

template <typename ServiceT>
std::unique_ptr<Client> NewClient(const std::shared_ptr<grpc::Channel>& channel) {
  return std::make_unique<StubClient<ServiceT>>(channel);
}

// One administration's service as the tests run it.
struct SystemUnderTest {
  std::string name;
  CaseSystemDefinition definition;
  std::function<absl::StatusOr<std::unique_ptr<CaseSystemAdapter>>(
      const config::v1::ReferenceSystemConfig&, Clock&)>
      new_reference;
  std::function<std::unique_ptr<Client>(const std::shared_ptr<grpc::Channel>&)> new_client;
  // An offer in the system's catalogue and its administration.
  std::string offer;
  common::v1::Administration administration;
  // An offer of another administration.
  std::string foreign_offer;
  // The catalogue's name in messages.
  std::string catalogue;
  // The sensitivity of a decision on `offer` and of an appointment, when
  // the caller does not give one.
  Sensitivity offer_sensitivity;
  Sensitivity appointment_sensitivity;
  std::string decision_prefix, appointment_prefix, referral_prefix;
};

void PrintTo(const SystemUnderTest& system, std::ostream* os) { *os << system.name; }

SystemUnderTest JobCentre() {
  return SystemUnderTest{"JobCentre",
                         jobcentre::JobCentreSystem(),
                         &jobcentre::reference::NewReferenceJobCentreSystem,
                         &NewClient<jobcentre::v1::JobCentreService>,
                         "LAB-mentor",
                         common::v1::ADMINISTRATION_JOB_CENTRE,
                         "SEL-85",
                         "job-centre",
                         events::v1::SENSITIVITY_ORDINARY,
                         events::v1::SENSITIVITY_ORDINARY,
                         "D-", "A-", "R-"};
}

SystemUnderTest Social() {
  return SystemUnderTest{"Social",
                         social::SocialSystem(),
                         &social::reference::NewReferenceSocialSystem,
                         &NewClient<social::v1::SocialService>,
                         "SEL-85",
                         common::v1::ADMINISTRATION_SOCIAL_SERVICES,
                         "SUL-140",
                         "social",
                         events::v1::SENSITIVITY_CONFIDENTIAL,
                         events::v1::SENSITIVITY_CONFIDENTIAL,
                         "SD-", "SA-", "SR-"};
}

SystemUnderTest Health() {
  return SystemUnderTest{"Health",
                         health::HealthSystem(),
                         &health::reference::NewReferenceHealthSystem,
                         &NewClient<health::v1::HealthService>,
                         "SUL-140",
                         common::v1::ADMINISTRATION_HEALTH,
                         "LAB-mentor",
                         "health",
                         events::v1::SENSITIVITY_SPECIAL_HEALTH,
                         events::v1::SENSITIVITY_SPECIAL_HEALTH,
                         "HD-", "HA-", "HR-"};
}

class CaseSystemServiceTest : public ::testing::TestWithParam<SystemUnderTest> {
 protected:
  void SetUp() override {
    config::v1::ReferenceSystemConfig reference;
    reference.set_database_path(dir_.File("system.db"));
    absl::StatusOr<std::unique_ptr<CaseSystemAdapter>> adapter =
        GetParam().new_reference(reference, clock_);
    ASSERT_OK(adapter);
    adapter_ = *std::move(adapter);

    absl::StatusOr<std::unique_ptr<Pseudonymizer>> pseudonymizer =
        Pseudonymizer::Create(kPseudonymKey);
    ASSERT_OK(pseudonymizer);
    pseudonymizer_ = *std::move(pseudonymizer);

    const CaseSystemProfile& profile = GetParam().definition.profile;
    RecorderOptions options;
    options.topic = kTopic;
    options.system = profile.system;
    options.source_system = profile.source_system;
    options.municipality = kMunicipality;
    options.delivery_timeout = absl::Seconds(5);
    absl::StatusOr<std::unique_ptr<EventRecorder>> recorder =
        EventRecorder::Create(dir_.File("ledger.db"), options, publisher_, clock_);
    ASSERT_OK(recorder);
    recorder_ = *std::move(recorder);

    core_ = std::make_unique<CaseSystemCore>(profile, *adapter_, *recorder_, *pseudonymizer_,
                                             kMunicipality, absl::Seconds(5), clock_);
    config::v1::CaseSystemAuthorization authorization;
    authorization.add_recorders("vendor-system");
    authorization.add_readers("auditing-system");
    core_->set_authorization(authorization);
    service_ = GetParam().definition.new_service(*core_);
    config::v1::ServerConfig server;
    server.set_listen_address("127.0.0.1:0");
    server.set_insecure_development_mode(true);
    absl::StatusOr<StartedServer> started = StartGrpcServer(server, {service_.get()});
    ASSERT_OK(started);
    server_ = std::move(started->server);
    stub_ = GetParam().new_client(grpc::CreateChannel(absl::StrCat("127.0.0.1:", started->port),
                                                      grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  // "/casebridge/<system>/0751".
  static std::string Source() {
    return EventSource(GetParam().definition.profile.system, kMunicipality);
  }

  // --- requests -----------------------------------------------------------

  static void FillContext(recording::v1::RecordContext& context, const std::string& key,
                          const std::string& cpr) {
    context.set_idempotency_key(key);
    context.mutable_case_ref()->set_cpr(cpr);
    context.mutable_actor()->set_role(common::v1::ROLE_CASEWORKER);
    context.mutable_actor()->set_unit("Jobcenter Aarhus, Team Ressourceforløb");
  }

  // A refusal of the system's offer with reasons, an alternative and
  // complaint guidance.
  static RecordDecisionRequest Refusal(const std::string& key, const std::string& cpr = kCpr) {
    RecordDecisionRequest request;
    FillContext(*request.mutable_context(), key, cpr);
    request.mutable_context()->mutable_occurred_at()->set_seconds(kNowSeconds - 3600);
    common::v1::LegalReference* law = request.mutable_context()->add_legal_basis();
    law->set_law("LAB");
    law->set_paragraph("31");
    law->set_subsection("1");
    events::v1::Decision& decision = *request.mutable_decision();
    decision.set_outcome(events::v1::DECISION_OUTCOME_REFUSED);
    decision.mutable_offer()->set_code(GetParam().offer);
    decision.mutable_offer()->set_name("Mentorstøtte");
    decision.mutable_offer()->set_administration(GetParam().administration);
    events::v1::Reason* reason = decision.add_reasons();
    reason->set_code("not-in-target-group");
    reason->set_text("Du er ikke i målgruppen for mentorstøtte.");
    events::v1::Alternative* alternative = decision.add_alternatives();
    alternative->mutable_offer()->set_code("SEL-85");
    alternative->mutable_offer()->set_administration(common::v1::ADMINISTRATION_SOCIAL_SERVICES);
    alternative->set_description("Støtte i hjemmet kan passe bedre.");
    decision.mutable_complaint()->set_text("Du kan klage inden 4 uger.");
    decision.mutable_complaint()->set_complaint_body("Ankestyrelsen");
    decision.mutable_complaint()->mutable_deadline()->set_seconds(kNowSeconds + 28 * kDay);
    decision.mutable_decided_by()->set_role(common::v1::ROLE_CASEWORKER);
    decision.mutable_decided_by()->set_unit("Jobcenter Aarhus");
    return request;
  }

  static BookAppointmentRequest Booking(const std::string& key, const std::string& cpr = kCpr) {
    BookAppointmentRequest request;
    FillContext(*request.mutable_context(), key, cpr);
    events::v1::Appointment& appointment = *request.mutable_appointment();
    appointment.set_kind(events::v1::APPOINTMENT_KIND_FOLLOW_UP_CONVERSATION);
    appointment.mutable_start()->set_seconds(kNowSeconds + kDay);
    appointment.mutable_end()->set_seconds(kNowSeconds + kDay + 3600);
    appointment.mutable_location()->set_name("Jobcenter Aarhus, Værkmestergade 15");
    appointment.add_attendees()->set_role(common::v1::ROLE_CITIZEN);
    return request;
  }

  // A referral step; SENT (to the system's own offer, so that it can be
  // received here too) gets an offer and units.
  static RecordReferralStepRequest ReferralStep(const std::string& key, ReferralStatus status,
                                                const std::string& referral_id = "") {
    RecordReferralStepRequest request;
    FillContext(*request.mutable_context(), key, kCpr);
    Referral& referral = *request.mutable_referral();
    referral.set_status(status);
    referral.set_referral_id(referral_id);
    switch (status) {
      case events::v1::REFERRAL_STATUS_SENT:
        referral.mutable_offer()->set_code(GetParam().offer);
        referral.mutable_offer()->set_administration(GetParam().administration);
        referral.mutable_from_unit()->set_id("0751-jobcenter-rf");
        referral.mutable_to_unit()->set_id("0751-unit-b");
        break;
      case events::v1::REFERRAL_STATUS_ASSESSED:
        referral.mutable_assessment()->set_in_target_group(true);
        break;
      case events::v1::REFERRAL_STATUS_REFUSED:
      case events::v1::REFERRAL_STATUS_INTERRUPTED:
        referral.add_reasons()->set_code("capacity");
        break;
      case events::v1::REFERRAL_STATUS_WAITLISTED:
        referral.mutable_estimated_start()->set_seconds(kNowSeconds + 30 * kDay);
        break;
      case events::v1::REFERRAL_STATUS_ESTIMATE_CHANGED:
        referral.mutable_estimated_start()->set_seconds(kNowSeconds + 45 * kDay);
        break;
      case events::v1::REFERRAL_STATUS_FORWARDED:
        referral.mutable_forwarded_to()->set_id("0751-unit-c");
        break;
      default:
        break;
    }
    return request;
  }

  static CancelEventRequest Cancellation(const std::string& key, const std::string& event_id,
                                         const std::string& cpr = kCpr) {
    CancelEventRequest request;
    FillContext(*request.mutable_context(), key, cpr);
    request.mutable_context()->mutable_supersedes()->set_event_id(event_id);
    request.mutable_context()->mutable_supersedes()->set_kind(
        events::v1::Supersession::KIND_CANCELLATION);
    request.mutable_context()->mutable_supersedes()->set_reason("Registreret på forkert borger.");
    return request;
  }

  // --- calls --------------------------------------------------------------

  static std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return context;
  }

  grpc::Status Decide(const RecordDecisionRequest& request, RecordResponse* response = nullptr) {
    RecordResponse ignored;
    return stub_->RecordDecision(Context().get(), request, response ? response : &ignored);
  }

  grpc::Status Book(const BookAppointmentRequest& request, RecordResponse* response = nullptr) {
    RecordResponse ignored;
    return stub_->BookAppointment(Context().get(), request, response ? response : &ignored);
  }

  // Books an appointment and returns its id ("" on failure).
  std::string BookedAppointment(const std::string& key = "book-1") {
    RecordResponse response;
    grpc::Status status = Book(Booking(key), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.record_id();
  }

  grpc::Status Reschedule(const std::string& key, const std::string& appointment_id,
                          int64_t new_start, RecordResponse* response = nullptr) {
    RescheduleAppointmentRequest request;
    FillContext(*request.mutable_context(), key, kCpr);
    request.set_appointment_id(appointment_id);
    request.mutable_start()->set_seconds(new_start);
    request.mutable_end()->set_seconds(new_start + 3600);
    request.set_reason("Sagsbehandleren er syg.");
    RecordResponse ignored;
    return stub_->RescheduleAppointment(Context().get(), request, response ? response : &ignored);
  }

  grpc::Status Cancel(const std::string& key, const std::string& appointment_id,
                      RecordResponse* response = nullptr) {
    CancelAppointmentRequest request;
    FillContext(*request.mutable_context(), key, kCpr);
    request.set_appointment_id(appointment_id);
    request.set_reason("Borgeren er i praktik.");
    RecordResponse ignored;
    return stub_->CancelAppointment(Context().get(), request, response ? response : &ignored);
  }

  grpc::Status Attend(const std::string& key, const std::string& appointment_id, bool attended,
                      RecordResponse* response = nullptr) {
    RecordAttendanceRequest request;
    FillContext(*request.mutable_context(), key, kCpr);
    request.set_appointment_id(appointment_id);
    request.set_attended(attended);
    RecordResponse ignored;
    return stub_->RecordAttendance(Context().get(), request, response ? response : &ignored);
  }

  grpc::Status RecordStep(const RecordReferralStepRequest& request,
                          RecordResponse* response = nullptr) {
    RecordResponse ignored;
    return stub_->RecordReferralStep(Context().get(), request, response ? response : &ignored);
  }

  // Records `status` on `referral_id` (SENT: a new referral) with key
  // `key`, expecting OK; returns the response.
  RecordResponse Step(const std::string& key, ReferralStatus status,
                      const std::string& referral_id = "") {
    RecordResponse response;
    grpc::Status status_ = RecordStep(ReferralStep(key, status, referral_id), &response);
    EXPECT_TRUE(status_.ok()) << key << ": " << status_.error_message();
    return response;
  }

  grpc::Status CancelEvent(const CancelEventRequest& request, RecordResponse* response = nullptr) {
    RecordResponse ignored;
    return stub_->CancelEvent(Context().get(), request, response ? response : &ignored);
  }

  grpc::Status List(const common::v1::CaseRef& case_ref, uint64_t after_sequence, int page_size,
                    ListCaseEventsResponse* response) {
    ListCaseEventsRequest request;
    *request.mutable_case_ref() = case_ref;
    request.set_after_sequence(after_sequence);
    request.set_page_size(page_size);
    return stub_->ListCaseEvents(Context().get(), request, response);
  }

  // --- observations -------------------------------------------------------

  static common::v1::CaseRef ByCpr(const std::string& cpr = kCpr) {
    common::v1::CaseRef ref;
    ref.set_cpr(cpr);
    return ref;
  }
  common::v1::CaseRef BySubject(const std::string& cpr = kCpr) {
    common::v1::CaseRef ref;
    ref.set_subject(SubjectOf(cpr));
    return ref;
  }
  std::string SubjectOf(const std::string& cpr) {
    return pseudonymizer_->SubjectFor(kMunicipality, cpr).value();
  }

  // Every published record, decoded (and checked to decode).
  std::vector<CaseEvent> Published() {
    std::vector<CaseEvent> events;
    for (const kafka::Record& record : publisher_.records()) {
      EXPECT_EQ(record.topic, kTopic);
      absl::StatusOr<CaseEvent> event = kafka::DecodeCaseEventRecord(record);
      EXPECT_OK(event);
      if (event.ok()) events.push_back(*std::move(event));
    }
    return events;
  }

  static std::vector<uint64_t> Sequences(const ListCaseEventsResponse& response) {
    std::vector<uint64_t> sequences;
    for (const CaseEvent& event : response.events()) sequences.push_back(event.sequence());
    return sequences;
  }

  TempDir dir_;
  FakeClock clock_{kNow};
  kafka::MemoryPublisher publisher_;
  std::unique_ptr<CaseSystemAdapter> adapter_;
  std::unique_ptr<Pseudonymizer> pseudonymizer_;
  std::unique_ptr<EventRecorder> recorder_;
  std::unique_ptr<CaseSystemCore> core_;
  std::unique_ptr<grpc::Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Client> stub_;
};

INSTANTIATE_TEST_SUITE_P(Systems, CaseSystemServiceTest,
                         ::testing::Values(JobCentre(), Social(), Health()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------
// W3C trace context from the call's metadata (docs/adr/0022-w3c-trace-context.md)

constexpr char kCallerTraceparent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr char kCallerTracestate[] = "congo=t61rcWkgMzE";

std::unique_ptr<grpc::ClientContext> TracedContext(const std::string& traceparent,
                                                   const std::string& tracestate) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  context->AddMetadata("traceparent", traceparent);
  if (!tracestate.empty()) context->AddMetadata("tracestate", tracestate);
  return context;
}

TEST_P(CaseSystemServiceTest, RecordingRpcRecordsItsEventInASpanOfTheCallersTrace) {
  RecordResponse response;
  ASSERT_THAT(stub_->RecordDecision(TracedContext(kCallerTraceparent, kCallerTracestate).get(),
                                    Refusal("traced-1"), &response),
              GrpcStatusIs(grpc::OK, ""));
  ASSERT_THAT(publisher_.records(), SizeIs(1));
  const TraceContext published = kafka::TraceContextOf(publisher_.records()[0]);
  EXPECT_EQ(published.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_NE(published.parent_id(), "00f067aa0ba902b7");
  EXPECT_EQ(published.flags(), 0x01);
  EXPECT_EQ(published.tracestate(), kCallerTracestate);
}

TEST_P(CaseSystemServiceTest, InvalidTraceparentMetadataStartsANewTraceAndIsNoError) {
  RecordResponse response;
  ASSERT_THAT(stub_->RecordDecision(
                  TracedContext("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
                                kCallerTracestate)
                      .get(),
                  Refusal("traced-1"), &response),
              GrpcStatusIs(grpc::OK, ""));
  ASSERT_THAT(publisher_.records(), SizeIs(1));
  const TraceContext published = kafka::TraceContextOf(publisher_.records()[0]);
  EXPECT_TRUE(published.valid());
  EXPECT_NE(published.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(published.tracestate(), "");
}

TEST_P(CaseSystemServiceTest, ImportRecordsEachRequestInItsOwnSpanOfTheStreamsTrace) {
  auto context = TracedContext(kCallerTraceparent, "");
  auto stream = stub_->Import(context.get());
  for (int i = 0; i < 3; ++i) {
    recording::v1::ImportRequest request;
    *request.mutable_record_decision() = Refusal(absl::StrCat("import-", i));
    ASSERT_TRUE(stream->Write(request));
  }
  ASSERT_TRUE(stream->WritesDone());
  recording::v1::ImportResult result;
  while (stream->Read(&result)) {
  }
  ASSERT_THAT(stream->Finish(), GrpcStatusIs(grpc::OK, ""));
  ASSERT_THAT(publisher_.records(), SizeIs(3));
  std::set<std::string> spans;
  for (const kafka::Record& record : publisher_.records()) {
    const TraceContext published = kafka::TraceContextOf(record);
    EXPECT_EQ(published.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    spans.insert(published.parent_id());
  }
  EXPECT_EQ(spans.size(), 3u);
  EXPECT_FALSE(spans.contains("00f067aa0ba902b7"));
}

// ---------------------------------------------------------------------------
// RecordDecision

// Authorisation: only `authorization.recorders` record, readers read; the
// caller names itself with `casebridge-dev-identity` here (development mode),
// as its certificate's CN does under mutual TLS.
TEST_P(CaseSystemServiceTest, OnlyRecordersRecordAndReadersRead) {
  const auto as = [](const std::string& identity) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->AddMetadata(common::kDevelopmentIdentityHeader, identity);
    return context;
  };
  RecordResponse response;
  EXPECT_THAT(stub_->RecordDecision(as("auditing-system").get(), Refusal("decision-1"), &response),
              GrpcStatusIs(grpc::PERMISSION_DENIED,
                           StartsWith("caller \"auditing-system\" may not record in the ")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
  EXPECT_THAT(stub_->RecordDecision(as("vendor-system").get(), Refusal("decision-1"), &response),
              GrpcStatusIs(grpc::OK, ""));
  EXPECT_THAT(publisher_.records(), SizeIs(1));

  ListCaseEventsRequest list;
  list.mutable_case_ref()->set_cpr(kCpr);
  ListCaseEventsResponse listed;
  EXPECT_THAT(stub_->ListCaseEvents(as("mentorhuset").get(), list, &listed),
              GrpcStatusIs(grpc::PERMISSION_DENIED, StartsWith("caller \"mentorhuset\" may not read")));
  EXPECT_THAT(stub_->ListCaseEvents(as("auditing-system").get(), list, &listed),
              GrpcStatusIs(grpc::OK, ""));
  EXPECT_EQ(listed.events_size(), 1);
}

TEST_P(CaseSystemServiceTest, RecordDecisionAnswersWithTheEventsIdentity) {
  RecordResponse response;
  ASSERT_THAT(Decide(Refusal("decision-1"), &response), GrpcStatusIs(grpc::OK, ""));
  EXPECT_EQ(response.event_id(), EventIdFor(Source(), "decision-1"));
  EXPECT_EQ(response.subject(), SubjectOf(kCpr));
  EXPECT_EQ(response.sequence(), 1u);
  EXPECT_EQ(response.record_id(), GetParam().decision_prefix + "000001");
  EXPECT_EQ(response.recorded_at().seconds(), kNowSeconds);
  EXPECT_FALSE(response.replayed());
}

TEST_P(CaseSystemServiceTest, RecordDecisionPublishesExactlyOneRefusedEvent) {
  RecordResponse response;
  ASSERT_THAT(Decide(Refusal("decision-1"), &response), GrpcStatusIs(grpc::OK, ""));
  ASSERT_THAT(publisher_.records(), SizeIs(1));
  const kafka::Record record = publisher_.records()[0];
  EXPECT_EQ(record.key, response.subject());

  const CaseEvent event = Published().at(0);
  EXPECT_EQ(event.type(), "dk.casebridge.decision.refused.v1");
  EXPECT_EQ(event.id(), response.event_id());
  EXPECT_EQ(event.source(), Source());
  EXPECT_EQ(event.source_system(), GetParam().definition.profile.source_system);
  EXPECT_EQ(event.subject(), response.subject());
  EXPECT_EQ(event.municipality(), kMunicipality);
  EXPECT_EQ(event.sequence(), 1u);
  EXPECT_EQ(event.idempotency_key(), "decision-1");
  EXPECT_EQ(event.occurred_at().seconds(), kNowSeconds - 3600);
  EXPECT_EQ(event.sensitivity(), GetParam().offer_sensitivity);
}

TEST_P(CaseSystemServiceTest, PublishedDecisionKeepsItsContent) {
  RecordResponse response;
  const RecordDecisionRequest request = Refusal("decision-1");
  ASSERT_THAT(Decide(request, &response), GrpcStatusIs(grpc::OK, ""));
  const CaseEvent event = Published().at(0);
  const events::v1::Decision& decision = event.decision();
  EXPECT_EQ(decision.decision_id(), response.record_id());
  EXPECT_EQ(decision.outcome(), events::v1::DECISION_OUTCOME_REFUSED);
  EXPECT_EQ(decision.offer().code(), GetParam().offer);
  ASSERT_EQ(decision.reasons_size(), 1);
  EXPECT_EQ(decision.reasons(0).code(), "not-in-target-group");
  EXPECT_EQ(decision.reasons(0).text(), request.decision().reasons(0).text());
  ASSERT_EQ(decision.alternatives_size(), 1);
  EXPECT_EQ(decision.alternatives(0).offer().code(), "SEL-85");
  EXPECT_EQ(decision.alternatives(0).description(), request.decision().alternatives(0).description());
  EXPECT_EQ(decision.complaint().text(), "Du kan klage inden 4 uger.");
  EXPECT_EQ(decision.complaint().complaint_body(), "Ankestyrelsen");
  EXPECT_EQ(decision.complaint().deadline().seconds(), kNowSeconds + 28 * kDay);
  EXPECT_EQ(decision.decided_by().unit(), "Jobcenter Aarhus");
}

TEST_P(CaseSystemServiceTest, PublishedDecisionTakesActorAndLegalBasisFromTheContext) {
  ASSERT_THAT(Decide(Refusal("decision-1")), GrpcStatusIs(grpc::OK, ""));
  const CaseEvent event = Published().at(0);
  EXPECT_EQ(event.actor().role(), common::v1::ROLE_CASEWORKER);
  EXPECT_EQ(event.actor().unit(), "Jobcenter Aarhus, Team Ressourceforløb");
  ASSERT_EQ(event.legal_basis_size(), 1);
  EXPECT_EQ(event.legal_basis(0).law(), "LAB");
  EXPECT_EQ(event.legal_basis(0).paragraph(), "31");
  EXPECT_EQ(event.legal_basis(0).subsection(), "1");
}

TEST_P(CaseSystemServiceTest, PublishedRecordNeverContainsTheCpr) {
  ASSERT_THAT(Decide(Refusal("decision-1")), GrpcStatusIs(grpc::OK, ""));
  ASSERT_THAT(publisher_.records(), SizeIs(1));
  const kafka::Record record = publisher_.records()[0];
  for (const std::string cpr : {kCpr, kCprDigits}) {
    EXPECT_THAT(record.key, Not(HasSubstr(cpr)));
    EXPECT_THAT(record.value, Not(HasSubstr(cpr)));
    for (const kafka::Header& header : record.headers) {
      EXPECT_THAT(header.key, Not(HasSubstr(cpr)));
      EXPECT_THAT(header.value, Not(HasSubstr(cpr))) << header.key;
    }
  }
}

TEST_P(CaseSystemServiceTest, CprIsNotRepeatedInTheResponse) {
  RecordResponse response;
  ASSERT_THAT(Decide(Refusal("decision-1"), &response), GrpcStatusIs(grpc::OK, ""));
  EXPECT_THAT(response.SerializeAsString(), Not(HasSubstr(kCprDigits)));
}

TEST_P(CaseSystemServiceTest, RetryWithTheSameKeyReplaysTheFirstAnswer) {
  RecordResponse first;
  ASSERT_THAT(Decide(Refusal("decision-1"), &first), GrpcStatusIs(grpc::OK, ""));
  clock_.Advance(absl::Minutes(1));
  RecordResponse again;
  ASSERT_THAT(Decide(Refusal("decision-1"), &again), GrpcStatusIs(grpc::OK, ""));
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.event_id(), first.event_id());
  EXPECT_EQ(again.sequence(), first.sequence());
  EXPECT_EQ(again.record_id(), first.record_id());
  EXPECT_THAT(publisher_.records(), SizeIs(1));
}

TEST_P(CaseSystemServiceTest, RetryNamingTheCaseBySubjectReplays) {
  RecordResponse first;
  ASSERT_THAT(Decide(Refusal("decision-1"), &first), GrpcStatusIs(grpc::OK, ""));
  RecordDecisionRequest by_subject = Refusal("decision-1");
  by_subject.mutable_context()->mutable_case_ref()->set_subject(first.subject());
  RecordResponse again;
  ASSERT_THAT(Decide(by_subject, &again), GrpcStatusIs(grpc::OK, ""));
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.event_id(), first.event_id());
  EXPECT_THAT(publisher_.records(), SizeIs(1));
}

TEST_P(CaseSystemServiceTest, SameKeyWithDifferentContentIsAlreadyExists) {
  ASSERT_THAT(Decide(Refusal("decision-1")), GrpcStatusIs(grpc::OK, ""));
  RecordDecisionRequest changed = Refusal("decision-1");
  changed.mutable_decision()->mutable_offer()->set_code("LAB-virksomhedspraktik");
  EXPECT_THAT(Decide(changed),
              GrpcStatusIs(grpc::ALREADY_EXISTS, HasSubstr("context.idempotency_key")));
  EXPECT_THAT(publisher_.records(), SizeIs(1));
}

TEST_P(CaseSystemServiceTest, SameKeyForAnotherCitizenIsAlreadyExists) {
  ASSERT_THAT(Decide(Refusal("decision-1")), GrpcStatusIs(grpc::OK, ""));
  EXPECT_THAT(Decide(Refusal("decision-1", kOtherCpr)), GrpcStatusIs(grpc::ALREADY_EXISTS, _));
  EXPECT_THAT(publisher_.records(), SizeIs(1));
}

TEST_P(CaseSystemServiceTest, InvalidDecisionIsInvalidArgumentNamingTheFieldAndPublishesNothing) {
  RecordDecisionRequest request = Refusal("decision-1");
  request.mutable_decision()->clear_reasons();
  EXPECT_THAT(Decide(request), GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("decision.reasons: ")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_P(CaseSystemServiceTest, MissingDecisionIsInvalidArgument) {
  RecordDecisionRequest request = Refusal("decision-1");
  request.clear_decision();
  EXPECT_THAT(Decide(request), GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("decision: ")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_P(CaseSystemServiceTest, DecisionWithoutLegalBasisIsInvalidArgument) {
  RecordDecisionRequest request = Refusal("decision-1");
  request.mutable_context()->clear_legal_basis();
  EXPECT_THAT(Decide(request),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("context.legal_basis: ")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_P(CaseSystemServiceTest, InvalidCprIsInvalidArgumentWithoutRepeatingIt) {
  RecordDecisionRequest request = Refusal("decision-1", "320190-1234");
  EXPECT_THAT(Decide(request),
              GrpcStatusIs(grpc::INVALID_ARGUMENT,
                           AllOf(StartsWith("context.case_ref.cpr: "), Not(HasSubstr("320190")))));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_P(CaseSystemServiceTest, RejectedRequestDoesNotUseUpItsKey) {
  RecordDecisionRequest bad = Refusal("decision-1");
  bad.mutable_decision()->clear_reasons();
  ASSERT_THAT(Decide(bad), GrpcStatusIs(grpc::INVALID_ARGUMENT, _));
  RecordResponse response;
  ASSERT_THAT(Decide(Refusal("decision-1"), &response), GrpcStatusIs(grpc::OK, ""));
  EXPECT_FALSE(response.replayed());
  EXPECT_EQ(response.sequence(), 1u);
}

// ---------------------------------------------------------------------------
// Appointments

TEST_P(CaseSystemServiceTest, CorrectionOfADecisionNamesTheEventItSupersedes) {
  RecordResponse original;
  ASSERT_THAT(Decide(Refusal("decision-1"), &original), GrpcStatusIs(grpc::OK, ""));
  RecordDecisionRequest correction = Refusal("decision-1-correction");
  correction.mutable_context()->mutable_supersedes()->set_event_id(original.event_id());
  correction.mutable_context()->mutable_supersedes()->set_kind(
      events::v1::Supersession::KIND_CORRECTION);
  correction.mutable_decision()->set_outcome(events::v1::DECISION_OUTCOME_PARTIALLY_GRANTED);
  RecordResponse corrected;
  ASSERT_THAT(Decide(correction, &corrected), GrpcStatusIs(grpc::OK, ""));
  const std::vector<CaseEvent> published = Published();
  ASSERT_EQ(published.size(), 2u);
  EXPECT_EQ(published[1].supersedes().event_id(), original.event_id());
  EXPECT_EQ(published[1].type(), "dk.casebridge.decision.partially-granted.v1");
  EXPECT_EQ(published[1].sequence(), 2u);
}

TEST_P(CaseSystemServiceTest, CorrectionOfAnUnknownEventIsNotFoundAndPublishesNothing) {
  RecordDecisionRequest correction = Refusal("decision-1-correction");
  correction.mutable_context()->mutable_supersedes()->set_event_id(
      "00000000-0000-8000-8000-000000000000");
  correction.mutable_context()->mutable_supersedes()->set_kind(
      events::v1::Supersession::KIND_CORRECTION);
  EXPECT_THAT(Decide(correction),
              GrpcStatusIs(grpc::NOT_FOUND, HasSubstr("context.supersedes.event_id")));
  EXPECT_TRUE(Published().empty());
}

TEST_P(CaseSystemServiceTest, CorrectionOfAnotherCasesEventIsNotFound) {
  RecordResponse other;
  ASSERT_THAT(Decide(Refusal("decision-other", kOtherCpr), &other), GrpcStatusIs(grpc::OK, ""));
  RecordDecisionRequest correction = Refusal("decision-1-correction");
  correction.mutable_context()->mutable_supersedes()->set_event_id(other.event_id());
  correction.mutable_context()->mutable_supersedes()->set_kind(
      events::v1::Supersession::KIND_CORRECTION);
  EXPECT_THAT(Decide(correction),
              GrpcStatusIs(grpc::NOT_FOUND, HasSubstr("context.supersedes.event_id")));
}

TEST_P(CaseSystemServiceTest, CorrectionOfAnotherKindOfEventIsInvalidArgument) {
  RecordResponse booked;
  ASSERT_THAT(Book(Booking("book-1"), &booked), GrpcStatusIs(grpc::OK, ""));
  RecordDecisionRequest correction = Refusal("decision-1-correction");
  correction.mutable_context()->mutable_supersedes()->set_event_id(booked.event_id());
  correction.mutable_context()->mutable_supersedes()->set_kind(
      events::v1::Supersession::KIND_CORRECTION);
  EXPECT_THAT(Decide(correction), GrpcStatusIs(grpc::INVALID_ARGUMENT,
                                               HasSubstr("same kind")));
}

TEST_P(CaseSystemServiceTest, CancellationWithAPayloadIsInvalidArgument) {
  RecordResponse original;
  ASSERT_THAT(Decide(Refusal("decision-1"), &original), GrpcStatusIs(grpc::OK, ""));
  RecordDecisionRequest cancellation = Refusal("decision-1-cancel");
  cancellation.mutable_context()->mutable_supersedes()->set_event_id(original.event_id());
  cancellation.mutable_context()->mutable_supersedes()->set_kind(
      events::v1::Supersession::KIND_CANCELLATION);
  EXPECT_THAT(Decide(cancellation),
              GrpcStatusIs(grpc::INVALID_ARGUMENT,
                           AllOf(StartsWith("context.supersedes.kind: "), HasSubstr("CancelEvent"))));
  EXPECT_EQ(Published().size(), 1u);
}

TEST_P(CaseSystemServiceTest, BookAppointmentPublishesAScheduledEvent) {
  RecordResponse response;
  ASSERT_THAT(Book(Booking("book-1"), &response), GrpcStatusIs(grpc::OK, ""));
  EXPECT_EQ(response.record_id(), GetParam().appointment_prefix + "000001");
  ASSERT_THAT(Published(), SizeIs(1));
  const CaseEvent event = Published()[0];
  EXPECT_EQ(event.type(), "dk.casebridge.appointment.scheduled.v1");
  EXPECT_EQ(event.appointment().appointment_id(), response.record_id());
  EXPECT_EQ(event.appointment().status(), events::v1::APPOINTMENT_STATUS_SCHEDULED);
  EXPECT_EQ(event.appointment().start().seconds(), kNowSeconds + kDay);
  EXPECT_EQ(event.appointment().location().name(), "Jobcenter Aarhus, Værkmestergade 15");
  EXPECT_EQ(event.subject(), SubjectOf(kCpr));
}

TEST_P(CaseSystemServiceTest, InvalidBookingIsInvalidArgumentAndPublishesNothing) {
  BookAppointmentRequest request = Booking("book-1");
  request.mutable_appointment()->clear_attendees();
  EXPECT_THAT(Book(request),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("appointment.attendees: ")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_P(CaseSystemServiceTest, RescheduleAppointmentPublishesARescheduledEvent) {
  const std::string id = BookedAppointment();
  RecordResponse response;
  ASSERT_THAT(Reschedule("move-1", id, kNowSeconds + 2 * kDay, &response),
              GrpcStatusIs(grpc::OK, ""));
  EXPECT_EQ(response.record_id(), id);
  EXPECT_EQ(response.sequence(), 2u);
  ASSERT_THAT(Published(), SizeIs(2));
  const CaseEvent event = Published()[1];
  EXPECT_EQ(event.type(), "dk.casebridge.appointment.rescheduled.v1");
  EXPECT_EQ(event.appointment().appointment_id(), id);
  EXPECT_EQ(event.appointment().status(), events::v1::APPOINTMENT_STATUS_RESCHEDULED);
  EXPECT_EQ(event.appointment().previous_start().seconds(), kNowSeconds + kDay);
  EXPECT_EQ(event.appointment().start().seconds(), kNowSeconds + 2 * kDay);
  EXPECT_EQ(event.appointment().end().seconds(), kNowSeconds + 2 * kDay + 3600);
}

TEST_P(CaseSystemServiceTest, CancelAppointmentPublishesACancelledEvent) {
  const std::string id = BookedAppointment();
  ASSERT_THAT(Cancel("cancel-1", id), GrpcStatusIs(grpc::OK, ""));
  ASSERT_THAT(Published(), SizeIs(2));
  const CaseEvent event = Published()[1];
  EXPECT_EQ(event.type(), "dk.casebridge.appointment.cancelled.v1");
  EXPECT_EQ(event.appointment().appointment_id(), id);
  EXPECT_EQ(event.appointment().status(), events::v1::APPOINTMENT_STATUS_CANCELLED);
  EXPECT_EQ(event.appointment().reason(), "Borgeren er i praktik.");
}

TEST_P(CaseSystemServiceTest, RecordAttendancePublishesAnAttendedEvent) {
  const std::string id = BookedAppointment();
  ASSERT_THAT(Attend("attend-1", id, true), GrpcStatusIs(grpc::OK, ""));
  const CaseEvent event = Published().at(1);
  EXPECT_EQ(event.type(), "dk.casebridge.appointment.attended.v1");
  EXPECT_EQ(event.appointment().status(), events::v1::APPOINTMENT_STATUS_ATTENDED);
  EXPECT_EQ(event.appointment().appointment_id(), id);
}

TEST_P(CaseSystemServiceTest, RecordAttendancePublishesANoShowEvent) {
  const std::string id = BookedAppointment();
  ASSERT_THAT(Attend("attend-1", id, false), GrpcStatusIs(grpc::OK, ""));
  const CaseEvent event = Published().at(1);
  EXPECT_EQ(event.type(), "dk.casebridge.appointment.no-show.v1");
  EXPECT_EQ(event.appointment().status(), events::v1::APPOINTMENT_STATUS_NO_SHOW);
}

TEST_P(CaseSystemServiceTest, RescheduleUnknownAppointmentIsNotFoundAndPublishesNothing) {
  EXPECT_THAT(Reschedule("move-1", "A-999999", kNowSeconds + 2 * kDay),
              GrpcStatusIs(grpc::NOT_FOUND, HasSubstr("A-999999")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_P(CaseSystemServiceTest, AnotherCitizensAppointmentLooksNotFound) {
  RecordResponse booked;
  ASSERT_THAT(Book(Booking("book-1", kOtherCpr), &booked), GrpcStatusIs(grpc::OK, ""));
  EXPECT_THAT(Cancel("cancel-1", booked.record_id()), GrpcStatusIs(grpc::NOT_FOUND, _));
  EXPECT_THAT(publisher_.records(), SizeIs(1));
}

TEST_P(CaseSystemServiceTest, RescheduleCancelledAppointmentIsFailedPrecondition) {
  const std::string id = BookedAppointment();
  ASSERT_THAT(Cancel("cancel-1", id), GrpcStatusIs(grpc::OK, ""));
  EXPECT_THAT(Reschedule("move-1", id, kNowSeconds + 2 * kDay),
              GrpcStatusIs(grpc::FAILED_PRECONDITION, _));
  EXPECT_THAT(publisher_.records(), SizeIs(2));
}

// Found by the fuzzer (docs/fuzzing.md, finding 3).
TEST_P(CaseSystemServiceTest, RescheduleToATimeOutsideRfc3339IsInvalidArgument) {
  const std::string id = BookedAppointment();
  RescheduleAppointmentRequest request;
  FillContext(*request.mutable_context(), "move-1", kCpr);
  request.set_appointment_id(id);
  request.mutable_start()->set_seconds(300000000000);  // year 11476
  request.mutable_end()->set_seconds(300000003600);
  RecordResponse response;
  EXPECT_THAT(stub_->RescheduleAppointment(Context().get(), request, &response),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("start: ")));
  EXPECT_THAT(publisher_.records(), SizeIs(1));  // only the booking
}

TEST_P(CaseSystemServiceTest, RescheduleWithEndBeforeStartIsInvalidArgument) {
  const std::string id = BookedAppointment();
  RescheduleAppointmentRequest request;
  FillContext(*request.mutable_context(), "move-1", kCpr);
  request.set_appointment_id(id);
  request.mutable_start()->set_seconds(kNowSeconds + 2 * kDay);
  request.mutable_end()->set_seconds(kNowSeconds + 2 * kDay - 60);
  RecordResponse response;
  EXPECT_THAT(stub_->RescheduleAppointment(Context().get(), request, &response),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("end: ")));
  EXPECT_THAT(publisher_.records(), SizeIs(1));
}

TEST_P(CaseSystemServiceTest, CancelWithoutReasonIsInvalidArgument) {
  const std::string id = BookedAppointment();
  CancelAppointmentRequest request;
  FillContext(*request.mutable_context(), "cancel-1", kCpr);
  request.set_appointment_id(id);
  RecordResponse response;
  EXPECT_THAT(stub_->CancelAppointment(Context().get(), request, &response),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("reason: ")));
}

TEST_P(CaseSystemServiceTest, AttendanceWithoutAppointmentIdIsInvalidArgument) {
  EXPECT_THAT(Attend("attend-1", "", true),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("appointment_id: ")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

// ---------------------------------------------------------------------------
// Kafka failures

TEST_P(CaseSystemServiceTest, KafkaFailureIsUnavailable) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  EXPECT_THAT(Decide(Refusal("decision-1")),
              GrpcStatusIs(grpc::UNAVAILABLE, HasSubstr("retry with the same idempotency_key")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_P(CaseSystemServiceTest, RetryAfterAKafkaFailurePublishesTheSameEvent) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  ASSERT_THAT(Decide(Refusal("decision-1")), GrpcStatusIs(grpc::UNAVAILABLE, _));
  RecordResponse retry;
  ASSERT_THAT(Decide(Refusal("decision-1"), &retry), GrpcStatusIs(grpc::OK, ""));
  EXPECT_EQ(retry.event_id(), EventIdFor(Source(), "decision-1"));
  EXPECT_EQ(retry.sequence(), 1u);
  EXPECT_EQ(retry.record_id(), GetParam().decision_prefix + "000001");  // recorded once
  ASSERT_THAT(Published(), SizeIs(1));
  EXPECT_EQ(Published()[0].id(), retry.event_id());
}

// ---------------------------------------------------------------------------
// ListCaseEvents

// The bulk import streams every request and its result over one call:
// results in request order, each case's events numbered in stream order.
TEST_P(CaseSystemServiceTest, ImportRecordsEveryRequestAndAnswersInRequestOrder) {
  constexpr int kRequests = 60;
  const std::string cprs[] = {kCpr, kOtherCpr, "030375-1111"};
  auto context = Context();
  auto stream = stub_->Import(context.get());
  for (int i = 0; i < kRequests; ++i) {
    recording::v1::ImportRequest request;
    const std::string key = absl::StrCat("import-", i);
    if (i % 4 == 3) {
      *request.mutable_book_appointment() = Booking(key, cprs[i % 3]);
    } else {
      *request.mutable_record_decision() = Refusal(key, cprs[i % 3]);
    }
    ASSERT_TRUE(stream->Write(request));
  }
  ASSERT_TRUE(stream->WritesDone());
  std::vector<recording::v1::ImportResult> results;
  recording::v1::ImportResult result;
  while (stream->Read(&result)) results.push_back(result);
  ASSERT_THAT(stream->Finish(), GrpcStatusIs(grpc::OK, ""));

  ASSERT_THAT(results, SizeIs(kRequests));
  std::map<std::string, uint64_t> last_sequence;
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(results[i].index(), static_cast<uint64_t>(i));
    const RecordResponse& response = results[i].response();
    EXPECT_EQ(response.event_id(), EventIdFor(Source(), absl::StrCat("import-", i)));
    EXPECT_EQ(response.subject(), SubjectOf(cprs[i % 3]));
    EXPECT_FALSE(response.replayed());
    // A case's events are numbered in the order the stream gave them.
    EXPECT_EQ(response.sequence(), last_sequence[response.subject()] + 1) << "request " << i;
    last_sequence[response.subject()] = response.sequence();
  }
  // Every event is on the topic once, each case's in sequence order.
  ASSERT_THAT(publisher_.records(), SizeIs(kRequests));
  std::map<std::string, uint64_t> on_topic;
  for (const kafka::Record& record : publisher_.records()) {
    absl::StatusOr<events::v1::CaseEvent> event = kafka::DecodeCaseEventRecord(record);
    ASSERT_OK(event);
    EXPECT_EQ(event->sequence(), on_topic[event->subject()] + 1);
    on_topic[event->subject()] = event->sequence();
  }
}

// The import stops at the first request that fails, with that request's
// status naming its index and field; the results before it were sent, and
// the same stream sent again replays them.
TEST_P(CaseSystemServiceTest, ImportStopsAtTheFirstFailureNamingTheRequest) {
  std::vector<recording::v1::ImportRequest> requests(6);
  for (int i = 0; i < 6; ++i) {
    *requests[i].mutable_record_decision() = Refusal(absl::StrCat("import-", i));
  }
  requests[3].mutable_record_decision()->mutable_context()->set_idempotency_key("bad key!");
  const auto run = [&](std::vector<recording::v1::ImportResult>& results) {
    auto context = Context();
    auto stream = stub_->Import(context.get());
    for (const auto& request : requests) stream->Write(request);
    stream->WritesDone();
    recording::v1::ImportResult result;
    while (stream->Read(&result)) results.push_back(result);
    return stream->Finish();
  };
  std::vector<recording::v1::ImportResult> results;
  EXPECT_THAT(run(results), GrpcStatusIs(grpc::INVALID_ARGUMENT,
                                         StartsWith("request 3: context.idempotency_key")));
  ASSERT_THAT(results, SizeIs(3));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(results[i].response().sequence(), i + 1u);
  // One case: nothing after the failed request was recorded.
  EXPECT_THAT(publisher_.records(), SizeIs(3));

  std::vector<recording::v1::ImportResult> again;
  EXPECT_THAT(run(again), GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("request 3: ")));
  ASSERT_THAT(again, SizeIs(3));
  for (const auto& result : again) EXPECT_TRUE(result.response().replayed());
  EXPECT_THAT(publisher_.records(), SizeIs(3));
}

TEST_P(CaseSystemServiceTest, ImportWithoutARequestIsInvalidArgument) {
  auto context = Context();
  auto stream = stub_->Import(context.get());
  stream->Write(recording::v1::ImportRequest());
  stream->WritesDone();
  recording::v1::ImportResult result;
  EXPECT_FALSE(stream->Read(&result));
  EXPECT_THAT(stream->Finish(),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("request 0: request: required")));
}

class ListCaseEventsTest : public CaseSystemServiceTest {
 protected:
  // Books, reschedules and cancels one appointment: sequences 1, 2, 3; and
  // books one for another citizen.
  void RecordThreeEvents() {
    const std::string id = BookedAppointment("book-1");
    ASSERT_THAT(Reschedule("move-1", id, kNowSeconds + 2 * kDay), GrpcStatusIs(grpc::OK, ""));
    ASSERT_THAT(Cancel("cancel-1", id), GrpcStatusIs(grpc::OK, ""));
    ASSERT_THAT(Book(Booking("book-other", kOtherCpr)), GrpcStatusIs(grpc::OK, ""));
  }
};

TEST_P(ListCaseEventsTest, ByCprReturnsTheCasesEventsInSequenceOrder) {
  RecordThreeEvents();
  ListCaseEventsResponse response;
  ASSERT_THAT(List(ByCpr(), 0, 0, &response), GrpcStatusIs(grpc::OK, ""));
  EXPECT_THAT(Sequences(response), ElementsAre(1u, 2u, 3u));
  EXPECT_EQ(response.events(0).type(), "dk.casebridge.appointment.scheduled.v1");
  EXPECT_EQ(response.events(1).type(), "dk.casebridge.appointment.rescheduled.v1");
  EXPECT_EQ(response.events(2).type(), "dk.casebridge.appointment.cancelled.v1");
  for (const CaseEvent& event : response.events()) EXPECT_EQ(event.subject(), SubjectOf(kCpr));
  EXPECT_EQ(response.next_after_sequence(), 0u);
}

TEST_P(ListCaseEventsTest, BySubjectReturnsTheSameEvents) {
  RecordThreeEvents();
  ListCaseEventsResponse by_cpr;
  ListCaseEventsResponse by_subject;
  ASSERT_THAT(List(ByCpr(), 0, 0, &by_cpr), GrpcStatusIs(grpc::OK, ""));
  ASSERT_THAT(List(BySubject(), 0, 0, &by_subject), GrpcStatusIs(grpc::OK, ""));
  EXPECT_EQ(by_subject.SerializeAsString(), by_cpr.SerializeAsString());
}

TEST_P(ListCaseEventsTest, ListedEventsAreThePublishedOnes) {
  RecordThreeEvents();
  ListCaseEventsResponse response;
  ASSERT_THAT(List(ByCpr(), 0, 0, &response), GrpcStatusIs(grpc::OK, ""));
  const std::vector<CaseEvent> published = Published();
  ASSERT_THAT(response.events(), SizeIs(3));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(response.events(i).SerializeAsString(), published[i].SerializeAsString());
  }
}

TEST_P(ListCaseEventsTest, PagesWithPageSizeOneAndNextAfterSequence) {
  RecordThreeEvents();
  std::vector<uint64_t> seen;
  uint64_t after = 0;
  for (int page = 0; page < 10; ++page) {
    ListCaseEventsResponse response;
    ASSERT_THAT(List(ByCpr(), after, 1, &response), GrpcStatusIs(grpc::OK, ""));
    ASSERT_THAT(response.events(), SizeIs(1));
    seen.push_back(response.events(0).sequence());
    after = response.next_after_sequence();
    if (after == 0) break;
    EXPECT_EQ(after, response.events(0).sequence());
  }
  EXPECT_THAT(seen, ElementsAre(1u, 2u, 3u));
}

TEST_P(ListCaseEventsTest, AfterTheLastSequenceIsEmpty) {
  RecordThreeEvents();
  ListCaseEventsResponse response;
  ASSERT_THAT(List(ByCpr(), 3, 10, &response), GrpcStatusIs(grpc::OK, ""));
  EXPECT_THAT(response.events(), IsEmpty());
  EXPECT_EQ(response.next_after_sequence(), 0u);
}

TEST_P(ListCaseEventsTest, AnotherCitizensEventsAreSeparate) {
  RecordThreeEvents();
  ListCaseEventsResponse response;
  ASSERT_THAT(List(ByCpr(kOtherCpr), 0, 0, &response), GrpcStatusIs(grpc::OK, ""));
  ASSERT_THAT(response.events(), SizeIs(1));
  EXPECT_EQ(response.events(0).sequence(), 1u);
  EXPECT_EQ(response.events(0).subject(), SubjectOf(kOtherCpr));
}

TEST_P(ListCaseEventsTest, PageSizeAbove1000IsInvalidArgument) {
  ListCaseEventsResponse response;
  EXPECT_THAT(List(ByCpr(), 0, 1001, &response),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("page_size: ")));
}

TEST_P(ListCaseEventsTest, InvalidCaseRefIsInvalidArgument) {
  ListCaseEventsResponse response;
  EXPECT_THAT(List(ByCpr("3201901234"), 0, 0, &response),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("case_ref.cpr: ")));
  EXPECT_THAT(List(common::v1::CaseRef(), 0, 0, &response),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("case_ref: ")));
}

INSTANTIATE_TEST_SUITE_P(Systems, ListCaseEventsTest,
                         ::testing::Values(JobCentre(), Social(), Health()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------
// Referral steps

TEST_P(CaseSystemServiceTest, SendingAReferralAnswersWithItsNewIdAndPublishesIt) {
  RecordResponse response;
  ASSERT_THAT(RecordStep(ReferralStep("send-1", events::v1::REFERRAL_STATUS_SENT), &response),
              GrpcStatusIs(grpc::OK, ""));
  EXPECT_EQ(response.record_id(), GetParam().referral_prefix + "000001");
  const CaseEvent event = Published().at(0);
  EXPECT_EQ(event.type(), "dk.casebridge.referral.sent.v1");
  EXPECT_EQ(event.id(), response.event_id());
  EXPECT_EQ(event.source(), Source());
  EXPECT_EQ(event.referral().referral_id(), response.record_id());
  EXPECT_EQ(event.referral().status(), events::v1::REFERRAL_STATUS_SENT);
  EXPECT_EQ(event.referral().offer().code(), GetParam().offer);
  EXPECT_EQ(event.referral().to_unit().id(), "0751-unit-b");
}

TEST_P(CaseSystemServiceTest, ReferralChainPublishesEveryStepWithItsIdInOrder) {
  const std::string id = Step("send", events::v1::REFERRAL_STATUS_SENT).record_id();
  const std::vector<ReferralStatus> chain = {
      events::v1::REFERRAL_STATUS_RECEIVED,   events::v1::REFERRAL_STATUS_ASSESSED,
      events::v1::REFERRAL_STATUS_ACCEPTED,   events::v1::REFERRAL_STATUS_WAITLISTED,
      events::v1::REFERRAL_STATUS_ESTIMATE_CHANGED, events::v1::REFERRAL_STATUS_STARTED,
      events::v1::REFERRAL_STATUS_ENDED};
  for (ReferralStatus status : chain) {
    EXPECT_EQ(Step(ReferralStatus_Name(status), status, id).record_id(), id);
  }

  std::vector<std::string> types;
  for (const CaseEvent& event : Published()) {
    types.push_back(event.type());
    EXPECT_EQ(event.referral().referral_id(), id);
    EXPECT_EQ(event.referral().offer().code(), GetParam().offer) << event.type();
    EXPECT_EQ(event.sequence(), types.size());
  }
  EXPECT_THAT(types, ElementsAre("dk.casebridge.referral.sent.v1",
                                 "dk.casebridge.referral.received.v1",
                                 "dk.casebridge.referral.assessed.v1",
                                 "dk.casebridge.referral.accepted.v1",
                                 "dk.casebridge.referral.waitlisted.v1",
                                 "dk.casebridge.referral.estimate-changed.v1",
                                 "dk.casebridge.referral.started.v1",
                                 "dk.casebridge.referral.ended.v1"));
}

TEST_P(CaseSystemServiceTest, EstimateChangeCarriesThePreviousEstimate) {
  const std::string id = Step("send", events::v1::REFERRAL_STATUS_SENT).record_id();
  for (ReferralStatus status :
       {events::v1::REFERRAL_STATUS_RECEIVED, events::v1::REFERRAL_STATUS_ASSESSED,
        events::v1::REFERRAL_STATUS_ACCEPTED, events::v1::REFERRAL_STATUS_WAITLISTED}) {
    Step(ReferralStatus_Name(status), status, id);
  }
  Step("estimate", events::v1::REFERRAL_STATUS_ESTIMATE_CHANGED, id);

  const CaseEvent changed = Published().back();
  EXPECT_EQ(changed.type(), "dk.casebridge.referral.estimate-changed.v1");
  EXPECT_EQ(changed.referral().previous_estimated_start().seconds(), kNowSeconds + 30 * kDay);
  EXPECT_EQ(changed.referral().estimated_start().seconds(), kNowSeconds + 45 * kDay);
}

TEST_P(CaseSystemServiceTest, StepThatDoesNotFollowIsFailedPreconditionAndPublishesNothing) {
  const std::string id = Step("send", events::v1::REFERRAL_STATUS_SENT).record_id();
  Step("receive", events::v1::REFERRAL_STATUS_RECEIVED, id);

  EXPECT_THAT(RecordStep(ReferralStep("start", events::v1::REFERRAL_STATUS_STARTED, id)),
              GrpcStatusIs(grpc::FAILED_PRECONDITION,
                           HasSubstr("referral " + id + ": started cannot follow received")));
  EXPECT_THAT(Published(), SizeIs(2));
}

TEST_P(CaseSystemServiceTest, StepOfAnUnknownReferralIsNotFound) {
  EXPECT_THAT(RecordStep(ReferralStep("assess", events::v1::REFERRAL_STATUS_ASSESSED, "X-000404")),
              GrpcStatusIs(grpc::NOT_FOUND, HasSubstr("referral X-000404 not found")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_P(CaseSystemServiceTest, InvalidReferralStepIsInvalidArgumentNamingTheFieldAndPublishesNothing) {
  struct Case {
    RecordReferralStepRequest request;
    std::string field;
  };
  std::vector<Case> cases;
  auto add = [&](ReferralStatus status, const std::string& id,
                 const std::function<void(Referral&)>& edit, const std::string& field) {
    RecordReferralStepRequest request = ReferralStep("bad-" + field, status, id);
    edit(*request.mutable_referral());
    cases.push_back({request, field});
  };
  add(events::v1::REFERRAL_STATUS_SENT, "R-1", [](Referral&) {}, "referral.referral_id");
  add(events::v1::REFERRAL_STATUS_SENT, "", [](Referral& r) { r.clear_offer(); }, "referral.offer");
  add(events::v1::REFERRAL_STATUS_SENT, "", [](Referral& r) { r.clear_to_unit(); },
      "referral.to_unit");
  add(events::v1::REFERRAL_STATUS_RECEIVED, "", [](Referral&) {}, "referral.referral_id");
  add(events::v1::REFERRAL_STATUS_ASSESSED, "R-1",
      [](Referral& r) { r.mutable_assessment()->set_in_target_group(false); },
      "referral.assessment.reasons");
  add(events::v1::REFERRAL_STATUS_REFUSED, "R-1", [](Referral& r) { r.clear_reasons(); },
      "referral.reasons");
  add(events::v1::REFERRAL_STATUS_INTERRUPTED, "R-1", [](Referral& r) { r.clear_reasons(); },
      "referral.reasons");
  add(events::v1::REFERRAL_STATUS_ESTIMATE_CHANGED, "R-1",
      [](Referral& r) { r.clear_estimated_start(); }, "referral.estimated_start");
  add(events::v1::REFERRAL_STATUS_FORWARDED, "R-1",
      [](Referral& r) { r.mutable_forwarded_to()->clear_id(); }, "referral.forwarded_to.id");
  add(events::v1::REFERRAL_STATUS_UNSPECIFIED, "R-1", [](Referral&) {}, "referral.status");
  RecordReferralStepRequest missing = ReferralStep("bad-missing", events::v1::REFERRAL_STATUS_SENT);
  missing.clear_referral();
  cases.push_back({missing, "referral"});

  for (const Case& c : cases) {
    EXPECT_THAT(RecordStep(c.request),
                GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith(c.field + ": ")))
        << c.field;
  }
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_P(CaseSystemServiceTest, ReceivingAnotherAdministrationsOfferIsInvalidArgument) {
  RecordReferralStepRequest request =
      ReferralStep("receive", events::v1::REFERRAL_STATUS_RECEIVED, "X-000001");
  request.mutable_referral()->mutable_offer()->set_code(GetParam().foreign_offer);

  EXPECT_THAT(RecordStep(request),
              GrpcStatusIs(grpc::INVALID_ARGUMENT,
                           HasSubstr("referral.offer.code: not in the " +
                                     GetParam().catalogue + " catalogue")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_P(CaseSystemServiceTest, CorrectingAReferralStepIsInvalidArgument) {
  const RecordResponse sent = Step("send", events::v1::REFERRAL_STATUS_SENT);
  RecordReferralStepRequest correction = ReferralStep("send-again", events::v1::REFERRAL_STATUS_SENT);
  correction.mutable_context()->mutable_supersedes()->set_event_id(sent.event_id());
  correction.mutable_context()->mutable_supersedes()->set_kind(
      events::v1::Supersession::KIND_CORRECTION);

  EXPECT_THAT(RecordStep(correction),
              GrpcStatusIs(grpc::INVALID_ARGUMENT,
                           AllOf(StartsWith("context.supersedes.kind: "), HasSubstr("CancelEvent"))));
  EXPECT_THAT(Published(), SizeIs(1));
}

TEST_P(CaseSystemServiceTest, RepeatedReferralStepReplaysTheFirstAnswer) {
  const RecordResponse first = Step("send", events::v1::REFERRAL_STATUS_SENT);
  RecordResponse again;
  ASSERT_THAT(RecordStep(ReferralStep("send", events::v1::REFERRAL_STATUS_SENT), &again),
              GrpcStatusIs(grpc::OK, ""));
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.record_id(), first.record_id());
  EXPECT_THAT(Published(), SizeIs(1));
}

// ---------------------------------------------------------------------------
// The catalogue

TEST_P(CaseSystemServiceTest, DecisionOnAnotherAdministrationsOfferIsInvalidArgument) {
  RecordDecisionRequest request = Refusal("decision-1");
  request.mutable_decision()->mutable_offer()->set_code(GetParam().foreign_offer);

  EXPECT_THAT(Decide(request),
              GrpcStatusIs(grpc::INVALID_ARGUMENT,
                           HasSubstr("decision.offer.code: not in the " + GetParam().catalogue +
                                     " catalogue")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

// ---------------------------------------------------------------------------
// Sensitivity

TEST_P(CaseSystemServiceTest, EventWithoutSensitivityGetsTheSystemsDefault) {
  BookedAppointment();
  EXPECT_EQ(Published().at(0).sensitivity(), GetParam().appointment_sensitivity);
}

TEST_P(CaseSystemServiceTest, GivenSensitivityIsKept) {
  BookAppointmentRequest request = Booking("book-1");
  request.mutable_context()->set_sensitivity(events::v1::SENSITIVITY_SPECIAL_CRIMINAL);
  ASSERT_THAT(Book(request), GrpcStatusIs(grpc::OK, ""));
  EXPECT_EQ(Published().at(0).sensitivity(), events::v1::SENSITIVITY_SPECIAL_CRIMINAL);
}

TEST_P(CaseSystemServiceTest, ReferralToAnAddictionOfferIsSpecialAddiction) {
  // Social services' and health's own addiction offers; the job centre sends.
  const std::string offer = GetParam().name == "Health" ? "SUL-141" : "SEL-101";
  RecordReferralStepRequest request = ReferralStep("send", events::v1::REFERRAL_STATUS_SENT);
  request.mutable_referral()->mutable_offer()->set_code(offer);
  request.mutable_referral()->mutable_offer()->clear_administration();
  ASSERT_THAT(RecordStep(request), GrpcStatusIs(grpc::OK, ""));
  EXPECT_EQ(Published().at(0).sensitivity(), events::v1::SENSITIVITY_SPECIAL_ADDICTION);
}

TEST_P(CaseSystemServiceTest, ReferralToAHealthOfferIsSpecialHealth) {
  RecordReferralStepRequest request = ReferralStep("send", events::v1::REFERRAL_STATUS_SENT);
  request.mutable_referral()->mutable_offer()->set_code("SUL-140");
  request.mutable_referral()->mutable_offer()->set_administration(
      common::v1::ADMINISTRATION_HEALTH);
  ASSERT_THAT(RecordStep(request), GrpcStatusIs(grpc::OK, ""));
  EXPECT_EQ(Published().at(0).sensitivity(), events::v1::SENSITIVITY_SPECIAL_HEALTH);
}

TEST(DefaultSensitivityTest, FollowsTheSystemTheOfferCodeAndTheOffersAdministration) {
  auto decision_on = [](const std::string& code, common::v1::Administration administration) {
    CaseEvent event;
    event.mutable_decision()->mutable_offer()->set_code(code);
    event.mutable_decision()->mutable_offer()->set_administration(administration);
    return event;
  };
  CaseEvent appointment;
  appointment.mutable_appointment()->set_appointment_id("A-1");
  const CaseEvent cancellation;
  const CaseSystemProfile jobcentre = jobcentre::JobCentreProfile();
  const CaseSystemProfile social = social::SocialProfile();
  const CaseSystemProfile health = health::HealthProfile();
  using common::v1::ADMINISTRATION_HEALTH;
  using common::v1::ADMINISTRATION_UNSPECIFIED;

  EXPECT_EQ(DefaultSensitivity(jobcentre, appointment), events::v1::SENSITIVITY_ORDINARY);
  EXPECT_EQ(DefaultSensitivity(jobcentre, decision_on("LAB-mentor", ADMINISTRATION_UNSPECIFIED)),
            events::v1::SENSITIVITY_ORDINARY);
  EXPECT_EQ(DefaultSensitivity(jobcentre, decision_on("SUL-140", ADMINISTRATION_HEALTH)),
            events::v1::SENSITIVITY_SPECIAL_HEALTH);
  EXPECT_EQ(DefaultSensitivity(jobcentre, decision_on("SEL-101a", ADMINISTRATION_UNSPECIFIED)),
            events::v1::SENSITIVITY_SPECIAL_ADDICTION);
  EXPECT_EQ(DefaultSensitivity(social, appointment), events::v1::SENSITIVITY_CONFIDENTIAL);
  EXPECT_EQ(DefaultSensitivity(social, decision_on("SEL-85", ADMINISTRATION_UNSPECIFIED)),
            events::v1::SENSITIVITY_CONFIDENTIAL);
  EXPECT_EQ(DefaultSensitivity(social, decision_on("SEL-101", ADMINISTRATION_UNSPECIFIED)),
            events::v1::SENSITIVITY_SPECIAL_ADDICTION);
  EXPECT_EQ(DefaultSensitivity(social, decision_on("SEL-101a", ADMINISTRATION_UNSPECIFIED)),
            events::v1::SENSITIVITY_SPECIAL_ADDICTION);
  EXPECT_EQ(DefaultSensitivity(health, appointment), events::v1::SENSITIVITY_SPECIAL_HEALTH);
  EXPECT_EQ(DefaultSensitivity(health, decision_on("SUL-141", ADMINISTRATION_UNSPECIFIED)),
            events::v1::SENSITIVITY_SPECIAL_ADDICTION);
  EXPECT_EQ(DefaultSensitivity(health, cancellation), events::v1::SENSITIVITY_SPECIAL_HEALTH);
  // An addiction-treatment offer outranks the health default.
  EXPECT_EQ(DefaultSensitivity(health, decision_on("PSYK-samtaleforløb",
                                                   common::v1::ADMINISTRATION_ADDICTION_TREATMENT)),
            events::v1::SENSITIVITY_SPECIAL_ADDICTION);
}

// ---------------------------------------------------------------------------
// CancelEvent

TEST_P(CaseSystemServiceTest, CancellationHasNoPayloadAndSupersedesTheEvent) {
  RecordResponse decided;
  ASSERT_THAT(Decide(Refusal("decision-1"), &decided), GrpcStatusIs(grpc::OK, ""));

  RecordResponse response;
  ASSERT_THAT(CancelEvent(Cancellation("cancel-1", decided.event_id()), &response),
              GrpcStatusIs(grpc::OK, ""));

  EXPECT_EQ(response.record_id(), decided.record_id());
  EXPECT_EQ(response.sequence(), 2u);
  ASSERT_THAT(Published(), SizeIs(2));
  const CaseEvent event = Published()[1];
  EXPECT_EQ(event.id(), response.event_id());
  EXPECT_EQ(event.type(), "dk.casebridge.event.cancelled.v1");
  EXPECT_EQ(event.payload_case(), CaseEvent::PAYLOAD_NOT_SET);
  EXPECT_EQ(event.supersedes().event_id(), decided.event_id());
  EXPECT_EQ(event.supersedes().kind(), events::v1::Supersession::KIND_CANCELLATION);
  EXPECT_EQ(event.supersedes().reason(), "Registreret på forkert borger.");
  EXPECT_EQ(event.subject(), SubjectOf(kCpr));
  EXPECT_EQ(event.source(), Source());
  // As sensitive as what it cancels.
  EXPECT_EQ(event.sensitivity(), GetParam().offer_sensitivity);
}

TEST_P(CaseSystemServiceTest, CancellingABookingWithdrawsTheAppointment) {
  RecordResponse booked;
  ASSERT_THAT(Book(Booking("book-1"), &booked), GrpcStatusIs(grpc::OK, ""));
  ASSERT_THAT(CancelEvent(Cancellation("cancel-1", booked.event_id())), GrpcStatusIs(grpc::OK, ""));

  EXPECT_THAT(Reschedule("move-1", booked.record_id(), kNowSeconds + 2 * kDay),
              GrpcStatusIs(grpc::FAILED_PRECONDITION, HasSubstr("withdrawn")));
  EXPECT_THAT(Published(), SizeIs(2));
}

TEST_P(CaseSystemServiceTest, CancellingAnUnknownEventIsNotFoundAndPublishesNothing) {
  EXPECT_THAT(CancelEvent(Cancellation("cancel-1", "00000000-0000-8000-8000-000000000000")),
              GrpcStatusIs(grpc::NOT_FOUND, HasSubstr("context.supersedes.event_id")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_P(CaseSystemServiceTest, CancellingAnotherCasesEventIsNotFound) {
  RecordResponse other;
  ASSERT_THAT(Decide(Refusal("decision-other", kOtherCpr), &other), GrpcStatusIs(grpc::OK, ""));
  EXPECT_THAT(CancelEvent(Cancellation("cancel-1", other.event_id())),
              GrpcStatusIs(grpc::NOT_FOUND, HasSubstr("context.supersedes.event_id")));
  EXPECT_THAT(Published(), SizeIs(1));
}

TEST_P(CaseSystemServiceTest, RepeatedCancellationReplaysButASecondOneIsFailedPrecondition) {
  RecordResponse decided;
  ASSERT_THAT(Decide(Refusal("decision-1"), &decided), GrpcStatusIs(grpc::OK, ""));
  RecordResponse first;
  ASSERT_THAT(CancelEvent(Cancellation("cancel-1", decided.event_id()), &first),
              GrpcStatusIs(grpc::OK, ""));

  RecordResponse again;
  ASSERT_THAT(CancelEvent(Cancellation("cancel-1", decided.event_id()), &again),
              GrpcStatusIs(grpc::OK, ""));
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.event_id(), first.event_id());
  EXPECT_THAT(CancelEvent(Cancellation("cancel-2", decided.event_id())),
              GrpcStatusIs(grpc::FAILED_PRECONDITION, HasSubstr("already cancelled")));
  EXPECT_THAT(Published(), SizeIs(2));
}

TEST_P(CaseSystemServiceTest, CancelEventNeedsACancellationOfAnEvent) {
  RecordResponse decided;
  ASSERT_THAT(Decide(Refusal("decision-1"), &decided), GrpcStatusIs(grpc::OK, ""));
  CancelEventRequest without = Cancellation("cancel-1", decided.event_id());
  without.mutable_context()->clear_supersedes();
  CancelEventRequest correction = Cancellation("cancel-2", decided.event_id());
  correction.mutable_context()->mutable_supersedes()->set_kind(
      events::v1::Supersession::KIND_CORRECTION);

  EXPECT_THAT(CancelEvent(without),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("context.supersedes: ")));
  EXPECT_THAT(CancelEvent(correction),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("context.supersedes.kind: ")));
  EXPECT_THAT(Published(), SizeIs(1));
}

TEST_P(CaseSystemServiceTest, CancellingACancellationIsInvalidArgument) {
  RecordResponse decided;
  ASSERT_THAT(Decide(Refusal("decision-1"), &decided), GrpcStatusIs(grpc::OK, ""));
  RecordResponse cancelled;
  ASSERT_THAT(CancelEvent(Cancellation("cancel-1", decided.event_id()), &cancelled),
              GrpcStatusIs(grpc::OK, ""));
  EXPECT_THAT(CancelEvent(Cancellation("cancel-2", cancelled.event_id())),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, HasSubstr("a cancellation itself")));
}

TEST_P(CaseSystemServiceTest, CancellingTheLatestReferralStepTakesItBack) {
  const std::string id = Step("send", events::v1::REFERRAL_STATUS_SENT).record_id();
  Step("receive", events::v1::REFERRAL_STATUS_RECEIVED, id);
  const RecordResponse assessed = Step("assess", events::v1::REFERRAL_STATUS_ASSESSED, id);

  RecordResponse response;
  ASSERT_THAT(CancelEvent(Cancellation("cancel-1", assessed.event_id()), &response),
              GrpcStatusIs(grpc::OK, ""));
  EXPECT_EQ(response.record_id(), id);

  EXPECT_THAT(RecordStep(ReferralStep("accept", events::v1::REFERRAL_STATUS_ACCEPTED, id)),
              GrpcStatusIs(grpc::FAILED_PRECONDITION, HasSubstr("accepted cannot follow received")));
  Step("assess-again", events::v1::REFERRAL_STATUS_ASSESSED, id);
}

TEST_P(CaseSystemServiceTest, CancellingAnEarlierReferralStepIsFailedPrecondition) {
  const RecordResponse sent = Step("send", events::v1::REFERRAL_STATUS_SENT);
  Step("receive", events::v1::REFERRAL_STATUS_RECEIVED, sent.record_id());

  EXPECT_THAT(CancelEvent(Cancellation("cancel-1", sent.event_id())),
              GrpcStatusIs(grpc::FAILED_PRECONDITION,
                           HasSubstr("only the latest step of referral " + sent.record_id())));
  EXPECT_THAT(Published(), SizeIs(2));
}

}  // namespace
}  // namespace casebridge
