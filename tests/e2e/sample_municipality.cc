// casebridge-sample-municipality: plays two sample municipalities against
// running services, then shows — and with `--check` verifies — what each
// party received.
//
//   casebridge-sample-municipality
//     --aarhus-jobcentre H:P --aarhus-social H:P --aarhus-health H:P
//     --aarhus-coordination H:P --aarhus-config coordination-0751.json
//     --odense-jobcentre H:P --odense-coordination H:P
//     --odense-config coordination-0461.json [--check]
//     [--tls-dir DIR] [--integration-identity NAME]
//
// Every call is made as the identity the services' authorisation expects
// (docs/security.md), each over its own channel:
//   * each party's Subscribe and SendReceipt as that recipient (its id);
//   * GetTimeline (following the course) as the case's current coordinating
//     caseworker recipient — a party, whose view is projected per consent;
//   * AssignRole, RecordConsent/WithdrawConsent, tasks, GetDeliveryStatus
//     and the case systems' recording calls as the municipality's
//     integration identity (`--integration-identity`, default
//     casebridge-admin: an administrator of each coordination service and a
//     recorder of each case system).
// With `--tls-dir DIR` (deploy/local/dev-certs: ca.pem, NAME.pem, NAME.key)
// mutual TLS with NAME's certificate (services started with `server.tls`);
// without, plain text with NAME in the `casebridge-dev-identity` metadata
// (services in `server.insecure_development_mode`).
//
// The `--*-config` files are the coordination services' own configs: the
// player reads their recipients and routing rules and works out, from the
// contract alone (expected_routing.h), what each party must receive.
//
// Aarhus (0751), one citizen's resource course:
//   1. the parties: citizen portal, coordinating caseworker (job centre),
//      mentor, health administration, social services, rehabilitation team;
//   2. the job centre refuses extended mentor support (reasons, an
//      alternative, complaint guidance) and books a follow-up conversation;
//      the citizen consents that the job centre may see health data;
//   3. a referral to a health course is sent to the wrong health unit, which
//      receives it and forwards it; the right unit receives, assesses,
//      accepts and waitlists it, and later moves the estimate;
//   4. social services grant support in the home (SEL § 85) and refuse a
//      referral to a temporary housing offer → coordination flags re-planning;
//   5. an open task for the coordinating caseworker, then a new coordinating
//      caseworker → coordination hands the task over;
//   6. the citizen withdraws the consent; a health session booked over a
//      job-centre meeting → coordination warns the booking parties about the
//      double booking (the job centre now sees the health events minimal).
// Odense (0461), a short course with different routing rules: the parties,
// a decision and an appointment (the mentor gets no decisions there, the
// benefits unit no appointments).
// Then, per party, what arrived through Subscribe and whether in full or as
// the minimal projection (checked against docs/consent.md); a receipt and the
// delivery status of one event; the case timeline (the "one plan").
#include <algorithm>
#include <cstring>
#include <functional>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "casebridge/config/v1/config.pb.h"
#include "casebridge/coordination/v1/coordination_service.grpc.pb.h"
#include "casebridge/health/v1/health_service.grpc.pb.h"
#include "casebridge/jobcentre/v1/jobcentre_service.grpc.pb.h"
#include "casebridge/social/v1/social_service.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "services/common/grpc_client.h"
#include "services/common/proto_time.h"
#include "tests/e2e/expected_routing.h"
#include "tests/e2e/player.h"

namespace casebridge::sample {
namespace {

namespace common = casebridge::common::v1;
namespace coordination = casebridge::coordination::v1;
namespace events = casebridge::events::v1;
namespace recording = casebridge::recording::v1;
using common::Role;
using CoordinationStub = coordination::CoordinationService::Stub;
using JobCentreStub = casebridge::jobcentre::v1::JobCentreService::Stub;
using SocialStub = casebridge::social::v1::SocialService::Stub;
using HealthStub = casebridge::health::v1::HealthService::Stub;

// Fictitious CPR numbers (valid dates; not real people). deploy/local/demo
// scans every topic and log for them.
constexpr char kAarhusCitizen[] = "070791-4321";
constexpr char kOdenseCitizen[] = "230588-2468";

struct Flags {
  std::string aarhus_jobcentre, aarhus_social, aarhus_health, aarhus_coordination, aarhus_config;
  std::string odense_jobcentre, odense_coordination, odense_config;
  std::string tls_dir;
  std::string integration_identity = "casebridge-admin";
  bool check = false;
};

// Every channel of the player, per address and identity.
Channels& AllChannels() {
  static Channels* channels = new Channels("");
  return *channels;
}

// A party on a case: the recipient organisation, its role, the holder.
struct PartySpec {
  std::string recipient;
  Role role;
  std::string holder;
  std::string unit_id;
  std::string unit_name;
};

common::Unit MakeUnit(const std::string& id, const std::string& name, common::Administration admin) {
  common::Unit unit;
  unit.set_id(id);
  unit.set_name(name);
  unit.set_administration(admin);
  return unit;
}

common::Actor MakeActor(Role role, const std::string& unit, const std::string& name = "") {
  common::Actor actor;
  actor.set_role(role);
  actor.set_unit(unit);
  actor.set_name(name);
  return actor;
}

// `days` days from today at `hour:minute` in the display time zone.
google::protobuf::Timestamp At(int days, int hour, int minute = 0) {
  const absl::CivilDay today = absl::ToCivilDay(absl::Now(), DisplayZone());
  const absl::CivilMinute when(today + days);
  return ToProtoTimestamp(absl::FromCivil(when + 60 * hour + minute, DisplayZone()));
}

google::protobuf::Timestamp Plus(const google::protobuf::Timestamp& t, absl::Duration d) {
  return ToProtoTimestamp(ToAbslTime(t) + d);
}

std::string Pad(const std::string& text, size_t width) {
  return text.size() >= width ? text + " " : text + std::string(width - text.size(), ' ');
}

std::string ShortSystem(events::SourceSystem system) {
  switch (system) {
    case events::SOURCE_SYSTEM_JOB_CENTRE: return "job centre";
    case events::SOURCE_SYSTEM_SOCIAL: return "social";
    case events::SOURCE_SYSTEM_HEALTH: return "health";
    case events::SOURCE_SYSTEM_COORDINATION: return "coordination";
    default: return "?";
  }
}

void Section(const std::string& title) { std::cout << "\n== " << title << "\n"; }

// " [minimal · no-consent]", " [full · consent 1a2b3c4d]", or "" for
// ordinary content.
std::string DisclosureMark(coordination::Disclosure disclosure, const std::string& basis,
                           const std::vector<std::string>& consent_ids, bool always = false) {
  if (!always && basis == "ordinary" && disclosure == coordination::DISCLOSURE_FULL) return "";
  std::string mark = absl::StrCat(
      " [", disclosure == coordination::DISCLOSURE_FULL      ? "full"
            : disclosure == coordination::DISCLOSURE_MINIMAL ? "minimal"
                                                             : "?",
      " · ", basis.empty() ? "?" : basis);
  for (const std::string& id : consent_ids) absl::StrAppend(&mark, " ", id.substr(0, 8));
  return mark + "]";
}

// One municipality's services, its case and what its rules expect.
class Municipality {
 public:
  Municipality(std::string name, std::string code, std::string cpr,
               casebridge::config::v1::CoordinationServiceConfig config,
               std::string coordination_address, std::string integration_identity,
               std::string run, std::vector<std::string>& problems)
      : name_(std::move(name)),
        code_(std::move(code)),
        cpr_(std::move(cpr)),
        config_(std::move(config)),
        address_(std::move(coordination_address)),
        integration_(std::move(integration_identity)),
        expected_(config_),
        run_(std::move(run)),
        problems_(problems) {}

