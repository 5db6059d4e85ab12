// The exposure report: for each socket and each place a connection could come from, a
// packet of the right shape is followed through the loaded ruleset (explain_packet).
#include "exposure.h"

#include "cgroup_owner.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <bit>
#include <functional>
#include <cstring>
#include <memory>
#include <optional>

#include "compile_policy.h"

namespace portier {
namespace {

constexpr const char* kAnywhere = "anywhere";
// A client's ephemeral port; no policy rule looks at source ports of inbound connections
// in a way that one arbitrary choice could mislead.
constexpr std::uint16_t kClientPort = 40000;

ir::Address address_of(ir::Family family, std::initializer_list<std::uint8_t> bytes) {
  ir::Address address;
  address.family = family;
  std::copy(bytes.begin(), bytes.end(), address.bytes.begin());
  return address;
}

std::size_t address_size(ir::Family family) { return family == ir::Family::ipv4 ? 4 : 16; }

bool is_zero(const ir::Address& address) {
  return std::all_of(
      address.bytes.begin(),
      address.bytes.begin() + static_cast<std::ptrdiff_t>(address_size(address.family)),
      [](std::uint8_t byte) { return byte == 0; });
}

// ::ffff:a.b.c.d as a.b.c.d: an IPv6 socket bound to such an address takes IPv4 only.
std::optional<ir::Address> mapped_ipv4(const ir::Address& address) {
  if (address.family != ir::Family::ipv6) return std::nullopt;
  static constexpr std::uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(address.bytes.data(), prefix, sizeof prefix) != 0) return std::nullopt;
  ir::Address v4;
  v4.family = ir::Family::ipv4;
  std::copy(address.bytes.begin() + 12, address.bytes.end(), v4.bytes.begin());
  return v4;
}

bool is_loopback(const ir::Address& address) {
  if (auto v4 = mapped_ipv4(address)) return is_loopback(*v4);
  if (address.family == ir::Family::ipv4) return address.bytes[0] == 127;
  return address == address_of(ir::Family::ipv6, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
}

bool in_range(const ir::Address& address, const ir::AddressRange& range) {
  return address.family == range.first.family && range.first <= address && address <= range.last;
}

// The first host of a network: its address + 1 when that is still inside (a /32 or /128
// is the host itself).
ir::Address host_in(const Cidr& network) {
  ir::AddressRange range = to_range(network);
  ir::Address host = range.first;
  for (std::size_t i = address_size(host.family); i-- > 0;)
    if (++host.bytes[i] != 0) break;
  return host <= range.last ? host : range.first;
}

// Where a connection comes from: a zone, or an interface in no zone.
struct Origin {
  std::string name;
  const Zone* zone = nullptr;  // nullptr: anywhere
  std::string interface;
};

// Everything the packets of one report share, worked out once per policy.
class Sources {
 public:
  explicit Sources(const Policy& policy) : policy_(policy) {
    for (const Zone& zone : policy.zones)
      for (const Cidr& network : zone.networks) policy_ranges_.push_back(to_range(network));
    for (const NamedSet& set : policy.sets)
      for (const Cidr& address : set.addresses) policy_ranges_.push_back(to_range(address));
    unzoned_interface_ = pick_unzoned_interface();
    // The neighbours' built-in zones are their containers and guests, not places people
    // ask about; a zone the policy writes (or renames) for them is listed.
    for (const Zone& zone : policy.zones)
      if (!zone.builtin) origins_.push_back({zone.name, &zone, zone_interface(zone)});
    origins_.push_back({kAnywhere, nullptr, unzoned_interface_});
  }

  const std::vector<Origin>& origins() const { return origins_; }

  /// The source address of a packet of `family` from `origin`; nullopt when the origin
  /// has no address of that family (a zone made of IPv4 networks only sends no IPv6).
  std::optional<ir::Address> source(const Origin& origin, ir::Family family) const {
    if (origin.zone) {
      for (const Cidr& network : origin.zone->networks)
        if ((network.family == Family::ipv4) == (family == ir::Family::ipv4))
          return host_in(network);
      if (!origin.zone->networks.empty() && origin.zone->interfaces.empty()) return std::nullopt;
    }
    return public_address(family);
  }

 private:
  // A zone's packets arrive on one of its interfaces; a wildcard stands for a name it
  // matches. A zone of networks only is not dispatched by interface: its packets come in
  // on an interface of no zone.
  std::string zone_interface(const Zone& zone) const {
    for (const std::string& name : zone.interfaces)
      if (!name.ends_with('*')) return name;
    if (!zone.interfaces.empty())
      return zone.interfaces.front().substr(0, zone.interfaces.front().size() - 1) + "0";
    return unzoned_interface_;
  }

  bool zoned(const std::string& interface) const {
    for (const Zone& zone : policy_.zones)
      for (const std::string& name : zone.interfaces)
        if (name == interface ||
            (name.ends_with('*') && interface.starts_with(name.substr(0, name.size() - 1))))
          return true;
    return false;
  }

  std::string pick_unzoned_interface() const {
    for (std::string name : {"ext0", "uplink0", "unzoned0"})
      if (!zoned(name)) return name;
    for (int i = 0;; ++i)
      if (std::string name = "x" + std::to_string(i); !zoned(name)) return name;
  }

  // "Anywhere": a documentation address (RFC 5737 / RFC 3849) that no zone network and no
  // named set of the policy covers, so that no zone's or set's rules claim it.
  ir::Address public_address(ir::Family family) const {
    const std::vector<ir::Address> candidates =
        family == ir::Family::ipv4
            ? std::vector{address_of(family, {203, 0, 113, 9}),
                          address_of(family, {198, 51, 100, 9}), address_of(family, {192, 0, 2, 9}),
                          address_of(family, {100, 64, 7, 9})}
            : std::vector{
                  address_of(family, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9}),
                  address_of(family,
                             {0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9}),
                  address_of(family, {0x3f, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9})};
    for (const ir::Address& candidate : candidates)
      if (std::none_of(policy_ranges_.begin(), policy_ranges_.end(),
                       [&](const ir::AddressRange& range) { return in_range(candidate, range); }))
        return candidate;
    return candidates.front();
  }

  const Policy& policy_;
  std::vector<ir::AddressRange> policy_ranges_;
  std::string unzoned_interface_;
  std::vector<Origin> origins_;
};

struct Outcome {
  bool accepted = false;
  std::string decided_by;
};

// Socket owner as the kernel sees it when it evaluates `socket cgroupv2` and `meta skuid`.
void set_owner(PacketShape& packet, const ListeningSocket& socket) {
  packet.socket_cgroup = socket.cgroup;
  packet.socket_uid = socket.uid;
}

// One connection from `source` on `interface` to `destination`. TCP also needs its answer
// to leave: a [[bind]] with a user drops a SYN-ACK sent by anyone else on the way out.
// For UDP the datagram reaching the socket is the exposure, whatever happens to replies.
Outcome connect(const ir::Ruleset& ruleset, const Explainer& explain, const ListeningSocket& socket,
                ir::Family family, const std::optional<ir::Address>& source,
                const std::optional<ir::Address>& destination, const std::string& interface) {
  PacketShape in;
  in.direction = Direction::in;
  in.family = family;
  in.protocol = socket.protocol;
  in.source = source;
  in.destination = destination;
  in.source_port = kClientPort;
  in.destination_port = socket.port;
  in.in_interface = interface;
  in.ct_state = ir::ct_new;
  set_owner(in, socket);
  ExplainResult request = explain(ruleset, in);
  if (request.verdict != "accept" || socket.protocol != ir::L4Proto::tcp)
    return {request.verdict == "accept", request.decided_by};

  PacketShape out;
  out.direction = Direction::out;
  out.family = family;
  out.protocol = socket.protocol;
  out.source = destination;
  out.destination = source;
  out.source_port = socket.port;
  out.destination_port = kClientPort;
  out.out_interface = interface;
  out.ct_state = ir::ct_established;
  set_owner(out, socket);
  ExplainResult answer = explain(ruleset, out);
  if (answer.verdict != "accept") return {false, answer.decided_by + " (on the answer)"};
  return {true, request.decided_by};
}

std::string family_name(ir::Family family) { return family == ir::Family::ipv4 ? "IPv4" : "IPv6"; }

// Which families a connection can have, each with the host's addresses it can go to.
using Targets = std::vector<std::pair<ir::Family, std::vector<std::optional<ir::Address>>>>;
// One connection attempt of `family` from `source` to `destination`.
using Attempt = std::function<Outcome(ir::Family, const std::optional<ir::Address>& source,
                                      const std::optional<ir::Address>& destination)>;

std::vector<std::optional<ir::Address>> host_of(ir::Family family,
                                                const std::vector<ir::Address>& host_addresses) {
  std::vector<std::optional<ir::Address>> found;
  for (const ir::Address& address : host_addresses)
    if (address.family == family && !is_loopback(address)) found.emplace_back(address);
  // No address of that family: still ask, with the destination unknown.
  if (found.empty()) found.emplace_back(std::nullopt);
  return found;
}

// The verdict for `origin`: accepted when a connection of any family to any of its
// destinations is, decided by the first that is.
ZoneVerdict combined_verdict(const Sources& sources, const Origin& origin, const Targets& targets,
                             const Attempt& attempt) {
  std::vector<std::pair<ir::Family, Outcome>> outcomes;
  for (const auto& [family, destinations] : targets) {
    std::optional<ir::Address> source = sources.source(origin, family);
    if (!source) {
      outcomes.push_back(
          {family, {false, origin.name + " has no " + family_name(family) + " network"}});
      continue;
    }
    Outcome outcome;
    for (const std::optional<ir::Address>& destination : destinations) {
      Outcome tried = attempt(family, source, destination);
      if (outcome.decided_by.empty() || tried.accepted) outcome = tried;
      if (tried.accepted) break;
    }
    outcomes.push_back({family, outcome});
  }

  ZoneVerdict verdict{origin.name, false, outcomes.front().second.decided_by};
  auto accepted = std::find_if(outcomes.begin(), outcomes.end(),
                               [](const auto& o) { return o.second.accepted; });
  if (accepted != outcomes.end()) {
    verdict.accepted = true;
    verdict.decided_by = accepted->second.decided_by;
    bool all = std::all_of(outcomes.begin(), outcomes.end(),
                           [](const auto& o) { return o.second.accepted; });
    if (!all) verdict.decided_by += " (" + family_name(accepted->first) + " only)";
  }
  return verdict;
}

ZoneVerdict verdict_from(const ir::Ruleset& ruleset, const Explainer& explain,
                         const Sources& sources, const Origin& origin,
                         const ListeningSocket& socket,
                         const std::vector<ir::Address>& host_addresses) {
  // Which families reach the socket, and on which of this host's addresses.
  Targets targets;
  if (auto v4 = mapped_ipv4(socket.address); v4 && !is_zero(*v4)) {
    targets.push_back({ir::Family::ipv4, {*v4}});
  } else if (!is_zero(socket.address)) {
    targets.push_back({socket.family, {socket.address}});
  } else {
    targets.push_back({socket.family, host_of(socket.family, host_addresses)});
    // An IPv6 wildcard socket without IPV6_V6ONLY also takes IPv4 (as ::ffff:a.b.c.d).
    if (socket.family == ir::Family::ipv6 && !socket.v6_only)
      targets.push_back({ir::Family::ipv4, host_of(ir::Family::ipv4, host_addresses)});
  }
  return combined_verdict(sources, origin, targets,
                          [&](ir::Family family, const std::optional<ir::Address>& source,
                              const std::optional<ir::Address>& destination) {
                            return connect(ruleset, explain, socket, family, source, destination,
                                           origin.interface);
                          });
}

bool bind_covers(const Bind& bind, const ListeningSocket& socket) {
  Protocol protocol = socket.protocol == ir::L4Proto::udp ? Protocol::udp : Protocol::tcp;
  bool protocol_ok =
      bind.protocols.empty() ||
      std::find(bind.protocols.begin(), bind.protocols.end(), protocol) != bind.protocols.end();
  bool port_ok = bind.ports.empty() ||
                 std::any_of(bind.ports.begin(), bind.ports.end(), [&](const PortRange& range) {
                   return range.first <= socket.port && socket.port <= range.last;
                 });
  return protocol_ok && port_ok;
}

std::string port_name(const ListeningSocket& socket) {
  return std::to_string(socket.port) + (socket.protocol == ir::L4Proto::udp ? "/udp" : "/tcp");
}

std::string served_by(const ListeningSocket& socket, const std::string& detail) {
  std::string text = socket.process.empty() ? "an unknown process" : socket.process;
  text += " (";
  if (socket.pid != 0) text += "pid " + std::to_string(socket.pid) + ", ";
  return text + detail + ")";
}

std::vector<std::string> bind_warnings(const Policy& policy, const ListeningSocket& socket) {
  std::vector<std::string> warnings;
  for (const Bind& bind : policy.binds) {
    if (!bind_covers(bind, socket)) continue;
    std::string owner, detail;
    const ir::CgroupOwner cgroup_owner{bind.unit, bind.cgroup};
    if (!bind.user && !owner_cgroup_in(cgroup_owner, socket.cgroup)) {
      owner = describe(cgroup_owner);
      detail = socket.cgroup.empty() ? "the root cgroup" : socket.cgroup;
    } else if (bind.user && socket.uid != *bind.user) {
      owner = "user " + (bind.user_name.empty() ? std::to_string(*bind.user) : bind.user_name);
      detail = "user " + (socket.user.empty() ? std::to_string(socket.uid) : socket.user);
    } else {
      continue;
    }
    warnings.push_back("port " + port_name(socket) + " is tied to " + owner + " by bind '" +
                       bind.name + "' but served by " + served_by(socket, detail));
  }
  return warnings;
}

// A port on every address that is open from anywhere is what a reader must not miss.
void warn_if_open_to_all(const std::string& scope, const std::vector<ZoneVerdict>& zones,
                         const std::string& what, std::vector<std::string>& warnings) {
  const ZoneVerdict& anywhere = zones.back();
  if (scope == "wildcard" && anywhere.accepted)
    warnings.push_back(what + " and is open from anywhere (" + anywhere.decided_by + ")");
}

std::string scope_of(const ListeningSocket& socket) {
  if (is_zero(socket.address)) return "wildcard";
  return is_loopback(socket.address) ? "loopback" : "address";
}

std::string port_name(const PublishedPort& port) {
  std::string name = std::to_string(port.ports.first);
  if (port.ports.last != port.ports.first) name += "-" + std::to_string(port.ports.last);
  switch (port.protocol) {
    case ir::L4Proto::udp: return name + "/udp";
    case ir::L4Proto::sctp: return name + "/sctp";
    default: return name + "/tcp";
  }
}

bool in_network(const ir::Address& address, const HostNetwork& network) {
  if (address.family != network.address.family) return false;
  for (std::size_t bit = 0; bit < network.prefix; ++bit) {
    const std::uint8_t mask = static_cast<std::uint8_t>(0x80u >> (bit % 8));
    if ((address.bytes[bit / 8] & mask) != (network.address.bytes[bit / 8] & mask)) return false;
  }
  return true;
}

// The interface a DNAT target is on: the one whose network holds it (a container on
// docker0's 172.17.0.0/16). Empty if none does.
std::string interface_of(const ir::Address& target, const std::vector<HostNetwork>& networks) {
  for (const HostNetwork& network : networks)
    if (in_network(target, network)) return network.interface;
  return {};
}

bool not_from(const PublishedPort& port, const std::string& interface) {
  return std::find(port.not_from.begin(), port.not_from.end(), interface) != port.not_from.end();
}

std::uint16_t target_port(const PublishedPort& port, std::uint16_t original) {
  if (!port.target_ports) return original;
  // A range maps onto a range port by port (Docker's -p 8000-8010:80-90).
  const unsigned offset = original - port.ports.first;
  return static_cast<std::uint16_t>(
      std::min<unsigned>(port.target_ports->first + offset, port.target_ports->last));
}

// A new connection to the published port, as portier's forward chain sees it after the
// DNAT: to the target, out on its interface, with the original destination in conntrack.
PacketShape forwarded(const PublishedPort& port, const std::string& via, ir::Family family,
                      const std::optional<ir::Address>& source,
                      const std::optional<ir::Address>& destination, std::uint16_t original_port,
                      const std::string& in_interface) {
  PacketShape packet;
  packet.direction = Direction::forward;
  packet.family = family;
  packet.protocol = port.protocol;
  packet.source = source;
  packet.destination = port.target;
  packet.source_port = kClientPort;
  packet.destination_port = target_port(port, original_port);
  packet.in_interface = in_interface;
  packet.out_interface = via;
  packet.ct_state = ir::ct_new;
  packet.dnat_original = PacketShape::Original{destination, original_port};
  return packet;
}

std::vector<std::string> published_warnings(const PublishedPort& port, const std::string& via) {
  std::vector<std::string> warnings;
  const std::string where = "rule in " + port.table + " " + port.chain;
  if (!port.unread.empty()) {
    std::string names;
    for (const std::string& name : port.unread) names += (names.empty() ? "" : ", ") + name;
    warnings.push_back("port " + port_name(port) + " is published by a " + where +
                       " with conditions portier does not read (" + names +
                       "): it may be open to fewer than shown");
  }
  if (via.empty())
    warnings.push_back("port " + port_name(port) + " is published by a " + where +
                       " to an address on no interface of this host: the verdicts assume it "
                       "goes out through no neighbour's interface");
  return warnings;
}

struct IfaddrsDeleter {
  void operator()(ifaddrs* list) const { freeifaddrs(list); }
};

std::uint8_t prefix_of(const std::uint8_t* mask, std::size_t size) {
  std::uint8_t prefix = 0;
  for (std::size_t i = 0; i < size; ++i)
    prefix = static_cast<std::uint8_t>(prefix + std::popcount(mask[i]));
  return prefix;
}

std::vector<ir::Address> local_addresses() {
  std::vector<ir::Address> addresses;
  for (const HostNetwork& network : host_networks()) addresses.push_back(network.address);
  return addresses;
}

}  // namespace

