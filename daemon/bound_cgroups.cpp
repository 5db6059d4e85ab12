#include "bound_cgroups.h"

namespace portier {

std::vector<ir::CgroupMember> BoundCgroups::where(const ir::CgroupOwner& owner) const {
  if (!tree_) return {};
  if (auto found = locate(*tree_, owner)) return {*found};
  return {};
}

void BoundCgroups::fill(ir::Ruleset& ruleset) const {
  for (ir::NamedSet& set : ruleset.sets)
    if (set.key == ir::SetKey::cgroupv2) set.cgroups = where(set.owner);
}

std::vector<CgroupChange> BoundCgroups::changes(const ir::Ruleset& loaded) const {
  std::vector<CgroupChange> result;
  // Several sets may stand for one unit (a bind and a rule): look it up once.
  std::map<ir::CgroupOwner, std::vector<ir::CgroupMember>> now;
  for (const ir::NamedSet& set : loaded.sets) {
    if (set.key != ir::SetKey::cgroupv2) continue;
    auto [it, fresh] = now.try_emplace(set.owner);
    if (fresh) it->second = where(set.owner);
    if (it->second != set.cgroups) result.push_back({set.name, set.owner, set.cgroups, it->second});
  }
  return result;
}

std::vector<std::string> BoundCgroups::to_watch(const ir::Ruleset& loaded) const {
  if (!tree_) return {};
  std::vector<ir::CgroupOwner> owners;
  for (const ir::NamedSet& set : loaded.sets)
    if (set.key == ir::SetKey::cgroupv2) owners.push_back(set.owner);
  if (owners.empty()) return {};
  return cgroups_to_watch(*tree_, owners);
}

void BoundCgroups::loaded(const ir::Ruleset& loaded) {
  std::map<std::string, Held> held;
  for (const ir::NamedSet& set : loaded.sets) {
    if (set.key != ir::SetKey::cgroupv2) continue;
    auto before = held_.find(set.name);
    bool same = before != held_.end() && before->second.cgroups == set.cgroups;
    held[set.name] = {set.cgroups, same ? before->second.since : now_()};
  }
  held_ = std::move(held);
}

std::optional<Clock::time_point> BoundCgroups::since(const std::string& set) const {
  auto found = held_.find(set);
  if (found == held_.end()) return std::nullopt;
  return found->second.since;
}

}  // namespace portier
