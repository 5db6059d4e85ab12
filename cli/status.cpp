#include <cstdio>

#include "commands.h"
#include "daemon_client.h"
#include "firewall1_api.h"
#include "output.h"
#include "owners.h"

namespace portier::cli {
namespace {

template <typename T>
T get_or(const std::map<std::string, sdbus::Variant>& facts, const std::string& key, T fallback) {
  auto it = facts.find(key);
  if (it == facts.end() || !it->second.containsValueOfType<T>()) return fallback;
  return it->second.get<T>();
}

}  // namespace

int status(Args args) {
  bool json = args.size() == 1 && std::string_view(args[0]) == "--json";
  if (!args.empty() && !json) return usage_error("status", "takes only --json");
  return with_daemon([&](DaemonClient& daemon) {
    namespace key = bus_key::status;
    auto facts = daemon.GetStatus();
    // Neighbour zones with interfaces on the host (older daemons send none).
    const auto neighbours =
        get_or<std::map<std::string, std::vector<std::string>>>(facts, key::kNeighbours, {});
    auto text = [&](const char* name) { return get_or<std::string>(facts, name, ""); };
    auto number = [&](const char* name) -> std::uint64_t {
      if (auto it = facts.find(name);
          it != facts.end() && it->second.containsValueOfType<uint32_t>())
        return it->second.get<uint32_t>();
      return get_or<uint64_t>(facts, name, 0);
    };
    if (json) {
      Json out;
      out.begin_object();
      // The JSON keys are the bus keys.
      for (const char* name :
           {key::kVersion, key::kPolicyPath, key::kTable, key::kMode, key::kLoadedFrom})
        out.key(name).value(text(name));
      for (const char* name : {key::kRules, key::kRulesEnabled, key::kTimedRules, key::kGeneration,
                               key::kLastAppliedUsec})
        out.key(name).value(number(name));
      if (facts.count(key::kConfirmDeadlineUsec))
        out.key(key::kConfirmDeadlineUsec).value(number(key::kConfirmDeadlineUsec));
      out.key("owners").begin_array();
      for (const Owner& owner : owners_of(facts))
        out.begin_object()
            .key("kind")
            .value(owner.kind)
            .key("name")
            .value(owner.name)
            .key("owner")
            .value(owner.owner)
            .key("running")
            .value(owner.running)
            .key("cgroup")
            .value(owner.cgroup)
            .key("cgroup_id")
            .value(owner.cgroup_id)
            .key("since_usec")
            .value(owner.since_usec)
            .end_object();
      out.end_array();
      if (facts.count(key::kConfirmDeadlineUsec))
        out.key(key::kConfirmDeadlineUsec).value(number(key::kConfirmDeadlineUsec));
      out.key(key::kPolicyFile).value(text(key::kPolicyFile));
      if (facts.count(key::kPolicyFileDetail))
        out.key(key::kPolicyFileDetail).value(text(key::kPolicyFileDetail));
      out.key("neighbours").begin_object();
      for (const auto& [zone, names] : neighbours) out.key(zone).values(names);
      out.end_object();
      out.end_object();
      std::printf("%s\n", out.str().c_str());
      return kOk;
    }
    std::string mode = text(key::kMode);
    std::printf("portierd %s: %s\n", text(key::kVersion).c_str(),
                coloured("running", "green").c_str());
    std::printf("policy:     %s\n", text(key::kPolicyPath).c_str());
    std::printf("table:      inet %s\n", text(key::kTable).c_str());
    std::printf("rules:      %llu (%llu enabled, %llu timed)\n",
                static_cast<unsigned long long>(number(key::kRules)),
                static_cast<unsigned long long>(number(key::kRulesEnabled)),
                static_cast<unsigned long long>(number(key::kTimedRules)));
    std::printf("mode:       %s\n",
                mode == "normal" ? mode.c_str() : coloured(mode, "yellow").c_str());
    std::printf("loaded:     %s\n", text(key::kLoadedFrom).c_str());
    // What a restart would load: the file, whenever it is not what is loaded now.
    if (text(key::kPolicyFile) == key::kPolicyFileDiffers)
      std::printf("policy file: %s (%s)\n",
                  coloured("differs from what is loaded", "yellow").c_str(),
                  text(key::kPolicyFileDetail).c_str());
    else if (text(key::kPolicyFile) == key::kPolicyFileSame)
      std::printf("policy file: same as loaded\n");
    if (auto deadline = number(key::kConfirmDeadlineUsec))
      std::printf("confirm by: %s (or it rolls back)\n", format_time(deadline).c_str());
    std::string seen;
    for (const auto& [zone, names] : neighbours) {
      std::string list;
      for (const std::string& name : names) list += (list.empty() ? "" : ", ") + name;
      seen += (seen.empty() ? "" : "; ") + zone + " (" + list + ")";
    }
    std::printf("neighbours: %s\n", seen.empty() ? "none seen" : seen.c_str());
    std::printf("generation: %llu\n", static_cast<unsigned long long>(number(key::kGeneration)));
    std::printf("applied:    %s\n", format_time(number(key::kLastAppliedUsec)).c_str());
    // Each bound unit: whether it runs now, so a closed port has its reason in sight.
    bool first = true;
    for (const Owner& owner : owners_of(facts)) {
      std::string state = owner_state(owner);
      std::printf("%s%s %s: %s %s%s\n", first ? "owners:     " : "            ", owner.kind.c_str(),
                  owner.name.c_str(), owner.owner.c_str(),
                  owner.running ? state.c_str() : coloured(state, "yellow").c_str(),
                  owner.since_usec ? (", since " + format_time(owner.since_usec)).c_str() : "");
      first = false;
    }
    return kOk;
  });
}

}  // namespace portier::cli
