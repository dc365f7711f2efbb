#include "services/coordination/router.h"

#include <map>
#include <set>

namespace casebridge::coordination {

using casebridge::common::v1::Role;
using casebridge::coordination::v1::Party;
using casebridge::events::v1::CaseEvent;

std::vector<RoutedRecipient> Route(const CaseEvent& event, const std::vector<Party>& holders) {
  // std::map and std::set keep recipients and roles sorted and unique.
  std::map<std::string, std::set<Role>> roles_by_recipient;
  for (const Party& holder : holders) {
    if (holder.recipient().empty()) continue;
    roles_by_recipient[holder.recipient()].insert(holder.role());
  }
  if (event.has_role_assignment() && event.role_assignment().released() &&
      !event.role_assignment().recipient().empty()) {
    roles_by_recipient[event.role_assignment().recipient()].insert(event.role_assignment().role());
  }

  std::vector<RoutedRecipient> routed;
  routed.reserve(roles_by_recipient.size());
  for (const auto& [recipient, roles] : roles_by_recipient) {
    routed.push_back({recipient, std::vector<Role>(roles.begin(), roles.end())});
  }
  return routed;
}

}  // namespace casebridge::coordination