  // The coordination service as the municipality's integration identity
  // (an administrator).
  CoordinationStub& coordination() { return As(integration_); }
  // The coordination service as `identity`.
  CoordinationStub& As(const std::string& identity) {
    auto& stub = stubs_[identity];
    if (!stub) stub = coordination::CoordinationService::NewStub(AllChannels().Get(address_, identity));
    return *stub;
  }
  // Who follows the timeline: the current coordinating caseworker (a party).
  std::string Reader() const {
    std::string holder = expected_.HolderOf(common::ROLE_COORDINATING_CASEWORKER);
    if (holder.empty()) {
      throw PlayerError(absl::StrCat(name_, ": no coordinating caseworker on the case to read its timeline"));
    }
    return holder;
  }
  CoordinationStub& reader() { return As(Reader()); }
  const std::string& integration_identity() const { return integration_; }
  // The disclosure of the last event followed, as the reader saw it.
  coordination::Disclosure last_disclosure() const { return last_disclosure_; }
  const std::string& subject() const { return subject_; }
  const std::string& name() const { return name_; }
  const ExpectedRouting& expected() const { return expected_; }

  // An idempotency key unique to this run: event ids derive from the source
  // and the key, and a broker shared with earlier runs must not see an id
  // twice.
  std::string Key(const std::string& what) const { return absl::StrCat("demo-", run_, "-", code_, "-", what); }

  void Problem(const std::string& text) {
    problems_.push_back(absl::StrCat(name_, ": ", text));
    std::cout << "   !! " << text << "\n";
  }

  bool Configured(const std::string& recipient) const {
    for (const auto& r : config_.recipients()) {
      if (r.id() == recipient) return true;
    }
    return false;
  }

  void FillContext(recording::RecordContext& context, const std::string& key,
                   const common::Actor& actor) const {
    context.set_idempotency_key(Key(key));
    context.mutable_case_ref()->set_cpr(cpr_);
    *context.mutable_actor() = actor;
  }

  // Assigns a party to its role and follows the role event.
  events::CaseEvent Assign(const PartySpec& party, const std::string& key) {
    if (!Configured(party.recipient)) {
      throw PlayerError(absl::StrCat(name_, "'s coordination config has no recipient \"",
                                     party.recipient, "\""));
    }
    coordination::AssignRoleRequest request;
    request.set_idempotency_key(Key(key));
    request.mutable_case_ref()->set_cpr(cpr_);
    request.set_role(party.role);
    request.set_recipient(party.recipient);
    request.set_holder_name(party.holder);
    request.mutable_unit()->set_id(party.unit_id);
    request.mutable_unit()->set_name(party.unit_name);
    *request.mutable_actor() =
        MakeActor(common::ROLE_COORDINATING_CASEWORKER, "Jobcenter, Team Ressourceforløb");
    const coordination::AssignRoleResponse response =
        Call("AssignRole", coordination(), &CoordinationStub::AssignRole, request);
    subject_ = response.subject();
    // Followed as the party just assigned: a party once the event is applied
    // (the caseworker may not be assigned yet, or may be the one replaced).
    return Follow(response.event_id(), "dk.casebridge.role.assigned.v1", party.recipient);
  }

  // A recording call to a case system; follows its event.
  template <typename Stub, typename Request>
  events::CaseEvent Record(const std::string& what, Stub& stub,
                           grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                        recording::RecordResponse*),
                           const Request& request, const std::string& expected_type) {
    const recording::RecordResponse response = Call(what, stub, method, request);
    if (subject_.empty()) subject_ = response.subject();
    return Follow(response.event_id(), expected_type);
  }

  // Waits until coordination has applied the event `event_id` (so whatever
  // it derives from it comes before the next step), adds it to the
  // expectations and prints it.
  events::CaseEvent Follow(const std::string& event_id, const std::string& expected_type,
                           const std::string& as = "") {
    coordination::TimelineEntry entry = WaitForEvent(
        As(as.empty() ? Reader() : as), subject_,
        [&](const events::CaseEvent& e) { return e.id() == event_id; },
        absl::StrCat("event ", event_id));
    last_disclosure_ = entry.disclosure();
    return Expect(std::move(*entry.mutable_event()), expected_type);
  }

  // Waits for an event coordination derives itself (re-planning, handover,
  // load warning).
  events::CaseEvent FollowDerived(const std::string& what, const std::string& expected_type,
                                  const std::function<bool(const events::CaseEvent&)>& matches) {
    coordination::TimelineEntry entry = WaitForEvent(reader(), subject_, matches, what);
    last_disclosure_ = entry.disclosure();
    return Expect(std::move(*entry.mutable_event()), expected_type);
  }

