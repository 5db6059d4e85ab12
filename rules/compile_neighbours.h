// Internal to the compiler: what the neighbour stacks (neighbours.h) add to the ruleset.
//
// - Their interfaces are not dispatched to zone chains: packets from them stay in the base
//   chains, so the policy's own rules see them first, and what no rule decides is then
//   accepted on forward (their owners' chains, at the standard priority, already decided)
//   or gets the input default (or the zone's).
// - Connections their owners DNAT to a container or guest (a published port, `ct status
//   dnat` out through one of their interfaces) are decided by the input rules, matched on
//   the destination before NAT, in the chain `published` (with `published_ZONE` per zone,
//   as input_ZONE), or accepted with [neighbours] published = "open".
#pragma once

#include <string>
#include <vector>

#include "compile_match.h"
#include "neighbours.h"
#include "policy.h"
#include "ruleset.h"

namespace portier {

inline constexpr const char* kPublishedChain = "published";
inline constexpr const char* kPublishedPrefix = "published_";

/// Interface conditions for the interfaces of all neighbour zones: their exact names as one
/// set, each wildcard alone, and with a wildcard the exact names of the policy's own zones it
/// would also cover excluded (`oifname "br-*" oifname != "br-lan"`).
std::vector<Segment> neighbour_segments(const Policy& policy, bool outgoing);

/// The same for one neighbour zone.
std::vector<Segment> neighbour_segments(const Policy& policy, const Zone& zone, bool outgoing);

/// An input rule's matches as matches on a DNATed connection's original destination:
/// `tcp dport 8080` becomes `meta l4proto tcp ct original proto-dst 8080` (one alternative
/// per port range), `ip daddr X` becomes `ct original ip daddr X`. None when the rule
/// cannot apply to a connection with no local socket (user, unit) or asks for a destination
/// set (no ct lookup of a named set here).
std::vector<std::vector<ir::Match>> published_alternatives(const std::vector<ir::Match>& matches);

/// What a stack's guests ask the host for (NeighbourStack::host_dhcp, host_dns): DHCP (67)
/// and DHCPv6 (547) from libvirt's dnsmasq, DNS (53) from it or podman's aardvark-dns. None
/// for a stack whose guests ask the host for nothing.
std::vector<std::vector<ir::Match>> guest_service_matches(const NeighbourStack& stack);

/// The comment of those rules: "libvirt guests: dhcp, dns", "podman guests: dns".
std::string guest_service_comment(const std::string& zone, const NeighbourStack& stack);

}  // namespace portier
