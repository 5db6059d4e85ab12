// enable and disable: the two directions of one runtime toggle.
#include <cstdio>
#include <string>

#include "commands.h"
#include "daemon_client.h"
#include "firewall1_api.h"

namespace portier::cli {
namespace {

int toggle(std::string_view command, Args args, bool enabled) {
  std::string name;
  bool permanent = false;
  for (std::string_view arg : args) {
    if (arg == "--permanent")
      permanent = true;
    else if (!arg.empty() && arg[0] == '-')
      return usage_error(command, "unknown option '" + std::string(arg) + "'");
    else if (name.empty())
      name = arg;
    else
      return usage_error(command, "needs exactly one rule NAME");
  }
  if (name.empty()) return usage_error(command, "needs a rule NAME");
  return with_daemon([&](DaemonClient& daemon) {
    daemon.SetRuleEnabled(name, enabled,
                          {{bus_key::toggle::kPermanent, sdbus::Variant(permanent)}});
    std::printf("%s %s (%s)\n", name.c_str(), enabled ? "enabled" : "disabled",
                permanent ? "in the policy file too" : "at run time; the policy file is unchanged");
    return kOk;
  });
}

}  // namespace

int enable(Args args) { return toggle("enable", args, true); }
int disable(Args args) { return toggle("disable", args, false); }

}  // namespace portier::cli
