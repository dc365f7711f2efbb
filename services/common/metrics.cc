#include "services/common/metrics.h"

#include <dirent.h>
#include <grpcpp/support/server_interceptor.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <utility>

#include "absl/strings/str_split.h"

namespace casebridge::metrics {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Histogram;

// Gauges read at scrape time (GaugeCallback) and the process series.
class CallbackCollector final : public prometheus::Collectable {
 public:
  uint64_t Add(const std::string& name, std::string help,
               std::function<std::vector<Sample>()> read) {
    std::lock_guard<std::mutex> lock(mu_);
    gauges_[name].push_back(Gauge{++last_id_, std::move(help), std::move(read)});
    return last_id_;
  }
  // Returns once no scrape reads the gauge any more.
  void Remove(const std::string& name, uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = gauges_.find(name);
    if (it == gauges_.end()) return;
    std::erase_if(it->second, [id](const Gauge& gauge) { return gauge.id == id; });
    if (it->second.empty()) gauges_.erase(it);
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> families = ProcessFamilies();
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, registered] : gauges_) {
      const Gauge& gauge = registered.back();
      prometheus::MetricFamily family;
      family.name = name;
      family.help = gauge.help;
      family.type = prometheus::MetricType::Gauge;
      for (const Sample& sample : gauge.read()) {
        prometheus::ClientMetric metric;
        for (const auto& [label, value] : sample.labels) metric.label.push_back({label, value});
        metric.gauge.value = sample.value;
        family.metric.push_back(std::move(metric));
      }
      families.push_back(std::move(family));
    }
    return families;
  }

 private:
  struct Gauge {
    uint64_t id = 0;
    std::string help;
    std::function<std::vector<Sample>()> read;
  };

  static prometheus::MetricFamily One(const char* name, const char* help,
                                      prometheus::MetricType type, double value) {
    prometheus::MetricFamily family;
    family.name = name;
    family.help = help;
    family.type = type;
    prometheus::ClientMetric metric;
    if (type == prometheus::MetricType::Counter) {
      metric.counter.value = value;
    } else {
      metric.gauge.value = value;
    }
    family.metric.push_back(std::move(metric));
    return family;
  }

  // The standard process series of Prometheus client libraries, from /proc.
  static std::vector<prometheus::MetricFamily> ProcessFamilies() {
    std::vector<prometheus::MetricFamily> families;
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    std::ifstream stat("/proc/self/stat");
    std::string line;
    if (std::getline(stat, line)) {
      // Fields after the command name, which is in parentheses and may
      // contain spaces: field 3 (state) is the first.
      const size_t close = line.rfind(')');
      if (close != std::string::npos) {
        std::vector<std::string> fields =
            absl::StrSplit(line.substr(close + 2), ' ', absl::SkipEmpty());
        // utime, stime: fields 14, 15; starttime: field 22 (1-based).
        if (fields.size() > 19) {
          const double cpu = (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
          families.push_back(One("process_cpu_seconds_total",
                                 "Total user and system CPU time spent in seconds.",
                                 prometheus::MetricType::Counter, cpu));
          if (double boot = BootTime(); boot > 0) {
            families.push_back(One("process_start_time_seconds",
                                   "Start time of the process since unix epoch in seconds.",
                                   prometheus::MetricType::Gauge,
                                   boot + std::stod(fields[19]) / ticks));
          }
        }
      }
    }
    std::ifstream statm("/proc/self/statm");
    double pages_total = 0, pages_resident = 0;
    if (statm >> pages_total >> pages_resident) {
      families.push_back(One("process_resident_memory_bytes", "Resident memory size in bytes.",
                             prometheus::MetricType::Gauge,
                             pages_resident * static_cast<double>(sysconf(_SC_PAGESIZE))));
    }
    if (DIR* dir = opendir("/proc/self/fd"); dir != nullptr) {
      int count = 0;
      while (readdir(dir) != nullptr) ++count;
      closedir(dir);
      // ".", ".." and the directory's own descriptor.
      families.push_back(One("process_open_fds", "Number of open file descriptors.",
                             prometheus::MetricType::Gauge, count - 3));
    }
    return families;
  }

  static double BootTime() {
    std::ifstream stat("/proc/stat");
    std::string key;
    double value = 0;
    while (stat >> key) {
      if (key == "btime" && (stat >> value)) return value;
      stat.ignore(1 << 16, '\n');
    }
    return 0;
  }

  mutable std::mutex mu_;
  uint64_t last_id_ = 0;
  std::map<std::string, std::vector<Gauge>> gauges_;
};

