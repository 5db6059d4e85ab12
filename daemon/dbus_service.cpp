#include "dbus_service.h"

#include <cstdio>

namespace portier {

FirewallService::FirewallService(sdbus::IConnection& connection, Firewall& firewall)
    : AdaptorInterfaces(connection, kObjectPath), firewall_(firewall) {
  registerAdaptor();
}

FirewallService::~FirewallService() { unregisterAdaptor(); }

// The bus daemon vouches for the caller's uid, so it can be trusted for this check.
void FirewallService::require_admin(std::string_view action) {
  uid_t uid = getObject().getCurrentlyProcessedMessage()->getCredsUid();
  if (uid != 0)
    throw sdbus::Error(bus_error::kAccessDenied, "permission denied: " + std::string(action) +
                                                     " needs root (caller uid " +
                                                     std::to_string(uid) + ")");
}

// Runs a change of the firewall, mapping what can go wrong to named bus errors and
// announcing the new generation when the kernel took it.
template <typename Operation>
void FirewallService::change(std::string_view action, Operation&& operation) {
  require_admin(action);
  try {
    operation();
  } catch (const PolicyError& failure) {
    throw sdbus::Error(bus_error::kInvalidPolicy, failure.what());
  } catch (const NoSuchRule& failure) {
    throw sdbus::Error(bus_error::kNoSuchRule, failure.what());
  } catch (const KernelError& failure) {
    throw sdbus::Error(bus_error::kKernelRefused, failure.what());
  }
  emitApplied(firewall_.generation());
}

std::map<std::string, sdbus::Variant> FirewallService::GetStatus() {
  FirewallStatus status = firewall_.status();
  auto applied = std::chrono::duration_cast<std::chrono::microseconds>(
      status.last_applied.time_since_epoch());
  return {
      {"version", sdbus::Variant(std::string(PORTIER_VERSION))},
      {"policy_path", sdbus::Variant(status.policy_path)},
      {"table", sdbus::Variant(status.table)},
      {"rules", sdbus::Variant(static_cast<uint32_t>(status.rules))},
      {"rules_enabled", sdbus::Variant(static_cast<uint32_t>(status.rules_enabled))},
      {"generation", sdbus::Variant(status.generation)},
      {"last_applied_usec", sdbus::Variant(static_cast<uint64_t>(applied.count()))},
  };
}

std::vector<sdbus::Struct<std::string, bool, std::string, std::string, std::string, uint64_t,
                          uint64_t>>
FirewallService::ListRules() {
  std::vector<RuleStatus> rules;
  try {
    rules = firewall_.rules();
  } catch (const KernelError& failure) {
    throw sdbus::Error(bus_error::kKernelRefused, failure.what());
  }
  std::vector<sdbus::Struct<std::string, bool, std::string, std::string, std::string, uint64_t,
                            uint64_t>>
      result;
  for (const RuleStatus& rule : rules)
    result.emplace_back(rule.name, rule.enabled, rule.direction, rule.action, rule.match,
                        rule.packets, rule.bytes);
  return result;
}

void FirewallService::SetRuleEnabled(const std::string& name, const bool& enabled) {
  if (name.empty() || name.size() > 63)
    throw sdbus::Error(bus_error::kInvalidArgument, "rule name must be 1 to 63 characters");
  change(enabled ? "enabling a rule" : "disabling a rule",
         [&] { firewall_.set_rule_enabled(name, enabled); });
  std::fprintf(stderr, "portierd: rule %s %s\n", name.c_str(), enabled ? "enabled" : "disabled");
  emitRuleChanged(name, enabled);
}

void FirewallService::Reload() {
  change("reloading the policy", [&] { firewall_.reload(); });
  std::fprintf(stderr, "portierd: reloaded %s (generation %llu)\n",
               firewall_.policy_path().c_str(),
               static_cast<unsigned long long>(firewall_.generation()));
}

void FirewallService::reload_logged() {
  try {
    firewall_.reload();
    std::fprintf(stderr, "portierd: reloaded %s (generation %llu)\n",
                 firewall_.policy_path().c_str(),
                 static_cast<unsigned long long>(firewall_.generation()));
    emitApplied(firewall_.generation());
  } catch (const std::exception& failure) {
    std::fprintf(stderr, "portierd: reload failed, previous ruleset stays in force:\n%s\n",
                 failure.what());
  }
}

std::string FirewallService::Version() { return PORTIER_VERSION; }
std::string FirewallService::PolicyPath() { return firewall_.policy_path(); }
uint64_t FirewallService::Generation() { return firewall_.generation(); }

}  // namespace portier
