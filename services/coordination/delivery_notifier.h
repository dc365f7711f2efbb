// Wakes `Subscribe` streams when new deliveries are stored and published,
// and ends them when the service shuts down.
//
// A waiter remembers the `generation()` it last saw before reading the store
// and then waits for it to change, so a notification between the read and
// the wait is never lost.
//
// Thread safety: safe for concurrent use.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "absl/time/time.h"

namespace casebridge::coordination {

class DeliveryNotifier {
 public:
  // The current generation; it grows by one with every `Notify`.
  uint64_t generation() const {
    std::lock_guard<std::mutex> lock(mu_);
    return generation_;
  }

  // Announces new deliveries: wakes every waiter.
  void Notify() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++generation_;
    }
    changed_.notify_all();
  }

  // Waits until the generation differs from `seen`, `Shutdown` was called or
  // `timeout` passed, and returns the generation then.
  uint64_t WaitForChange(uint64_t seen, absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                      [&] { return generation_ != seen || shut_down_; });
    return generation_;
  }

  // Wakes every waiter for good: `is_shut_down()` is true from now on.
  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      shut_down_ = true;
    }
    changed_.notify_all();
  }

  bool is_shut_down() const {
    std::lock_guard<std::mutex> lock(mu_);
    return shut_down_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable changed_;
  uint64_t generation_ = 0;  // guarded by mu_
  bool shut_down_ = false;   // guarded by mu_
};

}  // namespace casebridge::coordination
