// Identity and naming of case events: deterministic event ids and the
// CloudEvents `type` of each payload (the catalogue in docs/events.md).
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "casebridge/events/v1/case_event.pb.h"

namespace casebridge {

// Returns a UUID (RFC 9562 version 8, name-based on SHA-256) for the event
// that `source` records under the caller's `idempotency_key`. The same pair
// always gives the same id, so a retried call can never yield two events
// with different ids (CloudEvents: `source` + `id` identify an event).
std::string EventIdFor(absl::string_view source, absl::string_view idempotency_key);

// Returns the CloudEvents `source` of a system in a municipality:
// "/casebridge/<system>/<municipality>".
std::string EventSource(absl::string_view system, absl::string_view municipality);

// Returns the CloudEvents `type` for `event`'s payload and state, e.g.
// "dk.casebridge.decision.refused.v1", "dk.casebridge.appointment.no-show.v1",
// "dk.casebridge.role.assigned.v1", "dk.casebridge.task.overdue.v1",
// "dk.casebridge.watchdog.no-contact.v1", "dk.casebridge.load.double-booking.v1",
// "dk.casebridge.plan.replanning-needed.v1"; "dk.casebridge.event.cancelled.v1"
// for a cancellation without payload. Returns "" if the payload's state is
// unspecified.
std::string EventTypeFor(const casebridge::events::v1::CaseEvent& event);

}  // namespace casebridge
