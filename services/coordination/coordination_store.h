// The coordination store: who holds which role on each case, every case
// event consumed (the case's history), every delivery of a case event to a
// recipient, and the recipients' receipts — in one SQLite file
// (`CoordinationServiceConfig.store_path`, one instance) or in a PostgreSQL
// database that every replica shares (`store_url`, ADR 0019).
//
// The store is what makes delivery crash-safe. `Apply` turns one consumed
// case event into its deliveries in a single transaction, so after a crash
// either the event, its place in the case's history and all its deliveries
// are stored or none are; a re-consumed event is recognised by its id and
// yields nothing new. Stored deliveries stay pending until the delivery
// processor marks them published on the recipients' Kafka topics, and they
// remain readable (for `Subscribe`) afterwards.
//
// Every applied event is kept in the case's history, also one routed to
// nobody, so the timeline, the tasks and the case rules (`case_rules.h`) see
// the whole case.
//
// Numbering. Each delivery carries two sequence numbers, both starting at 1
// and without gaps:
//   case_sequence    per recipient and case (subject): a recipient that sees
//                    a jump has missed a delivery of that case;
//   stream_sequence  per recipient across every case: the resume point of
//                    `Subscribe`.
//
// Errors: kInvalidArgument for an event the store cannot apply (no id or
// subject; a role event without role or recipient); kNotFound where a method
// says so; kInternal for a storage failure (SQLite's message, never personal
// data).
//
// Replicas. Several coordination instances may share one PostgreSQL store:
// each applies the events of the canonical partitions it owns in the
// consumer group, every write is one transaction, and every read sees what
// any replica committed. Apply's de-duplication by event id holds across
// replicas.
//
// Tracing. Each delivery row keeps the W3C trace context it is to be
// published with (the coordination hop's span, docs/adr/0022), so that a
// delivery published later — after a failure, a crash, or by the replica
// that took the partition over — carries the same trace.
//
// Thread safety: safe for concurrent use (one mutex serialises the
// connection).
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "casebridge/config/v1/config.pb.h"
#include "casebridge/coordination/v1/coordination_service.pb.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "services/common/sql.h"
#include "services/common/trace_context.h"
#include "services/coordination/case_rules.h"

namespace casebridge::coordination {

// Returns the role holders of a case after `event`, given the holders
// `holders` before it, ordered by role: an assignment replaces the holder of
// its role; a release removes the holder of its role if that holder is the
// recipient it names (a stale release changes nothing). Any other event
// leaves the holders as they are.
std::vector<casebridge::coordination::v1::Party> HoldersAfter(
    const std::vector<casebridge::coordination::v1::Party>& holders,
    const casebridge::events::v1::CaseEvent& event);

// Returns OK if `Apply` can apply `event`, else kInvalidArgument: an event
// without id or subject, or a role event without role or recipient.
absl::Status ValidateCaseEvent(const casebridge::events::v1::CaseEvent& event);

class CoordinationStore {
 public:
  // Opens the store at `path` — a SQLite file (created if missing) or a
  // PostgreSQL URL (`sql::IsPostgresTarget`) — creating its tables if
  // missing; `Apply` routes by
  // `routing` (valid, see `ValidateRoutingConfig`; empty: every holder
  // receives every event). kInternal if the file cannot be opened,
  // kUnavailable if the server cannot be reached.
  //
  // `administrations` maps recipient ids to their administration, for the
  // consent and sensitivity decision (`DecideDisclosure`); a recipient
  // missing there has none (only ordinary content in full).
  static absl::StatusOr<std::unique_ptr<CoordinationStore>> Open(
      const std::string& path, casebridge::config::v1::RoutingConfig routing = {},
      std::map<std::string, casebridge::common::v1::Administration> administrations = {});

  // Applies one case event and returns the deliveries it produced, in the
  // order they were stored (all unpublished). Returns an empty vector if an
  // event with the same id was applied before (re-consumed after a crash).
  //
  // A role event changes the case's holders first (`HoldersAfter`). The
  // event is added to the case's history, then routed by `Route` under the
  // store's routing rules to the holders after the change, the holder it
  // displaced, and, for a correction or cancellation, the recipients of the
  // event it supersedes. `routed_at` is stamped on every delivery.
  //
  // A consent event changes the case's consents first. Each delivery then
  // carries the event as its recipient may see it (`DecideDisclosure` under
  // the consents in force after this event, `Project`), with its
  // `disclosure`, `disclosure_basis` and `consent_ids` set.
  //
  // Every delivery is stored with `trace` (none if not valid).
  absl::StatusOr<std::vector<casebridge::coordination::v1::Delivery>> Apply(
      const casebridge::events::v1::CaseEvent& event, absl::Time routed_at,
      const TraceContext& trace = {});

  // Applies `events` in order, as `Apply` would one after another, in one
  // transaction: all are applied or none. Returns, per event, its
  // deliveries, or nullopt if it was applied before. kInvalidArgument (and
  // nothing applied) if any event fails `ValidateCaseEvent`. The deliveries
  // of `events[i]` are stored with `traces[i]` (none where `traces` is
  // shorter).
  absl::StatusOr<std::vector<std::optional<std::vector<casebridge::coordination::v1::Delivery>>>>
  ApplyBatch(const std::vector<casebridge::events::v1::CaseEvent>& events, absl::Time routed_at,
             const std::vector<TraceContext>& traces = {});

