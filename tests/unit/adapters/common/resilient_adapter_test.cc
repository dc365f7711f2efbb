// The resilience decorator around a fake vendor adapter that fails or hangs
// on command. Time is a FakeClock; the only real waits are the short call
// deadlines the hanging tests are about.
#include "adapters/common/resilient_adapter.h"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/clock.h"
#include "tests/support/status_matchers.h"

namespace casebridge {
namespace {

using ::casebridge::events::v1::Appointment;
using ::casebridge::events::v1::Decision;
using ::casebridge::events::v1::Referral;
using ::casebridge::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Returns the status of `expr` if it is not OK.
#define FAKE_RETURN_IF_ERROR(expr)              \
  do {                                      \
    absl::Status status_ = (expr);          \
    if (!status_.ok()) return status_;      \
  } while (false)

const absl::Time kStart = absl::FromUnixSeconds(1767261600);

// A vendor adapter whose answers a test queues: a status per call (OK when
// the queue is empty), or a hang until `Release`.
class FakeVendor final : public CaseSystemAdapter {
 public:
  void Answer(absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    answers_.push_back(std::move(status));
  }
  // Every call from now on blocks until `Release`.
  void Hang() {
    std::lock_guard<std::mutex> lock(mu_);
    hang_ = true;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hang_ = false;
    }
    released_.notify_all();
  }
  int calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  std::vector<std::string> keys() const {
    std::lock_guard<std::mutex> lock(mu_);
    return keys_;
  }

  absl::StatusOr<std::string> RecordDecision(const CallOptions& options, const Citizen&,
                                             const Decision&) override {
    FAKE_RETURN_IF_ERROR(Next(options));
    return std::string("D-1");
  }
  absl::StatusOr<std::string> BookAppointment(const CallOptions& options, const Citizen&,
                                              const Appointment&) override {
    FAKE_RETURN_IF_ERROR(Next(options));
    return std::string("A-1");
  }
  absl::StatusOr<Appointment> RescheduleAppointment(const CallOptions& options, const Citizen&,
                                                    const AppointmentChange& change) override {
    FAKE_RETURN_IF_ERROR(Next(options));
    Appointment appointment;
    appointment.set_appointment_id(change.appointment_id);
    return appointment;
  }
  absl::StatusOr<Appointment> CancelAppointment(const CallOptions& options, const Citizen&,
                                                const std::string& id,
                                                const std::string&) override {
    FAKE_RETURN_IF_ERROR(Next(options));
    Appointment appointment;
    appointment.set_appointment_id(id);
    return appointment;
  }
  absl::StatusOr<Appointment> RecordAttendance(const CallOptions& options, const Citizen&,
                                               const std::string& id, bool) override {
    FAKE_RETURN_IF_ERROR(Next(options));
    Appointment appointment;
    appointment.set_appointment_id(id);
    return appointment;
  }
  absl::StatusOr<Referral> RecordReferralStep(const CallOptions& options, const Citizen&,
                                              const Referral& referral) override {
    FAKE_RETURN_IF_ERROR(Next(options));
    return referral;
  }
  absl::Status CancelRecord(const CallOptions& options, const Citizen&,
                            const std::string&) override {
    return Next(options);
  }

 private:
  absl::Status Next(const CallOptions& options) {
    std::unique_lock<std::mutex> lock(mu_);
    ++calls_;
    keys_.push_back(options.idempotency_key);
    released_.wait(lock, [&] { return !hang_; });
    if (answers_.empty()) return absl::OkStatus();
    absl::Status status = answers_.front();
    answers_.pop_front();
    return status;
  }

  mutable std::mutex mu_;
  std::condition_variable released_;
  std::deque<absl::Status> answers_;
  bool hang_ = false;
  int calls_ = 0;
  std::vector<std::string> keys_;
};

class ResilientAdapterTest : public ::testing::Test {
 protected:
  ResilientAdapterTest() {
    options_.system_name = "job-centre system";
    options_.max_attempts = 3;
    options_.initial_backoff = absl::Milliseconds(100);
    options_.max_backoff = absl::Milliseconds(250);
    options_.failure_threshold = 3;
    options_.open_duration = absl::Seconds(30);
  }
  ~ResilientAdapterTest() override { vendor_->Release(); }

