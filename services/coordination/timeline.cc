#include "services/coordination/timeline.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "services/common/proto_time.h"

namespace casebridge::coordination {

using casebridge::coordination::v1::TimelineEntry;
using casebridge::events::v1::CaseEvent;

std::vector<TimelineEntry> BuildTimeline(const std::vector<CaseEvent>& events,
                                         bool include_superseded) {
  std::vector<const CaseEvent*> ordered;
  ordered.reserve(events.size());
  for (const CaseEvent& event : events) ordered.push_back(&event);
  std::stable_sort(ordered.begin(), ordered.end(), [](const CaseEvent* a, const CaseEvent* b) {
    const absl::Time a_occurred = ToAbslTime(a->occurred_at());
    const absl::Time b_occurred = ToAbslTime(b->occurred_at());
    if (a_occurred != b_occurred) return a_occurred < b_occurred;
    const absl::Time a_recorded = ToAbslTime(a->recorded_at());
    const absl::Time b_recorded = ToAbslTime(b->recorded_at());
    if (a_recorded != b_recorded) return a_recorded < b_recorded;
    return a->id() < b->id();
  });

  std::set<std::string> ids;
  for (const CaseEvent* event : ordered) ids.insert(event->id());
  // Event id → the event that directly supersedes it. When two events
  // supersede the same one, the later (in timeline order) takes over and also
  // supersedes the earlier: both are versions of the same thing.
  std::map<std::string, std::string> direct;
  for (const CaseEvent* event : ordered) {
    const std::string& target = event->supersedes().event_id();
    if (target.empty() || target == event->id() || !ids.contains(target)) continue;
    auto [it, inserted] = direct.try_emplace(target, event->id());
    if (!inserted) {
      const std::string earlier = it->second;
      it->second = event->id();
      direct.try_emplace(earlier, event->id());
    }
  }

  std::vector<TimelineEntry> entries;
  entries.reserve(ordered.size());
  for (const CaseEvent* event : ordered) {
    // Follow the chain to its newest event; a cycle (which correct producers
    // cannot create) stops at the first repeat.
    std::string newest;
    std::set<std::string> seen = {event->id()};
    for (auto next = direct.find(event->id()); next != direct.end();
         next = direct.find(next->second)) {
      if (!seen.insert(next->second).second) break;
      newest = next->second;
    }
    const bool current = newest.empty();
    if (!current && !include_superseded) continue;
    TimelineEntry& entry = entries.emplace_back();
    *entry.mutable_event() = *event;
    entry.set_current(current);
    entry.set_superseded_by(newest);
  }
  return entries;
}

}  // namespace casebridge::coordination
