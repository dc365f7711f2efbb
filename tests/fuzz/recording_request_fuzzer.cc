// Fuzzes the recording RPCs of a case-system service below gRPC: the input's
// first byte picks one of the requests of casebridge.recording.v1, the rest
// is parsed as that message, and the request goes through the real
// `CaseSystemCore` (validation, CPR resolution, supersession, idempotency,
// the job centre's reference system and the ledger), publishing to an
// in-memory publisher. SQLite runs in memory; the service is rebuilt every
// `kRunsPerService` inputs so that its state stays small.
//
// Checked besides ASan/UBSan:
//   * the answer is one of the codes a request can earn (never INTERNAL,
//     UNKNOWN, UNAVAILABLE, …);
//   * an error message never repeats the CPR number of the request (unless
//     the request has it in another field as well);
//   * an accepted request holds no unknown enum value (proto3 enums are
//     open: any number parses) and published exactly one record, which
//     decodes as the coordination consumer decodes it, has a CloudEvents
//     type, no fields unknown to the schema (a caller's unvalidated bytes
//     must not reach the recipients), and only valid timestamps (RFC 3339's range, which every
//     consumer's protobuf library can convert).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "adapters/jobcentre/reference/reference_jobcentre_system.h"
#include "casebridge/recording/v1/recording.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "services/common/case_system_service.h"
#include "services/common/clock.h"
#include "services/common/event_recorder.h"
#include "google/protobuf/stubs/logging.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/kafka/memory_publisher.h"
#include "services/common/pseudonym.h"
#include "services/common/record_validation.h"
#include "services/jobcentre/jobcentre_system.h"

namespace casebridge {
namespace {

namespace rec = casebridge::recording::v1;

constexpr int kRunsPerService = 500;

// One job-centre core over in-memory SQLite, at a fixed time.
struct Service {
  Service() : clock(absl::FromUnixSeconds(1767225600)) {  // 2026-01-01T00:00:00Z
    config::v1::ReferenceSystemConfig reference;
    reference.set_database_path(":memory:");
    adapter = Must(jobcentre::reference::NewReferenceJobCentreSystem(reference, clock));
    RecorderOptions options;
    options.topic = "casebridge.case-events.v1";
    options.system = "jobcentre";
    options.source_system = events::v1::SOURCE_SYSTEM_JOB_CENTRE;
    options.municipality = "0751";
    recorder = Must(EventRecorder::Create(":memory:", options, publisher, clock));
    pseudonymizer = Must(Pseudonymizer::Create(std::string(32, 'k')));
    core = std::make_unique<CaseSystemCore>(jobcentre::JobCentreProfile(), *adapter, *recorder,
                                            *pseudonymizer, "0751", absl::Seconds(5), clock);
  }

  template <typename T>
  static T Must(absl::StatusOr<T> value) {
    if (!value.ok()) {
      fprintf(stderr, "fuzzer setup failed: %s\n", value.status().ToString().c_str());
      abort();
    }
    return *std::move(value);
  }

  FakeClock clock;
  kafka::MemoryPublisher publisher;
  std::unique_ptr<CaseSystemAdapter> adapter;
  std::unique_ptr<EventRecorder> recorder;
  std::unique_ptr<Pseudonymizer> pseudonymizer;
  std::unique_ptr<CaseSystemCore> core;
};

bool ExpectedCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
      return true;
    default:
      return false;
  }
}

void Fail(const char* what, const absl::Status& status) {
  fprintf(stderr, "recording_request_fuzzer: %s: %s\n", what, status.ToString().c_str());
  abort();
}

