#include "adapters/common/resilient_adapter.h"

#include <algorithm>
#include <cmath>
#include <future>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"

namespace casebridge {
namespace {

using casebridge::events::v1::Appointment;
using casebridge::events::v1::Decision;
using casebridge::events::v1::Referral;

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// The vendor failed, as opposed to answering (even with an error that is
// the caller's fault).
bool IsVendorFailure(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kInternal:
      return true;
    default:
      return false;
  }
}

// Whole seconds, rounded up, at least 1: "retry after 27s".
std::string RetryAfter(absl::Duration d) {
  const int64_t seconds = std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(d, absl::Seconds(1))));
  return absl::StrCat(seconds, "s");
}

double DefaultRandom() {
  thread_local std::minstd_rand generator(std::random_device{}());
  return std::uniform_real_distribution<double>(0.0, 1.0)(generator);
}

class ResilientAdapter final : public CaseSystemAdapter {
 public:
  ResilientAdapter(std::shared_ptr<CaseSystemAdapter> inner, ResilienceOptions options,
                   Clock& clock, Sleeper sleep, std::function<double()> random)
      : inner_(std::move(inner)),
        options_(std::move(options)),
        clock_(clock),
        sleep_(sleep ? std::move(sleep) : [](absl::Duration d) { absl::SleepFor(d); }),
        random_(random ? std::move(random) : DefaultRandom),
        breaker_(options_.failure_threshold, options_.open_duration, clock) {}

  absl::StatusOr<std::string> RecordDecision(const CallOptions& options, const Citizen& citizen,
                                             const Decision& decision) override {
    return Run<std::string>(kRecordDecision, options,
                            [citizen, decision](CaseSystemAdapter& a, const CallOptions& o) {
                              return a.RecordDecision(o, citizen, decision);
                            });
  }
  absl::StatusOr<std::string> BookAppointment(const CallOptions& options, const Citizen& citizen,
                                              const Appointment& appointment) override {
    return Run<std::string>(kBookAppointment, options,
                            [citizen, appointment](CaseSystemAdapter& a, const CallOptions& o) {
                              return a.BookAppointment(o, citizen, appointment);
                            });
  }
  absl::StatusOr<Appointment> RescheduleAppointment(const CallOptions& options,
                                                    const Citizen& citizen,
                                                    const AppointmentChange& change) override {
    return Run<Appointment>(kRescheduleAppointment, options,
                            [citizen, change](CaseSystemAdapter& a, const CallOptions& o) {
                              return a.RescheduleAppointment(o, citizen, change);
                            });
  }
  absl::StatusOr<Appointment> CancelAppointment(const CallOptions& options, const Citizen& citizen,
                                                const std::string& appointment_id,
                                                const std::string& reason) override {
    return Run<Appointment>(
        kCancelAppointment, options,
        [citizen, appointment_id, reason](CaseSystemAdapter& a, const CallOptions& o) {
          return a.CancelAppointment(o, citizen, appointment_id, reason);
        });
  }
  absl::StatusOr<Appointment> RecordAttendance(const CallOptions& options, const Citizen& citizen,
                                               const std::string& appointment_id,
                                               bool attended) override {
    return Run<Appointment>(
        kRecordAttendance, options,
        [citizen, appointment_id, attended](CaseSystemAdapter& a, const CallOptions& o) {
          return a.RecordAttendance(o, citizen, appointment_id, attended);
        });
  }
  absl::StatusOr<Referral> RecordReferralStep(const CallOptions& options, const Citizen& citizen,
                                              const Referral& referral) override {
    return Run<Referral>(kRecordReferralStep, options,
                         [citizen, referral](CaseSystemAdapter& a, const CallOptions& o) {
                           return a.RecordReferralStep(o, citizen, referral);
                         });
  }
  absl::Status CancelRecord(const CallOptions& options, const Citizen& citizen,
                            const std::string& record_id) override {
    absl::StatusOr<bool> done =
        Run<bool>(kCancelRecord, options,
                  [citizen, record_id](CaseSystemAdapter& a,
                                       const CallOptions& o) -> absl::StatusOr<bool> {
                    absl::Status status = a.CancelRecord(o, citizen, record_id);
                    if (!status.ok()) return status;
                    return true;
                  });
    return done.status();
  }

 private:
  // One vendor call with everything it needs, by value: it may outlive the
  // caller's wait when the vendor hangs.
  template <typename T>
  using Call = std::function<absl::StatusOr<T>(CaseSystemAdapter&, const CallOptions&)>;

