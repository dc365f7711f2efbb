// Routing: which recipient organisations receive a case event, under one
// municipality's routing rules (`CoordinationServiceConfig.routing`).
//
// The router is a pure function of the event, the case's role holders, the
// rules and who received the event the new one supersedes. It decides who
// receives an event; how much of it each receives (consent and sensitivity)
// is decided afterwards, per recipient, by `DecideDisclosure`
// (projection.h).
//
// An event goes to the holders of every role that any matching rule names
// (a rule matches when one of its `event_types` equals the event's type, or
// is a prefix ending in "*" that the type starts with). Without rules every
// holder receives every event. Whatever the rules say, these always hold:
//
//   * role events (`dk.casebridge.role.*`) reach every party on the case,
//     plus the holder they replaced or released;
//   * consent events (`dk.casebridge.consent.*`) reach every party on the
//     case;
//   * load warnings reach the holders of `load_warning.notify_roles` and the
//     coordinating caseworker;
//   * watchdog alerts reach the coordinating caseworker;
//   * re-planning flags reach the coordinating caseworker and the
//     rehabilitation team (as `ReplanningFlag` promises);
//   * task events reach the holder of the task's `owner_role`;
//   * a correction or cancellation reaches every recipient that received the
//     event it supersedes, even one that no longer holds a role (a recipient
//     holding outdated data must learn that it is outdated).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "casebridge/common/v1/common.pb.h"
#include "casebridge/config/v1/config.pb.h"
#include "casebridge/coordination/v1/coordination_service.pb.h"
#include "casebridge/events/v1/case_event.pb.h"

namespace casebridge::coordination {

// One recipient of an event and the roles through which it receives it.
struct RoutedRecipient {
  // The recipient organisation's id, e.g. "aarhus-jobcenter".
  std::string recipient;
  // Its roles on the case, ascending, each once. Never empty.
  std::vector<casebridge::common::v1::Role> roles;

  bool operator==(const RoutedRecipient&) const = default;
};

// Returns the recipients of `event`, each once, ordered by recipient id.
//
// `holders` are the case's role holders after `event` took effect, plus, for
// a role event, the holder it displaced (replaced or released) so that the
// old holder learns of the change. The recipient named by a release event
// always receives it, even when `holders` no longer lists it. Holders with an
// empty recipient are ignored. `superseded_recipients` are the recipients of
// the event `event` supersedes (empty if it supersedes nothing); each
// receives `event` through the roles it had then.
//
// REQUIRES: `routing` is valid (`ValidateRoutingConfig`).
std::vector<RoutedRecipient> Route(
    const casebridge::events::v1::CaseEvent& event,
    const std::vector<casebridge::coordination::v1::Party>& holders,
    const casebridge::config::v1::RoutingConfig& routing =
        casebridge::config::v1::RoutingConfig::default_instance(),
    const std::vector<RoutedRecipient>& superseded_recipients = {});

// True when the rule pattern `pattern` matches the event type `type`:
// equal, or `pattern` ends in "*" and `type` starts with what precedes it.
bool EventTypeMatches(absl::string_view pattern, absl::string_view type);

// Every event type the casebridge services can produce (the catalogue of
// docs/events.md, computed from `EventTypeFor` over every payload state),
// sorted.
const std::vector<std::string>& KnownEventTypes();

// Returns kInvalidArgument "<field path>: <reason>" for the first unusable
// rule, the path starting with `field` (e.g. "routing"): a rule without
// `event_types` or `roles`, an unspecified or unknown role, or a type
// pattern that is neither a known event type nor a prefix ending in "*"
// that matches at least one known type (so a typo cannot silently route
// nothing).
absl::Status ValidateRoutingConfig(const casebridge::config::v1::RoutingConfig& routing,
                                   const std::string& field);

}  // namespace casebridge::coordination
