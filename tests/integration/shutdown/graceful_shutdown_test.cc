// Graceful shutdown of a case-system binary against the real broker: the
// job-centre service runs as a subprocess (exactly as deployed), callers
// keep booking appointments, SIGTERM arrives mid-load. Every call that was
// answered OK must have its record on the canonical topic, and the process
// must exit 0 within its grace period.
#include <grpcpp/grpcpp.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <iostream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "casebridge/jobcentre/v1/jobcentre_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "services/common/kafka/consumer.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

extern char** environ;

namespace casebridge {
namespace {

using ::casebridge::testing::PollUntil;
using ::casebridge::testing::TempDir;
using ::google::protobuf::util::TimeUtil;
namespace v1 = ::casebridge::jobcentre::v1;

constexpr int kGraceSeconds = 8;
constexpr int kCallers = 6;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

recording::v1::BookAppointmentRequest Booking(const std::string& key, int caller) {
  recording::v1::BookAppointmentRequest request;
  auto* context = request.mutable_context();
  context->set_idempotency_key(key);
  // One case per caller: many cases, several events each.
  context->mutable_case_ref()->set_cpr(absl::StrCat(10 + caller, "0285-1234"));
  context->mutable_actor()->set_role(common::v1::ROLE_CASEWORKER);
  context->mutable_actor()->set_unit("Jobcenter Aarhus");
  auto* appointment = request.mutable_appointment();
  appointment->set_kind(events::v1::APPOINTMENT_KIND_FOLLOW_UP_CONVERSATION);
  *appointment->mutable_start() = TimeUtil::GetCurrentTime() + TimeUtil::HoursToDuration(72);
  *appointment->mutable_end() = appointment->start() + TimeUtil::MinutesToDuration(45);
  appointment->mutable_location()->set_name("Jobcenter Aarhus, Værkmestergade 15");
  appointment->add_attendees()->set_role(common::v1::ROLE_CITIZEN);
  return request;
}

class GracefulShutdownTest : public ::testing::Test {
 protected:
  void SetUp() override {
    topic_ = testing::UniqueName("casebridge.case-events.shutdown");
    ASSERT_OK(kafka::EnsureTopics(testing::TestKafkaConfig(), {topic_}, 3, 1));
    {
      std::ofstream key(dir_.File("pseudonym.key"));
      key << std::string(40, 'k');
    }
    const std::string config = absl::StrCat(R"({
      "municipality": "0751",
      "server": {"listenAddress": "127.0.0.1:0", "portFile": ")", dir_.File("port"), R"(",
                 "insecureDevelopmentMode": true},
      "kafka": {"bootstrapServers": ")", testing::KafkaBootstrap(), R"(", "deliveryTimeout": "5s"},
      "canonicalTopic": ")", topic_, R"(",
      "adapter": {"reference": {"databasePath": ")", dir_.File("system.db"), R"("}},
      "ledgerPath": ")", dir_.File("ledger.db"), R"(",
      "pseudonym": {"keyFile": ")", dir_.File("pseudonym.key"), R"("},
      "shutdownGracePeriod": ")", kGraceSeconds, R"(s"
    })");
    std::ofstream(dir_.File("jobcentre.json")) << config;
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // Starts casebridge-jobcentre with its output in `service.log`, and
  // waits until it listens.
  void StartService() {
    const std::string binary = CASEBRIDGE_JOBCENTRE_BINARY;
    const std::string config = dir_.File("jobcentre.json");
    const std::string log = dir_.File("service.log");
    // posix_spawn, not fork: this process has threads (gRPC, librdkafka).
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    std::vector<char*> argv = {const_cast<char*>(binary.c_str()),
                               const_cast<char*>("--config"),
                               const_cast<char*>(config.c_str()), nullptr};
    const int spawned =
        posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_EQ(spawned, 0) << binary;
    ASSERT_TRUE(PollUntil([&] {
      return !ReadFile(dir_.File("port")).empty() || waitpid(pid_, nullptr, WNOHANG) == pid_;
    }));
    ASSERT_FALSE(ReadFile(dir_.File("port")).empty()) << "the service did not start:\n"
                                                      << ReadFile(log);
    port_ = std::stoi(ReadFile(dir_.File("port")));
  }

