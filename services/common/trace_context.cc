#include "services/common/trace_context.h"

#include <grpcpp/grpcpp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <ostream>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace casebridge {
namespace {

// The length of a version 00 `traceparent`.
constexpr size_t kTraceparentLength = 55;
// Tracestate entries longer than this go first when it must be shortened.
constexpr size_t kLongTracestateEntry = 128;

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool IsLowerHex(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return IsLowerHex(c); });
}

bool AllZero(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '0'; });
}

// Strips the optional whitespace of RFC 7230 (spaces and tabs).
absl::string_view StripOws(absl::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// `size` random bytes as lowercase hex, never all zero.
std::string RandomHex(size_t size) {
  unsigned char bytes[16];
  while (true) {
    if (RAND_bytes(bytes, static_cast<int>(size)) != 1) {
      // Practically impossible; ids then still differ per call and process.
      static std::atomic<uint64_t> counter{0};
      const uint64_t mix = static_cast<uint64_t>(absl::GetCurrentTimeNanos()) ^
                           (counter.fetch_add(1) * 0x9e3779b97f4a7c15ULL);
      for (size_t i = 0; i < size; ++i) {
        bytes[i] = static_cast<unsigned char>(mix >> ((i % 8) * 8)) ^ static_cast<unsigned char>(i);
      }
    }
    std::string hex =
        absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(bytes), size));
    if (!AllZero(hex)) return hex;
  }
}

// tracestate keys: simple-key = lcalpha 0*255(keychar); multi-tenant-key =
// tenant-id "@" system-id, tenant-id = (lcalpha / DIGIT) 0*240(keychar),
// system-id = lcalpha 0*13(keychar); keychar = lcalpha / DIGIT / "_" / "-" /
// "*" / "/".
bool IsKeyChar(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' || c == '-' || c == '*' ||
         c == '/';
}

bool IsValidKey(absl::string_view key) {
  const size_t at = key.find('@');
  if (at == absl::string_view::npos) {
    return !key.empty() && key.size() <= 256 && absl::ascii_islower(key.front()) &&
           std::all_of(key.begin(), key.end(), IsKeyChar);
  }
  const absl::string_view tenant = key.substr(0, at);
  const absl::string_view system = key.substr(at + 1);
  return !tenant.empty() && tenant.size() <= 241 &&
         (absl::ascii_islower(tenant.front()) || absl::ascii_isdigit(tenant.front())) &&
         std::all_of(tenant.begin(), tenant.end(), IsKeyChar) && !system.empty() &&
         system.size() <= 14 && absl::ascii_islower(system.front()) &&
         std::all_of(system.begin(), system.end(), IsKeyChar);
}

// value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-2B /
// %x2D-3C / %x3E-7E (printable ASCII but "," and "=").
bool IsValidValue(absl::string_view value) {
  if (value.empty() || value.size() > 256 || value.back() == ' ') return false;
  return std::all_of(value.begin(), value.end(), [](char c) {
    return c >= 0x20 && c <= 0x7e && c != ',' && c != '=';
  });
}

}  // namespace

std::optional<TraceContext> TraceContext::Parse(absl::string_view traceparent,
                                                absl::string_view tracestate) {
  const absl::string_view value = StripOws(traceparent);
  // version "-": two lowercase hex characters and a dash, else restart.
  if (value.size() < 3 || !IsLowerHex(value.substr(0, 2)) || value[2] != '-') return std::nullopt;
  const absl::string_view version = value.substr(0, 2);
  if (version == "ff") return std::nullopt;
  if (version == "00") {
    if (value.size() != kTraceparentLength) return std::nullopt;
  } else {
    // A higher version: read what version 00 defines, if the rest of the
    // header starts with a dash.
    if (value.size() < kTraceparentLength) return std::nullopt;
    if (value.size() > kTraceparentLength && value[kTraceparentLength] != '-') {
      return std::nullopt;
    }
  }
  const absl::string_view trace_id = value.substr(3, 32);
  const absl::string_view parent_id = value.substr(36, 16);
  const absl::string_view flags = value.substr(53, 2);
  if (value[35] != '-' || value[52] != '-' || !IsLowerHex(trace_id) || !IsLowerHex(parent_id) ||
      !IsLowerHex(flags) || AllZero(trace_id) || AllZero(parent_id)) {
    return std::nullopt;
  }
  const auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  const uint8_t flag_bits = static_cast<uint8_t>(nibble(flags[0]) * 16 + nibble(flags[1]));
  TraceContext context;
  context.trace_id_ = std::string(trace_id);
  context.parent_id_ = std::string(parent_id);
  // Reserved flags are sent as zero; of a higher version only `sampled` is
  // known to mean what it means in version 00.
  context.flags_ = flag_bits & (version == "00" ? (kSampled | kRandom) : kSampled);
  context.tracestate_ = NormalizeTracestate(tracestate).value_or("");
  return context;
}

