#include "descriptor_anchors.h"

#include "casebridge/health/v1/health_service.pb.h"
#include "casebridge/jobcentre/v1/jobcentre_service.pb.h"
#include "casebridge/social/v1/social_service.pb.h"

namespace casebridge::proto {

const void* const* ServiceDescriptorAnchors() {
  static const void* const anchors[] = {
      &descriptor_table_casebridge_2fjobcentre_2fv1_2fjobcentre_5fservice_2eproto,
      &descriptor_table_casebridge_2fsocial_2fv1_2fsocial_5fservice_2eproto,
      &descriptor_table_casebridge_2fhealth_2fv1_2fhealth_5fservice_2eproto,
  };
  return anchors;
}

}  // namespace casebridge::proto
