// Mutual TLS and least-privilege ACLs, end to end, against the secure broker
// of the `secure_kafka_broker` fixture (tests/integration/security/
// secure_broker: dev certificates, SSL listeners with client authentication,
// the StandardAuthorizer and casebridge's ACLs for recipients org-a, org-b).
//
// - Kafka, proven with kcat (an independent client): a recipient reads its own
//   party topic and is denied every other party topic and the audit topic;
//   only the auditor reads the audit topic; a certificate from another CA
//   gets no connection at all.
// - gRPC: the job-centre app with server TLS and Kafka over SSL records an
//   event for a caller with a certificate from the client CA (and the record
//   is on the canonical topic), and refuses callers with no certificate, a
//   certificate from another CA, or plain text (nothing recorded).
// - CallerOf names the caller by its certificate's CN.
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "casebridge/jobcentre/v1/jobcentre_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "services/common/case_system_app.h"
#include "services/common/event_ids.h"
#include "services/common/grpc_client.h"
#include "services/common/grpc_server.h"
#include "services/common/peer_identity.h"
#include "services/jobcentre/jobcentre_system.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/prometheus_text.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge {
namespace {

using ::casebridge::config::v1::ClientTlsConfig;
using ::casebridge::testing::PollUntil;
using ::casebridge::testing::TempDir;
using ::casebridge::testing::UniqueName;
using ::google::protobuf::util::TimeUtil;
using ::testing::HasSubstr;
using ::testing::Not;
namespace v1 = ::casebridge::jobcentre::v1;

constexpr char kCanonicalTopic[] = "casebridge.case-events.v1";
constexpr char kAuditTopic[] = "casebridge.audit.v1";
constexpr char kOrgATopic[] = "casebridge.party.org-a.v1";
constexpr char kOrgBTopic[] = "casebridge.party.org-b.v1";
constexpr char kAuthorizationFailed[] = "Topic authorization failed";

// The fixture's directory; aborts (like KafkaBootstrap) if there is none, so
// that the tests never pass without a secure broker.
std::string SecureDir() {
  const char* dir = std::getenv("CASEBRIDGE_SECURE_KAFKA_DIR");
  if (dir == nullptr || !std::ifstream(absl::StrCat(dir, "/kafka/bootstrap"))) {
    std::cerr << "security_test: no secure broker; run it through ctest (fixture "
                 "secure_kafka_broker) or set CASEBRIDGE_SECURE_KAFKA_DIR to a directory made "
                 "by tests/integration/security/secure_broker start DIR\n";
    std::abort();
  }
  return dir;
}

std::string Bootstrap() {
  std::ifstream in(SecureDir() + "/kafka/bootstrap");
  std::string address;
  std::getline(in, address);
  return std::string(absl::StripAsciiWhitespace(address));
}

// A certificate of the fixture's CA ("certs") or of the foreign one ("other-ca").
std::string CertFile(const std::string& name, const std::string& ca = "certs") {
  return absl::StrCat(SecureDir(), "/", ca, "/", name);
}

ClientTlsConfig ClientTls(const std::string& principal, const std::string& ca = "certs") {
  ClientTlsConfig tls;
  tls.set_ca_file(CertFile("ca.pem"));  // the server is always checked against the real CA
  tls.set_cert_file(CertFile(principal + ".pem", ca));
  tls.set_key_file(CertFile(principal + ".key", ca));
  return tls;
}

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs kcat as `principal` (its certificate from `ca`) with `args`; `input`
// is its stdin (for -P).
CommandResult Kcat(const std::string& principal, const std::string& args,
                   const std::string& input = "", const std::string& ca = "certs") {
  TempDir dir;
  const std::string input_file = dir.File("input");
  std::ofstream(input_file) << input;
  CommandResult result;
  result.output = testing::RunCommand(
      absl::StrCat("kcat -b ", Bootstrap(), " -X security.protocol=ssl -X ssl.ca.location=",
                   CertFile("ca.pem"), " -X ssl.certificate.location=",
                   CertFile(principal + ".pem", ca), " -X ssl.key.location=",
                   CertFile(principal + ".key", ca), " ", args, " <", input_file, " 2>&1"),
      &result.exit_code);
  return result;
}

// Produces `value` to `topic` as `principal`; returns kcat's result.
CommandResult Produce(const std::string& principal, const std::string& topic,
                      const std::string& value) {
  return Kcat(principal, absl::StrCat("-P -t ", topic), value + "\n");
}

// Reads `topic` from the beginning to its end as `principal`, values only.
CommandResult ReadAll(const std::string& principal, const std::string& topic,
                      const std::string& ca = "certs") {
  return Kcat(principal, absl::StrCat("-C -t ", topic, " -o beginning -e -q -m 5 -f '%s\\n'"), "",
              ca);
}

// Reads `topic` as `principal` until its output contains `needle`.
bool EventuallyReads(const std::string& principal, const std::string& topic,
                     const std::string& needle) {
  return PollUntil(
      [&] { return ReadAll(principal, topic).output.find(needle) != std::string::npos; },
      absl::Seconds(20));
}

// ---------------------------------------------------------------- Kafka ACLs

TEST(KafkaAclTest, RecipientReadsWhatCoordinationDeliversToItsTopic) {
  const std::string payload = UniqueName("delivery-for-org-a");
  CommandResult produced = Produce("casebridge-coordination", kOrgATopic, payload);
  ASSERT_EQ(produced.exit_code, 0) << produced.output;
  EXPECT_TRUE(EventuallyReads("org-a", kOrgATopic, payload));
}

TEST(KafkaAclTest, RecipientIsDeniedAnotherRecipientsTopicAndTheAuditTopic) {
  const std::string for_b = UniqueName("delivery-for-org-b");
  const std::string audit = UniqueName("audit-record");
  ASSERT_EQ(Produce("casebridge-coordination", kOrgBTopic, for_b).exit_code, 0);
  ASSERT_EQ(Produce("casebridge-coordination", kAuditTopic, audit).exit_code, 0);
  // The records are there (org-b reads its own) ...
  ASSERT_TRUE(EventuallyReads("org-b", kOrgBTopic, for_b));

  // ... but org-a may not read them.
  CommandResult other_party = ReadAll("org-a", kOrgBTopic);
  EXPECT_NE(other_party.exit_code, 0);
  EXPECT_THAT(other_party.output, HasSubstr(kAuthorizationFailed));
  EXPECT_THAT(other_party.output, Not(HasSubstr(for_b)));

  CommandResult audit_read = ReadAll("org-a", kAuditTopic);
  EXPECT_NE(audit_read.exit_code, 0);
  EXPECT_THAT(audit_read.output, HasSubstr(kAuthorizationFailed));
  EXPECT_THAT(audit_read.output, Not(HasSubstr(audit)));
}

TEST(KafkaAclTest, OnlyTheAuditorReadsTheAuditTopic) {
  const std::string audit = UniqueName("audit-record");
  ASSERT_EQ(Produce("casebridge-coordination", kAuditTopic, audit).exit_code, 0);
  EXPECT_TRUE(EventuallyReads("auditor", kAuditTopic, audit));
  for (const char* other : {"casebridge-coordination", "casebridge-jobcentre", "org-b"}) {
    CommandResult read = ReadAll(other, kAuditTopic);
    EXPECT_NE(read.exit_code, 0) << other;
    EXPECT_THAT(read.output, HasSubstr(kAuthorizationFailed)) << other;
  }
}

TEST(KafkaAclTest, RecipientAndCaseSystemCannotWriteWhereTheyOnlyRead) {
  // A recipient may not inject events into the canonical topic or its own
  // party topic; a case system may not read the canonical topic.
  for (const char* topic : {kCanonicalTopic, kOrgATopic}) {
    CommandResult produced = Produce("org-a", topic, UniqueName("forged"));
    EXPECT_NE(produced.exit_code, 0) << topic;
    EXPECT_THAT(produced.output, HasSubstr(kAuthorizationFailed)) << topic;
  }
  CommandResult read = ReadAll("casebridge-jobcentre", kCanonicalTopic);
  EXPECT_NE(read.exit_code, 0);
  EXPECT_THAT(read.output, HasSubstr(kAuthorizationFailed));
}

TEST(KafkaAclTest, CertificateFromAnotherCaGetsNoConnection) {
  // Same CN "org-a", signed by another CA: the TLS handshake fails.
  const std::string payload = UniqueName("delivery-for-org-a");
  ASSERT_EQ(Produce("casebridge-coordination", kOrgATopic, payload).exit_code, 0);
  CommandResult read = ReadAll("org-a", kOrgATopic, "other-ca");
  EXPECT_NE(read.exit_code, 0);
  EXPECT_THAT(read.output, Not(HasSubstr(payload)));
  EXPECT_THAT(read.output, HasSubstr("transport failure"));
}

// ------------------------------------------------- the job-centre over TLS

recording::v1::RecordDecisionRequest Refusal(const std::string& key) {
  recording::v1::RecordDecisionRequest request;
  auto* context = request.mutable_context();
  context->set_idempotency_key(key);
  context->mutable_case_ref()->set_cpr("150285-1234");
  context->mutable_actor()->set_role(common::v1::ROLE_CASEWORKER);
  context->mutable_actor()->set_unit("Jobcenter Aarhus");
  auto* basis = context->add_legal_basis();
  basis->set_law("LAB");
  basis->set_paragraph("78");
  auto* decision = request.mutable_decision();
  decision->set_outcome(events::v1::DECISION_OUTCOME_REFUSED);
  decision->mutable_offer()->set_code("LAB-mentor");
  decision->mutable_offer()->set_name("Mentorstøtte");
  decision->add_reasons()->set_code("other-support-covers-need");
  decision->mutable_complaint()->set_text("Du kan klage inden 4 uger.");
  decision->mutable_complaint()->set_complaint_body("Ankestyrelsen");
  *decision->mutable_complaint()->mutable_deadline() =
      TimeUtil::GetCurrentTime() + TimeUtil::HoursToDuration(24 * 28);
  decision->mutable_decided_by()->set_role(common::v1::ROLE_CASEWORKER);
  decision->mutable_decided_by()->set_unit("Jobcenter Aarhus");
  return request;
}

class SecureJobCentreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::v1::CaseSystemServiceConfig config;
    config.set_municipality("0751");
    auto* server = config.mutable_server();
    server->set_listen_address("127.0.0.1:0");
    server->mutable_tls()->set_cert_file(CertFile("casebridge-jobcentre.pem"));
    server->mutable_tls()->set_key_file(CertFile("casebridge-jobcentre.key"));
    server->mutable_tls()->set_client_ca_file(CertFile("ca.pem"));
    auto* kafka = config.mutable_kafka();
    kafka->set_bootstrap_servers(Bootstrap());
    *kafka->mutable_tls() = ClientTls("casebridge-jobcentre");
    kafka->mutable_delivery_timeout()->set_seconds(15);
    config.mutable_adapter()->mutable_reference()->set_database_path(dir_.File("system.db"));
    config.set_ledger_path(dir_.File("ledger.db"));
    // org-a is the job centre's case system here; org-b has a valid
    // certificate but no right to record.
    config.mutable_authorization()->add_recorders("org-a");
    config.mutable_observability()->set_metrics_address("127.0.0.1:0");
    absl::StatusOr<std::unique_ptr<CaseSystemApp>> app =
        CaseSystemApp::Start(jobcentre::JobCentreSystem(), config, std::string(40, 'k'));
    ASSERT_OK(app);
    app_ = std::move(*app);
  }

  std::unique_ptr<v1::JobCentreService::Stub> Stub(
      const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
    return v1::JobCentreService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", app_->port()), credentials));
  }
  std::unique_ptr<v1::JobCentreService::Stub> Stub(const ClientTlsConfig& tls) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
        common::ClientCredentials(tls);
    EXPECT_OK(credentials);
    return Stub(*credentials);
  }

  static grpc::Status Record(v1::JobCentreService::Stub& stub, const std::string& key,
                             recording::v1::RecordResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return stub.RecordDecision(&context, Refusal(key), response);
  }

  // The ids of the events on the canonical topic, as kcat prints its headers.
  static std::string CanonicalHeaders() {
    return Kcat("casebridge-coordination",
                absl::StrCat("-C -t ", kCanonicalTopic, " -o beginning -e -q -m 1000 -f '%h\\n'"))
        .output;
  }

  TempDir dir_;
  std::unique_ptr<CaseSystemApp> app_;
};

