#include "services.h"

#include <charconv>
#include <fstream>
#include <sstream>

namespace portier {

ServiceTable ServiceTable::parse(std::string_view text) {
  ServiceTable table;
  std::istringstream lines{std::string(text)};
  std::string line;
  while (std::getline(lines, line)) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    std::string name, port_and_proto;
    if (!(words >> name >> port_and_proto)) continue;
    auto slash = port_and_proto.find('/');
    if (slash == std::string::npos) continue;
    std::string_view proto = std::string_view(port_and_proto).substr(slash + 1);
    Protocol protocol;
    if (proto == "tcp") {
      protocol = Protocol::tcp;
    } else if (proto == "udp") {
      protocol = Protocol::udp;
    } else {
      continue;
    }
    std::uint16_t port = 0;
    auto [end, ec] = std::from_chars(port_and_proto.data(), port_and_proto.data() + slash, port);
    if (ec != std::errc() || end != port_and_proto.data() + slash) continue;
    // The first line naming a service wins, as getservbyname() does.
    table.ports_.emplace(std::pair{name, protocol}, port);
    std::string alias;
    while (words >> alias) table.ports_.emplace(std::pair{alias, protocol}, port);
  }
  return table;
}

ServiceTable ServiceTable::load(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return parse(text.str());
}

std::optional<std::uint16_t> ServiceTable::port(std::string_view name, Protocol protocol) const {
  auto it = ports_.find(std::pair{std::string(name), protocol});
  if (it == ports_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> ServiceTable::names(Protocol protocol) const {
  std::vector<std::string> result;
  for (const auto& [key, port] : ports_)
    if (key.second == protocol) result.push_back(key.first);
  return result;
}

}  // namespace portier
