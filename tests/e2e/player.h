// What the sample-municipality player is made of besides its story: calling
// the services, reading a party's deliveries and the case timeline, and
// saying in one line what an event is about.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "casebridge/common/v1/common.pb.h"
#include "casebridge/coordination/v1/coordination_service.grpc.pb.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace casebridge::sample {

// A failed call; the player stops with its message.
struct PlayerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Calls a unary RPC with a 30 s deadline; throws PlayerError naming `what`
// and the status if it fails.
template <typename Stub, typename Request, typename Response>
Response Call(const std::string& what, Stub& stub,
              grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
              const Request& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  Response response;
  const grpc::Status status = (stub.*method)(&context, request, &response);
  if (!status.ok()) {
    throw PlayerError(absl::StrCat(what, " failed: code ", static_cast<int>(status.error_code()),
                                   " ", status.error_message()));
  }
  return response;
}

// The deliveries of one case to one recipient through `Subscribe`: reads
// until `expected` have arrived (or `timeout` passed), then `grace` longer
// to catch deliveries that should not be there.
std::vector<casebridge::coordination::v1::Delivery> ReadDeliveries(
    casebridge::coordination::v1::CoordinationService::Stub& coordination,
    const std::string& recipient, const std::string& subject, size_t expected,
    absl::Duration timeout, absl::Duration grace);

// Polls the case's timeline until an event satisfying `matches` is on it,
// and returns it; throws PlayerError naming `what` after `timeout`.
casebridge::events::v1::CaseEvent WaitForEvent(
    casebridge::coordination::v1::CoordinationService::Stub& coordination,
    const std::string& subject,
    const std::function<bool(const casebridge::events::v1::CaseEvent&)>& matches,
    const std::string& what, absl::Duration timeout = absl::Seconds(20));

// The type for a payload state, as the event catalogue names it:
// TypeFor("referral", "REFERRAL_STATUS_ESTIMATE_CHANGED", "REFERRAL_STATUS_")
// is "dk.casebridge.referral.estimate-changed.v1".
std::string TypeFor(const std::string& kind, const std::string& enum_name,
                    const std::string& prefix);

// "dk.casebridge.referral.sent.v1" → "referral.sent".
std::string ShortType(const std::string& type);
// ROLE_COORDINATING_CASEWORKER → "coordinating-caseworker".
std::string RoleName(casebridge::common::v1::Role role);
// "2026-12-01 10:00" and "2026-12-01" in the display time zone
// (Europe/Copenhagen if the system has it, else UTC).
std::string DayTime(const google::protobuf::Timestamp& timestamp);
std::string Day(const google::protobuf::Timestamp& timestamp);
absl::TimeZone DisplayZone();
// The key facts of an event in one line: outcome, referral step and unit,
// estimate, appointment time, task, warning, …
std::string Facts(const casebridge::events::v1::CaseEvent& event);

}  // namespace casebridge::sample
