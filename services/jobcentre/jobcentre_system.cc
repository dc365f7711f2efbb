#include "services/jobcentre/jobcentre_system.h"

#include "adapters/jobcentre/jobcentre_adapter.h"

namespace casebridge::jobcentre {

CaseSystemProfile JobCentreProfile() {
  return CaseSystemProfile{
      .system = "jobcentre",
      .source_system = events::v1::SOURCE_SYSTEM_JOB_CENTRE,
      .default_sensitivity = events::v1::SENSITIVITY_ORDINARY,
      // Referrals the job centre sends to addiction treatment. Any other
      // offer of another administration (e.g. a health offer) takes its
      // sensitivity from that offer's administration (`DefaultSensitivity`).
      .offer_sensitivities = {{"SEL-101", events::v1::SENSITIVITY_SPECIAL_ADDICTION},
                              {"SEL-101a", events::v1::SENSITIVITY_SPECIAL_ADDICTION},
                              {"SUL-141", events::v1::SENSITIVITY_SPECIAL_ADDICTION}},
  };
}

CaseSystemDefinition JobCentreSystem() {
  return CaseSystemDefinition{
      .profile = JobCentreProfile(),
      .default_listen_address = kDefaultListenAddress,
      .new_adapter = &NewJobCentreAdapter,
      .service_full_name = v1::JobCentreService::service_full_name(),
      .new_service = &NewCaseSystemService<v1::JobCentreService>,
  };
}

}  // namespace casebridge::jobcentre
