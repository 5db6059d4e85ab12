#include "compile_match.h"

#include <algorithm>

#include "compile_neighbours.h"
#include "compile_policy.h"

namespace portier {
namespace {

// Address matches for a list of networks: one segment per family present.
std::vector<Segment> network_segments(const std::vector<Cidr>& networks, bool destination) {
  std::vector<ir::AddressRange> v4, v6;
  for (const Cidr& network : networks) (network.family == Family::ipv4 ? v4 : v6).push_back(to_range(network));
  std::vector<Segment> segments;
  if (!v4.empty())
    segments.push_back({ir::AddressIn{ir::Family::ipv4, destination, merge_address_ranges(v4)}});
  if (!v6.empty())
    segments.push_back({ir::AddressIn{ir::Family::ipv6, destination, merge_address_ranges(v6)}});
  return segments;
}

std::optional<ir::Family> address_family(const Segment& segment) {
  for (const ir::Match& match : segment) {
    if (const auto* in = std::get_if<ir::AddressIn>(&match)) return in->family;
    if (const auto* in_set = std::get_if<ir::AddressInSet>(&match)) return in_set->family;
  }
  return std::nullopt;
}

}  // namespace

ir::L4Proto l4proto(Protocol protocol) {
  switch (protocol) {
    case Protocol::tcp: return ir::L4Proto::tcp;
    case Protocol::udp: return ir::L4Proto::udp;
    case Protocol::icmp: return ir::L4Proto::icmp;
    case Protocol::icmpv6: return ir::L4Proto::icmpv6;
    case Protocol::sctp: return ir::L4Proto::sctp;
  }
  return ir::L4Proto::tcp;
}

std::vector<ir::Match> protocol_matches(const std::vector<Protocol>& protocols,
                                        const std::vector<PortRange>& ports, bool source_port) {
  std::vector<ir::Match> matches;
  if (protocols.empty()) return matches;
  ir::L4ProtoIn in;
  for (Protocol protocol : protocols) in.protocols.push_back(l4proto(protocol));
  std::sort(in.protocols.begin(), in.protocols.end());
  in.protocols.erase(std::unique(in.protocols.begin(), in.protocols.end()), in.protocols.end());
  matches.push_back(std::move(in));
  if (!ports.empty()) {
    if (source_port)
      matches.push_back(ir::SourcePortIn{merge_port_ranges(ports)});
    else
      matches.push_back(ir::DestPortIn{merge_port_ranges(ports)});
  }
  return matches;
}

std::vector<Segment> interface_segments(const Zone& zone, bool outgoing) {
  std::vector<Segment> segments;
  ir::InterfaceNameIn exact{outgoing, {}};
  for (const std::string& name : zone.interfaces) {
    if (name.ends_with('*'))
      segments.push_back({ir::InterfaceNameIn{outgoing, {name}}});
    else
      exact.names.push_back(name);
  }
  std::sort(exact.names.begin(), exact.names.end());
  exact.names.erase(std::unique(exact.names.begin(), exact.names.end()), exact.names.end());
  if (!exact.names.empty()) segments.insert(segments.begin(), {std::move(exact)});
  return segments;
}

std::vector<Segment> combine(const std::vector<Segment>& a, const std::vector<Segment>& b) {
  std::vector<Segment> result;
  for (const Segment& x : a) {
    for (const Segment& y : b) {
      auto fx = address_family(x);
      auto fy = address_family(y);
      if (fx && fy && *fx != *fy) continue;
      Segment both = x;
      both.insert(both.end(), y.begin(), y.end());
      result.push_back(std::move(both));
    }
  }
  return result;
}

std::vector<Segment> endpoint_segments(const Policy& policy, const std::vector<Endpoint>& endpoints,
                                       bool outgoing, bool destination, const ChainZone& chain) {
  if (endpoints.empty()) return {Segment{}};
  std::vector<Segment> segments;
  std::vector<Cidr> networks;
  for (const Endpoint& endpoint : endpoints) {
    switch (endpoint.kind) {
      case Endpoint::Kind::network:
        networks.push_back(endpoint.network);
        break;
      case Endpoint::Kind::set: {
        const NamedSet* set = policy.find_set(endpoint.name);
        if (!set || set->family == SetFamily::port) break;  // validation reported it
        // The policy's set is two kernel sets: its networks and its single addresses.
        ir::Family family = set->family == SetFamily::ipv4 ? ir::Family::ipv4 : ir::Family::ipv6;
        segments.push_back({ir::AddressInSet{family, destination, set->name}});
        segments.push_back({ir::AddressInSet{family, destination, host_set_name(set->name)}});
        break;
      }
      case Endpoint::Kind::zone: {
        const Zone* zone = policy.find_zone(endpoint.name);
        if (!zone) break;
        std::vector<Segment> by_network = zone->networks.empty()
                                              ? std::vector<Segment>{Segment{}}
                                              : network_segments(zone->networks, destination);
        if (zone->interfaces.empty()) {
          segments.insert(segments.end(), by_network.begin(), by_network.end());
        } else if (!zone->stack.empty()) {
          // A neighbour's packets are not dispatched: they are in the base chain, never in
          // another zone's chain.
          if (chain.zone == nullptr || chain.zone == zone) {
            auto both = combine(neighbour_segments(policy, *zone, outgoing), by_network);
            segments.insert(segments.end(), both.begin(), both.end());
          }
        } else if (chain.dispatched) {
          // The dispatch already chose this chain by interface: only this zone can match.
          if (chain.zone == zone) segments.insert(segments.end(), by_network.begin(), by_network.end());
        } else {
          auto both = combine(interface_segments(*zone, outgoing), by_network);
          segments.insert(segments.end(), both.begin(), both.end());
        }
        break;
      }
    }
  }
  auto by_address = network_segments(networks, destination);
  segments.insert(segments.end(), by_address.begin(), by_address.end());
  // An unconditional alternative covers all the others.
  if (std::any_of(segments.begin(), segments.end(), [](const Segment& s) { return s.empty(); }))
    return {Segment{}};
  return segments;
}

}  // namespace portier
