// Recording what the case rules derive (`case_rules.h`): re-planning flags,
// load warnings, task hand-overs, watchdog alerts and overdue tasks go to
// the canonical topic through the coordination service's `EventRecorder`,
// like role events, and come back round to be routed like any event.
//
// Each derived event carries an idempotency key that names its situation,
// so deriving the same situation again (a record consumed again after a
// crash, every watchdog run) replays the key and records nothing new.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/common/event_recorder.h"
#include "services/coordination/case_rules.h"

namespace casebridge::coordination {

// Records every event of `derived` on case `subject`, in order, and returns
// how many were newly recorded (replayed keys are not counted).
//
// A derived event the recorder can never record (an idempotency key outside
// [A-Za-z0-9._:-]{1,128}, a payload without a state: a bug in the rules) is
// logged without personal data and skipped, so one bad rule cannot stop
// delivery. Any other error (kUnavailable: Kafka did not confirm in time) is
// returned at once; calling again with the same events is safe.
//
// `on_recorded`, if set, is called with each event newly recorded.
//
// The idempotency key alone is the request fingerprint: a rule that derives
// the same situation with slightly different content later (e.g. a newer
// `since`) replays the first event rather than failing.
//
// Each event is recorded with `trace`: the span of the coordination hop that
// handles the event they derive from, so that they continue its trace. Not
// valid (watchdog runs): each event starts a new trace.
absl::StatusOr<int> RecordDerivedEvents(EventRecorder& recorder, const std::string& subject,
                                        const std::vector<DerivedEvent>& derived,
                                        const TraceContext& trace = {},
    const std::function<void(const casebridge::events::v1::CaseEvent&)>& on_recorded = nullptr);

}  // namespace casebridge::coordination
