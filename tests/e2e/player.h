// What the sample-municipality player is made of besides its story: calling
// the services, reading a party's deliveries and the case timeline, and
// saying in one line what an event is about.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "casebridge/common/v1/common.pb.h"
#include "casebridge/coordination/v1/coordination_service.grpc.pb.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "casebridge/config/v1/config.pb.h"
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
// and returns its entry (the event as the caller may see it, and the
// disclosure); throws PlayerError naming `what` after `timeout`. A caller
// that is not (yet) a party is refused until the event that makes it one is
// applied: PERMISSION_DENIED and NOT_FOUND are polled through until then.
casebridge::coordination::v1::TimelineEntry WaitForEvent(
    casebridge::coordination::v1::CoordinationService::Stub& coordination,
    const std::string& subject,
    const std::function<bool(const casebridge::events::v1::CaseEvent&)>& matches,
    const std::string& what, absl::Duration timeout = absl::Seconds(20));

// The channels of the player, one per identity: with a certificate
// directory (`tls_dir`: ca.pem, NAME.pem, NAME.key — deploy/local/dev-certs)
// mutual TLS with NAME's certificate; without, plain text with NAME in the
// `casebridge-dev-identity` metadata (services in insecure development mode).
class Channels {
 public:
  explicit Channels(std::string tls_dir) : tls_dir_(std::move(tls_dir)) {}
  // A channel to `address` as `identity` (created once, then reused).
  std::shared_ptr<grpc::Channel> Get(const std::string& address, const std::string& identity);
  bool secure() const { return !tls_dir_.empty(); }

 private:
  std::string tls_dir_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<grpc::Channel>> channels_;
};

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
