#include "tests/e2e/player.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include <grpcpp/support/client_interceptor.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "services/common/grpc_client.h"
#include "services/common/peer_identity.h"
#include "services/common/proto_time.h"

namespace casebridge::sample {

namespace coordination = casebridge::coordination::v1;
namespace events = casebridge::events::v1;
using casebridge::common::v1::Role;

std::vector<coordination::Delivery> ReadDeliveries(coordination::CoordinationService::Stub& stub,
                                                   const std::string& recipient,
                                                   const std::string& subject, size_t expected,
                                                   absl::Duration timeout, absl::Duration grace) {
  coordination::SubscribeRequest request;
  request.set_recipient(recipient);
  request.set_subject(subject);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));

  // Once `expected` deliveries are in, a watcher cancels the stream after
  // `grace`: what arrives meanwhile is a delivery the party should not get.
  std::mutex mu;
  std::condition_variable changed;
  bool reached = false, done = false;
  std::thread watcher([&] {
    std::unique_lock<std::mutex> lock(mu);
    changed.wait(lock, [&] { return reached || done; });
    if (done) return;
    changed.wait_for(lock, absl::ToChronoMilliseconds(grace), [&] { return done; });
    context.TryCancel();
  });

  std::vector<coordination::Delivery> deliveries;
  std::unique_ptr<grpc::ClientReader<coordination::Delivery>> reader =
      stub.Subscribe(&context, request);
  coordination::Delivery delivery;
  while (reader->Read(&delivery)) {
    deliveries.push_back(delivery);
    if (deliveries.size() >= expected) {
      std::lock_guard<std::mutex> lock(mu);
      reached = true;
      changed.notify_all();
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    changed.notify_all();
  }
  watcher.join();
  reader->Finish();  // CANCELLED or DEADLINE_EXCEEDED: how the stream always ends here
  return deliveries;
}

coordination::TimelineEntry WaitForEvent(
    coordination::CoordinationService::Stub& stub, const std::string& subject,
    const std::function<bool(const events::CaseEvent&)>& matches, const std::string& what,
    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  coordination::GetTimelineRequest request;
  request.mutable_case_ref()->set_subject(subject);
  request.set_include_superseded(true);
  while (true) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    coordination::Timeline timeline;
    const grpc::Status status = stub.GetTimeline(&context, request, &timeline);
    if (status.ok()) {
      for (const auto& entry : timeline.entries()) {
        if (matches(entry.event())) return entry;
      }
    } else if (status.error_code() != grpc::StatusCode::PERMISSION_DENIED &&
               status.error_code() != grpc::StatusCode::NOT_FOUND) {
      throw PlayerError(absl::StrCat("GetTimeline failed: code ", static_cast<int>(status.error_code()),
                                     " ", status.error_message()));
    }
    if (absl::Now() > deadline) {
      throw PlayerError(absl::StrCat("no ", what, " on the case timeline after ",
                                     absl::FormatDuration(timeout),
                                     status.ok() ? "" : absl::StrCat(" (", status.error_message(), ")")));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

namespace {

// Names the caller in the development-mode identity metadata.
class IdentityInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit IdentityInterceptor(std::string identity) : identity_(std::move(identity)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace(casebridge::common::kDevelopmentIdentityHeader,
                                                 identity_);
    }
    methods->Proceed();
  }

 private:
  std::string identity_;
};

class IdentityInterceptorFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit IdentityInterceptorFactory(std::string identity) : identity_(std::move(identity)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new IdentityInterceptor(identity_);
  }

 private:
  std::string identity_;
};

}  // namespace

std::shared_ptr<grpc::Channel> Channels::Get(const std::string& address,
                                             const std::string& identity) {
  auto& channel = channels_[{address, identity}];
  if (channel) return channel;
  if (secure()) {
    casebridge::config::v1::ClientTlsConfig tls;
    tls.set_ca_file(absl::StrCat(tls_dir_, "/ca.pem"));
    tls.set_cert_file(absl::StrCat(tls_dir_, "/", identity, ".pem"));
    tls.set_key_file(absl::StrCat(tls_dir_, "/", identity, ".key"));
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
        casebridge::common::ClientCredentials(tls);
    if (!credentials.ok()) {
      throw PlayerError(absl::StrCat("the certificate of ", identity, " in ", tls_dir_, ": ",
                                     credentials.status().message()));
    }
    channel = grpc::CreateChannel(address, *credentials);
  } else {
    std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
    interceptors.push_back(std::make_unique<IdentityInterceptorFactory>(identity));
    channel = grpc::experimental::CreateCustomChannelWithInterceptors(
        address, grpc::InsecureChannelCredentials(), grpc::ChannelArguments(),
        std::move(interceptors));
  }
  return channel;
}

