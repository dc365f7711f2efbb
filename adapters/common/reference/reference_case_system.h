// The reference case system: a small system of record kept in one SQLite
// file, one implementation shared by the job centre, social services and
// health. Each administration gives it a `ReferenceSystemProfile` (its name,
// its id prefixes and its offer catalogue) through a thin wrapper in
// adapters/<system>/reference/. casebridge runs against it in development, in
// tests and in demonstrations, and it is the model a real vendor adapter
// follows: it implements every operation of `CaseSystemAdapter` with the
// contract's error codes and idempotency. README.md beside this file
// describes its storage, its referral state machine and its error mapping.
//
// The state survives a restart: a new adapter over the same
// `database_path` sees every decision, appointment and referral step
// recorded before.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "adapters/common/case_system_adapter.h"
#include "casebridge/common/v1/common.pb.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/clock.h"

namespace casebridge::reference {

// One offer in an administration's catalogue.
struct CatalogueOffer {
  // The stable code callers use, e.g. "SEL-85".
  std::string code;
  // A display name, e.g. "Støtte i eget hjem".
  std::string name;
  // The administration that provides it.
  casebridge::common::v1::Administration administration =
      casebridge::common::v1::ADMINISTRATION_UNSPECIFIED;
};

// What makes one administration's reference system its own.
struct ReferenceSystemProfile {
  // The system's name in messages and logs, e.g. "job-centre", "social",
  // "health" ("not in the health catalogue").
  std::string name;
  // Id prefixes of the records it creates, e.g. "D-", "A-", "R-" (decisions,
  // appointments, referrals it sends). They must differ between systems, so
  // that a referral id from another system never looks like one of ours.
  std::string decision_prefix;
  std::string appointment_prefix;
  std::string referral_prefix;
  // The offers the administration decides on and receives referrals for.
  std::vector<CatalogueOffer> offers;
};

// Opens (creating if missing, migrating an older schema) the reference
// system's database at `config.database_path` and returns an adapter over
// it. `clock` decides when a `CallOptions::deadline` has passed and stamps
// new records; it must outlive the adapter.
//
// Returns kInvalidArgument naming `reference.database_path` if it is empty,
// kFailedPrecondition if the file holds a newer schema than this build
// knows, and kInternal if the file cannot be opened or initialised.
absl::StatusOr<std::unique_ptr<CaseSystemAdapter>> NewReferenceCaseSystem(
    ReferenceSystemProfile profile, const casebridge::config::v1::ReferenceSystemConfig& config,
    Clock& clock = RealClock());

}  // namespace casebridge::reference
