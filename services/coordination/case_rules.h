// The coordination service's own reactions: events it records because of
// what happened on a case, or because time passed without something
// happening. Pure functions over a case's history, so they are unit-tested
// without Kafka, SQLite or a clock.
//
//   * A refused referral, or an assessment out of the target group, flags
//     the plan for re-planning (`dk.casebridge.plan.replanning-needed.v1`).
//   * A scheduled or rescheduled appointment that overlaps another one of
//     the case (from any system), or makes a day busier than the
//     municipality allows, warns the roles that booked them
//     (`dk.casebridge.load.double-booking.v1`, `…too-many-activities.v1`).
//   * A role that changes holder takes its open tasks along
//     (`dk.casebridge.task.handed-over.v1`, one per open task).
//   * Watchdogs: a referral not received within N days, a waitlist without
//     an estimate for N days, fewer than M follow-up conversations in the
//     window, no attended appointment for N days
//     (`dk.casebridge.watchdog.*`), and open tasks past their due date
//     (`dk.casebridge.task.overdue.v1`).
//
// Every derived event carries an idempotency key that names the situation
// (e.g. the refused referral's event id, or the overdue task), unique across
// all cases (the coordination ledger is one), so deriving the same situation
// again — after a restart, or on every watchdog run — records nothing new:
// the recorder replays the key. Re-deriving may produce different content
// (e.g. `occurred_at` = now); only the key identifies the situation.
//
// The rules read the case as it currently stands: a correction replaces what
// it corrects in its original place, and a cancelled event drops out.
#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "casebridge/config/v1/config.pb.h"
#include "casebridge/coordination/v1/coordination_service.pb.h"
#include "casebridge/events/v1/case_event.pb.h"

namespace casebridge::coordination {

// What the coordination service knows of one case.
struct CaseHistory {
  // The pseudonymous case key.
  std::string subject;
  // Every event of the case consumed so far, in consumption order (which
  // is per-source sequence order). For `DeriveFromEvent` the new event is
  // the last one.
  std::vector<casebridge::events::v1::CaseEvent> events;
  // The current role holders (for `DeriveFromEvent`: after the new event).
  std::vector<casebridge::coordination::v1::Party> holders;
};

// An event the coordination service should record.
struct DerivedEvent {
  // Names the situation; the same situation always gives the same key.
  // 1–128 characters from [A-Za-z0-9._:-].
  std::string idempotency_key;
  // The payload (and sensitivity, occurred_at); the recorder fills the
  // rest of the envelope (id, source, subject, sequence, type, …).
  casebridge::events::v1::CaseEvent event;
};

// The derived events that `event` (the last of `history.events`) calls for,
// under the municipality's `load` limits.
std::vector<DerivedEvent> DeriveFromEvent(const CaseHistory& history,
                                          const casebridge::events::v1::CaseEvent& event,
                                          const casebridge::config::v1::LoadConfig& load);

// Whether `DeriveFromEvent` can derive anything from `event` at all, and
// whether it reads the case's history (beyond `event`) to do so. Reading a
// history costs time linear in the case's length, so the delivery processor
// reads it only for the events that need it: role events (open tasks change
// hands) and appointments scheduled or rescheduled by a system (load). A
// referral needs only itself; every other event derives nothing.
bool RulesMayDeriveFrom(const casebridge::events::v1::CaseEvent& event);
bool RulesReadHistoryFor(const casebridge::events::v1::CaseEvent& event);

// The watchdog alerts and overdue tasks due at `now` for the case. A
// watchdog whose threshold is 0 is off.
std::vector<DerivedEvent> CheckWatchdogs(const CaseHistory& history, absl::Time now,
                                         const casebridge::config::v1::WatchdogConfig& watchdogs);

// The case's tasks in their current state (folded from the task events of
// `history`), open ones first, then by due date.
std::vector<casebridge::events::v1::Task> CurrentTasks(const CaseHistory& history);

}  // namespace casebridge::coordination
