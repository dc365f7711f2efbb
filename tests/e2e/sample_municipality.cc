// casebridge-sample-municipality: plays a sample municipality against running
// job-centre and coordination services, then shows — and with `--check`
// verifies — what each party received.
//
//   casebridge-sample-municipality --jobcentre 127.0.0.1:P1 --coordination 127.0.0.1:P2 [--check]
//
// The story (Aarhus, kommunekode 0751): a citizen in a resource course has
// a coordinating caseworker in the job centre, a mentor from a supplier, the
// municipal health administration, and the citizen portal on the case. A
// caseworker refuses extended mentor support (reasons, an alternative,
// complaint guidance with a deadline) and books a follow-up conversation.
// Each party receives both events through its own stream.
#include <grpcpp/grpcpp.h>

#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "casebridge/coordination/v1/coordination_service.grpc.pb.h"
#include "casebridge/jobcentre/v1/jobcentre_service.grpc.pb.h"
#include "google/protobuf/util/time_util.h"

namespace {

using casebridge::common::v1::Role;
using google::protobuf::util::TimeUtil;
namespace common = casebridge::common::v1;
namespace coordination = casebridge::coordination::v1;
namespace events = casebridge::events::v1;
namespace jobcentre = casebridge::jobcentre::v1;

// A fictitious CPR number (a valid date; not a real person).
constexpr char kCitizenCpr[] = "070791-4321";

struct PartySpec {
  std::string recipient;
  Role role;
  std::string holder;
  std::string unit;
};

const std::vector<PartySpec>& Parties() {
  static const auto* parties = new std::vector<PartySpec>{
      {"citizen-portal", common::ROLE_CITIZEN, "", "Borger.dk / Digital Post"},
      {"aarhus-jobcenter", common::ROLE_COORDINATING_CASEWORKER, "Mette Sørensen",
       "Jobcenter Aarhus, Team Ressourceforløb"},
      {"mentorhuset", common::ROLE_MENTOR, "Ali Hansen", "Mentorhuset ApS"},
      {"aarhus-sundhed", common::ROLE_HEALTH_ADMINISTRATION, "", "Sundhed og Omsorg, Aarhus"},
  };
  return *parties;
}

bool Check(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return true;
  std::cerr << what << " failed: " << status.error_code() << " " << status.error_message() << "\n";
  return false;
}

void FillContext(casebridge::recording::v1::RecordContext* context, const std::string& key) {
  context->set_idempotency_key(key);
  context->mutable_case_ref()->set_cpr(kCitizenCpr);
  context->mutable_actor()->set_role(common::ROLE_CASEWORKER);
  context->mutable_actor()->set_unit("Jobcenter Aarhus, Team Ressourceforløb");
}

std::string Describe(const events::CaseEvent& event) {
  std::string text = absl::StrCat(event.type(), "  seq ", event.sequence(), " from ", event.source());
  if (event.has_decision()) {
    const events::Decision& d = event.decision();
    absl::StrAppend(&text, "\n      ", d.offer().name(), " (", d.offer().code(), "): ",
                    events::DecisionOutcome_Name(d.outcome()));
    for (const auto& r : d.reasons()) absl::StrAppend(&text, "\n      reason ", r.code(), ": ", r.text());
    for (const auto& a : d.alternatives()) {
      absl::StrAppend(&text, "\n      alternative ", a.offer().code(), " ", a.offer().name());
    }
    absl::StrAppend(&text, "\n      complaint to ", d.complaint().complaint_body(), " by ",
                    TimeUtil::ToString(d.complaint().deadline()));
  } else if (event.has_appointment()) {
    const events::Appointment& a = event.appointment();
    absl::StrAppend(&text, "\n      ", events::AppointmentKind_Name(a.kind()), " at ",
                    TimeUtil::ToString(a.start()), ", ", a.location().name());
  } else if (event.has_role_assignment()) {
    absl::StrAppend(&text, "\n      ", common::Role_Name(event.role_assignment().role()), " → ",
                    event.role_assignment().recipient());
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  std::string jobcentre_address, coordination_address;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--jobcentre") && i + 1 < argc) jobcentre_address = argv[++i];
    else if (!std::strcmp(argv[i], "--coordination") && i + 1 < argc) coordination_address = argv[++i];
    else if (!std::strcmp(argv[i], "--check")) check = true;
    else {
      std::cerr << "usage: casebridge-sample-municipality --jobcentre HOST:PORT "
                   "--coordination HOST:PORT [--check]\n";
      return 2;
    }
  }
  if (jobcentre_address.empty() || coordination_address.empty()) {
    std::cerr << "--jobcentre and --coordination are required\n";
    return 2;
  }
  auto jobcentre_stub = jobcentre::JobCentreService::NewStub(
      grpc::CreateChannel(jobcentre_address, grpc::InsecureChannelCredentials()));
  auto coordination_stub = coordination::CoordinationService::NewStub(
      grpc::CreateChannel(coordination_address, grpc::InsecureChannelCredentials()));

  // 1. Who is on the case.
  std::cout << "== Aarhus (0751): the parties on the citizen's resource course\n";
  std::string subject;
  for (const PartySpec& party : Parties()) {
    coordination::AssignRoleRequest request;
    request.set_idempotency_key("sample-assign-" + party.recipient);
    request.mutable_case_ref()->set_cpr(kCitizenCpr);
    request.set_role(party.role);
    request.set_recipient(party.recipient);
    request.set_holder_name(party.holder);
    request.mutable_unit()->set_id(party.recipient);
    request.mutable_unit()->set_name(party.unit);
    request.mutable_actor()->set_role(common::ROLE_COORDINATING_CASEWORKER);
    request.mutable_actor()->set_unit("Jobcenter Aarhus, Team Ressourceforløb");
    coordination::AssignRoleResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!Check(coordination_stub->AssignRole(&context, request, &response), "AssignRole")) return 1;
    subject = response.subject();
    std::cout << "   " << common::Role_Name(party.role) << " → " << party.recipient << "\n";
  }
  std::cout << "   case key (pseudonymous subject): " << subject << "\n";

