// casebridge_bench — the performance benchmark of issue 6 (see
// docs/performance.md). One run measures, on one machine against one real
// broker:
//
//   (a) kafka    the Kafka limit: the services' own producer (acks=all,
//                idempotent, gapless, linger 1 ms) → a consumer, with a
//                CaseEvent record of the size the job centre publishes;
//   (b) grpc     the gRPC limit: an in-process no-op JobCentreService
//                (RecordDecision answers OK at once) under the load
//                generator that (c) uses;
//   (c) gateway  the real casebridge-jobcentre and casebridge-coordination
//                (spawned here): RecordDecision → ledger → canonical topic →
//                coordination → a party topic, read by a consumer here.
//
// Each measurement prints one `BENCH {json}` line; mode `all` (the default)
// runs the three and prints a table with the ratios (c)/(a), (c)/(b) and
// the targets of issue 6. The figures are ratios taken in the same run: the
// absolute numbers depend on the machine and on what else runs on it.
//
// Usage: casebridge_bench [all|kafka|grpc|disk|gateway] --bootstrap HOST:PORT
//          [--events N] [--rate R] [--rate-events M] [--low-rate L]
//          [--low-events E] [--concurrency K] [--cases C] [--parties P]
//          [--build DIR] [--run-dir DIR]
// (tests/bench/run starts the broker and passes these; see its --help.)
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "casebridge/common/v1/common.pb.h"
#include "casebridge/config/v1/config.pb.h"
#include "casebridge/coordination/v1/coordination_service.grpc.pb.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "casebridge/jobcentre/v1/jobcentre_service.grpc.pb.h"
#include "casebridge/recording/v1/recording.pb.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/kafka/consumer.h"
#include "services/common/kafka/kafka_publisher.h"

namespace casebridge::bench {
namespace {

namespace common_pb = casebridge::common::v1;
namespace coordination_pb = casebridge::coordination::v1;
namespace events_pb = casebridge::events::v1;
namespace jobcentre_pb = casebridge::jobcentre::v1;
namespace recording_pb = casebridge::recording::v1;

using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

[[noreturn]] void Fail(const std::string& text) {
  std::cerr << "casebridge_bench: " << text << std::endl;
  std::exit(2);
}

// ------------------------------------------------------------------ options --

struct Options {
  std::string mode = "all";
  std::string bootstrap;
  int64_t events = 5000;       // per max-throughput sub-run
  double rate = 1000;          // events/s of the latency sub-runs
  int64_t rate_events = 5000;   // events of each latency sub-run
  double low_rate = 50;         // a rate every path sustains: latency without queueing
  int64_t low_events = 500;
  int concurrency = 16;        // callers of the load generator
  int cases = 32;
  int parties = 2;             // recipients on every case; the first one is read
  std::string build = "build-cc";
  std::string run_dir;
  // Where the reference vendor system keeps its SQLite file. It stands in
  // for the vendor's own system, whose durability is not casebridge's cost,
  // so by default it is on tmpfs (/dev/shm); `--vendor-dir RUN_DIR` puts it
  // on the same disk as the ledger, fsync'd.
  std::string vendor_dir;
  std::string run_id;
};

Options ParseOptions(int argc, char** argv) {
  Options o;
  int i = 1;
  if (i < argc && argv[i][0] != '-') o.mode = argv[i++];
  for (; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) Fail(absl::StrCat(flag, " needs a value"));
    const std::string value = argv[++i];
    if (flag == "--bootstrap") o.bootstrap = value;
    else if (flag == "--events") o.events = std::stoll(value);
    else if (flag == "--rate") o.rate = std::stod(value);
    else if (flag == "--rate-events") o.rate_events = std::stoll(value);
    else if (flag == "--low-rate") o.low_rate = std::stod(value);
    else if (flag == "--low-events") o.low_events = std::stoll(value);
    else if (flag == "--concurrency") o.concurrency = std::stoi(value);
    else if (flag == "--cases") o.cases = std::stoi(value);
    else if (flag == "--parties") o.parties = std::stoi(value);
    else if (flag == "--build") o.build = value;
    else if (flag == "--run-dir") o.run_dir = value;
    else if (flag == "--vendor-dir") o.vendor_dir = value;
    else Fail(absl::StrCat("unknown option ", flag));
  }
  if (o.mode != "all" && o.mode != "kafka" && o.mode != "grpc" && o.mode != "gateway" &&
      o.mode != "disk" && o.mode != "import") {
    Fail(absl::StrCat("unknown mode ", o.mode));
  }
  if (o.mode != "grpc" && o.mode != "disk" && o.bootstrap.empty()) Fail("--bootstrap HOST:PORT is required");
  if (o.parties < 1 || o.parties > 4 || o.cases < 1 || o.concurrency < 1 || o.events < 1 ||
      o.rate <= 0 || o.rate_events < 1 || o.low_rate <= 0 || o.low_events < 1) {
    Fail("bad option value");
  }
  std::random_device random;
  o.run_id = absl::StrFormat("%08x", random());
  if (o.run_dir.empty()) o.run_dir = absl::StrCat("/tmp/casebridge-bench-", o.run_id);
  if (o.vendor_dir.empty()) o.vendor_dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : o.run_dir;
  return o;
}

// ------------------------------------------------------------------ figures --

// The sub-runs of each mode: "max" as fast as the path takes events (closed
// loop), "rate" at --rate (open loop, issue 6's latency target), "low" at
// --low-rate (open loop, below every path's capacity: latency without
// queueing).
struct Phase {
  std::string name;
  int64_t count;
  double rate;  // 0: closed loop
};

std::vector<Phase> Phases(const Options& o) {
  return {{"max", o.events, 0}, {"rate", o.rate_events, o.rate}, {"low", o.low_events, o.low_rate}};
}

struct Figures {
  std::string mode;
  std::string phase;  // "max" (closed loop / as fast as possible) or "rate"
  int64_t events = 0;
  int64_t failed = 0;
  double seconds = 0;
  double throughput = 0;  // events/s fully done (delivered / answered)
  double p50_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
  std::map<std::string, double> extra;
};

// Fills the percentiles from latencies in ns.
void SetPercentiles(Figures& f, std::vector<int64_t> ns) {
  if (ns.empty()) return;
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * static_cast<double>(ns.size()));
    return static_cast<double>(ns[std::min(i, ns.size() - 1)]) / 1e6;
  };
  f.p50_ms = at(0.50);
  f.p99_ms = at(0.99);
  f.p999_ms = at(0.999);
  f.max_ms = static_cast<double>(ns.back()) / 1e6;
}

