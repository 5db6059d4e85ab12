// The neighbours: network stacks that share the host with portier and own bridges and
// chains of their own (Docker, podman, libvirt, Kubernetes CNIs). Each is a zone, built in
// unless the policy switches it off or gives it another name or other interfaces
// (portier.toml(5), NEIGHBOURS).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "policy.h"

namespace portier {

struct NeighbourStack {
  std::string_view name;                // also the name of its built-in zone
  std::vector<std::string> interfaces;  // what it creates, out of the box
  // What its guests or containers ask the host itself for, on their bridge: libvirt's
  // dnsmasq gives leases (DHCP, DHCPv6) and DNS; podman's aardvark-dns answers DNS on the
  // bridge address of every network with DNS on (the default of `podman network create`).
  bool host_dhcp = false;
  bool host_dns = false;
};

/// docker, podman, libvirt, kubernetes.
const std::vector<NeighbourStack>& neighbour_stacks();
const NeighbourStack* find_stack(std::string_view name);

/// Adds the zones of the stacks that are on and that no zone of the policy stands for.
/// A policy zone named like a stack, or with `stack = "..."`, is that stack's zone, and
/// gets the stack's interfaces if it names none. Interfaces a policy zone names itself
/// are left out of the built-in zones. Called once the whole policy is read.
void add_neighbour_zones(Policy& policy);

/// The zones of neighbour stacks, in policy order.
std::vector<const Zone*> neighbour_zones(const Policy& policy);

/// Which of `interfaces` (the host's, by name) belong to which neighbour zone: zone name ->
/// its interfaces present, sorted; zones with none present are left out. A name a zone of
/// the policy's own names is that zone's, as in the ruleset.
std::map<std::string, std::vector<std::string>> neighbours_seen(
    const Policy& policy, const std::vector<std::string>& interfaces);

}  // namespace portier
