// What each party of one case must receive under a municipality's routing
// rules: an independent model of the routing that `--check` compares the
// coordination service's deliveries with.
//
// The model is written from the contract, not from the service's code:
//   * config.proto `RoutingConfig`: an event goes to the holders of every
//     role that a matching rule names (a pattern matches the type exactly,
//     or as a prefix ending in "*"); without rules, to every holder;
//   * role events go to every party on the case, plus the holder they
//     displaced (replaced or released);
//   * load warnings go to the holders of `notify_roles` and the
//     coordinating caseworker, watchdog alerts to the coordinating
//     caseworker, re-planning flags to the coordinating caseworker and the
//     rehabilitation team (case_event.proto), task events to the holder of
//     the task's `owner_role`; consent events to every party on the case.
// For each delivery it also decides the disclosure (full or the minimal
// projection) with the contract's pure rule (projection.h
// `DecideDisclosure`, docs/consent.md): the recipient's administration from
// the config, its roles and the consents in force when the event is routed
// (a consent applies to the events routed after it, a withdrawal likewise).
// Events are added in the order the coordination service applies them (the
// order of the case on the canonical topic), so each party's list is the
// order of its deliveries.
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "casebridge/common/v1/common.pb.h"
#include "casebridge/config/v1/config.pb.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "services/coordination/projection.h"

namespace casebridge::sample {

// One delivery a party must get.
struct ExpectedDelivery {
  std::string event_id;
  std::string type;
  // How much of it the recipient must receive, and why.
  casebridge::coordination::DisclosureDecision disclosure;
};

class ExpectedRouting {
 public:
  // `config`: the coordination service's config (routing rules and the
  // recipients' administrations).
  explicit ExpectedRouting(const casebridge::config::v1::CoordinationServiceConfig& config);

  // Adds the next event of the case (`id`, `type` and the payload fields the
  // rules look at: the role assignment, `load_warning.notify_roles`,
  // `task.owner_role`) and returns the recipients it must reach.
  std::set<std::string> Add(const casebridge::events::v1::CaseEvent& event);

  // Every recipient that must have received something, with its deliveries
  // in order.
  const std::map<std::string, std::vector<ExpectedDelivery>>& deliveries() const {
    return deliveries_;
  }

  // The current holder of `role`, or "".
  std::string HolderOf(casebridge::common::v1::Role role) const;

 private:
  casebridge::config::v1::RoutingConfig routing_;
  std::map<std::string, casebridge::common::v1::Administration> administrations_;
  std::map<casebridge::common::v1::Role, std::string> holders_;
  std::vector<casebridge::events::v1::Consent> consents_;  // in force, oldest first
  std::map<std::string, std::vector<ExpectedDelivery>> deliveries_;
};

// True when the rule pattern matches the event type (exactly, or as a prefix
// ending in "*").
bool TypeMatches(const std::string& pattern, const std::string& type);

}  // namespace casebridge::sample