void PrintJson(const Figures& f) {
  std::string line = absl::StrFormat(
      "BENCH {\"mode\":\"%s\",\"phase\":\"%s\",\"events\":%d,\"failed\":%d,\"seconds\":%.3f,"
      "\"throughput\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f",
      f.mode, f.phase, f.events, f.failed, f.seconds, f.throughput, f.p50_ms, f.p99_ms, f.p999_ms,
      f.max_ms);
  for (const auto& [key, value] : f.extra) absl::StrAppendFormat(&line, ",\"%s\":%.3f", key, value);
  std::cout << line << "}" << std::endl;
}

// ----------------------------------------------------------------- requests --

// A case's CPR, as tests/fault/fault_suite.py makes them.
std::string CaseCpr(int i) {
  return absl::StrFormat("%02d%02d%02d-%04d", 1 + i % 28, 1 + (i / 28) % 12, (60 + i / 336) % 100,
                         1000 + i % 9000);
}

// The decision the fault suite records: a refusal with reasons, an
// alternative and complaint guidance — a realistic size.
recording_pb::RecordDecisionRequest DecisionRequest(const std::string& key, int case_index) {
  recording_pb::RecordDecisionRequest request;
  auto* context = request.mutable_context();
  context->set_idempotency_key(key);
  context->mutable_case_ref()->set_cpr(CaseCpr(case_index));
  context->mutable_actor()->set_role(common_pb::ROLE_CASEWORKER);
  context->mutable_actor()->set_unit("Jobcenter Aarhus");
  auto* basis = context->add_legal_basis();
  basis->set_law("LAB");
  basis->set_paragraph("78");
  auto* decision = request.mutable_decision();
  decision->set_outcome(events_pb::DECISION_OUTCOME_REFUSED);
  decision->mutable_offer()->set_code("LAB-mentor-extended");
  decision->add_reasons()->set_code("need-covered-by-other-support");
  decision->add_alternatives()->mutable_offer()->set_code("LAB-mentor");
  decision->mutable_complaint()->set_text("Klag inden 4 uger.");
  decision->mutable_complaint()->mutable_deadline()->set_seconds(1'900'000'000);
  decision->mutable_decided_by()->set_role(common_pb::ROLE_CASEWORKER);
  decision->mutable_decided_by()->set_unit("Jobcenter Aarhus");
  return request;
}

// The CaseEvent the job centre publishes for DecisionRequest (same fields,
// same lengths: UUID id, 64-hex subject), for the Kafka baseline.
events_pb::CaseEvent DecisionEvent(const std::string& id, const std::string& subject,
                                   uint64_t sequence) {
  const recording_pb::RecordDecisionRequest request = DecisionRequest(id, 0);
  events_pb::CaseEvent event;
  event.set_id(id);
  event.set_source("/casebridge/jobcentre/0751");
  event.set_source_system(events_pb::SOURCE_SYSTEM_JOB_CENTRE);
  event.set_type("dk.casebridge.decision.refused.v1");
  event.set_subject(subject);
  event.set_municipality("0751");
  const int64_t now_s = NowNs() / 1'000'000'000;
  event.mutable_occurred_at()->set_seconds(1'700'000'000 + now_s % 1000);
  event.mutable_recorded_at()->set_seconds(1'700'000'000 + now_s % 1000);
  event.set_sequence(sequence);
  *event.mutable_actor() = request.context().actor();
  *event.mutable_legal_basis() = request.context().legal_basis();
  event.set_sensitivity(events_pb::SENSITIVITY_ORDINARY);
  event.set_idempotency_key(absl::StrCat("bench-", id));
  *event.mutable_decision() = request.decision();
  event.mutable_decision()->set_decision_id(absl::StrCat("D-", sequence));
  return event;
}

std::string FakeUuid(const std::string& run_id, int64_t n) {
  return absl::StrFormat("%s-0000-4000-8000-%012d", run_id, n);
}

std::string FakeSubject(int i) { return absl::StrFormat("%064x", 0xbe7c0000 + i); }

// ----------------------------------------------------------------- receiver --

// A consumer thread on one topic that notes when each event id (ce_id)
// first arrives, on the steady clock of this process.
class Receiver {
 public:
  Receiver(const config::v1::KafkaConfig& config, const std::string& group,
           const std::string& topic) {
    auto consumer = kafka::NewKafkaConsumer(config, group, {topic});
    if (!consumer.ok()) Fail(std::string(consumer.status().message()));
    consumer_ = std::move(*consumer);
    thread_ = std::thread([this] {
      while (!stop_) {
        std::optional<kafka::Record> record = consumer_->Poll(absl::Milliseconds(100));
        if (!record) continue;
        const int64_t at = NowNs();
        std::optional<std::string> id = record->HeaderValue("ce_id");
        if (!id) continue;
        std::lock_guard<std::mutex> lock(mu_);
        received_.try_emplace(*id, at);
        bytes_ = record->value.size();
      }
      consumer_->Close();
    });
  }
  ~Receiver() {
    stop_ = true;
    thread_.join();
  }

  std::optional<int64_t> At(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = received_.find(id);
    if (it == received_.end()) return std::nullopt;
    return it->second;
  }
  size_t Count() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_.size();
  }
  size_t LastValueBytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return bytes_;
  }

  // Waits until every id in `ids` has arrived; gives up after `idle_s`
  // seconds without progress. Returns how many arrived.
  size_t WaitFor(const std::vector<std::string>& ids, double idle_s) {
    size_t best = 0;
    int64_t last_progress = NowNs();
    while (true) {
      size_t have = 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (const std::string& id : ids) have += received_.count(id);
      }
      if (have == ids.size()) return have;
      if (have > best) {
        best = have;
        last_progress = NowNs();
      }
      if (static_cast<double>(NowNs() - last_progress) / 1e9 > idle_s) return have;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling with a deadline
    }
  }

 private:
  std::unique_ptr<kafka::Consumer> consumer_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::unordered_map<std::string, int64_t> received_;
  size_t bytes_ = 0;
  std::thread thread_;
};

