// Which listening ports are really reachable: every listening socket checked against the
// loaded ruleset, from each zone and from anywhere, with the rule that decides.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "explain.h"
#include "listening_sockets.h"
#include "policy.h"
#include "published_ports.h"
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

/// An address of one of this host's interfaces, with its network.
struct HostNetwork {
  std::string interface;
  ir::Address address;
  std::uint8_t prefix = 0;
};

/// A port another table publishes (a DNAT to a container), checked like a listener: a new
/// connection from each zone and from anywhere, DNATed, followed through the forward chain
/// (where portier's `published` chain applies the input rules to it).
struct PublishedExposure {
  PublishedPort port;
  std::string via;    // the host's interface the target is on (docker0); empty: not found
  std::string scope;  // wildcard, loopback or address, as for a socket
  std::vector<ZoneVerdict> zones;
  std::vector<std::string> warnings;
};

/// The exposure of each published port, for this network namespace's interfaces.
std::vector<PublishedExposure> published_exposure(const ir::Ruleset& ruleset, const Policy& policy,
                                                  const std::vector<PublishedPort>& ports);

/// published_exposure without I/O: `networks` are the host's addresses with their networks
/// (loopback left out), which tell the interface each target is on.
std::vector<PublishedExposure> published_exposure(const ir::Ruleset& ruleset, const Policy& policy,
                                                  const std::vector<PublishedPort>& ports,
                                                  const std::vector<HostNetwork>& networks,
                                                  const Explainer& explain);

/// The shape `packet` (arriving on input) takes when one of `ports` publishes its
/// destination: a new connection forwarded to the target, with the original destination
/// kept for the `ct original` matches; nullopt when no port applies. Also returns the port.
std::optional<std::pair<PacketShape, PublishedPort>> as_published(
    const PacketShape& packet, const std::vector<PublishedPort>& ports,
    const std::vector<HostNetwork>& networks);

/// This network namespace's addresses (getifaddrs), loopback left out.
std::vector<HostNetwork> host_networks();

}  // namespace portier