  events::CaseEvent Expect(events::CaseEvent event, const std::string& expected_type) {
    if (event.type() != expected_type) {
      Problem(absl::StrCat("event ", event.id(), " has type ", event.type(), ", expected ",
                           expected_type));
    }
    events::CaseEvent modelled = event;
    modelled.set_type(expected_type);
    expected_.Add(modelled);
    seen_[event.id()] = event;
    std::cout << "   " << Pad(ShortSystem(event.source_system()), 13)
              << Pad(ShortType(event.type()), 28) << Facts(event)
              << (last_disclosure_ == coordination::DISCLOSURE_MINIMAL ? " [minimal]" : "") << "\n";
    return event;
  }

  // Prints and checks what each party received, through Subscribe.
  void ShowDeliveries(const std::vector<PartySpec>& parties) {
    std::set<std::string> shown;
    std::vector<std::string> order;
    for (const PartySpec& party : parties) {
      if (shown.insert(party.recipient).second) order.push_back(party.recipient);
    }
    for (const auto& [recipient, list] : expected_.deliveries()) {
      if (shown.insert(recipient).second) order.push_back(recipient);
    }
    for (const std::string& recipient : order) {
      static const std::vector<ExpectedDelivery> kNone;
      auto found = expected_.deliveries().find(recipient);
      const std::vector<ExpectedDelivery>& want =
          found == expected_.deliveries().end() ? kNone : found->second;
      const std::vector<coordination::Delivery> got = ReadDeliveries(
          As(recipient), recipient, subject_, want.size(), absl::Seconds(20), absl::Milliseconds(300));
      std::string roles;
      for (const PartySpec& party : parties) {
        if (party.recipient == recipient) {
          absl::StrAppend(&roles, roles.empty() ? "" : " → ", RoleName(party.role),
                          party.holder.empty() ? "" : absl::StrCat(" (", party.holder, ")"));
        }
      }
      std::cout << "\n-- " << recipient << " · " << roles << " · " << got.size() << " deliveries\n";
      const size_t n = std::max(want.size(), got.size());
      for (size_t i = 0; i < n; ++i) {
        if (i >= got.size()) {
          const ExpectedDelivery& missing = want[i];
          auto event = seen_.find(missing.event_id);
          Problem(absl::StrCat(recipient, " is missing ", ShortType(missing.type), " ",
                               event == seen_.end() ? missing.event_id : Facts(event->second)));
          continue;
        }
        const coordination::Delivery& d = got[i];
        const std::vector<std::string> consent_ids(d.consent_ids().begin(), d.consent_ids().end());
        std::cout << "   #" << Pad(absl::StrCat(d.case_sequence()), 4)
                  << Pad(ShortType(d.event().type()), 28) << Facts(d.event())
                  << DisclosureMark(d.disclosure(), d.disclosure_basis(), consent_ids) << "\n";
        if (d.case_sequence() != i + 1) {
          Problem(absl::StrCat(recipient, ": case_sequence ", d.case_sequence(), " where ", i + 1,
                               " was due (a gap)"));
        }
        if (i >= want.size()) {
          Problem(absl::StrCat(recipient, " should not have received ", ShortType(d.event().type()),
                               " (not routed to it by ", name_, "'s rules)"));
        } else if (d.event().id() != want[i].event_id) {
          auto event = seen_.find(want[i].event_id);
          Problem(absl::StrCat(recipient, " #", i + 1, ": expected ", ShortType(want[i].type), " ",
                               event == seen_.end() ? "" : Facts(event->second)));
        } else {
          const casebridge::coordination::DisclosureDecision& rule = want[i].disclosure;
          if (d.disclosure() != rule.disclosure || d.disclosure_basis() != rule.basis ||
              consent_ids != rule.consent_ids) {
            Problem(absl::StrCat(recipient, " #", i + 1, " ", ShortType(d.event().type()),
                                 ": received",
                                 DisclosureMark(d.disclosure(), d.disclosure_basis(), consent_ids, true),
                                 ", the consent rules say",
                                 DisclosureMark(rule.disclosure, rule.basis, rule.consent_ids, true)));
          }
          ++disclosures_[d.disclosure()];
        }
      }
    }
  }

 private:
  std::string name_, code_, cpr_;
  casebridge::config::v1::CoordinationServiceConfig config_;
  std::string address_, integration_;
  std::map<std::string, std::unique_ptr<CoordinationStub>> stubs_;
  ExpectedRouting expected_;
  coordination::Disclosure last_disclosure_ = coordination::DISCLOSURE_UNSPECIFIED;
  std::string run_;
  std::vector<std::string>& problems_;
  std::string subject_;
  std::map<std::string, events::CaseEvent> seen_;

 public:
  // Deliveries checked, per disclosure.
  std::map<coordination::Disclosure, int> disclosures_;
};

casebridge::config::v1::CoordinationServiceConfig ReadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw PlayerError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  casebridge::config::v1::CoordinationServiceConfig config;
  const auto status = google::protobuf::util::JsonStringToMessage(text.str(), &config);
  if (!status.ok()) throw PlayerError(absl::StrCat(path, ": ", status.ToString()));
  return config;
}

template <typename Service>
std::unique_ptr<typename Service::Stub> StubFor(const std::string& address,
                                                const std::string& identity) {
  return Service::NewStub(AllChannels().Get(address, identity));
}

// ---------------------------------------------------------------------------
// Aarhus: the whole course.

const std::string kJobcentreUnit = "Jobcenter Aarhus, Team Ressourceforløb";
const std::string kHealthUnit = "Sundhed og Omsorg, Aarhus Kommune";
const std::string kSocialUnit = "Socialforvaltningen, Aarhus Kommune";

std::vector<PartySpec> AarhusParties() {
  return {
      {"citizen-portal", common::ROLE_CITIZEN, "", "0751-borgerportal", "Borgerportalen"},
      {"aarhus-jobcenter", common::ROLE_COORDINATING_CASEWORKER, "Mette Sørensen",
       "0751-jobcenter-rf", kJobcentreUnit},
      {"mentorhuset", common::ROLE_MENTOR, "Ali Hansen", "mentorhuset", "Mentorhuset"},
      {"aarhus-sundhed", common::ROLE_HEALTH_ADMINISTRATION, "", "0751-sundhed", kHealthUnit},
      {"aarhus-socialforvaltning", common::ROLE_SOCIAL_SERVICES, "", "0751-social", kSocialUnit},
      {"aarhus-rehabiliteringsteam", common::ROLE_REHABILITATION_TEAM, "", "0751-rehab",
       "Rehabiliteringsteamet, Aarhus Kommune"},
  };
}

