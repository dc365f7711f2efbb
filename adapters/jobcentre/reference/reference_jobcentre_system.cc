#include "adapters/jobcentre/reference/reference_jobcentre_system.h"

namespace casebridge::jobcentre::reference {

using casebridge::common::v1::ADMINISTRATION_JOB_CENTRE;
using casebridge::reference::ReferenceSystemProfile;

const ReferenceSystemProfile& JobCentreProfile() {
  static const ReferenceSystemProfile* const profile = new ReferenceSystemProfile{
      .name = "job-centre",
      .decision_prefix = "D-",
      .appointment_prefix = "A-",
      .referral_prefix = "R-",
      .offers =
          {
              {"LAB-resource-course", "Ressourceforløb", ADMINISTRATION_JOB_CENTRE},
              {"LAB-mentor", "Mentorstøtte", ADMINISTRATION_JOB_CENTRE},
              {"LAB-mentor-extended", "Udvidet mentorstøtte", ADMINISTRATION_JOB_CENTRE},
              {"LAB-internship", "Virksomhedspraktik", ADMINISTRATION_JOB_CENTRE},
          },
  };
  return *profile;
}

absl::StatusOr<std::unique_ptr<CaseSystemAdapter>> NewReferenceJobCentreSystem(
    const casebridge::config::v1::ReferenceSystemConfig& config, Clock& clock) {
  return casebridge::reference::NewReferenceCaseSystem(JobCentreProfile(), config, clock);
}

}  // namespace casebridge::jobcentre::reference
