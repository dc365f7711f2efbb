#include "services/coordination/derived_events.h"

#include "absl/strings/str_cat.h"
#include "services/common/log.h"
#include "services/common/record_validation.h"

namespace casebridge::coordination {

absl::StatusOr<int> RecordDerivedEvents(
    EventRecorder& recorder, const std::string& subject, const std::vector<DerivedEvent>& derived,
    const TraceContext& trace,
    const std::function<void(const casebridge::events::v1::CaseEvent&)>& on_recorded) {
  int recorded = 0;
  for (const DerivedEvent& item : derived) {
    const absl::Status key_status =
        ValidateIdempotencyKey(item.idempotency_key, "idempotency_key");
    absl::StatusOr<RecordOutcome> outcome = absl::UnknownError("not recorded");
    if (!key_status.ok()) {
      outcome = key_status;
    } else {
      const RecordRequest request{item.idempotency_key, subject,
                                  absl::StrCat("derived\n", item.idempotency_key),
                                  "idempotency_key", trace};
      outcome = recorder.Record(request, [&]() -> absl::StatusOr<ActionResult> {
        ActionResult result;
        result.event = item.event;
        if (result.event.sensitivity() == casebridge::events::v1::SENSITIVITY_UNSPECIFIED) {
          result.event.set_sensitivity(casebridge::events::v1::SENSITIVITY_ORDINARY);
        }
        return result;
      });
    }
    if (outcome.ok()) {
      if (!outcome->replayed) {
        ++recorded;
        if (on_recorded) on_recorded(outcome->event);
      }
      continue;
    }
    if (absl::IsInvalidArgument(outcome.status()) || absl::IsAlreadyExists(outcome.status())) {
      LogError("derived event not recordable; skipped",
               {{"subject", subject},
                {"payload", std::to_string(static_cast<int>(item.event.payload_case()))},
                {"error", std::string(outcome.status().message())},
                {"trace_id", trace.trace_id()}});
      continue;
    }
    return outcome.status();
  }
  return recorded;
}

}  // namespace casebridge::coordination
