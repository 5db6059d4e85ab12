// The neighbours: network stacks that share the host with portier and own bridges and
// chains of their own (Docker, podman, libvirt, Kubernetes CNIs). Each is a zone, built in
// unless the policy switches it off or gives it another name or other interfaces
// (portier.toml(5), NEIGHBOURS).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "policy.h"

namespace portier {

struct NeighbourStack {
  std::string_view name;                // also the name of its built-in zone
  std::vector<std::string> interfaces;  // what it creates, out of the box
  bool guest_services = false;          // its guests get DHCP and DNS from the host
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

}  // namespace portier
