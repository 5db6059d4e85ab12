// diff: what applying a policy file would change, in policy terms and optionally as nft.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include "cgroups.h"
#include "commands.h"
#include "compile_policy.h"
#include "daemon_client.h"
#include "output.h"
#include "parse_policy.h"
#include "render_nft.h"

namespace portier::cli {
namespace {

struct Entry {
  std::string kind;  // rule or forward
  bool enabled = true;
  std::string direction, action, match;
  std::string summary() const {
    return direction + " " + action + " " + match + (enabled ? "" : " (disabled)");
  }
  bool operator==(const Entry&) const = default;
};

// `nft` texts side by side through diff(1), which every Debian system has.
int print_nft_diff(const std::string& active, const std::string& proposed) {
  char old_path[] = "/tmp/portierctl-active-XXXXXX";
  char new_path[] = "/tmp/portierctl-proposed-XXXXXX";
  int old_fd = ::mkstemp(old_path), new_fd = ::mkstemp(new_path);
  if (old_fd < 0 || new_fd < 0) return kFailure;
  ::close(old_fd);
  ::close(new_fd);
  std::ofstream(old_path) << active;
  std::ofstream(new_path) << proposed;
  std::string command =
      std::string("diff -u --label active --label proposed ") + old_path + " " + new_path;
  int status = std::system(command.c_str());
  ::unlink(old_path);
  ::unlink(new_path);
  return status == -1 ? kFailure : kOk;
}

}  // namespace

int diff(Args args) {
  std::string file;
  bool nft = false, json = false;
  for (std::string_view arg : args) {
    if (arg == "--nft")
      nft = true;
    else if (arg == "--json")
      json = true;
    else if (!arg.empty() && arg[0] == '-')
      return usage_error("diff", "unknown option '" + std::string(arg) + "'");
    else if (file.empty())
      file = arg;
    else
      return usage_error("diff", "needs exactly one policy FILE");
  }
  if (file.empty()) return usage_error("diff", "needs a policy FILE");
  ParsedPolicy parsed = parse_policy_file(file, SystemTables::load());
  std::fputs(parsed.report().c_str(), stderr);
  if (!parsed.ok()) return kFailure;

  std::map<std::string, Entry> proposed;
  for (const Rule& rule : parsed.policy.rules)
    proposed[rule.name] = {"rule", rule.enabled, std::string(to_string(rule.direction)),
                           std::string(to_string(rule.action)), describe_match(rule)};
  for (const Forward& forward : parsed.policy.forwards)
    proposed[forward.name] = {"forward", forward.enabled, "forward", "dnat",
                              describe_forward(forward)};

  return with_daemon([&](DaemonClient& daemon) -> int {
    std::map<std::string, Entry> active;
    for (const auto& rule : daemon.ListRules()) {
      if (rule.get<0>().starts_with("timed-")) continue;  // runtime rules stay across an apply
      active[rule.get<0>()] = {rule.get<3>() == "dnat" ? "forward" : "rule", rule.get<1>(),
                               rule.get<2>(), rule.get<3>(), rule.get<4>()};
    }
    Json out;
    out.begin_array();
    int changes = 0;
    auto report = [&](char sign, const std::string& name, const Entry& entry,
                      const std::string& detail) {
      ++changes;
      if (json) {
        out.begin_object()
            .key("change")
            .value(sign == '+'   ? "added"
                   : sign == '-' ? "removed"
                                 : "changed")
            .key("kind")
            .value(entry.kind)
            .key("name")
            .value(name)
            .key("detail")
            .value(detail)
            .end_object();
      } else {
        std::string line = std::string(1, sign) + " " + entry.kind + " " + name + ": " + detail;
        std::printf("%s\n", coloured(line, sign == '+'   ? "green"
                                           : sign == '-' ? "red"
                                                         : "yellow")
                                .c_str());
      }
    };
    for (const auto& [name, entry] : active) {
      auto it = proposed.find(name);
      if (it == proposed.end())
        report('-', name, entry, entry.summary());
      else if (!(it->second == entry))
        report('~', name, entry, entry.summary() + " -> " + it->second.summary());
    }
    for (const auto& [name, entry] : proposed)
      if (!active.count(name)) report('+', name, entry, entry.summary());
    out.end_array();
    if (json)
      std::printf("%s\n", out.str().c_str());
    else if (changes == 0)
      std::printf("no rule or forward changes\n");
    if (nft && !json) {
      ir::Ruleset ruleset = compile_policy(parsed.policy);
      fill_cgroup_sets(ruleset, LiveCgroupTree(find_cgroup2_root()));
      return print_nft_diff(daemon.GetRuleset(), render_nft(ruleset));
    }
    return kOk;
  });
}

}  // namespace portier::cli