// The new coordinating caseworker of step 5: another team of the job centre.
PartySpec AarhusNewCaseworker() {
  return {"aarhus-jobcenter-vest", common::ROLE_COORDINATING_CASEWORKER, "Jonas Kristensen",
          "0751-jobcenter-vest", "Jobcenter Aarhus, Team Vest"};
}

struct AarhusStubs {
  std::unique_ptr<JobCentreStub> jobcentre;
  std::unique_ptr<SocialStub> social;
  std::unique_ptr<HealthStub> health;
};

void PlayAarhus(Municipality& m, AarhusStubs& s, std::vector<PartySpec>& parties) {
  const common::Actor caseworker =
      MakeActor(common::ROLE_COORDINATING_CASEWORKER, kJobcentreUnit, "Mette Sørensen");
  const common::Unit jobcentre = MakeUnit("0751-jobcenter-rf", kJobcentreUnit,
                                          common::ADMINISTRATION_JOB_CENTRE);

  Section("Aarhus (0751) · 1. the parties on the citizen's resource course");
  for (const PartySpec& party : parties) m.Assign(party, "assign-" + party.recipient);
  std::cout << "   case key (pseudonymous subject): " << m.subject() << "\n";

  Section("Aarhus · 2. a refusal from the job centre, and a follow-up conversation");
  {
    recording::RecordDecisionRequest request;
    m.FillContext(*request.mutable_context(), "refusal", caseworker);
    auto* basis = request.mutable_context()->add_legal_basis();
    basis->set_law("LAB");
    basis->set_paragraph("78");
    basis->set_subsection("1");
    basis->set_version("LBK nr 701 af 22/05/2022");
    events::Decision& d = *request.mutable_decision();
    d.set_outcome(events::DECISION_OUTCOME_REFUSED);
    d.mutable_offer()->set_code("LAB-mentor-extended");
    d.mutable_offer()->set_name("Udvidet mentorstøtte (20 timer/uge)");
    d.mutable_offer()->set_administration(common::ADMINISTRATION_JOB_CENTRE);
    auto* reason = d.add_reasons();
    reason->set_code("need-covered-by-other-support");
    reason->set_text("Behovet dækkes af den bostøtte, du får efter serviceloven § 85.");
    auto* alternative = d.add_alternatives();
    alternative->mutable_offer()->set_code("LAB-mentor");
    alternative->mutable_offer()->set_name("Mentorstøtte (5 timer/uge)");
    alternative->mutable_offer()->set_administration(common::ADMINISTRATION_JOB_CENTRE);
    alternative->set_description("Mentor til møder i jobcentret og i praktikken.");
    d.mutable_complaint()->set_text(
        "Du kan klage over afgørelsen. Klagen sendes til jobcentret, som genvurderer sagen.");
    d.mutable_complaint()->set_complaint_body("Ankestyrelsen");
    *d.mutable_complaint()->mutable_submit_to() = jobcentre;
    *d.mutable_complaint()->mutable_deadline() = At(28, 23, 59);
    *d.mutable_decided_by() = caseworker;
    d.set_summary("Du får ikke udvidet mentorstøtte, men du kan få almindelig mentorstøtte.");
    m.Record("RecordDecision (job centre)", *s.jobcentre, &JobCentreStub::RecordDecision, request,
             "dk.casebridge.decision.refused.v1");
  }
  {
    recording::BookAppointmentRequest request;
    m.FillContext(*request.mutable_context(), "follow-up", caseworker);
    events::Appointment& a = *request.mutable_appointment();
    a.set_kind(events::APPOINTMENT_KIND_FOLLOW_UP_CONVERSATION);
    *a.mutable_start() = At(7, 9);
    *a.mutable_end() = Plus(a.start(), absl::Minutes(45));
    a.mutable_location()->set_name("Jobcenter Aarhus, Værkmestergade 15");
    a.mutable_location()->set_room("Mødelokale 3");
    a.add_attendees()->set_role(common::ROLE_CITIZEN);
    a.add_attendees()->set_role(common::ROLE_COORDINATING_CASEWORKER);
    a.add_attendees()->set_role(common::ROLE_MENTOR);
    a.set_purpose("Opfølgning på planen efter afslaget.");
    m.Record("BookAppointment (job centre)", *s.jobcentre, &JobCentreStub::BookAppointment, request,
             "dk.casebridge.appointment.scheduled.v1");
  }
  std::string consent_id;
  {
    // From here on the job centre's recipients receive health events whole.
    coordination::RecordConsentRequest request;
    request.set_idempotency_key(m.Key("consent-health"));
    request.mutable_case_ref()->set_cpr(kAarhusCitizen);
    events::ConsentGrant& grant = *request.add_grants();
    grant.set_administration(common::ADMINISTRATION_JOB_CENTRE);
    grant.add_sensitivities(events::SENSITIVITY_SPECIAL_HEALTH);
    request.set_purpose("Jobcentret må se oplysninger om sundhedsforløbet for at koordinere planen.");
    request.set_form("written");
    *request.mutable_actor() = caseworker;
    const coordination::ConsentResponse response =
        Call("RecordConsent", m.coordination(), &CoordinationStub::RecordConsent, request);
    consent_id = response.consent_id();
    m.Follow(response.event_id(), "dk.casebridge.consent.given.v1");
  }

  Section("Aarhus · 3. a referral to a health course: sent to the wrong unit, forwarded, waitlisted");
  const common::Unit wrong_unit = MakeUnit("0751-sundhed-genoptraening",
                                           "Genoptræning, Sundhed og Omsorg", common::ADMINISTRATION_HEALTH);
  const common::Unit right_unit = MakeUnit("0751-sundhed-forebyggelse",
                                           "Sundhedscenter Aarhus, Forebyggelse", common::ADMINISTRATION_HEALTH);
  events::Offer course;
  course.set_code("SUL-119");
  course.set_name("Forebyggelse og sundhedsforløb: stress og angst");
  course.set_administration(common::ADMINISTRATION_HEALTH);
  std::string referral_id;
  auto referral_step = [&](auto& stub, auto method, const std::string& key, const common::Actor& actor,
                           events::Referral referral) {
    recording::RecordReferralStepRequest request;
    m.FillContext(*request.mutable_context(), key, actor);
    referral.set_referral_id(referral.status() == events::REFERRAL_STATUS_SENT ? "" : referral_id);
    *request.mutable_referral() = std::move(referral);
    const std::string type = TypeFor("referral", events::ReferralStatus_Name(request.referral().status()),
                                     "REFERRAL_STATUS_");
    return m.Record("RecordReferralStep", stub, method, request, type);
  };
  auto step = [](events::ReferralStatus status) {
    events::Referral referral;
    referral.set_status(status);
    return referral;
  };
  const common::Actor at_wrong_unit =
      MakeActor(common::ROLE_HEALTH_ADMINISTRATION, wrong_unit.name());
  const common::Actor at_right_unit =
      MakeActor(common::ROLE_HEALTH_ADMINISTRATION, right_unit.name());
  google::protobuf::Timestamp first_estimate;
  {
    events::Referral sent = step(events::REFERRAL_STATUS_SENT);
    *sent.mutable_offer() = course;
    *sent.mutable_from_unit() = jobcentre;
    *sent.mutable_to_unit() = wrong_unit;  // the mistake the citizen used to phone about
    const events::CaseEvent event = referral_step(*s.jobcentre, &JobCentreStub::RecordReferralStep,
                                                  "health-referral-sent", caseworker, sent);
    referral_id = event.referral().referral_id();

    events::Referral received = step(events::REFERRAL_STATUS_RECEIVED);
    *received.mutable_offer() = course;
    *received.mutable_from_unit() = jobcentre;
    *received.mutable_to_unit() = wrong_unit;
    referral_step(*s.health, &HealthStub::RecordReferralStep, "health-referral-received-wrong",
                  at_wrong_unit, received);

    events::Referral forwarded = step(events::REFERRAL_STATUS_FORWARDED);
    *forwarded.mutable_forwarded_to() = right_unit;
    referral_step(*s.health, &HealthStub::RecordReferralStep, "health-referral-forwarded",
                  at_wrong_unit, forwarded);

    events::Referral acknowledged = step(events::REFERRAL_STATUS_RECEIVED);
    *acknowledged.mutable_to_unit() = right_unit;
    const events::CaseEvent at_right = referral_step(
        *s.health, &HealthStub::RecordReferralStep, "health-referral-received", at_right_unit, acknowledged);
    if (m.last_disclosure() == coordination::DISCLOSURE_FULL &&
        at_right.referral().to_unit().id() != right_unit.id()) {
      m.Problem(absl::StrCat("the second RECEIVED names unit ", at_right.referral().to_unit().id(),
                             ", expected ", right_unit.id()));
    }

    events::Referral assessed = step(events::REFERRAL_STATUS_ASSESSED);
    assessed.mutable_assessment()->set_in_target_group(true);
    referral_step(*s.health, &HealthStub::RecordReferralStep, "health-referral-assessed",
                  at_right_unit, assessed);
    referral_step(*s.health, &HealthStub::RecordReferralStep, "health-referral-accepted",
                  at_right_unit, step(events::REFERRAL_STATUS_ACCEPTED));

    events::Referral waitlisted = step(events::REFERRAL_STATUS_WAITLISTED);
    first_estimate = At(42, 9);
    *waitlisted.mutable_estimated_start() = first_estimate;
    referral_step(*s.health, &HealthStub::RecordReferralStep, "health-referral-waitlisted",
                  at_right_unit, waitlisted);

    events::Referral later = step(events::REFERRAL_STATUS_ESTIMATE_CHANGED);
    *later.mutable_estimated_start() = At(70, 9);
    const events::CaseEvent changed = referral_step(
        *s.health, &HealthStub::RecordReferralStep, "health-referral-estimate", at_right_unit, later);
    if (ToAbslTime(changed.referral().previous_estimated_start()) != ToAbslTime(first_estimate)) {
      m.Problem("ESTIMATE_CHANGED does not carry the earlier estimate as previous_estimated_start");
    }
  }

  Section("Aarhus · 4. social services: support in the home granted, a housing referral refused");
  const common::Actor social = MakeActor(common::ROLE_SOCIAL_SERVICES, kSocialUnit);
  {
    recording::RecordDecisionRequest request;
    m.FillContext(*request.mutable_context(), "sel85-granted", social);
    auto* basis = request.mutable_context()->add_legal_basis();
    basis->set_law("SEL");
    basis->set_paragraph("85");
    events::Decision& d = *request.mutable_decision();
    d.set_outcome(events::DECISION_OUTCOME_GRANTED);
    d.mutable_offer()->set_code("SEL-85");
    d.mutable_offer()->set_name("Støtte i eget hjem");
    d.mutable_offer()->set_administration(common::ADMINISTRATION_SOCIAL_SERVICES);
    *d.mutable_decided_by() = social;
    d.set_summary("Du får støtte i eget hjem 4 timer om ugen.");
    m.Record("RecordDecision (social)", *s.social, &SocialStub::RecordDecision, request,
             "dk.casebridge.decision.granted.v1");
  }
  {
    const common::Unit housing =
        MakeUnit("0751-social-botilbud", "Botilbud, Socialforvaltningen", common::ADMINISTRATION_SOCIAL_SERVICES);
    const common::Actor at_housing = MakeActor(common::ROLE_SOCIAL_SERVICES, housing.name());
    events::Referral sent = step(events::REFERRAL_STATUS_SENT);
    sent.mutable_offer()->set_code("SEL-107");
    sent.mutable_offer()->set_name("Midlertidigt botilbud");
    sent.mutable_offer()->set_administration(common::ADMINISTRATION_SOCIAL_SERVICES);
    *sent.mutable_from_unit() = jobcentre;
    *sent.mutable_to_unit() = housing;
    const events::CaseEvent event = referral_step(*s.jobcentre, &JobCentreStub::RecordReferralStep,
                                                  "housing-referral-sent", caseworker, sent);
    referral_id = event.referral().referral_id();
    events::Referral received = step(events::REFERRAL_STATUS_RECEIVED);
    *received.mutable_offer() = sent.offer();
    *received.mutable_from_unit() = jobcentre;
    *received.mutable_to_unit() = housing;
    referral_step(*s.social, &SocialStub::RecordReferralStep, "housing-referral-received", at_housing,
                  received);
    events::Referral assessed = step(events::REFERRAL_STATUS_ASSESSED);
    assessed.mutable_assessment()->set_in_target_group(true);
    referral_step(*s.social, &SocialStub::RecordReferralStep, "housing-referral-assessed", at_housing,
                  assessed);
    events::Referral refused = step(events::REFERRAL_STATUS_REFUSED);
    auto* reason = refused.add_reasons();
    reason->set_code("need-met-in-own-home");
    reason->set_text("Dit behov kan dækkes med støtte i eget hjem efter § 85.");
    const events::CaseEvent refusal = referral_step(
        *s.social, &SocialStub::RecordReferralStep, "housing-referral-refused", at_housing, refused);
    const events::CaseEvent flag = m.FollowDerived(
        "re-planning flag", "dk.casebridge.plan.replanning-needed.v1",
        [&](const events::CaseEvent& e) {
          return e.has_replanning() && e.replanning().trigger_event_id() == refusal.id();
        });
    // The reasons are social data: the job centre sees them only in full.
    if (flag.replanning().referral_id() != referral_id ||
        (m.last_disclosure() == coordination::DISCLOSURE_FULL && flag.replanning().reasons().empty())) {
      m.Problem("the re-planning flag does not name the refused referral and its reasons");
    }
  }

  Section("Aarhus · 5. an open task, then a new coordinating caseworker: the task goes along");
  const PartySpec successor = AarhusNewCaseworker();
  {
    coordination::CreateTaskRequest request;
    request.set_idempotency_key(m.Key("task-psychologist"));
    request.mutable_case_ref()->set_cpr(kAarhusCitizen);
    request.set_title("Undersøg om psykologen kan betales (helbredstillæg)");
    request.set_owner_role(common::ROLE_COORDINATING_CASEWORKER);
    *request.mutable_due() = At(14, 16);
    *request.mutable_actor() = caseworker;
    const coordination::TaskResponse task =
        Call("CreateTask", m.coordination(), &CoordinationStub::CreateTask, request);
    m.Follow(task.event_id(), "dk.casebridge.task.created.v1");

    m.Assign(successor, "assign-new-caseworker");
    parties.push_back(successor);
    const events::CaseEvent handed = m.FollowDerived(
        "task handover", "dk.casebridge.task.handed-over.v1", [&](const events::CaseEvent& e) {
          return e.has_task() && e.task().task_id() == task.task_id() &&
                 e.task().state() == events::TASK_STATE_HANDED_OVER;
        });
    if (handed.task().owner_recipient() != successor.recipient) {
      m.Problem(absl::StrCat("the task was handed to ", handed.task().owner_recipient(), ", not ",
                             successor.recipient));
    }
    coordination::ListTasksRequest list;
    list.mutable_case_ref()->set_subject(m.subject());
    const coordination::ListTasksResponse tasks =
        Call("ListTasks", m.coordination(), &CoordinationStub::ListTasks, list);
    for (const events::Task& t : tasks.tasks()) {
      std::cout << "   ListTasks: " << t.task_id() << " "
                << events::TaskState_Name(t.state()) << ", owner " << t.owner_recipient() << "\n";
    }
  }

  Section("Aarhus · 6. the consent withdrawn; a health session booked over a job-centre meeting");
  {
    // From here on the job centre receives health events as the minimal
    // projection again; what it already received stays lawfully disclosed.
    coordination::WithdrawConsentRequest request;
    request.set_idempotency_key(m.Key("consent-health-withdrawn"));
    request.mutable_case_ref()->set_cpr(kAarhusCitizen);
    request.set_consent_id(consent_id);
    *request.mutable_actor() = caseworker;
    const coordination::ConsentResponse response =
        Call("WithdrawConsent", m.coordination(), &CoordinationStub::WithdrawConsent, request);
    m.Follow(response.event_id(), "dk.casebridge.consent.withdrawn.v1");
  }
  {
    const common::Actor new_caseworker =
        MakeActor(common::ROLE_COORDINATING_CASEWORKER, successor.unit_name, successor.holder);
    recording::BookAppointmentRequest meeting;
    m.FillContext(*meeting.mutable_context(), "network-meeting", new_caseworker);
    events::Appointment& a = *meeting.mutable_appointment();
    a.set_kind(events::APPOINTMENT_KIND_NETWORK_MEETING);
    *a.mutable_start() = At(10, 10);
    *a.mutable_end() = Plus(a.start(), absl::Hours(1));
    a.mutable_location()->set_name("Jobcenter Aarhus, Værkmestergade 15");
    a.add_attendees()->set_role(common::ROLE_CITIZEN);
    a.add_attendees()->set_role(common::ROLE_COORDINATING_CASEWORKER);
    a.add_attendees()->set_role(common::ROLE_MENTOR);
    a.set_purpose("Netværksmøde om praktik.");
    const events::CaseEvent booked_meeting =
        m.Record("BookAppointment (job centre)", *s.jobcentre, &JobCentreStub::BookAppointment,
                 meeting, "dk.casebridge.appointment.scheduled.v1");

    recording::BookAppointmentRequest session;
    m.FillContext(*session.mutable_context(), "health-session", at_right_unit);
    events::Appointment& h = *session.mutable_appointment();
    h.set_kind(events::APPOINTMENT_KIND_HEALTH_SESSION);
    *h.mutable_start() = At(10, 10, 30);
    *h.mutable_end() = Plus(h.start(), absl::Minutes(90));
    h.mutable_location()->set_name("Sundhedscenter Aarhus");
    h.add_attendees()->set_role(common::ROLE_CITIZEN);
    h.set_purpose("Første samtale i sundhedsforløbet.");
    const events::CaseEvent booked_session =
        m.Record("BookAppointment (health)", *s.health, &HealthStub::BookAppointment, session,
                 "dk.casebridge.appointment.scheduled.v1");
    const events::CaseEvent warning = m.FollowDerived(
        "double-booking warning", "dk.casebridge.load.double-booking.v1",
        [&](const events::CaseEvent& e) {
          if (!e.has_load_warning()) return false;
          for (const std::string& id : e.load_warning().appointment_event_ids()) {
            if (id == booked_session.id()) return true;
          }
          return false;
        });
    std::set<int> roles(warning.load_warning().notify_roles().begin(),
                        warning.load_warning().notify_roles().end());
    if (!roles.contains(common::ROLE_COORDINATING_CASEWORKER) ||
        !roles.contains(common::ROLE_HEALTH_ADMINISTRATION)) {
      m.Problem("the load warning does not notify both booking parties");
    }
    (void)booked_meeting;
  }
}