  // Waits (at most `timeout`) for the service to exit; returns its wait
  // status, or -1 if it is still running.
  int WaitForExit(absl::Duration timeout) {
    int status = -1;
    PollUntil(
        [&] {
          const pid_t done = waitpid(pid_, &status, WNOHANG);
          if (done == pid_) {
            pid_ = -1;
            return true;
          }
          return false;
        },
        timeout);
    return pid_ == -1 ? status : -1;
  }

  TempDir dir_;
  std::string topic_;
  pid_t pid_ = -1;
  int port_ = 0;
};

TEST_F(GracefulShutdownTest, SigtermMidLoadExitsZeroAndEveryOkCallIsOnTheTopic) {
  ASSERT_NO_FATAL_FAILURE(StartService());
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::JobCentreService::NewStub(channel);

  std::mutex mu;
  std::vector<std::string> ok_event_ids;
  std::atomic<int> ok_calls{0};
  std::atomic<bool> stop{false};
  // Calls answered OK after SIGTERM was sent: those that were in flight.
  std::atomic<bool> signalled{false};
  std::atomic<int> ok_after_signal{0};
  std::vector<std::thread> callers;
  for (int caller = 0; caller < kCallers; ++caller) {
    callers.emplace_back([&, caller] {
      for (int n = 0; !stop; ++n) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
        recording::v1::RecordResponse response;
        const grpc::Status status = stub->BookAppointment(
            &context, Booking(absl::StrCat("shutdown-", caller, "-", n), caller), &response);
        if (status.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          ok_event_ids.push_back(response.event_id());
          ++ok_calls;
          if (signalled) ++ok_after_signal;
        } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                   status.error_code() == grpc::StatusCode::CANCELLED) {
          // Refused once shutdown began (or not durable); CANCELLED is what
          // gRPC answers a call that reached the server as it stopped but
          // never reached the handler. Either way not OK: the caller would
          // retry with the same key against another instance. Done.
          return;
        } else {
          ADD_FAILURE() << "unexpected answer: " << status.error_message();
          return;
        }
      }
    });
  }
  // Under load: some calls answered, many more in flight.
  if (!PollUntil([&] { return ok_calls >= 30; }, absl::Seconds(60))) {
    stop = true;
    for (std::thread& caller : callers) caller.join();
    FAIL() << "no load: " << ok_calls << " OK calls\n" << ReadFile(dir_.File("service.log"));
  }

  signalled = true;
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  const absl::Time signalled_at = absl::Now();
  const int status = WaitForExit(absl::Seconds(kGraceSeconds + 5));
  const absl::Duration took = absl::Now() - signalled_at;
  stop = true;
  for (std::thread& caller : callers) caller.join();

  const std::string log = ReadFile(dir_.File("service.log"));
  ASSERT_NE(status, -1) << "still running " << kGraceSeconds + 5 << " s after SIGTERM\n" << log;
  ASSERT_TRUE(WIFEXITED(status)) << log;
  EXPECT_EQ(WEXITSTATUS(status), 0) << log;
  EXPECT_LE(took, absl::Seconds(kGraceSeconds)) << log;
  EXPECT_THAT(log, ::testing::HasSubstr("\"shut down\""));
  std::cout << "OK calls: " << ok_calls << ", of which answered after SIGTERM: "
            << ok_after_signal << "; exit after " << took << "\n";

