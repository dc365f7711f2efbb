// Structured logging: one JSON object per line on stderr, for log
// collectors. Never pass personal data (CPR numbers, names, free text about
// a citizen) as a message or field: log the subject, ids and codes.
//
//   LogInfo("event published", {{"event_id", id}, {"topic", topic}});
#pragma once

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace casebridge {

using LogField = std::pair<absl::string_view, std::string>;

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// Sets the service name written into every line (once, in main).
void SetLogService(absl::string_view service);
// Sets the lowest level written. Default kInfo.
void SetLogLevel(LogLevel level);

void Log(LogLevel level, absl::string_view message, std::initializer_list<LogField> fields = {});
inline void LogInfo(absl::string_view m, std::initializer_list<LogField> f = {}) { Log(LogLevel::kInfo, m, f); }
inline void LogWarning(absl::string_view m, std::initializer_list<LogField> f = {}) { Log(LogLevel::kWarning, m, f); }
inline void LogError(absl::string_view m, std::initializer_list<LogField> f = {}) { Log(LogLevel::kError, m, f); }

// Escapes `s` for a JSON string (without the quotes).
std::string JsonEscape(absl::string_view s);

}  // namespace casebridge
