#include "services/common/peer_identity.h"

#include <grpcpp/security/auth_context.h>

namespace casebridge::common {

Caller CallerOf(const grpc::ServerContext& context) {
  Caller caller;
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    // gRPC's SSL transport names the subject's CN "x509_common_name".
    for (const grpc::string_ref& value : auth->FindPropertyValues("x509_common_name")) {
      caller.identity.assign(value.data(), value.size());
      break;
    }
    return caller;
  }
  caller.development = true;
  const auto& metadata = context.client_metadata();
  if (auto it = metadata.find(kDevelopmentIdentityHeader); it != metadata.end()) {
    caller.identity.assign(it->second.data(), it->second.size());
  }
  return caller;
}

}  // namespace casebridge::common
