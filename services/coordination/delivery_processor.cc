#include "services/coordination/delivery_processor.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/common/kafka/cloudevents.h"
#include "services/common/log.h"
#include "services/common/metrics.h"
#include "services/common/status_macros.h"
#include "services/coordination/derived_events.h"

namespace casebridge::coordination {

using casebridge::coordination::v1::Delivery;
using casebridge::events::v1::CaseEvent;

// The `ce_disclosure` header's value and the metrics label.
const char* DisclosureName(casebridge::coordination::v1::Disclosure disclosure) {
  return disclosure == casebridge::coordination::v1::DISCLOSURE_FULL ? "full" : "minimal";
}

kafka::Record DeliveryRecord(const std::string& topic, const Delivery& delivery,
                             const TraceContext& trace) {
  kafka::Record record = kafka::CaseEventRecord(topic, delivery.event(), trace);
  record.headers.push_back({kRecipientHeader, delivery.recipient()});
  record.headers.push_back(
      {kRecipientSequenceHeader, kafka::FormatSequence(delivery.case_sequence())});
  record.headers.push_back({kDisclosureHeader, DisclosureName(delivery.disclosure())});
  return record;
}

DeliveryProcessor::DeliveryProcessor(CoordinationStore& store, kafka::Consumer& consumer,
                                     kafka::Publisher& publisher, EventRecorder& recorder,
                                     DeliveryNotifier& notifier, DeliveryProcessorOptions options,
                                     Clock& clock)
    : store_(store),
      consumer_(consumer),
      publisher_(publisher),
      recorder_(recorder),
      notifier_(notifier),
      options_(std::move(options)),
      clock_(clock) {}

DeliveryProcessor::~DeliveryProcessor() { Stop(); }

void DeliveryProcessor::Start() {
  thread_ = std::thread([this] { Run(); });
}

void DeliveryProcessor::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_requested_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool DeliveryProcessor::stopping() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

bool DeliveryProcessor::SleepUnlessStopped(absl::Duration duration) {
  std::unique_lock<std::mutex> lock(mu_);
  return !stop_requested_.wait_for(lock, absl::ToChronoNanoseconds(duration),
                                   [this] { return stopping_; });
}

template <typename Step>
bool DeliveryProcessor::RetryUntilDone(const char* what, Step step) {
  absl::Duration backoff = options_.initial_backoff;
  while (true) {
    failed_trace_id_.clear();
    absl::Status status = step();
    if (status.ok()) return true;
    LogWarning(what, {{"error", std::string(status.message())},
                      {"retry_in_ms", std::to_string(absl::ToInt64Milliseconds(backoff))},
                      {"trace_id", failed_trace_id_}});
    if (!SleepUnlessStopped(backoff)) return false;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

void DeliveryProcessor::Run() {
  // Deliveries stored before a crash are not published here: their record
  // was not committed, so it comes again — to this instance or, after a
  // rebalance, to another replica — and `Process` publishes them then. A
  // sweep of every pending delivery at start would race a live replica
  // publishing the same ones.
  while (!stopping()) {
    std::vector<kafka::Record> batch =
        consumer_.PollBatch(options_.poll_timeout, static_cast<size_t>(options_.max_poll_records));
    if (batch.empty()) continue;
    records_ += static_cast<int64_t>(batch.size());
    if (!RetryUntilDone("delivering case events failed", [&] { return ProcessBatch(batch); })) {
      return;  // stopped: the records are consumed again on the next start
    }
    // Asynchronous: everything the batch caused is durable (stored,
    // published, marked), so a commit lost to a crash or a rebalance only
    // means records consumed again, which `Apply` recognises and which
    // publish nothing twice.
    consumer_.CommitAsync(batch);
  }
}

absl::Status DeliveryProcessor::ProcessBatch(const std::vector<kafka::Record>& records) {
  // Runs of ordinary events are applied in one transaction and published
  // together; anything else (a record to dead-letter, an event the case
  // rules may derive from, which must see every earlier event applied) ends
  // the run and goes through `Process` alone.
  std::vector<CaseEvent> run;
  // The span of each event in `run`: this hop, in the record's trace.
  std::vector<TraceContext> run_traces;
  for (const kafka::Record& record : records) {
    absl::StatusOr<CaseEvent> event = kafka::DecodeCaseEventRecord(record);
    if (event.ok() && event->municipality() != options_.municipality) {
      ++other_municipality_;
      continue;
    }
    const bool ordinary =
        event.ok() && ValidateCaseEvent(*event).ok() && !options_.derive &&
        !RulesMayDeriveFrom(*event) &&
        !(event->has_role_assignment() &&
          !options_.recipient_topics.contains(event->role_assignment().recipient()));
    if (ordinary) {
      run.push_back(*std::move(event));
      run_traces.push_back(TraceContext::ChildOf(kafka::TraceContextOf(record)));
      continue;
    }
    RETURN_IF_ERROR(ApplyAndPublish(run, run_traces));
    run.clear();
    run_traces.clear();
    RETURN_IF_ERROR(Process(record));
  }
  return ApplyAndPublish(run, run_traces);
}

absl::Status DeliveryProcessor::ApplyAndPublish(const std::vector<CaseEvent>& events,
                                                const std::vector<TraceContext>& traces) {
  if (events.empty()) return absl::OkStatus();
  absl::StatusOr<std::vector<std::optional<std::vector<Delivery>>>> applied =
      store_.ApplyBatch(events, clock_.Now(), traces);
  RETURN_IF_ERROR(applied.status());
  std::vector<Delivery> pending;
  std::vector<TraceContext> pending_traces;
  // An event applied earlier in this batch (a duplicate record) has its
  // deliveries here already.
  std::set<std::string> fresh;
  for (size_t i = 0; i < events.size(); ++i) {
    std::optional<std::vector<Delivery>>& deliveries = (*applied)[i];
    if (deliveries.has_value()) {
      metrics::EventConsumed(events[i].type());
      fresh.insert(events[i].id());
      for (Delivery& delivery : *deliveries) {
        pending.push_back(std::move(delivery));
        pending_traces.push_back(traces[i]);
      }
      continue;
    }
    if (fresh.contains(events[i].id())) continue;
    // Applied before (consumed again): those of its deliveries not yet
    // durable, with the trace they were stored with.
    std::vector<TraceContext> leftover_traces;
    ASSIGN_OR_RETURN(std::vector<Delivery> leftover,
                     store_.PendingDeliveriesOf(events[i].id(), &leftover_traces));
    for (size_t j = 0; j < leftover.size(); ++j) {
      pending.push_back(std::move(leftover[j]));
      pending_traces.push_back(leftover_traces[j]);
    }
  }
  return PublishBatch(pending, pending_traces);
}

absl::Status DeliveryProcessor::Process(const kafka::Record& record) {
  // This hop's span, in the trace the record carries (or a new one).
  const TraceContext incoming = kafka::TraceContextOf(record);
  const TraceContext span = TraceContext::ChildOf(incoming);
  absl::StatusOr<CaseEvent> event = kafka::DecodeCaseEventRecord(record);
  if (!event.ok()) {
    // The message names topic, partition, offset and the reason only.
    RETURN_IF_ERROR(DeadLetter(record, event.status().message()));
    ++undecodable_;
    LogWarning("undecodable record dead-lettered",
               {{"error", std::string(event.status().message())},
                {"trace_id", incoming.trace_id()}});
    return absl::OkStatus();
  }
  // Another municipality's instance handles it: the expected case on a
  // shared canonical topic, so not logged.
  if (event->municipality() != options_.municipality) {
    ++other_municipality_;
    return absl::OkStatus();
  }
  if (absl::Status usable = ValidateCaseEvent(*event); !usable.ok()) {
    RETURN_IF_ERROR(DeadLetter(record, usable.message()));
    ++skipped_;
    LogWarning("unusable case event dead-lettered",
               {{"error", std::string(usable.message())}, {"trace_id", incoming.trace_id()}});
    return absl::OkStatus();
  }
  if (event->has_role_assignment() &&
      !options_.recipient_topics.contains(event->role_assignment().recipient())) {
    RETURN_IF_ERROR(DeadLetter(record, "role event for a recipient that is not configured"));
    ++skipped_;
    LogWarning("role event for an unknown recipient dead-lettered",
               {{"event_id", event->id()},
                {"subject", event->subject()},
                {"recipient", event->role_assignment().recipient()},
                {"trace_id", incoming.trace_id()}});
    return absl::OkStatus();
  }
  if (absl::Status derived = Derive(*event, span); !derived.ok()) {
    failed_trace_id_ = span.trace_id();
    return derived;
  }
  absl::StatusOr<std::vector<Delivery>> deliveries = store_.Apply(*event, clock_.Now(), span);
  if (absl::IsInvalidArgument(deliveries.status())) {
    RETURN_IF_ERROR(DeadLetter(record, deliveries.status().message()));
    ++skipped_;
    LogWarning("unusable case event dead-lettered",
               {{"error", std::string(deliveries.status().message())},
                {"trace_id", incoming.trace_id()}});
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(deliveries.status());
  metrics::EventConsumed(event->type());
  // This event's deliveries still pending: all of them when just applied;
  // after a crash or a failed publish, those not yet durable — each with the
  // trace it was stored with.
  std::vector<TraceContext> traces;
  ASSIGN_OR_RETURN(std::vector<Delivery> pending, store_.PendingDeliveriesOf(event->id(), &traces));
  return PublishBatch(pending, traces);
}

absl::Status DeliveryProcessor::DeadLetter(const kafka::Record& record,
                                           absl::string_view reason) {
  if (options_.dead_letter_topic.empty()) return absl::OkStatus();
  kafka::Record copy;
  copy.topic = options_.dead_letter_topic;
  copy.key = record.key;
  copy.value = record.value;
  copy.headers = record.headers;
  copy.headers.push_back({kDeadLetterReasonHeader, std::string(reason)});
  copy.headers.push_back(
      {kDeadLetterSourceHeader,
       absl::StrCat(record.topic, "/", record.partition, "/", record.offset)});
  copy.headers.push_back(
      {kDeadLetterConsumerHeader, absl::StrCat("coordination-", options_.municipality)});
  absl::Status status =
      kafka::SendAndWait(publisher_, std::move(copy), options_.delivery_timeout + absl::Seconds(2));
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat("dead-letter topic: ", status.message()));
  }
  ++dead_lettered_;
  metrics::DeadLettered();
  return absl::OkStatus();
}

absl::Status DeliveryProcessor::Derive(const CaseEvent& event, const TraceContext& trace) {
  // The case rules derive nothing from most events; for those, neither the
  // store nor the case's history is read (`RulesMayDeriveFrom`).
  const bool default_rules = !options_.derive;
  if (default_rules && !RulesMayDeriveFrom(event)) return absl::OkStatus();
  ASSIGN_OR_RETURN(const bool applied, store_.IsApplied(event.id()));
  if (applied) return absl::OkStatus();
  CaseHistory history;
  if (default_rules && !RulesReadHistoryFor(event)) {
    history.subject = event.subject();
  } else {
    ASSIGN_OR_RETURN(history, store_.History(event.subject()));
  }
  history.holders = HoldersAfter(history.holders, event);
  history.events.push_back(event);
  const std::vector<DerivedEvent> derived = options_.derive
                                                ? options_.derive(history, event)
                                                : DeriveFromEvent(history, event, options_.load);
  ASSIGN_OR_RETURN(const int recorded,
                   RecordDerivedEvents(recorder_, event.subject(), derived, trace));
  derived_recorded_ += recorded;
  return absl::OkStatus();
}

absl::Status DeliveryProcessor::PublishPending() {
  while (true) {
    std::vector<TraceContext> traces;
    ASSIGN_OR_RETURN(std::vector<Delivery> pending,
                     store_.PendingDeliveries(options_.batch_size, &traces));
    if (pending.empty()) return absl::OkStatus();
    RETURN_IF_ERROR(PublishBatch(pending, traces));
  }
}

absl::Status DeliveryProcessor::PublishBatch(const std::vector<Delivery>& pending,
                                             const std::vector<TraceContext>& traces) {
  if (pending.empty()) return absl::OkStatus();
  {
    std::vector<Delivery> done;
    struct Sent {
      const Delivery* delivery;
      std::future<absl::Status> outcome;
      std::optional<std::future<absl::Status>> audited;
      const TraceContext* trace;
    };
    std::vector<Sent> sent;
    const absl::Time now = clock_.Now();
    const TraceContext none;
    for (size_t i = 0; i < pending.size(); ++i) {
      const Delivery& delivery = pending[i];
      const TraceContext& trace = i < traces.size() ? traces[i] : none;
      auto topic = options_.recipient_topics.find(delivery.recipient());
      if (topic == options_.recipient_topics.end()) {
        LogError("delivery to an unconfigured recipient not sent",
                 {{"recipient", delivery.recipient()},
                  {"event_id", delivery.event().id()},
                  {"stream_sequence", std::to_string(delivery.stream_sequence())},
                  {"trace_id", trace.trace_id()}});
        done.push_back(delivery);
        continue;
      }
      Sent& one = sent.emplace_back(Sent{
          &delivery, publisher_.Send(DeliveryRecord(topic->second, delivery, trace)), std::nullopt,
          &trace});
      if (options_.audit != nullptr) {
        one.audited = options_.audit->Send(DeliveryAuditRecord(delivery, now), now, trace);
      }
    }

    // The producer's own timeout equals the delivery timeout; the margin lets
    // its verdict arrive.
    const auto deadline = std::chrono::steady_clock::now() +
                          absl::ToChronoMilliseconds(options_.delivery_timeout + absl::Seconds(2));
    absl::Status first_error;
    std::vector<const Delivery*> published;
    const auto outcome_of = [&deadline](std::future<absl::Status>& outcome) {
      return outcome.wait_until(deadline) == std::future_status::ready
                 ? outcome.get()
                 : absl::UnavailableError("kafka: delivery not known to be durable (timeout)");
    };
    for (auto& [delivery, outcome, audited, trace] : sent) {
      absl::Status status = outcome_of(outcome);
      if (audited.has_value()) {
        absl::Status audit_status = outcome_of(*audited);
        if (status.ok() && !audit_status.ok()) {
          status = absl::Status(audit_status.code(),
                                absl::StrCat("audit record: ", audit_status.message()));
        }
      }
      if (status.ok()) {
        done.push_back(*delivery);
        published.push_back(delivery);
      } else if (first_error.ok()) {
        first_error = absl::Status(
            status.code(), absl::StrCat("publishing to ", delivery->recipient(), ": ",
                                        status.message()));
        failed_trace_id_ = trace->trace_id();
      }
    }
    // Durable deliveries are marked even when others failed, so a retry does
    // not send them twice.
    RETURN_IF_ERROR(store_.MarkPublished(done));
    deliveries_published_ += static_cast<int64_t>(published.size());
    for (const Delivery* delivery : published) {
      metrics::Delivered(delivery->recipient(), delivery->event().type(),
                         DisclosureName(delivery->disclosure()));
    }
    if (!done.empty()) notifier_.Notify();
    if (!first_error.ok()) {
      ++publish_failures_;
      return first_error;
    }
  }
  return absl::OkStatus();
}

DeliveryProcessorStats DeliveryProcessor::stats() const {
  DeliveryProcessorStats stats;
  stats.records = records_.load();
  stats.undecodable = undecodable_.load();
  stats.skipped = skipped_.load();
  stats.other_municipality = other_municipality_.load();
  stats.derived_recorded = derived_recorded_.load();
  stats.deliveries_published = deliveries_published_.load();
  stats.publish_failures = publish_failures_.load();
  stats.dead_lettered = dead_lettered_.load();
  return stats;
}

}  // namespace casebridge::coordination
