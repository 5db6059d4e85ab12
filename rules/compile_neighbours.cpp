#include "compile_neighbours.h"

#include <algorithm>

#include "neighbours.h"

namespace portier {
namespace {

// Exact interface names of the policy's own zones that `wildcard` (ending in '*') covers.
std::vector<std::string> covered_names(const Policy& policy, const std::string& wildcard) {
  const std::string prefix = wildcard.substr(0, wildcard.size() - 1);
  std::vector<std::string> names;
  for (const Zone& zone : policy.zones) {
    if (!zone.stack.empty()) continue;
    for (const std::string& name : zone.interfaces)
      if (!name.ends_with('*') && name.starts_with(prefix)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

}  // namespace

std::vector<Segment> neighbour_segments(const Policy& policy, const Zone& zone, bool outgoing) {
  std::vector<Segment> segments = interface_segments(zone, outgoing);
  for (Segment& segment : segments) {
    const auto& names = std::get<ir::InterfaceNameIn>(segment.front()).names;
    if (names.size() != 1 || !names.front().ends_with('*')) continue;
    std::vector<std::string> excluded = covered_names(policy, names.front());
    if (!excluded.empty())
      segment.push_back(ir::InterfaceNameIn{outgoing, std::move(excluded), true});
  }
  return segments;
}

std::vector<Segment> neighbour_segments(const Policy& policy, bool outgoing) {
  ir::InterfaceNameIn exact{outgoing, {}, false};
  std::vector<Segment> wildcards;
  for (const Zone* zone : neighbour_zones(policy))
    for (Segment& segment : neighbour_segments(policy, *zone, outgoing)) {
      auto& first = std::get<ir::InterfaceNameIn>(segment.front());
      if (segment.size() == 1 && !(first.names.size() == 1 && first.names.front().ends_with('*')))
        exact.names.insert(exact.names.end(), first.names.begin(), first.names.end());
      else
        wildcards.push_back(std::move(segment));
    }
  std::sort(exact.names.begin(), exact.names.end());
  exact.names.erase(std::unique(exact.names.begin(), exact.names.end()), exact.names.end());
  std::vector<Segment> segments;
  if (!exact.names.empty()) segments.push_back({std::move(exact)});
  segments.insert(segments.end(), std::make_move_iterator(wildcards.begin()),
                  std::make_move_iterator(wildcards.end()));
  return segments;
}

std::vector<std::vector<ir::Match>> published_alternatives(const std::vector<ir::Match>& matches) {
  std::vector<std::vector<ir::Match>> alternatives{{}};
  for (const ir::Match& match : matches) {
    if (std::holds_alternative<ir::SocketUid>(match) ||
        std::holds_alternative<ir::SocketCgroup>(match) ||
        std::holds_alternative<ir::SocketTransparent>(match))
      return {};
    if (const auto* in_set = std::get_if<ir::AddressInSet>(&match); in_set && in_set->destination)
      return {};
    if (const auto* ports = std::get_if<ir::DestPortIn>(&match)) {
      std::vector<std::vector<ir::Match>> widened;
      for (const auto& alternative : alternatives)
        for (const ir::PortRange& range : ports->ports) {
          widened.push_back(alternative);
          widened.back().push_back(ir::CtOriginalDestPort{range});
        }
      alternatives = std::move(widened);
      continue;
    }
    const bool port_follows = std::any_of(&match + 1, matches.data() + matches.size(),
                                          [](const ir::Match& later) {
                                            return std::holds_alternative<ir::DestPortIn>(later);
                                          });
    if (const auto* l4 = std::get_if<ir::L4ProtoIn>(&match);
        l4 && l4->protocols.size() > 1 && port_follows) {
      // nft 1.0.6 can type `ct original proto-dst` only after a single protocol (after a
      // set lookup it refuses the text), and anonymous sets are what makes a big table
      // load slowly (protocol_sets.h): one alternative per protocol instead.
      std::vector<std::vector<ir::Match>> widened;
      for (const auto& alternative : alternatives)
        for (ir::L4Proto protocol : l4->protocols) {
          widened.push_back(alternative);
          widened.back().push_back(ir::L4ProtoIn{{protocol}});
        }
      alternatives = std::move(widened);
      continue;
    }
    ir::Match translated = match;
    if (const auto* address = std::get_if<ir::AddressIn>(&match); address && address->destination)
      translated = ir::CtOriginalAddressIn{address->family, address->ranges};
    for (auto& alternative : alternatives) alternative.push_back(translated);
  }
  return alternatives;
}

std::vector<std::vector<ir::Match>> guest_service_matches(const NeighbourStack& stack) {
  std::vector<ir::PortRange> udp;
  if (stack.host_dns) udp.push_back({53, 53});
  if (stack.host_dhcp) {
    udp.push_back({67, 67});
    udp.push_back({547, 547});
  }
  std::vector<std::vector<ir::Match>> services;
  if (!udp.empty())
    services.push_back({ir::L4ProtoIn{{ir::L4Proto::udp}}, ir::DestPortIn{std::move(udp)}});
  if (stack.host_dns)
    services.push_back({ir::L4ProtoIn{{ir::L4Proto::tcp}}, ir::DestPortIn{{{53, 53}}}});
  return services;
}

std::string guest_service_comment(const std::string& zone, const NeighbourStack& stack) {
  std::string what;
  if (stack.host_dhcp) what = "dhcp";
  if (stack.host_dns) what += what.empty() ? "dns" : ", dns";
  return zone + " guests: " + what;
}

}  // namespace portier
