// Resilience for every vendor adapter: a decorator around any
// `CaseSystemAdapter` that
//
//  * enforces `CallOptions::deadline`: the caller stops waiting then, even
//    if the vendor adapter does not (kDeadlineExceeded, "… did not answer
//    within the call deadline"); the vendor call itself runs on a thread of
//    its own and its late answer is discarded;
//  * retries transient failures (kUnavailable) of idempotent operations with
//    capped exponential backoff and jitter, within the same deadline;
//  * keeps a circuit breaker per adapter: after `failure_threshold`
//    consecutive vendor failures (kUnavailable, kDeadlineExceeded, kInternal)
//    the circuit opens and every call fails at once with kUnavailable
//    ("job-centre system unavailable: circuit open, retry after 27s"); after
//    `open_duration` one probe call goes through (half-open): its success
//    closes the circuit, its failure opens it again.
//
// Which operations are idempotent. Every recording operation of
// `CaseSystemAdapter` carries the caller's idempotency key, and the
// interface's contract (case_system_adapter.h, adapters/common/README.md)
// requires the vendor adapter to return the first result for a repeated key
// without recording anything twice. So all six operations are idempotent and
// retried, unless the vendor's adapter cannot de-duplicate one: such
// operations are listed in `non_idempotent_operations` and never retried. A
// call without a key is never retried. kDeadlineExceeded is never retried
// (the deadline is the budget of all attempts), nor is anything the vendor
// answered deliberately (kNotFound, kInvalidArgument, kFailedPrecondition) or
// kInternal (not known to be transient).
//
// Example (what `CaseSystemApp` does):
//   ASSIGN_OR_RETURN(ResilienceOptions options,
//                    ResilienceOptionsFromConfig(config.adapter(), "job-centre system"));
//   std::unique_ptr<CaseSystemAdapter> adapter =
//       NewResilientAdapter(std::move(vendor_adapter), options);
//
// Thread safety: the decorator and `CircuitBreaker` are safe for concurrent
// use.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "adapters/common/case_system_adapter.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/clock.h"

namespace casebridge {

// The operation names used in `ResilienceOptions::non_idempotent_operations`
// and in messages: the method names of `CaseSystemAdapter`.
inline constexpr char kRecordDecision[] = "RecordDecision";
inline constexpr char kBookAppointment[] = "BookAppointment";
inline constexpr char kRescheduleAppointment[] = "RescheduleAppointment";
inline constexpr char kCancelAppointment[] = "CancelAppointment";
inline constexpr char kRecordAttendance[] = "RecordAttendance";
inline constexpr char kRecordReferralStep[] = "RecordReferralStep";
inline constexpr char kCancelRecord[] = "CancelRecord";

// The settings of the decorator. The defaults are those of
// `casebridge.config.v1.AdapterResilienceConfig`.
struct ResilienceOptions {
  // How messages name the vendor system, e.g. "job-centre system".
  std::string system_name = "case system";
  // Attempts per call, the first included (1: no retries).
  int max_attempts = 3;
  // The pause before the first retry; doubled per retry up to
  // `max_backoff`. Each pause is drawn from [backoff/2, backoff] (jitter).
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(1);
  // Consecutive vendor failures that open the circuit.
  int failure_threshold = 5;
  // How long the circuit stays open before one probe call is let through.
  absl::Duration open_duration = absl::Seconds(30);
  // Operations (names above) the vendor cannot de-duplicate by idempotency
  // key: never retried.
  std::set<std::string> non_idempotent_operations;
};

// Reads `config.resilience()` with the documented defaults. Returns
// kInvalidArgument naming the field ("adapter.resilience.max_attempts: …")
// if a value is out of range.
absl::StatusOr<ResilienceOptions> ResilienceOptionsFromConfig(
    const casebridge::config::v1::CaseSystemAdapterConfig& config, std::string system_name);

// A circuit breaker: closed → open after `failure_threshold` consecutive
// failures → half-open after `open_duration` (exactly one probe admitted) →
// closed on the probe's success, open again on its failure.
class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };

  // `clock` must outlive the breaker.
  CircuitBreaker(int failure_threshold, absl::Duration open_duration, Clock& clock);

  // Asks to make a call. Returns nullopt if it may go ahead (the circuit is
  // closed, or this is the half-open probe); otherwise the earliest time a
  // call may be tried again. Every admitted call must report its outcome
  // with `OnSuccess` or `OnFailure`.
  std::optional<absl::Time> Admit();
  // The vendor answered (whatever it said).
  void OnSuccess();
  // The vendor failed (unreachable, timed out, internal error).
  void OnFailure();

  State state() const;

 private:
  const int failure_threshold_;
  const absl::Duration open_duration_;
  Clock& clock_;
  mutable std::mutex mu_;
  State state_ = State::kClosed;
  int consecutive_failures_ = 0;
  absl::Time open_until_ = absl::InfinitePast();
  bool probe_in_flight_ = false;
};

// Pauses the calling thread; injectable so that tests advance a FakeClock
// instead of sleeping.
using Sleeper = std::function<void(absl::Duration)>;

// Returns `inner` wrapped in deadlines, retries and a circuit breaker.
// `clock` (the time deadlines and the breaker are measured against) must
// outlive the result. `sleep` pauses between retries (default: really
// sleep); `random` returns a number in [0, 1) for the jitter (default: a
// per-thread PRNG).
std::unique_ptr<CaseSystemAdapter> NewResilientAdapter(
    std::shared_ptr<CaseSystemAdapter> inner, ResilienceOptions options,
    Clock& clock = RealClock(), Sleeper sleep = nullptr, std::function<double()> random = nullptr);

}  // namespace casebridge