TEST_F(SecureJobCentreTest, CallerWithACertificateRecordsAndTheEventReachesKafkaOverSsl) {
  const std::string key = UniqueName("tls-caller");
  std::unique_ptr<v1::JobCentreService::Stub> stub = Stub(ClientTls("org-a"));
  recording::v1::RecordResponse response;
  grpc::Status status = Record(*stub, key, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.event_id(), EventIdFor(EventSource("jobcentre", "0751"), key));
  EXPECT_FALSE(response.replayed());

  // Published by the casebridge-jobcentre principal over SSL; read by
  // kcat as the coordination principal.
  EXPECT_TRUE(PollUntil(
      [&] { return CanonicalHeaders().find("ce_id=" + response.event_id()) != std::string::npos; },
      absl::Seconds(20)));
  EXPECT_THAT(CanonicalHeaders(), Not(HasSubstr("1502851234")));
}

// The expiry of every certificate the service loaded is a metric, equal
// to the notAfter openssl reads from the same file.
TEST_F(SecureJobCentreTest, CertificateExpiryIsExposedAsAMetric) {
  absl::StatusOr<std::string> text = testing::HttpGet(app_->metrics_port(), "/metrics");
  ASSERT_OK(text);
  absl::StatusOr<std::vector<testing::MetricSample>> samples = testing::ParsePrometheusText(*text);
  ASSERT_OK(samples);
  for (const std::string& file : {CertFile("casebridge-jobcentre.pem"), CertFile("ca.pem")}) {
    int code = 0;
    // e.g. "notAfter=Dec  7 23:10:04 2036 GMT"
    const std::string end = testing::RunCommand(
        absl::StrCat("date -u -d \"$(openssl x509 -noout -enddate -in ", file,
                     " | cut -d= -f2)\" +%s"),
        &code);
    ASSERT_EQ(code, 0) << end;
    EXPECT_EQ(testing::SumOf(*samples, "casebridge_certificate_expiry_timestamp_seconds",
                             {{"file", file}}),
              std::stod(end))
        << file;
  }
}

