// Explaining the ruleset: which rule decides a packet of a given shape, and the verdict,
// by evaluating the compiled IR the way the kernel would (no kernel needed).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "policy.h"
#include "ruleset.h"

namespace portier {

/// What is known of a packet: enough to follow it through portier's chains.
struct PacketShape {
  Direction direction = Direction::in;  // which base chain: input, output or forward
  ir::Family family = ir::Family::ipv4;
  std::optional<ir::L4Proto> protocol;  // nullopt: something without ports or types
  std::optional<ir::Address> source;
  std::optional<ir::Address> destination;
  std::uint16_t source_port = 0;
  std::uint16_t destination_port = 0;
  std::uint8_t icmp_type = 8;   // for icmp/icmpv6; 8 is echo-request
  std::string in_interface;     // input and forward
  std::string out_interface;    // output and forward
  std::uint32_t ct_state = ir::ct_new;  // conntrack state bit of the packet
  /// The local socket the packet belongs to (for socket cgroupv2 / meta skuid); none:
  /// such matches do not match.
  std::optional<std::string> socket_cgroup;  // path under the cgroup2 root
  std::optional<std::uint32_t> socket_uid;
  /// A connection another table DNATed (a published container port): where it was going
  /// before NAT, for `ct status dnat` and `ct original ...`. None: not NATed.
  struct Original {
    std::optional<ir::Address> destination;
    std::uint16_t destination_port = 0;
  };
  std::optional<Original> dnat_original;
};

struct ExplainResult {
  std::string verdict;  // accept, drop or reject
  std::string decided_by;  // the policy rule or forward name (rule_owner), or a description
                           // of the fixed rule or default that decided ("default input",
                           // "loopback", "established,related", "chain policy")
  std::string chain;       // where the deciding rule is
  std::vector<std::string> trace;  // each rule that matched on the way, rendered as nft text
};

/// Follows `packet` through `ruleset` from the base chain of its direction (jumps, gotos,
/// verdict maps, the chain policy), as the kernel evaluates it. Limits and meters count
/// as not exceeded; log and counter statements do not change the outcome.
ExplainResult explain_packet(const ir::Ruleset& ruleset, const PacketShape& packet);

/// Where the policy rule that decided `result` is written in `policy`, FILE:LINE:COL; empty
/// when a fixed rule or a default decided (they have no place in the file).
std::string decided_where(const Policy& policy, const ExplainResult& result);

/// Parses the command line shape `tcp 203.0.113.9:40000 -> 139 [in wan]` (see
/// `portierctl explain --help`); zone names are resolved to an interface of the zone via
/// `policy`. On error, the message names the offending word.
std::optional<PacketShape> parse_packet_shape(const std::vector<std::string>& words, const Policy& policy,
                                              std::string& error);

}  // namespace portier