  // Returns up to `limit` unpublished deliveries, oldest first (the order
  // `Apply` stored them in). If `traces` is not null it receives the trace
  // context stored with each, in the same order (not valid for a delivery
  // stored without one).
  absl::StatusOr<std::vector<casebridge::coordination::v1::Delivery>> PendingDeliveries(
      int limit, std::vector<TraceContext>* traces = nullptr);

  // Returns the unpublished deliveries of event `event_id`, in the order
  // `Apply` stored them; `traces` as in `PendingDeliveries`.
  absl::StatusOr<std::vector<casebridge::coordination::v1::Delivery>> PendingDeliveriesOf(
      const std::string& event_id, std::vector<TraceContext>* traces = nullptr);

  // Marks the delivery `stream_sequence` of `recipient` as published. Marking
  // an unknown or already published delivery is not an error.
  absl::Status MarkPublished(const std::string& recipient, uint64_t stream_sequence);
  // Marks every delivery in `deliveries` as published, in one transaction.
  absl::Status MarkPublished(const std::vector<casebridge::coordination::v1::Delivery>& deliveries);

  // Returns up to `limit` deliveries to `recipient` with a stream sequence
  // above `after_stream_sequence`, ascending; only those of case `subject`
  // unless it is empty, and only those with a case sequence above
  // `after_case_sequence` (a replay of one case from a `ce_recipientseq`).
  // Published or not: the store is the record.
  absl::StatusOr<std::vector<casebridge::coordination::v1::Delivery>> ReadDeliveries(
      const std::string& recipient, uint64_t after_stream_sequence, const std::string& subject,
      int limit, uint64_t after_case_sequence = 0);

  // Returns the current role holders of case `subject`, ordered by role;
  // empty for an unknown case.
  absl::StatusOr<std::vector<casebridge::coordination::v1::Party>> ListParties(
      const std::string& subject);

  // Returns the consents of case `subject` in force (given and not
  // withdrawn), oldest first; empty for an unknown case.
  absl::StatusOr<std::vector<casebridge::events::v1::Consent>> ConsentsInForce(
      const std::string& subject);

  // Returns consent `consent_id` of case `subject` and whether it was
  // withdrawn; kNotFound if the case has no such consent.
  absl::StatusOr<std::pair<casebridge::events::v1::Consent, bool>> FindConsent(
      const std::string& subject, const std::string& consent_id);

  // The administration of recipient `recipient` as configured.
  casebridge::common::v1::Administration AdministrationOf(const std::string& recipient) const;

  // True if an event with id `event_id` was applied.
  absl::StatusOr<bool> IsApplied(const std::string& event_id);

  // Returns what the store knows of case `subject`: every applied event of
  // the case in the order it was applied, and the current holders. Empty
  // (with `subject` set) for an unknown case.
  absl::StatusOr<CaseHistory> History(const std::string& subject);

  // Returns every case with at least one applied event, ascending.
  absl::StatusOr<std::vector<std::string>> Subjects();

  // Records `recipient`'s receipt for event `event_id` at `at`, replacing
  // any earlier receipt of that recipient for that event. kNotFound if the
  // event was not delivered to `recipient`.
  // REQUIRES: `status` is RECEIVED, ACCEPTED or REJECTED.
  absl::Status RecordReceipt(const std::string& recipient, const std::string& event_id,
                             casebridge::coordination::v1::ReceiptStatus status,
                             const std::string& reason, absl::Time at);

  // Returns the delivery status of event `event_id`: one entry per recipient
  // it was routed to, ordered by recipient, and the recipients without a
  // receipt. An event routed to nobody has no entries. kNotFound if no event
  // with that id was applied.
  absl::StatusOr<casebridge::coordination::v1::DeliveryStatus> GetDeliveryStatus(
      const std::string& event_id);

 private:
  CoordinationStore(std::unique_ptr<sql::Database> db,
                    casebridge::config::v1::RoutingConfig routing,
                    std::map<std::string, casebridge::common::v1::Administration> administrations)
      : db_(std::move(db)),
        routing_(std::move(routing)),
        administrations_(std::move(administrations)) {}

  absl::StatusOr<std::vector<casebridge::events::v1::Consent>> ConsentsInForceLocked(
      const std::string& subject);

  absl::StatusOr<std::vector<casebridge::coordination::v1::Delivery>> ApplyLocked(
      const casebridge::events::v1::CaseEvent& event, absl::Time routed_at,
      const TraceContext& trace);
  // Apply's work inside the caller's transaction; nullopt if `event` was
  // applied before. REQUIRES: `mu_` held, a transaction open.
  absl::StatusOr<std::optional<std::vector<casebridge::coordination::v1::Delivery>>>
  ApplyInTransaction(const casebridge::events::v1::CaseEvent& event, absl::Time routed_at,
                     const TraceContext& trace);
  absl::StatusOr<std::vector<casebridge::coordination::v1::Party>> ListPartiesLocked(
      const std::string& subject);

  std::mutex mu_;
  std::unique_ptr<sql::Database> db_;  // guarded by mu_
  const casebridge::config::v1::RoutingConfig routing_;
  const std::map<std::string, casebridge::common::v1::Administration> administrations_;
};

}  // namespace casebridge::coordination
