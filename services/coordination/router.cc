#include "services/coordination/router.h"

#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "services/common/event_ids.h"

namespace casebridge::coordination {
namespace {

using casebridge::common::v1::Role;
using casebridge::config::v1::RoutingConfig;
using casebridge::config::v1::RoutingRule;
using casebridge::coordination::v1::Party;
using casebridge::events::v1::CaseEvent;

// Calls `set(event, value)` on a fresh event for every value of the enum
// `descriptor` describes, and collects the event types that result.
template <typename Enum, typename Set>
void AddEachState(const google::protobuf::EnumDescriptor* descriptor, Set set,
                  std::set<std::string>& types) {
  for (int i = 0; i < descriptor->value_count(); ++i) {
    CaseEvent event;
    set(event, static_cast<Enum>(descriptor->value(i)->number()));
    if (std::string type = EventTypeFor(event); !type.empty()) types.insert(std::move(type));
  }
}

// The roles that receive `event` whatever the rules say (role events aside:
// they reach everyone).
std::set<Role> AlwaysRoles(const CaseEvent& event) {
  switch (event.payload_case()) {
    case CaseEvent::kLoadWarning: {
      std::set<Role> roles;
      for (int role : event.load_warning().notify_roles()) roles.insert(static_cast<Role>(role));
      roles.insert(casebridge::common::v1::ROLE_COORDINATING_CASEWORKER);
      return roles;
    }
    case CaseEvent::kWatchdogAlert:
      return {casebridge::common::v1::ROLE_COORDINATING_CASEWORKER};
    case CaseEvent::kReplanning:
      return {casebridge::common::v1::ROLE_COORDINATING_CASEWORKER,
              casebridge::common::v1::ROLE_REHABILITATION_TEAM};
    case CaseEvent::kTask:
      return {event.task().owner_role()};
    default:
      return {};
  }
}

// An event type or the part of a prefix pattern before "*": dot-separated,
// from [a-z0-9.-].
bool IsTypeText(absl::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '.' && c != '-') return false;
  }
  return true;
}

}  // namespace

bool EventTypeMatches(absl::string_view pattern, absl::string_view type) {
  if (absl::EndsWith(pattern, "*")) {
    return absl::StartsWith(type, pattern.substr(0, pattern.size() - 1));
  }
  return pattern == type;
}

const std::vector<std::string>& KnownEventTypes() {
  static const std::vector<std::string>* const kTypes = [] {
    namespace ev = casebridge::events::v1;
    std::set<std::string> types;
    AddEachState<ev::DecisionOutcome>(
        ev::DecisionOutcome_descriptor(),
        [](CaseEvent& e, ev::DecisionOutcome v) { e.mutable_decision()->set_outcome(v); }, types);
    AddEachState<ev::AppointmentStatus>(
        ev::AppointmentStatus_descriptor(),
        [](CaseEvent& e, ev::AppointmentStatus v) { e.mutable_appointment()->set_status(v); },
        types);
    AddEachState<ev::ReferralStatus>(
        ev::ReferralStatus_descriptor(),
        [](CaseEvent& e, ev::ReferralStatus v) { e.mutable_referral()->set_status(v); }, types);
    AddEachState<ev::TaskState>(
        ev::TaskState_descriptor(),
        [](CaseEvent& e, ev::TaskState v) { e.mutable_task()->set_state(v); }, types);
    AddEachState<ev::WatchdogKind>(
        ev::WatchdogKind_descriptor(),
        [](CaseEvent& e, ev::WatchdogKind v) { e.mutable_watchdog_alert()->set_kind(v); }, types);
    AddEachState<ev::LoadWarningKind>(
        ev::LoadWarningKind_descriptor(),
        [](CaseEvent& e, ev::LoadWarningKind v) { e.mutable_load_warning()->set_kind(v); }, types);
    for (bool released : {false, true}) {
      CaseEvent event;
      event.mutable_role_assignment()->set_released(released);
      types.insert(EventTypeFor(event));
    }
    for (bool withdrawn : {false, true}) {
      CaseEvent event;
      event.mutable_consent()->set_withdrawn(withdrawn);
      types.insert(EventTypeFor(event));
    }
    CaseEvent replanning;
    replanning.mutable_replanning();
    types.insert(EventTypeFor(replanning));
    CaseEvent cancellation;
    cancellation.mutable_supersedes()->set_kind(ev::Supersession::KIND_CANCELLATION);
    types.insert(EventTypeFor(cancellation));
    return new std::vector<std::string>(types.begin(), types.end());
  }();
  return *kTypes;
}

