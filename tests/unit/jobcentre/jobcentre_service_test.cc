// The job-centre service end to end in one process: the real service on
// 127.0.0.1:0 behind the generated stub, the reference job-centre system in
// a TempDir, the real EventRecorder over a TempDir ledger and the in-memory
// publisher in place of Kafka.
#include "services/jobcentre/jobcentre_service.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "adapters/jobcentre/reference/reference_jobcentre_adapter.h"
#include "casebridge/config/v1/config.pb.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "casebridge/jobcentre/v1/jobcentre_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/clock.h"
#include "services/common/event_ids.h"
#include "services/common/event_recorder.h"
#include "services/common/grpc_server.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/kafka/memory_publisher.h"
#include "services/common/pseudonym.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge::jobcentre {
namespace {

using ::casebridge::events::v1::CaseEvent;
using ::casebridge::jobcentre::v1::BookAppointmentRequest;
using ::casebridge::jobcentre::v1::CancelAppointmentRequest;
using ::casebridge::jobcentre::v1::ListCaseEventsRequest;
using ::casebridge::jobcentre::v1::ListCaseEventsResponse;
using ::casebridge::jobcentre::v1::RecordAttendanceRequest;
using ::casebridge::jobcentre::v1::RecordDecisionRequest;
using ::casebridge::jobcentre::v1::RescheduleAppointmentRequest;
using ::casebridge::recording::v1::RecordResponse;
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
constexpr char kSource[] = "/casebridge/jobcentre/0751";
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

class JobCentreServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::v1::ReferenceJobCentreConfig reference;
    reference.set_database_path(dir_.File("jobcentre.db"));
    absl::StatusOr<std::unique_ptr<JobCentreAdapter>> adapter =
        reference::NewReferenceJobCentreAdapter(reference, clock_);
    ASSERT_OK(adapter);
    adapter_ = *std::move(adapter);

    absl::StatusOr<std::unique_ptr<Pseudonymizer>> pseudonymizer =
        Pseudonymizer::Create(kPseudonymKey);
    ASSERT_OK(pseudonymizer);
    pseudonymizer_ = *std::move(pseudonymizer);

    RecorderOptions options;
    options.topic = kTopic;
    options.system = "jobcentre";
    options.source_system = events::v1::SOURCE_SYSTEM_JOB_CENTRE;
    options.municipality = kMunicipality;
    options.delivery_timeout = absl::Seconds(5);
    absl::StatusOr<std::unique_ptr<EventRecorder>> recorder =
        EventRecorder::Create(dir_.File("ledger.db"), options, publisher_, clock_);
    ASSERT_OK(recorder);
    recorder_ = *std::move(recorder);

    service_ = std::make_unique<JobCentreServiceImpl>(*adapter_, *recorder_, *pseudonymizer_,
                                                      kMunicipality, absl::Seconds(5), clock_);
    config::v1::ServerConfig server;
    server.set_listen_address("127.0.0.1:0");
    absl::StatusOr<StartedServer> started = StartGrpcServer(server, {service_.get()});
    ASSERT_OK(started);
    server_ = std::move(started->server);
    stub_ = v1::JobCentreService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", started->port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  // --- requests -----------------------------------------------------------

  static void FillContext(recording::v1::RecordContext& context, const std::string& key,
                          const std::string& cpr) {
    context.set_idempotency_key(key);
    context.mutable_case_ref()->set_cpr(cpr);
    context.mutable_actor()->set_role(common::v1::ROLE_CASEWORKER);
    context.mutable_actor()->set_unit("Jobcenter Aarhus, Team Ressourceforløb");
  }

