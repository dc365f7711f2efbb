// The case-system adapter: vendor-neutral access to one municipality's case
// system of one administration (job centre, social services, health). This is
// the interface a vendor implements to connect its system to casebridge. Each
// administration has its own factory that chooses the vendor in exactly one
// place (`NewJobCentreAdapter`, `NewSocialAdapter`, `NewHealthAdapter`), and
// each vendor lives in adapters/<system>/<vendor>/.
//
// The service calls the adapter first and publishes the case event only
// after the adapter returned OK, so the vendor system is the system of record
// and the event reports what it recorded.
//
// Idempotency. Every recording call carries the caller's idempotency key in
// `CallOptions`. An implementation must return the same result for a
// repeated key without recording anything twice (the service may retry after
// a failure to publish). The reference system stores the key with the record.
// A key reused for a different operation or a different case is
// kInvalidArgument; the service never passes an empty key.
//
// Deadlines. The service turns `CaseSystemAdapterConfig.call_timeout` (and
// the caller's gRPC deadline, whichever is earlier) into
// `CallOptions::deadline`; an adapter stops waiting for the vendor then. The
// service also enforces it, retries kUnavailable with the same key and keeps
// a circuit breaker, by wrapping every adapter in `NewResilientAdapter`
// (resilient_adapter.h).
//
// Errors. Every method returns one of these codes on failure, and only these:
//   kNotFound            the appointment, referral or record does not exist on
//                        this case
//   kInvalidArgument     the vendor rejects the content (caller's fault), e.g.
//                        an offer that is not in the system's catalogue
//   kFailedPrecondition  the vendor refuses the change in the record's
//                        current state (e.g. rescheduling a cancelled or
//                        withdrawn appointment, a referral step that does not
//                        follow the previous one)
//   kDeadlineExceeded    `CallOptions::deadline` passed
//   kUnavailable         transient: timeout, 5xx, throttling; safe to retry
//   kInternal            anything else; the message names the vendor's code
// Messages never contain personal data.
//
// Thread safety: implementations are safe for concurrent use.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "casebridge/events/v1/case_event.pb.h"

namespace casebridge {

// Per-call options, like leveldb's `ReadOptions`: no gRPC type reaches an
// adapter.
struct CallOptions {
  // The caller's idempotency key (never empty).
  std::string idempotency_key;
  // When the call must be finished. `absl::InfiniteFuture()` means no limit.
  absl::Time deadline = absl::InfiniteFuture();
};

// The citizen whose case a call is about.
struct Citizen {
  // The pseudonymous case key (always set).
  std::string subject;
  // The CPR number when the caller gave one; empty when the caller named the
  // case by its subject. Personal data: adapters pass it to the vendor
  // system only and never log it.
  std::string cpr;
};

// A change to a booked appointment.
struct AppointmentChange {
  std::string appointment_id;
  absl::Time start;
  absl::Time end;
  // A new location; empty keeps the old one.
  std::optional<casebridge::events::v1::Location> location;
  std::string reason;
};

class CaseSystemAdapter {
 public:
  virtual ~CaseSystemAdapter() = default;

  // Records `decision` on the citizen's case and returns the id the system
  // gave it. `decision.decision_id()` is empty on input. kInvalidArgument if
  // the offer is not in the system's catalogue.
  virtual absl::StatusOr<std::string> RecordDecision(
      const CallOptions& options, const Citizen& citizen,
      const casebridge::events::v1::Decision& decision) = 0;

  // Books `appointment` (status and id empty on input) and returns the id the
  // system gave it.
  virtual absl::StatusOr<std::string> BookAppointment(
      const CallOptions& options, const Citizen& citizen,
      const casebridge::events::v1::Appointment& appointment) = 0;

  // Moves a booked appointment. Returns the appointment as it is afterwards,
  // with status RESCHEDULED and `previous_start` set.
  virtual absl::StatusOr<casebridge::events::v1::Appointment> RescheduleAppointment(
      const CallOptions& options, const Citizen& citizen, const AppointmentChange& change) = 0;

  // Cancels a booked appointment. Returns it with status CANCELLED and
  // `reason` set.
  virtual absl::StatusOr<casebridge::events::v1::Appointment> CancelAppointment(
      const CallOptions& options, const Citizen& citizen, const std::string& appointment_id,
      const std::string& reason) = 0;

  // Records attendance (true) or a no-show (false). Returns the appointment
  // with status ATTENDED or NO_SHOW.
  virtual absl::StatusOr<casebridge::events::v1::Appointment> RecordAttendance(
      const CallOptions& options, const Citizen& citizen, const std::string& appointment_id,
      bool attended) = 0;

  // Records one step of a referral's status chain and returns the referral as
  // recorded: for `REFERRAL_STATUS_SENT` (`referral_id` empty on input) with
  // the id the system gave it; for every other step with the offer and units
  // the system knows filled in where the step left them empty, and for
  // `REFERRAL_STATUS_ESTIMATE_CHANGED` with `previous_estimated_start`.
  //
  // The sending system records SENT; the receiving system records RECEIVED
  // and every later step, and checks that each step follows the previous one
  // (kFailedPrecondition if not, kNotFound if the referral is unknown and the
  // step cannot start a referral). kInvalidArgument if a received referral's
  // offer is not in the receiving system's catalogue.
  virtual absl::StatusOr<casebridge::events::v1::Referral> RecordReferralStep(
      const CallOptions& options, const Citizen& citizen,
      const casebridge::events::v1::Referral& referral) = 0;

  // Withdraws the record an earlier event reported, by the id the system gave
  // it (the event's `record_id`): a decision, an appointment, or, for a
  // referral id, the referral's latest step in this system. A withdrawn
  // appointment can no longer be changed; a referral goes back to its
  // previous step. kNotFound if no such record exists on this case,
  // kFailedPrecondition if it is already withdrawn.
  virtual absl::Status CancelRecord(const CallOptions& options, const Citizen& citizen,
                                    const std::string& record_id) = 0;
};

}  // namespace casebridge
