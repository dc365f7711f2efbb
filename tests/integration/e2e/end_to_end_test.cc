// End to end, in process, on the real broker: a job-centre decision and an
// appointment reach every party on the case — through the canonical topic,
// the coordination service, each recipient's own topic and the Subscribe
// stream — and nothing reaches an organisation that is not on the case.
// kcat, a client no one here wrote, reads the party topic. The services'
// logs of each test are kept and must hold no CPR number.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "absl/strings/str_split.h"
#include "casebridge/coordination/v1/coordination_service.grpc.pb.h"
#include "casebridge/jobcentre/v1/jobcentre_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/proto_time.h"
#include "services/coordination/coordination_app.h"
#include "services/common/case_system_app.h"
#include "services/jobcentre/jobcentre_system.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge {
namespace {

using ::casebridge::testing::ReadAtLeast;
using ::casebridge::testing::RunCommand;
using ::casebridge::testing::TempDir;
using ::casebridge::testing::UniqueName;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kCpr[] = "2908901235";
const std::string kKey(40, 's');

// One record as kcat printed it.
struct KcatRecord {
  int partition = -1;
  int64_t offset = -1;
  std::string key;
  std::map<std::string, std::string> headers;
};

// Reads every record of `topic` with kcat: partition, offset, key, headers.
std::vector<KcatRecord> KcatRead(const std::string& topic) {
  int code = 0;
  const std::string out = RunCommand("kcat -b " + testing::KafkaBootstrap() + " -C -t " + topic +
                                         " -o beginning -e -q -f '%p\\t%o\\t%k\\t%h\\n' 2>&1",
                                     &code);
  EXPECT_EQ(code, 0) << out;
  std::vector<KcatRecord> records;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    std::vector<std::string> fields = absl::StrSplit(line, '\t');
    if (fields.size() != 4) {
      ADD_FAILURE() << "unexpected kcat line: " << line;
      continue;
    }
    KcatRecord record;
    record.partition = std::stoi(fields[0]);
    record.offset = std::stoll(fields[1]);
    record.key = fields[2];
    for (absl::string_view header : absl::StrSplit(fields[3], ',', absl::SkipEmpty())) {
      std::pair<std::string, std::string> kv = absl::StrSplit(header, absl::MaxSplits('=', 1));
      record.headers[kv.first] = kv.second;
    }
    records.push_back(std::move(record));
  }
  return records;
}

// The raw value of one record, read with kcat.
std::string KcatValue(const std::string& topic, int partition, int64_t offset) {
  int code = 0;
  std::string value = RunCommand("kcat -b " + testing::KafkaBootstrap() + " -C -t " + topic +
                                     " -p " + std::to_string(partition) + " -o " +
                                     std::to_string(offset) + " -c 1 -e -q -f '%s'",
                                 &code);
  EXPECT_EQ(code, 0);
  return value;
}

// Sends this process's stderr, where the in-process services log, to a file
// while it lives, then copies the file back to stderr (so ctest still shows
// the logs of a failing test).
class StderrToFile {
 public:
  explicit StderrToFile(const std::string& path) : path_(path) {
    std::fflush(stderr);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      ADD_FAILURE() << "cannot write " << path;
      return;
    }
    saved_ = ::dup(STDERR_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
  }
  StderrToFile(const StderrToFile&) = delete;
  StderrToFile& operator=(const StderrToFile&) = delete;
  ~StderrToFile() { Restore(); }

  void Restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
    std::ifstream in(path_);
    std::cerr << in.rdbuf() << std::flush;
  }

 private:
  std::string path_;
  int saved_ = -1;
};

class EndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The services' logs of this test, kept in the ctest working directory
    // (the build's tests/integration/e2e/e2e-logs) and scanned in TearDown.
    std::filesystem::create_directories("e2e-logs");
    log_path_ = std::filesystem::absolute(
                    std::filesystem::path("e2e-logs") /
                    (std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
                     ".log"))
                    .string();
    stderr_ = std::make_unique<StderrToFile>(log_path_);

    canonical_ = UniqueName("casebridge.case-events.e2e");
    config::v1::KafkaConfig kafka = testing::TestKafkaConfig();
    kafka.set_create_topics(true);

    config::v1::CoordinationServiceConfig coordination;
    coordination.mutable_server()->set_listen_address("127.0.0.1:0");
    coordination.mutable_server()->set_insecure_development_mode(true);
    *coordination.mutable_kafka() = kafka;
    coordination.set_canonical_topic(canonical_);
    coordination.set_consumer_group(UniqueName("coordination-e2e"));
    coordination.set_municipality("0751");
    coordination.set_store_path(dir_.File("coordination.db"));
    for (const char* id : {"citizen-portal", "aarhus-jobcenter", "mentorhuset", "aarhus-sundhed"}) {
      config::v1::Recipient* recipient = coordination.add_recipients();
      recipient->set_id(id);
      recipient->set_topic(UniqueName(std::string("casebridge.party.") + id));
      topics_[id] = recipient->topic();
    }
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
    jobcentre_app_.reset();  // their last log lines too
    coordination_app_.reset();
    stderr_->Restore();
    // No CPR number in the services' logs: the test's own (kCpr, either
    // spelling) anywhere, nor anything shaped like one
    // (tests/support/cpr_scan.py, its tests in cpr_scan_test.py).
    int code = 0;
    const std::string scan = RunCommand(std::string(CASEBRIDGE_PYTHON3) + " " + CASEBRIDGE_CPR_SCAN +
                                            " --cpr " + kCpr + " " + log_path_ + " 2>&1",
                                        &code);
    EXPECT_EQ(code, 0) << "the services' log " << log_path_ << ":\n" << scan;
  }

  std::string Assign(const std::string& recipient, common::v1::Role role) {
    coordination::v1::AssignRoleRequest request;
    request.set_idempotency_key("assign-" + recipient);
    request.mutable_case_ref()->set_cpr(kCpr);
    request.set_role(role);
    request.set_recipient(recipient);
    request.mutable_actor()->set_role(common::v1::ROLE_COORDINATING_CASEWORKER);
    request.mutable_actor()->set_unit("Jobcenter Aarhus");
    coordination::v1::AssignRoleResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(coordination_->AssignRole(&context, request, &response).ok());
    return response.subject();
  }

  static void FillContext(recording::v1::RecordContext* context, const std::string& key) {
    context->set_idempotency_key(key);
    context->mutable_case_ref()->set_cpr(kCpr);
    context->mutable_actor()->set_role(common::v1::ROLE_CASEWORKER);
    context->mutable_actor()->set_unit("Jobcenter Aarhus");
  }

  recording::v1::RecordResponse Refuse() {
    recording::v1::RecordDecisionRequest request;
    FillContext(request.mutable_context(), "refusal-1");
    auto* basis = request.mutable_context()->add_legal_basis();
    basis->set_law("LAB");
    basis->set_paragraph("78");
    auto* decision = request.mutable_decision();
    decision->set_outcome(events::v1::DECISION_OUTCOME_REFUSED);
    decision->mutable_offer()->set_code("LAB-mentor-extended");
    auto* reason = decision->add_reasons();
    reason->set_code("need-covered-by-other-support");
    reason->set_text("Behovet dækkes af bostøtte efter SEL § 85.");
    decision->add_alternatives()->mutable_offer()->set_code("LAB-mentor");
    decision->mutable_complaint()->set_text("Du kan klage inden 4 uger.");
    *decision->mutable_complaint()->mutable_deadline() =
        ToProtoTimestamp(absl::Now() + absl::Hours(24 * 28));
    decision->mutable_decided_by()->set_role(common::v1::ROLE_CASEWORKER);
    decision->mutable_decided_by()->set_unit("Jobcenter Aarhus");
    recording::v1::RecordResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(jobcentre_->RecordDecision(&context, request, &response).ok());
    return response;
  }

  recording::v1::RecordResponse BookFollowUp() {
    recording::v1::BookAppointmentRequest request;
    FillContext(request.mutable_context(), "follow-up-1");
    auto* appointment = request.mutable_appointment();
    appointment->set_kind(events::v1::APPOINTMENT_KIND_FOLLOW_UP_CONVERSATION);
    *appointment->mutable_start() = ToProtoTimestamp(absl::Now() + absl::Hours(72));
    *appointment->mutable_end() = ToProtoTimestamp(absl::Now() + absl::Hours(73));
    appointment->mutable_location()->set_name("Jobcenter Aarhus");
    appointment->add_attendees()->set_role(common::v1::ROLE_CITIZEN);
    appointment->add_attendees()->set_role(common::v1::ROLE_MENTOR);
    recording::v1::RecordResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(jobcentre_->BookAppointment(&context, request, &response).ok());
    return response;
  }

  std::string log_path_;
  std::unique_ptr<StderrToFile> stderr_;
  TempDir dir_;
  std::string canonical_;
  std::map<std::string, std::string> topics_;
  std::unique_ptr<coordination::CoordinationApp> coordination_app_;
  std::unique_ptr<CaseSystemApp> jobcentre_app_;
  std::unique_ptr<jobcentre::v1::JobCentreService::Stub> jobcentre_;
  std::unique_ptr<coordination::v1::CoordinationService::Stub> coordination_;
};

