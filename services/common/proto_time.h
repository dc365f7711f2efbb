// Conversions between `google.protobuf.Timestamp` and `absl::Time`, exact
// over the whole Timestamp range (0001–9999). protobuf's
// `TimeUtil::TimestampToNanoseconds` overflows int64 after 2262-04-11, so
// code here never converts through nanoseconds.
#pragma once

#include <google/protobuf/timestamp.pb.h>

#include "absl/time/time.h"

namespace casebridge {

inline absl::Time ToAbslTime(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) + absl::Nanoseconds(timestamp.nanos());
}

inline google::protobuf::Timestamp ToProtoTimestamp(absl::Time time) {
  google::protobuf::Timestamp timestamp;
  const int64_t seconds = absl::ToUnixSeconds(time);  // rounds toward the past
  timestamp.set_seconds(seconds);
  timestamp.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(time - absl::FromUnixSeconds(seconds))));
  return timestamp;
}

}  // namespace casebridge
