// Fuzzes the strict JSON config loader (services/common/config.h) with the
// coordination service's config, `casebridge.config.v1.CoordinationServiceConfig`,
// and what the service does with it at start-up: defaults, validation
// (routing rules through `ValidateRoutingConfig` included) and, for a valid
// config, the recipient topics, the watchdog interval and routing an event
// of every known type under its rules.
//
// Checked besides ASan/UBSan: errors are INVALID_ARGUMENT; a valid config
// has one topic per recipient and a positive watchdog interval; routing
// returns each recipient once, in order, each with at least one role.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "casebridge/config/v1/config.pb.h"
#include "services/common/config.h"
#include "services/coordination/coordination_config.h"
#include "services/coordination/router.h"

namespace {

using casebridge::coordination::RoutedRecipient;
namespace v1 = casebridge::coordination::v1;

void Fail(const char* what, const absl::Status& status) {
  fprintf(stderr, "coordination_config_fuzzer: %s: %s\n", what, status.ToString().c_str());
  abort();
}

// A case on which every role is held, by a recipient of the config.
std::vector<v1::Party> Holders(const casebridge::config::v1::CoordinationServiceConfig& config) {
  std::vector<v1::Party> holders;
  const auto* roles = casebridge::common::v1::Role_descriptor();
  for (int i = 0; i < roles->value_count(); ++i) {
    const int role = roles->value(i)->number();
    if (role == casebridge::common::v1::ROLE_UNSPECIFIED) continue;
    v1::Party& party = holders.emplace_back();
    party.set_role(static_cast<casebridge::common::v1::Role>(role));
    party.set_recipient(config.recipients(i % config.recipients_size()).id());
  }
  return holders;
}

void CheckRouting(const casebridge::config::v1::CoordinationServiceConfig& config) {
  const std::vector<v1::Party> holders = Holders(config);
  for (const std::string& type : casebridge::coordination::KnownEventTypes()) {
    casebridge::events::v1::CaseEvent event;
    event.set_id("00000000-0000-8000-8000-000000000000");
    event.set_type(type);
    event.set_subject(std::string(64, 'a'));
    const std::vector<RoutedRecipient> routed =
        casebridge::coordination::Route(event, holders, config.routing());
    for (size_t i = 0; i < routed.size(); ++i) {
      if (routed[i].roles.empty()) Fail("a recipient routed without a role", {});
      if (i > 0 && !(routed[i - 1].recipient < routed[i].recipient)) {
        Fail("recipients not unique and ordered", {});
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using casebridge::config::v1::CoordinationServiceConfig;
  namespace coordination = casebridge::coordination;
  const std::string json(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<CoordinationServiceConfig> parsed =
      casebridge::ParseConfig<CoordinationServiceConfig>(json);
  if (!parsed.ok()) {
    if (parsed.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail("parse error is not INVALID_ARGUMENT", parsed.status());
    }
    return 0;
  }
  // The routing rules on their own, as the service checks them.
  const absl::Status routing = coordination::ValidateRoutingConfig(parsed->routing(), "routing");
  if (!routing.ok() && routing.code() != absl::StatusCode::kInvalidArgument) {
    Fail("routing: not INVALID_ARGUMENT", routing);
  }

  const CoordinationServiceConfig config = coordination::WithDefaults(*parsed);
  const absl::Status valid = coordination::ValidateCoordinationConfig(config);
  if (!valid.ok()) {
    if (valid.code() != absl::StatusCode::kInvalidArgument) Fail("not INVALID_ARGUMENT", valid);
    return 0;
  }
  if (!routing.ok()) Fail("invalid routing in a valid config", routing);
  const size_t recipients = static_cast<size_t>(config.recipients_size());
  if (coordination::RecipientTopics(config).size() != recipients) {
    Fail("recipient topics are not one per recipient", valid);
  }
  if (coordination::WatchdogInterval(config) <= absl::ZeroDuration()) {
    Fail("the watchdog interval is not positive", valid);
  }
  (void)coordination::LedgerPath(config);
  CheckRouting(config);
  return 0;
}