std::vector<PortExposure> port_exposure(const ir::Ruleset& ruleset, const Policy& policy,
                                        const std::vector<ListeningSocket>& sockets,
                                        const std::vector<ir::Address>& host_addresses,
                                        const Explainer& explain) {
  const Sources sources(policy);
  std::vector<PortExposure> report;
  report.reserve(sockets.size());
  for (const ListeningSocket& socket : sockets) {
    PortExposure exposure{socket, scope_of(socket), {}, bind_warnings(policy, socket)};
    for (const Origin& origin : sources.origins()) {
      if (exposure.scope == "loopback") {
        // Packets to 127.0.0.0/8 or ::1 from outside are martians the kernel drops
        // before any rule sees them.
        exposure.zones.push_back({origin.name, false, "bound to loopback"});
        continue;
      }
      exposure.zones.push_back(
          verdict_from(ruleset, explain, sources, origin, socket, host_addresses));
    }
    warn_if_open_to_all(exposure.scope, exposure.zones,
                        "port " + port_name(socket) + " listens on all addresses", exposure.warnings);
    report.push_back(std::move(exposure));
  }
  return report;
}

std::vector<PortExposure> port_exposure(const ir::Ruleset& ruleset, const Policy& policy,
                                        const std::vector<ListeningSocket>& sockets) {
  return port_exposure(ruleset, policy, sockets, local_addresses(), explain_packet);
}

}  // namespace portier