// The path of the first enum field in `message` whose number its enum does
// not define, or "" if there is none.
std::string UnknownEnumField(const google::protobuf::Message& message, const std::string& path) {
  const google::protobuf::Reflection& reflection = *message.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection.ListFields(message, &fields);
  for (const google::protobuf::FieldDescriptor* field : fields) {
    const std::string name = path.empty() ? field->name() : path + "." + field->name();
    const int count = field->is_repeated() ? reflection.FieldSize(message, field) : 1;
    for (int i = 0; i < count; ++i) {
      const std::string item = field->is_repeated() ? absl::StrCat(name, "[", i, "]") : name;
      if (field->type() == google::protobuf::FieldDescriptor::TYPE_ENUM) {
        const int number = field->is_repeated() ? reflection.GetRepeatedEnumValue(message, field, i)
                                                : reflection.GetEnumValue(message, field);
        if (field->enum_type()->FindValueByNumber(number) == nullptr) return item;
      } else if (field->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE) {
        const google::protobuf::Message& sub =
            field->is_repeated() ? reflection.GetRepeatedMessage(message, field, i)
                                 : reflection.GetMessage(message, field);
        if (std::string unknown = UnknownEnumField(sub, item); !unknown.empty()) return unknown;
      }
    }
  }
  return "";
}

// The path of the first message in `message` (itself: "") that carries
// fields unknown to the schema, or nullopt if none does.
std::optional<std::string> UnknownFieldsAt(const google::protobuf::Message& message,
                                           const std::string& path) {
  const google::protobuf::Reflection& reflection = *message.GetReflection();
  if (!reflection.GetUnknownFields(message).empty()) return path;
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection.ListFields(message, &fields);
  for (const google::protobuf::FieldDescriptor* field : fields) {
    if (field->type() != google::protobuf::FieldDescriptor::TYPE_MESSAGE) continue;
    const std::string name = path.empty() ? field->name() : path + "." + field->name();
    const int count = field->is_repeated() ? reflection.FieldSize(message, field) : 1;
    for (int i = 0; i < count; ++i) {
      const google::protobuf::Message& sub =
          field->is_repeated() ? reflection.GetRepeatedMessage(message, field, i)
                               : reflection.GetMessage(message, field);
      if (auto at = UnknownFieldsAt(sub, name); at.has_value()) return at;
    }
  }
  return std::nullopt;
}

// The path of the first google.protobuf.Timestamp in `message` outside
// RFC 3339's range (0001-01-01 to 9999-12-31) or with nanos outside a
// second, or "" if there is none.
std::string InvalidTimestampField(const google::protobuf::Message& message,
                                  const std::string& path) {
  if (message.GetDescriptor() == google::protobuf::Timestamp::descriptor()) {
    const auto& t = static_cast<const google::protobuf::Timestamp&>(message);
    const bool valid = t.seconds() >= -62135596800LL && t.seconds() <= 253402300799LL &&
                       t.nanos() >= 0 && t.nanos() <= 999999999;
    return valid ? "" : path;
  }
  const google::protobuf::Reflection& reflection = *message.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection.ListFields(message, &fields);
  for (const google::protobuf::FieldDescriptor* field : fields) {
    if (field->type() != google::protobuf::FieldDescriptor::TYPE_MESSAGE) continue;
    const std::string name = path.empty() ? field->name() : path + "." + field->name();
    const int count = field->is_repeated() ? reflection.FieldSize(message, field) : 1;
    for (int i = 0; i < count; ++i) {
      const google::protobuf::Message& sub =
          field->is_repeated() ? reflection.GetRepeatedMessage(message, field, i)
                               : reflection.GetMessage(message, field);
      if (std::string bad = InvalidTimestampField(sub, name); !bad.empty()) return bad;
    }
  }
  return "";
}

int Occurrences(absl::string_view text, absl::string_view part) {
  int count = 0;
  for (size_t at = text.find(part); at != absl::string_view::npos; at = text.find(part, at + 1)) {
    ++count;
  }
  return count;
}

