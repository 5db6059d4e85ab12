// enable and disable: the two directions of one runtime toggle.
#include <cstdio>
#include <string>

#include "commands.h"
#include "daemon_client.h"

namespace portier::cli {
namespace {

int toggle(std::string_view command, Args args, bool enabled) {
  if (args.size() != 1) return usage_error(command, "needs exactly one rule NAME");
  std::string name = args[0];
  return with_daemon([&](DaemonClient& daemon) {
    daemon.SetRuleEnabled(name, enabled);
    std::printf("rule %s %s (at run time; the policy file is unchanged)\n", name.c_str(),
                enabled ? "enabled" : "disabled");
    return kOk;
  });
}

}  // namespace

int enable(Args args) { return toggle("enable", args, true); }
int disable(Args args) { return toggle("disable", args, false); }

}  // namespace portier::cli
