#include "services/common/kafka/cloudevents.h"

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "casebridge/events/v1/case_event.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "services/common/kafka/record.h"
#include "tests/support/status_matchers.h"

namespace casebridge::kafka {
namespace {

using ::casebridge::events::v1::CaseEvent;
using ::casebridge::testing::IsOk;
using ::casebridge::testing::StatusIs;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Optional;

constexpr char kTopic[] = "casebridge.case-events.v1";
constexpr char kSubject[] = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";
constexpr char kEventId[] = "0b3f5a2c-8d41-8e7a-9c10-5f2b7e4d1a60";

class CloudEventsTest : public ::testing::Test {
 protected:
  // A refusal, as the recorder would publish it.
  static CaseEvent Refusal() {
    CaseEvent event;
    event.set_id(kEventId);
    event.set_source("/casebridge/jobcentre/0751");
    event.set_source_system(events::v1::SOURCE_SYSTEM_JOB_CENTRE);
    event.set_type("dk.casebridge.decision.refused.v1");
    event.set_subject(kSubject);
    event.set_municipality("0751");
    event.mutable_occurred_at()->set_seconds(1767261600);  // 2026-01-01T10:00:00Z
    event.mutable_recorded_at()->set_seconds(1767261605);
    event.set_sequence(42);
    event.set_sensitivity(events::v1::SENSITIVITY_ORDINARY);
    event.set_idempotency_key("key-1");
    event.mutable_decision()->set_decision_id("D-000001");
    event.mutable_decision()->set_outcome(events::v1::DECISION_OUTCOME_REFUSED);
    event.mutable_decision()->mutable_offer()->set_code("LAB-mentor");
    return event;
  }

  static std::optional<std::string> HeaderOf(const Record& record, const std::string& key) {
    return record.HeaderValue(key);
  }
  static int HeaderCount(const Record& record, const std::string& key) {
    int count = 0;
    for (const Header& h : record.headers) count += h.key == key ? 1 : 0;
    return count;
  }
  // Replaces the value of header `key` in `record`.
  static void SetHeader(Record& record, const std::string& key, const std::string& value) {
    for (Header& h : record.headers) {
      if (h.key == key) h.value = value;
    }
  }

  CaseEvent event_ = Refusal();
};

TEST_F(CloudEventsTest, RecordGoesToTheTopicKeyedBySubject) {
  const Record record = CaseEventRecord(kTopic, event_);
  EXPECT_EQ(record.topic, kTopic);
  EXPECT_EQ(record.key, kSubject);
}

TEST_F(CloudEventsTest, ValueParsesBackToTheEvent) {
  const Record record = CaseEventRecord(kTopic, event_);
  CaseEvent parsed;
  ASSERT_TRUE(parsed.ParseFromString(record.value));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, event_));
}

TEST_F(CloudEventsTest, ContentTypeIsApplicationProtobuf) {
  EXPECT_THAT(HeaderOf(CaseEventRecord(kTopic, event_), "content-type"),
              Optional(Eq("application/protobuf")));
}

TEST_F(CloudEventsTest, SpecVersionIsOnePointZero) {
  EXPECT_THAT(HeaderOf(CaseEventRecord(kTopic, event_), "ce_specversion"), Optional(Eq("1.0")));
}

TEST_F(CloudEventsTest, IdSourceTypeAndSubjectHeadersRepeatTheEnvelope) {
  const Record record = CaseEventRecord(kTopic, event_);
  EXPECT_THAT(HeaderOf(record, "ce_id"), Optional(Eq(kEventId)));
  EXPECT_THAT(HeaderOf(record, "ce_source"), Optional(Eq("/casebridge/jobcentre/0751")));
  EXPECT_THAT(HeaderOf(record, "ce_type"), Optional(Eq("dk.casebridge.decision.refused.v1")));
  EXPECT_THAT(HeaderOf(record, "ce_subject"), Optional(Eq(kSubject)));
  EXPECT_THAT(HeaderOf(record, "ce_municipality"), Optional(Eq("0751")));
  EXPECT_THAT(HeaderOf(record, "ce_dataschema"), Optional(Eq(kDataSchema)));
}

TEST_F(CloudEventsTest, TimeIsOccurredAtInRfc3339) {
  EXPECT_THAT(HeaderOf(CaseEventRecord(kTopic, event_), "ce_time"),
              Optional(Eq("2026-01-01T10:00:00Z")));
}

TEST_F(CloudEventsTest, TimeKeepsFractionalSeconds) {
  event_.mutable_occurred_at()->set_nanos(500000000);
  EXPECT_THAT(HeaderOf(CaseEventRecord(kTopic, event_), "ce_time"),
              Optional(Eq("2026-01-01T10:00:00.500Z")));
}

