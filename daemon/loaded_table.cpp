#include "loaded_table.h"

#include <algorithm>

#include "compile_policy.h"

namespace portier {

bool LoadedTable::holds(const ir::Ruleset& full) {
  take_out_removed();  // full_ is compared whole
  return loaded_ && full == full_;
}

void LoadedTable::load(ir::Ruleset full, RuleNames disabled, const RuleHandles& handles) {
  // Handles come for the rules loaded; spread them over `full`, 0 for the left-out ones.
  handles_.assign(full.chains.size(), {});
  for (std::size_t c = 0; c < full.chains.size(); ++c) {
    std::size_t next = 0;
    for (const ir::Rule& rule : full.chains[c].rules) {
      bool present = disabled.count(rule_owner(rule)) == 0;
      handles_[c].push_back(
          present && c < handles.size() && next < handles[c].size() ? handles[c][next++] : 0);
    }
  }
  positions_.clear();
  for (std::size_t c = 0; c < full.chains.size(); ++c)
    for (std::size_t r = 0; r < full.chains[c].rules.size(); ++r)
      if (std::string_view owner = rule_owner(full.chains[c].rules[r]); !owner.empty())
        positions_[std::string(owner)].push_back({c, r});
  element_positions_.clear();
  map_order_.assign(full.maps.size(), {});
  for (std::size_t m = 0; m < full.maps.size(); ++m)
    for (std::size_t e = 0; e < full.maps[m].elements.size(); ++e) {
      const std::string& owner = full.maps[m].elements[e].comment;
      element_positions_[owner].push_back({m, e});
      if (disabled.count(owner) == 0) map_order_[m].push_back(e);
    }
  full_ = std::move(full);
  disabled_ = std::move(disabled);
  removed_elements_.clear();
  loaded_ = true;
}

LoadedTable::Change LoadedTable::leave_out(RuleNames disabled) const {
  Change change;
  TableEdit& edit = change.edit;
  for (std::size_t c = 0; c < full_.chains.size(); ++c) {
    const ir::Chain& chain = full_.chains[c];
    std::uint64_t after = 0;
    std::vector<std::size_t> group;
    auto flush = [&] {
      // Inserts after the same rule keep their order (TableEdit, encode_edit_batch).
      for (std::size_t r : group) {
        edit.inserts.push_back({chain.name, after, chain.rules[r]});
        change.inserted.push_back({c, r});
      }
      group.clear();
    };
    for (std::size_t r = 0; r < chain.rules.size(); ++r) {
      bool was = handles_[c][r] != 0;
      bool will = disabled.count(rule_owner(chain.rules[r])) == 0;
      if (was && !will) {
        edit.removes.push_back({chain.name, handles_[c][r]});
        change.removed.push_back({c, r});
      }
      if (was && will) {
        flush();
        after = handles_[c][r];
      }
      if (!was && will) group.push_back(r);
    }
    flush();
  }
  for (const auto& [owner, elements] : element_positions_)
    if ((disabled.count(owner) > 0) != (disabled_.count(owner) > 0))
      edit_elements(elements, disabled.count(owner) == 0, edit);
  change.disabled = std::move(disabled);
  return change;
}

void LoadedTable::edit_elements(const std::vector<ElementPosition>& elements, bool enabled,
                                TableEdit& edit) const {
  for (const ElementPosition& at : elements) {
    const ir::RuleMap& map = full_.maps[at.map];
    const std::vector<std::size_t>& order = map_order_[at.map];
    const bool present = std::find(order.begin(), order.end(), at.element) != order.end();
    if (present == enabled) continue;
    auto same_map = [&map](const MapEdit& e) { return e.map == map.name; };
    auto it = std::find_if(edit.maps.begin(), edit.maps.end(), same_map);
    if (it == edit.maps.end())
      it = edit.maps.insert(edit.maps.end(), MapEdit{map.name, map.key, {}, {}});
    (enabled ? it->add : it->remove).push_back(map.elements[at.element]);
  }
}

LoadedTable::Change LoadedTable::toggle(const std::string& name, bool enabled) const {
  Change change;
  TableEdit& edit = change.edit;
  if (auto found = positions_.find(name); found != positions_.end()) {
    std::vector<RulePosition> group;
    std::uint64_t group_after = 0;
    auto flush = [&] {
      for (const RulePosition& at : group) {
        edit.inserts.push_back(
            {full_.chains[at.chain].name, group_after, full_.chains[at.chain].rules[at.rule]});
        change.inserted.push_back(at);
      }
      group.clear();
    };
    for (const RulePosition& at : found->second) {  // in chain order
      std::uint64_t handle = handles_[at.chain][at.rule];
      if (!enabled) {
        if (handle != 0) {
          edit.removes.push_back({full_.chains[at.chain].name, handle});
          change.removed.push_back(at);
        }
        continue;
      }
      if (handle != 0) continue;
      std::uint64_t after = 0;  // the nearest loaded rule before it, 0: the chain's start
      for (std::size_t r = at.rule; r-- > 0;)
        if (handles_[at.chain][r] != 0) {
          after = handles_[at.chain][r];
          break;
        }
      if (!group.empty() && (group.back().chain != at.chain || after != group_after)) flush();
      group_after = after;
      group.push_back(at);
    }
    flush();
  }
  if (auto found = element_positions_.find(name); found != element_positions_.end())
    edit_elements(found->second, enabled, edit);
  change.toggled.emplace(name, enabled);
  return change;
}

void LoadedTable::made(Change change, const std::vector<std::uint64_t>& handles) {
  for (const MapEdit& map_edit : change.edit.maps) {
    // Element indices by map: maps of full_ are few (a map per 128 merged rules).
    std::size_t m = 0;
    while (m < full_.maps.size() && full_.maps[m].name != map_edit.map) ++m;
    if (m == full_.maps.size()) continue;
    const std::vector<ir::MapElement>& all = full_.maps[m].elements;
    auto index_of = [&all](const ir::MapElement& element) {
      return static_cast<std::size_t>(std::find(all.begin(), all.end(), element) - all.begin());
    };
    for (const ir::MapElement& element : map_edit.remove)
      std::erase(map_order_[m], index_of(element));
    for (const ir::MapElement& element : map_edit.add) map_order_[m].push_back(index_of(element));
  }
  for (const RulePosition& at : change.removed) handles_[at.chain][at.rule] = 0;
  for (std::size_t i = 0; i < change.inserted.size() && i < handles.size(); ++i)
    handles_[change.inserted[i].chain][change.inserted[i].rule] = handles[i];
  if (change.disabled) disabled_ = std::move(*change.disabled);
  if (change.toggled) {
    auto& [name, enabled] = *change.toggled;
    if (enabled)
      disabled_.erase(name);
    else
      disabled_.insert(std::move(name));
  }
}

std::optional<std::vector<SetEdit>> LoadedTable::set_edits(
    const NamedSet& set, const std::vector<std::string>& add,
    const std::vector<std::string>& remove, std::optional<std::chrono::seconds> timeout) const {
  // An address set is two kernel sets (compile_policy): single addresses in a hash set,
  // networks in an interval set. Each element goes to the one it belongs in.
  auto target = [&](const ir::AddressRange& range) {
    bool single = set.family != SetFamily::port && range.first == range.last;
    return single ? host_set_name(set.name) : set.name;
  };
  std::map<std::string, SetEdit> edits;
  auto edit_of = [&](const std::string& name) -> SetEdit* {
    auto loaded = std::find_if(full_.sets.begin(), full_.sets.end(),
                               [&](const ir::NamedSet& s) { return s.name == name; });
    if (loaded == full_.sets.end()) return nullptr;
    auto [it, inserted] =
        edits.try_emplace(name, SetEdit{name, loaded->key, loaded->interval, {}, {}, std::nullopt});
    if (inserted && timeout)
      it->second.timeout_seconds = static_cast<std::uint32_t>(timeout->count());
    return &it->second;
  };
  for (const std::string& element : add) {
    ir::AddressRange range = element_range(set, element);
    SetEdit* edit = edit_of(target(range));
    if (!edit) return std::nullopt;
    edit->add.push_back(range);
  }
  for (const std::string& element : remove) {
    ir::AddressRange range = element_range(set, element);
    SetEdit* edit = edit_of(target(range));
    if (!edit) return std::nullopt;
    edit->remove.push_back(range);
  }
  std::vector<SetEdit> result;  // in name order
  for (auto& [name, edit] : edits) result.push_back(std::move(edit));
  return result;
}

void LoadedTable::set_edited(const SetEdit& edit) {
  auto loaded = std::find_if(full_.sets.begin(), full_.sets.end(),
                             [&](const ir::NamedSet& s) { return s.name == edit.set; });
  if (loaded == full_.sets.end()) return;
  RangeSet& removed = removed_elements_[edit.set];
  for (const ir::AddressRange& range : edit.remove) removed.insert(range);
  for (const ir::AddressRange& range : edit.add)
    if (removed.erase(range) == 0) loaded->elements.push_back(range);  // else: still there
  if (removed.size() > std::max<std::size_t>(4096, loaded->elements.size() / 4)) take_out_removed();
}

void LoadedTable::set_cgroups(const std::string& set,
                              const std::vector<ir::CgroupMember>& members) {
  for (ir::NamedSet& named : full_.sets)
    if (named.name == set) named.cgroups = members;
}

void LoadedTable::take_out_removed() {
  for (ir::NamedSet& set : full_.sets) take_out_removed(set);
  removed_elements_.clear();
}

void LoadedTable::take_out_removed(ir::NamedSet& set) const {
  auto removed = removed_elements_.find(set.name);
  if (removed == removed_elements_.end() || removed->second.empty()) return;
  std::erase_if(set.elements,
                [&](const ir::AddressRange& range) { return removed->second.count(range) > 0; });
}

ir::Ruleset LoadedTable::ruleset() const {
  ir::Ruleset loaded = without_owners(full_, disabled_);
  for (ir::NamedSet& set : loaded.sets) take_out_removed(set);
  for (std::size_t m = 0; m < loaded.maps.size() && m < map_order_.size(); ++m) {
    loaded.maps[m].elements.clear();
    for (std::size_t e : map_order_[m])
      loaded.maps[m].elements.push_back(full_.maps[m].elements[e]);
  }
  return loaded;
}

}  // namespace portier
