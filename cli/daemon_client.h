// The bus side of portierctl: a proxy for org.portier.Firewall1 and the translation of
// D-Bus failures into sentences and exit codes.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <chrono>
#include <memory>

#include "firewall1_proxy.h"
#include "polkit_agent.h"

namespace portier::cli {

using Options = std::map<std::string, sdbus::Variant>;

class DaemonClient final : public sdbus::ProxyInterfaces<org::portier::Firewall1_proxy> {
 public:
  /// Connects to the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured).
  DaemonClient();
  ~DaemonClient();

  // The calls that need authorization, hiding the generated ones of the same names: where
  // polkit may ask for a password (see may_ask_password()), they start an agent, carry
  // ALLOW_INTERACTIVE_AUTHORIZATION and wait long enough for somebody to type it.
  void SetRuleEnabled(const std::string& name, const bool& enabled, const Options& options);
  void Reload();
  uint64_t Apply(const std::string& path, const Options& options);
  void Confirm();
  void Rollback();
  std::string AddTimedRule(const Options& rule);
  void RemoveTimedRule(const std::string& name);
  void AddSetElements(const std::string& set, const std::vector<std::string>& elements,
                      const Options& options);
  void RemoveSetElements(const std::string& set, const std::vector<std::string>& elements);
  void SetPanic(const bool& on, const Options& options);
  std::vector<std::map<std::string, sdbus::Variant>> ListPorts();

 private:
  template <typename... Args>
  sdbus::MethodReply call_authorized(const char* method, const Args&... args);

  void onApplied(const uint64_t&, const std::string&) override {}
  void onRuleChanged(const std::string&, const bool&) override {}
  void onConfirmPending(const uint32_t&) override {}
  void onRolledBack(const std::string&) override {}
  void onDriftRepaired(const std::string&) override {}
  void onOwnerChanged(const std::string&, const std::string&, const std::string&, const bool&,
                      const std::string&, const uint64_t&) override {}
  void onPacketLogged(const std::map<std::string, sdbus::Variant>&) override {}

  std::unique_ptr<PolkitAgent> agent_;
  bool agent_tried_ = false;
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