  CaseSystemAdapter& adapter() {
    if (adapter_ == nullptr) {
      adapter_ = NewResilientAdapter(
          vendor_, options_, clock_,
          [this](absl::Duration d) {
            sleeps_.push_back(d);
            clock_.Advance(d);
          },
          [] { return 0.5; });
    }
    return *adapter_;
  }

  // A call with a key and a deadline 5 s (fake time) from now.
  CallOptions Call(absl::Duration timeout = absl::Seconds(5)) {
    CallOptions options;
    options.idempotency_key = "key-1";
    options.deadline = clock_.Now() + timeout;
    return options;
  }
  absl::StatusOr<std::string> Book(const CallOptions& options) {
    return adapter().BookAppointment(options, citizen_, Appointment());
  }

  FakeClock clock_{kStart};
  std::shared_ptr<FakeVendor> vendor_ = std::make_shared<FakeVendor>();
  ResilienceOptions options_;
  std::vector<absl::Duration> sleeps_;
  Citizen citizen_{std::string(64, 'a'), ""};
  std::unique_ptr<CaseSystemAdapter> adapter_;
};

TEST_F(ResilientAdapterTest, PassesTheVendorsAnswerThrough) {
  absl::StatusOr<std::string> id = Book(Call());
  ASSERT_OK(id);
  EXPECT_EQ(*id, "A-1");
  EXPECT_EQ(vendor_->calls(), 1);
  EXPECT_THAT(vendor_->keys(), ElementsAre("key-1"));
}

TEST_F(ResilientAdapterTest, AHangingVendorIsCutOffAtTheDeadline) {
  vendor_->Hang();
  EXPECT_THAT(Book(Call(absl::Milliseconds(100))),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("job-centre system did not answer within the call deadline")));
  EXPECT_EQ(vendor_->calls(), 1);
}

TEST_F(ResilientAdapterTest, ADeadlineAlreadyPassedDoesNotCallTheVendor) {
  CallOptions options = Call();
  options.deadline = clock_.Now() - absl::Seconds(1);
  EXPECT_THAT(Book(options), StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(vendor_->calls(), 0);
}

TEST_F(ResilientAdapterTest, TransientFailuresAreRetriedWithCappedExponentialBackoffAndJitter) {
  options_.max_attempts = 4;
  vendor_->Answer(absl::UnavailableError("vendor: 503"));
  vendor_->Answer(absl::UnavailableError("vendor: 503"));
  vendor_->Answer(absl::UnavailableError("vendor: 503"));
  options_.failure_threshold = 10;
  absl::StatusOr<std::string> id = Book(Call());
  ASSERT_OK(id);
  EXPECT_EQ(*id, "A-1");
  EXPECT_EQ(vendor_->calls(), 4);
  // 100 ms, 200 ms, then capped at 250 ms; each drawn from [b/2, b] (0.5 →
  // three quarters).
  EXPECT_THAT(sleeps_, ElementsAre(absl::Milliseconds(75), absl::Milliseconds(150),
                                   absl::Microseconds(187500)));
  // Every attempt carries the same idempotency key.
  EXPECT_THAT(vendor_->keys(), ElementsAre("key-1", "key-1", "key-1", "key-1"));
}

TEST_F(ResilientAdapterTest, GivesUpAfterMaxAttemptsWithTheLastError) {
  for (int i = 0; i < 3; ++i) vendor_->Answer(absl::UnavailableError("vendor: 503"));
  options_.failure_threshold = 10;
  EXPECT_THAT(Book(Call()), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("vendor: 503")));
  EXPECT_EQ(vendor_->calls(), 3);
}

TEST_F(ResilientAdapterTest, EveryOperationIsRetried) {
  options_.failure_threshold = 100;
  // Each operation: one transient failure, then success.
  for (int i = 0; i < 7; ++i) {
    vendor_->Answer(absl::UnavailableError("vendor: 503"));
    vendor_->Answer(absl::OkStatus());
  }
  const CallOptions options = Call(absl::Hours(1));
  EXPECT_OK(adapter().RecordDecision(options, citizen_, Decision()));
  EXPECT_OK(adapter().BookAppointment(options, citizen_, Appointment()));
  EXPECT_OK(adapter().RescheduleAppointment(options, citizen_, AppointmentChange{}));
  EXPECT_OK(adapter().CancelAppointment(options, citizen_, "A-1", "sick"));
  EXPECT_OK(adapter().RecordAttendance(options, citizen_, "A-1", true));
  EXPECT_OK(adapter().RecordReferralStep(options, citizen_, Referral()));
  EXPECT_OK(adapter().CancelRecord(options, citizen_, "A-1"));
  EXPECT_EQ(vendor_->calls(), 14);
}

