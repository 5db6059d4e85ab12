// Which listening ports are really reachable: every listening socket checked against the
// loaded ruleset, from each zone and from anywhere, with the rule that decides.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "explain.h"
#include "listening_sockets.h"
#include "policy.h"
#include "ruleset.h"

namespace portier {

struct ZoneVerdict {
  std::string zone;        // a zone name, or "anywhere" (an interface in no zone)
  bool accepted = false;   // a new connection from there would be accepted
  std::string decided_by;  // the rule or default that decides (explain_packet)
};

struct PortExposure {
  ListeningSocket socket;
  std::string scope;  // wildcard, loopback or address (bound to one address)
  std::vector<ZoneVerdict> zones;
  /// Exposure beyond what the policy meant, in sentences: a port a [[bind]] ties to a
  /// unit, cgroup or user served by someone else, ...
  std::vector<std::string> warnings;
};

/// The exposure of each socket under `ruleset` (what the kernel has) and `policy` (for
/// zones and binds), for this network namespace's addresses (getifaddrs).
std::vector<PortExposure> port_exposure(const ir::Ruleset& ruleset, const Policy& policy,
                                        const std::vector<ListeningSocket>& sockets);

/// How a packet is followed through the ruleset: explain_packet, or a stand-in in tests.
using Explainer = std::function<ExplainResult(const ir::Ruleset&, const PacketShape&)>;

/// port_exposure without I/O: `host_addresses` are the addresses of this host (those of
/// loopback left out) that a wildcard socket answers on; a connection to any of them counts.
std::vector<PortExposure> port_exposure(const ir::Ruleset& ruleset, const Policy& policy,
                                        const std::vector<ListeningSocket>& sockets,
                                        const std::vector<ir::Address>& host_addresses,
                                        const Explainer& explain);

}  // namespace portier