  // Every OK answer's event is durable on the canonical topic.
  std::set<std::string> wanted;
  {
    std::lock_guard<std::mutex> lock(mu);
    wanted.insert(ok_event_ids.begin(), ok_event_ids.end());
  }
  ASSERT_GE(wanted.size(), 30u);
  std::set<std::string> on_topic;
  testing::ReadTopic(
      topic_,
      [&](const std::vector<kafka::Record>& records) {
        on_topic.clear();
        for (const kafka::Record& record : records) {
          if (auto id = record.HeaderValue("ce_id"); id.has_value()) on_topic.insert(*id);
        }
        return std::includes(on_topic.begin(), on_topic.end(), wanted.begin(), wanted.end());
      },
      absl::Seconds(30));
  std::vector<std::string> missing;
  std::set_difference(wanted.begin(), wanted.end(), on_topic.begin(), on_topic.end(),
                      std::back_inserter(missing));
  EXPECT_THAT(missing, ::testing::IsEmpty()) << "of " << wanted.size() << " OK calls";
}

// kill -9 mid-load, then a restart over the same ledger and system: every
// call answered OK is on the topic, and every call left without an answer,
// retried with the same key and request, is answered OK with its one event.
TEST_F(GracefulShutdownTest, KillNineMidLoadLosesNothingAndARetryRecordsOnce) {
  ASSERT_NO_FATAL_FAILURE(StartService());
  std::mutex mu;
  std::map<std::string, std::string> ok;  // key → event id
  std::map<std::string, recording::v1::BookAppointmentRequest> unanswered;
  std::atomic<int> ok_calls{0};
  {
    auto stub = v1::JobCentreService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
    std::vector<std::thread> callers;
    for (int caller = 0; caller < kCallers; ++caller) {
      callers.emplace_back([&, caller] {
        for (int n = 0;; ++n) {
          const std::string key = absl::StrCat("kill-", caller, "-", n);
          const recording::v1::BookAppointmentRequest request = Booking(key, caller);
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
          recording::v1::RecordResponse response;
          const grpc::Status status = stub->BookAppointment(&context, request, &response);
          std::lock_guard<std::mutex> lock(mu);
          if (!status.ok()) {
            unanswered[key] = request;  // the process died: outcome unknown
            return;
          }
          ok[key] = response.event_id();
          ++ok_calls;
        }
      });
    }
    const bool loaded = PollUntil([&] { return ok_calls >= 30; }, absl::Seconds(60));
    ASSERT_EQ(kill(pid_, SIGKILL), 0);
    for (std::thread& caller : callers) caller.join();
    ASSERT_TRUE(loaded) << ReadFile(dir_.File("service.log"));
  }
  const int status = WaitForExit(absl::Seconds(10));
  ASSERT_TRUE(WIFSIGNALED(status));

  std::remove(dir_.File("port").c_str());
  ASSERT_NO_FATAL_FAILURE(StartService());
  auto stub = v1::JobCentreService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
  for (const auto& [key, request] : unanswered) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    recording::v1::RecordResponse response;
    const grpc::Status retried = stub->BookAppointment(&context, request, &response);
    ASSERT_TRUE(retried.ok()) << key << ": " << retried.error_message();
    ok[key] = response.event_id();
  }

  std::set<std::string> wanted;
  for (const auto& [key, id] : ok) wanted.insert(id);
  ASSERT_EQ(wanted.size(), ok.size());  // one event per key
  std::set<std::string> on_topic;
  testing::ReadTopic(
      topic_,
      [&](const std::vector<kafka::Record>& records) {
        on_topic.clear();
        for (const kafka::Record& record : records) {
          if (auto id = record.HeaderValue("ce_id"); id.has_value()) on_topic.insert(*id);
        }
        return std::includes(on_topic.begin(), on_topic.end(), wanted.begin(), wanted.end());
      },
      absl::Seconds(30));
  std::vector<std::string> missing;
  std::set_difference(wanted.begin(), wanted.end(), on_topic.begin(), on_topic.end(),
                      std::back_inserter(missing));
  EXPECT_THAT(missing, ::testing::IsEmpty()) << "of " << wanted.size() << " events";
  // Nothing on the topic that no key accounts for.
  EXPECT_EQ(on_topic.size(), wanted.size());
  std::cout << "OK before kill -9: " << ok.size() - unanswered.size()
            << ", unanswered and retried: " << unanswered.size() << "\n";
}

}  // namespace
}  // namespace casebridge
