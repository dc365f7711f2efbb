// The coordination store: who holds which role on each case, and every
// delivery of a case event to a recipient, in one SQLite file
// (`CoordinationServiceConfig.store_path`).
//
// The store is what makes delivery crash-safe. `Apply` turns one consumed
// case event into its deliveries in a single transaction, so after a crash
// either the event and all its deliveries are stored or none are; a
// re-consumed event is recognised by its id and yields nothing new. Stored
// deliveries stay pending until the delivery processor marks them published
// on the recipients' Kafka topics, and they remain readable (for `Subscribe`)
// afterwards.
//
// Numbering. Each delivery carries two sequence numbers, both starting at 1
// and without gaps:
//   case_sequence    per recipient and case (subject): a recipient that sees
//                    a jump has missed a delivery of that case;
//   stream_sequence  per recipient across every case: the resume point of
//                    `Subscribe`.
//
// Errors: kInvalidArgument for an event the store cannot apply (no id or
// subject; a role event without role or recipient); kInternal for a storage
// failure (SQLite's message, never personal data).
//
// Thread safety: safe for concurrent use (one mutex serialises the file).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "casebridge/coordination/v1/coordination_service.pb.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "services/common/sqlite.h"

namespace casebridge::coordination {

class CoordinationStore {
 public:
  // Opens (creating if missing) the store at `path`. kInternal if the file
  // cannot be opened.
  static absl::StatusOr<std::unique_ptr<CoordinationStore>> Open(const std::string& path);

  // Applies one case event and returns the deliveries it produced, in the
  // order they were stored (all unpublished). Returns an empty vector if an
  // event with the same id was applied before (re-consumed after a crash).
  //
  // A role event changes the case's holders first: an assignment replaces
  // the holder of its role; a release removes the holder of its role if that
  // holder is the recipient it names (a stale release changes nothing). The
  // event then goes to the holders after the change plus the holder it
  // displaced, as `Route` decides. `routed_at` is stamped on every delivery.
  absl::StatusOr<std::vector<casebridge::coordination::v1::Delivery>> Apply(
      const casebridge::events::v1::CaseEvent& event, absl::Time routed_at);

  // Returns up to `limit` unpublished deliveries, oldest first (the order
  // `Apply` stored them in).
  absl::StatusOr<std::vector<casebridge::coordination::v1::Delivery>> PendingDeliveries(int limit);

  // Marks the delivery `stream_sequence` of `recipient` as published. Marking
  // an unknown or already published delivery is not an error.
  absl::Status MarkPublished(const std::string& recipient, uint64_t stream_sequence);
  // Marks every delivery in `deliveries` as published, in one transaction.
  absl::Status MarkPublished(const std::vector<casebridge::coordination::v1::Delivery>& deliveries);

  // Returns up to `limit` deliveries to `recipient` with a stream sequence
  // above `after_stream_sequence`, ascending; only those of case `subject`
  // unless it is empty. Published or not: the store is the record.
  absl::StatusOr<std::vector<casebridge::coordination::v1::Delivery>> ReadDeliveries(
      const std::string& recipient, uint64_t after_stream_sequence, const std::string& subject,
      int limit);

  // Returns the current role holders of case `subject`, ordered by role;
  // empty for an unknown case.
  absl::StatusOr<std::vector<casebridge::coordination::v1::Party>> ListParties(
      const std::string& subject);

 private:
  explicit CoordinationStore(std::unique_ptr<sqlite::Database> db) : db_(std::move(db)) {}

  absl::StatusOr<std::vector<casebridge::coordination::v1::Delivery>> ApplyLocked(
      const casebridge::events::v1::CaseEvent& event, absl::Time routed_at);
  absl::StatusOr<std::vector<casebridge::coordination::v1::Party>> ListPartiesLocked(
      const std::string& subject);

  std::mutex mu_;
  std::unique_ptr<sqlite::Database> db_;  // guarded by mu_
};

}  // namespace casebridge::coordination