// Produce-or-call start → receipt, over the ids in `started`.
void SetDeliveryFigures(Figures& f, const std::vector<std::pair<std::string, int64_t>>& started,
                        Receiver& receiver) {
  std::vector<int64_t> latencies;
  int64_t first = INT64_MAX, last = 0;
  for (const auto& [id, at] : started) {
    first = std::min(first, at);
    std::optional<int64_t> received = receiver.At(id);
    if (!received) {
      ++f.failed;
      continue;
    }
    last = std::max(last, *received);
    latencies.push_back(*received - at);
  }
  f.events = static_cast<int64_t>(latencies.size());
  if (last > first) {
    f.seconds = static_cast<double>(last - first) / 1e9;
    f.throughput = static_cast<double>(f.events) / f.seconds;
  }
  SetPercentiles(f, std::move(latencies));
}

// ------------------------------------------------------------ (a) the Kafka limit --

config::v1::KafkaConfig KafkaConfigFor(const Options& o) {
  config::v1::KafkaConfig config;
  config.set_bootstrap_servers(o.bootstrap);
  return config;
}

std::vector<Figures> RunKafka(const Options& o) {
  const config::v1::KafkaConfig config = KafkaConfigFor(o);
  const std::string topic = absl::StrCat("casebridge.bench.", o.run_id, ".v1");
  if (absl::Status s = kafka::EnsureTopics(config, {topic}, 3, 1); !s.ok()) {
    Fail(std::string(s.message()));
  }
  auto publisher = kafka::NewKafkaPublisher(config, {topic});
  if (!publisher.ok()) Fail(std::string(publisher.status().message()));
  Receiver receiver(config, absl::StrCat("casebridge-bench-", o.run_id), topic);

  int64_t n = 0;
  auto record = [&](int64_t i) {
    return kafka::CaseEventRecord(
        topic, DecisionEvent(FakeUuid(o.run_id, i), FakeSubject(static_cast<int>(i % o.cases)),
                             static_cast<uint64_t>(i / o.cases + 1)));
  };
  // Warm-up: the consumer has joined its group and fetched once.
  {
    std::vector<std::string> ids;
    for (int i = 0; i < 10; ++i, ++n) {
      ids.push_back(FakeUuid(o.run_id, n));
      (void)(*publisher)->Send(record(n));
    }
    if (receiver.WaitFor(ids, 60) != ids.size()) Fail("kafka: warm-up records never arrived");
  }
  const size_t value_bytes = receiver.LastValueBytes();

  std::vector<Figures> out;
  for (const Phase& phase : Phases(o)) {
    const int64_t count = phase.count;
    std::vector<std::pair<std::string, int64_t>> started;
    started.reserve(count);
    // A waiter thread notes when each record's acknowledgement (the future
    // the services wait on) is ready, in order: produce → ack latency.
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::pair<int64_t, std::future<absl::Status>>> pending;
    bool sent_all = false;
    int64_t failed = 0;
    std::vector<int64_t> ack_ns;
    std::thread waiter([&] {
      while (true) {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return !pending.empty() || sent_all; });
        if (pending.empty()) return;
        auto [at, outcome] = std::move(pending.front());
        pending.pop_front();
        lock.unlock();
        const bool ok = outcome.get().ok();
        const int64_t acked = NowNs();
        lock.lock();
        failed += ok ? 0 : 1;
        ack_ns.push_back(acked - at);
      }
    });
    const int64_t t0 = NowNs();
    for (int64_t i = 0; i < count; ++i, ++n) {
      if (phase.rate > 0) {
        const int64_t slot = t0 + static_cast<int64_t>(static_cast<double>(i) * 1e9 / phase.rate);
        std::this_thread::sleep_until(Clock::time_point(std::chrono::nanoseconds(slot)));  // pacing
      }
      kafka::Record r = record(n);
      const int64_t at = NowNs();
      started.emplace_back(FakeUuid(o.run_id, n), at);
      std::future<absl::Status> outcome = (*publisher)->Send(std::move(r));
      std::lock_guard<std::mutex> lock(mu);
      pending.emplace_back(at, std::move(outcome));
      cv.notify_one();
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      sent_all = true;
      cv.notify_one();
    }
    waiter.join();
    const int64_t acked = NowNs();
    std::vector<std::string> ids;
    for (const auto& s : started) ids.push_back(s.first);
    receiver.WaitFor(ids, 30);
    Figures f;
    f.mode = "kafka";
    f.phase = phase.name;
    SetDeliveryFigures(f, started, receiver);
    f.failed += failed;
    f.extra["value_bytes"] = static_cast<double>(value_bytes);
    f.extra["acked_per_s"] = static_cast<double>(count) / (static_cast<double>(acked - t0) / 1e9);
    Figures ack;
    SetPercentiles(ack, std::move(ack_ns));
    f.extra["ack_p50_ms"] = ack.p50_ms;
    f.extra["ack_p99_ms"] = ack.p99_ms;
    if (phase.rate > 0) f.extra["offered_rate"] = phase.rate;
    PrintJson(f);
    out.push_back(f);
  }
  return out;
}

// ------------------------------------------------------------- load generator --

// K callers share one counter. Closed loop (rate 0): each caller calls again
// as soon as its call returns. Open loop: call i is due at t0 + i/rate, and
// its latency counts from when it actually started (lag is reported).
struct LoadResult {
  std::vector<std::pair<std::string, int64_t>> started;  // event id, call start
  std::vector<int64_t> rtt_ns;
  int64_t failed = 0;
  int64_t max_lag_ns = 0;
  double seconds = 0;
  std::string first_error;
};

using Call = std::function<grpc::Status(int caller, int64_t n, std::string* event_id)>;