TEST_F(CloudEventsTest, SequenceIsZeroPaddedToTwentyDigits) {
  EXPECT_THAT(HeaderOf(CaseEventRecord(kTopic, event_), "ce_sequence"),
              Optional(Eq("00000000000000000042")));
}

TEST_F(CloudEventsTest, FormatSequenceCoversTheWholeUint64Range) {
  EXPECT_EQ(FormatSequence(0), "00000000000000000000");
  EXPECT_EQ(FormatSequence(1), "00000000000000000001");
  EXPECT_EQ(FormatSequence(18446744073709551615ULL), "18446744073709551615");
}

TEST_F(CloudEventsTest, FormattedSequencesCompareAsStringsLikeNumbers) {
  EXPECT_LT(FormatSequence(9), FormatSequence(10));
  EXPECT_LT(FormatSequence(99999), FormatSequence(100000));
}

TEST_F(CloudEventsTest, SensitivityHeaderNamesTheSensitivity) {
  EXPECT_THAT(HeaderOf(CaseEventRecord(kTopic, event_), "ce_sensitivity"), Optional(Eq("ordinary")));
}

TEST_F(CloudEventsTest, SensitivityNamesEveryLevel) {
  EXPECT_EQ(SensitivityName(events::v1::SENSITIVITY_ORDINARY), "ordinary");
  EXPECT_EQ(SensitivityName(events::v1::SENSITIVITY_CONFIDENTIAL), "confidential");
  EXPECT_EQ(SensitivityName(events::v1::SENSITIVITY_SPECIAL_HEALTH), "special-health");
  EXPECT_EQ(SensitivityName(events::v1::SENSITIVITY_SPECIAL_ADDICTION), "special-addiction");
  EXPECT_EQ(SensitivityName(events::v1::SENSITIVITY_SPECIAL_CRIMINAL), "special-criminal");
  EXPECT_EQ(SensitivityName(events::v1::SENSITIVITY_UNSPECIFIED), "unspecified");
}

TEST_F(CloudEventsTest, NoSupersedesHeaderWhenTheEventSupersedesNothing) {
  EXPECT_EQ(HeaderCount(CaseEventRecord(kTopic, event_), "ce_supersedes"), 0);
}

TEST_F(CloudEventsTest, SupersedesHeaderCarriesTheSupersededEventId) {
  event_.mutable_supersedes()->set_event_id("11111111-2222-8333-8444-555555555555");
  event_.mutable_supersedes()->set_kind(events::v1::Supersession::KIND_CORRECTION);
  const Record record = CaseEventRecord(kTopic, event_);
  EXPECT_EQ(HeaderCount(record, "ce_supersedes"), 1);
  EXPECT_THAT(HeaderOf(record, "ce_supersedes"),
              Optional(Eq("11111111-2222-8333-8444-555555555555")));
}

TEST_F(CloudEventsTest, EveryHeaderAppearsOnce) {
  const Record record = CaseEventRecord(kTopic, event_);
  for (const Header& h : record.headers) EXPECT_EQ(HeaderCount(record, h.key), 1) << h.key;
}

TEST_F(CloudEventsTest, DecodeRoundTripsTheEvent) {
  absl::StatusOr<CaseEvent> decoded = DecodeCaseEventRecord(CaseEventRecord(kTopic, event_));
  ASSERT_OK(decoded);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*decoded, event_));
}

TEST_F(CloudEventsTest, DecodeRejectsAnotherContentType) {
  Record record = CaseEventRecord(kTopic, event_);
  SetHeader(record, "content-type", "application/json");
  EXPECT_THAT(DecodeCaseEventRecord(record),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("content-type")));
}

