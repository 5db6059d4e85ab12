#include <cstdio>
#include <ctime>

#include "commands.h"
#include "daemon_client.h"

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
  if (!args.empty()) return usage_error("status", "takes no arguments");
  return with_daemon([](DaemonClient& daemon) {
    auto facts = daemon.GetStatus();
    std::printf("portierd %s: running\n", get_or<std::string>(facts, "version", "?").c_str());
    std::printf("policy:     %s\n", get_or<std::string>(facts, "policy_path", "?").c_str());
    std::printf("table:      inet %s\n", get_or<std::string>(facts, "table", "?").c_str());
    std::printf("rules:      %u (%u enabled)\n", get_or<uint32_t>(facts, "rules", 0),
                get_or<uint32_t>(facts, "rules_enabled", 0));
    std::printf("mode:       %s\n", get_or<std::string>(facts, "mode", "?").c_str());
    std::printf("loaded:     %s\n", get_or<std::string>(facts, "loaded_from", "?").c_str());
    if (auto deadline = get_or<uint64_t>(facts, "confirm_deadline_usec", 0))
      std::printf("confirm by: %s (or it rolls back)\n", format_time(deadline).c_str());
    std::printf("generation: %llu\n",
                static_cast<unsigned long long>(get_or<uint64_t>(facts, "generation", 0)));
    std::printf("applied:    %s\n",
                format_time(get_or<uint64_t>(facts, "last_applied_usec", 0)).c_str());
    return kOk;
  });
}

}  // namespace portier::cli