  // 2. A refusal with reasons, an alternative and complaint guidance.
  jobcentre::RecordDecisionRequest refusal;
  FillContext(refusal.mutable_context(), "sample-refusal-1");
  auto* basis = refusal.mutable_context()->add_legal_basis();
  basis->set_law("LAB");
  basis->set_paragraph("78");
  basis->set_subsection("1");
  basis->set_version("LBK nr 701 af 22/05/2022");
  events::Decision* decision = refusal.mutable_decision();
  decision->set_outcome(events::DECISION_OUTCOME_REFUSED);
  decision->mutable_offer()->set_code("LAB-mentor-extended");
  decision->mutable_offer()->set_name("Udvidet mentorstøtte (20 timer/uge)");
  decision->mutable_offer()->set_administration(common::ADMINISTRATION_JOB_CENTRE);
  auto* reason = decision->add_reasons();
  reason->set_code("need-covered-by-other-support");
  reason->set_text("Behovet dækkes af den bostøtte, du allerede får efter serviceloven § 85.");
  auto* alternative = decision->add_alternatives();
  alternative->mutable_offer()->set_code("LAB-mentor");
  alternative->mutable_offer()->set_name("Mentorstøtte (5 timer/uge)");
  alternative->set_description("Mentor til møder i jobcentret og i praktikken.");
  decision->mutable_complaint()->set_text(
      "Du kan klage over afgørelsen. Klagen sendes til jobcentret, som genvurderer sagen.");
  decision->mutable_complaint()->set_complaint_body("Ankestyrelsen");
  decision->mutable_complaint()->mutable_submit_to()->set_id("0751-jobcenter-rf");
  *decision->mutable_complaint()->mutable_deadline() =
      TimeUtil::GetCurrentTime() + TimeUtil::HoursToDuration(24 * 28);
  decision->mutable_decided_by()->set_role(common::ROLE_CASEWORKER);
  decision->mutable_decided_by()->set_unit("Jobcenter Aarhus, Team Ressourceforløb");
  decision->set_summary("Du får ikke udvidet mentorstøtte, men du kan få almindelig mentorstøtte.");
  casebridge::recording::v1::RecordResponse refused;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!Check(jobcentre_stub->RecordDecision(&context, refusal, &refused), "RecordDecision")) return 1;
  }
  std::cout << "\n== The caseworker records a refusal: event " << refused.event_id() << "\n";

  // 3. A follow-up conversation.
  jobcentre::BookAppointmentRequest booking;
  FillContext(booking.mutable_context(), "sample-followup-1");
  events::Appointment* appointment = booking.mutable_appointment();
  appointment->set_kind(events::APPOINTMENT_KIND_FOLLOW_UP_CONVERSATION);
  const absl::Time start = absl::FromCivil(
      absl::ToCivilDay(absl::Now() + absl::Hours(24 * 7), absl::UTCTimeZone()) + 0,
      absl::UTCTimeZone()) + absl::Hours(8);
  *appointment->mutable_start() = TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(start));
  *appointment->mutable_end() = appointment->start() + TimeUtil::MinutesToDuration(45);
  appointment->mutable_location()->set_name("Jobcenter Aarhus, Værkmestergade 15");
  appointment->mutable_location()->set_room("Mødelokale 3");
  appointment->add_attendees()->set_role(common::ROLE_CITIZEN);
  appointment->add_attendees()->set_role(common::ROLE_COORDINATING_CASEWORKER);
  appointment->add_attendees()->set_role(common::ROLE_MENTOR);
  appointment->set_purpose("Opfølgning på planen efter afslaget.");
  casebridge::recording::v1::RecordResponse booked;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!Check(jobcentre_stub->BookAppointment(&context, booking, &booked), "BookAppointment")) return 1;
  }
  std::cout << "== The caseworker books a follow-up conversation: event " << booked.event_id() << "\n";

  // 4. What each party received, through its Subscribe stream.
  std::cout << "\n== What each party received\n";
  bool all_ok = true;
  for (const PartySpec& party : Parties()) {
    coordination::SubscribeRequest request;
    request.set_recipient(party.recipient);
    request.set_subject(subject);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    std::unique_ptr<grpc::ClientReader<coordination::Delivery>> reader =
        coordination_stub->Subscribe(&context, request);
    std::vector<coordination::Delivery> deliveries;
    bool got_refusal = false, got_booking = false;
    coordination::Delivery delivery;
    while (!(got_refusal && got_booking) && reader->Read(&delivery)) {
      got_refusal |= delivery.event().id() == refused.event_id();
      got_booking |= delivery.event().id() == booked.event_id();
      deliveries.push_back(delivery);
    }
    context.TryCancel();
    std::cout << "\n-- " << party.recipient << " (" << common::Role_Name(party.role) << ")\n";
    uint64_t expected_sequence = 1;
    for (const coordination::Delivery& d : deliveries) {
      std::cout << "   #" << d.case_sequence() << " " << Describe(d.event()) << "\n";
      if (d.case_sequence() != expected_sequence++) {
        std::cout << "   !! gap: expected case_sequence " << expected_sequence - 1 << "\n";
        all_ok = false;
      }
    }
    if (!got_refusal || !got_booking) {
      std::cout << "   !! missing: " << (got_refusal ? "" : "the refusal ")
                << (got_booking ? "" : "the follow-up booking") << "\n";
      all_ok = false;
    }
  }
  std::cout << "\n" << (all_ok ? "OK: every party received the refusal and the booking\n"
                               : "FAILED: a party is missing an event\n");
  return check && !all_ok ? 1 : 0;
}