LoadResult RunLoad(const Call& call, int64_t count, int callers, double rate) {
  LoadResult result;
  std::mutex mu;
  std::atomic<int64_t> next{0};
  const int64_t t0 = NowNs();
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&, c] {
      while (true) {
        const int64_t i = next.fetch_add(1);
        if (i >= count) return;
        int64_t lag = 0;
        if (rate > 0) {
          const int64_t slot = t0 + static_cast<int64_t>(static_cast<double>(i) * 1e9 / rate);
          std::this_thread::sleep_until(Clock::time_point(std::chrono::nanoseconds(slot)));  // pacing
          lag = NowNs() - slot;
        }
        std::string event_id;
        const int64_t start = NowNs();
        grpc::Status status = call(c, i, &event_id);
        const int64_t end = NowNs();
        std::lock_guard<std::mutex> lock(mu);
        result.max_lag_ns = std::max(result.max_lag_ns, lag);
        if (!status.ok()) {
          if (result.failed++ == 0) {
            result.first_error = absl::StrCat(status.error_code(), " ", status.error_message());
          }
          continue;
        }
        result.started.emplace_back(event_id, start);
        result.rtt_ns.push_back(end - start);
      }
    });
  }
  for (auto& t : threads) t.join();
  result.seconds = static_cast<double>(NowNs() - t0) / 1e9;
  return result;
}

// One channel per caller (as the fault suite's clients): no shared HTTP/2
// connection hides a per-connection cost.
std::vector<std::unique_ptr<jobcentre_pb::JobCentreService::Stub>> Stubs(const std::string& address,
                                                                         int callers) {
  std::vector<std::unique_ptr<jobcentre_pb::JobCentreService::Stub>> stubs;
  for (int c = 0; c < callers; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("casebridge.bench.caller", c);  // a distinct channel per caller
    stubs.push_back(jobcentre_pb::JobCentreService::NewStub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args)));
  }
  return stubs;
}

Call RecordDecisionCall(std::vector<std::unique_ptr<jobcentre_pb::JobCentreService::Stub>>& stubs,
                        const Options& o, const std::string& phase) {
  return [&stubs, &o, phase](int caller, int64_t n, std::string* event_id) {
    const recording_pb::RecordDecisionRequest request = DecisionRequest(
        absl::StrCat("bench-", o.run_id, "-", phase, "-", n), static_cast<int>(n % o.cases));
    recording_pb::RecordResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Status status = stubs[caller]->RecordDecision(&context, request, &response);
    *event_id = response.event_id();
    return status;
  };
}

// ------------------------------------------------------------- (b) the gRPC limit --

class NoopJobCentre final : public jobcentre_pb::JobCentreService::Service {
 public:
  grpc::Status RecordDecision(grpc::ServerContext*, const recording_pb::RecordDecisionRequest* request,
                              recording_pb::RecordResponse* response) override {
    response->set_event_id(request->context().idempotency_key());
    response->set_subject(FakeSubject(0));
    response->set_sequence(1);
    return grpc::Status::OK;
  }
};

std::vector<Figures> RunGrpc(const Options& o) {
  NoopJobCentre service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) Fail("grpc: the no-op server did not start");
  auto stubs = Stubs(absl::StrCat("127.0.0.1:", port), o.concurrency);
  RunLoad(RecordDecisionCall(stubs, o, "warmup"), 200, o.concurrency, 0);

  std::vector<Figures> out;
  for (const Phase& phase : Phases(o)) {
    LoadResult load =
        RunLoad(RecordDecisionCall(stubs, o, phase.name), phase.count, o.concurrency, phase.rate);
    Figures f;
    f.mode = "grpc";
    f.phase = phase.name;
    f.events = static_cast<int64_t>(load.rtt_ns.size());
    f.failed = load.failed;
    f.seconds = load.seconds;
    f.throughput = static_cast<double>(f.events) / load.seconds;
    f.extra["max_lag_ms"] = static_cast<double>(load.max_lag_ns) / 1e6;
    if (phase.rate > 0) f.extra["offered_rate"] = phase.rate;
    SetPercentiles(f, std::move(load.rtt_ns));
    PrintJson(f);
    out.push_back(f);
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return out;
}

// --------------------------------------------------------- the disk's fsync --

// Both services commit an SQLite transaction per event (synchronous=FULL):
// one fdatasync of a small write is the floor of each.
Figures RunDisk(const Options& o) {
  const std::string path = absl::StrCat(o.run_dir, "/fsync-probe");
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) Fail(absl::StrCat("cannot create ", path));
  std::string block(4096, 'x');
  std::vector<int64_t> ns;
  const int64_t t0 = NowNs();
  for (int i = 0; i < 300; ++i) {
    const int64_t start = NowNs();
    if (pwrite(fd, block.data(), block.size(), static_cast<off_t>((i % 16) * 4096)) < 0 ||
        fdatasync(fd) != 0) {
      Fail("fsync probe: write failed");
    }
    ns.push_back(NowNs() - start);
  }
  Figures f;
  f.mode = "disk";
  f.phase = "fdatasync";
  f.events = 300;
  f.seconds = static_cast<double>(NowNs() - t0) / 1e9;
  f.throughput = 300 / f.seconds;
  SetPercentiles(f, std::move(ns));
  close(fd);
  unlink(path.c_str());
  PrintJson(f);
  return f;
}

// ------------------------------------------------------------- (c) the gateway --

// /proc figures of a process: CPU seconds (utime + stime), VmRSS, VmHWM.
struct ProcStat {
  double cpu_s = 0;
  double rss_mib = 0;
  double hwm_mib = 0;
};

ProcStat ReadProc(pid_t pid) {
  ProcStat p;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces) start at ") ".
  const size_t close = text.rfind(')');
  if (close != std::string::npos) {
    std::istringstream fields(text.substr(close + 2));
    std::vector<std::string> f;
    for (std::string s; fields >> s;) f.push_back(s);
    // f[0] is field 3 (state); utime is field 14, stime 15.
    if (f.size() > 13) {
      p.cpu_s = static_cast<double>(std::stoll(f[11]) + std::stoll(f[12])) /
                static_cast<double>(sysconf(_SC_CLK_TCK));
    }
  }
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  for (std::string line; std::getline(status, line);) {
    auto kib = [&](const char* name) -> std::optional<double> {
      if (line.rfind(name, 0) != 0) return std::nullopt;
      return std::stod(line.substr(std::string(name).size())) / 1024.0;
    };
    if (auto v = kib("VmRSS:")) p.rss_mib = *v;
    if (auto v = kib("VmHWM:")) p.hwm_mib = *v;
  }
  return p;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) Fail(absl::StrCat("cannot write ", path));
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A service binary run as a child; killed if the bench dies.
class Service {
 public:
  Service(std::string name, std::string binary, std::string dir)
      : name_(std::move(name)), binary_(std::move(binary)), dir_(std::move(dir)) {}
  ~Service() { Stop(); }

