// __complete: names for the shell completions (commands, rules, sets), one per line.
#include <cstdio>

#include "commands.h"
#include "daemon_client.h"
#include "firewall1_api.h"

namespace portier::cli {

int complete(Args args) {
  if (args.size() != 1) return usage_error("__complete", "needs commands, rules or sets");
  std::string_view what = args[0];
  if (what == "commands") {
    for (std::string_view name : command_names()) std::printf("%.*s\n", static_cast<int>(name.size()), name.data());
    return kOk;
  }
  if (what != "rules" && what != "sets") return usage_error("__complete", "needs commands, rules or sets");
  // Completion must stay quiet when the daemon is not there.
  try {
    DaemonClient daemon;
    if (what == "rules") {
      for (const auto& rule : daemon.ListRules()) std::printf("%s\n", rule.get<0>().c_str());
    } else {
      auto facts = daemon.GetStatus();
      if (auto it = facts.find(bus_key::status::kSets);
          it != facts.end() && it->second.containsValueOfType<std::vector<std::string>>())
        for (const std::string& set : it->second.get<std::vector<std::string>>()) std::printf("%s\n", set.c_str());
    }
  } catch (const sdbus::Error&) {
  }
  return kOk;
}

}  // namespace portier::cli
