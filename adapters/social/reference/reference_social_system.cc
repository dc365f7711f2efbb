#include "adapters/social/reference/reference_social_system.h"

namespace casebridge::social::reference {

using casebridge::common::v1::ADMINISTRATION_ADDICTION_TREATMENT;
using casebridge::common::v1::ADMINISTRATION_SOCIAL_SERVICES;
using casebridge::reference::ReferenceSystemProfile;

const ReferenceSystemProfile& SocialProfile() {
  static const ReferenceSystemProfile* const profile = new ReferenceSystemProfile{
      .name = "social",
      .decision_prefix = "SD-",
      .appointment_prefix = "SA-",
      .referral_prefix = "SR-",
      .offers =
          {
              {"SEL-85", "Støtte i eget hjem", ADMINISTRATION_SOCIAL_SERVICES},
              {"SEL-85-bostøtte", "Bostøtte", ADMINISTRATION_SOCIAL_SERVICES},
              {"SEL-107", "Midlertidigt botilbud", ADMINISTRATION_SOCIAL_SERVICES},
              {"SEL-101", "Stofmisbrugsbehandling", ADMINISTRATION_ADDICTION_TREATMENT},
              {"SEL-101a", "Alkoholbehandling", ADMINISTRATION_ADDICTION_TREATMENT},
          },
  };
  return *profile;
}

absl::StatusOr<std::unique_ptr<CaseSystemAdapter>> NewReferenceSocialSystem(
    const casebridge::config::v1::ReferenceSystemConfig& config, Clock& clock) {
  return casebridge::reference::NewReferenceCaseSystem(SocialProfile(), config, clock);
}

}  // namespace casebridge::social::reference
