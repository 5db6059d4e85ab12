// The bus side of portierctl: a proxy for org.portier.Firewall1 and the translation of
// D-Bus failures into sentences and exit codes.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <memory>

#include "firewall1_proxy.h"

namespace portier::cli {

using Options = std::map<std::string, sdbus::Variant>;

class DaemonClient final : public sdbus::ProxyInterfaces<org::portier::Firewall1_proxy> {
 public:
  /// Connects to the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured).
  DaemonClient();
  ~DaemonClient();

 private:
  void onApplied(const uint64_t&, const std::string&) override {}
  void onRuleChanged(const std::string&, const bool&) override {}
  void onConfirmPending(const uint32_t&) override {}
  void onRolledBack(const std::string&) override {}
  void onDriftRepaired(const std::string&) override {}
  void onPacketLogged(const std::map<std::string, sdbus::Variant>&) override {}
};

/// Runs `call` against the daemon; prints a plain sentence and returns the exit code
/// when the bus or the daemon says no.
template <typename Call>
int with_daemon(Call&& call);

int report_bus_error(const sdbus::Error& error);

template <typename Call>
int with_daemon(Call&& call) {
  try {
    DaemonClient client;
    return call(client);
  } catch (const sdbus::Error& error) {
    return report_bus_error(error);
  }
}

}  // namespace portier::cli