  template <typename T>
  absl::StatusOr<T> Run(const char* operation, const CallOptions& options, Call<T> call) {
    const bool idempotent = !options.idempotency_key.empty() &&
                            !options_.non_idempotent_operations.contains(operation);
    absl::Duration backoff = options_.initial_backoff;
    for (int attempt = 1;; ++attempt) {
      if (std::optional<absl::Time> retry_at = breaker_.Admit(); retry_at.has_value()) {
        return absl::UnavailableError(
            absl::StrCat(options_.system_name, " unavailable: circuit open, retry after ",
                         RetryAfter(*retry_at - clock_.Now())));
      }
      absl::StatusOr<T> result = WithDeadline<T>(options, call);
      if (IsVendorFailure(result.status())) {
        breaker_.OnFailure();
      } else {
        breaker_.OnSuccess();
      }
      if (result.ok() || !idempotent || attempt >= options_.max_attempts ||
          result.status().code() != absl::StatusCode::kUnavailable) {
        return result;
      }
      // A pause drawn from [backoff/2, backoff] ("equal jitter"): spreads
      // the retries of many callers that failed together.
      const absl::Duration pause = backoff / 2 + (backoff / 2) * random_();
      if (clock_.Now() + pause >= options.deadline) return result;
      sleep_(pause);
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
  }

  // Runs `call` and waits for it until `options.deadline` at most.
  template <typename T>
  absl::StatusOr<T> WithDeadline(const CallOptions& options, const Call<T>& call) {
    if (options.deadline == absl::InfiniteFuture()) return call(*inner_, options);
    const absl::Duration remaining = options.deadline - clock_.Now();
    if (remaining <= absl::ZeroDuration()) return DeadlinePassed();
    auto promise = std::make_shared<std::promise<absl::StatusOr<T>>>();
    std::future<absl::StatusOr<T>> future = promise->get_future();
    // The thread owns what it uses (the adapter too), so a vendor that hangs
    // past the deadline touches nothing of the caller's.
    std::thread([inner = inner_, promise, options, call] {
      promise->set_value(call(*inner, options));
    }).detach();
    if (future.wait_for(absl::ToChronoNanoseconds(remaining)) != std::future_status::ready) {
      return DeadlinePassed();
    }
    return future.get();
  }

  absl::Status DeadlinePassed() const {
    return absl::DeadlineExceededError(
        absl::StrCat(options_.system_name, " did not answer within the call deadline"));
  }

  const std::shared_ptr<CaseSystemAdapter> inner_;
  const ResilienceOptions options_;
  Clock& clock_;
  const Sleeper sleep_;
  const std::function<double()> random_;
  CircuitBreaker breaker_;
};

}  // namespace

absl::StatusOr<ResilienceOptions> ResilienceOptionsFromConfig(
    const casebridge::config::v1::CaseSystemAdapterConfig& config, std::string system_name) {
  const auto& c = config.resilience();
  ResilienceOptions options;
  options.system_name = std::move(system_name);
  if (c.max_attempts() != 0) options.max_attempts = c.max_attempts();
  if (c.has_initial_backoff()) options.initial_backoff = FromProto(c.initial_backoff());
  if (c.has_max_backoff()) options.max_backoff = FromProto(c.max_backoff());
  if (c.failure_threshold() != 0) options.failure_threshold = c.failure_threshold();
  if (c.has_open_duration()) options.open_duration = FromProto(c.open_duration());
  if (options.max_attempts < 1 || options.max_attempts > 10) {
    return absl::InvalidArgumentError("adapter.resilience.max_attempts: must be between 1 and 10");
  }
  if (options.initial_backoff <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("adapter.resilience.initial_backoff: must be positive");
  }
  if (options.max_backoff < options.initial_backoff) {
    return absl::InvalidArgumentError(
        "adapter.resilience.max_backoff: must not be shorter than initial_backoff");
  }
  if (options.failure_threshold < 1) {
    return absl::InvalidArgumentError("adapter.resilience.failure_threshold: must be positive");
  }
  if (options.open_duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("adapter.resilience.open_duration: must be positive");
  }
  return options;
}

CircuitBreaker::CircuitBreaker(int failure_threshold, absl::Duration open_duration, Clock& clock)
    : failure_threshold_(std::max(1, failure_threshold)),
      open_duration_(open_duration),
      clock_(clock) {}

std::optional<absl::Time> CircuitBreaker::Admit() {
  std::lock_guard<std::mutex> lock(mu_);
  const absl::Time now = clock_.Now();
  switch (state_) {
    case State::kClosed:
      return std::nullopt;
    case State::kOpen:
      if (now < open_until_) return open_until_;
      state_ = State::kHalfOpen;
      probe_in_flight_ = true;
      return std::nullopt;
    case State::kHalfOpen:
      if (!probe_in_flight_) {
        probe_in_flight_ = true;
        return std::nullopt;
      }
      // The probe decides soon; try again in a second.
      return now + absl::Seconds(1);
  }
  return std::nullopt;
}

void CircuitBreaker::OnSuccess() {
  std::lock_guard<std::mutex> lock(mu_);
  state_ = State::kClosed;
  consecutive_failures_ = 0;
  probe_in_flight_ = false;
}

void CircuitBreaker::OnFailure() {
  std::lock_guard<std::mutex> lock(mu_);
  ++consecutive_failures_;
  if (state_ == State::kHalfOpen || consecutive_failures_ >= failure_threshold_) {
    state_ = State::kOpen;
    open_until_ = clock_.Now() + open_duration_;
    probe_in_flight_ = false;
  }
}

CircuitBreaker::State CircuitBreaker::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

std::unique_ptr<CaseSystemAdapter> NewResilientAdapter(std::shared_ptr<CaseSystemAdapter> inner,
                                                       ResilienceOptions options, Clock& clock,
                                                       Sleeper sleep,
                                                       std::function<double()> random) {
  return std::make_unique<ResilientAdapter>(std::move(inner), std::move(options), clock,
                                            std::move(sleep), std::move(random));
}

}  // namespace casebridge