// The citizen portal confirms the refusal; the delivery status shows who
// has acknowledged it and who has not yet.
void ShowReceipts(Municipality& m, const std::string& event_id, const std::string& recipient) {
  coordination::SendReceiptRequest receipt;
  receipt.set_recipient(recipient);
  receipt.set_event_id(event_id);
  receipt.set_status(coordination::RECEIPT_STATUS_ACCEPTED);
  Call("SendReceipt", m.As(recipient), &CoordinationStub::SendReceipt, receipt);
  std::cout << "   SendReceipt: " << recipient << " ACCEPTED " << event_id << "\n";

  coordination::GetDeliveryStatusRequest request;
  request.set_event_id(event_id);
  const coordination::DeliveryStatus status =
      Call("GetDeliveryStatus", m.coordination(), &CoordinationStub::GetDeliveryStatus, request);
  std::cout << "   GetDeliveryStatus: " << ShortType(status.type()) << "\n";
  std::set<std::string> routed;
  for (const coordination::RecipientDelivery& r : status.recipients()) {
    routed.insert(r.recipient());
    std::cout << "     " << Pad(r.recipient(), 28)
              << Pad(std::string(absl::StripPrefix(coordination::DeliveryState_Name(r.state()), "DELIVERY_STATE_")), 11)
              << "#" << r.case_sequence()
              << (r.has_acknowledged_at() ? absl::StrCat("  acknowledged ", DayTime(r.acknowledged_at())) : "")
              << "\n";
    const bool acked = r.recipient() == recipient;
    if (acked && r.state() != coordination::DELIVERY_STATE_ACCEPTED) {
      m.Problem(absl::StrCat(recipient, "'s receipt is not shown as ACCEPTED"));
    }
    if (!acked && r.state() != coordination::DELIVERY_STATE_PUBLISHED) {
      m.Problem(absl::StrCat(r.recipient(), " is ", coordination::DeliveryState_Name(r.state()),
                             ", expected PUBLISHED (on its topic, no receipt)"));
    }
  }
  std::cout << "     not acknowledged yet: " << absl::StrJoin(status.unacknowledged(), ", ") << "\n";
  std::set<std::string> want_unacked = routed;
  want_unacked.erase(recipient);
  if (std::set<std::string>(status.unacknowledged().begin(), status.unacknowledged().end()) != want_unacked) {
    m.Problem("`unacknowledged` is not every routed recipient but the one that sent a receipt");
  }
  std::set<std::string> want_routed;
  for (const auto& [party, list] : m.expected().deliveries()) {
    for (const ExpectedDelivery& d : list) {
      if (d.event_id == event_id) want_routed.insert(party);
    }
  }
  if (routed != want_routed) {
    m.Problem(absl::StrCat("the delivery status names ", absl::StrJoin(routed, ", "),
                           "; the rules route it to ", absl::StrJoin(want_routed, ", ")));
  }
}

