// The security settings of the config: the gRPC server must choose mutual TLS
// or insecure development mode, TLS files are checked with errors naming the
// field, and `kafka.tls` becomes librdkafka's SSL properties. Certificates
// come from deploy/local/dev-certs (openssl), made once for this binary.
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "casebridge/config/v1/config.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/grpc_client.h"
#include "services/common/grpc_server.h"
#include "services/common/kafka/kafka_config.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace casebridge {
namespace {

using ::casebridge::config::v1::ClientTlsConfig;
using ::casebridge::config::v1::KafkaConfig;
using ::casebridge::config::v1::ServerConfig;
using ::casebridge::testing::StatusIs;
using ::casebridge::testing::TempDir;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Pair;

// One development CA with two names, and a second CA, for the whole binary.
class TlsConfigTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new TempDir();
    for (const char* dir : {"ca", "other"}) {
      int exit_code = 0;
      const std::string out = testing::RunCommand(
          absl::StrCat(testing::SourceDir(), "/deploy/local/dev-certs --dir ", certs_->File(dir),
                       " --days 2 casebridge-jobcentre org-a 2>&1"),
          &exit_code);
      ASSERT_EQ(exit_code, 0) << out;
    }
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }
  static std::string Cert(const std::string& ca, const std::string& file) {
    return certs_->File(ca + "/" + file);
  }
  static ServerConfig TlsServer() {
    ServerConfig config;
    config.set_listen_address("127.0.0.1:0");
    config.mutable_tls()->set_cert_file(Cert("ca", "casebridge-jobcentre.pem"));
    config.mutable_tls()->set_key_file(Cert("ca", "casebridge-jobcentre.key"));
    config.mutable_tls()->set_client_ca_file(Cert("ca", "ca.pem"));
    return config;
  }
  std::string WriteFile(const std::string& name, const std::string& contents) {
    std::ofstream(dir_.File(name)) << contents;
    return dir_.File(name);
  }

  static TempDir* certs_;
  TempDir dir_;
};

TempDir* TlsConfigTest::certs_ = nullptr;

TEST_F(TlsConfigTest, ServerWithoutTlsOrDevelopmentModeIsRefused) {
  ServerConfig config;
  config.set_listen_address("127.0.0.1:0");
  EXPECT_THAT(ValidateServerSecurity(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "server.tls: required (mutual TLS); set server.insecure_development_mode "
                       "only for local development"));
  EXPECT_THAT(StartGrpcServer(config, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("server.tls: required")));
}

TEST_F(TlsConfigTest, ServerWithTlsAndDevelopmentModeIsRefused) {
  ServerConfig config = TlsServer();
  config.set_insecure_development_mode(true);
  EXPECT_THAT(ValidateServerSecurity(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("server.insecure_development_mode: must not be set together "
                                 "with server.tls")));
}

TEST_F(TlsConfigTest, ServerTlsNamesTheMissingField) {
  ServerConfig config = TlsServer();
  config.mutable_tls()->clear_client_ca_file();
  EXPECT_THAT(ValidateServerSecurity(config),
              StatusIs(absl::StatusCode::kInvalidArgument, "server.tls.client_ca_file: required"));
}

TEST_F(TlsConfigTest, ServerTlsNamesTheUnreadableFile) {
  ServerConfig config = TlsServer();
  config.mutable_tls()->set_key_file(dir_.File("missing.key"));
  EXPECT_OK(ValidateServerSecurity(config));  // reads no files
  EXPECT_THAT(ServerCredentials(config).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("server.tls.key_file: cannot read ", dir_.File("missing.key"))));
}

TEST_F(TlsConfigTest, ServerTlsRejectsAFileThatIsNotPem) {
  ServerConfig config = TlsServer();
  config.mutable_tls()->set_client_ca_file(WriteFile("ca.pem", "not a certificate\n"));
  EXPECT_THAT(ServerCredentials(config).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("server.tls.client_ca_file: ")));
  EXPECT_THAT(ServerCredentials(config).status().message(), HasSubstr("holds no PEM certificate"));
}

TEST_F(TlsConfigTest, ServerTlsRejectsAKeyOfAnotherCertificate) {
  ServerConfig config = TlsServer();
  config.mutable_tls()->set_key_file(Cert("ca", "org-a.key"));
  EXPECT_THAT(ServerCredentials(config).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "server.tls.key_file: does not belong to the certificate in "
                       "server.tls.cert_file"));
}

