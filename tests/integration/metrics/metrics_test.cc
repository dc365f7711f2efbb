// Observability on the real broker: the job-centre binary runs as a
// subprocess (exactly as deployed) and the coordination service in process,
// both with their Prometheus endpoint and probe port. Callers record
// decisions (and some invalid requests) while a scraper reads /metrics
// over and over; afterwards every documented series is there and its value
// matches what really happened — the calls made, the records on the
// canonical topic, the records on each party topic.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "casebridge/coordination/v1/coordination_service.grpc.pb.h"
#include "casebridge/jobcentre/v1/jobcentre_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/kafka/consumer.h"
#include "services/common/kafka/kafka_publisher.h"
#include "services/common/proto_time.h"
#include "services/coordination/coordination_app.h"
#include "tests/support/kafka_reader.h"
#include "tests/support/prometheus_text.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

extern char** environ;

namespace casebridge {
namespace {

using ::casebridge::testing::HealthStatus;
using ::casebridge::testing::HttpGet;
using ::casebridge::testing::MetricSample;
using ::casebridge::testing::ParsePrometheusText;
using ::casebridge::testing::PollUntil;
using ::casebridge::testing::StatusIs;
using ::casebridge::testing::SumOf;
using ::casebridge::testing::TempDir;
using ::casebridge::testing::UniqueName;

constexpr int kCases = 10;
constexpr int kCallers = 4;
constexpr int kDecisionsPerCaller = 30;
constexpr int kInvalid = 5;
constexpr char kJobCentre[] = "casebridge.jobcentre.v1.JobCentreService";
constexpr char kCoordination[] = "casebridge.coordination.v1.CoordinationService";
const std::string kKey(40, 'm');

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string Cpr(int i) { return absl::StrCat(10 + i, "0390-1235"); }

recording::v1::RecordDecisionRequest Decision(const std::string& key, int case_index) {
  recording::v1::RecordDecisionRequest request;
  auto* context = request.mutable_context();
  context->set_idempotency_key(key);
  context->mutable_case_ref()->set_cpr(Cpr(case_index));
  context->mutable_actor()->set_role(common::v1::ROLE_CASEWORKER);
  context->mutable_actor()->set_unit("Jobcenter Aarhus");
  auto* basis = context->add_legal_basis();
  basis->set_law("LAB");
  basis->set_paragraph("78");
  auto* decision = request.mutable_decision();
  decision->set_outcome(events::v1::DECISION_OUTCOME_GRANTED);
  decision->mutable_offer()->set_code("LAB-mentor");
  decision->mutable_decided_by()->set_role(common::v1::ROLE_CASEWORKER);
  decision->mutable_decided_by()->set_unit("Jobcenter Aarhus");
  return request;
}

// The whole scrape, parsed; fails the test if it does not parse.
std::vector<MetricSample> Scrape(int port, std::string* text = nullptr) {
  absl::StatusOr<std::string> body = HttpGet(port, "/metrics");
  EXPECT_OK(body);
  if (!body.ok()) return {};
  if (text != nullptr) *text = *body;
  absl::StatusOr<std::vector<MetricSample>> samples = ParsePrometheusText(*body);
  EXPECT_OK(samples);
  return samples.ok() ? *samples : std::vector<MetricSample>{};
}

double Value(const std::vector<MetricSample>& samples, const std::string& name,
             const std::map<std::string, std::string>& labels = {}) {
  return SumOf(samples, name, labels).value_or(-1);
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    canonical_ = UniqueName("casebridge.case-events.metrics");
    config::v1::KafkaConfig kafka = testing::TestKafkaConfig();
    kafka.set_create_topics(true);

    config::v1::CoordinationServiceConfig coordination;
    coordination.mutable_server()->set_listen_address("127.0.0.1:0");
    coordination.mutable_server()->set_insecure_development_mode(true);
    *coordination.mutable_kafka() = kafka;
    coordination.set_canonical_topic(canonical_);
    coordination.set_consumer_group(UniqueName("coordination-metrics"));
    coordination.set_municipality("0751");
    coordination.set_store_path(dir_.File("coordination.db"));
    coordination.mutable_observability()->set_metrics_address("127.0.0.1:0");
    coordination.mutable_observability()->set_health_address("127.0.0.1:0");
    coordination.mutable_observability()->mutable_kafka_check_interval()->set_seconds(1);
    for (const char* id : {"aarhus-jobcenter", "mentorhuset"}) {
      config::v1::Recipient* recipient = coordination.add_recipients();
      recipient->set_id(id);
      recipient->set_topic(UniqueName(std::string("casebridge.party.") + id));
      party_topics_[id] = recipient->topic();
    }
    auto app = coordination::CoordinationApp::Start(coordination, kKey);
    ASSERT_OK(app);
    coordination_app_ = *std::move(app);
    coordination_ = coordination::v1::CoordinationService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", coordination_app_->port()), grpc::InsecureChannelCredentials()));

    std::ofstream(dir_.File("pseudonym.key")) << kKey;
    std::ofstream(dir_.File("jobcentre.json")) << absl::StrCat(R"({
      "municipality": "0751",
      "server": {"listenAddress": "127.0.0.1:0", "portFile": ")", dir_.File("port"), R"(",
                 "insecureDevelopmentMode": true},
      "kafka": {"bootstrapServers": ")", testing::KafkaBootstrap(), R"(", "deliveryTimeout": "10s"},
      "canonicalTopic": ")", canonical_, R"(",
      "adapter": {"reference": {"databasePath": ")", dir_.File("system.db"), R"("}},
      "ledgerPath": ")", dir_.File("ledger.db"), R"(",
      "pseudonym": {"keyFile": ")", dir_.File("pseudonym.key"), R"("},
      "observability": {"metricsAddress": "127.0.0.1:0", "metricsPortFile": ")",
                        dir_.File("metrics-port"), R"(",
                        "healthAddress": "127.0.0.1:0", "healthPortFile": ")",
                        dir_.File("health-port"), R"(",
                        "kafkaCheckInterval": "1s", "logLevel": "info"}
    })");
    StartJobCentre();
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (coordination_app_) coordination_app_->Shutdown();
  }

