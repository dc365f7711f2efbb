#include "services/common/bulk_import.h"

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge {
namespace {

using casebridge::recording::v1::ImportRequest;
using casebridge::recording::v1::ImportResult;
using casebridge::recording::v1::RecordResponse;
using ::casebridge::testing::StatusIs;
using ::testing::HasSubstr;

// Requests carry their case in the idempotency key of a decision, "case/n".
ImportRequest RequestFor(int case_number, int n) {
  ImportRequest request;
  request.mutable_record_decision()->mutable_context()->set_idempotency_key(
      absl::StrCat(case_number, "/", n));
  return request;
}

std::string CaseOf(const ImportRequest& request) {
  const std::string& key = request.record_decision().context().idempotency_key();
  return key.substr(0, key.find('/'));
}

// A scripted stream: `requests` in, results collected; `record` notes the
// order in which each case's requests were recorded.
struct Harness {
  std::vector<ImportRequest> requests;
  size_t next = 0;
  std::mutex mu;
  std::map<std::string, std::vector<std::string>> recorded;  // case → keys in recording order
  std::vector<ImportResult> results;
  std::atomic<size_t> written{0};
  std::function<absl::StatusOr<RecordResponse>(const ImportRequest&)> record_hook;

  BulkImportCalls Calls() {
    BulkImportCalls calls;
    calls.read = [this](ImportRequest* request) {
      if (next == requests.size()) return false;
      *request = requests[next++];
      return true;
    };
    calls.case_of = CaseOf;
    calls.record = [this](const ImportRequest& request) -> absl::StatusOr<RecordResponse> {
      if (record_hook) {
        absl::StatusOr<RecordResponse> hooked = record_hook(request);
        if (!hooked.ok()) return hooked;
      }
      // Uneven work, so that lanes overtake each other.
      for (int i = std::hash<std::string>{}(request.record_decision().context().idempotency_key()) % 200;
           i > 0; --i) {
        std::this_thread::yield();
      }
      std::lock_guard<std::mutex> lock(mu);
      std::vector<std::string>& keys = recorded[CaseOf(request)];
      keys.push_back(request.record_decision().context().idempotency_key());
      RecordResponse response;
      response.set_event_id(request.record_decision().context().idempotency_key());
      response.set_sequence(keys.size());
      return response;
    };
    calls.write = [this](const ImportResult& result) {
      results.push_back(result);
      ++written;
      return true;
    };
    return calls;
  }
};

TEST(BulkImportTest, ResultsComeInRequestOrderAndEachCaseIsRecordedInStreamOrder) {
  Harness harness;
  for (int n = 0; n < 100; ++n) {
    for (int c = 0; c < 7; ++c) harness.requests.push_back(RequestFor(c, n));
  }
  ASSERT_OK(RunBulkImport(harness.Calls(), {.lanes = 4, .window = 16}));

  ASSERT_EQ(harness.results.size(), harness.requests.size());
  for (size_t i = 0; i < harness.results.size(); ++i) {
    EXPECT_EQ(harness.results[i].index(), i);
    EXPECT_EQ(harness.results[i].response().event_id(),
              harness.requests[i].record_decision().context().idempotency_key());
  }
  for (int c = 0; c < 7; ++c) {
    const std::vector<std::string>& keys = harness.recorded[absl::StrCat(c)];
    ASSERT_EQ(keys.size(), 100u);
    for (int n = 0; n < 100; ++n) EXPECT_EQ(keys[n], absl::StrCat(c, "/", n));
  }
}

TEST(BulkImportTest, NoMoreThanTheWindowIsReadAheadOfTheResults) {
  Harness harness;
  for (int n = 0; n < 50; ++n) harness.requests.push_back(RequestFor(n, 0));
  std::atomic<size_t> most_ahead{0};
  BulkImportCalls calls = harness.Calls();
  const auto read = calls.read;
  calls.read = [&](ImportRequest* request) {
    // Read once more than written so far: the window's bound.
    most_ahead = std::max(most_ahead.load(), harness.next - harness.written.load());
    return read(request);
  };
  ASSERT_OK(RunBulkImport(calls, {.lanes = 8, .window = 5}));
  EXPECT_EQ(harness.results.size(), 50u);
  EXPECT_LE(most_ahead.load(), 5u);
}

TEST(BulkImportTest, TheFirstFailureEndsTheImportAndItsCaseGoesNoFurther) {
  Harness harness;
  for (int n = 0; n < 20; ++n) {
    for (int c = 0; c < 3; ++c) harness.requests.push_back(RequestFor(c, n));
  }
  harness.record_hook = [](const ImportRequest& request) -> absl::StatusOr<RecordResponse> {
    if (request.record_decision().context().idempotency_key() == "1/5") {
      return absl::InvalidArgumentError("decision.outcome: required");
    }
    return RecordResponse();
  };
  const absl::Status status = RunBulkImport(harness.Calls(), {.lanes = 3, .window = 8});

  // "1/5" is request 5 × 3 + 1 = 16.
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               "request 16: decision.outcome: required"));
  ASSERT_EQ(harness.results.size(), 16u);
  for (size_t i = 0; i < 16; ++i) EXPECT_EQ(harness.results[i].index(), i);
  // Case 1 stopped at the failure: 0..4 recorded, nothing after 5.
  EXPECT_EQ(harness.recorded["1"].size(), 5u);
}

TEST(BulkImportTest, AClientThatGoesAwayCancelsTheImport) {
  Harness harness;
  for (int n = 0; n < 10; ++n) harness.requests.push_back(RequestFor(0, n));
  BulkImportCalls calls = harness.Calls();
  int writes = 0;
  calls.write = [&](const ImportResult&) { return ++writes < 3; };
  EXPECT_THAT(RunBulkImport(calls, {.lanes = 2, .window = 4}),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("client went away")));
  EXPECT_EQ(writes, 3);
}

TEST(BulkImportTest, AnEmptyStreamIsOk) {
  Harness harness;
  EXPECT_OK(RunBulkImport(harness.Calls()));
  EXPECT_TRUE(harness.results.empty());
}

}  // namespace
}  // namespace casebridge
