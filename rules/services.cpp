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
    } else if (proto == "sctp") {
      protocol = Protocol::sctp;
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

UserTable UserTable::parse(std::string_view text) {
  UserTable table;
  std::istringstream lines{std::string(text)};
  std::string line;
  while (std::getline(lines, line)) {
    auto first = line.find(':');
    if (first == std::string::npos || first == 0) continue;
    auto second = line.find(':', first + 1);
    if (second == std::string::npos) continue;
    auto third = line.find(':', second + 1);
    std::string_view uid_text = std::string_view(line).substr(second + 1, third - second - 1);
    std::uint32_t uid = 0;
    auto [end, ec] = std::from_chars(uid_text.data(), uid_text.data() + uid_text.size(), uid);
    if (ec != std::errc() || end != uid_text.data() + uid_text.size()) continue;
    table.uids_.emplace(line.substr(0, first), uid);
  }
  return table;
}

UserTable UserTable::load(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return parse(text.str());
}

std::optional<std::uint32_t> UserTable::uid(std::string_view name) const {
  auto it = uids_.find(name);
  if (it == uids_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> UserTable::names() const {
  std::vector<std::string> result;
  for (const auto& [name, uid] : uids_) result.push_back(name);
  return result;
}

}  // namespace portier
