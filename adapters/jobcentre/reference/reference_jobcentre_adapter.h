// The reference job-centre system: a small system of record kept in one
// SQLite file. It is the vendor casebridge runs against in development, in
// tests and in demonstrations, and the model a real vendor adapter follows.
// It implements every operation of `JobCentreAdapter` with the contract's
// error codes and idempotency; README.md beside this file describes its
// storage and its error mapping.
//
// The state survives a restart: a new adapter over the same
// `database_path` sees every decision and appointment recorded before.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "adapters/jobcentre/jobcentre_adapter.h"
#include "casebridge/config/v1/config.pb.h"
#include "services/common/clock.h"

namespace casebridge::jobcentre::reference {

// Opens (creating if missing) the reference system's database at
// `config.database_path` and returns an adapter over it. `clock` decides
// when a `CallOptions::deadline` has passed and stamps new records; it must
// outlive the adapter.
//
// Returns kInvalidArgument naming `reference.database_path` if it is empty,
// kFailedPrecondition if the file holds a newer schema than this build
// knows, and kInternal if the file cannot be opened or initialised.
absl::StatusOr<std::unique_ptr<JobCentreAdapter>> NewReferenceJobCentreAdapter(
    const casebridge::config::v1::ReferenceJobCentreConfig& config, Clock& clock = RealClock());

}  // namespace casebridge::jobcentre::reference
