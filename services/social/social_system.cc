#include "services/social/social_system.h"

#include "adapters/social/social_adapter.h"

namespace casebridge::social {

CaseSystemProfile SocialProfile() {
  return CaseSystemProfile{
      .system = "social",
      .source_system = events::v1::SOURCE_SYSTEM_SOCIAL,
      .default_sensitivity = events::v1::SENSITIVITY_CONFIDENTIAL,
      // Addiction treatment under serviceloven.
      .offer_sensitivities = {{"SEL-101", events::v1::SENSITIVITY_SPECIAL_ADDICTION},
                              {"SEL-101a", events::v1::SENSITIVITY_SPECIAL_ADDICTION}},
  };
}

CaseSystemDefinition SocialSystem() {
  return CaseSystemDefinition{
      .profile = SocialProfile(),
      .default_listen_address = kDefaultListenAddress,
      .new_adapter = &NewSocialAdapter,
      .service_full_name = v1::SocialService::service_full_name(),
      .new_service = &NewCaseSystemService<v1::SocialService>,
  };
}

}  // namespace casebridge::social
