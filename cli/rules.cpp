#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "daemon_client.h"

namespace portier::cli {

int rules(Args args) {
  if (!args.empty()) return usage_error("rules", "takes no arguments");
  return with_daemon([](DaemonClient& daemon) {
    std::vector<std::vector<std::string>> table = {
        {"NAME", "STATE", "DIRECTION", "ACTION", "PACKETS", "BYTES", "MATCH"}};
    for (const auto& rule : daemon.ListRules()) {
      table.push_back({rule.get<0>(), rule.get<1>() ? "enabled" : "disabled", rule.get<2>(),
                       rule.get<3>(), std::to_string(rule.get<5>()), std::to_string(rule.get<6>()),
                       rule.get<4>()});
    }
    std::vector<std::size_t> widths(table[0].size(), 0);
    for (const auto& row : table)
      for (std::size_t column = 0; column < row.size(); ++column)
        widths[column] = std::max(widths[column], row[column].size());
    for (const auto& row : table) {
      std::string line;
      for (std::size_t column = 0; column < row.size(); ++column) {
        line += row[column];
        if (column + 1 < row.size()) line += std::string(widths[column] - row[column].size() + 2, ' ');
      }
      std::printf("%s\n", line.c_str());
    }
    return kOk;
  });
}

}  // namespace portier::cli
