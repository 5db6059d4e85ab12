// The packet shape of `portierctl explain`, from its words:
//   PROTO [SRC[:PORT]] -> [DST[:]]PORT [in|out|forward] [ZONE|IFACE]... [options]
// Zones stand for one of their interfaces (and, when no address is given, an address of
// their networks), so `in wan` explains what the wan zone's interface would see.
#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <string_view>

#include "diagnostic.h"
#include "explain.h"

namespace portier {
namespace {

std::optional<std::uint32_t> number(std::string_view text, std::uint32_t max) {
  std::uint32_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value > max) return std::nullopt;
  return value;
}

std::optional<ir::Address> address(std::string_view text) {
  const std::string copy(text);
  ir::Address result;
  if (inet_pton(AF_INET, copy.c_str(), result.bytes.data()) == 1) return result;
  result.family = ir::Family::ipv6;
  if (inet_pton(AF_INET6, copy.c_str(), result.bytes.data()) == 1) return result;
  return std::nullopt;
}

// One endpoint word: `1.2.3.4`, `1.2.3.4:80`, `fd00::1`, `[fd00::1]`, `[fd00::1]:80`, or
// (where a port alone is allowed) `80`.
struct Endpoint {
  std::optional<ir::Address> address;
  std::optional<std::uint16_t> port;
};

std::optional<Endpoint> endpoint(std::string_view word, bool port_alone) {
  Endpoint result;
  if (auto port = number(word, 65535)) {
    if (!port_alone) return std::nullopt;
    result.port = static_cast<std::uint16_t>(*port);
    return result;
  }
  std::string_view host = word;
  std::optional<std::string_view> port_text;
  if (word.starts_with('[')) {
    const std::size_t close = word.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = word.substr(1, close - 1);
    std::string_view rest = word.substr(close + 1);
    if (!rest.empty()) {
      if (!rest.starts_with(':')) return std::nullopt;
      port_text = rest.substr(1);
    }
  } else if (std::count(word.begin(), word.end(), ':') == 1) {
    const std::size_t colon = word.find(':');
    host = word.substr(0, colon);
    port_text = word.substr(colon + 1);
  }
  result.address = address(host);
  if (!result.address) return std::nullopt;
  if (port_text) {
    auto port = number(*port_text, 65535);
    if (!port) return std::nullopt;
    result.port = static_cast<std::uint16_t>(*port);
  }
  return result;
}

std::optional<ir::L4Proto> protocol(std::string_view word) {
  if (word == "tcp") return ir::L4Proto::tcp;
  if (word == "udp") return ir::L4Proto::udp;
  if (word == "sctp") return ir::L4Proto::sctp;
  if (word == "icmp") return ir::L4Proto::icmp;
  if (word == "icmpv6" || word == "ipv6-icmp") return ir::L4Proto::icmpv6;
  return std::nullopt;
}

// A name the kernel would take for an interface (IFNAMSIZ, no '/' or spaces).
bool plausible_interface(std::string_view word) {
  if (word.empty() || word.size() > 15) return false;
  bool digit = false;
  for (char c : word) {
    bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    digit |= c >= '0' && c <= '9';
    if (!letter && !(c >= '0' && c <= '9') && c != '-' && c != '_' && c != '.') return false;
  }
  // Without a digit, a word that is no zone and no interface of the policy is more likely
  // a misspelt zone ("wna") than an interface of this machine.
  return digit;
}

// The first address of a zone network of `family` that a host could have (the network
// address itself for /31, /32, /127, /128).
std::optional<ir::Address> zone_address(const Zone& zone, ir::Family family) {
  for (const Cidr& network : zone.networks) {
    if ((network.family == Family::ipv4) != (family == ir::Family::ipv4)) continue;
    ir::Address result;
    result.family = family;
    result.bytes = network.bytes;
    if (network.prefix + 1 < static_cast<int>(network.size() * 8)) result.bytes[network.size() - 1] |= 1;
    return result;
  }
  return std::nullopt;
}

// Where a ZONE|IFACE word puts the packet: an interface name, and the zone if it was one.
struct Place {
  std::string interface;
  const Zone* zone = nullptr;
};

std::optional<Place> place(const std::string& word, const Policy& policy, std::string& error) {
  if (const Zone* zone = policy.find_zone(word)) {
    Place result{{}, zone};
    for (const std::string& name : zone->interfaces)
      if (!name.ends_with('*')) return Place{name, zone};
    // Only wildcards: a name the first one matches.
    if (!zone->interfaces.empty()) result.interface = zone->interfaces.front().substr(0, zone->interfaces.front().size() - 1) + "0";
    return result;
  }
  if (word == "lo") return Place{word, nullptr};
  std::vector<std::string> known;
  for (const Zone& zone : policy.zones) {
    known.push_back(zone.name);
    for (const std::string& name : zone.interfaces) {
      if (name.ends_with('*') ? word.starts_with(name.substr(0, name.size() - 1)) : word == name)
        return Place{word, nullptr};
    }
  }
  if (plausible_interface(word)) return Place{word, nullptr};
  error = "unknown zone or interface '" + word + "'";
  if (std::string close = closest_match(word, known); !close.empty()) error += " (did you mean '" + close + "'?)";
  return std::nullopt;
}

}  // namespace