TEST_F(CloudEventsTest, DecodeRejectsAMissingContentType) {
  Record record = CaseEventRecord(kTopic, event_);
  record.headers.erase(record.headers.begin());  // content-type comes first
  ASSERT_EQ(record.HeaderValue("content-type"), std::nullopt);
  EXPECT_THAT(DecodeCaseEventRecord(record), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(CloudEventsTest, DecodeRejectsAValueThatIsNotACaseEvent) {
  Record record = CaseEventRecord(kTopic, event_);
  record.value = "\xff\xff\xff garbage";
  EXPECT_THAT(DecodeCaseEventRecord(record),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a CaseEvent")));
}

TEST_F(CloudEventsTest, DecodeRejectsAMismatchedCeId) {
  Record record = CaseEventRecord(kTopic, event_);
  SetHeader(record, "ce_id", "ffffffff-ffff-8fff-bfff-ffffffffffff");
  EXPECT_THAT(DecodeCaseEventRecord(record), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(CloudEventsTest, DecodeRejectsAMismatchedCeType) {
  Record record = CaseEventRecord(kTopic, event_);
  SetHeader(record, "ce_type", "dk.casebridge.decision.granted.v1");
  EXPECT_THAT(DecodeCaseEventRecord(record), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(CloudEventsTest, DecodeRejectsAMismatchedCeSubject) {
  Record record = CaseEventRecord(kTopic, event_);
  SetHeader(record, "ce_subject", std::string(64, 'a'));
  EXPECT_THAT(DecodeCaseEventRecord(record), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(CloudEventsTest, DecodeRejectsAMismatchedKey) {
  Record record = CaseEventRecord(kTopic, event_);
  record.key = std::string(64, 'a');
  EXPECT_THAT(DecodeCaseEventRecord(record),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key")));
}

TEST_F(CloudEventsTest, DecodeErrorNamesWhereTheRecordCameFrom) {
  Record record = CaseEventRecord(kTopic, event_);
  record.partition = 2;
  record.offset = 17;
  record.key = "other";
  EXPECT_THAT(DecodeCaseEventRecord(record),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("casebridge.case-events.v1/2@17")));
}

// W3C Trace Context on the record (docs/adr/0022-w3c-trace-context.md).
constexpr char kTraceparent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST_F(CloudEventsTest, NoTraceHeadersWithoutATrace) {
  const Record record = CaseEventRecord(kTopic, event_);
  for (const char* key : {"traceparent", "tracestate", "ce_traceparent", "ce_tracestate"}) {
    EXPECT_EQ(HeaderOf(record, key), std::nullopt) << key;
  }
}

TEST_F(CloudEventsTest, TraceTravelsAsW3cAndCloudEventsHeaders) {
  const TraceContext trace = *TraceContext::Parse(kTraceparent, "rojo=00f067aa0ba902b7");
  const Record record = CaseEventRecord(kTopic, event_, trace);
  EXPECT_THAT(HeaderOf(record, "traceparent"), Optional(Eq(kTraceparent)));
  EXPECT_THAT(HeaderOf(record, "ce_traceparent"), Optional(Eq(kTraceparent)));
  EXPECT_THAT(HeaderOf(record, "tracestate"), Optional(Eq("rojo=00f067aa0ba902b7")));
  EXPECT_THAT(HeaderOf(record, "ce_tracestate"), Optional(Eq("rojo=00f067aa0ba902b7")));
  for (const Header& h : record.headers) EXPECT_EQ(HeaderCount(record, h.key), 1) << h.key;
  // The trace headers do not disturb decoding.
  EXPECT_OK(DecodeCaseEventRecord(record));
}

TEST_F(CloudEventsTest, NoTracestateHeadersForAnEmptyTracestate) {
  const Record record = CaseEventRecord(kTopic, event_, *TraceContext::Parse(kTraceparent));
  EXPECT_EQ(HeaderOf(record, "tracestate"), std::nullopt);
  EXPECT_EQ(HeaderOf(record, "ce_tracestate"), std::nullopt);
}

TEST_F(CloudEventsTest, TraceContextOfReadsBackWhatWasWritten) {
  const TraceContext trace = *TraceContext::Parse(kTraceparent, "congo=t61rcWkgMzE");
  EXPECT_EQ(TraceContextOf(CaseEventRecord(kTopic, event_, trace)), trace);
  EXPECT_FALSE(TraceContextOf(CaseEventRecord(kTopic, event_)).valid());
}

TEST_F(CloudEventsTest, TraceContextOfFallsBackToTheCloudEventsExtension) {
  Record record = CaseEventRecord(kTopic, event_);
  record.headers.push_back({"ce_traceparent", kTraceparent});
  record.headers.push_back({"ce_tracestate", "congo=t61rcWkgMzE"});
  const TraceContext trace = TraceContextOf(record);
  EXPECT_EQ(trace.traceparent(), kTraceparent);
  EXPECT_EQ(trace.tracestate(), "congo=t61rcWkgMzE");
  // An unusable `traceparent` does not hide a good `ce_traceparent`.
  record.headers.push_back({"traceparent", "00-zz"});
  EXPECT_EQ(TraceContextOf(record).traceparent(), kTraceparent);
}

TEST_F(CloudEventsTest, TraceContextOfMatchesHeaderNamesInAnyCase) {
  Record record = CaseEventRecord(kTopic, event_);
  record.headers.push_back({"TraceParent", kTraceparent});
  EXPECT_EQ(TraceContextOf(record).traceparent(), kTraceparent);
}

TEST_F(CloudEventsTest, TraceContextOfIgnoresAnInvalidTraceparent) {
  Record record = CaseEventRecord(kTopic, event_);
  record.headers.push_back(
      {"traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"});
  record.headers.push_back({"tracestate", "foo=1"});
  EXPECT_FALSE(TraceContextOf(record).valid());
}

}  // namespace
}  // namespace casebridge::kafka
