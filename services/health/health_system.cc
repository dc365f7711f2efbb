#include "services/health/health_system.h"

#include "adapters/health/health_adapter.h"

namespace casebridge::health {

CaseSystemProfile HealthProfile() {
  return CaseSystemProfile{
      .system = "health",
      .source_system = events::v1::SOURCE_SYSTEM_HEALTH,
      .default_sensitivity = events::v1::SENSITIVITY_SPECIAL_HEALTH,
      // Alcohol treatment under sundhedsloven.
      .offer_sensitivities = {{"SUL-141", events::v1::SENSITIVITY_SPECIAL_ADDICTION}},
  };
}

CaseSystemDefinition HealthSystem() {
  return CaseSystemDefinition{
      .profile = HealthProfile(),
      .default_listen_address = kDefaultListenAddress,
      .new_adapter = &NewHealthAdapter,
      .service_full_name = v1::HealthService::service_full_name(),
      .new_service = &NewCaseSystemService<v1::HealthService>,
  };
}

}  // namespace casebridge::health