TEST_F(EndToEndTest, DecisionAndAppointmentReachEveryPartyOnTheCase) {
  const std::string subject = Assign("aarhus-jobcenter", common::v1::ROLE_COORDINATING_CASEWORKER);
  Assign("mentorhuset", common::v1::ROLE_MENTOR);
  Assign("citizen-portal", common::v1::ROLE_CITIZEN);
  const recording::v1::RecordResponse refusal = Refuse();
  const recording::v1::RecordResponse booking = BookFollowUp();
  ASSERT_EQ(refusal.subject(), subject);

  // The mentor joined second: its own role event, the citizen's, then the
  // refusal and the booking — four records, in order, read by kcat.
  ReadAtLeast(topics_["mentorhuset"], 4);  // waits until they are there
  std::vector<KcatRecord> records = KcatRead(topics_["mentorhuset"]);
  ASSERT_EQ(records.size(), 4u);
  std::vector<std::string> types;
  for (size_t i = 0; i < records.size(); ++i) {
    const KcatRecord& r = records[i];
    EXPECT_EQ(r.key, subject);
    EXPECT_EQ(r.headers.at("content-type"), "application/protobuf");
    EXPECT_EQ(r.headers.at("ce_specversion"), "1.0");
    EXPECT_EQ(r.headers.at("ce_subject"), subject);
    EXPECT_EQ(r.headers.at("ce_recipient"), "mentorhuset");
    EXPECT_EQ(std::stoull(r.headers.at("ce_recipientseq")), i + 1);
    EXPECT_EQ(r.partition, records[0].partition);
    types.push_back(r.headers.at("ce_type"));
  }
  EXPECT_THAT(types, ElementsAre("dk.casebridge.role.assigned.v1", "dk.casebridge.role.assigned.v1",
                                 "dk.casebridge.decision.refused.v1",
                                 "dk.casebridge.appointment.scheduled.v1"));
  EXPECT_EQ(records[2].headers.at("ce_id"), refusal.event_id());
  EXPECT_EQ(records[2].headers.at("ce_source"), "/casebridge/jobcentre/0751");
  EXPECT_EQ(records[3].headers.at("ce_id"), booking.event_id());

  // The refusal's value, as kcat read it, is the CaseEvent with its content.
  events::v1::CaseEvent event;
  ASSERT_TRUE(event.ParseFromString(
      KcatValue(topics_["mentorhuset"], records[2].partition, records[2].offset)));
  EXPECT_EQ(event.id(), refusal.event_id());
  EXPECT_EQ(event.decision().reasons(0).code(), "need-covered-by-other-support");
  EXPECT_EQ(event.decision().alternatives(0).offer().code(), "LAB-mentor");
  EXPECT_EQ(event.decision().decision_id(), refusal.record_id());

  // The coordinating caseworker and the citizen get both events too.
  for (const char* recipient : {"aarhus-jobcenter", "citizen-portal"}) {
    std::vector<kafka::Record> got = ReadAtLeast(topics_[recipient], 2);
    std::vector<std::string> ids;
    for (const kafka::Record& r : got) ids.push_back(*r.HeaderValue("ce_id"));
    EXPECT_THAT(ids, ::testing::IsSupersetOf({refusal.event_id(), booking.event_id()})) << recipient;
  }
  // The health administration is configured but not on this case.
  EXPECT_TRUE(KcatRead(topics_["aarhus-sundhed"]).empty());
}

TEST_F(EndToEndTest, SubscribeStreamsTheSameDeliveriesAndResumes) {
  const std::string subject = Assign("citizen-portal", common::v1::ROLE_CITIZEN);
  const recording::v1::RecordResponse refusal = Refuse();
  const recording::v1::RecordResponse booking = BookFollowUp();

  auto read = [&](uint64_t after, size_t count) {
    coordination::v1::SubscribeRequest request;
    request.set_recipient("citizen-portal");
    request.set_after_stream_sequence(after);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto reader = coordination_->Subscribe(&context, request);
    std::vector<coordination::v1::Delivery> deliveries;
    coordination::v1::Delivery delivery;
    while (deliveries.size() < count && reader->Read(&delivery)) deliveries.push_back(delivery);
    context.TryCancel();
    return deliveries;
  };
  std::vector<coordination::v1::Delivery> all = read(0, 3);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].event().type(), "dk.casebridge.role.assigned.v1");
  EXPECT_EQ(all[1].event().id(), refusal.event_id());
  EXPECT_EQ(all[2].event().id(), booking.event_id());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].case_sequence(), i + 1);
    EXPECT_EQ(all[i].subject(), subject);
    EXPECT_EQ(all[i].recipient(), "citizen-portal");
  }
  // Resume after the first: the rest, nothing repeated.
  std::vector<coordination::v1::Delivery> rest = read(all[0].stream_sequence(), 2);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].event().id(), refusal.event_id());
  EXPECT_EQ(rest[1].event().id(), booking.event_id());
}

TEST_F(EndToEndTest, NoCprNumberOnAnyTopic) {
  Assign("aarhus-jobcenter", common::v1::ROLE_COORDINATING_CASEWORKER);
  Refuse();
  BookFollowUp();
  ReadAtLeast(topics_["aarhus-jobcenter"], 3);
  std::vector<std::string> topics = {canonical_};
  for (const auto& [id, topic] : topics_) topics.push_back(topic);
  for (const std::string& topic : topics) {
    int code = 0;
    const std::string all = RunCommand("kcat -b " + testing::KafkaBootstrap() + " -C -t " + topic +
                                           " -o beginning -e -q -f '%k %h %s\\n' 2>/dev/null",
                                       &code);
    EXPECT_THAT(all, Not(HasSubstr(kCpr))) << topic;
    EXPECT_THAT(all, Not(HasSubstr("290890-1235"))) << topic;
  }
}

}  // namespace
}  // namespace casebridge
