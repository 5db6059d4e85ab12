#include "daemon_client.h"

#include <systemd/sd-bus.h>

#include <cstdio>
#include <string>

#include "commands.h"
#include "firewall1_api.h"

namespace portier::cli {
namespace {

std::unique_ptr<sdbus::IConnection> connect_system_bus() {
  return sdbus::createSystemBusConnection();
}

// The proxy keeps a reference to its connection, so the connection must outlive it:
// it lives as long as the process.
sdbus::IConnection& system_bus() {
  static std::unique_ptr<sdbus::IConnection> bus = connect_system_bus();
  return *bus;
}

// portierd gives polkit 120 s to have the password typed; its refusal should arrive first.
constexpr std::chrono::seconds kInteractiveTimeout{125};

// sdbus-c++ 1.2 cannot set a message's header flags, but keeps the sd_bus_message in a
// protected member; a pointer to that member taken in a derived class reads it.
struct RawMessage : sdbus::Message {
  static sd_bus_message* of(const sdbus::Message& message) {
    return static_cast<sd_bus_message*>(message.*(&RawMessage::msg_));
  }
};

}  // namespace

template <typename... Args>
sdbus::MethodReply DaemonClient::call_authorized(const char* method, const Args&... args) {
  auto call = getProxy().createMethodCall(kInterfaceName, method);
  ((call << args), ...);
  if (!may_ask_password()) return getProxy().callMethod(call);
  if (!agent_tried_) {
    agent_ = PolkitAgent::start();
    agent_tried_ = true;
  }
  sd_bus_message_set_allow_interactive_authorization(RawMessage::of(call), 1);
  return getProxy().callMethod(call, kInteractiveTimeout);
}

void DaemonClient::SetRuleEnabled(const std::string& name, const bool& enabled,
                                  const Options& options) {
  call_authorized("SetRuleEnabled", name, enabled, options);
}

void DaemonClient::Reload() { call_authorized("Reload"); }

uint64_t DaemonClient::Apply(const std::string& path, const Options& options) {
  uint64_t generation = 0;
  auto reply = call_authorized("Apply", path, options);
  reply >> generation;
  return generation;
}

void DaemonClient::Confirm() { call_authorized("Confirm"); }

void DaemonClient::Rollback() { call_authorized("Rollback"); }

std::string DaemonClient::AddTimedRule(const Options& rule) {
  std::string name;
  auto reply = call_authorized("AddTimedRule", rule);
  reply >> name;
  return name;
}

void DaemonClient::RemoveTimedRule(const std::string& name) {
  call_authorized("RemoveTimedRule", name);
}

void DaemonClient::AddSetElements(const std::string& set, const std::vector<std::string>& elements,
                                  const Options& options) {
  call_authorized("AddSetElements", set, elements, options);
}

void DaemonClient::RemoveSetElements(const std::string& set,
                                     const std::vector<std::string>& elements) {
  call_authorized("RemoveSetElements", set, elements);
}

void DaemonClient::SetPanic(const bool& on, const Options& options) {
  call_authorized("SetPanic", on, options);
}

std::vector<std::map<std::string, sdbus::Variant>> DaemonClient::ListPorts() {
  std::vector<std::map<std::string, sdbus::Variant>> ports;
  auto reply = call_authorized("ListPorts");
  reply >> ports;
  return ports;
}

DaemonClient::DaemonClient() : ProxyInterfaces(system_bus(), kBusName, kObjectPath) {
  registerProxy();
}

DaemonClient::~DaemonClient() { unregisterProxy(); }

int report_bus_error(const sdbus::Error& error) {
  const std::string& name = error.getName();
  if (name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
      name == "org.freedesktop.DBus.Error.NameHasNoOwner") {
    std::fprintf(stderr,
                 "portierctl: portierd is not running (nobody owns %s on the "
                 "system bus).\nStart it with: systemctl start portierd\n",
                 kBusName);
    return kDaemonUnreachable;
  }
  if (name.rfind(bus_error::kPrefix, 0) == 0) {
    std::fprintf(stderr, "portierctl: %s\n", error.getMessage().c_str());
    return kFailure;
  }
  if (name == "org.freedesktop.DBus.Error.AccessDenied") {
    std::fprintf(stderr, "portierctl: permission denied by the bus: %s\n",
                 error.getMessage().c_str());
    return kFailure;
  }
  // Failing to reach the bus at all surfaces as an sd-bus errno error.
  if (name.rfind("System.Error.", 0) == 0 || name == "org.freedesktop.DBus.Error.NoServer" ||
      name == "org.freedesktop.DBus.Error.FileNotFound") {
    std::fprintf(stderr,
                 "portierctl: cannot reach the system bus (%s).\nIs dbus running? Then start "
                 "portierd with: systemctl start portierd\n",
                 error.getMessage().c_str());
    return kDaemonUnreachable;
  }
  std::fprintf(stderr, "portierctl: %s: %s\n", name.c_str(), error.getMessage().c_str());
  return kFailure;
}

}  // namespace portier::cli
