// The two questions about the ruleset in force that portierd answers as they are asked:
// which rule decides a packet of a given shape (Explain), and which ports are open to whom
// (ListPorts). Each is one call that gathers what it needs (the loaded ruleset, the policy,
// the ports other tables publish, the host's sockets and addresses) and returns plain
// values; the D-Bus adaptor only turns those into its a{sv}.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "exposure.h"

namespace portier {

class Firewall;

/// What Explain returns.
struct PacketExplanation {
  std::string verdict;
  std::string decided_by;
  std::string chain;
  std::string
      where;  // FILE:LINE:COL of the deciding policy rule; empty for fixed rules and defaults
  std::vector<std::string> trace;
  std::string published;  // "DNAT to 172.17.0.2:80 by ip nat DOCKER", or empty
};

/// Explains the packet shape `words` (`tcp 203.0.113.9:40000 -> 139 in wan`) under the
/// ruleset the kernel has. A connection to a port another table publishes is DNATed before
/// portier sees it: it is followed as that DNATed connection, on forward. Throws
/// InvalidRequest when `words` are not a packet shape.
PacketExplanation explain_in_force(const Firewall& firewall, const std::vector<std::string>& words);

/// explain_in_force without I/O, for a shape parse_packet_shape read against `policy`:
/// the ports other tables publish and the host's networks (for as_published), given.
PacketExplanation explain_shape(PacketShape shape, const ir::Ruleset& ruleset, const Policy& policy,
                                const std::vector<PublishedPort>& published,
                                const std::vector<HostNetwork>& networks);

/// One entry of ListPorts: a listening socket, or a port another table publishes.
struct PortEntry {
  bool published = false;  // kind: published (true) or listener
  std::string protocol;    // tcp, udp (sctp for a published port)
  std::string family;      // ipv4, ipv6
  std::string address;     // the bound address; for a published port its destination, all zero: any
  std::uint16_t port = 0;
  std::string scope;  // wildcard, loopback or address
  std::vector<ZoneVerdict> zones;
  std::vector<std::string> warnings;
  // A listener's owner.
  std::uint32_t pid = 0;
  std::string process;
  std::uint32_t uid = 0;
  std::string user;
  std::string unit;
  std::string cgroup;
  // A published port.
  std::uint16_t port_last = 0;  // the last port of a range (port itself if one)
  std::string target;           // 172.17.0.2:80, [fd00::2]:443
  std::string via;              // the host's interface the target is on, or empty
  std::string published_by;     // ip nat DOCKER
  std::string comment;
};

/// Every listening TCP and bound UDP socket of this network namespace with its exposure
/// under the ruleset in force, then every port other tables publish.
std::vector<PortEntry> ports_in_force(const Firewall& firewall);

/// ports_in_force without I/O: the exposures, as entries.
std::vector<PortEntry> port_entries(const std::vector<PortExposure>& listeners,
                                    const std::vector<PublishedExposure>& published);

}  // namespace portier