std::optional<std::string> TraceContext::NormalizeTracestate(absl::string_view tracestate) {
  std::vector<std::string> members;
  std::set<absl::string_view> keys;
  for (absl::string_view member : absl::StrSplit(tracestate, ',')) {
    member = StripOws(member);
    if (member.empty()) continue;  // empty list members are allowed
    const size_t equals = member.find('=');
    if (equals == absl::string_view::npos) return std::nullopt;
    const absl::string_view key = member.substr(0, equals);
    if (!IsValidKey(key) || !IsValidValue(member.substr(equals + 1))) return std::nullopt;
    if (!keys.insert(key).second) return std::nullopt;  // a duplicate key
    members.emplace_back(member);
  }
  if (members.size() > kMaxTracestateMembers) return std::nullopt;
  // Too long: whole entries go, those over 128 characters first, then from
  // the end (the specification's truncation order).
  auto length = [&members] {
    size_t total = members.empty() ? 0 : members.size() - 1;
    for (const std::string& member : members) total += member.size();
    return total;
  };
  while (length() > kMaxTracestateLength) {
    auto long_entry = std::find_if(members.begin(), members.end(), [](const std::string& m) {
      return m.size() > kLongTracestateEntry;
    });
    if (long_entry != members.end()) {
      members.erase(long_entry);
    } else {
      members.pop_back();
    }
  }
  return absl::StrJoin(members, ",");
}

TraceContext TraceContext::Extract(const std::vector<absl::string_view>& traceparents,
                                   const std::vector<absl::string_view>& tracestates) {
  if (traceparents.size() != 1) return TraceContext();
  return Parse(traceparents.front(), absl::StrJoin(tracestates, ",")).value_or(TraceContext());
}

TraceContext TraceContext::NewRoot() {
  TraceContext context;
  context.trace_id_ = RandomHex(16);
  context.parent_id_ = RandomHex(8);
  context.flags_ = kSampled;
  return context;
}

TraceContext TraceContext::ChildOf(const TraceContext& parent) {
  return parent.valid() ? parent.Child() : NewRoot();
}

TraceContext TraceContext::Child() const {
  TraceContext child = *this;
  do {
    child.parent_id_ = RandomHex(8);
  } while (child.parent_id_ == parent_id_);
  return child;
}

std::string TraceContext::traceparent() const {
  if (!valid()) return "";
  return absl::StrFormat("00-%s-%s-%02x", trace_id_, parent_id_, static_cast<unsigned>(flags_));
}

void PrintTo(const TraceContext& context, std::ostream* os) {
  if (!context.valid()) {
    *os << "(no trace)";
    return;
  }
  *os << context.traceparent();
  if (!context.tracestate().empty()) *os << " tracestate=" << context.tracestate();
}

TraceContext IncomingTraceContext(const grpc::ServerContext& context) {
  std::vector<absl::string_view> traceparents;
  std::vector<absl::string_view> tracestates;
  for (const auto& [key, value] : context.client_metadata()) {
    const absl::string_view name(key.data(), key.size());
    if (absl::EqualsIgnoreCase(name, kTraceparentKey)) {
      traceparents.emplace_back(value.data(), value.size());
    } else if (absl::EqualsIgnoreCase(name, kTracestateKey)) {
      tracestates.emplace_back(value.data(), value.size());
    }
  }
  return TraceContext::Extract(traceparents, tracestates);
}

}  // namespace casebridge
