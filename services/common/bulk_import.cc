#include "services/common/bulk_import.h"

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace casebridge {
namespace {

using casebridge::recording::v1::ImportRequest;
using casebridge::recording::v1::ImportResult;
using casebridge::recording::v1::RecordResponse;

struct Item {
  uint64_t index = 0;
  ImportRequest request;
};

// The state the reader, the lanes and the writer share.
class Import {
 public:
  Import(const BulkImportCalls& calls, BulkImportOptions options)
      : calls_(calls),
        lanes_(static_cast<size_t>(std::max(1, options.lanes))),
        window_(static_cast<uint64_t>(std::max(1, options.window))),
        queues_(lanes_),
        lane_ready_(lanes_) {}

  absl::Status Run() {
    std::vector<std::thread> lanes;
    for (size_t lane = 0; lane < lanes_; ++lane) lanes.emplace_back([this, lane] { Lane(lane); });
    std::thread writer([this] { Write(); });
    Read();
    writer.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;
    }
    for (std::condition_variable& ready : lane_ready_) ready.notify_all();
    for (std::thread& lane : lanes) lane.join();
    return outcome_;
  }

 private:
  void Read() {
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        window_open_.wait(lock, [this] { return failed_ || read_ - written_ < window_; });
        if (failed_) break;
      }
      Item item;
      if (!calls_.read(&item.request)) break;
      const size_t lane = std::hash<std::string>{}(calls_.case_of(item.request)) % lanes_;
      {
        std::lock_guard<std::mutex> lock(mu_);
        item.index = read_++;
        queues_[lane].push_back(std::move(item));
      }
      lane_ready_[lane].notify_one();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      reading_done_ = true;
    }
    result_ready_.notify_one();
  }

  void Lane(size_t lane) {
    std::deque<Item>& queue = queues_[lane];
    while (true) {
      Item item;
      {
        std::unique_lock<std::mutex> lock(mu_);
        lane_ready_[lane].wait(lock, [&] { return closing_ || !queue.empty(); });
        if (queue.empty()) return;
        item = std::move(queue.front());
        queue.pop_front();
        // After a failure nothing later is recorded by this lane (its case
        // would continue past a gap), nor taken up by any other.
        if (item.index > stop_after_) continue;
      }
      absl::StatusOr<RecordResponse> result = calls_.record(item.request);
      bool next_to_write;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!result.ok()) stop_after_ = std::min(stop_after_, item.index);
        done_.emplace(item.index, std::move(result));
        next_to_write = item.index == written_;
      }
      // Only the result the writer waits for wakes it.
      if (next_to_write) result_ready_.notify_one();
    }
  }

  void Write() {
    while (true) {
      absl::StatusOr<RecordResponse> result;
      uint64_t index = 0;
      {
        std::unique_lock<std::mutex> lock(mu_);
        result_ready_.wait(lock, [this] {
          return done_.contains(written_) || (reading_done_ && written_ == read_);
        });
        auto it = done_.find(written_);
        if (it == done_.end()) return;  // every request answered
        index = written_;
        result = std::move(it->second);
        done_.erase(it);
      }
      absl::Status failure;
      if (!result.ok()) {
        failure = absl::Status(result.status().code(),
                               absl::StrCat("request ", index, ": ", result.status().message()));
      } else {
        ImportResult reply;
        reply.set_index(index);
        *reply.mutable_response() = *std::move(result);
        if (!calls_.write(reply)) failure = absl::CancelledError("the client went away");
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (failure.ok()) {
          ++written_;
        } else {
          outcome_ = failure;
          failed_ = true;
          stop_after_ = std::min(stop_after_, index);
        }
      }
      window_open_.notify_one();
      if (!failure.ok()) return;
    }
  }

  const BulkImportCalls& calls_;
  const size_t lanes_;
  const uint64_t window_;

  std::mutex mu_;
  std::vector<std::deque<Item>> queues_;
  // Each waits on its own condition, so that a change wakes only the thread
  // it concerns.
  std::vector<std::condition_variable> lane_ready_;  // a lane's queue got an item, or closing
  std::condition_variable result_ready_;  // the result to write next arrived, or the end
  std::condition_variable window_open_;   // a result was written, or the writer failed
  std::map<uint64_t, absl::StatusOr<RecordResponse>> done_;
  uint64_t read_ = 0;     // requests read
  uint64_t written_ = 0;  // results written: the next index to write
  bool reading_done_ = false;
  bool failed_ = false;   // the writer stopped at a failure
  bool closing_ = false;  // lanes exit once their queue is empty
  uint64_t stop_after_ = std::numeric_limits<uint64_t>::max();
  absl::Status outcome_;  // written by the writer before it sets `failed_`
};

}  // namespace

absl::Status RunBulkImport(const BulkImportCalls& calls, BulkImportOptions options) {
  return Import(calls, options).Run();
}

}  // namespace casebridge