TEST_F(SecureJobCentreTest, AValidCertificateWithoutTheRightToRecordIsPermissionDenied) {
  const std::string key = UniqueName("tls-unauthorised");
  std::unique_ptr<v1::JobCentreService::Stub> stub = Stub(ClientTls("org-b"));
  recording::v1::RecordResponse response;
  grpc::Status status = Record(*stub, key, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(),
            "caller \"org-b\" may not record in the jobcentre service (not in "
            "authorization.recorders)");
  // Nothing of it reached Kafka: the id it would have had is absent after an
  // authorised call's event has arrived.
  std::unique_ptr<v1::JobCentreService::Stub> allowed = Stub(ClientTls("org-a"));
  recording::v1::RecordResponse later;
  ASSERT_TRUE(Record(*allowed, UniqueName("tls-after"), &later).ok());
  EXPECT_TRUE(PollUntil(
      [&] { return CanonicalHeaders().find("ce_id=" + later.event_id()) != std::string::npos; },
      absl::Seconds(20)));
  EXPECT_THAT(CanonicalHeaders(),
              Not(HasSubstr(EventIdFor(EventSource("jobcentre", "0751"), key))));
}

TEST_F(SecureJobCentreTest, CallersWithoutAValidClientCertificateAreRefusedAndNothingIsRecorded) {
  struct Refused {
    std::string what;
    std::shared_ptr<grpc::ChannelCredentials> credentials;
  };
  ClientTlsConfig no_certificate;
  no_certificate.set_ca_file(CertFile("ca.pem"));
  std::vector<Refused> refused = {
      {"no client certificate", *common::ClientCredentials(no_certificate)},
      {"a certificate from another CA", *common::ClientCredentials(ClientTls("org-a", "other-ca"))},
      {"plain text", grpc::InsecureChannelCredentials()},
  };
  std::vector<std::string> refused_ids;
  for (const Refused& caller : refused) {
    const std::string key = UniqueName("refused-caller");
    refused_ids.push_back(EventIdFor(EventSource("jobcentre", "0751"), key));
    recording::v1::RecordResponse response;
    grpc::Status status = Record(*Stub(caller.credentials), key, &response);
    EXPECT_FALSE(status.ok()) << caller.what;
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << caller.what;
    EXPECT_TRUE(response.event_id().empty()) << caller.what;
  }

  // A valid call afterwards: once its event is on the topic, the refused
  // ones would have been there before it (one case, one partition, in order).
  const std::string key = UniqueName("valid-caller");
  recording::v1::RecordResponse response;
  ASSERT_TRUE(Record(*Stub(ClientTls("org-a")), key, &response).ok());
  std::string headers;
  ASSERT_TRUE(PollUntil(
      [&] {
        headers = CanonicalHeaders();
        return headers.find("ce_id=" + response.event_id()) != std::string::npos;
      },
      absl::Seconds(20)));
  for (const std::string& id : refused_ids) EXPECT_THAT(headers, Not(HasSubstr(id)));
}

