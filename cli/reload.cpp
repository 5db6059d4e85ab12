#include <cstdio>

#include "commands.h"
#include "daemon_client.h"
#include "firewall1_api.h"

namespace portier::cli {

int reload(Args args) {
  if (!args.empty()) return usage_error("reload", "takes no arguments");
  return with_daemon([](DaemonClient& daemon) {
    // Say what the reload changes when the file is not what is loaded (a rollback, a start
    // that fell back, an edit): the file replaces it.
    // (With an apply pending, portierd refuses to reload and says so.)
    auto facts = daemon.GetStatus();
    auto mode = facts.find(bus_key::status::kMode);
    bool pending = mode != facts.end() && mode->second.containsValueOfType<std::string>() &&
                   mode->second.get<std::string>() == bus_key::status::kModePendingConfirm;
    if (auto it = facts.find(bus_key::status::kPolicyFileDetail);
        !pending && it != facts.end() && it->second.containsValueOfType<std::string>())
      std::printf("the policy file differs from what is loaded (%s): loading the file\n",
                  it->second.get<std::string>().c_str());
    daemon.Reload();
    std::printf("policy %s reloaded (generation %llu)\n", daemon.PolicyPath().c_str(),
                static_cast<unsigned long long>(daemon.Generation()));
    return kOk;
  });
}

}  // namespace portier::cli