TEST_F(ResilientAdapterTest, AnOperationTheVendorCannotDeduplicateIsNotRetried) {
  options_.non_idempotent_operations = {kBookAppointment};
  vendor_->Answer(absl::UnavailableError("vendor: 503"));
  EXPECT_THAT(Book(Call()), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(vendor_->calls(), 1);
}

TEST_F(ResilientAdapterTest, ACallWithoutAKeyIsNotRetried) {
  vendor_->Answer(absl::UnavailableError("vendor: 503"));
  CallOptions options = Call();
  options.idempotency_key.clear();
  EXPECT_THAT(Book(options), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(vendor_->calls(), 1);
}

TEST_F(ResilientAdapterTest, TheVendorsDeliberateAnswersAreNotRetried) {
  vendor_->Answer(absl::InvalidArgumentError("offer not in the catalogue"));
  vendor_->Answer(absl::NotFoundError("no such appointment"));
  vendor_->Answer(absl::FailedPreconditionError("already cancelled"));
  vendor_->Answer(absl::InternalError("vendor code E42"));
  EXPECT_THAT(Book(Call()), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Book(Call()), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Book(Call()), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(Book(Call()), StatusIs(absl::StatusCode::kInternal));
  EXPECT_EQ(vendor_->calls(), 4);
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(ResilientAdapterTest, NoRetryWhenThePauseWouldPassTheDeadline) {
  vendor_->Answer(absl::UnavailableError("vendor: 503"));
  EXPECT_THAT(Book(Call(absl::Milliseconds(50))), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(vendor_->calls(), 1);
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(ResilientAdapterTest, CircuitOpensAfterConsecutiveFailuresAndFailsFast) {
  options_.max_attempts = 1;
  for (int i = 0; i < 3; ++i) vendor_->Answer(absl::UnavailableError("vendor: 503"));
  for (int i = 0; i < 3; ++i) EXPECT_THAT(Book(Call()), StatusIs(absl::StatusCode::kUnavailable));
  clock_.Advance(absl::Seconds(3));
  EXPECT_THAT(Book(Call()),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("job-centre system unavailable: circuit open, retry after 27s")));
  EXPECT_EQ(vendor_->calls(), 3);
}

TEST_F(ResilientAdapterTest, ASuccessResetsTheFailureCount) {
  options_.max_attempts = 1;
  vendor_->Answer(absl::UnavailableError("vendor: 503"));
  vendor_->Answer(absl::UnavailableError("vendor: 503"));
  vendor_->Answer(absl::OkStatus());
  vendor_->Answer(absl::UnavailableError("vendor: 503"));
  vendor_->Answer(absl::UnavailableError("vendor: 503"));
  for (int i = 0; i < 5; ++i) (void)Book(Call());
  EXPECT_OK(Book(Call()));
  EXPECT_EQ(vendor_->calls(), 6);
}

TEST_F(ResilientAdapterTest, RetriesCountTowardsTheCircuitAndStopWhenItOpens) {
  options_.max_attempts = 10;
  for (int i = 0; i < 10; ++i) vendor_->Answer(absl::UnavailableError("vendor: 503"));
  EXPECT_THAT(Book(Call(absl::Hours(1))),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("circuit open")));
  EXPECT_EQ(vendor_->calls(), 3);
}

TEST_F(ResilientAdapterTest, TimeoutsOpenTheCircuit) {
  options_.max_attempts = 1;
  options_.failure_threshold = 2;
  vendor_->Hang();
  EXPECT_THAT(Book(Call(absl::Milliseconds(50))), StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(Book(Call(absl::Milliseconds(50))), StatusIs(absl::StatusCode::kDeadlineExceeded));
  // No third thread waits on the hanging vendor.
  EXPECT_THAT(Book(Call(absl::Milliseconds(50))),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("circuit open")));
  EXPECT_EQ(vendor_->calls(), 2);
}

TEST_F(ResilientAdapterTest, AfterTheCoolDownOneSuccessfulProbeClosesTheCircuit) {
  options_.max_attempts = 1;
  for (int i = 0; i < 3; ++i) vendor_->Answer(absl::UnavailableError("vendor: 503"));
  for (int i = 0; i < 3; ++i) (void)Book(Call());
  clock_.Advance(absl::Seconds(30));
  EXPECT_OK(Book(Call()));  // the probe
  EXPECT_OK(Book(Call()));
  EXPECT_EQ(vendor_->calls(), 5);
}

TEST_F(ResilientAdapterTest, AFailedProbeOpensTheCircuitAgain) {
  options_.max_attempts = 1;
  for (int i = 0; i < 4; ++i) vendor_->Answer(absl::UnavailableError("vendor: 503"));
  for (int i = 0; i < 3; ++i) (void)Book(Call());
  clock_.Advance(absl::Seconds(30));
  EXPECT_THAT(Book(Call()), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("vendor: 503")));
  EXPECT_THAT(Book(Call()), StatusIs(absl::StatusCode::kUnavailable,
                                     HasSubstr("circuit open, retry after 30s")));
  EXPECT_EQ(vendor_->calls(), 4);
}

TEST(CircuitBreakerTest, HalfOpenAdmitsExactlyOneProbe) {
  FakeClock clock(kStart);
  CircuitBreaker breaker(1, absl::Seconds(10), clock);
  EXPECT_EQ(breaker.Admit(), std::nullopt);
  breaker.OnFailure();
  EXPECT_EQ(breaker.state(), CircuitBreaker::State::kOpen);
  EXPECT_EQ(breaker.Admit(), kStart + absl::Seconds(10));
  clock.Advance(absl::Seconds(10));
  EXPECT_EQ(breaker.Admit(), std::nullopt);
  EXPECT_EQ(breaker.state(), CircuitBreaker::State::kHalfOpen);
  EXPECT_NE(breaker.Admit(), std::nullopt);  // a second caller while the probe runs
  breaker.OnSuccess();
  EXPECT_EQ(breaker.state(), CircuitBreaker::State::kClosed);
  EXPECT_EQ(breaker.Admit(), std::nullopt);
}

TEST(ResilienceOptionsTest, DefaultsAreTheDocumentedOnes) {
  absl::StatusOr<ResilienceOptions> options =
      ResilienceOptionsFromConfig(config::v1::CaseSystemAdapterConfig(), "health system");
  ASSERT_OK(options);
  EXPECT_EQ(options->system_name, "health system");
  EXPECT_EQ(options->max_attempts, 3);
  EXPECT_EQ(options->initial_backoff, absl::Milliseconds(100));
  EXPECT_EQ(options->max_backoff, absl::Seconds(1));
  EXPECT_EQ(options->failure_threshold, 5);
  EXPECT_EQ(options->open_duration, absl::Seconds(30));
}

TEST(ResilienceOptionsTest, ConfiguredValuesAreUsedAndCheckedNamingTheField) {
  config::v1::CaseSystemAdapterConfig config;
  config.mutable_resilience()->set_max_attempts(2);
  config.mutable_resilience()->mutable_open_duration()->set_seconds(5);
  absl::StatusOr<ResilienceOptions> options = ResilienceOptionsFromConfig(config, "x");
  ASSERT_OK(options);
  EXPECT_EQ(options->max_attempts, 2);
  EXPECT_EQ(options->open_duration, absl::Seconds(5));

  config.mutable_resilience()->set_max_attempts(11);
  EXPECT_THAT(ResilienceOptionsFromConfig(config, "x"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("adapter.resilience.max_attempts: must be between 1 and 10")));
  config.mutable_resilience()->set_max_attempts(2);
  config.mutable_resilience()->mutable_max_backoff()->set_nanos(1000);
  EXPECT_THAT(ResilienceOptionsFromConfig(config, "x"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("adapter.resilience.max_backoff:")));
}

}  // namespace
}  // namespace casebridge