absl::Status ValidateRoutingConfig(const RoutingConfig& routing, const std::string& field) {
  const std::vector<std::string>& known = KnownEventTypes();
  for (int i = 0; i < routing.rules_size(); ++i) {
    const RoutingRule& rule = routing.rules(i);
    const std::string rule_field = absl::StrCat(field, ".rules[", i, "]");
    if (rule.event_types().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(rule_field, ".event_types: at least one event type is required"));
    }
    for (int j = 0; j < rule.event_types_size(); ++j) {
      const std::string& pattern = rule.event_types(j);
      const std::string type_field = absl::StrCat(rule_field, ".event_types[", j, "]");
      const bool prefix = absl::EndsWith(pattern, "*");
      const absl::string_view text =
          prefix ? absl::string_view(pattern).substr(0, pattern.size() - 1) : pattern;
      if (!IsTypeText(text)) {
        return absl::InvalidArgumentError(absl::StrCat(
            type_field, ": \"", pattern,
            "\" is not an event type or a prefix ending in \"*\" (e.g. "
            "\"dk.casebridge.referral.*\")"));
      }
      bool matches_known = false;
      for (const std::string& type : known) {
        matches_known = matches_known || EventTypeMatches(pattern, type);
      }
      if (!matches_known) {
        return absl::InvalidArgumentError(absl::StrCat(
            type_field, ": \"", pattern,
            prefix ? "\" matches no known event type" : "\" is not a known event type"));
      }
    }
    if (rule.roles().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(rule_field, ".roles: at least one role is required"));
    }
    for (int j = 0; j < rule.roles_size(); ++j) {
      const int role = rule.roles(j);
      if (role == casebridge::common::v1::ROLE_UNSPECIFIED ||
          !casebridge::common::v1::Role_IsValid(role)) {
        return absl::InvalidArgumentError(
            absl::StrCat(rule_field, ".roles[", j, "]: not a known role"));
      }
    }
  }
  return absl::OkStatus();
}

std::vector<RoutedRecipient> Route(const CaseEvent& event, const std::vector<Party>& holders,
                                   const RoutingConfig& routing,
                                   const std::vector<RoutedRecipient>& superseded_recipients) {
  // Role and consent events reach everyone; without rules, so does
  // everything else.
  const bool to_every_holder =
      routing.rules().empty() || event.has_role_assignment() || event.has_consent();
  std::set<Role> roles;
  if (!to_every_holder) {
    roles = AlwaysRoles(event);
    const std::string type = event.type().empty() ? EventTypeFor(event) : event.type();
    for (const RoutingRule& rule : routing.rules()) {
      bool matches = false;
      for (const std::string& pattern : rule.event_types()) {
        matches = matches || EventTypeMatches(pattern, type);
      }
      if (!matches) continue;
      for (int role : rule.roles()) roles.insert(static_cast<Role>(role));
    }
  }

  // std::map and std::set keep recipients and roles sorted and unique.
  std::map<std::string, std::set<Role>> roles_by_recipient;
  for (const Party& holder : holders) {
    if (holder.recipient().empty()) continue;
    if (!to_every_holder && !roles.contains(holder.role())) continue;
    roles_by_recipient[holder.recipient()].insert(holder.role());
  }
  if (event.has_role_assignment() && event.role_assignment().released() &&
      !event.role_assignment().recipient().empty()) {
    roles_by_recipient[event.role_assignment().recipient()].insert(event.role_assignment().role());
  }
  for (const RoutedRecipient& earlier : superseded_recipients) {
    if (earlier.recipient.empty() || earlier.roles.empty()) continue;
    roles_by_recipient[earlier.recipient].insert(earlier.roles.begin(), earlier.roles.end());
  }

  std::vector<RoutedRecipient> routed;
  routed.reserve(roles_by_recipient.size());
  for (const auto& [recipient, recipient_roles] : roles_by_recipient) {
    routed.push_back(
        {recipient, std::vector<Role>(recipient_roles.begin(), recipient_roles.end())});
  }
  return routed;
}

}  // namespace casebridge::coordination
