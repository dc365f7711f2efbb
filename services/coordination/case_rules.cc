#include "services/coordination/case_rules.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "services/common/event_ids.h"
#include "services/common/proto_time.h"

namespace casebridge::coordination {
namespace {

using casebridge::common::v1::Role;
using casebridge::config::v1::LoadConfig;
using casebridge::config::v1::WatchdogConfig;
using casebridge::events::v1::Appointment;
using casebridge::events::v1::CaseEvent;
using casebridge::events::v1::LoadWarning;
using casebridge::events::v1::Referral;
using casebridge::events::v1::ReplanningFlag;
using casebridge::events::v1::Sensitivity;
using casebridge::events::v1::Supersession;
using casebridge::events::v1::Task;
using casebridge::events::v1::TaskState;
using casebridge::events::v1::WatchdogAlert;

namespace ev = casebridge::events::v1;

constexpr int kDefaultFollowUpWindowDays = 365;
constexpr size_t kMaxKeyLength = 128;

// ---------------------------------------------------------------------------
// Idempotency keys.

bool IsKeyChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

bool IsValidKey(const std::string& key) {
  return !key.empty() && key.size() <= kMaxKeyLength && std::all_of(key.begin(), key.end(), IsKeyChar);
}

// Joins `prefix` and `parts` with ':'. Parts come from other systems
// (referral, appointment and task ids); if they make the key too long or
// carry characters keys may not hold, the parts are replaced by a stable
// digest of the whole key, so the key still names exactly one situation.
std::string MakeKey(const std::string& prefix, const std::vector<std::string>& parts) {
  std::string key = absl::StrCat(prefix, ":", absl::StrJoin(parts, ":"));
  if (IsValidKey(key)) return key;
  // EventIdFor is a name-based UUID (SHA-256): deterministic across
  // processes and restarts, unlike std::hash or absl::Hash.
  return absl::StrCat(prefix, ":digest:", EventIdFor("casebridge/case-rules/key", key));
}

std::string Seconds(absl::Time time) { return absl::StrCat(absl::ToUnixSeconds(time)); }

// ---------------------------------------------------------------------------
// The effective history.

// The events of `history` plus `trigger` (if it is not already the last),
// as consumers should read them (Supersession): a cancelled event and the
// cancellation drop out; a corrected event is replaced, at its own position,
// by its newest correction. A correction of an event not in the history
// stays where it is.
std::vector<const CaseEvent*> EffectiveEvents(const CaseHistory& history, const CaseEvent* trigger) {
  std::vector<const CaseEvent*> all;
  all.reserve(history.events.size() + 1);
  for (const CaseEvent& event : history.events) all.push_back(&event);
  if (trigger != nullptr && (all.empty() || all.back()->id() != trigger->id())) {
    all.push_back(trigger);
  }

  std::set<std::string> ids;
  for (const CaseEvent* event : all) ids.insert(event->id());
  // Superseded event id → the event that supersedes it (the newest one).
  std::map<std::string, const CaseEvent*> superseded_by;
  for (const CaseEvent* event : all) {
    if (!event->has_supersedes() || event->supersedes().event_id().empty()) continue;
    if (ids.count(event->supersedes().event_id()) == 0) continue;
    superseded_by[event->supersedes().event_id()] = event;
  }

  std::vector<const CaseEvent*> effective;
  effective.reserve(all.size());
  for (const CaseEvent* event : all) {
    const bool supersedes_known =
        event->has_supersedes() && ids.count(event->supersedes().event_id()) > 0;
    if (supersedes_known) continue;  // shown at the position of what it supersedes
    const CaseEvent* current = event;
    // Follow corrections of corrections; a cycle cannot occur in a real
    // history, but bound the walk anyway.
    for (size_t step = 0; step < all.size(); ++step) {
      auto next = superseded_by.find(current->id());
      if (next == superseded_by.end()) break;
      current = next->second;
    }
    if (current->supersedes().kind() == Supersession::KIND_CANCELLATION ||
        current->payload_case() == CaseEvent::PAYLOAD_NOT_SET) {
      continue;
    }
    effective.push_back(current);
  }
  return effective;
}

absl::Time OccurredAt(const CaseEvent& event) { return ToAbslTime(event.occurred_at()); }

// When the course began: the earliest event of the case.
std::optional<absl::Time> CourseStart(const CaseHistory& history) {
  std::optional<absl::Time> first;
  for (const CaseEvent& event : history.events) {
    const absl::Time at = OccurredAt(event);
    if (!first.has_value() || at < *first) first = at;
  }
  return first;
}

// The more sensitive of two levels (by the enum's order: ordinary <
// confidential < the special categories).
Sensitivity MoreSensitive(Sensitivity a, Sensitivity b) { return a >= b ? a : b; }

Sensitivity OrOrdinary(Sensitivity sensitivity) {
  return sensitivity == ev::SENSITIVITY_UNSPECIFIED ? ev::SENSITIVITY_ORDINARY : sensitivity;
}

// ---------------------------------------------------------------------------
// Appointments.

// One appointment of the case in its latest state.
struct FoldedAppointment {
  std::string source;
  Appointment appointment;  // fields merged over its events
  const CaseEvent* latest = nullptr;

