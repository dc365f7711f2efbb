#include "services/coordination/watchdog_runner.h"

#include <string>
#include <utility>
#include <vector>

#include "services/common/log.h"
#include "services/common/metrics.h"
#include "services/coordination/derived_events.h"

namespace casebridge::coordination {

WatchdogRunner::WatchdogRunner(CoordinationStore& store, EventRecorder& recorder,
                               casebridge::config::v1::WatchdogConfig watchdogs,
                               absl::Duration interval, Clock& clock, Check check)
    : store_(store),
      recorder_(recorder),
      watchdogs_(std::move(watchdogs)),
      interval_(interval),
      clock_(clock),
      check_(std::move(check)) {}

WatchdogRunner::~WatchdogRunner() { Stop(); }

void WatchdogRunner::Start() {
  thread_ = std::thread([this] { Run(); });
}

void WatchdogRunner::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_requested_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WatchdogRunner::Run() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stop_requested_.wait_for(lock, absl::ToChronoNanoseconds(interval_),
                                   [this] { return stopping_; })) {
        return;
      }
    }
    absl::StatusOr<int> recorded = RunOnce();
    if (!recorded.ok()) {
      LogWarning("watchdog run failed; the next run tries again",
                 {{"error", std::string(recorded.status().message())}});
    } else if (*recorded > 0) {
      LogInfo("watchdogs fired", {{"events", std::to_string(*recorded)}});
    }
  }
}

absl::StatusOr<int> WatchdogRunner::RunOnce() {
  std::lock_guard<std::mutex> run_lock(run_mu_);
  absl::StatusOr<std::vector<std::string>> subjects = store_.Subjects();
  if (!subjects.ok()) return subjects.status();
  const absl::Time now = clock_.Now();
  int recorded = 0;
  absl::Status first_error;
  for (const std::string& subject : *subjects) {
    absl::StatusOr<int> count = absl::UnknownError("not checked");
    if (absl::StatusOr<CaseHistory> history = store_.History(subject); !history.ok()) {
      count = history.status();
    } else {
      const std::vector<DerivedEvent> alerts =
          check_ ? check_(*history, now) : CheckWatchdogs(*history, now, watchdogs_);
      // No trace given: each firing starts a new trace.
      count = RecordDerivedEvents(recorder_, subject, alerts, TraceContext{},
                                  [](const casebridge::events::v1::CaseEvent& fired) {
                                    metrics::WatchdogFired(fired.type());
                                  });
    }
    if (count.ok()) {
      recorded += *count;
    } else if (first_error.ok()) {
      first_error = count.status();
    }
  }
  if (!first_error.ok()) return first_error;
  return recorded;
}

}  // namespace casebridge::coordination