// Every family, registered once.
struct Families {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::shared_ptr<CallbackCollector> callbacks = std::make_shared<CallbackCollector>();

  Family<Counter>& recorded = prometheus::BuildCounter()
                                  .Name("casebridge_events_recorded_total")
                                  .Help("New events written to the ledger (replays not counted).")
                                  .Register(*registry);
  Family<Counter>& published =
      prometheus::BuildCounter()
          .Name("casebridge_events_published_total")
          .Help("Events Kafka acknowledged (acks=all), by topic and event type.")
          .Register(*registry);
  Family<Counter>& delivery_errors =
      prometheus::BuildCounter()
          .Name("casebridge_kafka_delivery_errors_total")
          .Help("Kafka delivery reports with an error (the record is not durable), by topic.")
          .Register(*registry);
  Family<Counter>& consumed = prometheus::BuildCounter()
                                  .Name("casebridge_events_consumed_total")
                                  .Help("Canonical events applied to the coordination store.")
                                  .Register(*registry);
  Family<Counter>& delivered =
      prometheus::BuildCounter()
          .Name("casebridge_deliveries_total")
          .Help("Deliveries Kafka acknowledged on party topics, by recipient, event type and "
                "disclosure.")
          .Register(*registry);
  Family<Counter>& dead_letters = prometheus::BuildCounter()
                                      .Name("casebridge_dead_letters_total")
                                      .Help("Records copied to the dead-letter topic.")
                                      .Register(*registry);
  Family<Counter>& watchdogs = prometheus::BuildCounter()
                                   .Name("casebridge_watchdog_firings_total")
                                   .Help("Watchdog firings, by watchdog.")
                                   .Register(*registry);
  Family<Counter>& rpc_started =
      prometheus::BuildCounter()
          .Name("grpc_server_started_total")
          .Help("RPCs started on the server.")
          .Register(*registry);
  Family<Counter>& rpc_handled =
      prometheus::BuildCounter()
          .Name("grpc_server_handled_total")
          .Help("RPCs completed on the server, by status code.")
          .Register(*registry);
  Family<Histogram>& rpc_seconds =
      prometheus::BuildHistogram()
          .Name("grpc_server_handling_seconds")
          .Help("Time from the start of an RPC to its status, in seconds.")
          .Register(*registry);
  Family<prometheus::Gauge>& build_info =
      prometheus::BuildGauge()
          .Name("casebridge_build_info")
          .Help("Always 1; the labels say which service and version run.")
          .Register(*registry);

};

Families& Get() {
  static Families* families = new Families();
  return *families;
}

