// The bus side of portierctl: a proxy for org.portier.Firewall1 and the translation of
// D-Bus failures into sentences and exit codes.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <memory>

#include "firewall1_proxy.h"

namespace portier::cli {

class DaemonClient final : public sdbus::ProxyInterfaces<org::portier::Firewall1_proxy> {
 public:
  /// Connects to the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured).
  DaemonClient();
  ~DaemonClient();

 private:
  void onApplied(const uint64_t&) override {}
  void onRuleChanged(const std::string&, const bool&) override {}
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