  bool active() const { return appointment.status() != ev::APPOINTMENT_STATUS_CANCELLED; }
  absl::Time start() const { return ToAbslTime(appointment.start()); }
  absl::Time end() const { return ToAbslTime(appointment.end()); }
};

using AppointmentKey = std::pair<std::string, std::string>;  // (source, appointment_id)

// The appointments of the case, by (source, appointment id), in their latest
// state. A later event that omits times (attended, no-show) keeps the
// earlier times.
std::map<AppointmentKey, FoldedAppointment> FoldAppointments(
    const std::vector<const CaseEvent*>& events) {
  std::map<AppointmentKey, FoldedAppointment> folded;
  for (const CaseEvent* event : events) {
    if (!event->has_appointment()) continue;
    const Appointment& update = event->appointment();
    FoldedAppointment& entry = folded[{event->source(), update.appointment_id()}];
    entry.source = event->source();
    entry.latest = event;
    Appointment& merged = entry.appointment;
    merged.set_appointment_id(update.appointment_id());
    merged.set_status(update.status());
    if (update.kind() != ev::APPOINTMENT_KIND_UNSPECIFIED) merged.set_kind(update.kind());
    if (update.has_start()) *merged.mutable_start() = update.start();
    if (update.has_end()) *merged.mutable_end() = update.end();
  }
  return folded;
}

bool Overlap(const FoldedAppointment& a, const FoldedAppointment& b) {
  return a.start() < b.end() && b.start() < a.end();
}

// The name of an appointment in a key: its id, qualified by its source when
// another source uses the same id on this case (reference systems all number
// "A-000001", …), so two warnings never share a key.
std::string KeyName(const FoldedAppointment& appointment,
                    const std::map<AppointmentKey, FoldedAppointment>& all) {
  int sources_with_id = 0;
  for (const auto& [key, other] : all) {
    if (key.second == appointment.appointment.appointment_id()) ++sources_with_id;
  }
  if (sources_with_id <= 1) return appointment.appointment.appointment_id();
  std::string source = appointment.source;
  const std::string kPrefix = "/casebridge/";
  if (source.rfind(kPrefix, 0) == 0) source = source.substr(kPrefix.size());
  std::replace(source.begin(), source.end(), '/', '.');
  return absl::StrCat(source, ".", appointment.appointment.appointment_id());
}

// Adds the roles that booked `appointments` to `warning` (first seen first,
// without duplicates or ROLE_UNSPECIFIED) and returns the most sensitive
// level among their events.
Sensitivity AddBookers(const std::vector<const FoldedAppointment*>& appointments,
                       LoadWarning& warning) {
  Sensitivity sensitivity = ev::SENSITIVITY_ORDINARY;
  std::set<int> seen;
  for (const FoldedAppointment* appointment : appointments) {
    warning.add_appointment_ids(appointment->appointment.appointment_id());
    warning.add_appointment_event_ids(appointment->latest->id());
    sensitivity = MoreSensitive(sensitivity, appointment->latest->sensitivity());
    const Role role = appointment->latest->actor().role();
    if (role == casebridge::common::v1::ROLE_UNSPECIFIED) continue;
    if (seen.insert(role).second) warning.add_notify_roles(role);
  }
  return sensitivity;
}

absl::Time DayOf(absl::Time time) {
  return absl::FromCivil(absl::ToCivilDay(time, absl::UTCTimeZone()), absl::UTCTimeZone());
}

// Load warnings for an appointment event that books or moves an appointment.
void DeriveLoad(const CaseHistory& history, const CaseEvent& event, const LoadConfig& load,
                std::vector<DerivedEvent>& out) {
  const std::map<AppointmentKey, FoldedAppointment> folded =
      FoldAppointments(EffectiveEvents(history, &event));
  auto found = folded.find({event.source(), event.appointment().appointment_id()});
  if (found == folded.end() || !found->second.active()) return;
  const FoldedAppointment& moved = found->second;

  // Double bookings: one warning per active appointment it overlaps.
  for (const auto& [key, other] : folded) {
    if (&other == &moved || !other.active() || !Overlap(moved, other)) continue;
    DerivedEvent derived;
    *derived.event.mutable_occurred_at() = event.occurred_at();
    LoadWarning& warning = *derived.event.mutable_load_warning();
    warning.set_kind(ev::LOAD_WARNING_KIND_DOUBLE_BOOKING);
    derived.event.set_sensitivity(AddBookers({&moved, &other}, warning));
    *warning.mutable_day() = ToProtoTimestamp(DayOf(std::max(moved.start(), other.start())));
    std::string a = KeyName(moved, folded);
    std::string b = KeyName(other, folded);
    if (b < a) std::swap(a, b);
    derived.idempotency_key = MakeKey("load:double", {a, b, event.id()});
    out.push_back(std::move(derived));
  }

  // Too many activities on the day it starts.
  if (load.max_activities_per_day() <= 0) return;
  const absl::Time day = DayOf(moved.start());
  std::vector<const FoldedAppointment*> that_day;
  for (const auto& [key, appointment] : folded) {
    if (appointment.active() && DayOf(appointment.start()) == day) that_day.push_back(&appointment);
  }
  if (static_cast<int64_t>(that_day.size()) <= load.max_activities_per_day()) return;
  std::stable_sort(that_day.begin(), that_day.end(),
                   [](const FoldedAppointment* x, const FoldedAppointment* y) {
                     return x->start() < y->start();
                   });
  DerivedEvent derived;
  *derived.event.mutable_occurred_at() = event.occurred_at();
  LoadWarning& warning = *derived.event.mutable_load_warning();
  warning.set_kind(ev::LOAD_WARNING_KIND_TOO_MANY_ACTIVITIES);
  derived.event.set_sensitivity(AddBookers(that_day, warning));
  *warning.mutable_day() = ToProtoTimestamp(day);
  warning.set_activities(static_cast<int32_t>(that_day.size()));
  warning.set_limit(load.max_activities_per_day());
  derived.idempotency_key = MakeKey(
      "load:day", {absl::FormatTime("%Y-%m-%d", day, absl::UTCTimeZone()), event.id()});
  out.push_back(std::move(derived));
}

// ---------------------------------------------------------------------------
// Re-planning.

void DeriveReplanning(const CaseEvent& event, std::vector<DerivedEvent>& out) {
  const Referral& referral = event.referral();
  const bool refused = referral.status() == ev::REFERRAL_STATUS_REFUSED;
  const bool out_of_target_group =
      referral.status() == ev::REFERRAL_STATUS_ASSESSED && !referral.assessment().in_target_group();
  if (!refused && !out_of_target_group) return;

  DerivedEvent derived;
  derived.event.set_sensitivity(event.sensitivity());
  *derived.event.mutable_occurred_at() = event.occurred_at();
  ReplanningFlag& flag = *derived.event.mutable_replanning();
  flag.set_referral_id(referral.referral_id());
  flag.set_trigger_event_id(event.id());
  // A refusal gives its reasons on the referral; fall back to the
  // assessment's if it gave none there.
  *flag.mutable_reasons() = refused && !referral.reasons().empty() ? referral.reasons()
                                                                   : referral.assessment().reasons();
  *flag.mutable_alternatives() = referral.assessment().alternatives();
  derived.idempotency_key = MakeKey("replan", {event.id()});
  out.push_back(std::move(derived));
}

// ---------------------------------------------------------------------------
// Tasks.

struct FoldedTask {
  Task task;
  Sensitivity sensitivity = ev::SENSITIVITY_UNSPECIFIED;
};

bool IsOpen(TaskState state) {
  return state == ev::TASK_STATE_OPEN || state == ev::TASK_STATE_HANDED_OVER ||
         state == ev::TASK_STATE_OVERDUE;
}

// The tasks of the case in their current state, in the order `CurrentTasks`
// promises.
std::vector<FoldedTask> FoldTasks(const std::vector<const CaseEvent*>& events) {
  std::map<std::string, FoldedTask> by_id;
  for (const CaseEvent* event : events) {
    if (!event->has_task()) continue;
    const Task& update = event->task();
    FoldedTask& entry = by_id[update.task_id()];
    Task& task = entry.task;
    const bool completed = task.state() == ev::TASK_STATE_COMPLETED;
    // Completion is final: a late overdue or handover changes nothing.
    if (completed && update.state() != ev::TASK_STATE_OPEN) continue;
    if (update.state() == ev::TASK_STATE_UNSPECIFIED) continue;
    task.set_task_id(update.task_id());
    task.set_state(update.state());
    if (!update.title().empty()) task.set_title(update.title());
    if (update.owner_role() != casebridge::common::v1::ROLE_UNSPECIFIED) {
      task.set_owner_role(update.owner_role());
    }
    if (!update.owner_recipient().empty()) task.set_owner_recipient(update.owner_recipient());
    if (update.has_due()) *task.mutable_due() = update.due();
    entry.sensitivity = event->sensitivity();
  }

  std::vector<FoldedTask> tasks;
  tasks.reserve(by_id.size());
  for (auto& [id, entry] : by_id) tasks.push_back(std::move(entry));
  // Open first; then by due date, tasks without one last; then by id.
  auto order = [](const FoldedTask& folded) {
    const Task& task = folded.task;
    return std::make_tuple(!IsOpen(task.state()), !task.has_due(), task.due().seconds(),
                           task.due().nanos(), task.task_id());
  };
  std::sort(tasks.begin(), tasks.end(),
            [&](const FoldedTask& a, const FoldedTask& b) { return order(a) < order(b); });
  return tasks;
}

// Who holds `role` after the events before `until_id` — the recipient and
// the named holder (the coordination store's rules: an assignment replaces
// the holder; a release clears it only if it names the holder). Empty if
// nobody holds it.
struct Holder {
  std::string recipient;
  std::string name;
  bool operator==(const Holder&) const = default;
};

Holder HolderBefore(const CaseHistory& history, Role role, const std::string& until_id) {
  Holder holder;
  for (const CaseEvent& event : history.events) {
    if (event.id() == until_id) break;
    if (!event.has_role_assignment() || event.role_assignment().role() != role) continue;
    const auto& assignment = event.role_assignment();
    if (!assignment.released()) {
      holder = Holder{assignment.recipient(), assignment.holder_name()};
    } else if (assignment.recipient() == holder.recipient) {
      holder = Holder{};
    }
  }
  return holder;
}

// A new holder of a role takes its open tasks: a new recipient, or a new
// person at the same recipient (a new coordinating caseworker in the same
// job centre is the common case).
void DeriveHandovers(const CaseHistory& history, const CaseEvent& event,
                     std::vector<DerivedEvent>& out) {
  const auto& assignment = event.role_assignment();
  if (assignment.released()) return;  // the tasks stay with the role until a new holder
  const Holder previous = HolderBefore(history, assignment.role(), event.id());
  if (previous == Holder{assignment.recipient(), assignment.holder_name()}) return;

  for (const FoldedTask& folded : FoldTasks(EffectiveEvents(history, &event))) {
    const Task& task = folded.task;
    if (!IsOpen(task.state()) || task.owner_role() != assignment.role()) continue;
    // Already with this recipient and this person (e.g. re-assigned after a
    // release): nothing to hand over.
    if (task.owner_recipient() == assignment.recipient() &&
        previous.name == assignment.holder_name()) {
      continue;
    }
    DerivedEvent derived;
    derived.event.set_sensitivity(OrOrdinary(folded.sensitivity));
    *derived.event.mutable_occurred_at() = event.occurred_at();
    Task& handed = *derived.event.mutable_task();
    handed = task;
    handed.set_state(ev::TASK_STATE_HANDED_OVER);
    handed.set_owner_recipient(assignment.recipient());
    derived.idempotency_key = MakeKey("task-handover", {task.task_id(), event.id()});
    out.push_back(std::move(derived));
  }
}

// ---------------------------------------------------------------------------
// Watchdogs.

DerivedEvent Alert(absl::Time now, const WatchdogAlert& alert, std::string key) {
  DerivedEvent derived;
  derived.idempotency_key = std::move(key);
  derived.event.set_sensitivity(ev::SENSITIVITY_ORDINARY);
  *derived.event.mutable_occurred_at() = ToProtoTimestamp(now);
  *derived.event.mutable_watchdog_alert() = alert;
  return derived;
}

// What the watchdogs need to know of one referral.
struct ReferralWatch {
  std::string referral_id;
  // When the ack clock last started (sent or forwarded); unset if never.
  std::optional<absl::Time> awaiting_ack_since;
  // The latest step.
  const CaseEvent* latest = nullptr;
};

std::vector<ReferralWatch> FoldReferrals(const std::vector<const CaseEvent*>& events) {
  std::vector<ReferralWatch> referrals;  // in order of first appearance
  std::map<std::string, size_t> index;
  for (const CaseEvent* event : events) {
    if (!event->has_referral()) continue;
    const Referral& referral = event->referral();
    auto [it, inserted] = index.emplace(referral.referral_id(), referrals.size());
    if (inserted) referrals.push_back(ReferralWatch{referral.referral_id(), std::nullopt, nullptr});
    ReferralWatch& watch = referrals[it->second];
    watch.latest = event;
    switch (referral.status()) {
      case ev::REFERRAL_STATUS_SENT:
      case ev::REFERRAL_STATUS_FORWARDED:
        watch.awaiting_ack_since = OccurredAt(*event);
        break;
      case ev::REFERRAL_STATUS_UNSPECIFIED:
        break;
      default:
        // Received, or any later step the receiving unit took (assessed,
        // refused, waitlisted, …): it has the referral.
        watch.awaiting_ack_since.reset();
        break;
    }
  }
  return referrals;
}

void CheckReferrals(const std::vector<const CaseEvent*>& events, absl::Time now,
                    const WatchdogConfig& watchdogs, std::vector<DerivedEvent>& out) {
  for (const ReferralWatch& watch : FoldReferrals(events)) {
    const int ack_days = watchdogs.referral_ack_days();
    if (ack_days > 0 && watch.awaiting_ack_since.has_value() &&
        now - *watch.awaiting_ack_since > absl::Hours(24) * ack_days) {
      WatchdogAlert alert;
      alert.set_kind(ev::WATCHDOG_KIND_REFERRAL_NOT_ACKNOWLEDGED);
      alert.set_referral_id(watch.referral_id);
      *alert.mutable_since() = ToProtoTimestamp(*watch.awaiting_ack_since);
      alert.set_threshold_days(ack_days);
      out.push_back(Alert(now, alert,
                          MakeKey("watchdog:ack",
                                  {watch.referral_id, Seconds(*watch.awaiting_ack_since)})));
    }

    const int waitlist_days = watchdogs.waitlist_without_estimate_days();
    const Referral& latest = watch.latest->referral();
    const bool waiting_without_estimate =
        (latest.status() == ev::REFERRAL_STATUS_WAITLISTED ||
         latest.status() == ev::REFERRAL_STATUS_ESTIMATE_CHANGED) &&
        !latest.has_estimated_start();
    if (waitlist_days > 0 && waiting_without_estimate &&
        now - OccurredAt(*watch.latest) > absl::Hours(24) * waitlist_days) {
      WatchdogAlert alert;
      alert.set_kind(ev::WATCHDOG_KIND_WAITLIST_WITHOUT_ESTIMATE);
      alert.set_referral_id(watch.referral_id);
      *alert.mutable_since() = watch.latest->occurred_at();
      alert.set_threshold_days(waitlist_days);
      out.push_back(
          Alert(now, alert, MakeKey("watchdog:waitlist", {watch.referral_id, watch.latest->id()})));
    }
  }
}

void CheckFollowUps(const CaseHistory& history, const std::vector<const CaseEvent*>& events,
                    absl::Time now, const WatchdogConfig& watchdogs,
                    std::vector<DerivedEvent>& out) {
  if (watchdogs.min_follow_ups() <= 0) return;
  const int window_days = watchdogs.follow_up_window_days() > 0 ? watchdogs.follow_up_window_days()
                                                                : kDefaultFollowUpWindowDays;
  const absl::Duration window = absl::Hours(24) * window_days;
  const std::optional<absl::Time> course_start = CourseStart(history);
  // Only a course that has lasted a whole window can have missed follow-ups
  // in it.
  if (!course_start.has_value() || now - *course_start <= window) return;

  int count = 0;
  for (const auto& [key, appointment] : FoldAppointments(events)) {
    if (!appointment.active() ||
        appointment.appointment.kind() != ev::APPOINTMENT_KIND_FOLLOW_UP_CONVERSATION) {
      continue;
    }
    if (appointment.start() > now - window && appointment.start() <= now) ++count;
  }
  if (count >= watchdogs.min_follow_ups()) return;

  WatchdogAlert alert;
  alert.set_kind(ev::WATCHDOG_KIND_TOO_FEW_FOLLOW_UPS);
  *alert.mutable_since() = ToProtoTimestamp(now - window);
  alert.set_count(count);
  alert.set_required(watchdogs.min_follow_ups());
  alert.set_threshold_days(window_days);
  out.push_back(Alert(now, alert,
                      MakeKey("watchdog:followups",
                              {history.subject, absl::FormatTime("%Y-%m", now, absl::UTCTimeZone())})));
}

void CheckContact(const CaseHistory& history, const std::vector<const CaseEvent*>& events,
                  absl::Time now, const WatchdogConfig& watchdogs, std::vector<DerivedEvent>& out) {
  if (watchdogs.no_contact_days() <= 0) return;
  std::optional<absl::Time> last_contact;
  for (const CaseEvent* event : events) {
    if (!event->has_appointment() ||
        event->appointment().status() != ev::APPOINTMENT_STATUS_ATTENDED) {
      continue;
    }
    if (!last_contact.has_value() || OccurredAt(*event) > *last_contact) {
      last_contact = OccurredAt(*event);
    }
  }
  if (!last_contact.has_value()) last_contact = CourseStart(history);
  if (!last_contact.has_value()) return;
  if (now - *last_contact <= absl::Hours(24) * watchdogs.no_contact_days()) return;

  WatchdogAlert alert;
  alert.set_kind(ev::WATCHDOG_KIND_NO_CONTACT);
  *alert.mutable_since() = ToProtoTimestamp(*last_contact);
  alert.set_threshold_days(watchdogs.no_contact_days());
  // The subject is part of the key: recorder keys are unique across cases,
  // and two cases can share a last-contact second.
  out.push_back(
      Alert(now, alert, MakeKey("watchdog:contact", {history.subject, Seconds(*last_contact)})));
}

void CheckOverdueTasks(const std::vector<const CaseEvent*>& events, absl::Time now,
                       std::vector<DerivedEvent>& out) {
  for (const FoldedTask& folded : FoldTasks(events)) {
    const Task& task = folded.task;
    if (task.state() != ev::TASK_STATE_OPEN && task.state() != ev::TASK_STATE_HANDED_OVER) continue;
    if (!task.has_due() || !(ToAbslTime(task.due()) < now)) continue;
    DerivedEvent derived;
    derived.idempotency_key = MakeKey("task-overdue", {task.task_id()});
    // A task carries its title, so it keeps the sensitivity it was
    // recorded with.
    derived.event.set_sensitivity(OrOrdinary(folded.sensitivity));
    *derived.event.mutable_occurred_at() = ToProtoTimestamp(now);
    *derived.event.mutable_task() = task;
    derived.event.mutable_task()->set_state(ev::TASK_STATE_OVERDUE);
    out.push_back(std::move(derived));
  }
}

}  // namespace

std::vector<DerivedEvent> DeriveFromEvent(const CaseHistory& history, const CaseEvent& event,
                                          const LoadConfig& load) {
  std::vector<DerivedEvent> derived;
  if (event.has_role_assignment()) {
    DeriveHandovers(history, event, derived);
    return derived;
  }
  // The coordination service's own events (tasks, watchdogs, warnings) call
  // for nothing: reacting to them would loop.
  if (event.source_system() == ev::SOURCE_SYSTEM_COORDINATION) return derived;

  if (event.has_referral()) {
    DeriveReplanning(event, derived);
  } else if (event.has_appointment() &&
             (event.appointment().status() == ev::APPOINTMENT_STATUS_SCHEDULED ||
              event.appointment().status() == ev::APPOINTMENT_STATUS_RESCHEDULED)) {
    DeriveLoad(history, event, load, derived);
  }
  return derived;
}

bool RulesReadHistoryFor(const CaseEvent& event) {
  if (event.has_role_assignment()) return true;
  if (event.source_system() == ev::SOURCE_SYSTEM_COORDINATION) return false;
  return event.has_appointment() &&
         (event.appointment().status() == ev::APPOINTMENT_STATUS_SCHEDULED ||
          event.appointment().status() == ev::APPOINTMENT_STATUS_RESCHEDULED);
}

bool RulesMayDeriveFrom(const CaseEvent& event) {
  if (RulesReadHistoryFor(event)) return true;
  return event.source_system() != ev::SOURCE_SYSTEM_COORDINATION && event.has_referral();
}

std::vector<DerivedEvent> CheckWatchdogs(const CaseHistory& history, absl::Time now,
                                         const WatchdogConfig& watchdogs) {
  const std::vector<const CaseEvent*> events = EffectiveEvents(history, nullptr);
  std::vector<DerivedEvent> derived;
  CheckReferrals(events, now, watchdogs, derived);
  CheckFollowUps(history, events, now, watchdogs, derived);
  CheckContact(history, events, now, watchdogs, derived);
  CheckOverdueTasks(events, now, derived);
  return derived;
}

std::vector<Task> CurrentTasks(const CaseHistory& history) {
  std::vector<Task> tasks;
  for (FoldedTask& folded : FoldTasks(EffectiveEvents(history, nullptr))) {
    tasks.push_back(std::move(folded.task));
  }
  return tasks;
}

}  // namespace casebridge::coordination
