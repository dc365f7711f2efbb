// W3C trace context end to end, in process, on the real broker
// (docs/adr/0022-w3c-trace-context.md): a caller's `traceparent` and
// `tracestate` metadata reach the canonical record, the party delivery and
// its audit record, each hop in a span of its own of the caller's trace. A
// call without a trace gets a new one; an invalid `traceparent` is ignored,
// not refused. Asserted on what crossed the wire.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "casebridge/coordination/v1/coordination_service.grpc.pb.h"
#include "casebridge/jobcentre/v1/jobcentre_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/case_system_app.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/proto_time.h"
#include "services/common/trace_context.h"
#include "services/coordination/audit_log.h"
#include "services/coordination/coordination_app.h"
#include "services/jobcentre/jobcentre_system.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge {
namespace {

using ::casebridge::kafka::Record;
using ::casebridge::testing::ReadTopic;
using ::casebridge::testing::TempDir;
using ::casebridge::testing::UniqueName;

constexpr char kCpr[] = "2908901235";
const std::string kKey(40, 't');
constexpr char kTracestate[] = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

class TraceContextEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    canonical_ = UniqueName("casebridge.case-events.trace");
    audit_topic_ = UniqueName("casebridge.audit.trace");
    jobcenter_topic_ = UniqueName("casebridge.party.aarhus-jobcenter.trace");
    config::v1::KafkaConfig kafka = testing::TestKafkaConfig();
    kafka.set_create_topics(true);

    config::v1::CoordinationServiceConfig coordination;
    coordination.mutable_server()->set_listen_address("127.0.0.1:0");
    coordination.mutable_server()->set_insecure_development_mode(true);
    *coordination.mutable_kafka() = kafka;
    coordination.set_canonical_topic(canonical_);
    coordination.set_audit_topic(audit_topic_);
    coordination.set_dead_letter_topic(UniqueName("casebridge.dead-letter.trace"));
    coordination.set_consumer_group(UniqueName("coordination-trace"));
    coordination.set_municipality("0751");
    coordination.set_store_path(dir_.File("coordination.db"));
    config::v1::Recipient* recipient = coordination.add_recipients();
    recipient->set_id("aarhus-jobcenter");
    recipient->set_topic(jobcenter_topic_);
    auto coordination_app = coordination::CoordinationApp::Start(coordination, kKey);
    ASSERT_OK(coordination_app);
    coordination_app_ = *std::move(coordination_app);

    config::v1::CaseSystemServiceConfig jobcentre;
    jobcentre.set_municipality("0751");
    jobcentre.mutable_server()->set_listen_address("127.0.0.1:0");
    jobcentre.mutable_server()->set_insecure_development_mode(true);
    *jobcentre.mutable_kafka() = kafka;
    jobcentre.set_canonical_topic(canonical_);
    jobcentre.mutable_adapter()->mutable_reference()->set_database_path(dir_.File("jobcentre.db"));
    jobcentre.set_ledger_path(dir_.File("jobcentre-ledger.db"));
    auto jobcentre_app = CaseSystemApp::Start(jobcentre::JobCentreSystem(), jobcentre, kKey);
    ASSERT_OK(jobcentre_app);
    jobcentre_app_ = *std::move(jobcentre_app);

