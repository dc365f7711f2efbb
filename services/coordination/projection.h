// Consent and sensitivity: how much of a case event each recipient may
// receive.
//
// Every event carries a sensitivity. Whether a recipient receives it whole
// or as its minimal projection is decided per recipient, in this order:
//
//   1. ordinary content                                  → full ("ordinary")
//   2. the recipient holds the citizen role on the case  → full ("citizen")
//   3. the recipient belongs to the administration that
//      recorded the event (job centre, social, health)   → full
//                                                 ("own-administration")
//   4. a consent in force grants the recipient's
//      administration the event's sensitivity            → full ("consent")
//   5. otherwise                                          → minimal ("no-consent")
//
// An unspecified sensitivity is treated as confidential (fail closed).
//
// The minimal projection is built by copying an allow-list of fields into a
// new event, never by clearing fields from a copy, so a field added to the
// schema later is withheld until someone decides it may be shown. What it
// keeps, per event type, is documented in docs/consent.md: that something
// happened and when, never reasons, offers, places, names or free text.
#pragma once

#include <string>
#include <vector>

#include "casebridge/common/v1/common.pb.h"
#include "casebridge/coordination/v1/coordination_service.pb.h"
#include "casebridge/events/v1/case_event.pb.h"

namespace casebridge::coordination {

// How much of one event one recipient receives, and why.
struct DisclosureDecision {
  casebridge::coordination::v1::Disclosure disclosure =
      casebridge::coordination::v1::DISCLOSURE_MINIMAL;
  // "ordinary", "citizen", "own-administration", "consent" or "no-consent".
  std::string basis;
  // For "consent": every consent in force that covers it, oldest first.
  std::vector<std::string> consent_ids;

  bool operator==(const DisclosureDecision&) const = default;
};

// The administration whose system records events of `source`
// (unspecified for the coordination service itself).
casebridge::common::v1::Administration AdministrationOf(
    casebridge::events::v1::SourceSystem source);

// Decides how much of `event` a recipient of `administration` that holds
// `roles` on the case receives, given the case's consents in force
// (`consents`, oldest first; withdrawn ones must not be passed).
DisclosureDecision DecideDisclosure(const casebridge::events::v1::CaseEvent& event,
                                    casebridge::common::v1::Administration administration,
                                    const std::vector<casebridge::common::v1::Role>& roles,
                                    const std::vector<casebridge::events::v1::Consent>& consents);

// The minimal projection of `event` (the allow-list of docs/consent.md).
casebridge::events::v1::CaseEvent MinimalProjection(
    const casebridge::events::v1::CaseEvent& event);

// `event` as `decision` allows: whole, or its minimal projection.
casebridge::events::v1::CaseEvent Project(const casebridge::events::v1::CaseEvent& event,
                                          const DisclosureDecision& decision);

}  // namespace casebridge::coordination
