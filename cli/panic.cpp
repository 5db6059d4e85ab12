#include <cstdio>
#include <string>

#include "commands.h"
#include "daemon_client.h"
#include "firewall1_api.h"

namespace portier::cli {

int panic(Args args) {
  if (args.empty() || args.size() > 2) return usage_error("panic", "needs on or off");
  std::string_view state = args[0];
  bool keep = args.size() == 2 && std::string_view(args[1]) == "--keep-established";
  if ((state != "on" && state != "off") || (args.size() == 2 && (!keep || state == "off")))
    return usage_error("panic", "needs on [--keep-established] or off");
  return with_daemon([&](DaemonClient& daemon) {
    daemon.SetPanic(state == "on", {{bus_key::panic::kKeepEstablished, sdbus::Variant(keep)}});
    std::printf(state == "on" ? "panic mode on: everything but loopback%s is dropped\n"
                              : "panic mode off: the policy is back%s\n",
                state == "on" && keep ? " and existing connections" : "");
    return kOk;
  });
}

}  // namespace portier::cli
