// W3C Trace Context parsing and propagation, with the examples of the
// specification (https://www.w3.org/TR/trace-context/) and the cases of its
// test suite (w3c/trace-context, test/test.py).
#include "services/common/trace_context.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace casebridge {
namespace {

using ::testing::Optional;

constexpr char kSpecTraceparent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr char kSuiteTraceId[] = "12345678901234567890123456789012";

bool Valid(const std::string& traceparent) { return TraceContext::Parse(traceparent).has_value(); }

TEST(TraceContextTest, ParsesTheSpecificationsSampledExample) {
  std::optional<TraceContext> context = TraceContext::Parse(kSpecTraceparent);
  ASSERT_TRUE(context.has_value());
  EXPECT_TRUE(context->valid());
  EXPECT_EQ(context->trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(context->parent_id(), "00f067aa0ba902b7");
  EXPECT_EQ(context->flags(), 0x01);
  EXPECT_TRUE(context->sampled());
  EXPECT_EQ(context->traceparent(), kSpecTraceparent);
  EXPECT_EQ(context->tracestate(), "");
}

TEST(TraceContextTest, ParsesTheSpecificationsNotSampledExample) {
  std::optional<TraceContext> context =
      TraceContext::Parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(context.has_value());
  EXPECT_FALSE(context->sampled());
  EXPECT_EQ(context->traceparent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
}

TEST(TraceContextTest, CarriesTheSpecificationsTracestateExample) {
  std::optional<TraceContext> context =
      TraceContext::Parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                          "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
  ASSERT_TRUE(context.has_value());
  EXPECT_EQ(context->tracestate(), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
}

TEST(TraceContextTest, DefaultIsNoTrace) {
  TraceContext none;
  EXPECT_FALSE(none.valid());
  EXPECT_EQ(none.traceparent(), "");
  EXPECT_EQ(none.trace_id(), "");
}

TEST(TraceContextTest, RejectsUpperCase) {
  EXPECT_FALSE(Valid("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"));
  EXPECT_FALSE(Valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A"));
  EXPECT_FALSE(Valid("0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
}

TEST(TraceContextTest, RejectsAllZeroIds) {
  EXPECT_FALSE(Valid("00-00000000000000000000000000000000-1234567890123456-01"));
  EXPECT_FALSE(Valid(absl::StrCat("00-", kSuiteTraceId, "-0000000000000000-01")));
}

TEST(TraceContextTest, RejectsWrongLengths) {
  // Version, trace id, parent id and flags each one too short and too long.
  for (const std::string& bad : std::vector<std::string>{
           "0-12345678901234567890123456789012-1234567890123456-01",
           "000-12345678901234567890123456789012-1234567890123456-01",
           "0000-12345678901234567890123456789012-1234567890123456-01",
           "00-1234567890123456789012345678901-1234567890123456-01",
           "00-123456789012345678901234567890123-1234567890123456-01",
           "00-12345678901234567890123456789012-123456789012345-01",
           "00-12345678901234567890123456789012-12345678901234567-01",
           "00-12345678901234567890123456789012-1234567890123456-1",
           "00-12345678901234567890123456789012-1234567890123456-001",
           "",
           "00",
           "00-",
       }) {
    EXPECT_FALSE(Valid(bad)) << bad;
  }
}

TEST(TraceContextTest, RejectsIllegalCharacters) {
  for (const std::string& bad : std::vector<std::string>{
           ".0-12345678901234567890123456789012-1234567890123456-01",
           "0.-12345678901234567890123456789012-1234567890123456-01",
           "00-.2345678901234567890123456789012-1234567890123456-01",
           "00-1234567890123456789012345678901.-1234567890123456-01",
           "00-12345678901234567890123456789012-.234567890123456-01",
           "00-12345678901234567890123456789012-123456789012345.-01",
           "00-12345678901234567890123456789012-1234567890123456-.0",
           "00-12345678901234567890123456789012-1234567890123456-0.",
           "00_12345678901234567890123456789012-1234567890123456-01",
           "00-12345678901234567890123456789012_1234567890123456-01",
       }) {
    EXPECT_FALSE(Valid(bad)) << bad;
  }
}

TEST(TraceContextTest, VersionZeroMustEndAfterTheFlags) {
  EXPECT_FALSE(Valid("00-12345678901234567890123456789012-1234567890123456-01."));
  EXPECT_FALSE(Valid(
      "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like"));
}

TEST(TraceContextTest, VersionFfIsInvalid) {
  EXPECT_FALSE(Valid("ff-12345678901234567890123456789012-1234567890123456-01"));
}

TEST(TraceContextTest, HigherVersionIsReadAsFarAsVersionZeroGoes) {
  std::optional<TraceContext> plain =
      TraceContext::Parse("cc-12345678901234567890123456789012-1234567890123456-01");
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->trace_id(), kSuiteTraceId);
  EXPECT_EQ(plain->parent_id(), "1234567890123456");
  // Sent on as version 00.
  EXPECT_EQ(plain->traceparent(), "00-12345678901234567890123456789012-1234567890123456-01");

  std::optional<TraceContext> extended = TraceContext::Parse(
      "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like");
  ASSERT_TRUE(extended.has_value());
  EXPECT_EQ(extended->trace_id(), kSuiteTraceId);

  EXPECT_FALSE(Valid(
      "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like"));
  // Shorter than version 00: not parsed.
  EXPECT_FALSE(Valid("cc-12345678901234567890123456789012-1234567890123456-1"));
}

TEST(TraceContextTest, HigherVersionKeepsOnlyTheSampledFlag) {
  std::optional<TraceContext> context =
      TraceContext::Parse("01-12345678901234567890123456789012-1234567890123456-ff");
  ASSERT_TRUE(context.has_value());
  EXPECT_EQ(context->flags(), 0x01);
}

TEST(TraceContextTest, ReservedFlagsAreSentAsZero) {
  std::optional<TraceContext> context =
      TraceContext::Parse("00-12345678901234567890123456789012-1234567890123456-ff");
  ASSERT_TRUE(context.has_value());
  // sampled and (Level 2) random stay; the reserved bits go.
  EXPECT_EQ(context->flags(), 0x03);
  EXPECT_EQ(context->traceparent(), "00-12345678901234567890123456789012-1234567890123456-03");
  // A bit field, not a number: 09 is sampled plus a reserved bit.
  std::optional<TraceContext> nine =
      TraceContext::Parse("00-12345678901234567890123456789012-1234567890123456-09");
  ASSERT_TRUE(nine.has_value());
  EXPECT_TRUE(nine->sampled());
  EXPECT_EQ(nine->flags(), 0x01);
}

TEST(TraceContextTest, SurroundingWhitespaceIsIgnored) {
  for (const std::string& padded : std::vector<std::string>{
           " 00-12345678901234567890123456789012-1234567890123456-01",
           "\t00-12345678901234567890123456789012-1234567890123456-01",
           "00-12345678901234567890123456789012-1234567890123456-01 ",
           "\t 00-12345678901234567890123456789012-1234567890123456-01 \t",
       }) {
    std::optional<TraceContext> context = TraceContext::Parse(padded);
    ASSERT_TRUE(context.has_value()) << padded;
    EXPECT_EQ(context->trace_id(), kSuiteTraceId);
  }
}

TEST(TraceContextTest, ChildKeepsTraceIdFlagsAndTracestateWithANewParentId) {
  std::optional<TraceContext> parent = TraceContext::Parse(kSpecTraceparent, "congo=t61rcWkgMzE");
  ASSERT_TRUE(parent.has_value());
  const TraceContext child = parent->Child();
  EXPECT_TRUE(child.valid());
  EXPECT_EQ(child.trace_id(), parent->trace_id());
  EXPECT_EQ(child.flags(), parent->flags());
  EXPECT_EQ(child.tracestate(), "congo=t61rcWkgMzE");
  EXPECT_NE(child.parent_id(), parent->parent_id());
  EXPECT_EQ(child.parent_id().size(), 16u);
  EXPECT_TRUE(TraceContext::Parse(child.traceparent()).has_value());
}

TEST(TraceContextTest, ChildrenGetDistinctParentIds) {
  const TraceContext parent = *TraceContext::Parse(kSpecTraceparent);
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) ids.insert(parent.Child().parent_id());
  EXPECT_EQ(ids.size(), 100u);
}

TEST(TraceContextTest, NewRootIsAValidSampledTraceWithoutState) {
  const TraceContext root = TraceContext::NewRoot();
  EXPECT_TRUE(root.valid());
  EXPECT_TRUE(root.sampled());
  EXPECT_EQ(root.tracestate(), "");
  std::optional<TraceContext> reparsed = TraceContext::Parse(root.traceparent());
  ASSERT_TRUE(reparsed.has_value());
  EXPECT_EQ(*reparsed, root);
  EXPECT_NE(TraceContext::NewRoot().trace_id(), root.trace_id());
}

TEST(TraceContextTest, ChildOfContinuesAValidParentAndStartsAnotherwise) {
  const TraceContext parent = *TraceContext::Parse(kSpecTraceparent);
  const TraceContext child = TraceContext::ChildOf(parent);
  EXPECT_EQ(child.trace_id(), parent.trace_id());
  EXPECT_NE(child.parent_id(), parent.parent_id());
  const TraceContext fresh = TraceContext::ChildOf(TraceContext());
  EXPECT_TRUE(fresh.valid());
  EXPECT_NE(fresh.trace_id(), parent.trace_id());
}

TEST(TraceContextTest, ExtractNeedsExactlyOneTraceparent) {
  EXPECT_FALSE(TraceContext::Extract({}, {}).valid());
  EXPECT_FALSE(TraceContext::Extract({}, {"foo=1"}).valid());
  // Duplicated: the trace restarts (the test suite's rule).
  EXPECT_FALSE(TraceContext::Extract({"00-12345678901234567890123456789011-1234567890123456-01",
                                      "00-12345678901234567890123456789012-1234567890123456-01"},
                                     {})
                   .valid());
  EXPECT_EQ(TraceContext::Extract({kSpecTraceparent}, {}).trace_id(),
            "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_FALSE(
      TraceContext::Extract({"00-00000000000000000000000000000000-1234567890123456-01"}, {"foo=1"})
          .valid());
}

TEST(TraceContextTest, ExtractJoinsSeveralTracestateFieldsInOrder) {
  const TraceContext context = TraceContext::Extract(
      {"00-12345678901234567890123456789012-1234567890123456-00"},
      {"foo=1,bar=2", "rojo=1,congo=2", "baz=3"});
  EXPECT_EQ(context.tracestate(), "foo=1,bar=2,rojo=1,congo=2,baz=3");
  EXPECT_EQ(TraceContext::Extract({kSpecTraceparent}, {"", "foo=1"}).tracestate(), "foo=1");
  EXPECT_EQ(TraceContext::Extract({kSpecTraceparent}, {"foo=1", ""}).tracestate(), "foo=1");
}

TEST(TraceContextTest, InvalidTracestateIsDroppedAndTheTraceparentKept) {
  for (const std::string& bad : std::vector<std::string>{
           "foo=1,foo=1", "foo=1,foo=2", "foo =1", "FOO=1", "foo.bar=1", "foo@=1,bar=2",
           "@foo=1,bar=2", "foo@@bar=1,bar=2", "foo@bar@baz=1,bar=2", "foo=bar=baz", "foo=,bar=3",
           "foo", std::string(257, 'z') + "=1", std::string(242, 't') + "@v=1",
           "t@" + std::string(15, 'v') + "=1", "foo=\x01"}) {
    std::optional<TraceContext> context = TraceContext::Parse(kSpecTraceparent, bad);
    ASSERT_TRUE(context.has_value()) << bad;
    EXPECT_EQ(context->tracestate(), "") << bad;
  }
}

TEST(TraceContextTest, TracestateAllowsEveryLegalCharacter) {
  std::string key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
  std::string value;
  for (char c = 0x20; c <= 0x7e; ++c) {
    if (c != ',' && c != '=') value.push_back(c);
  }
  EXPECT_THAT(TraceContext::NormalizeTracestate(key + "=" + value), Optional(key + "=" + value));
  const std::string vendor_key = key + "@a-z0-9_-*/";
  EXPECT_THAT(TraceContext::NormalizeTracestate(vendor_key + "=" + value),
              Optional(vendor_key + "=" + value));
  EXPECT_THAT(TraceContext::NormalizeTracestate(std::string(256, 'z') + "=1"),
              Optional(std::string(256, 'z') + "=1"));
  EXPECT_THAT(
      TraceContext::NormalizeTracestate(std::string(241, 't') + "@" + std::string(14, 'v') + "=1"),
      Optional(std::string(241, 't') + "@" + std::string(14, 'v') + "=1"));
}

TEST(TraceContextTest, TracestateOptionalWhitespaceAndEmptyMembersAreRemoved) {
  EXPECT_THAT(TraceContext::NormalizeTracestate("foo=1 \t , \t bar=2, \t baz=3"),
              Optional(std::string("foo=1,bar=2,baz=3")));
  EXPECT_THAT(TraceContext::NormalizeTracestate("\t foo=1 \t"), Optional(std::string("foo=1")));
  EXPECT_THAT(TraceContext::NormalizeTracestate(",,foo=1,,"), Optional(std::string("foo=1")));
  EXPECT_THAT(TraceContext::NormalizeTracestate(""), Optional(std::string("")));
  EXPECT_THAT(TraceContext::NormalizeTracestate(" \t "), Optional(std::string("")));
}

TEST(TraceContextTest, TracestateHoldsAtMostThirtyTwoMembers) {
  std::vector<std::string> members;
  for (int i = 1; i <= 32; ++i) members.push_back(absl::StrCat("bar", i, "=", i));
  EXPECT_THAT(TraceContext::NormalizeTracestate(absl::StrJoin(members, ",")),
              Optional(absl::StrJoin(members, ",")));
  members.push_back("bar33=33");
  EXPECT_EQ(TraceContext::NormalizeTracestate(absl::StrJoin(members, ",")), std::nullopt);
}

TEST(TraceContextTest, LongTracestateLosesWholeEntriesLongOnesFirst) {
  // 31 short entries (9 characters each) and one of 200: 31 * 9 + 200 + 31
  // commas = 510 characters, under the cap; one entry more goes over it.
  std::vector<std::string> members;
  for (int i = 10; i < 41; ++i) members.push_back(absl::StrCat("k", i, "=vvvvv"));
  const std::string long_entry = "long=" + std::string(195, 'x');
  members.insert(members.begin() + 3, long_entry);
  ASSERT_EQ(absl::StrJoin(members, ",").size(), 510u);
  EXPECT_THAT(TraceContext::NormalizeTracestate(absl::StrJoin(members, ",")),
              Optional(absl::StrJoin(members, ",")));

  members[0] = "k10=vvvvvvvv";  // 513 characters: too long
  std::vector<std::string> expected = members;
  expected.erase(expected.begin() + 3);  // the long entry goes first
  EXPECT_THAT(TraceContext::NormalizeTracestate(absl::StrJoin(members, ",")),
              Optional(absl::StrJoin(expected, ",")));
}

TEST(TraceContextTest, LongTracestateOfShortEntriesLosesItsLastEntries) {
  // 32 entries of 20 characters: 32 * 20 + 31 = 671 characters.
  std::vector<std::string> members;
  for (int i = 10; i < 42; ++i) members.push_back(absl::StrCat("k", i, "=", std::string(16, 'v')));
  std::optional<std::string> kept = TraceContext::NormalizeTracestate(absl::StrJoin(members, ","));
  ASSERT_TRUE(kept.has_value());
  // 24 entries: 24 * 20 + 23 = 503 <= 512 < 25 * 20 + 24.
  members.resize(24);
  EXPECT_EQ(*kept, absl::StrJoin(members, ","));
}

TEST(TraceContextTest, TracestateIsNotParsedWithoutAValidTraceparent) {
  EXPECT_FALSE(TraceContext::Parse("00-zz", "foo=1").has_value());
  EXPECT_EQ(TraceContext::Extract({"garbage"}, {"foo=1"}).tracestate(), "");
}

}  // namespace
}  // namespace casebridge