  // Writes `config` (with portFile added by the caller), spawns the binary
  // and waits for its port file. Returns spawn → ready in ms.
  double Start(const std::string& config) {
    const std::string config_path = absl::StrCat(dir_, "/", name_, ".json");
    WriteFile(config_path, config);
    const std::string log_path = absl::StrCat(dir_, "/", name_, ".log");
    const int64_t spawned = NowNs();
    pid_ = fork();
    if (pid_ < 0) Fail("fork failed");
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (log >= 0) {
        dup2(log, 1);
        dup2(log, 2);
      }
      setenv("GRPC_VERBOSITY", "ERROR", 1);
      execl(binary_.c_str(), binary_.c_str(), "--config", config_path.c_str(), nullptr);
      _exit(127);
    }
    const int64_t deadline = spawned + 60'000'000'000;
    while (true) {
      const std::string port = ReadFile(PortFile());
      if (port.find_first_of("0123456789") != std::string::npos) {
        port_ = std::stoi(port);
        break;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        Fail(absl::StrCat(name_, " exited at start; log ", log_path));
      }
      if (NowNs() > deadline) Fail(absl::StrCat(name_, " wrote no port file in 60 s"));
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // polling with a deadline
    }
    return static_cast<double>(NowNs() - spawned) / 1e6;
  }

  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling with a deadline
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  std::string PortFile() const { return absl::StrCat(dir_, "/", name_, ".port"); }
  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_, binary_, dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

std::string Recipient(int p) { return absl::StrCat("bench-party-", p); }

struct GatewayResult {
  std::vector<Figures> figures;
  std::map<std::string, std::map<std::string, double>> services;  // name → figure → value
};

// Writes a fresh pseudonymisation key to DIR/pseudonym.key.
void WritePseudonymKey(const std::string& dir) {
  std::string key;
  std::random_device random;
  for (int i = 0; i < 8; ++i) absl::StrAppendFormat(&key, "%08x", random());
  WriteFile(absl::StrCat(dir, "/pseudonym.key"), key);
}

// The `"kafka": {…}` member of a service config for the bench's broker.
std::string KafkaJson(const Options& o) {
  return absl::StrFormat(R"("kafka": {"bootstrapServers": "%s", "createTopics": true})",
                         o.bootstrap);
}

// Starts the job centre publishing to `canonical` (ledger in DIR, the
// vendor stand-in in `--vendor-dir`); returns spawn → ready in ms.
double StartJobCentre(const Options& o, const std::string& canonical, Service& jobcentre) {
  const std::string& dir = o.run_dir;
  return jobcentre.Start(absl::StrFormat(
      R"({"municipality": "0751",
  "server": {"listenAddress": "127.0.0.1:0", "insecureDevelopmentMode": true, "portFile": "%s"},
  %s, "canonicalTopic": "%s",
  "adapter": {"reference": {"databasePath": "%s/jobcentre-system-%s.db"}},
  "ledgerPath": "%s/jobcentre-ledger.db", "pseudonym": {"keyFile": "%s/pseudonym.key"}})",
      jobcentre.PortFile(), KafkaJson(o), canonical, o.vendor_dir, o.run_id, dir, dir));
}

// Removes the vendor stand-in's files when they are outside the run directory.
void RemoveVendorFiles(const Options& o) {
  if (o.vendor_dir == o.run_dir) return;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::remove(absl::StrCat(o.vendor_dir, "/jobcentre-system-", o.run_id, ".db", suffix).c_str());
  }
}