std::string FindGrpcurl() {
  if (const char* path = std::getenv("CASEBRIDGE_GRPCURL"); path != nullptr) return path;
  const char* cache = std::getenv("CASEBRIDGE_CACHE");
  const char* home = std::getenv("HOME");
  const std::string dir = cache != nullptr
                              ? cache
                              : std::string(home != nullptr ? home : "") + "/.cache/casebridge";
  return dir + "/tools/bin/grpcurl";
}

TEST_F(SecureJobCentreTest, GrpcurlNeedsAClientCertificateFromTheClientCa) {
  // grpcurl (Go's TLS stack) is an independent client: the same server
  // accepts it with a certificate from the client CA and refuses it without.
  const std::string grpcurl = FindGrpcurl();
  if (!std::ifstream(grpcurl)) {
    GTEST_SKIP() << "grpcurl not installed at " << grpcurl << " (deploy/local/install-tools)";
  }
  const std::string target = absl::StrCat("127.0.0.1:", app_->port());
  const std::string list = absl::StrCat(" -connect-timeout 5 ", target, " list 2>&1");
  int code = -1;
  const std::string with_certificate = testing::RunCommand(
      absl::StrCat(grpcurl, " -cacert ", CertFile("ca.pem"), " -cert ", CertFile("org-a.pem"),
                   " -key ", CertFile("org-a.key"), list),
      &code);
  EXPECT_EQ(code, 0) << with_certificate;
  EXPECT_THAT(with_certificate, HasSubstr("casebridge.jobcentre.v1.JobCentreService"));

  for (const std::string& flags :
       {absl::StrCat(" -cacert ", CertFile("ca.pem")),
        absl::StrCat(" -cacert ", CertFile("ca.pem"), " -cert ", CertFile("org-a.pem", "other-ca"),
                     " -key ", CertFile("org-a.key", "other-ca")),
        std::string(" -plaintext")}) {
    const std::string refused = testing::RunCommand(grpcurl + flags + list, &code);
    EXPECT_NE(code, 0) << flags << ": " << refused;
    EXPECT_THAT(refused, Not(HasSubstr("casebridge.jobcentre.v1.JobCentreService"))) << flags;
  }
}