namespace {

// "REFERRAL_STATUS_ESTIMATE_CHANGED" without "REFERRAL_STATUS_", lower case,
// words joined by `joiner`.
std::string Words(const std::string& enum_name, const std::string& prefix, const char* joiner) {
  std::string words = absl::AsciiStrToLower(absl::StripPrefix(enum_name, prefix));
  return absl::StrReplaceAll(words, {{"_", joiner}});
}

// A unit by its id; in a minimal projection (ids withheld) by its
// administration.
std::string UnitText(const casebridge::common::v1::Unit& unit) {
  if (!unit.id().empty()) return unit.id();
  if (unit.administration() == casebridge::common::v1::ADMINISTRATION_UNSPECIFIED) return "?";
  return Words(casebridge::common::v1::Administration_Name(unit.administration()), "ADMINISTRATION_",
               " ");
}

// An offer by its code; in a minimal projection by its administration.
std::string OfferText(const events::Offer& offer) {
  if (!offer.code().empty()) return offer.code();
  if (offer.administration() == casebridge::common::v1::ADMINISTRATION_UNSPECIFIED) return "(offer)";
  return absl::StrCat("(", Words(casebridge::common::v1::Administration_Name(offer.administration()),
                                 "ADMINISTRATION_", " "), " offer)");
}

std::string Codes(const google::protobuf::RepeatedPtrField<events::Reason>& reasons) {
  return absl::StrJoin(reasons, ", ", [](std::string* out, const events::Reason& reason) {
    out->append(reason.code());
  });
}

std::string Codes(const google::protobuf::RepeatedPtrField<events::Alternative>& alternatives) {
  return absl::StrJoin(alternatives, ", ", [](std::string* out, const events::Alternative& a) {
    out->append(a.offer().code());
  });
}

std::string Roles(const google::protobuf::RepeatedField<int>& roles) {
  return absl::StrJoin(roles, ", ", [](std::string* out, int role) {
    out->append(RoleName(static_cast<Role>(role)));
  });
}

std::string DecisionFacts(const events::Decision& d) {
  std::string text = absl::StrCat(
      OfferText(d.offer()), " ", Words(events::DecisionOutcome_Name(d.outcome()), "DECISION_OUTCOME_", " "));
  if (!d.reasons().empty()) absl::StrAppend(&text, " · reasons: ", Codes(d.reasons()));
  if (!d.alternatives().empty()) absl::StrAppend(&text, " · instead: ", Codes(d.alternatives()));
  if (d.complaint().has_deadline()) {
    absl::StrAppend(&text, " · complaint to ", d.complaint().complaint_body(), " by ",
                    Day(d.complaint().deadline()));
  }
  return text;
}

std::string AppointmentFacts(const events::Appointment& a) {
  std::string text = a.kind() == events::APPOINTMENT_KIND_UNSPECIFIED  // minimal projection
                         ? std::string("appointment")
                         : Words(events::AppointmentKind_Name(a.kind()), "APPOINTMENT_KIND_", " ");
  if (a.has_start()) {
    absl::StrAppend(&text, " ", DayTime(a.start()));
    if (a.has_end()) {
      absl::StrAppend(&text, "–", absl::FormatTime("%H:%M", ToAbslTime(a.end()), DisplayZone()));
    }
  }
  if (!a.location().name().empty()) absl::StrAppend(&text, " · ", a.location().name());
  if (!a.appointment_id().empty()) absl::StrAppend(&text, " [", a.appointment_id(), "]");
  return text;
}

std::string ReferralFacts(const events::Referral& r) {
  std::string text = absl::StrCat(r.referral_id(), " ", OfferText(r.offer()));
  switch (r.status()) {
    case events::REFERRAL_STATUS_SENT:
      absl::StrAppend(&text, " → ", UnitText(r.to_unit()));
      break;
    case events::REFERRAL_STATUS_RECEIVED:
    case events::REFERRAL_STATUS_ACCEPTED:
      absl::StrAppend(&text, " at ", UnitText(r.to_unit()));
      break;
    case events::REFERRAL_STATUS_FORWARDED:
      absl::StrAppend(&text, " from ", UnitText(r.to_unit()), " → ", UnitText(r.forwarded_to()));
      break;
    case events::REFERRAL_STATUS_ASSESSED:
      if (!r.has_assessment()) break;  // withheld in a minimal projection
      absl::StrAppend(&text, r.assessment().in_target_group() ? " in target group"
                                                              : " NOT in target group");
      if (!r.assessment().reasons().empty()) {
        absl::StrAppend(&text, ": ", Codes(r.assessment().reasons()));
      }
      break;
    case events::REFERRAL_STATUS_WAITLISTED:
      absl::StrAppend(&text, r.has_estimated_start()
                                 ? absl::StrCat(" · estimated start ", Day(r.estimated_start()))
                                 : " · no estimate");
      break;
    case events::REFERRAL_STATUS_ESTIMATE_CHANGED:
      absl::StrAppend(&text, " · estimate ",
                      r.has_previous_estimated_start() ? Day(r.previous_estimated_start()) : "?",
                      " → ", Day(r.estimated_start()));
      break;
    default:
      break;
  }
  if (!r.reasons().empty()) absl::StrAppend(&text, " · reasons: ", Codes(r.reasons()));
  return text;
}

}  // namespace

