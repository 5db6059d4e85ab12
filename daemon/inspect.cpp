#include "inspect.h"

#include "firewall.h"

namespace portier {
namespace {

std::string address_text(const ir::Address& address) {
  Cidr cidr;
  cidr.family = address.family == ir::Family::ipv4 ? Family::ipv4 : Family::ipv6;
  cidr.bytes = address.bytes;
  cidr.prefix = static_cast<std::uint8_t>(cidr.size() * 8);
  return to_string(cidr);
}

// 172.17.0.2:80, [fd00::2]:443
std::string endpoint(const ir::Address& address, std::uint16_t port) {
  const std::string text = address_text(address);
  return (address.family == ir::Family::ipv6 ? "[" + text + "]" : text) + ":" +
         std::to_string(port);
}

const char* family_name(ir::Family family) { return family == ir::Family::ipv4 ? "ipv4" : "ipv6"; }

}  // namespace

PacketExplanation explain_shape(PacketShape shape, const ir::Ruleset& ruleset, const Policy& policy,
                                const std::vector<PublishedPort>& published,
                                const std::vector<HostNetwork>& networks) {
  PacketExplanation explanation;
  if (auto dnat = as_published(shape, published, networks)) {
    explanation.published = "DNAT to " +
                            endpoint(dnat->second.target, dnat->first.destination_port) + " by " +
                            dnat->second.table + " " + dnat->second.chain;
    shape = dnat->first;
  }
  ExplainResult result = explain_packet(ruleset, shape);
  explanation.where = decided_where(policy, result);
  explanation.verdict = std::move(result.verdict);
  explanation.decided_by = std::move(result.decided_by);
  explanation.chain = std::move(result.chain);
  explanation.trace = std::move(result.trace);
  return explanation;
}

PacketExplanation explain_in_force(const Firewall& firewall,
                                   const std::vector<std::string>& words) {
  const Policy policy = firewall.policy_in_force();
  std::string error;
  auto shape = parse_packet_shape(words, policy, error);
  if (!shape) throw InvalidRequest(error);
  // Only a packet shape is worth a dump of the other tables' rules.
  return explain_shape(std::move(*shape), firewall.loaded_ruleset(), policy,
                       firewall.published_ports(), host_networks());
}

std::vector<PortEntry> port_entries(const std::vector<PortExposure>& listeners,
                                    const std::vector<PublishedExposure>& published) {
  std::vector<PortEntry> entries;
  entries.reserve(listeners.size() + published.size());
  for (const PortExposure& exposure : listeners) {
    const ListeningSocket& socket = exposure.socket;
    PortEntry& entry = entries.emplace_back();
    entry.protocol = socket.protocol == ir::L4Proto::udp ? "udp" : "tcp";
    entry.family = family_name(socket.family);
    entry.address = address_text(socket.address);
    entry.port = socket.port;
    entry.scope = exposure.scope;
    entry.zones = exposure.zones;
    entry.warnings = exposure.warnings;
    entry.pid = socket.pid;
    entry.process = socket.process;
    entry.uid = socket.uid;
    entry.user = socket.user;
    entry.unit = socket.unit;
    entry.cgroup = socket.cgroup;
  }
  for (const PublishedExposure& exposure : published) {
    const PublishedPort& port = exposure.port;
    PortEntry& entry = entries.emplace_back();
    entry.published = true;
    entry.protocol = ir::protocol_name(port.protocol);
    entry.family = family_name(port.family);
    // The rule's destination address, or all zero: any.
    entry.address =
        address_text(port.destination ? port.destination->first : ir::Address{port.family, {}});
    entry.port = port.ports.first;
    entry.port_last = port.ports.last;
    entry.scope = exposure.scope;
    entry.zones = exposure.zones;
    entry.warnings = exposure.warnings;
    // Without a port of its own, the DNAT keeps the port the connection came to.
    entry.target =
        endpoint(port.target, port.target_ports ? port.target_ports->first : port.ports.first);
    entry.via = exposure.via;
    entry.published_by = port.table + " " + port.chain;
    entry.comment = port.comment;
  }
  return entries;
}

std::vector<PortEntry> ports_in_force(const Firewall& firewall) {
  const Policy policy = firewall.policy_in_force();
  const ir::Ruleset ruleset = firewall.loaded_ruleset();
  return port_entries(port_exposure(ruleset, policy, list_listening_sockets()),
                      published_exposure(ruleset, policy, firewall.published_ports()));
}

}  // namespace portier
