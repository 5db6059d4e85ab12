#include "merge_rules.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "compile_policy.h"
#include "overloaded.h"

namespace portier {
namespace {

// What must be equal for two rules to share a map: every match that is not part of the
// key, in order, and which fields the key is made of. Fixed sizes: shapes are worked out
// for every rule of a policy, and 10,000 rules are read in a few milliseconds.
constexpr std::size_t kFixedAtMost = 8;
constexpr std::size_t kKeyAtMost = 4;

struct Shape {
  std::array<const ir::Match*, kFixedAtMost> fixed{};
  std::size_t fixed_count = 0;
  std::array<ir::KeyField, kKeyAtMost> key{};
  std::array<const ir::Match*, kKeyAtMost> key_matches{};
  std::size_t key_count = 0;
  std::size_t elements = 1;  // the product of the key matches' range counts

  bool same_as(const Shape& other) const {
    if (key_count != other.key_count || fixed_count != other.fixed_count) return false;
    for (std::size_t i = 0; i < key_count; ++i)
      if (key[i] != other.key[i]) return false;
    for (std::size_t i = 0; i < fixed_count; ++i)
      if (fixed[i] != other.fixed[i] && !(*fixed[i] == *other.fixed[i])) return false;
    return true;
  }
  std::vector<ir::KeyField> key_fields() const {
    return {key.begin(), key.begin() + static_cast<std::ptrdiff_t>(key_count)};
  }
};

ir::AddressRange port_range(const ir::PortRange& ports) {
  return {ir::port_element(ports.first), ir::port_element(ports.last)};
}

// Whether the rule's verdict and statements allow it in a map (its matches aside).
bool may_merge(const ir::Rule& rule) {
  if (rule.verdict.kind != ir::VerdictKind::accept && rule.verdict.kind != ir::VerdictKind::drop)
    return false;
  return rule.counter && !rule.log && !rule.comment.empty() && rule_owner(rule) == rule.comment &&
         !rule.comment.starts_with("default ") && rule.comment.find(' ') == std::string::npos;
}

// What a match is to a map: a field of its key (with how many ranges the rule gives it),
// a fixed match (the same in every rule of the map, see Shape), or state of its own that
// keeps the rule out of maps.
struct MatchRole {
  enum Kind { fixed, key, own_state };
  Kind kind = fixed;
  ir::KeyField field{};
  std::size_t ranges = 0;
};

// One overload per kind of match, the fixed ones listed too: a new kind does not compile
// until it is given a role here.
MatchRole role_of(const ir::Match& match) {
  return std::visit(
      overloaded{[](const ir::AddressIn& address) {
                   const bool v4 = address.family == ir::Family::ipv4;
                   return MatchRole{MatchRole::key,
                                    address.destination
                                        ? (v4 ? ir::KeyField::ip_daddr : ir::KeyField::ip6_daddr)
                                        : (v4 ? ir::KeyField::ip_saddr : ir::KeyField::ip6_saddr),
                                    address.ranges.size()};
                 },
                 [](const ir::DestPortIn& dports) {
                   return MatchRole{MatchRole::key, ir::KeyField::dport, dports.ports.size()};
                 },
                 [](const ir::SourcePortIn& sports) {
                   return MatchRole{MatchRole::key, ir::KeyField::sport, sports.ports.size()};
                 },
                 // A rate per rule.
                 [](const ir::Limit&) { return MatchRole{MatchRole::own_state}; },
                 [](const ir::MeterOver&) { return MatchRole{MatchRole::own_state}; },
                 [](const ir::LoopbackInterface&) { return MatchRole{}; },
                 [](const ir::InterfaceNameIn&) { return MatchRole{}; },
                 [](const ir::CtState&) { return MatchRole{}; },
                 [](const ir::CtStatusDnat&) { return MatchRole{}; },
                 [](const ir::L4ProtoIn&) { return MatchRole{}; },
                 [](const ir::AddressInSet&) { return MatchRole{}; },
                 [](const ir::IcmpTypeIn&) { return MatchRole{}; },
                 [](const ir::SocketCgroup&) { return MatchRole{}; },
                 [](const ir::SocketUid&) { return MatchRole{}; },
                 [](const ir::TcpSyn&) { return MatchRole{}; },
                 [](const ir::NfProto&) { return MatchRole{}; },
                 [](const ir::SocketTransparent&) { return MatchRole{}; },
                 // The published chain's copies of port rules (compile_neighbours.h).
                 [](const ir::CtOriginalDestPort&) {
                   return MatchRole{MatchRole::key, ir::KeyField::ct_original_dport, 1};
                 },
                 [](const ir::CtOriginalAddressIn&) { return MatchRole{}; }},
      match);
}

std::optional<Shape> shape_of(const ir::Rule& rule) {
  if (!may_merge(rule)) return std::nullopt;
  Shape shape;
  for (const ir::Match& match : rule.matches) {
    const MatchRole role = role_of(match);
    if (role.kind == MatchRole::own_state) return std::nullopt;
    if (role.kind == MatchRole::fixed) {
      if (shape.fixed_count == kFixedAtMost) return std::nullopt;
      shape.fixed[shape.fixed_count++] = &match;
      continue;
    }
    if (shape.key_count == kKeyAtMost) return std::nullopt;
    shape.key[shape.key_count] = role.field;
    shape.key_matches[shape.key_count++] = &match;
    shape.elements *= role.ranges;
    if (shape.elements == 0 || shape.elements > kElementsPerRuleAtMost) return std::nullopt;
  }
  if (shape.key_count == 0) return std::nullopt;
  return shape;
}

// range_count() and range_at() see only the key matches (role_of() says which).
std::size_t range_count(const ir::Match& match) {
  if (const auto* address = std::get_if<ir::AddressIn>(&match)) return address->ranges.size();
  if (const auto* dports = std::get_if<ir::DestPortIn>(&match)) return dports->ports.size();
  if (std::holds_alternative<ir::CtOriginalDestPort>(match)) return 1;
  return std::get<ir::SourcePortIn>(match).ports.size();
}

ir::AddressRange range_at(const ir::Match& match, std::size_t i) {
  if (const auto* address = std::get_if<ir::AddressIn>(&match)) return address->ranges[i];
  if (const auto* dports = std::get_if<ir::DestPortIn>(&match)) return port_range(dports->ports[i]);
  if (const auto* original = std::get_if<ir::CtOriginalDestPort>(&match))
    return port_range(original->ports);
  return port_range(std::get<ir::SourcePortIn>(match).ports[i]);
}

// Every combination of one range per key field, appended to `elements`: the boxes the
// rule matches (the first field varies slowest).
void add_elements_of(const ir::Rule& rule, const Shape& shape,
                     std::vector<ir::MapElement>& elements) {
  for (std::size_t n = 0; n < shape.elements; ++n) {
    ir::MapElement element{{}, rule.verdict.kind, rule.comment};
    element.key.resize(shape.key_count);
    std::size_t rest = n;
    for (std::size_t f = shape.key_count; f-- > 0;) {
      const std::size_t count = range_count(*shape.key_matches[f]);
      element.key[f] = range_at(*shape.key_matches[f], rest % count);
      rest /= count;
    }
    elements.push_back(std::move(element));
  }
}

// A key field's range as two 128-bit numbers (big-endian halves): cheap to compare.
struct Span {
  std::pair<std::uint64_t, std::uint64_t> first;
  std::pair<std::uint64_t, std::uint64_t> last;
};
struct Box {
  std::array<Span, kKeyAtMost> spans{};
  std::size_t count = 0;
};

std::pair<std::uint64_t, std::uint64_t> number_of(const ir::Address& address) {
  std::uint64_t high = 0, low = 0;
  for (std::size_t i = 0; i < 8; ++i) high = high << 8 | address.bytes[i];
  for (std::size_t i = 8; i < 16; ++i) low = low << 8 | address.bytes[i];
  return {high, low};
}

Box box_of(const ir::MapElement& element) {
  Box box;
  for (const ir::AddressRange& range : element.key)
    box.spans[box.count++] = {number_of(range.first), number_of(range.last)};
  return box;
}

bool overlap(const Box& a, const Box& b) {
  for (std::size_t f = 0; f < a.count; ++f)
    if (b.spans[f].last < a.spans[f].first || a.spans[f].last < b.spans[f].first) return false;
  return true;
}

std::string merged_comment(const std::string& first, const std::string& last,
                           const std::string& map) {
  std::string comment = kMergedRulesPrefix + first + " to " + last;
  // Rule comments are at most 128 bytes (render_nft's limit, the kernel's is 256).
  return comment.size() <= 128 ? comment : kMergedRulesPrefix + std::string("in ") + map;
}

// The address family a rule can only match, if it names one: a rule of IPv4 addresses
// and one of IPv6 addresses never match the same packet.
std::optional<ir::Family> family_of(const ir::Rule& rule) {
  using Found = std::optional<ir::Family>;
  for (const ir::Match& match : rule.matches) {
    // One overload per kind of match: a new kind does not compile until it says whether it
    // names a family. CtOriginalAddressIn (an address before DNAT) does not count, as
    // before this visit was exhaustive.
    const Found found = std::visit(
        overloaded{
            [](const ir::AddressIn& address) { return Found{address.family}; },
            [](const ir::AddressInSet& lookup) { return Found{lookup.family}; },
            [](const ir::NfProto& family) { return Found{family.family}; },
            [](const ir::LoopbackInterface&) { return Found{}; },
            [](const ir::InterfaceNameIn&) { return Found{}; },
            [](const ir::CtState&) { return Found{}; },
            [](const ir::CtStatusDnat&) { return Found{}; },
            [](const ir::L4ProtoIn&) { return Found{}; },
            [](const ir::DestPortIn&) { return Found{}; },
            [](const ir::SourcePortIn&) { return Found{}; },
            [](const ir::IcmpTypeIn&) { return Found{}; },
            [](const ir::SocketCgroup&) { return Found{}; },
            [](const ir::SocketUid&) { return Found{}; }, [](const ir::TcpSyn&) { return Found{}; },
            [](const ir::Limit&) { return Found{}; }, [](const ir::MeterOver&) { return Found{}; },
            [](const ir::SocketTransparent&) { return Found{}; },
            [](const ir::CtOriginalDestPort&) { return Found{}; },
            [](const ir::CtOriginalAddressIn&) { return Found{}; }},
        match);
    if (found) return found;
  }
  return std::nullopt;
}

// A policy rule with IPv4 and IPv6 addresses becomes an IPv4 and an IPv6 kernel rule
// side by side, so a list of such rules alternates between the two shapes and no run
// forms. Within a stretch of rules that each match one family, the IPv4 rules can go
// before the IPv6 ones (keeping their order within each family): no packet can match
// rules of both, so first-match decides as before.
void group_families(std::vector<ir::Rule>& rules) {
  std::size_t start = 0;
  while (start < rules.size()) {
    std::size_t end = start;
    // Only where it lets runs form: other stretches keep the order the policy has.
    std::size_t v4 = 0, v6 = 0, mergeable_v4 = 0, mergeable_v6 = 0;
    while (end < rules.size()) {
      const std::optional<ir::Family> family = family_of(rules[end]);
      if (!family) break;
      const bool mergeable = may_merge(rules[end]);
      if (*family == ir::Family::ipv4) {
        ++v4;
        mergeable_v4 += mergeable;
      } else {
        ++v6;
        mergeable_v6 += mergeable;
      }
      ++end;
    }
    if (v4 > 0 && v6 > 0 && std::max(mergeable_v4, mergeable_v6) >= kMergeRunsFrom) {
      std::stable_partition(
          rules.begin() + static_cast<std::ptrdiff_t>(start),
          rules.begin() + static_cast<std::ptrdiff_t>(end),
          [](const ir::Rule& rule) { return family_of(rule) == ir::Family::ipv4; });
    }
    start = end == start ? end + 1 : end;
  }
}

}  // namespace

void merge_rule_runs(ir::Ruleset& ruleset) {
  for (ir::Chain& chain : ruleset.chains) {
    group_families(chain.rules);
    std::vector<std::optional<Shape>> shapes;
    shapes.reserve(chain.rules.size());
    bool any = false;
    for (const ir::Rule& rule : chain.rules) {
      shapes.push_back(shape_of(rule));
      any |= shapes.back().has_value();
    }
    if (!any) continue;
    std::vector<ir::Rule> rules;
    rules.reserve(chain.rules.size());
    std::size_t maps = 0;
    std::size_t i = 0;
    std::vector<ir::MapElement> elements;
    std::vector<Box> boxes;
    elements.reserve(kMapElementsAtMost);
    boxes.reserve(kMapElementsAtMost);
    while (i < chain.rules.size()) {
      const std::optional<Shape>& shape = shapes[i];
      elements.clear();
      boxes.clear();
      std::size_t end = i;
      while (shape && end < chain.rules.size()) {
        const std::optional<Shape>& next = shapes[end];
        if (!next || !next->same_as(*shape) ||
            elements.size() + next->elements > kMapElementsAtMost)
          break;
        const std::size_t before = elements.size();
        add_elements_of(chain.rules[end], *next, elements);
        bool disjoint = true;
        for (std::size_t e = before; e < elements.size() && disjoint; ++e) {
          boxes.push_back(box_of(elements[e]));
          for (std::size_t p = 0; p < before && disjoint; ++p)
            disjoint = !overlap(boxes.back(), boxes[p]);
        }
        if (!disjoint) {
          elements.resize(before);
          boxes.resize(before);
          break;
        }
        ++end;
      }
      if (end - i < kMergeRunsFrom) {
        rules.push_back(std::move(chain.rules[i]));
        ++i;
        continue;
      }
      ir::RuleMap map{
          chain.name + "/m" + std::to_string(++maps),
          shape->key_fields(),
          {std::make_move_iterator(elements.begin()), std::make_move_iterator(elements.end())}};
      ir::Rule lookup;
      for (std::size_t f = 0; f < shape->fixed_count; ++f)
        lookup.matches.push_back(*shape->fixed[f]);
      lookup.verdict.kind = ir::VerdictKind::map_lookup;
      lookup.verdict.map = map.name;
      lookup.verdict.map_key = map.key;
      lookup.comment =
          merged_comment(chain.rules[i].comment, chain.rules[end - 1].comment, map.name);
      rules.push_back(std::move(lookup));
      ruleset.maps.push_back(std::move(map));
      i = end;
    }
    chain.rules = std::move(rules);
  }
}

void share_maps(ir::Ruleset& ruleset, std::string_view copy, std::string_view original) {
  auto chain_named = [&](std::string_view name) -> ir::Chain* {
    for (ir::Chain& chain : ruleset.chains)
      if (chain.name == name) return &chain;
    return nullptr;
  };
  ir::Chain* copies = chain_named(copy);
  const ir::Chain* originals = chain_named(original);
  if (copies == nullptr || originals == nullptr || copies == originals) return;
  std::unordered_map<std::string_view, std::size_t> index;  // map name -> ruleset.maps
  index.reserve(ruleset.maps.size());
  for (std::size_t m = 0; m < ruleset.maps.size(); ++m) index.emplace(ruleset.maps[m].name, m);
  auto map_of = [&](const ir::Rule& rule) -> const ir::RuleMap* {
    if (rule.verdict.kind != ir::VerdictKind::map_lookup) return nullptr;
    auto it = index.find(rule.verdict.map);
    return it == index.end() ? nullptr : &ruleset.maps[it->second];
  };
  // The original chain's maps by their first and last elements' names: two maps of one
  // run of rules are found at once, and comparing the elements then mostly finds them equal.
  auto ends = [](const ir::RuleMap& map) {
    return map.elements.empty() ? std::string()
                                : map.elements.front().comment + '\n' + map.elements.back().comment;
  };
  std::unordered_multimap<std::string, const ir::RuleMap*> candidates;
  for (const ir::Rule& rule : originals->rules)
    if (const ir::RuleMap* map = map_of(rule)) candidates.emplace(ends(*map), map);
  auto same = [](const ir::RuleMap& from_copy, const ir::RuleMap& from_original) {
    return from_copy.key.size() == from_original.key.size() &&
           std::equal(from_copy.key.begin(), from_copy.key.end(), from_original.key.begin(),
                      ir::loads_key_field) &&
           from_copy.elements == from_original.elements;
  };
  std::set<std::string, std::less<>> gone;
  for (ir::Rule& rule : copies->rules) {
    const ir::RuleMap* map = map_of(rule);
    if (map == nullptr || map->elements.empty()) continue;
    auto [first, last] = candidates.equal_range(ends(*map));
    for (auto it = first; it != last; ++it) {
      if (!same(*map, *it->second)) continue;
      gone.insert(map->name);
      rule.verdict.map = it->second->name;
      break;
    }
  }
  // Each map is its own run's, looked up by one rule: the copy's maps are now looked up by none.
  if (gone.empty()) return;
  std::erase_if(ruleset.maps, [&](const ir::RuleMap& map) { return gone.count(map.name) > 0; });
}

}  // namespace portier