  void StartJobCentre() {
    const std::string binary = CASEBRIDGE_JOBCENTRE_BINARY;
    const std::string config = dir_.File("jobcentre.json");
    const std::string log = dir_.File("jobcentre.log");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> argv = {const_cast<char*>(binary.c_str()), const_cast<char*>("--config"),
                               const_cast<char*>(config.c_str()), nullptr};
    ASSERT_EQ(posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    // The metrics and probe ports are written after the server's.
    ASSERT_TRUE(PollUntil([&] {
      return (!ReadFile(dir_.File("port")).empty() &&
              !ReadFile(dir_.File("metrics-port")).empty() &&
              !ReadFile(dir_.File("health-port")).empty()) ||
             waitpid(pid_, nullptr, WNOHANG) == pid_;
    })) << ReadFile(log);
    ASSERT_FALSE(ReadFile(dir_.File("port")).empty()) << ReadFile(log);
    port_ = std::stoi(ReadFile(dir_.File("port")));
    metrics_port_ = std::stoi(ReadFile(dir_.File("metrics-port")));
    health_port_ = std::stoi(ReadFile(dir_.File("health-port")));
    jobcentre_ = jobcentre::v1::JobCentreService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
  }

  void Assign(int case_index, const std::string& recipient, common::v1::Role role) {
    coordination::v1::AssignRoleRequest request;
    request.set_idempotency_key(absl::StrCat("assign-", case_index, "-", recipient));
    request.mutable_case_ref()->set_cpr(Cpr(case_index));
    request.set_role(role);
    request.set_recipient(recipient);
    request.mutable_actor()->set_role(common::v1::ROLE_COORDINATING_CASEWORKER);
    request.mutable_actor()->set_unit("Jobcenter Aarhus");
    coordination::v1::AssignRoleResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(coordination_->AssignRole(&context, request, &response).ok());
  }

  TempDir dir_;
  std::string canonical_;
  std::map<std::string, std::string> party_topics_;
  std::unique_ptr<coordination::CoordinationApp> coordination_app_;
  std::unique_ptr<coordination::v1::CoordinationService::Stub> coordination_;
  std::unique_ptr<jobcentre::v1::JobCentreService::Stub> jobcentre_;
  pid_t pid_ = -1;
  int port_ = 0;
  int metrics_port_ = 0;
  int health_port_ = 0;
};

TEST_F(MetricsTest, ScrapedUnderLoadTheSeriesMatchWhatCrossedTheWire) {
  for (int i = 0; i < kCases; ++i) {
    Assign(i, "aarhus-jobcenter", common::v1::ROLE_CASEWORKER);
    Assign(i, "mentorhuset", common::v1::ROLE_MENTOR);
  }
  // A Subscribe stream stays open while the load runs.
  grpc::ClientContext subscribe_context;
  coordination::v1::SubscribeRequest subscribe;
  subscribe.set_recipient("mentorhuset");
  std::unique_ptr<grpc::ClientReader<coordination::v1::Delivery>> stream =
      coordination_->Subscribe(&subscribe_context, subscribe);

  // The scraper: every scrape parses, and no counter ever goes down.
  std::atomic<bool> load_done{false};
  std::atomic<int> scrapes{0};
  std::thread scraper([&] {
    std::map<std::string, double> last;
    while (!load_done) {
      for (int port : {metrics_port_, coordination_app_->metrics_port()}) {
        for (const MetricSample& sample : Scrape(port)) {
          if (!absl::EndsWith(sample.name, "_total") && !absl::EndsWith(sample.name, "_count")) {
            continue;
          }
          std::string key = absl::StrCat(port, sample.name);
          for (const auto& [k, v] : sample.labels) absl::StrAppend(&key, ",", k, "=", v);
          EXPECT_GE(sample.value, last[key]) << key;
          last[key] = sample.value;
        }
      }
      ++scrapes;
    }
  });
  // Stopped and joined however the test ends (an ASSERT returns early).
  absl::Cleanup stop_scraper = [&] {
    load_done = true;
    if (scraper.joinable()) scraper.join();
  };

  std::vector<std::thread> callers;
  std::atomic<int> ok{0};
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int i = 0; i < kDecisionsPerCaller; ++i) {
        recording::v1::RecordResponse response;
        grpc::ClientContext context;
        const grpc::Status status = jobcentre_->RecordDecision(
            &context, Decision(absl::StrCat("decision-", c, "-", i), (c * 7 + i) % kCases),
            &response);
        EXPECT_TRUE(status.ok()) << status.error_message();
        if (status.ok()) ++ok;
      }
    });
  }
  for (int i = 0; i < kInvalid; ++i) {
    recording::v1::RecordDecisionRequest bad = Decision(absl::StrCat("bad-", i), 0);
    bad.mutable_decision()->clear_offer();
    bad.mutable_context()->clear_legal_basis();
    bad.mutable_decision()->set_outcome(events::v1::DECISION_OUTCOME_UNSPECIFIED);
    recording::v1::RecordResponse response;
    grpc::ClientContext context;
    EXPECT_EQ(jobcentre_->RecordDecision(&context, bad, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  for (std::thread& caller : callers) caller.join();
  ASSERT_EQ(ok, kCallers * kDecisionsPerCaller);

  // What crossed the wire: the job centre's records on the canonical topic.
  const int decisions = kCallers * kDecisionsPerCaller;
  std::vector<kafka::Record> canonical = testing::ReadTopic(canonical_, [&](const auto& records) {
    int from_jobcentre = 0;
    for (const kafka::Record& record : records) {
      for (const kafka::Header& header : record.headers) {
        if (header.key == "ce_source" && absl::StrContains(header.value, "jobcentre")) {
          ++from_jobcentre;
        }
      }
    }
    return from_jobcentre >= decisions;
  });
  std::map<std::string, int> jobcentre_types;
  for (const kafka::Record& record : canonical) {
    std::string source, type;
    for (const kafka::Header& header : record.headers) {
      if (header.key == "ce_source") source = header.value;
      if (header.key == "ce_type") type = header.value;
    }
    if (absl::StrContains(source, "jobcentre")) ++jobcentre_types[type];
  }
  ASSERT_FALSE(jobcentre_types.empty());

  // The job centre, scraped after the load.
  std::string text;
  ASSERT_TRUE(PollUntil([&] {
    std::vector<MetricSample> s = Scrape(metrics_port_);
    return Value(s, "casebridge_outbox_events") == 0 &&
           Value(s, "casebridge_kafka_producer_queue_messages") == 0;
  }));
  std::vector<MetricSample> jc = Scrape(metrics_port_, &text);
  const std::map<std::string, std::string> record_decision = {
      {"grpc_service", kJobCentre}, {"grpc_method", "RecordDecision"}, {"grpc_type", "unary"}};
  auto with = [](std::map<std::string, std::string> labels, const char* key, const char* value) {
    labels[key] = value;
    return labels;
  };
  EXPECT_EQ(Value(jc, "grpc_server_started_total", record_decision), decisions + kInvalid);
  EXPECT_EQ(Value(jc, "grpc_server_handled_total", with(record_decision, "grpc_code", "OK")),
            decisions);
  EXPECT_EQ(Value(jc, "grpc_server_handled_total",
                  with(record_decision, "grpc_code", "INVALID_ARGUMENT")),
            kInvalid);
  EXPECT_EQ(Value(jc, "grpc_server_handling_seconds_count", record_decision),
            decisions + kInvalid);
  EXPECT_EQ(Value(jc, "grpc_server_handling_seconds_bucket", with(record_decision, "le", "+Inf")),
            decisions + kInvalid);
  const double seconds = Value(jc, "grpc_server_handling_seconds_sum", record_decision);
  EXPECT_GT(seconds, 0);
  EXPECT_LT(seconds, (decisions + kInvalid) * 12.0);  // each call under the delivery timeout
  for (const auto& [type, count] : jobcentre_types) {
    EXPECT_EQ(Value(jc, "casebridge_events_recorded_total", {{"event_type", type}}), count) << type;
    EXPECT_EQ(Value(jc, "casebridge_events_published_total",
                    {{"event_type", type}, {"topic", canonical_}}),
              count)
        << type;
  }
  EXPECT_EQ(Value(jc, "casebridge_events_published_total"), decisions);
  EXPECT_EQ(Value(jc, "casebridge_build_info", {{"component", "jobcentre"}}), 1);
  EXPECT_EQ(Value(jc, "casebridge_ready"), 1);
  EXPECT_EQ(Value(jc, "casebridge_kafka_connected"), 1);
  EXPECT_EQ(Value(jc, "casebridge_kafka_delivery_errors_total", {{"topic", canonical_}}), 0);
  EXPECT_GT(Value(jc, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_LT(Value(jc, "process_resident_memory_bytes"), 4.0 * (1 << 30));
  EXPECT_GT(Value(jc, "process_cpu_seconds_total"), 0);
  EXPECT_GT(Value(jc, "process_open_fds"), 3);
  const double started = Value(jc, "process_start_time_seconds");
  EXPECT_LE(started, absl::ToUnixSeconds(absl::Now()) + 1);
  EXPECT_GT(started, absl::ToUnixSeconds(absl::Now()) - 3600);

  // The coordination service: every delivery the metric counts is a
  // record on that party's topic, and every consumed decision is counted.
  std::vector<MetricSample> co;
  ASSERT_TRUE(PollUntil([&] {
    co = Scrape(coordination_app_->metrics_port());
    return Value(co, "casebridge_events_consumed_total") >= decisions + 2 * kCases &&
           Value(co, "casebridge_kafka_consumer_lag_messages", {{"topic", canonical_}}) == 0;
  })) << "consumed " << Value(co, "casebridge_events_consumed_total");
  for (const auto& [type, count] : jobcentre_types) {
    EXPECT_EQ(Value(co, "casebridge_events_consumed_total", {{"event_type", type}}), count);
  }
  for (const auto& [recipient, topic] : party_topics_) {
    // Both hold a role on every case, so every decision reaches both; of
    // the role events, the caseworker (assigned first) receives both, the
    // mentor its own.
    const int expected = decisions + (recipient == "aarhus-jobcenter" ? 2 : 1) * kCases;
    ASSERT_TRUE(PollUntil([&] {
      co = Scrape(coordination_app_->metrics_port());
      return Value(co, "casebridge_deliveries_total", {{"recipient", recipient}}) == expected;
    })) << recipient << ": " << Value(co, "casebridge_deliveries_total", {{"recipient", recipient}});
    const double delivered = Value(co, "casebridge_deliveries_total", {{"recipient", recipient}});
    const std::vector<kafka::Record> on_topic =
        testing::ReadAtLeast(topic, static_cast<size_t>(delivered));
    EXPECT_EQ(static_cast<double>(on_topic.size()), delivered) << recipient;
    std::map<std::string, int> by_disclosure;
    for (const kafka::Record& record : on_topic) {
      for (const kafka::Header& header : record.headers) {
        if (header.key == "ce_disclosure") ++by_disclosure[header.value];
      }
    }
    for (const auto& [disclosure, count] : by_disclosure) {
      EXPECT_EQ(Value(co, "casebridge_deliveries_total",
                      {{"recipient", recipient}, {"disclosure", disclosure}}),
                count)
          << recipient << " " << disclosure;
    }
  }
  // Three partitions assigned to the one consumer, all caught up.
  int partitions = 0;
  for (const MetricSample& sample : co) {
    if (sample.name != "casebridge_kafka_consumer_lag_messages") continue;
    ++partitions;
    EXPECT_EQ(sample.value, 0) << sample.labels.at("partition");
  }
  EXPECT_EQ(partitions, 3);
  EXPECT_EQ(Value(co, "grpc_server_handled_total",
                  {{"grpc_service", kCoordination}, {"grpc_method", "AssignRole"},
                   {"grpc_code", "OK"}}),
            2 * kCases);
  EXPECT_EQ(Value(co, "casebridge_subscribe_streams"), 1);
  EXPECT_EQ(Value(co, "casebridge_build_info", {{"component", "coordination"}}), 1);
  EXPECT_EQ(Value(co, "casebridge_outbox_events"), 0);
  EXPECT_EQ(Value(co, "casebridge_dead_letters_total"), 0);

  std::move(stop_scraper).Invoke();
  EXPECT_GT(scrapes, 0);
  subscribe_context.TryCancel();
  coordination::v1::Delivery ignored;
  while (stream->Read(&ignored)) {
  }
  stream->Finish().IgnoreError();
  ASSERT_TRUE(PollUntil([&] {
    return Value(Scrape(coordination_app_->metrics_port()), "casebridge_subscribe_streams") == 0;
  }));

  // Every series the dashboard and the alert rules use
  // (deploy/monitoring/metrics.txt) is exposed by one of the two services,
  // except those that appear only once something happens.
  std::set<std::string> exposed;
  for (const std::vector<MetricSample>* scrape : {&jc, &co}) {
    for (const MetricSample& sample : *scrape) {
      std::string name = sample.name;
      for (const char* suffix : {"_bucket", "_count", "_sum"}) {
        if (absl::EndsWith(name, suffix) && absl::StartsWith(name, "grpc_server_handling")) {
          name = name.substr(0, name.size() - strlen(suffix));
        }
      }
      exposed.insert(name);
    }
  }
  const std::set<std::string> only_on_events = {"casebridge_watchdog_firings_total",
                                                "casebridge_certificate_expiry_timestamp_seconds"};
  const std::string catalogue = ReadFile(testing::SourceDir() + "/deploy/monitoring/metrics.txt");
  ASSERT_FALSE(catalogue.empty());
  for (absl::string_view line : absl::StrSplit(catalogue, '\n', absl::SkipWhitespace())) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    const std::string name(line);
    if (only_on_events.contains(name)) continue;
    EXPECT_TRUE(exposed.contains(name)) << name << " is in deploy/monitoring/metrics.txt but "
                                        << "neither service exposes it";
  }

  // An independent parser agrees that the exposition is valid: promtool,
  // Prometheus' own checker (tests/run installs it).
  int code = 0;
  std::string bin = testing::RunCommand(
      absl::StrCat(testing::SourceDir(), "/deploy/monitoring/install-promtool 2>/dev/null"), &code);
  ASSERT_EQ(code, 0) << "deploy/monitoring/install-promtool failed";
  bin = std::string(absl::StripAsciiWhitespace(bin));
  std::ofstream(dir_.File("scrape.txt")) << text;
  const std::string out = testing::RunCommand(
      absl::StrCat(bin, "/promtool check metrics < ", dir_.File("scrape.txt"), " 2>&1"), &code);
  EXPECT_EQ(code, 0) << out;
}

TEST_F(MetricsTest, ProbePortAnswersHealthAndFollowsShutdown) {
  auto probe = grpc::CreateChannel(absl::StrCat("127.0.0.1:", health_port_),
                                   grpc::InsecureChannelCredentials());
  auto main = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                  grpc::InsecureChannelCredentials());
  // Liveness ("") and readiness (the service's name), on both ports.
  for (const auto& channel : {probe, main}) {
    EXPECT_EQ(HealthStatus(channel, "").value_or(-1), 1);
    EXPECT_EQ(HealthStatus(channel, kJobCentre).value_or(-1), 1);
    EXPECT_THAT(HealthStatus(channel, "no.such.Service").status(),
                StatusIs(absl::StatusCode::kNotFound));
  }
  // The probe port serves health only: no recording RPC there.
  auto via_probe = jobcentre::v1::JobCentreService::NewStub(probe);
  recording::v1::RecordResponse response;
  grpc::ClientContext context;
  EXPECT_EQ(via_probe->RecordDecision(&context, Decision("via-probe", 0), &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);

  // SIGTERM: not ready at once, while in-flight calls drain.
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  int status = 0;
  ASSERT_TRUE(PollUntil([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }));
  pid_ = -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  const std::string log = ReadFile(dir_.File("jobcentre.log"));
  EXPECT_THAT(log, ::testing::HasSubstr("\"msg\":\"observability ready\""));

  // Coordination in process: readiness NOT_SERVING from Shutdown on.
  auto coordination_probe = grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", coordination_app_->health_port()),
      grpc::InsecureChannelCredentials());
  EXPECT_EQ(HealthStatus(coordination_probe, kCoordination).value_or(-1), 1);
  coordination_app_->Shutdown();
  EXPECT_EQ(HealthStatus(coordination_probe, kCoordination).value_or(-1), 2);
  EXPECT_EQ(HealthStatus(coordination_probe, "").value_or(-1), 2);
}

// Kafka unreachable: the service still starts (its outbox keeps what it
// accepts) but is not ready, and says so in its metrics.
TEST(MetricsReadinessTest, NotReadyWhileKafkaIsUnreachable) {
  TempDir dir;
  // A port nothing listens on: bind one, then close it.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const int dead_port = ntohs(address.sin_port);
  close(fd);

  config::v1::CoordinationServiceConfig config;
  config.mutable_server()->set_listen_address("127.0.0.1:0");
  config.mutable_server()->set_insecure_development_mode(true);
  config.mutable_kafka()->set_bootstrap_servers(absl::StrCat("127.0.0.1:", dead_port));
  config.set_municipality("0751");
  config.set_store_path(dir.File("coordination.db"));
  config.add_recipients()->set_id("mentorhuset");
  config.mutable_observability()->set_metrics_address("127.0.0.1:0");
  config.mutable_observability()->set_health_address("127.0.0.1:0");
  config.mutable_observability()->mutable_kafka_check_interval()->set_seconds(1);
  auto app = coordination::CoordinationApp::Start(config, kKey);
  ASSERT_OK(app);
  auto probe = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*app)->health_port()),
                                   grpc::InsecureChannelCredentials());
  EXPECT_EQ(HealthStatus(probe, "").value_or(-1), 1);
  EXPECT_EQ(HealthStatus(probe, kCoordination).value_or(-1), 2);
  const std::vector<MetricSample> samples = Scrape((*app)->metrics_port());
  EXPECT_EQ(Value(samples, "casebridge_ready"), 0);
  EXPECT_EQ(Value(samples, "casebridge_kafka_connected"), 0);
  (*app)->Shutdown();
}

}  // namespace
}  // namespace casebridge