// prometheus-cpp 1.0's Registry takes no foreign Collectable: the exposer
// registers both (Collectables()), and TextFormat() collects both.
std::vector<prometheus::MetricFamily> CollectAll() {
  std::vector<prometheus::MetricFamily> all = Get().registry->Collect();
  std::vector<prometheus::MetricFamily> more = Get().callbacks->Collect();
  all.insert(all.end(), std::make_move_iterator(more.begin()),
             std::make_move_iterator(more.end()));
  return all;
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

const char* TypeName(grpc::experimental::ServerRpcInfo::Type type) {
  using Type = grpc::experimental::ServerRpcInfo::Type;
  switch (type) {
    case Type::UNARY: return "unary";
    case Type::CLIENT_STREAMING: return "client_stream";
    case Type::SERVER_STREAMING: return "server_stream";
    case Type::BIDI_STREAMING: return "bidi_stream";
  }
  return "unary";
}

// One per RPC: counts it at creation, times it until its status goes out.
class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit MetricsInterceptor(grpc::experimental::ServerRpcInfo* info)
      : start_(std::chrono::steady_clock::now()) {
    // "/casebridge.jobcentre.v1.JobCentreService/RecordDecision"
    absl::string_view method = info->method() != nullptr ? info->method() : "";
    if (!method.empty() && method.front() == '/') method.remove_prefix(1);
    const size_t slash = method.find('/');
    service_ = std::string(method.substr(0, slash));
    method_ = slash == absl::string_view::npos ? "" : std::string(method.substr(slash + 1));
    type_ = TypeName(info->type());
    Get().rpc_started.Add(Labels()).Increment();
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      std::map<std::string, std::string> labels = Labels();
      Get().rpc_seconds
          .Add(labels, Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                   0.25, 0.5, 1, 2.5, 5, 10, 30})
          .Observe(seconds);
      labels.emplace("grpc_code", CodeName(status.error_code()));
      Get().rpc_handled.Add(labels).Increment();
    }
    methods->Proceed();
  }

 private:
  std::map<std::string, std::string> Labels() const {
    return {{"grpc_service", service_}, {"grpc_method", method_}, {"grpc_type", type_}};
  }

  std::chrono::steady_clock::time_point start_;
  std::string service_;
  std::string method_;
  std::string type_;
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(info);
  }
};

}  // namespace

std::vector<std::weak_ptr<prometheus::Collectable>> Collectables() {
  return {Get().registry, Get().callbacks};
}

void EventRecorded(absl::string_view event_type) {
  Get().recorded.Add({{"event_type", std::string(event_type)}}).Increment();
}

void EventPublished(absl::string_view topic, absl::string_view event_type) {
  Get()
      .published.Add({{"topic", std::string(topic)}, {"event_type", std::string(event_type)}})
      .Increment();
}

void KafkaDeliveryError(absl::string_view topic) {
  Get().delivery_errors.Add({{"topic", std::string(topic)}}).Increment();
}

void DeclareTopic(absl::string_view topic) {
  Get().delivery_errors.Add({{"topic", std::string(topic)}});
}

void EventConsumed(absl::string_view event_type) {
  Get().consumed.Add({{"event_type", std::string(event_type)}}).Increment();
}

void Delivered(absl::string_view recipient, absl::string_view event_type,
               absl::string_view disclosure) {
  Get()
      .delivered
      .Add({{"recipient", std::string(recipient)},
            {"event_type", std::string(event_type)},
            {"disclosure", std::string(disclosure)}})
      .Increment();
}

void DeadLettered() { Get().dead_letters.Add({}).Increment(); }

void DeclareDeadLetters() { Get().dead_letters.Add({}); }

void WatchdogFired(absl::string_view watchdog) {
  Get().watchdogs.Add({{"watchdog", std::string(watchdog)}}).Increment();
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewServerMetricsInterceptor() {
  return std::make_unique<MetricsInterceptorFactory>();
}

GaugeCallback::GaugeCallback(std::string name, std::string help,
                             std::function<std::vector<Sample>()> read)
    : name_(std::move(name)), id_(Get().callbacks->Add(name_, std::move(help), std::move(read))) {}

GaugeCallback::GaugeCallback(std::string name, std::string help, std::function<double()> read)
    : GaugeCallback(std::move(name), std::move(help), [read = std::move(read)] {
        return std::vector<Sample>{Sample{{}, read()}};
      }) {}

GaugeCallback::~GaugeCallback() {
  if (id_ != 0) Get().callbacks->Remove(name_, id_);
}

GaugeCallback::GaugeCallback(GaugeCallback&& other) noexcept
    : name_(std::move(other.name_)), id_(std::exchange(other.id_, 0)) {}

GaugeCallback& GaugeCallback::operator=(GaugeCallback&& other) noexcept {
  if (this != &other) {
    if (id_ != 0) Get().callbacks->Remove(name_, id_);
    name_ = std::move(other.name_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

void SetService(absl::string_view service) {
  Get()
      .build_info
      .Add({{"component", std::string(service)}, {"version", CASEBRIDGE_VERSION}})
      .Set(1);
}

std::string TextFormat() { return prometheus::TextSerializer().Serialize(CollectAll()); }

}  // namespace casebridge::metrics
