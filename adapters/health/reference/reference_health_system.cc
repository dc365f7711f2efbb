#include "adapters/health/reference/reference_health_system.h"

namespace casebridge::health::reference {

using casebridge::common::v1::ADMINISTRATION_ADDICTION_TREATMENT;
using casebridge::common::v1::ADMINISTRATION_HEALTH;
using casebridge::reference::ReferenceSystemProfile;

const ReferenceSystemProfile& HealthProfile() {
  static const ReferenceSystemProfile* const profile = new ReferenceSystemProfile{
      .name = "health",
      .decision_prefix = "HD-",
      .appointment_prefix = "HA-",
      .referral_prefix = "HR-",
      .offers =
          {
              {"SUL-119", "Forebyggelse og sundhedsforløb", ADMINISTRATION_HEALTH},
              {"SUL-140", "Genoptræning", ADMINISTRATION_HEALTH},
              {"SUL-141", "Alkoholbehandling", ADMINISTRATION_ADDICTION_TREATMENT},
              {"PSYK-samtaleforløb", "Psykologisk samtaleforløb", ADMINISTRATION_HEALTH},
          },
  };
  return *profile;
}

absl::StatusOr<std::unique_ptr<CaseSystemAdapter>> NewReferenceHealthSystem(
    const casebridge::config::v1::ReferenceSystemConfig& config, Clock& clock) {
  return casebridge::reference::NewReferenceCaseSystem(HealthProfile(), config, clock);
}

}  // namespace casebridge::health::reference