GatewayResult RunGateway(const Options& o) {
  GatewayResult out;
  const std::string dir = o.run_dir;
  WritePseudonymKey(dir);
  const std::string canonical = absl::StrCat("casebridge.case-events.bench", o.run_id, ".v1");
  const std::string kafka = KafkaJson(o);
  std::vector<std::string> recipients;
  for (int p = 0; p < o.parties; ++p) {
    recipients.push_back(absl::StrFormat(R"({"id": "%s", "name": "%s"})", Recipient(p), Recipient(p)));
  }
  Service coordination("coordination", absl::StrCat(o.build, "/services/coordination/casebridge-coordination"), dir);
  Service jobcentre("jobcentre", absl::StrCat(o.build, "/services/jobcentre/casebridge-jobcentre"), dir);
  const double coordination_ready_ms = coordination.Start(absl::StrFormat(
      R"({"server": {"listenAddress": "127.0.0.1:0", "insecureDevelopmentMode": true, "portFile": "%s"},
  %s, "canonicalTopic": "%s", "consumerGroup": "casebridge-coordination-bench-%s",
  "municipality": "0751", "storePath": "%s/coordination.db",
  "recipients": [%s], "pseudonym": {"keyFile": "%s/pseudonym.key"}})",
      coordination.PortFile(), kafka, canonical, o.run_id, dir, absl::StrJoin(recipients, ", "), dir));
  const double jobcentre_ready_ms = StartJobCentre(o, canonical, jobcentre);
  std::vector<Service*> services = {&jobcentre, &coordination};
  out.services["jobcentre"]["ready_ms"] = jobcentre_ready_ms;
  out.services["coordination"]["ready_ms"] = coordination_ready_ms;
  for (Service* s : services) out.services[s->name()]["rss_start_mib"] = ReadProc(s->pid()).rss_mib;

  // Roles: every party on every case (the router then delivers every
  // decision to each of them).
  auto coordination_stub = coordination_pb::CoordinationService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", coordination.port()), grpc::InsecureChannelCredentials()));
  const common_pb::Role roles[] = {common_pb::ROLE_COORDINATING_CASEWORKER, common_pb::ROLE_CITIZEN,
                                   common_pb::ROLE_MENTOR, common_pb::ROLE_REHABILITATION_TEAM};
  for (int c = 0; c < o.cases; ++c) {
    for (int p = 0; p < o.parties; ++p) {
      coordination_pb::AssignRoleRequest request;
      request.set_idempotency_key(absl::StrCat("bench-", o.run_id, "-assign-", c, "-", p));
      request.mutable_case_ref()->set_cpr(CaseCpr(c));
      request.set_role(roles[p]);
      request.set_recipient(Recipient(p));
      request.mutable_actor()->set_role(common_pb::ROLE_COORDINATING_CASEWORKER);
      request.mutable_actor()->set_unit("Jobcenter Aarhus");
      coordination_pb::AssignRoleResponse response;
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      grpc::Status status = coordination_stub->AssignRole(&context, request, &response);
      if (!status.ok()) Fail(absl::StrCat("AssignRole: ", status.error_message()));
    }
  }

  config::v1::KafkaConfig config = KafkaConfigFor(o);
  Receiver receiver(config, absl::StrCat("casebridge-bench-party-", o.run_id),
                    absl::StrCat("casebridge.party.", Recipient(0), ".v1"));
  Receiver canonical_receiver(config, absl::StrCat("casebridge-bench-canonical-", o.run_id), canonical);
  auto stubs = Stubs(absl::StrCat("127.0.0.1:", jobcentre.port()), o.concurrency);
  {
    LoadResult warm = RunLoad(RecordDecisionCall(stubs, o, "warmup"), 50, o.concurrency, 0);
    if (warm.failed > 0) Fail(absl::StrCat("gateway warm-up: ", warm.first_error));
    std::vector<std::string> ids;
    for (const auto& s : warm.started) ids.push_back(s.first);
    if (receiver.WaitFor(ids, 60) != ids.size()) Fail("gateway: warm-up events never reached the party topic");
  }
  // At rest: started, roles assigned, warmed up, no load.
  for (Service* s : services) out.services[s->name()]["rss_rest_mib"] = ReadProc(s->pid()).rss_mib;

  for (const Phase& phase_spec : Phases(o)) {
    const std::string& phase = phase_spec.name;
    std::map<std::string, ProcStat> before;
    for (Service* s : services) before[s->name()] = ReadProc(s->pid());
    LoadResult load =
        RunLoad(RecordDecisionCall(stubs, o, phase), phase_spec.count, o.concurrency, phase_spec.rate);
    std::vector<std::string> ids;
    for (const auto& s : load.started) ids.push_back(s.first);
    receiver.WaitFor(ids, 30);
    canonical_receiver.WaitFor(ids, 5);
    Figures f;
    f.mode = "gateway";
    f.phase = phase;
    SetDeliveryFigures(f, load.started, receiver);
    // Where the time goes: RPC start → canonical topic (the job centre and
    // Kafka) and canonical → party topic (coordination and Kafka).
    Figures to_canonical;
    SetDeliveryFigures(to_canonical, load.started, canonical_receiver);
    f.extra["canonical_p50_ms"] = to_canonical.p50_ms;
    f.extra["canonical_p99_ms"] = to_canonical.p99_ms;
    f.extra["canonical_per_s"] = to_canonical.throughput;
    f.failed += load.failed;
    std::vector<int64_t> rtt = load.rtt_ns;
    Figures rpc;
    SetPercentiles(rpc, std::move(rtt));
    f.extra["rpc_p50_ms"] = rpc.p50_ms;
    f.extra["rpc_p99_ms"] = rpc.p99_ms;
    f.extra["accepted_per_s"] = static_cast<double>(load.rtt_ns.size()) / load.seconds;
    f.extra["max_lag_ms"] = static_cast<double>(load.max_lag_ns) / 1e6;
    f.extra["value_bytes"] = static_cast<double>(receiver.LastValueBytes());
    if (phase_spec.rate > 0) f.extra["offered_rate"] = phase_spec.rate;
    for (Service* s : services) {
      const ProcStat now = ReadProc(s->pid());
      const double cpu = now.cpu_s - before[s->name()].cpu_s;
      f.extra[absl::StrCat(s->name(), "_cpu_s")] = cpu;
      f.extra[absl::StrCat(s->name(), "_cpu_pct")] = f.seconds > 0 ? 100 * cpu / f.seconds : 0;
      f.extra[absl::StrCat(s->name(), "_rss_mib")] = now.rss_mib;
      out.services[s->name()][absl::StrCat("cpu_pct_", phase)] = f.extra[absl::StrCat(s->name(), "_cpu_pct")];
      out.services[s->name()][absl::StrCat("cpu_ms_per_event_", phase)] =
          f.events > 0 ? 1000 * cpu / static_cast<double>(f.events) : 0;
    }
    if (load.failed > 0) std::cerr << "gateway " << phase << ": " << load.failed << " calls failed, first: " << load.first_error << std::endl;
    PrintJson(f);
    out.figures.push_back(f);
  }
  for (Service* s : services) {
    const ProcStat now = ReadProc(s->pid());
    out.services[s->name()]["rss_end_mib"] = now.rss_mib;
    out.services[s->name()]["rss_peak_mib"] = now.hwm_mib;
  }
  for (const auto& [name, figures] : out.services) {
    std::string line = absl::StrFormat("BENCH {\"mode\":\"service\",\"name\":\"%s\"", name);
    for (const auto& [key, value] : figures) absl::StrAppendFormat(&line, ",\"%s\":%.3f", key, value);
    std::cout << line << "}" << std::endl;
  }
  // Idle client channels would hold the job centre's graceful shutdown for
  // its whole grace period.
  stubs.clear();
  jobcentre.Stop();
  coordination.Stop();
  RemoveVendorFiles(o);
  return out;
}

// -------------------------------------------------------------------- table --

// ------------------------------------------------------------------- import --