TEST_F(TlsConfigTest, ServerWithTlsStartsAndDevelopmentModeStarts) {
  absl::StatusOr<StartedServer> tls = StartGrpcServer(TlsServer(), {});
  ASSERT_OK(tls);
  EXPECT_GT(tls->port, 0);
  tls->server->Shutdown();

  ServerConfig insecure;
  insecure.set_listen_address("127.0.0.1:0");
  insecure.set_insecure_development_mode(true);
  absl::StatusOr<StartedServer> plain = StartGrpcServer(insecure, {});
  ASSERT_OK(plain);
  plain->server->Shutdown();
}

TEST_F(TlsConfigTest, ClientCredentialsCheckTheirFiles) {
  EXPECT_OK(common::ClientCredentials(ClientTlsConfig()));  // insecure
  ClientTlsConfig tls;
  tls.set_ca_file(Cert("ca", "ca.pem"));
  EXPECT_OK(common::ClientCredentials(tls));  // server-authenticated TLS only
  tls.set_cert_file(Cert("ca", "org-a.pem"));
  EXPECT_THAT(common::ClientCredentials(tls).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "tls.key_file: required together with tls.cert_file"));
  tls.set_key_file(Cert("ca", "org-a.key"));
  EXPECT_OK(common::ClientCredentials(tls));
  tls.set_key_file(Cert("other", "org-a.key"));
  EXPECT_THAT(common::ClientCredentials(tls).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tls.key_file: does not belong to the certificate")));
  tls.clear_ca_file();
  tls.set_key_file(Cert("ca", "org-a.key"));
  EXPECT_THAT(common::ClientCredentials(tls).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "tls.ca_file: required"));
}

KafkaConfig KafkaWithTls() {
  KafkaConfig config;
  config.set_bootstrap_servers("127.0.0.1:9093");
  config.mutable_tls()->set_ca_file("/certs/ca.pem");
  config.mutable_tls()->set_cert_file("/certs/casebridge-jobcentre.pem");
  config.mutable_tls()->set_key_file("/certs/casebridge-jobcentre.key");
  return config;
}

TEST_F(TlsConfigTest, KafkaTlsBecomesLibrdkafkaSslProperties) {
  KafkaConfig config = KafkaWithTls();
  (*config.mutable_properties())["ssl.endpoint.identification.algorithm"] = "none";
  EXPECT_OK(kafka::ValidateKafkaConfig(config));
  const auto properties = kafka::ClientProperties(config);
  EXPECT_THAT(properties, Contains(Pair("security.protocol", "ssl")));
  EXPECT_THAT(properties, Contains(Pair("ssl.ca.location", "/certs/ca.pem")));
  EXPECT_THAT(properties,
              Contains(Pair("ssl.certificate.location", "/certs/casebridge-jobcentre.pem")));
  EXPECT_THAT(properties, Contains(Pair("ssl.key.location", "/certs/casebridge-jobcentre.key")));
  // The free-form properties still apply.
  EXPECT_THAT(properties, Contains(Pair("ssl.endpoint.identification.algorithm", "none")));
  EXPECT_THAT(kafka::ClientProperties(KafkaConfig()),
              ::testing::Not(Contains(Pair("security.protocol", ::testing::_))));
}

TEST_F(TlsConfigTest, KafkaTlsRefusesConflictsAndHalfPairs) {
  KafkaConfig config = KafkaWithTls();
  (*config.mutable_properties())["security.protocol"] = "plaintext";
  EXPECT_THAT(kafka::ValidateKafkaConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "kafka.properties: \"security.protocol\" cannot be set together with "
                       "kafka.tls"));
  config = KafkaWithTls();
  config.mutable_tls()->clear_ca_file();
  EXPECT_THAT(kafka::ValidateKafkaConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, "kafka.tls.ca_file: required"));
  config = KafkaWithTls();
  config.mutable_tls()->clear_key_file();
  EXPECT_THAT(kafka::ValidateKafkaConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "kafka.tls.key_file: required together with kafka.tls.cert_file"));
}

TEST_F(TlsConfigTest, KafkaTlsFilesAreChecked) {
  KafkaConfig config = KafkaWithTls();
  EXPECT_THAT(kafka::CheckKafkaTlsFiles(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "kafka.tls.ca_file: cannot read /certs/ca.pem"));
  config.mutable_tls()->set_ca_file(Cert("ca", "ca.pem"));
  config.mutable_tls()->set_cert_file(Cert("ca", "casebridge-jobcentre.pem"));
  config.mutable_tls()->set_key_file(Cert("ca", "casebridge-jobcentre.key"));
  EXPECT_OK(kafka::CheckKafkaTlsFiles(config));
  config.mutable_tls()->set_key_file(Cert("ca", "casebridge-jobcentre.pem"));
  EXPECT_THAT(kafka::CheckKafkaTlsFiles(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("kafka.tls.key_file: ")));
}

}  // namespace
}  // namespace casebridge
