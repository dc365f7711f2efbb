// A case's timeline: every event of the case from every system, in the
// order things happened, with corrections and cancellations resolved.
//
// A pure function over the case's history (`CoordinationStore::History`),
// so it is unit-tested without a store.
#pragma once

#include <vector>

#include "casebridge/coordination/v1/coordination_service.pb.h"
#include "casebridge/events/v1/case_event.pb.h"

namespace casebridge::coordination {

// Returns the timeline entries of `events` (one case's events, in any
// order), ordered by `occurred_at`, then `recorded_at`, then event id.
//
// An event that another event of the list supersedes (its
// `supersedes.event_id`, a correction or a cancellation) is not current; its
// `superseded_by` names the newest event of the chain (A corrected by B,
// B corrected by C: both A and B are superseded by C). When two events
// supersede the same one, the later in timeline order wins and supersedes the
// earlier one too. A cancellation is
// itself current, so consumers see the withdrawal. A supersession naming an
// event not in the list changes nothing.
//
// Without `include_superseded` only current entries are returned.
std::vector<casebridge::coordination::v1::TimelineEntry> BuildTimeline(
    const std::vector<casebridge::events::v1::CaseEvent>& events, bool include_superseded);

}  // namespace casebridge::coordination
