#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "daemon_client.h"
#include "output.h"
#include "owners.h"

namespace portier::cli {

int rules(Args args) {
  bool json = false, exact = !stdout_is_terminal();
  for (std::string_view arg : args) {
    if (arg == "--json")
      json = true;
    else if (arg == "--exact")
      exact = true;
    else
      return usage_error("rules", "takes only --json and --exact");
  }
  return with_daemon([&](DaemonClient& daemon) {
    auto entries = daemon.ListRules();
    if (json) {
      Json out;
      out.begin_array();
      for (const auto& rule : entries) {
        out.begin_object()
            .key("name")
            .value(rule.get<0>())
            .key("enabled")
            .value(rule.get<1>())
            .key("direction")
            .value(rule.get<2>())
            .key("action")
            .value(rule.get<3>())
            .key("match")
            .value(rule.get<4>())
            .key("packets")
            .value(rule.get<5>())
            .key("bytes")
            .value(rule.get<6>())
            .end_object();
      }
      out.end_array();
      std::printf("%s\n", out.str().c_str());
      return kOk;
    }
    // On a terminal counters are shortened (1.2k, 3.4 MiB); piped, or with --exact,
    // they are plain integers for scripts.
    std::vector<std::vector<std::string>> table = {
        {"NAME", "STATE", "DIRECTION", "ACTION", "PACKETS", "BYTES", "MATCH"}};
    for (const auto& rule : entries) {
      std::string state = rule.get<1>() ? "enabled" : "disabled";
      table.push_back(
          {rule.get<0>(), rule.get<1>() ? state : coloured(state, "yellow"), rule.get<2>(),
           rule.get<3>(), exact ? std::to_string(rule.get<5>()) : human_count(rule.get<5>()),
           exact ? std::to_string(rule.get<6>()) : human_bytes(rule.get<6>()), rule.get<4>()});
    }
    print_table(table);
    // Who may serve bound ports, and whether they run now (their sets, not their rules,
    // change when they start and stop).
    std::vector<Owner> owners = owners_of(daemon.GetStatus());
    if (owners.empty()) return kOk;
    std::vector<std::vector<std::string>> owner_table = {
        {"OWNER OF", "UNIT OR CGROUP", "STATE", "CGROUP ID", "CHANGED"}};
    for (const Owner& owner : owners)
      owner_table.push_back({owner.kind + " " + owner.name, owner.owner,
                             owner.running ? "running" : coloured("not running", "yellow"),
                             owner.running ? std::to_string(owner.cgroup_id) : "-",
                             owner.since_usec ? format_time(owner.since_usec) : "-"});
    std::printf("\n");
    print_table(owner_table);
    return kOk;
  });
}

}  // namespace portier::cli