void ShowTimeline(Municipality& m) {
  coordination::GetTimelineRequest request;
  request.mutable_case_ref()->set_subject(m.subject());
  const coordination::Timeline timeline =
      Call("GetTimeline", m.reader(), &CoordinationStub::GetTimeline, request);
  std::cout << "   as " << m.Reader() << " (its view under the consents in force now)\n";
  int n = 0;
  for (const coordination::TimelineEntry& entry : timeline.entries()) {
    const events::CaseEvent& e = entry.event();
    std::cout << "   " << absl::StrFormat("%2d", ++n) << "  "
              << absl::FormatTime("%H:%M:%S", ToAbslTime(e.occurred_at()), DisplayZone()) << "  "
              << Pad(ShortSystem(e.source_system()), 13) << Pad(ShortType(e.type()), 28) << Facts(e)
              << (entry.disclosure() == coordination::DISCLOSURE_MINIMAL ? " [minimal]" : "") << "\n";
  }
}

// ---------------------------------------------------------------------------
// Odense: a short course under different rules.

std::vector<PartySpec> OdenseParties() {
  return {
      {"odense-borgerportal", common::ROLE_CITIZEN, "", "0461-borgerportal", "Borgerportalen, Odense"},
      {"odense-jobcenter", common::ROLE_COORDINATING_CASEWORKER, "Sofie Nielsen", "0461-jobcenter",
       "Jobcenter Odense"},
      {"odense-mentorkorps", common::ROLE_MENTOR, "Karim Jensen", "0461-mentorkorps",
       "Mentorkorpset, Odense Kommune"},
      {"odense-ydelse", common::ROLE_BENEFITS_UNIT, "", "0461-ydelse", "Ydelsesservice, Odense Kommune"},
  };
}

