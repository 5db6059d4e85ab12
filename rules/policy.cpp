#include "policy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <utility>

namespace portier {
namespace {

template <typename Items>
auto find_named(Items& items, std::string_view name) -> decltype(&items[0]) {
  auto it = std::find_if(items.begin(), items.end(), [&](const auto& item) { return item.name == name; });
  return it == items.end() ? nullptr : &*it;
}

}  // namespace

const Rule* Policy::find_rule(std::string_view name) const { return find_named(rules, name); }
Rule* Policy::find_rule(std::string_view name) { return find_named(rules, name); }
const Zone* Policy::find_zone(std::string_view name) const { return find_named(zones, name); }
const NamedSet* Policy::find_set(std::string_view name) const { return find_named(sets, name); }
Forward* Policy::find_forward(std::string_view name) { return find_named(forwards, name); }

std::string_view to_string(Action action) {
  switch (action) {
    case Action::accept: return "accept";
    case Action::drop: return "drop";
    case Action::reject: return "reject";
  }
  return "?";
}

std::string_view to_string(Direction direction) {
  switch (direction) {
    case Direction::in: return "in";
    case Direction::out: return "out";
    case Direction::forward: return "forward";
  }
  return "?";
}

std::string_view to_string(Protocol protocol) {
  switch (protocol) {
    case Protocol::tcp: return "tcp";
    case Protocol::udp: return "udp";
    case Protocol::icmp: return "icmp";
    case Protocol::icmpv6: return "icmpv6";
    case Protocol::sctp: return "sctp";
  }
  return "?";
}

std::optional<Cidr> parse_cidr(std::string_view text) {
  Cidr result;
  std::string address(text.substr(0, text.find('/')));
  if (inet_pton(AF_INET, address.c_str(), result.bytes.data()) == 1)
    result.family = Family::ipv4;
  else if (inet_pton(AF_INET6, address.c_str(), result.bytes.data()) == 1)
    result.family = Family::ipv6;
  else
    return std::nullopt;
  const unsigned bits = static_cast<unsigned>(result.size() * 8);
  result.prefix = static_cast<std::uint8_t>(bits);
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    std::string_view prefix = text.substr(slash + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(prefix.data(), prefix.data() + prefix.size(), value);
    if (ec != std::errc() || end != prefix.data() + prefix.size() || value > bits) return std::nullopt;
    result.prefix = static_cast<std::uint8_t>(value);
  }
  for (unsigned bit = result.prefix; bit < bits; ++bit)
    if (result.bytes[bit / 8] & (0x80 >> (bit % 8))) return std::nullopt;
  return result;
}

std::string to_string(const Cidr& cidr) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(cidr.family == Family::ipv4 ? AF_INET : AF_INET6, cidr.bytes.data(), text, sizeof text);
  std::string result = text;
  if (cidr.prefix != cidr.size() * 8) result += '/' + std::to_string(cidr.prefix);
  return result;
}

static std::string describe_endpoints(const std::vector<Endpoint>& endpoints) {
  std::string text;
  for (const Endpoint& endpoint : endpoints) {
    if (!text.empty()) text += ',';
    switch (endpoint.kind) {
      case Endpoint::Kind::zone: text += endpoint.name; break;
      case Endpoint::Kind::set: text += '@' + endpoint.name; break;
      case Endpoint::Kind::network: text += to_string(endpoint.network); break;
    }
  }
  return text;
}

static std::string describe_protocols_and_ports(const std::vector<Protocol>& protocols,
                                                const std::vector<PortRange>& ports) {
  std::string text;
  for (std::size_t i = 0; i < protocols.size(); ++i) {
    if (i > 0) text += ',';
    text += to_string(protocols[i]);
  }
  if (text.empty()) text = "any";
  if (!ports.empty()) {
    text += ' ';
    for (std::size_t i = 0; i < ports.size(); ++i) {
      if (i > 0) text += ',';
      text += std::to_string(ports[i].first);
      if (ports[i].last != ports[i].first) text += '-' + std::to_string(ports[i].last);
    }
  }
  return text;
}

std::string describe_forward(const Forward& forward) {
  std::string target = to_string(forward.to_address);
  if (forward.to_address.family == Family::ipv6 && forward.to_port) target = '[' + target + ']';
  if (forward.to_port) target += ':' + std::to_string(*forward.to_port);
  return describe_protocols_and_ports(forward.protocols, forward.ports) + " from " + forward.from +
         " to " + target;
}

std::string describe_match(const Rule& rule) {
  std::string text = describe_protocols_and_ports(rule.protocols, rule.ports);
  if (!rule.from.empty()) text += " from " + describe_endpoints(rule.from);
  if (!rule.to.empty()) text += " to " + describe_endpoints(rule.to);
  if (!rule.user_name.empty()) text += " user " + rule.user_name;
  if (!rule.unit.empty()) text += " unit " + rule.unit;
  return text;
}

}  // namespace portier
