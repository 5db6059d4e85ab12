// set add|del|list: elements of the policy's named sets at run time.
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "daemon_client.h"
#include "output.h"

namespace portier::cli {

std::optional<std::uint32_t> parse_duration(std::string_view text);

int set(Args args) {
  if (args.size() < 2) return usage_error("set", "needs add|del|list and a SET name");
  std::string_view action = args[0];
  std::string name = args[1];
  std::vector<std::string> elements;
  std::optional<std::uint32_t> timeout;
  for (std::size_t i = 2; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--timeout") {
      timeout = i + 1 < args.size() ? parse_duration(args[++i]) : std::nullopt;
      if (!timeout) return usage_error("set", "--timeout takes a duration such as 90s, 30m or 1h");
    } else if (arg == "-") {
      // Elements from standard input, one per line, for thousands at once.
      char line[256];
      while (std::fgets(line, sizeof line, stdin)) {
        std::string element = line;
        while (!element.empty() && (element.back() == '\n' || element.back() == '\r' || element.back() == ' '))
          element.pop_back();
        if (!element.empty() && element[0] != '#') elements.push_back(element);
      }
    } else {
      elements.emplace_back(arg);
    }
  }
  if (action == "list") {
    bool json = elements.size() == 1 && elements[0] == "--json";
    if (!elements.empty() && !json) return usage_error("set", "list takes only the SET name (and --json)");
    return with_daemon([&](DaemonClient& daemon) {
      auto listed = daemon.ListSetElements(name);
      if (json) {
        std::printf("%s\n", Json().values(listed).str().c_str());
        return kOk;
      }
      for (const std::string& element : listed) std::printf("%s\n", element.c_str());
      return kOk;
    });
  }
  if (action != "add" && action != "del") return usage_error("set", "the action is add, del or list");
  if (elements.empty()) return usage_error("set", "give at least one ELEMENT (or - to read them from stdin)");
  return with_daemon([&](DaemonClient& daemon) {
    if (action == "add") {
      Options options;
      if (timeout) options.emplace("timeout_seconds", sdbus::Variant(*timeout));
      daemon.AddSetElements(name, elements, options);
    } else {
      daemon.RemoveSetElements(name, elements);
    }
    std::printf("%s %zu element%s %s set %s\n", action == "add" ? "added" : "removed", elements.size(),
                elements.size() == 1 ? "" : "s", action == "add" ? "to" : "from", name.c_str());
    return kOk;
  });
}

}  // namespace portier::cli