void PlayOdense(Municipality& m, JobCentreStub& jobcentre, const std::vector<PartySpec>& parties) {
  const common::Actor caseworker =
      MakeActor(common::ROLE_COORDINATING_CASEWORKER, "Jobcenter Odense", "Sofie Nielsen");
  Section("Odense (0461) · the parties, a decision and an appointment");
  for (const PartySpec& party : parties) m.Assign(party, "assign-" + party.recipient);
  std::cout << "   case key (pseudonymous subject): " << m.subject() << "\n";
  {
    recording::RecordDecisionRequest request;
    m.FillContext(*request.mutable_context(), "mentor-granted", caseworker);
    auto* basis = request.mutable_context()->add_legal_basis();
    basis->set_law("LAB");
    basis->set_paragraph("78");
    basis->set_subsection("1");
    events::Decision& d = *request.mutable_decision();
    d.set_outcome(events::DECISION_OUTCOME_GRANTED);
    d.mutable_offer()->set_code("LAB-mentor");
    d.mutable_offer()->set_name("Mentorstøtte (5 timer/uge)");
    d.mutable_offer()->set_administration(common::ADMINISTRATION_JOB_CENTRE);
    *d.mutable_decided_by() = caseworker;
    d.set_summary("Du får mentorstøtte 5 timer om ugen i 6 måneder.");
    m.Record("RecordDecision (job centre)", jobcentre, &JobCentreStub::RecordDecision, request,
             "dk.casebridge.decision.granted.v1");
  }
  {
    recording::BookAppointmentRequest request;
    m.FillContext(*request.mutable_context(), "mentor-meeting", caseworker);
    events::Appointment& a = *request.mutable_appointment();
    a.set_kind(events::APPOINTMENT_KIND_MENTOR_MEETING);
    *a.mutable_start() = At(3, 13);
    *a.mutable_end() = Plus(a.start(), absl::Hours(1));
    a.mutable_location()->set_name("Jobcenter Odense");
    a.add_attendees()->set_role(common::ROLE_CITIZEN);
    a.add_attendees()->set_role(common::ROLE_MENTOR);
    a.set_purpose("Første møde med mentor.");
    m.Record("BookAppointment (job centre)", jobcentre, &JobCentreStub::BookAppointment, request,
             "dk.casebridge.appointment.scheduled.v1");
  }
}