// Issue 6's bulk import: `--events` decisions over `--cases` cases streamed
// through the job centre's `Import` in one call, then the canonical topic
// read back: every event once, every case's events in sequence order.
// Returns 0 when the import completed in order.
int RunImport(const Options& o) {
  const std::string dir = o.run_dir;
  if (std::system(absl::StrCat("mkdir -p '", dir, "'").c_str()) != 0) Fail("cannot create run dir");
  WritePseudonymKey(dir);
  const std::string canonical = absl::StrCat("bench-import-", o.run_id, ".case-events");
  Service jobcentre("jobcentre", absl::StrCat(o.build, "/services/jobcentre/casebridge-jobcentre"), dir);
  StartJobCentre(o, canonical, jobcentre);
  auto stub = jobcentre_pb::JobCentreService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", jobcentre.port()), grpc::InsecureChannelCredentials()));

  const ProcStat cpu_before = ReadProc(jobcentre.pid());
  grpc::ClientContext context;
  auto stream = stub->Import(&context);
  const int64_t started = NowNs();
  std::thread writer([&] {
    for (int64_t i = 0; i < o.events; ++i) {
      recording_pb::ImportRequest request;
      *request.mutable_record_decision() = DecisionRequest(
          absl::StrCat("bench-", o.run_id, "-import-", i), static_cast<int>(i % o.cases));
      if (!stream->Write(request)) return;
    }
    stream->WritesDone();
  });
  int64_t results = 0, out_of_order = 0;
  double peak_rss = 0;
  std::unordered_map<std::string, uint64_t> last_sequence;
  recording_pb::ImportResult result;
  while (stream->Read(&result)) {
    if (result.index() != static_cast<uint64_t>(results)) ++out_of_order;
    uint64_t& last = last_sequence[result.response().subject()];
    if (result.response().sequence() != last + 1) ++out_of_order;
    last = result.response().sequence();
    ++results;
    if (results % std::max<int64_t>(1, o.events / 20) == 0) {
      const ProcStat now = ReadProc(jobcentre.pid());
      peak_rss = std::max(peak_rss, now.hwm_mib);
      std::cerr << absl::StrFormat("bench: import %d/%d (%.0f/s, RSS %.1f MiB)\n", results,
                                   o.events, results / (static_cast<double>(NowNs() - started) / 1e9),
                                   now.rss_mib);
    }
  }
  writer.join();
  const grpc::Status status = stream->Finish();
  const double seconds = static_cast<double>(NowNs() - started) / 1e9;
  const ProcStat cpu_after = ReadProc(jobcentre.pid());
  peak_rss = std::max(peak_rss, cpu_after.hwm_mib);
  if (!status.ok()) std::cerr << "bench: import ended with " << status.error_message() << "\n";

  // Read the canonical topic back.
  std::cerr << "bench: reading " << canonical << " back\n";
  auto consumer = kafka::NewKafkaConsumer(KafkaConfigFor(o), absl::StrCat("bench-import-", o.run_id),
                                          {canonical});
  if (!consumer.ok()) Fail(std::string(consumer.status().message()));
  std::unordered_map<std::string, uint64_t> topic_sequence;
  int64_t on_topic = 0, topic_out_of_order = 0, repeats = 0;
  int64_t last_progress = NowNs();
  while (on_topic + repeats < o.events && NowNs() - last_progress < 30'000'000'000) {
    std::vector<kafka::Record> batch = (*consumer)->PollBatch(absl::Milliseconds(200), 10000);
    if (batch.empty()) continue;
    last_progress = NowNs();
    for (const kafka::Record& record : batch) {
      absl::StatusOr<events_pb::CaseEvent> event = kafka::DecodeCaseEventRecord(record);
      if (!event.ok()) continue;
      uint64_t& last = topic_sequence[event->subject()];
      if (event->sequence() <= last) {
        ++repeats;  // a second copy (allowed: same id, same sequence)
      } else {
        if (event->sequence() != last + 1) ++topic_out_of_order;
        last = event->sequence();
        ++on_topic;
      }
    }
  }
  (*consumer)->Close();
  jobcentre.Stop();
  RemoveVendorFiles(o);
  const double cpu_s = cpu_after.cpu_s - cpu_before.cpu_s;
  const bool in_order = status.ok() && results == o.events && out_of_order == 0 &&
                        on_topic == o.events && topic_out_of_order == 0;
  std::cout << absl::StrFormat(
      "BENCH {\"mode\":\"import\",\"events\":%d,\"cases\":%d,\"results\":%d,\"seconds\":%.1f,"
      "\"throughput\":%.1f,\"out_of_order\":%d,\"on_topic\":%d,\"topic_out_of_order\":%d,"
      "\"topic_repeats\":%d,\"jobcentre_cpu_s\":%.1f,\"jobcentre_rss_peak_mib\":%.1f,\"in_order\":%s}\n",
      o.events, o.cases, results, seconds, results / seconds, out_of_order, on_topic,
      topic_out_of_order, repeats, cpu_s, peak_rss, in_order ? "true" : "false");
  std::cout << absl::StrFormat(
      "\n== bulk import (issue 6): %d decisions over %d cases in one Import stream\n"
      "  results %d in %.1f s = %.0f events/s, results out of order %d\n"
      "  canonical topic: %d events, %d out of sequence, %d second copies\n"
      "  job centre CPU %.1f s (%.2f ms/event), RSS peak %.1f MiB\n"
      "  bulk import of %d events in order: %s\n",
      o.events, o.cases, results, seconds, results / seconds, out_of_order, on_topic,
      topic_out_of_order, repeats, cpu_s, 1000 * cpu_s / std::max<int64_t>(1, results), peak_rss,
      o.events, in_order ? "PASS" : "FAIL");
  return in_order ? 0 : 1;
}

const Figures* Find(const std::vector<Figures>& all, const std::string& mode, const std::string& phase) {
  for (const Figures& f : all) {
    if (f.mode == mode && f.phase == phase) return &f;
  }
  return nullptr;
}

