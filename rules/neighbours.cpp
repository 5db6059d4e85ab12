#include "neighbours.h"

#include <algorithm>

namespace portier {

const std::vector<NeighbourStack>& neighbour_stacks() {
  // Docker: its default bridge and those of `docker network create`; podman: netavark's
  // and CNI's default bridges; libvirt: its NAT and routed networks; Kubernetes: the bridge
  // of the bridge/flannel CNI plugins, flannel's VXLAN device, Calico's and Cilium's
  // per-pod and host devices, kube-router's and kube-proxy's (IPVS) devices. Docker's
  // embedded DNS and Kubernetes' cluster DNS answer inside the containers' own namespaces;
  // podman's aardvark-dns and libvirt's dnsmasq listen on the host.
  static const std::vector<NeighbourStack> stacks = {
      {"docker", {"docker0", "br-*"}, false, false},
      {"podman", {"podman*", "cni-podman*"}, false, true},
      {"libvirt", {"virbr*"}, true, true},
      {"kubernetes", {"cni0", "flannel*", "cali*", "cilium*", "kube-*"}, false, false},
  };
  return stacks;
}

const NeighbourStack* find_stack(std::string_view name) {
  for (const NeighbourStack& stack : neighbour_stacks())
    if (stack.name == name) return &stack;
  return nullptr;
}

void add_neighbour_zones(Policy& policy) {
  for (Zone& zone : policy.zones)
    if (zone.stack.empty() && find_stack(zone.name)) zone.stack = zone.name;
  // What the policy's own zones name stays theirs (say, a router's lan bridge "br-lan").
  std::vector<std::string> taken;
  for (const Zone& zone : policy.zones)
    taken.insert(taken.end(), zone.interfaces.begin(), zone.interfaces.end());
  auto free_interfaces = [&](const NeighbourStack& stack) {
    std::vector<std::string> names;
    for (const std::string& name : stack.interfaces)
      if (std::find(taken.begin(), taken.end(), name) == taken.end()) names.push_back(name);
    return names;
  };
  for (Zone& zone : policy.zones)
    if (const NeighbourStack* stack = find_stack(zone.stack); stack && zone.interfaces.empty())
      zone.interfaces = free_interfaces(*stack);
  for (const NeighbourStack& stack : neighbour_stacks()) {
    const std::string name(stack.name);
    const auto& off = policy.neighbours.off;
    if (std::find(off.begin(), off.end(), name) != off.end()) continue;
    if (std::any_of(policy.zones.begin(), policy.zones.end(),
                    [&](const Zone& zone) { return zone.stack == name || zone.name == name; }))
      continue;
    // A set of that name keeps it; validation would call the zone a duplicate.
    if (policy.find_set(name)) continue;
    Zone zone;
    zone.name = name;
    zone.stack = name;
    zone.builtin = true;
    zone.interfaces = free_interfaces(stack);
    zone.where = policy.neighbours.where;
    if (!zone.interfaces.empty()) policy.zones.push_back(std::move(zone));
  }
}

std::vector<const Zone*> neighbour_zones(const Policy& policy) {
  std::vector<const Zone*> zones;
  for (const Zone& zone : policy.zones)
    if (!zone.stack.empty() && !zone.interfaces.empty()) zones.push_back(&zone);
  return zones;
}

std::map<std::string, std::vector<std::string>> neighbours_seen(
    const Policy& policy, const std::vector<std::string>& interfaces) {
  auto matches = [](const std::string& pattern, const std::string& name) {
    return pattern.ends_with('*') ? name.starts_with(pattern.substr(0, pattern.size() - 1))
                                  : name == pattern;
  };
  std::map<std::string, std::vector<std::string>> seen;
  for (const std::string& name : interfaces) {
    bool own = false;
    for (const Zone& zone : policy.zones)
      if (zone.stack.empty())
        for (const std::string& pattern : zone.interfaces)
          own = own || (!pattern.ends_with('*') && pattern == name);
    if (own) continue;
    for (const Zone* zone : neighbour_zones(policy))
      if (std::any_of(zone->interfaces.begin(), zone->interfaces.end(),
                      [&](const std::string& pattern) { return matches(pattern, name); })) {
        seen[zone->name].push_back(name);
        break;
      }
  }
  for (auto& [zone, names] : seen) std::sort(names.begin(), names.end());
  return seen;
}

}  // namespace portier