bool ParseFlags(int argc, char** argv, Flags& flags) {
  const std::map<std::string, std::string*> values = {
      {"--aarhus-jobcentre", &flags.aarhus_jobcentre},
      {"--aarhus-social", &flags.aarhus_social},
      {"--aarhus-health", &flags.aarhus_health},
      {"--aarhus-coordination", &flags.aarhus_coordination},
      {"--aarhus-config", &flags.aarhus_config},
      {"--odense-jobcentre", &flags.odense_jobcentre},
      {"--odense-coordination", &flags.odense_coordination},
      {"--odense-config", &flags.odense_config},
  };
  const std::map<std::string, std::string*> optional = {
      {"--tls-dir", &flags.tls_dir},
      {"--integration-identity", &flags.integration_identity},
  };
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--check")) {
      flags.check = true;
      continue;
    }
    std::string* target = nullptr;
    if (auto found = values.find(argv[i]); found != values.end()) {
      target = found->second;
    } else if (auto tls = optional.find(argv[i]); tls != optional.end()) {
      target = tls->second;
    }
    if (target == nullptr || i + 1 >= argc) {
      std::cerr << "casebridge-sample-municipality: unknown or incomplete argument " << argv[i] << "\n";
      return false;
    }
    *target = argv[++i];
  }
  for (const auto& [name, value] : values) {
    if (value->empty()) {
      std::cerr << "casebridge-sample-municipality: " << name << " is required\n";
      return false;
    }
  }
  return true;
}

int Run(const Flags& flags) {
  const absl::Time began = absl::Now();
  const std::string run = absl::StrCat(absl::Hex(absl::ToUnixMillis(began)));
  std::vector<std::string> problems;

  const std::string& integration = flags.integration_identity;
  std::cout << "Calling as: each party's own identity for Subscribe and SendReceipt, the"
               " coordinating caseworker for GetTimeline, "
            << integration << " for everything else ("
            << (AllChannels().secure() ? "client certificates from " + flags.tls_dir
                                       : std::string("casebridge-dev-identity metadata"))
            << ")\n";
  Municipality aarhus("Aarhus", "0751", kAarhusCitizen, ReadConfig(flags.aarhus_config),
                      flags.aarhus_coordination, integration, run, problems);
  AarhusStubs stubs{
      StubFor<casebridge::jobcentre::v1::JobCentreService>(flags.aarhus_jobcentre, integration),
      StubFor<casebridge::social::v1::SocialService>(flags.aarhus_social, integration),
      StubFor<casebridge::health::v1::HealthService>(flags.aarhus_health, integration)};
  std::vector<PartySpec> aarhus_parties = AarhusParties();
  PlayAarhus(aarhus, stubs, aarhus_parties);

  Municipality odense("Odense", "0461", kOdenseCitizen, ReadConfig(flags.odense_config),
                      flags.odense_coordination, integration, run, problems);
  auto odense_jobcentre =
      StubFor<casebridge::jobcentre::v1::JobCentreService>(flags.odense_jobcentre, integration);
  const std::vector<PartySpec> odense_parties = OdenseParties();
  PlayOdense(odense, *odense_jobcentre, odense_parties);

  Section("Aarhus · what each party received (Subscribe), checked against Aarhus' routing rules");
  aarhus.ShowDeliveries(aarhus_parties);

  Section("Aarhus · a receipt, and who has acknowledged the refusal");
  coordination::GetTimelineRequest timeline_request;
  timeline_request.mutable_case_ref()->set_subject(aarhus.subject());
  std::string refusal_id;
  const coordination::Timeline timeline =
      Call("GetTimeline", aarhus.reader(), &CoordinationStub::GetTimeline, timeline_request);
  for (const auto& entry : timeline.entries()) {
    if (entry.event().type() == "dk.casebridge.decision.refused.v1") refusal_id = entry.event().id();
  }
  ShowReceipts(aarhus, refusal_id, "citizen-portal");

  Section("Aarhus · the case timeline (GetTimeline): the one plan");
  ShowTimeline(aarhus);

  Section("Odense · what each party received, checked against Odense's routing rules");
  odense.ShowDeliveries(odense_parties);

  std::cout << "\n";
  int full = 0, minimal = 0;
  for (const Municipality* m : {&aarhus, &odense}) {
    for (const auto& [disclosure, n] : m->disclosures_) {
      (disclosure == coordination::DISCLOSURE_MINIMAL ? minimal : full) += n;
    }
  }
  std::cout << "disclosures: " << full << " full, " << minimal
            << " minimal deliveries checked against the consent rules\n";
  if (problems.empty()) {
    std::cout << "OK: every party received exactly what its municipality's rules route to it ("
              << absl::FormatDuration(absl::Trunc(absl::Now() - began, absl::Milliseconds(100)))
              << ")\n";
    return 0;
  }
  std::cout << "FAILED: " << problems.size() << " problem(s)\n";
  for (const std::string& problem : problems) std::cout << "   " << problem << "\n";
  return flags.check ? 1 : 0;
}

}  // namespace
}  // namespace casebridge::sample

int main(int argc, char** argv) {
  casebridge::sample::Flags flags;
  if (!casebridge::sample::ParseFlags(argc, argv, flags)) return 2;
  casebridge::sample::AllChannels() = casebridge::sample::Channels(flags.tls_dir);
  try {
    return casebridge::sample::Run(flags);
  } catch (const casebridge::sample::PlayerError& error) {
    std::cout.flush();
    std::cerr << "casebridge-sample-municipality: " << error.what() << "\n";
    return 1;
  }
}
