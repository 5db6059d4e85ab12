#include <cstdio>
#include <string>

#include "cgroups.h"
#include "commands.h"
#include "parse_policy.h"

namespace portier::cli {
namespace {

// Bound units that do not run now: not an error (the policy loads, and portierd opens
// their ports when they start), but worth knowing before an apply.
void warn_about_stopped_owners(const Policy& policy) {
  LiveCgroupTree tree(find_cgroup2_root());
  auto warn = [&](const SourceLocation& where, const std::string& kind, const std::string& name,
                  const ir::CgroupOwner& owner) {
    if (locate(tree, owner)) return;
    Diagnostic warning{Severity::warning, where,
                       kind + " '" + name + "': " + describe(owner) +
                           " is not running now: nobody may serve its ports until it runs"};
    std::fprintf(stderr, "%s\n", format_headline(warning).c_str());
  };
  for (const Bind& bind : policy.binds)
    if (!bind.user) warn(bind.where, "bind", bind.name, {bind.unit, bind.cgroup});
  for (const Rule& rule : policy.rules)
    if (!rule.unit.empty()) warn(rule.where, "rule", rule.name, {rule.unit, {}});
}

}  // namespace

int check(Args args) {
  if (args.size() != 1) return usage_error("check", "needs exactly one policy FILE");
  ParsedPolicy parsed = parse_policy_file(args[0], SystemTables::load());
  std::fputs(parsed.report().c_str(), stderr);
  if (!parsed.ok()) return kFailure;
  warn_about_stopped_owners(parsed.policy);
  std::printf("%s: ok, %zu rules\n", args[0], parsed.policy.rules.size());
  return kOk;
}

}  // namespace portier::cli