namespace portier {

std::vector<HostNetwork> host_networks() {
  ifaddrs* raw = nullptr;
  if (getifaddrs(&raw) != 0) return {};
  std::unique_ptr<ifaddrs, IfaddrsDeleter> list(raw);
  std::vector<HostNetwork> networks;
  for (const ifaddrs* entry = list.get(); entry; entry = entry->ifa_next) {
    if (!entry->ifa_addr || (entry->ifa_flags & IFF_LOOPBACK)) continue;
    HostNetwork network;
    network.interface = entry->ifa_name ? entry->ifa_name : "";
    if (entry->ifa_addr->sa_family == AF_INET) {
      network.address.family = ir::Family::ipv4;
      std::memcpy(network.address.bytes.data(),
                  &reinterpret_cast<const sockaddr_in*>(entry->ifa_addr)->sin_addr, 4);
      if (entry->ifa_netmask)
        network.prefix = prefix_of(reinterpret_cast<const std::uint8_t*>(
                                       &reinterpret_cast<const sockaddr_in*>(entry->ifa_netmask)->sin_addr),
                                   4);
    } else if (entry->ifa_addr->sa_family == AF_INET6) {
      network.address.family = ir::Family::ipv6;
      std::memcpy(network.address.bytes.data(),
                  &reinterpret_cast<const sockaddr_in6*>(entry->ifa_addr)->sin6_addr, 16);
      if (entry->ifa_netmask)
        network.prefix = prefix_of(reinterpret_cast<const std::uint8_t*>(
                                       &reinterpret_cast<const sockaddr_in6*>(entry->ifa_netmask)->sin6_addr),
                                   16);
    } else {
      continue;
    }
    networks.push_back(std::move(network));
  }
  return networks;
}

std::vector<PublishedExposure> published_exposure(const ir::Ruleset& ruleset, const Policy& policy,
                                                  const std::vector<PublishedPort>& ports,
                                                  const std::vector<HostNetwork>& networks,
                                                  const Explainer& explain) {
  const Sources sources(policy);
  std::vector<ir::Address> host_addresses;
  for (const HostNetwork& network : networks) host_addresses.push_back(network.address);
  std::vector<PublishedExposure> report;
  for (const PublishedPort& port : ports) {
    PublishedExposure exposure{port, interface_of(port.target, networks), "wildcard", {}, {}};
    exposure.warnings = published_warnings(port, exposure.via);
    Targets targets;
    if (port.destination) {
      exposure.scope = is_loopback(port.destination->first) ? "loopback" : "address";
      targets.push_back({port.family, {port.destination->first}});
    } else {
      targets.push_back({port.family, host_of(port.family, host_addresses)});
    }
    for (const Origin& origin : sources.origins()) {
      if (exposure.scope == "loopback") {
        exposure.zones.push_back({origin.name, false, "bound to loopback"});
        continue;
      }
      if (not_from(port, origin.interface)) {
        exposure.zones.push_back({origin.name, false, "not published on " + origin.interface});
        continue;
      }
      exposure.zones.push_back(combined_verdict(
          sources, origin, targets,
          [&](ir::Family family, const std::optional<ir::Address>& source,
              const std::optional<ir::Address>& destination) {
            ExplainResult result =
                explain(ruleset, forwarded(port, exposure.via, family, source, destination,
                                           port.ports.first, origin.interface));
            return Outcome{result.verdict == "accept", result.decided_by};
          }));
    }
    warn_if_open_to_all(exposure.scope, exposure.zones,
                        "port " + port_name(port) + " is published on all addresses",
                        exposure.warnings);
    report.push_back(std::move(exposure));
  }
  return report;
}

std::vector<PublishedExposure> published_exposure(const ir::Ruleset& ruleset, const Policy& policy,
                                                  const std::vector<PublishedPort>& ports) {
  return published_exposure(ruleset, policy, ports, host_networks(), explain_packet);
}

std::optional<std::pair<PacketShape, PublishedPort>> as_published(
    const PacketShape& packet, const std::vector<PublishedPort>& ports,
    const std::vector<HostNetwork>& networks) {
  // From the host itself (in lo) a DNATed connection leaves through output, not forward.
  if (packet.direction != Direction::in || packet.in_interface == "lo") return std::nullopt;
  for (const PublishedPort& port : ports) {
    if (port.family != packet.family || packet.protocol != port.protocol) continue;
    if (packet.destination_port < port.ports.first || packet.destination_port > port.ports.last)
      continue;
    if (port.destination && !(packet.destination && in_range(*packet.destination, *port.destination)))
      continue;
    if (not_from(port, packet.in_interface)) continue;
    PacketShape shape =
        forwarded(port, interface_of(port.target, networks), packet.family, packet.source,
                  packet.destination, packet.destination_port, packet.in_interface);
    shape.source_port = packet.source_port;
    shape.ct_state = packet.ct_state;
    return std::pair{shape, port};
  }
  return std::nullopt;
}

}  // namespace portier
