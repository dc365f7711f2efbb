// CaseSystemApp as the binaries run it, over librdkafka's mock cluster and a
// vendor that hangs: every vendor call is cut off at `adapter.call_timeout`,
// and after `adapter.resilience.failure_threshold` timeouts the circuit
// answers at once.
#include "services/common/case_system_app.h"

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "casebridge/jobcentre/v1/jobcentre_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "services/jobcentre/jobcentre_system.h"
#include "tests/support/mock_kafka.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge {
namespace {

using ::casebridge::events::v1::Appointment;
using ::casebridge::events::v1::Decision;
using ::casebridge::events::v1::Referral;
using ::casebridge::testing::GrpcStatusIs;
using ::casebridge::testing::TempDir;
using ::google::protobuf::util::TimeUtil;
using ::testing::HasSubstr;

constexpr char kTopic[] = "casebridge.case-events.v1";

// A vendor system that does not answer until released. Shared with the
// test, which counts the calls that reached it.
struct Hang {
  std::mutex mu;
  std::condition_variable released_cv;
  bool released = false;
  int calls = 0;

  absl::Status Wait() {
    std::unique_lock<std::mutex> lock(mu);
    ++calls;
    released_cv.wait(lock, [&] { return released; });
    return absl::UnavailableError("hanging vendor: released");
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu);
      released = true;
    }
    released_cv.notify_all();
  }
  int Calls() {
    std::lock_guard<std::mutex> lock(mu);
    return calls;
  }
};

class HangingVendor final : public CaseSystemAdapter {
 public:
  explicit HangingVendor(std::shared_ptr<Hang> hang) : hang_(std::move(hang)) {}
  absl::StatusOr<std::string> RecordDecision(const CallOptions&, const Citizen&,
                                             const Decision&) override {
    return hang_->Wait();
  }
  absl::StatusOr<std::string> BookAppointment(const CallOptions&, const Citizen&,
                                              const Appointment&) override {
    return hang_->Wait();
  }
  absl::StatusOr<Appointment> RescheduleAppointment(const CallOptions&, const Citizen&,
                                                    const AppointmentChange&) override {
    return hang_->Wait();
  }
  absl::StatusOr<Appointment> CancelAppointment(const CallOptions&, const Citizen&,
                                                const std::string&, const std::string&) override {
    return hang_->Wait();
  }
  absl::StatusOr<Appointment> RecordAttendance(const CallOptions&, const Citizen&,
                                               const std::string&, bool) override {
    return hang_->Wait();
  }
  absl::StatusOr<Referral> RecordReferralStep(const CallOptions&, const Citizen&,
                                              const Referral&) override {
    return hang_->Wait();
  }
  absl::Status CancelRecord(const CallOptions&, const Citizen&, const std::string&) override {
    return hang_->Wait();
  }

 private:
  std::shared_ptr<Hang> hang_;
};

recording::v1::BookAppointmentRequest Booking(const std::string& key) {
  recording::v1::BookAppointmentRequest request;
  auto* context = request.mutable_context();
  context->set_idempotency_key(key);
  context->mutable_case_ref()->set_cpr("150285-1234");
  context->mutable_actor()->set_role(common::v1::ROLE_CASEWORKER);
  context->mutable_actor()->set_unit("Jobcenter Aarhus");
  auto* appointment = request.mutable_appointment();
  appointment->set_kind(events::v1::APPOINTMENT_KIND_FOLLOW_UP_CONVERSATION);
  *appointment->mutable_start() = TimeUtil::GetCurrentTime() + TimeUtil::HoursToDuration(72);
  *appointment->mutable_end() = appointment->start() + TimeUtil::MinutesToDuration(45);
  appointment->mutable_location()->set_name("Jobcenter Aarhus");
  appointment->add_attendees()->set_role(common::v1::ROLE_CITIZEN);
  return request;
}

TEST(CaseSystemAppTest, AHangingVendorIsCutOffAndThenTheCircuitAnswersAtOnce) {
  testing::MockKafkaCluster cluster(kTopic);
  TempDir dir;
  auto hang = std::make_shared<Hang>();
  CaseSystemDefinition definition = jobcentre::JobCentreSystem();
  definition.new_adapter = [hang](const config::v1::CaseSystemAdapterConfig&)
      -> absl::StatusOr<std::unique_ptr<CaseSystemAdapter>> {
    return std::unique_ptr<CaseSystemAdapter>(new HangingVendor(hang));
  };
  config::v1::CaseSystemServiceConfig config;
  config.set_municipality("0751");
  config.mutable_server()->set_listen_address("127.0.0.1:0");
  config.mutable_server()->set_insecure_development_mode(true);
  config.mutable_kafka()->set_bootstrap_servers(cluster.bootstrap());
  config.mutable_kafka()->mutable_delivery_timeout()->set_seconds(2);
  config.mutable_adapter()->mutable_reference()->set_database_path(dir.File("system.db"));
  config.mutable_adapter()->mutable_call_timeout()->set_nanos(200'000'000);
  config.mutable_adapter()->mutable_resilience()->set_failure_threshold(2);
  config.set_ledger_path(dir.File("ledger.db"));
  config.mutable_shutdown_grace_period()->set_seconds(2);
  absl::StatusOr<std::unique_ptr<CaseSystemApp>> app =
      CaseSystemApp::Start(definition, config, std::string(40, 'k'));
  ASSERT_OK(app);
  auto stub = jobcentre::v1::JobCentreService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string((*app)->port()), grpc::InsecureChannelCredentials()));
  auto book = [&](const std::string& key) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    recording::v1::RecordResponse response;
    return stub->BookAppointment(&context, Booking(key), &response);
  };

  EXPECT_THAT(book("key-1"),
              GrpcStatusIs(grpc::StatusCode::DEADLINE_EXCEEDED,
                           HasSubstr("job-centre system did not answer within the call deadline")));
  EXPECT_THAT(book("key-2"), GrpcStatusIs(grpc::StatusCode::DEADLINE_EXCEEDED, HasSubstr("")));
  const absl::Time before = absl::Now();
  EXPECT_THAT(book("key-3"),
              GrpcStatusIs(grpc::StatusCode::UNAVAILABLE,
                           HasSubstr("job-centre system unavailable: circuit open, retry after")));
  EXPECT_LT(absl::Now() - before, absl::Milliseconds(200));  // no wait on the vendor
  EXPECT_EQ(hang->Calls(), 2);
  EXPECT_EQ(*(*app)->PendingEvents(), 0);

  hang->Release();
  (*app)->Shutdown();
}

}  // namespace
}  // namespace casebridge
