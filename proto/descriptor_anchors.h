// Keeps the descriptors of service-only proto files in every binary.
//
// A .proto file that defines only a service (the job-centre, social and
// health APIs: their messages live in casebridge.recording.v1) produces a
// .pb.cc that no code references, so the static-library link drops it and
// its descriptor never reaches the generated pool — server reflection could
// list the service but not describe or call it. `StartGrpcServer` calls
// `ServiceDescriptorAnchors()`, which references each file's descriptor
// table. A new service-only proto file is added in descriptor_anchors.cc.
#pragma once

namespace casebridge::proto {

// Returns the addresses of the anchored descriptor tables (never null).
const void* const* ServiceDescriptorAnchors();

}  // namespace casebridge::proto
