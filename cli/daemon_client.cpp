#include "daemon_client.h"

#include <cstdio>
#include <string>

#include "commands.h"

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

}  // namespace

DaemonClient::DaemonClient()
    : ProxyInterfaces(system_bus(), "org.portier.Firewall1", "/org/portier/Firewall1") {
  registerProxy();
}

DaemonClient::~DaemonClient() { unregisterProxy(); }

int report_bus_error(const sdbus::Error& error) {
  const std::string& name = error.getName();
  if (name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
      name == "org.freedesktop.DBus.Error.NameHasNoOwner") {
    std::fprintf(stderr,
                 "portierctl: portierd is not running (nobody owns org.portier.Firewall1 on the "
                 "system bus).\nStart it with: systemctl start portierd\n");
    return kDaemonUnreachable;
  }
  if (name.rfind("org.portier.Firewall1.Error.", 0) == 0) {
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