  // A refusal of a mentor with reasons, an alternative and complaint guidance.
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
    decision.mutable_offer()->set_code("LAB-mentor");
    decision.mutable_offer()->set_name("Mentorstøtte");
    decision.mutable_offer()->set_administration(common::v1::ADMINISTRATION_JOB_CENTRE);
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
  std::unique_ptr<JobCentreAdapter> adapter_;
  std::unique_ptr<Pseudonymizer> pseudonymizer_;
  std::unique_ptr<EventRecorder> recorder_;
  std::unique_ptr<JobCentreServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::JobCentreService::Stub> stub_;
};

// ---------------------------------------------------------------------------
// RecordDecision

TEST_F(JobCentreServiceTest, RecordDecisionAnswersWithTheEventsIdentity) {
  RecordResponse response;
  ASSERT_THAT(Decide(Refusal("decision-1"), &response), GrpcStatusIs(grpc::OK, ""));
  EXPECT_EQ(response.event_id(), EventIdFor(kSource, "decision-1"));
  EXPECT_EQ(response.subject(), SubjectOf(kCpr));
  EXPECT_EQ(response.sequence(), 1u);
  EXPECT_EQ(response.record_id(), "D-000001");
  EXPECT_EQ(response.recorded_at().seconds(), kNowSeconds);
  EXPECT_FALSE(response.replayed());
}

TEST_F(JobCentreServiceTest, RecordDecisionPublishesExactlyOneRefusedEvent) {
  RecordResponse response;
  ASSERT_THAT(Decide(Refusal("decision-1"), &response), GrpcStatusIs(grpc::OK, ""));
  ASSERT_THAT(publisher_.records(), SizeIs(1));
  const kafka::Record record = publisher_.records()[0];
  EXPECT_EQ(record.key, response.subject());

  const CaseEvent event = Published().at(0);
  EXPECT_EQ(event.type(), "dk.casebridge.decision.refused.v1");
  EXPECT_EQ(event.id(), response.event_id());
  EXPECT_EQ(event.source(), kSource);
  EXPECT_EQ(event.source_system(), events::v1::SOURCE_SYSTEM_JOB_CENTRE);
  EXPECT_EQ(event.subject(), response.subject());
  EXPECT_EQ(event.municipality(), kMunicipality);
  EXPECT_EQ(event.sequence(), 1u);
  EXPECT_EQ(event.idempotency_key(), "decision-1");
  EXPECT_EQ(event.occurred_at().seconds(), kNowSeconds - 3600);
  EXPECT_EQ(event.sensitivity(), events::v1::SENSITIVITY_ORDINARY);
}