std::string TypeFor(const std::string& kind, const std::string& enum_name,
                    const std::string& prefix) {
  return absl::StrCat("dk.casebridge.", kind, ".", Words(enum_name, prefix, "-"), ".v1");
}

std::string ShortType(const std::string& type) {
  return std::string(absl::StripSuffix(absl::StripPrefix(type, "dk.casebridge."), ".v1"));
}

std::string RoleName(Role role) { return Words(casebridge::common::v1::Role_Name(role), "ROLE_", "-"); }

absl::TimeZone DisplayZone() {
  static const absl::TimeZone zone = [] {
    absl::TimeZone copenhagen;
    return absl::LoadTimeZone("Europe/Copenhagen", &copenhagen) ? copenhagen : absl::UTCTimeZone();
  }();
  return zone;
}

std::string DayTime(const google::protobuf::Timestamp& timestamp) {
  return absl::FormatTime("%Y-%m-%d %H:%M", ToAbslTime(timestamp), DisplayZone());
}

std::string Day(const google::protobuf::Timestamp& timestamp) {
  return absl::FormatTime("%Y-%m-%d", ToAbslTime(timestamp), DisplayZone());
}

std::string Facts(const events::CaseEvent& event) {
  switch (event.payload_case()) {
    case events::CaseEvent::kDecision:
      return DecisionFacts(event.decision());
    case events::CaseEvent::kAppointment:
      return AppointmentFacts(event.appointment());
    case events::CaseEvent::kReferral:
      return ReferralFacts(event.referral());
    case events::CaseEvent::kRoleAssignment: {
      const events::RoleAssignment& a = event.role_assignment();
      return absl::StrCat(RoleName(a.role()), a.released() ? " released by " : " → ", a.recipient(),
                          a.holder_name().empty() ? "" : absl::StrCat(" (", a.holder_name(), ")"));
    }
    case events::CaseEvent::kTask: {
      const events::Task& t = event.task();
      return absl::StrCat(t.task_id(), " \"", t.title(), "\" · owner ", RoleName(t.owner_role()),
                          " = ", t.owner_recipient(), " · due ", Day(t.due()));
    }
    case events::CaseEvent::kWatchdogAlert: {
      const events::WatchdogAlert& w = event.watchdog_alert();
      return absl::StrCat(Words(events::WatchdogKind_Name(w.kind()), "WATCHDOG_KIND_", " "),
                          w.referral_id().empty() ? "" : absl::StrCat(" ", w.referral_id()),
                          " · since ", Day(w.since()), " · threshold ", w.threshold_days(), " days");
    }
    case events::CaseEvent::kLoadWarning: {
      const events::LoadWarning& l = event.load_warning();
      std::string text = absl::StrCat(
          Words(events::LoadWarningKind_Name(l.kind()), "LOAD_WARNING_KIND_", " "), " on ",
          Day(l.day()), ": ", absl::StrJoin(l.appointment_ids(), " + "));
      if (l.limit() > 0) absl::StrAppend(&text, " (", l.activities(), " > limit ", l.limit(), ")");
      absl::StrAppend(&text, " · to ", Roles(l.notify_roles()));
      return text;
    }
    case events::CaseEvent::kReplanning: {
      const events::ReplanningFlag& p = event.replanning();
      std::string text = absl::StrCat("referral ", p.referral_id());
      if (!p.reasons().empty()) absl::StrAppend(&text, " · reasons: ", Codes(p.reasons()));
      if (!p.alternatives().empty()) absl::StrAppend(&text, " · instead: ", Codes(p.alternatives()));
      return text;
    }
    case events::CaseEvent::kConsent: {
      const events::Consent& c = event.consent();
      if (c.withdrawn()) return absl::StrCat("consent ", c.consent_id().substr(0, 8), " withdrawn");
      std::vector<std::string> grants;
      for (const events::ConsentGrant& g : c.grants()) {
        std::vector<std::string> kinds;
        for (int kind : g.sensitivities()) {
          kinds.push_back(Words(events::Sensitivity_Name(static_cast<events::Sensitivity>(kind)),
                                "SENSITIVITY_", " "));
        }
        grants.push_back(absl::StrCat(
            Words(casebridge::common::v1::Administration_Name(g.administration()), "ADMINISTRATION_", " "), ": ",
            absl::StrJoin(kinds, ", ")));
      }
      return absl::StrCat("consent ", c.consent_id().substr(0, 8), " · ",
                          absl::StrJoin(grants, "; "));
    }
    case events::CaseEvent::PAYLOAD_NOT_SET:
      break;
  }
  if (event.has_supersedes()) return absl::StrCat("supersedes ", event.supersedes().event_id());
  return "";
}

}  // namespace casebridge::sample