std::optional<PacketShape> parse_packet_shape(const std::vector<std::string>& words, const Policy& policy,
                                              std::string& error) {
  PacketShape shape;
  std::vector<std::string> positional;
  std::optional<std::uint32_t> icmp_type;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string& word = words[i];
    if (!word.starts_with("--") || word.size() == 2) {
      positional.push_back(word);
      continue;
    }
    if (word == "--established") {
      shape.ct_state = ir::ct_established;
      continue;
    }
    if (word != "--icmp-type" && word != "--uid" && word != "--cgroup") {
      error = "unknown option '" + word + "'";
      return std::nullopt;
    }
    if (i + 1 == words.size()) {
      error = "'" + word + "' needs a value";
      return std::nullopt;
    }
    const std::string& value = words[++i];
    if (word == "--cgroup") {
      // As the policy writes it (`/system.slice/x.service`) or relative to the root.
      shape.socket_cgroup = value.starts_with('/') ? value.substr(1) : value;
    } else if (auto n = number(value, word == "--uid" ? 0xffffffffu : 255u)) {
      (word == "--uid" ? shape.socket_uid : icmp_type) = *n;
    } else {
      error = "'" + value + "' is not a valid number for " + word;
      return std::nullopt;
    }
  }

  auto arrow = std::find(positional.begin(), positional.end(), "->");
  if (positional.empty()) {
    error = "no protocol: the shape starts with tcp, udp, sctp, icmp or icmpv6";
    return std::nullopt;
  }
  shape.protocol = protocol(positional[0]);
  if (!shape.protocol) {
    error = "unknown protocol '" + positional[0] + "'";
    if (std::string close = closest_match(positional[0], {"tcp", "udp", "sctp", "icmp", "icmpv6"}); !close.empty())
      error += " (did you mean '" + close + "'?)";
    return std::nullopt;
  }
  if (arrow == positional.end()) {
    error = "no '->': the shape is PROTO [SRC[:PORT]] -> [DST[:]]PORT";
    return std::nullopt;
  }
  const auto arrow_at = static_cast<std::size_t>(arrow - positional.begin());
  if (arrow_at > 2) {
    error = "unexpected '" + positional[2] + "' before '->' (one source at most)";
    return std::nullopt;
  }
  if (arrow_at == 2) {
    auto source = endpoint(positional[1], false);
    if (!source) {
      error = "'" + positional[1] + "' is not a source address (ADDRESS, ADDRESS:PORT or [IPv6]:PORT)";
      return std::nullopt;
    }
    shape.source = source->address;
    shape.source_port = source->port.value_or(0);
  }
  std::size_t at = arrow_at + 1;
  if (at == positional.size()) {
    error = "nothing after '->': give the destination port or address";
    return std::nullopt;
  }
  auto destination = endpoint(positional[at], true);
  if (!destination) {
    error = "'" + positional[at] + "' is not a destination (PORT, ADDRESS, ADDRESS:PORT or [IPv6]:PORT)";
    return std::nullopt;
  }
  ++at;
  // `DST PORT` in two words.
  if (destination->address && !destination->port && at < positional.size()) {
    if (auto port = number(positional[at], 65535)) {
      destination->port = static_cast<std::uint16_t>(*port);
      ++at;
    }
  }
  shape.destination = destination->address;
  shape.destination_port = destination->port.value_or(0);

  if (shape.source && shape.destination && shape.source->family != shape.destination->family) {
    error = "'" + positional[arrow_at + 1] + "' and '" + positional[1] + "' are of different address families";
    return std::nullopt;
  }
  if (shape.source) shape.family = shape.source->family;
  else if (shape.destination) shape.family = shape.destination->family;
  else if (shape.protocol == ir::L4Proto::icmpv6) shape.family = ir::Family::ipv6;
  // ping and ping -6 both say icmp: over IPv6 it is ICMPv6.
  if (shape.protocol == ir::L4Proto::icmp && shape.family == ir::Family::ipv6) shape.protocol = ir::L4Proto::icmpv6;
  if (shape.protocol == ir::L4Proto::icmpv6 && shape.family == ir::Family::ipv4) {
    error = "icmpv6 needs IPv6 addresses";
    return std::nullopt;
  }
  const bool icmp = shape.protocol == ir::L4Proto::icmp || shape.protocol == ir::L4Proto::icmpv6;
  if (icmp && (shape.source_port != 0 || destination->port)) {
    error = std::string(positional[0]) + " has no ports";
    return std::nullopt;
  }
  if (!icmp && !destination->port) {
    error = "no destination port for " + positional[0];
    return std::nullopt;
  }
  if (icmp_type && !icmp) {
    error = "--icmp-type is only for icmp and icmpv6";
    return std::nullopt;
  }
  shape.icmp_type = static_cast<std::uint8_t>(icmp_type.value_or(shape.protocol == ir::L4Proto::icmpv6 ? 128 : 8));

  bool direction_given = false;
  std::vector<Place> places;
  for (; at < positional.size(); ++at) {
    const std::string& word = positional[at];
    if (!direction_given && places.empty() && (word == "in" || word == "out" || word == "forward")) {
      shape.direction = word == "in" ? Direction::in : word == "out" ? Direction::out : Direction::forward;
      direction_given = true;
      continue;
    }
    const std::size_t allowed = shape.direction == Direction::forward ? 2 : 1;
    if (places.size() == allowed) {
      error = "unexpected '" + word + "' (" +
              (allowed == 2 ? "forward takes FROM and TO zones or interfaces" : "one zone or interface") + ")";
      return std::nullopt;
    }
    auto found = place(word, policy, error);
    if (!found) return std::nullopt;
    places.push_back(*found);
  }
  // Each place is where the packet comes from (in, forward's first) or goes to.
  for (std::size_t i = 0; i < places.size(); ++i) {
    const bool outgoing = shape.direction == Direction::out || i == 1;
    (outgoing ? shape.out_interface : shape.in_interface) = places[i].interface;
    auto& address = outgoing ? shape.destination : shape.source;
    if (places[i].zone && !address) address = zone_address(*places[i].zone, shape.family);
  }
  return shape;
}

}  // namespace portier
