// Internal to the compiler: turning a rule's `from`/`to` into alternative match lists.
// One nft rule cannot say "ip saddr X or ip6 saddr Y or iifname Z", so a rule whose
// endpoints span families, sets or zones becomes several kernel rules, one per
// alternative ("segment"), each with the rule's other matches and its verdict.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "policy.h"
#include "ruleset.h"

namespace portier {

/// A list of matches that together select one part of what an endpoint list means.
using Segment = std::vector<ir::Match>;

/// What the chain being filled already knows about the packet's zone.
struct ChainZone {
  const Zone* zone = nullptr;  // the zone whose chain this is; nullptr: no zone dispatch
  bool dispatched = false;     // true in per-zone chains (input_*/forward_*)
};

/// Alternatives for where a packet comes from (`from`) or goes (`to`).
/// `outgoing`: zone interfaces match oifname (instead of iifname); `destination`:
/// addresses match daddr. An empty endpoint list gives one empty segment (anything);
/// a list that cannot match in this chain gives none.
std::vector<Segment> endpoint_segments(const Policy& policy, const std::vector<Endpoint>& endpoints,
                                       bool outgoing, bool destination, const ChainZone& chain);

/// Interface conditions of a zone: one segment with the exact names as a set, and one
/// per wildcard name (a wildcard cannot be a set element).
std::vector<Segment> interface_segments(const Zone& zone, bool outgoing);

/// Every combination of one segment from `a` and one from `b`, skipping combinations
/// that mix IPv4 and IPv6 address matches (they could never match together).
std::vector<Segment> combine(const std::vector<Segment>& a, const std::vector<Segment>& b);

/// Protocol and port matches of a rule, forward or bind.
std::vector<ir::Match> protocol_matches(const std::vector<Protocol>& protocols,
                                        const std::vector<PortRange>& ports, bool source_port);

ir::L4Proto l4proto(Protocol protocol);

}  // namespace portier
