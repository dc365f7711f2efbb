// Routing: which recipient organisations receive a case event.
//
// The router is a pure function of the event and the case's role holders,
// kept apart from the store so that per-municipality routing rules (and,
// later, consent filtering) can replace it without touching persistence.
//
// First cut: every event of a case (decisions, appointments, referrals, role
// events, cancellations) goes to every current holder of a role on the case.
#pragma once

#include <string>
#include <vector>

#include "casebridge/common/v1/common.pb.h"
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
// empty recipient are ignored.
std::vector<RoutedRecipient> Route(const casebridge::events::v1::CaseEvent& event,
                                   const std::vector<casebridge::coordination::v1::Party>& holders);

}  // namespace casebridge::coordination