TEST_F(JobCentreServiceTest, PublishedDecisionKeepsItsContent) {
  RecordResponse response;
  const RecordDecisionRequest request = Refusal("decision-1");
  ASSERT_THAT(Decide(request, &response), GrpcStatusIs(grpc::OK, ""));
  const CaseEvent event = Published().at(0);
  const events::v1::Decision& decision = event.decision();
  EXPECT_EQ(decision.decision_id(), response.record_id());
  EXPECT_EQ(decision.outcome(), events::v1::DECISION_OUTCOME_REFUSED);
  EXPECT_EQ(decision.offer().code(), "LAB-mentor");
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

TEST_F(JobCentreServiceTest, PublishedDecisionTakesActorAndLegalBasisFromTheContext) {
  ASSERT_THAT(Decide(Refusal("decision-1")), GrpcStatusIs(grpc::OK, ""));
  const CaseEvent event = Published().at(0);
  EXPECT_EQ(event.actor().role(), common::v1::ROLE_CASEWORKER);
  EXPECT_EQ(event.actor().unit(), "Jobcenter Aarhus, Team Ressourceforløb");
  ASSERT_EQ(event.legal_basis_size(), 1);
  EXPECT_EQ(event.legal_basis(0).law(), "LAB");
  EXPECT_EQ(event.legal_basis(0).paragraph(), "31");
  EXPECT_EQ(event.legal_basis(0).subsection(), "1");
}

TEST_F(JobCentreServiceTest, PublishedRecordNeverContainsTheCpr) {
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

TEST_F(JobCentreServiceTest, CprIsNotRepeatedInTheResponse) {
  RecordResponse response;
  ASSERT_THAT(Decide(Refusal("decision-1"), &response), GrpcStatusIs(grpc::OK, ""));
  EXPECT_THAT(response.SerializeAsString(), Not(HasSubstr(kCprDigits)));
}

TEST_F(JobCentreServiceTest, RetryWithTheSameKeyReplaysTheFirstAnswer) {
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

TEST_F(JobCentreServiceTest, RetryNamingTheCaseBySubjectReplays) {
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

TEST_F(JobCentreServiceTest, SameKeyWithDifferentContentIsAlreadyExists) {
  ASSERT_THAT(Decide(Refusal("decision-1")), GrpcStatusIs(grpc::OK, ""));
  RecordDecisionRequest changed = Refusal("decision-1");
  changed.mutable_decision()->mutable_offer()->set_code("LAB-virksomhedspraktik");
  EXPECT_THAT(Decide(changed),
              GrpcStatusIs(grpc::ALREADY_EXISTS, HasSubstr("context.idempotency_key")));
  EXPECT_THAT(publisher_.records(), SizeIs(1));
}

TEST_F(JobCentreServiceTest, SameKeyForAnotherCitizenIsAlreadyExists) {
  ASSERT_THAT(Decide(Refusal("decision-1")), GrpcStatusIs(grpc::OK, ""));
  EXPECT_THAT(Decide(Refusal("decision-1", kOtherCpr)), GrpcStatusIs(grpc::ALREADY_EXISTS, _));
  EXPECT_THAT(publisher_.records(), SizeIs(1));
}

TEST_F(JobCentreServiceTest, InvalidDecisionIsInvalidArgumentNamingTheFieldAndPublishesNothing) {
  RecordDecisionRequest request = Refusal("decision-1");
  request.mutable_decision()->clear_reasons();
  EXPECT_THAT(Decide(request), GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("decision.reasons: ")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_F(JobCentreServiceTest, MissingDecisionIsInvalidArgument) {
  RecordDecisionRequest request = Refusal("decision-1");
  request.clear_decision();
  EXPECT_THAT(Decide(request), GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("decision: ")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_F(JobCentreServiceTest, DecisionWithoutLegalBasisIsInvalidArgument) {
  RecordDecisionRequest request = Refusal("decision-1");
  request.mutable_context()->clear_legal_basis();
  EXPECT_THAT(Decide(request),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("context.legal_basis: ")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_F(JobCentreServiceTest, InvalidCprIsInvalidArgumentWithoutRepeatingIt) {
  RecordDecisionRequest request = Refusal("decision-1", "320190-1234");
  EXPECT_THAT(Decide(request),
              GrpcStatusIs(grpc::INVALID_ARGUMENT,
                           AllOf(StartsWith("context.case_ref.cpr: "), Not(HasSubstr("320190")))));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_F(JobCentreServiceTest, RejectedRequestDoesNotUseUpItsKey) {
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

TEST_F(JobCentreServiceTest, CorrectionOfADecisionNamesTheEventItSupersedes) {
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

TEST_F(JobCentreServiceTest, CorrectionOfAnUnknownEventIsNotFoundAndPublishesNothing) {
  RecordDecisionRequest correction = Refusal("decision-1-correction");
  correction.mutable_context()->mutable_supersedes()->set_event_id(
      "00000000-0000-8000-8000-000000000000");
  correction.mutable_context()->mutable_supersedes()->set_kind(
      events::v1::Supersession::KIND_CORRECTION);
  EXPECT_THAT(Decide(correction),
              GrpcStatusIs(grpc::NOT_FOUND, HasSubstr("context.supersedes.event_id")));
  EXPECT_TRUE(Published().empty());
}

TEST_F(JobCentreServiceTest, CorrectionOfAnotherCasesEventIsNotFound) {
  RecordResponse other;
  ASSERT_THAT(Decide(Refusal("decision-other", kOtherCpr), &other), GrpcStatusIs(grpc::OK, ""));
  RecordDecisionRequest correction = Refusal("decision-1-correction");
  correction.mutable_context()->mutable_supersedes()->set_event_id(other.event_id());
  correction.mutable_context()->mutable_supersedes()->set_kind(
      events::v1::Supersession::KIND_CORRECTION);
  EXPECT_THAT(Decide(correction),
              GrpcStatusIs(grpc::NOT_FOUND, HasSubstr("context.supersedes.event_id")));
}

TEST_F(JobCentreServiceTest, CorrectionOfAnotherKindOfEventIsInvalidArgument) {
  RecordResponse booked;
  ASSERT_THAT(Book(Booking("book-1"), &booked), GrpcStatusIs(grpc::OK, ""));
  RecordDecisionRequest correction = Refusal("decision-1-correction");
  correction.mutable_context()->mutable_supersedes()->set_event_id(booked.event_id());
  correction.mutable_context()->mutable_supersedes()->set_kind(
      events::v1::Supersession::KIND_CORRECTION);
  EXPECT_THAT(Decide(correction), GrpcStatusIs(grpc::INVALID_ARGUMENT,
                                               HasSubstr("same kind")));
}

TEST_F(JobCentreServiceTest, CancellationWithAPayloadIsInvalidArgument) {
  RecordResponse original;
  ASSERT_THAT(Decide(Refusal("decision-1"), &original), GrpcStatusIs(grpc::OK, ""));
  RecordDecisionRequest cancellation = Refusal("decision-1-cancel");
  cancellation.mutable_context()->mutable_supersedes()->set_event_id(original.event_id());
  cancellation.mutable_context()->mutable_supersedes()->set_kind(
      events::v1::Supersession::KIND_CANCELLATION);
  EXPECT_THAT(Decide(cancellation),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, HasSubstr("context.supersedes.kind")));
  EXPECT_EQ(Published().size(), 1u);
}

TEST_F(JobCentreServiceTest, BookAppointmentPublishesAScheduledEvent) {
  RecordResponse response;
  ASSERT_THAT(Book(Booking("book-1"), &response), GrpcStatusIs(grpc::OK, ""));
  EXPECT_EQ(response.record_id(), "A-000001");
  ASSERT_THAT(Published(), SizeIs(1));
  const CaseEvent event = Published()[0];
  EXPECT_EQ(event.type(), "dk.casebridge.appointment.scheduled.v1");
  EXPECT_EQ(event.appointment().appointment_id(), response.record_id());
  EXPECT_EQ(event.appointment().status(), events::v1::APPOINTMENT_STATUS_SCHEDULED);
  EXPECT_EQ(event.appointment().start().seconds(), kNowSeconds + kDay);
  EXPECT_EQ(event.appointment().location().name(), "Jobcenter Aarhus, Værkmestergade 15");
  EXPECT_EQ(event.subject(), SubjectOf(kCpr));
}

TEST_F(JobCentreServiceTest, InvalidBookingIsInvalidArgumentAndPublishesNothing) {
  BookAppointmentRequest request = Booking("book-1");
  request.mutable_appointment()->clear_attendees();
  EXPECT_THAT(Book(request),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("appointment.attendees: ")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_F(JobCentreServiceTest, RescheduleAppointmentPublishesARescheduledEvent) {
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

TEST_F(JobCentreServiceTest, CancelAppointmentPublishesACancelledEvent) {
  const std::string id = BookedAppointment();
  ASSERT_THAT(Cancel("cancel-1", id), GrpcStatusIs(grpc::OK, ""));
  ASSERT_THAT(Published(), SizeIs(2));
  const CaseEvent event = Published()[1];
  EXPECT_EQ(event.type(), "dk.casebridge.appointment.cancelled.v1");
  EXPECT_EQ(event.appointment().appointment_id(), id);
  EXPECT_EQ(event.appointment().status(), events::v1::APPOINTMENT_STATUS_CANCELLED);
  EXPECT_EQ(event.appointment().reason(), "Borgeren er i praktik.");
}

TEST_F(JobCentreServiceTest, RecordAttendancePublishesAnAttendedEvent) {
  const std::string id = BookedAppointment();
  ASSERT_THAT(Attend("attend-1", id, true), GrpcStatusIs(grpc::OK, ""));
  const CaseEvent event = Published().at(1);
  EXPECT_EQ(event.type(), "dk.casebridge.appointment.attended.v1");
  EXPECT_EQ(event.appointment().status(), events::v1::APPOINTMENT_STATUS_ATTENDED);
  EXPECT_EQ(event.appointment().appointment_id(), id);
}

TEST_F(JobCentreServiceTest, RecordAttendancePublishesANoShowEvent) {
  const std::string id = BookedAppointment();
  ASSERT_THAT(Attend("attend-1", id, false), GrpcStatusIs(grpc::OK, ""));
  const CaseEvent event = Published().at(1);
  EXPECT_EQ(event.type(), "dk.casebridge.appointment.no-show.v1");
  EXPECT_EQ(event.appointment().status(), events::v1::APPOINTMENT_STATUS_NO_SHOW);
}

TEST_F(JobCentreServiceTest, RescheduleUnknownAppointmentIsNotFoundAndPublishesNothing) {
  EXPECT_THAT(Reschedule("move-1", "A-999999", kNowSeconds + 2 * kDay),
              GrpcStatusIs(grpc::NOT_FOUND, HasSubstr("A-999999")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_F(JobCentreServiceTest, AnotherCitizensAppointmentLooksNotFound) {
  RecordResponse booked;
  ASSERT_THAT(Book(Booking("book-1", kOtherCpr), &booked), GrpcStatusIs(grpc::OK, ""));
  EXPECT_THAT(Cancel("cancel-1", booked.record_id()), GrpcStatusIs(grpc::NOT_FOUND, _));
  EXPECT_THAT(publisher_.records(), SizeIs(1));
}

TEST_F(JobCentreServiceTest, RescheduleCancelledAppointmentIsFailedPrecondition) {
  const std::string id = BookedAppointment();
  ASSERT_THAT(Cancel("cancel-1", id), GrpcStatusIs(grpc::OK, ""));
  EXPECT_THAT(Reschedule("move-1", id, kNowSeconds + 2 * kDay),
              GrpcStatusIs(grpc::FAILED_PRECONDITION, _));
  EXPECT_THAT(publisher_.records(), SizeIs(2));
}

TEST_F(JobCentreServiceTest, RescheduleWithEndBeforeStartIsInvalidArgument) {
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

TEST_F(JobCentreServiceTest, CancelWithoutReasonIsInvalidArgument) {
  const std::string id = BookedAppointment();
  CancelAppointmentRequest request;
  FillContext(*request.mutable_context(), "cancel-1", kCpr);
  request.set_appointment_id(id);
  RecordResponse response;
  EXPECT_THAT(stub_->CancelAppointment(Context().get(), request, &response),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("reason: ")));
}

TEST_F(JobCentreServiceTest, AttendanceWithoutAppointmentIdIsInvalidArgument) {
  EXPECT_THAT(Attend("attend-1", "", true),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("appointment_id: ")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

// ---------------------------------------------------------------------------
// Kafka failures

TEST_F(JobCentreServiceTest, KafkaFailureIsUnavailable) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  EXPECT_THAT(Decide(Refusal("decision-1")),
              GrpcStatusIs(grpc::UNAVAILABLE, HasSubstr("retry with the same idempotency_key")));
  EXPECT_THAT(publisher_.records(), IsEmpty());
}

TEST_F(JobCentreServiceTest, RetryAfterAKafkaFailurePublishesTheSameEvent) {
  publisher_.FailNext(absl::UnavailableError("broker down"));
  ASSERT_THAT(Decide(Refusal("decision-1")), GrpcStatusIs(grpc::UNAVAILABLE, _));
  RecordResponse retry;
  ASSERT_THAT(Decide(Refusal("decision-1"), &retry), GrpcStatusIs(grpc::OK, ""));
  EXPECT_EQ(retry.event_id(), EventIdFor(kSource, "decision-1"));
  EXPECT_EQ(retry.sequence(), 1u);
  EXPECT_EQ(retry.record_id(), "D-000001");  // the job-centre system recorded it once
  ASSERT_THAT(Published(), SizeIs(1));
  EXPECT_EQ(Published()[0].id(), retry.event_id());
}

// ---------------------------------------------------------------------------
// ListCaseEvents

class ListCaseEventsTest : public JobCentreServiceTest {
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

TEST_F(ListCaseEventsTest, ByCprReturnsTheCasesEventsInSequenceOrder) {
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

TEST_F(ListCaseEventsTest, BySubjectReturnsTheSameEvents) {
  RecordThreeEvents();
  ListCaseEventsResponse by_cpr;
  ListCaseEventsResponse by_subject;
  ASSERT_THAT(List(ByCpr(), 0, 0, &by_cpr), GrpcStatusIs(grpc::OK, ""));
  ASSERT_THAT(List(BySubject(), 0, 0, &by_subject), GrpcStatusIs(grpc::OK, ""));
  EXPECT_EQ(by_subject.SerializeAsString(), by_cpr.SerializeAsString());
}

TEST_F(ListCaseEventsTest, ListedEventsAreThePublishedOnes) {
  RecordThreeEvents();
  ListCaseEventsResponse response;
  ASSERT_THAT(List(ByCpr(), 0, 0, &response), GrpcStatusIs(grpc::OK, ""));
  const std::vector<CaseEvent> published = Published();
  ASSERT_THAT(response.events(), SizeIs(3));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(response.events(i).SerializeAsString(), published[i].SerializeAsString());
  }
}

TEST_F(ListCaseEventsTest, PagesWithPageSizeOneAndNextAfterSequence) {
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

TEST_F(ListCaseEventsTest, AfterTheLastSequenceIsEmpty) {
  RecordThreeEvents();
  ListCaseEventsResponse response;
  ASSERT_THAT(List(ByCpr(), 3, 10, &response), GrpcStatusIs(grpc::OK, ""));
  EXPECT_THAT(response.events(), IsEmpty());
  EXPECT_EQ(response.next_after_sequence(), 0u);
}

TEST_F(ListCaseEventsTest, AnotherCitizensEventsAreSeparate) {
  RecordThreeEvents();
  ListCaseEventsResponse response;
  ASSERT_THAT(List(ByCpr(kOtherCpr), 0, 0, &response), GrpcStatusIs(grpc::OK, ""));
  ASSERT_THAT(response.events(), SizeIs(1));
  EXPECT_EQ(response.events(0).sequence(), 1u);
  EXPECT_EQ(response.events(0).subject(), SubjectOf(kOtherCpr));
}

TEST_F(ListCaseEventsTest, PageSizeAbove1000IsInvalidArgument) {
  ListCaseEventsResponse response;
  EXPECT_THAT(List(ByCpr(), 0, 1001, &response),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("page_size: ")));
}

TEST_F(ListCaseEventsTest, InvalidCaseRefIsInvalidArgument) {
  ListCaseEventsResponse response;
  EXPECT_THAT(List(ByCpr("3201901234"), 0, 0, &response),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("case_ref.cpr: ")));
  EXPECT_THAT(List(common::v1::CaseRef(), 0, 0, &response),
              GrpcStatusIs(grpc::INVALID_ARGUMENT, StartsWith("case_ref: ")));
}

}  // namespace
}  // namespace casebridge::jobcentre
