// allow: a rule for a while, e.g. `portierctl allow tcp/8080 --from lan --for 30m`.
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "daemon_client.h"
#include "firewall1_api.h"
#include "parse_policy.h"

namespace portier::cli {

std::optional<std::uint32_t> duration_seconds(std::string_view text) {
  Duration parsed = parse_duration(text);
  if (parsed.problem != DurationProblem::none) return std::nullopt;
  return static_cast<std::uint32_t>(parsed.value.count());
}

int allow(Args args) {
  std::vector<std::string> protocols, ports, from, to;
  std::string direction = "in";
  std::optional<std::uint32_t> duration;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= args.size()) return std::nullopt;
      return std::string(args[++i]);
    };
    if (arg == "--from" || arg == "--to") {
      auto v = value();
      if (!v) return usage_error("allow", std::string(arg) + " needs a zone, address or @set");
      (arg == "--from" ? from : to).push_back(*v);
    } else if (arg == "--for") {
      auto v = value();
      duration = v ? duration_seconds(*v) : std::nullopt;
      if (!duration) return usage_error("allow", "--for takes a duration such as 90s, 30m, 2h or 1d");
    } else if (arg == "--out") {
      direction = "out";
    } else if (!arg.empty() && arg[0] == '-') {
      return usage_error("allow", "unknown option '" + std::string(arg) + "'");
    } else {
      // PROTO/PORT or PROTO
      auto slash = arg.find('/');
      protocols.emplace_back(arg.substr(0, slash));
      if (slash != std::string_view::npos) ports.emplace_back(arg.substr(slash + 1));
    }
  }
  if (!duration) return usage_error("allow", "needs --for DURATION: a timed rule always ends");
  return with_daemon([&](DaemonClient& daemon) {
    namespace key = bus_key::timed_rule;
    Options rule{{key::kDirection, sdbus::Variant(direction)},
                 {key::kDurationSeconds, sdbus::Variant(*duration)}};
    if (!protocols.empty()) rule.emplace(key::kProtocols, sdbus::Variant(protocols));
    if (!ports.empty()) rule.emplace(key::kPorts, sdbus::Variant(ports));
    if (!from.empty()) rule.emplace(key::kFrom, sdbus::Variant(from));
    if (!to.empty()) rule.emplace(key::kTo, sdbus::Variant(to));
    std::string name = daemon.AddTimedRule(rule);
    std::printf("%s added: it removes itself in %u s\n", name.c_str(), *duration);
    return kOk;
  });
}

}  // namespace portier::cli