void PrintTable(const Options& o, const std::vector<Figures>& all, const GatewayResult& gateway) {
  std::cout << "\n== casebridge bench (" << o.events << " events closed loop with " << o.concurrency
            << " callers; " << o.rate_events << " events at " << o.rate << "/s; " << o.cases
            << " cases, " << o.parties << " parties each)\n";
  std::cout << absl::StrFormat("%-28s %10s %9s %9s %9s %9s %7s\n", "run", "events/s", "p50 ms",
                               "p99 ms", "p999 ms", "max ms", "failed");
  for (const Figures& f : all) {
    std::cout << absl::StrFormat("%-28s %10.0f %9.2f %9.2f %9.2f %9.2f %7d\n",
                                 f.extra.count("offered_rate")
                                     ? absl::StrCat(f.mode, " @", f.extra.at("offered_rate"), "/s")
                                     : absl::StrCat(f.mode, " ", f.phase),
                                 f.throughput, f.p50_ms, f.p99_ms, f.p999_ms, f.max_ms, f.failed);
  }
  std::cout << "  (kafka: produce call → consumer receipt; grpc: RPC round trip; gateway: RPC call "
               "start → party-topic consumer receipt; disk: 4 KiB write + fdatasync)\n";
  std::cout << "\n== where the time goes (p50 / p99, ms)\n";
  for (const Figures& f : all) {
    auto x = [&](const char* k) { return f.extra.count(k) ? f.extra.at(k) : 0.0; };
    const std::string run = f.extra.count("offered_rate")
                                ? absl::StrCat(f.mode, " @", f.extra.at("offered_rate"), "/s")
                                : absl::StrCat(f.mode, " ", f.phase);
    if (f.mode == "kafka") {
      std::cout << absl::StrFormat("  %-22s produce→ack %7.2f / %7.2f   produce→consume %7.2f / %7.2f\n", run,
                                   x("ack_p50_ms"), x("ack_p99_ms"), f.p50_ms, f.p99_ms);
    } else if (f.mode == "gateway") {
      std::cout << absl::StrFormat(
          "  %-22s RPC %7.2f / %7.2f   →canonical %7.2f / %7.2f   →party %7.2f / %7.2f   "
          "accepted %5.0f/s delivered %5.0f/s   CPU ms/event jobcentre %.2f coordination %.2f\n",
          run, x("rpc_p50_ms"), x("rpc_p99_ms"), x("canonical_p50_ms"), x("canonical_p99_ms"), f.p50_ms,
          f.p99_ms, x("accepted_per_s"), f.throughput,
          f.events > 0 ? 1000 * x("jobcentre_cpu_s") / static_cast<double>(f.events) : 0.0,
          f.events > 0 ? 1000 * x("coordination_cpu_s") / static_cast<double>(f.events) : 0.0);
      if (f.extra.count("offered_rate") && f.throughput < 0.95 * f.extra.at("offered_rate")) {
        std::cout << absl::StrFormat("  %-22s NOTE: the offered rate was not sustained (delivered %.0f/s): "
                                     "its latency is queueing\n", "", f.throughput);
      }
    }
  }
  if (!gateway.services.empty()) {
    std::cout << absl::StrFormat("\n%-14s %9s %11s %11s %11s %11s %12s %12s\n", "service", "ready ms",
                                 "RSS start", "RSS rest", "RSS peak", "RSS end", "CPU% max", "CPU ms/ev");
    for (const auto& [name, s] : gateway.services) {
      auto v = [&](const char* k) { auto it = s.find(k); return it == s.end() ? 0.0 : it->second; };
      std::cout << absl::StrFormat("%-14s %9.0f %9.1f M %9.1f M %9.1f M %9.1f M %11.0f%% %12.3f\n", name,
                                   v("ready_ms"), v("rss_start_mib"), v("rss_rest_mib"), v("rss_peak_mib"),
                                   v("rss_end_mib"), v("cpu_pct_max"), v("cpu_ms_per_event_max"));
    }
  }
  const Figures* a = Find(all, "kafka", "max");
  const Figures* b = Find(all, "grpc", "max");
  const Figures* c = Find(all, "gateway", "max");
  const Figures* a_rate = Find(all, "kafka", "rate");
  const Figures* c_rate = Find(all, "gateway", "rate");
  if (a == nullptr || b == nullptr || c == nullptr) return;
  auto verdict = [](bool pass) { return pass ? "PASS" : "MISS"; };
  std::cout << "\n== ratios and targets (issue 6)\n";
  const double floor = std::min(a->throughput, b->throughput);
  std::cout << absl::StrFormat("  (c)/(a) throughput            %6.1f %%\n", 100 * c->throughput / a->throughput);
  std::cout << absl::StrFormat("  (c)/(b) throughput            %6.1f %%\n", 100 * c->throughput / b->throughput);
  std::cout << absl::StrFormat("  (c)/min(a,b) throughput       %6.1f %%   target >= 50 %%     %s\n",
                               100 * c->throughput / floor, verdict(c->throughput >= 0.5 * floor));
  if (a_rate != nullptr && c_rate != nullptr) {
    const double added = c_rate->p99_ms - a_rate->p99_ms;
    std::cout << absl::StrFormat("  added p99 at %.0f/s (c)-(a)   %7.2f ms  target <= 5 ms     %s\n", o.rate,
                                 added, verdict(added <= 5));
  }
  const Figures* a_low = Find(all, "kafka", "low");
  const Figures* c_low = Find(all, "gateway", "low");
  if (a_low != nullptr && c_low != nullptr) {
    std::cout << absl::StrFormat("  added p99 at %.0f/s (c)-(a)   %7.2f ms  (for information)\n", o.low_rate,
                                 c_low->p99_ms - a_low->p99_ms);
  }
  for (const auto& [name, s] : gateway.services) {
    const double rss = std::max({s.at("rss_rest_mib"), s.at("rss_peak_mib"), s.at("rss_end_mib")});
    std::cout << absl::StrFormat("  %-13s RSS max          %6.1f MiB target <= 64 MiB   %s\n", name, rss,
                                 verdict(rss <= 64));
    std::cout << absl::StrFormat("  %-13s start to ready   %6.0f ms  target < 1000 ms   %s\n", name,
                                 s.at("ready_ms"), verdict(s.at("ready_ms") < 1000));
  }
}

int Main(int argc, char** argv) {
  const Options o = ParseOptions(argc, argv);
  if (o.mode == "import") return RunImport(o);
  std::vector<Figures> all;
  GatewayResult gateway;
  if (o.mode == "all" || o.mode == "kafka") {
    std::cerr << "bench: (a) kafka" << std::endl;
    for (Figures& f : RunKafka(o)) all.push_back(f);
  }
  if (o.mode == "all" || o.mode == "grpc") {
    std::cerr << "bench: (b) grpc" << std::endl;
    for (Figures& f : RunGrpc(o)) all.push_back(f);
  }
  if (o.mode == "all" || o.mode == "gateway" || o.mode == "disk") {
    if (std::system(absl::StrCat("mkdir -p '", o.run_dir, "'").c_str()) != 0) Fail("cannot create run dir");
    all.push_back(RunDisk(o));
  }
  if (o.mode == "all" || o.mode == "gateway") {
    std::cerr << "bench: (c) gateway (run directory " << o.run_dir << ")" << std::endl;
    gateway = RunGateway(o);
    for (Figures& f : gateway.figures) all.push_back(f);
  }
  PrintTable(o, all, gateway);
  return 0;
}

}  // namespace
}  // namespace casebridge::bench

int main(int argc, char** argv) { return casebridge::bench::Main(argc, argv); }