// ----------------------------------------------------------------- CallerOf

// Answers RecordDecision with who called: subject = identity, replayed =
// development mode.
class WhoIsCalling final : public v1::JobCentreService::Service {
  grpc::Status RecordDecision(grpc::ServerContext* context,
                              const recording::v1::RecordDecisionRequest*,
                              recording::v1::RecordResponse* response) override {
    const common::Caller caller = common::CallerOf(*context);
    response->set_subject(caller.identity);
    response->set_replayed(caller.development);
    return grpc::Status::OK;
  }
};

common::Caller Ask(int port, const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                   const std::string& development_identity = "") {
  auto stub = v1::JobCentreService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), credentials));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!development_identity.empty()) {
    context.AddMetadata(common::kDevelopmentIdentityHeader, development_identity);
  }
  recording::v1::RecordResponse response;
  grpc::Status status = stub->RecordDecision(&context, {}, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return common::Caller{response.subject(), response.replayed()};
}

TEST(CallerOfTest, IsTheClientCertificatesCommonNameUnderMutualTls) {
  WhoIsCalling service;
  config::v1::ServerConfig config;
  config.set_listen_address("127.0.0.1:0");
  config.mutable_tls()->set_cert_file(CertFile("casebridge-jobcentre.pem"));
  config.mutable_tls()->set_key_file(CertFile("casebridge-jobcentre.key"));
  config.mutable_tls()->set_client_ca_file(CertFile("ca.pem"));
  absl::StatusOr<StartedServer> server = StartGrpcServer(config, {&service});
  ASSERT_OK(server);

  for (const char* name : {"org-a", "casebridge-coordination", "auditor"}) {
    // The development header is ignored when a certificate names the caller.
    common::Caller caller = Ask(server->port, *common::ClientCredentials(ClientTls(name)),
                                "casebridge-admin");
    EXPECT_EQ(caller.identity, name);
    EXPECT_FALSE(caller.development);
    EXPECT_FALSE(caller.superuser());
  }
  server->server->Shutdown();
}

TEST(CallerOfTest, InDevelopmentModeIsTheNameTheCallerGivesOrTheSuperuser) {
  WhoIsCalling service;
  config::v1::ServerConfig config;
  config.set_listen_address("127.0.0.1:0");
  config.set_insecure_development_mode(true);
  absl::StatusOr<StartedServer> server = StartGrpcServer(config, {&service});
  ASSERT_OK(server);
  common::Caller named = Ask(server->port, grpc::InsecureChannelCredentials(), "org-a");
  EXPECT_EQ(named.identity, "org-a");
  EXPECT_TRUE(named.development);
  common::Caller anonymous = Ask(server->port, grpc::InsecureChannelCredentials());
  EXPECT_TRUE(anonymous.superuser());
  server->server->Shutdown();
}

}  // namespace
}  // namespace casebridge
