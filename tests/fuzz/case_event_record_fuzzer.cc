// Fuzzes what the coordination consumer does with a record of the canonical
// topic before its store: `DecodeCaseEventRecord` (content type, the
// CloudEvents headers, the key and the CaseEvent value), `ValidateCaseEvent`,
// and the pure steps on a decoded event: the role holders after it, the
// derived events and watchdog alerts it calls for, its routing, its
// timeline entry and the headers it is re-published with.
//
// The input is split into the key, the headers and the value. In half the
// inputs the headers and key are made to agree with the value (as a
// casebridge producer writes them), so that the steps after decoding are
// reached, not only its checks.
//
// Checked besides ASan/UBSan: decoding fails only with INVALID_ARGUMENT; a
// decoded event re-encodes to a record that decodes; derived events carry a
// valid idempotency key; routing returns each recipient once, in order, with
// a role.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "casebridge/config/v1/config.pb.h"
#include "services/common/config.h"
#include "services/common/event_ids.h"
#include "google/protobuf/stubs/logging.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/record_validation.h"
#include "services/coordination/case_rules.h"
#include "services/coordination/coordination_store.h"
#include "services/coordination/router.h"
#include "services/coordination/timeline.h"

namespace {

namespace coordination = casebridge::coordination;
namespace v1 = casebridge::coordination::v1;
using casebridge::events::v1::CaseEvent;
using casebridge::kafka::Record;

void Fail(const char* what, const absl::Status& status) {
  fprintf(stderr, "case_event_record_fuzzer: %s: %s\n", what, status.ToString().c_str());
  abort();
}

const char* const kHeaderNames[] = {"content-type", "ce_specversion", "ce_id",   "ce_source",
                                    "ce_type",      "ce_subject",     "ce_time", "ce_sequence",
                                    "ce_municipality", "ce_sensitivity", "ce_supersedes"};

// The sample municipality's routing rules (services/coordination/coordination.sample.json).
const casebridge::config::v1::RoutingConfig& SampleRouting() {
  static const auto* routing = [] {
    auto parsed = casebridge::ParseConfig<casebridge::config::v1::RoutingConfig>(R"({"rules": [
      {"eventTypes": ["dk.casebridge.decision.*", "dk.casebridge.appointment.*"],
       "roles": ["ROLE_CITIZEN", "ROLE_COORDINATING_CASEWORKER", "ROLE_MENTOR"]},
      {"eventTypes": ["dk.casebridge.referral.*"],
       "roles": ["ROLE_COORDINATING_CASEWORKER", "ROLE_CITIZEN", "ROLE_REHABILITATION_TEAM"]},
      {"eventTypes": ["dk.casebridge.plan.*", "dk.casebridge.task.*",
                      "dk.casebridge.event.cancelled.v1"],
       "roles": ["ROLE_COORDINATING_CASEWORKER"]}]})");
    if (!parsed.ok() || !coordination::ValidateRoutingConfig(*parsed, "routing").ok()) abort();
    return new casebridge::config::v1::RoutingConfig(*parsed);
  }();
  return *routing;
}

// Holders of a case: citizen, coordinating caseworker, mentor.
std::vector<v1::Party> SampleHolders() {
  std::vector<v1::Party> holders(3);
  holders[0].set_role(casebridge::common::v1::ROLE_CITIZEN);
  holders[0].set_recipient("citizen-portal");
  holders[1].set_role(casebridge::common::v1::ROLE_COORDINATING_CASEWORKER);
  holders[1].set_recipient("aarhus-jobcenter");
  holders[2].set_role(casebridge::common::v1::ROLE_MENTOR);
  holders[2].set_recipient("mentorhuset");
  return holders;
}

void AfterDecoding(const CaseEvent& event) {
  if (!coordination::ValidateCaseEvent(event).ok()) return;  // skipped, as the consumer does
  (void)casebridge::EventTypeFor(event);
  (void)casebridge::kafka::CloudEventHeaders(event);

  // Re-encoded (as on a party topic), it decodes again.
  const Record again = casebridge::kafka::CaseEventRecord("casebridge.party.x.v1", event);
  const absl::StatusOr<CaseEvent> redecoded = casebridge::kafka::DecodeCaseEventRecord(again);
  if (!redecoded.ok()) {
    Fail("a decoded event does not decode after re-encoding", redecoded.status());
  }

  coordination::CaseHistory history;
  history.holders = coordination::HoldersAfter(SampleHolders(), event);
  history.events.push_back(event);
  casebridge::config::v1::LoadConfig load;
  load.set_max_activities_per_day(2);
  std::vector<coordination::DerivedEvent> derived =
      coordination::DeriveFromEvent(history, event, load);
  casebridge::config::v1::WatchdogConfig watchdogs;
  watchdogs.set_referral_ack_days(5);
  watchdogs.set_waitlist_without_estimate_days(14);
  watchdogs.set_min_follow_ups(6);
  watchdogs.set_follow_up_window_days(365);
  watchdogs.set_no_contact_days(30);
  for (coordination::DerivedEvent& alert :
       coordination::CheckWatchdogs(history, absl::FromUnixSeconds(1767225600), watchdogs)) {
    derived.push_back(std::move(alert));
  }
  for (const coordination::DerivedEvent& d : derived) {
    const absl::Status key = casebridge::ValidateIdempotencyKey(d.idempotency_key, "key");
    if (!key.ok()) Fail("a derived event's idempotency key is invalid", key);
  }

  const std::vector<coordination::RoutedRecipient> routed =
      coordination::Route(event, history.holders, SampleRouting());
  for (size_t i = 0; i < routed.size(); ++i) {
    if (routed[i].roles.empty()) Fail("a recipient routed without a role", {});
    if (i > 0 && !(routed[i - 1].recipient < routed[i].recipient)) {
      Fail("recipients not unique and ordered", {});
    }
  }
  (void)coordination::BuildTimeline(history.events, /*include_superseded=*/true);
}

}  // namespace

// protobuf logs every string field with invalid UTF-8 it parses; at
// thousands of inputs a second that is only noise (and slow).
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider input(data, size);
  const bool consistent = input.ConsumeBool();
  Record record;
  record.topic = "casebridge.case-events.v1";
  record.partition = 0;
  record.offset = 42;
  record.key = input.ConsumeRandomLengthString(80);
  const int headers = input.ConsumeIntegralInRange(0, 14);
  for (int i = 0; i < headers; ++i) {
    casebridge::kafka::Header& header = record.headers.emplace_back();
    header.key = input.ConsumeBool() ? input.PickValueInArray(kHeaderNames)
                                     : input.ConsumeRandomLengthString(20);
    header.value = input.ConsumeRandomLengthString(80);
  }
  record.value = input.ConsumeRemainingBytesAsString();
  if (consistent) {
    CaseEvent event;
    if (event.ParseFromString(record.value)) {
      record.key = event.subject();
      record.headers = casebridge::kafka::CloudEventHeaders(event);
    }
  }

  const absl::StatusOr<CaseEvent> event = casebridge::kafka::DecodeCaseEventRecord(record);
  if (!event.ok()) {
    if (event.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail("not INVALID_ARGUMENT", event.status());
    }
    return 0;
  }
  AfterDecoding(*event);
  return 0;
}
