#include <cstdio>

#include "commands.h"
#include "daemon_client.h"

namespace portier::cli {

int reload(Args args) {
  if (!args.empty()) return usage_error("reload", "takes no arguments");
  return with_daemon([](DaemonClient& daemon) {
    daemon.Reload();
    std::printf("policy %s reloaded (generation %llu)\n", daemon.PolicyPath().c_str(),
                static_cast<unsigned long long>(daemon.Generation()));
    return kOk;
  });
}

}  // namespace portier::cli