// Calls `rpc` with `request` parsed from `bytes`; checks the answer.
template <typename Request, typename Rpc>
void Call(Service& service, const uint8_t* bytes, size_t size, const Rpc& rpc) {
  Request request;
  if (!request.ParseFromArray(bytes, static_cast<int>(size))) return;
  const size_t published_before = service.publisher.records().size();
  const absl::StatusOr<rec::RecordResponse> response = rpc(request);
  if (!ExpectedCode(response.status().code())) Fail("unexpected status", response.status());

  std::string cpr;
  if constexpr (requires { request.context(); }) {
    cpr = request.context().case_ref().cpr();
  }
  // (Only a CPR with 6 digits or more counts: shorter text can be part of a
  // fixed message. And not when the caller wrote it into another field too,
  // e.g. an id that an error names.)
  const auto digits =
      std::count_if(cpr.begin(), cpr.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!response.ok() && digits >= 6 &&
      absl::StrContains(response.status().message(), cpr) &&
      Occurrences(request.SerializeAsString(), cpr) == 1) {
    Fail("the message repeats the CPR number", response.status());
  }

  if (response.ok()) {
    if (const std::string field = UnknownEnumField(request, ""); !field.empty()) {
      Fail("accepted with an unknown enum value", absl::InvalidArgumentError(field));
    }
  }
  const std::vector<kafka::Record> records = service.publisher.records();
  if (!response.ok() || response->replayed()) {
    if (records.size() != published_before) Fail("a refused or replayed call published", {});
    return;
  }
  if (records.size() != published_before + 1) Fail("an accepted call published no record", {});
  const absl::StatusOr<events::v1::CaseEvent> event = kafka::DecodeCaseEventRecord(records.back());
  if (!event.ok()) Fail("the published record does not decode", event.status());
  if (event->type().empty()) Fail("the published event has no type", {});
  if (event->id() != response->event_id()) Fail("the event id differs from the answer's", {});
  if (const auto at = UnknownFieldsAt(*event, ""); at.has_value()) {
    Fail("the published event carries unknown fields", absl::InvalidArgumentError(*at));
  }
  if (const std::string field = InvalidTimestampField(*event, ""); !field.empty()) {
    Fail("the published event has an invalid timestamp", absl::InvalidArgumentError(field));
  }
}

}  // namespace
}  // namespace casebridge

// protobuf logs every string field with invalid UTF-8 it parses; at
// thousands of inputs a second that is only noise (and slow).
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace casebridge;  // NOLINT: one entry point
  static std::unique_ptr<Service> service;
  static int runs = 0;
  if (service == nullptr || ++runs % kRunsPerService == 0) {
    service.reset();
    service = std::make_unique<Service>();
  }
  if (size == 0) return 0;
  CaseSystemCore& core = *service->core;
  const absl::Time no_deadline = absl::InfiniteFuture();
  const uint8_t* bytes = data + 1;
  const size_t n = size - 1;
  switch (data[0] % 8) {
    case 0:
      Call<rec::RecordDecisionRequest>(*service, bytes, n, [&](const auto& r) {
        return core.RecordDecision(r, no_deadline);
      });
      break;
    case 1:
      Call<rec::BookAppointmentRequest>(*service, bytes, n, [&](const auto& r) {
        return core.BookAppointment(r, no_deadline);
      });
      break;
    case 2:
      Call<rec::RescheduleAppointmentRequest>(*service, bytes, n, [&](const auto& r) {
        return core.RescheduleAppointment(r, no_deadline);
      });
      break;
    case 3:
      Call<rec::CancelAppointmentRequest>(*service, bytes, n, [&](const auto& r) {
        return core.CancelAppointment(r, no_deadline);
      });
      break;
    case 4:
      Call<rec::RecordAttendanceRequest>(*service, bytes, n, [&](const auto& r) {
        return core.RecordAttendance(r, no_deadline);
      });
      break;
    case 5:
      Call<rec::RecordReferralStepRequest>(*service, bytes, n, [&](const auto& r) {
        return core.RecordReferralStep(r, no_deadline);
      });
      break;
    case 6:
      Call<rec::CancelEventRequest>(*service, bytes, n, [&](const auto& r) {
        return core.CancelEvent(r, no_deadline);
      });
      break;
    case 7: {
      rec::ListCaseEventsRequest request;
      if (!request.ParseFromArray(bytes, static_cast<int>(n))) break;
      const auto response = core.ListCaseEvents(request);
      if (!ExpectedCode(response.status().code())) Fail("unexpected status", response.status());
      if (response.ok() && response->events_size() > 1000) Fail("page larger than 1000", {});
      break;
    }
  }
  return 0;
}
