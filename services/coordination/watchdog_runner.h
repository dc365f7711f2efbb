// The watchdogs: on a timer, every case of the municipality is checked for
// silence (a referral nobody acknowledged, a waitlist without an estimate,
// too few follow-up conversations, no contact) and for overdue tasks, by
// `CheckWatchdogs` (case_rules.h); whatever it reports is recorded through
// the coordination `EventRecorder` onto the canonical topic, from where it
// is routed like any event (a watchdog alert always reaches the
// coordinating caseworker).
//
// A situation is reported once: each alert's idempotency key names it, so
// the next run replays the key and records nothing new.
//
// Time comes from the injected `Clock`, so tests drive `RunOnce` with a
// `FakeClock`; the period between runs is real time
// (`watchdogs.check_interval`).
//
// Thread safety: `Start` and `Stop` are called from one thread. `RunOnce`
// may be called from any thread; runs are serialised.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/clock.h"
#include "services/common/event_recorder.h"
#include "services/coordination/case_rules.h"
#include "services/coordination/coordination_store.h"

namespace casebridge::coordination {

class WatchdogRunner {
 public:
  // What the watchdogs report for one case at `now`.
  using Check =
      std::function<std::vector<DerivedEvent>(const CaseHistory& history, absl::Time now)>;

  // Every reference must outlive the runner. `interval` is the time between
  // runs (`WatchdogInterval(config)`). `check` replaces
  // `CheckWatchdogs(history, now, watchdogs)` (tests); empty: the real rules.
  WatchdogRunner(CoordinationStore& store, EventRecorder& recorder,
                 casebridge::config::v1::WatchdogConfig watchdogs, absl::Duration interval,
                 Clock& clock = RealClock(), Check check = nullptr);
  WatchdogRunner(const WatchdogRunner&) = delete;
  WatchdogRunner& operator=(const WatchdogRunner&) = delete;
  // Stops the thread if it runs.
  ~WatchdogRunner();

  // Starts the thread: a run every `interval`, the first after one interval.
  // A failed run is logged; the next run tries again. REQUIRES: not started
  // before.
  void Start();

  // Stops the thread and joins it (a run in progress finishes). Idempotent.
  void Stop();

  // Checks every case once at `clock.Now()` and records what the watchdogs
  // report. Returns how many events were newly recorded. On an error (store,
  // or Kafka not confirming in time) the remaining cases are still checked
  // and the first error is returned.
  absl::StatusOr<int> RunOnce();

 private:
  void Run();

  CoordinationStore& store_;
  EventRecorder& recorder_;
  const casebridge::config::v1::WatchdogConfig watchdogs_;
  const absl::Duration interval_;
  Clock& clock_;
  const Check check_;

  std::mutex run_mu_;  // serialises RunOnce
  std::mutex mu_;
  std::condition_variable stop_requested_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace casebridge::coordination
