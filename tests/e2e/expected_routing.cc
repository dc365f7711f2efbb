#include "tests/e2e/expected_routing.h"

namespace casebridge::sample {

using casebridge::common::v1::Role;
using casebridge::events::v1::CaseEvent;

ExpectedRouting::ExpectedRouting(const casebridge::config::v1::CoordinationServiceConfig& config)
    : routing_(config.routing()) {
  for (const auto& recipient : config.recipients()) {
    administrations_[recipient.id()] = recipient.administration();
  }
}

bool TypeMatches(const std::string& pattern, const std::string& type) {
  if (!pattern.empty() && pattern.back() == '*') {
    return type.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0;
  }
  return pattern == type;
}

std::string ExpectedRouting::HolderOf(Role role) const {
  auto it = holders_.find(role);
  return it == holders_.end() ? "" : it->second;
}

std::set<std::string> ExpectedRouting::Add(const CaseEvent& event) {
  std::set<std::string> recipients;
  if (event.has_role_assignment()) {
    const auto& assignment = event.role_assignment();
    const std::string before = HolderOf(assignment.role());
    if (!assignment.released()) {
      holders_[assignment.role()] = assignment.recipient();
    } else if (before == assignment.recipient()) {
      holders_.erase(assignment.role());
    }
    for (const auto& [role, holder] : holders_) recipients.insert(holder);
    if (!before.empty()) recipients.insert(before);                  // the displaced holder
    if (assignment.released()) recipients.insert(assignment.recipient());
  } else {
    std::set<Role> roles;
    if (routing_.rules().empty()) {
      for (const auto& [role, holder] : holders_) roles.insert(role);
    }
    for (const auto& rule : routing_.rules()) {
      bool matches = false;
      for (const std::string& pattern : rule.event_types()) {
        matches = matches || TypeMatches(pattern, event.type());
      }
      if (!matches) continue;
      for (int role : rule.roles()) roles.insert(static_cast<Role>(role));
    }
    switch (event.payload_case()) {
      case CaseEvent::kLoadWarning:
        for (int role : event.load_warning().notify_roles()) roles.insert(static_cast<Role>(role));
        roles.insert(casebridge::common::v1::ROLE_COORDINATING_CASEWORKER);
        break;
      case CaseEvent::kWatchdogAlert:
        roles.insert(casebridge::common::v1::ROLE_COORDINATING_CASEWORKER);
        break;
      case CaseEvent::kReplanning:
        roles.insert(casebridge::common::v1::ROLE_COORDINATING_CASEWORKER);
        roles.insert(casebridge::common::v1::ROLE_REHABILITATION_TEAM);
        break;
      case CaseEvent::kTask:
        roles.insert(event.task().owner_role());
        break;
      case CaseEvent::kConsent:
        for (const auto& [role, holder] : holders_) roles.insert(role);
        break;
      default:
        break;
    }
    for (Role role : roles) {
      if (std::string holder = HolderOf(role); !holder.empty()) recipients.insert(holder);
    }
  }
  for (const std::string& recipient : recipients) {
    std::vector<Role> held;
    for (const auto& [role, holder] : holders_) {
      if (holder == recipient) held.push_back(role);
    }
    auto administration = administrations_.find(recipient);
    deliveries_[recipient].push_back(
        {event.id(), event.type(),
         casebridge::coordination::DecideDisclosure(
             event,
             administration == administrations_.end()
                 ? casebridge::common::v1::ADMINISTRATION_UNSPECIFIED
                 : administration->second,
             held, consents_)});
  }
  if (event.has_consent()) {  // in force for the events routed after it
    const auto& consent = event.consent();
    std::erase_if(consents_, [&](const casebridge::events::v1::Consent& c) {
      return c.consent_id() == consent.consent_id();
    });
    if (!consent.withdrawn()) consents_.push_back(consent);
  }
  return recipients;
}

}  // namespace casebridge::sample
