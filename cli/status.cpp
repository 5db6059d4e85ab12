#include <cstdio>
#include <ctime>

#include "commands.h"
#include "daemon_client.h"
#include "output.h"

namespace portier::cli {
namespace {

template <typename T>
T get_or(const std::map<std::string, sdbus::Variant>& facts, const std::string& key, T fallback) {
  auto it = facts.find(key);
  if (it == facts.end() || !it->second.containsValueOfType<T>()) return fallback;
  return it->second.get<T>();
}

std::string format_time(std::uint64_t usec) {
  std::time_t seconds = static_cast<std::time_t>(usec / 1000000);
  std::tm local{};
  localtime_r(&seconds, &local);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S %Z", &local);
  return text;
}

}  // namespace

int status(Args args) {
  bool json = args.size() == 1 && std::string_view(args[0]) == "--json";
  if (!args.empty() && !json) return usage_error("status", "takes only --json");
  return with_daemon([&](DaemonClient& daemon) {
    auto facts = daemon.GetStatus();
    // Neighbour zones with interfaces on the host (older daemons send none).
    const auto neighbours =
        get_or<std::map<std::string, std::vector<std::string>>>(facts, "neighbours", {});
    auto text = [&](const char* key) { return get_or<std::string>(facts, key, ""); };
    auto number = [&](const char* key) -> std::uint64_t {
      if (auto it = facts.find(key); it != facts.end() && it->second.containsValueOfType<uint32_t>())
        return it->second.get<uint32_t>();
      return get_or<uint64_t>(facts, key, 0);
    };
    if (json) {
      Json out;
      out.begin_object();
      for (const char* key : {"version", "policy_path", "table", "mode", "loaded_from"}) out.key(key).value(text(key));
      for (const char* key : {"rules", "rules_enabled", "timed_rules", "generation", "last_applied_usec"})
        out.key(key).value(number(key));
      if (facts.count("confirm_deadline_usec")) out.key("confirm_deadline_usec").value(number("confirm_deadline_usec"));
      out.key("neighbours").begin_object();
      for (const auto& [zone, names] : neighbours) out.key(zone).values(names);
      out.end_object();
      out.end_object();
      std::printf("%s\n", out.str().c_str());
      return kOk;
    }
    std::string mode = text("mode");
    std::printf("portierd %s: %s\n", text("version").c_str(), coloured("running", "green").c_str());
    std::printf("policy:     %s\n", text("policy_path").c_str());
    std::printf("table:      inet %s\n", text("table").c_str());
    std::printf("rules:      %llu (%llu enabled, %llu timed)\n", static_cast<unsigned long long>(number("rules")),
                static_cast<unsigned long long>(number("rules_enabled")),
                static_cast<unsigned long long>(number("timed_rules")));
    std::printf("mode:       %s\n", mode == "normal" ? mode.c_str() : coloured(mode, "yellow").c_str());
    std::printf("loaded:     %s\n", text("loaded_from").c_str());
    if (auto deadline = number("confirm_deadline_usec"))
      std::printf("confirm by: %s (or it rolls back)\n", format_time(deadline).c_str());
    std::string seen;
    for (const auto& [zone, names] : neighbours) {
      std::string list;
      for (const std::string& name : names) list += (list.empty() ? "" : ", ") + name;
      seen += (seen.empty() ? "" : "; ") + zone + " (" + list + ")";
    }
    std::printf("neighbours: %s\n", seen.empty() ? "none seen" : seen.c_str());
    std::printf("generation: %llu\n", static_cast<unsigned long long>(number("generation")));
    std::printf("applied:    %s\n", format_time(number("last_applied_usec")).c_str());
    return kOk;
  });
}

}  // namespace portier::cli
