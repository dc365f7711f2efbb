// An in-memory `Publisher` for unit tests: records are "durable" at once,
// unless a test makes the next sends fail.
#pragma once

#include <deque>
#include <mutex>
#include <vector>

#include "services/common/kafka/publisher.h"

namespace casebridge::kafka {

class MemoryPublisher final : public Publisher {
 public:
  // Publisher:
  std::future<absl::Status> Send(Record record) override {
    std::promise<absl::Status> promise;
    std::lock_guard<std::mutex> lock(mu_);
    if (!failures_.empty()) {
      promise.set_value(failures_.front());
      failures_.pop_front();
    } else {
      records_.push_back(std::move(record));
      promise.set_value(absl::OkStatus());
    }
    return promise.get_future();
  }
  absl::Status Flush(absl::Duration) override { return absl::OkStatus(); }
  bool Healthy() const override { return true; }

  // The next `Send` fails with `status` (queued: one per call).
  void FailNext(absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    failures_.push_back(std::move(status));
  }
  // Everything published so far, in order.
  std::vector<Record> records() const {
    std::lock_guard<std::mutex> lock(mu_);
    return records_;
  }
  // Forgets what was published so far.
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    records_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::vector<Record> records_;
  std::deque<absl::Status> failures_;
};

}  // namespace casebridge::kafka