    jobcentre_ = jobcentre::v1::JobCentreService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(jobcentre_app_->port()), grpc::InsecureChannelCredentials()));
    coordination_ = coordination::v1::CoordinationService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(coordination_app_->port()),
        grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (jobcentre_app_) jobcentre_app_->Shutdown();
    if (coordination_app_) coordination_app_->Shutdown();
  }

  // A client context with `metadata` (e.g. traceparent, tracestate).
  static std::unique_ptr<grpc::ClientContext> ContextWith(
      const std::multimap<std::string, std::string>& metadata) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    for (const auto& [key, value] : metadata) context->AddMetadata(key, value);
    return context;
  }

  std::string Assign(const std::multimap<std::string, std::string>& metadata = {}) {
    coordination::v1::AssignRoleRequest request;
    request.set_idempotency_key("assign-jobcenter");
    request.mutable_case_ref()->set_cpr(kCpr);
    request.set_role(common::v1::ROLE_COORDINATING_CASEWORKER);
    request.set_recipient("aarhus-jobcenter");
    request.mutable_actor()->set_role(common::v1::ROLE_COORDINATING_CASEWORKER);
    request.mutable_actor()->set_unit("Jobcenter Aarhus");
    coordination::v1::AssignRoleResponse response;
    const grpc::Status status =
        coordination_->AssignRole(ContextWith(metadata).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.event_id();
  }

  // Books a follow-up conversation under `key` with `metadata`; returns the
  // event id.
  std::string Book(const std::string& key,
                   const std::multimap<std::string, std::string>& metadata) {
    recording::v1::BookAppointmentRequest request;
    request.mutable_context()->set_idempotency_key(key);
    request.mutable_context()->mutable_case_ref()->set_cpr(kCpr);
    request.mutable_context()->mutable_actor()->set_role(common::v1::ROLE_CASEWORKER);
    request.mutable_context()->mutable_actor()->set_unit("Jobcenter Aarhus");
    auto* appointment = request.mutable_appointment();
    appointment->set_kind(events::v1::APPOINTMENT_KIND_FOLLOW_UP_CONVERSATION);
    *appointment->mutable_start() = ToProtoTimestamp(absl::Now() + absl::Hours(72));
    *appointment->mutable_end() = ToProtoTimestamp(absl::Now() + absl::Hours(73));
    appointment->mutable_location()->set_name("Jobcenter Aarhus");
    appointment->add_attendees()->set_role(common::v1::ROLE_CITIZEN);
    recording::v1::RecordResponse response;
    const grpc::Status status =
        jobcentre_->BookAppointment(ContextWith(metadata).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.event_id();
  }

  // The first record of `topic` that `match` accepts (waits for it).
  static std::optional<Record> Find(const std::string& topic,
                                    const std::function<bool(const Record&)>& match) {
    const std::vector<Record> records = ReadTopic(topic, [&](const std::vector<Record>& read) {
      for (const Record& record : read) {
        if (match(record)) return true;
      }
      return false;
    });
    for (const Record& record : records) {
      if (match(record)) return record;
    }
    return std::nullopt;
  }

  static std::optional<Record> FindEvent(const std::string& topic, const std::string& event_id) {
    return Find(topic, [&](const Record& r) { return r.HeaderValue("ce_id") == event_id; });
  }

  // The audit record of the delivery of `event_id` to aarhus-jobcenter.
  std::optional<Record> FindDeliveryAudit(const std::string& event_id) {
    return Find(audit_topic_, [&](const Record& r) {
      absl::StatusOr<audit::v1::AuditRecord> audit = coordination::DecodeAuditRecord(r);
      return audit.ok() && audit->action() == audit::v1::AUDIT_ACTION_DELIVERED &&
             audit->recipient() == "aarhus-jobcenter" && audit->events_size() == 1 &&
             audit->events(0).event_id() == event_id;
    });
  }

  TempDir dir_;
  std::string canonical_;
  std::string audit_topic_;
  std::string jobcenter_topic_;
  std::unique_ptr<coordination::CoordinationApp> coordination_app_;
  std::unique_ptr<CaseSystemApp> jobcentre_app_;
  std::unique_ptr<jobcentre::v1::JobCentreService::Stub> jobcentre_;
  std::unique_ptr<coordination::v1::CoordinationService::Stub> coordination_;
};

TEST_F(TraceContextEndToEndTest, CallersTraceReachesCanonicalRecordPartyDeliveryAndAudit) {
  // The caller's span: a fresh trace id each run, sampled.
  const TraceContext caller = TraceContext::NewRoot();
  Assign();
  const std::string event_id =
      Book("traced-1", {{"traceparent", caller.traceparent()}, {"tracestate", kTracestate}});
  ASSERT_FALSE(event_id.empty());

  // The canonical record: the caller's trace, the job centre's own span.
  std::optional<Record> canonical = FindEvent(canonical_, event_id);
  ASSERT_TRUE(canonical.has_value());
  std::optional<TraceContext> recorded =
      TraceContext::Parse(canonical->HeaderValue("traceparent").value_or(""),
                          canonical->HeaderValue("tracestate").value_or(""));
  ASSERT_TRUE(recorded.has_value()) << canonical->HeaderValue("traceparent").value_or("none");
  EXPECT_EQ(recorded->trace_id(), caller.trace_id());
  EXPECT_NE(recorded->parent_id(), caller.parent_id());
  EXPECT_EQ(recorded->flags(), caller.flags());
  EXPECT_EQ(recorded->tracestate(), kTracestate);
  // The CloudEvents distributed-tracing extension says the same.
  EXPECT_EQ(canonical->HeaderValue("ce_traceparent"), canonical->HeaderValue("traceparent"));
  EXPECT_EQ(canonical->HeaderValue("ce_tracestate"), kTracestate);

  // The party delivery: the same trace, coordination's own span.
  std::optional<Record> delivery = FindEvent(jobcenter_topic_, event_id);
  ASSERT_TRUE(delivery.has_value());
  EXPECT_EQ(delivery->HeaderValue("ce_recipient"), "aarhus-jobcenter");
  std::optional<TraceContext> delivered =
      TraceContext::Parse(delivery->HeaderValue("traceparent").value_or(""),
                          delivery->HeaderValue("tracestate").value_or(""));
  ASSERT_TRUE(delivered.has_value()) << delivery->HeaderValue("traceparent").value_or("none");
  EXPECT_EQ(delivered->trace_id(), caller.trace_id());
  EXPECT_NE(delivered->parent_id(), caller.parent_id());
  EXPECT_NE(delivered->parent_id(), recorded->parent_id());
  EXPECT_EQ(delivered->flags(), caller.flags());
  EXPECT_EQ(delivered->tracestate(), kTracestate);
  EXPECT_EQ(delivery->HeaderValue("ce_traceparent"), delivery->HeaderValue("traceparent"));

  // Its audit record: the delivery's span.
  std::optional<Record> audit = FindDeliveryAudit(event_id);
  ASSERT_TRUE(audit.has_value());
  EXPECT_EQ(audit->HeaderValue("traceparent"), delivery->HeaderValue("traceparent"));
  EXPECT_EQ(audit->HeaderValue("tracestate"), kTracestate);
}

TEST_F(TraceContextEndToEndTest, AssignRoleCarriesTheCallersTraceToo) {
  const TraceContext caller = TraceContext::NewRoot();
  const std::string event_id = Assign({{"traceparent", caller.traceparent()}});
  ASSERT_FALSE(event_id.empty());
  std::optional<Record> canonical = FindEvent(canonical_, event_id);
  ASSERT_TRUE(canonical.has_value());
  const TraceContext recorded = kafka::TraceContextOf(*canonical);
  EXPECT_EQ(recorded.trace_id(), caller.trace_id());
  EXPECT_NE(recorded.parent_id(), caller.parent_id());
  std::optional<Record> delivery = FindEvent(jobcenter_topic_, event_id);
  ASSERT_TRUE(delivery.has_value());
  EXPECT_EQ(kafka::TraceContextOf(*delivery).trace_id(), caller.trace_id());
}

TEST_F(TraceContextEndToEndTest, CallWithoutTraceparentGetsAGeneratedTrace) {
  Assign();
  const std::string event_id = Book("untraced-1", {});
  ASSERT_FALSE(event_id.empty());
  std::optional<Record> canonical = FindEvent(canonical_, event_id);
  ASSERT_TRUE(canonical.has_value());
  std::optional<TraceContext> recorded =
      TraceContext::Parse(canonical->HeaderValue("traceparent").value_or(""));
  ASSERT_TRUE(recorded.has_value()) << canonical->HeaderValue("traceparent").value_or("none");
  EXPECT_EQ(canonical->HeaderValue("tracestate"), std::nullopt);

  std::optional<Record> delivery = FindEvent(jobcenter_topic_, event_id);
  ASSERT_TRUE(delivery.has_value());
  const TraceContext delivered = kafka::TraceContextOf(*delivery);
  EXPECT_EQ(delivered.trace_id(), recorded->trace_id());
  EXPECT_NE(delivered.parent_id(), recorded->parent_id());
}

TEST_F(TraceContextEndToEndTest, InvalidTraceparentIsIgnoredNotAnError) {
  Assign();
  const std::string zero_trace = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
  const std::string upper_case = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
  int n = 0;
  for (const std::string& invalid : {zero_trace, upper_case}) {
    const std::string event_id = Book("invalid-trace-" + std::to_string(++n),
                                      {{"traceparent", invalid}, {"tracestate", kTracestate}});
    ASSERT_FALSE(event_id.empty()) << invalid;  // the call succeeded
    std::optional<Record> canonical = FindEvent(canonical_, event_id);
    ASSERT_TRUE(canonical.has_value());
    const TraceContext recorded = kafka::TraceContextOf(*canonical);
    ASSERT_TRUE(recorded.valid()) << invalid;
    EXPECT_NE(recorded.trace_id(), "00000000000000000000000000000000");
    EXPECT_NE(recorded.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    // A new trace: the caller's tracestate is not carried into it.
    EXPECT_EQ(canonical->HeaderValue("tracestate"), std::nullopt);
  }
}

}  // namespace
}  // namespace casebridge
