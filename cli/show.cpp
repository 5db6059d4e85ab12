#include <cstdio>
#include <string_view>

#include "cgroups.h"
#include "commands.h"
#include "compile_policy.h"
#include "daemon_client.h"
#include "parse_policy.h"
#include "render_nft.h"

namespace portier::cli {

int show(Args args) {
  if (args.empty()) {
    // What the kernel has from portierd: the policy with its runtime toggles, timed rules
    // and set elements, as one table that `nft -f` can load.
    return with_daemon([](DaemonClient& daemon) {
      std::fputs(daemon.GetRuleset().c_str(), stdout);
      return kOk;
    });
  }
  if (args.size() != 2 || std::string_view(args[0]) != "--policy")
    return usage_error("show", "takes nothing (the loaded ruleset) or --policy FILE");
  ParsedPolicy parsed = parse_policy_file(args[1], SystemTables::load());
  std::fputs(parsed.report().c_str(), stderr);
  if (!parsed.ok()) return kFailure;
  // The replacing form, so that `nft -f` of it swaps the table atomically, as portierd does;
  // with the bound units' cgroups as they are now, as portierd would load it here.
  ir::Ruleset ruleset = compile_policy(parsed.policy);
  fill_cgroup_sets(ruleset, LiveCgroupTree(find_cgroup2_root()));
  std::fputs(render_nft_replace(ruleset).c_str(), stdout);
  return kOk;
}

}  // namespace portier::cli
