#include "merge_rules.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "compile_policy.h"

namespace portier {
namespace {

// What must be equal for two rules to share a map: every match that is not part of the
// key, in order, and which fields the key is made of.
struct Shape {
  std::vector<const ir::Match*> fixed;
  std::vector<ir::KeyField> key;
  std::vector<const ir::Match*> key_matches;

  bool same_as(const Shape& other) const {
    if (key != other.key || fixed.size() != other.fixed.size()) return false;
    for (std::size_t i = 0; i < fixed.size(); ++i)
      if (!(*fixed[i] == *other.fixed[i])) return false;
    return true;
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

std::optional<Shape> shape_of(const ir::Rule& rule) {
  if (!may_merge(rule)) return std::nullopt;
  Shape shape;
  std::size_t elements = 1;
  for (const ir::Match& match : rule.matches) {
    if (std::holds_alternative<ir::Limit>(match) || std::holds_alternative<ir::MeterOver>(match))
      return std::nullopt;  // state of its own: a rate per rule
    if (const auto* address = std::get_if<ir::AddressIn>(&match)) {
      const bool v4 = address->family == ir::Family::ipv4;
      shape.key.push_back(address->destination ? (v4 ? ir::KeyField::ip_daddr : ir::KeyField::ip6_daddr)
                                               : (v4 ? ir::KeyField::ip_saddr : ir::KeyField::ip6_saddr));
      elements *= address->ranges.size();
    } else if (const auto* dports = std::get_if<ir::DestPortIn>(&match)) {
      shape.key.push_back(ir::KeyField::dport);
      elements *= dports->ports.size();
    } else if (const auto* sports = std::get_if<ir::SourcePortIn>(&match)) {
      shape.key.push_back(ir::KeyField::sport);
      elements *= sports->ports.size();
    } else {
      shape.fixed.push_back(&match);
      continue;
    }
    shape.key_matches.push_back(&match);
    if (elements == 0 || elements > kElementsPerRuleAtMost) return std::nullopt;
  }
  if (shape.key.empty()) return std::nullopt;
  return shape;
}

std::vector<ir::AddressRange> ranges_of(const ir::Match& match) {
  if (const auto* address = std::get_if<ir::AddressIn>(&match)) return address->ranges;
  std::vector<ir::AddressRange> ranges;
  const auto& ports = std::holds_alternative<ir::DestPortIn>(match) ? std::get<ir::DestPortIn>(match).ports
                                                                   : std::get<ir::SourcePortIn>(match).ports;
  for (const ir::PortRange& range : ports) ranges.push_back(port_range(range));
  return ranges;
}

// Every combination of one range per key field: the boxes the rule matches.
std::vector<ir::MapElement> elements_of(const ir::Rule& rule, const Shape& shape) {
  std::vector<ir::MapElement> elements{ir::MapElement{{}, rule.verdict.kind, rule.comment}};
  for (const ir::Match* match : shape.key_matches) {
    std::vector<ir::MapElement> grown;
    for (const ir::MapElement& partial : elements)
      for (const ir::AddressRange& range : ranges_of(*match)) {
        grown.push_back(partial);
        grown.back().key.push_back(range);
      }
    elements = std::move(grown);
  }
  return elements;
}

// A key field's range as two 128-bit numbers (big-endian halves): cheap to compare.
struct Span {
  std::pair<std::uint64_t, std::uint64_t> first;
  std::pair<std::uint64_t, std::uint64_t> last;
};
using Box = std::vector<Span>;

std::pair<std::uint64_t, std::uint64_t> number_of(const ir::Address& address) {
  std::uint64_t high = 0, low = 0;
  for (std::size_t i = 0; i < 8; ++i) high = high << 8 | address.bytes[i];
  for (std::size_t i = 8; i < 16; ++i) low = low << 8 | address.bytes[i];
  return {high, low};
}

Box box_of(const ir::MapElement& element) {
  Box box;
  box.reserve(element.key.size());
  for (const ir::AddressRange& range : element.key) box.push_back({number_of(range.first), number_of(range.last)});
  return box;
}

bool overlap(const Box& a, const Box& b) {
  for (std::size_t f = 0; f < a.size(); ++f)
    if (b[f].last < a[f].first || a[f].last < b[f].first) return false;
  return true;
}

bool overlaps_any(const std::vector<Box>& run, const std::vector<Box>& added) {
  for (const Box& box : added)
    for (const Box& present : run)
      if (overlap(box, present)) return true;
  return false;
}

std::string merged_comment(const std::string& first, const std::string& last, const std::string& map) {
  std::string comment = kMergedRulesPrefix + first + " to " + last;
  // Rule comments are at most 128 bytes (render_nft's limit, the kernel's is 256).
  return comment.size() <= 128 ? comment : kMergedRulesPrefix + std::string("in ") + map;
}

// The address family a rule can only match, if it names one: a rule of IPv4 addresses
// and one of IPv6 addresses never match the same packet.
std::optional<ir::Family> family_of(const ir::Rule& rule) {
  for (const ir::Match& match : rule.matches) {
    if (const auto* address = std::get_if<ir::AddressIn>(&match)) return address->family;
    if (const auto* lookup = std::get_if<ir::AddressInSet>(&match)) return lookup->family;
    if (const auto* family = std::get_if<ir::NfProto>(&match)) return family->family;
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
      std::stable_partition(rules.begin() + static_cast<std::ptrdiff_t>(start),
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
    while (i < chain.rules.size()) {
      const std::optional<Shape>& shape = shapes[i];
      std::vector<ir::MapElement> elements;
      std::vector<Box> boxes;
      std::size_t end = i;
      while (shape && end < chain.rules.size()) {
        if (!shapes[end] || !shapes[end]->same_as(*shape)) break;
        std::vector<ir::MapElement> added = elements_of(chain.rules[end], *shapes[end]);
        if (elements.size() + added.size() > kMapElementsAtMost) break;
        std::vector<Box> added_boxes;
        added_boxes.reserve(added.size());
        for (const ir::MapElement& element : added) added_boxes.push_back(box_of(element));
        if (overlaps_any(boxes, added_boxes)) break;
        elements.insert(elements.end(), std::make_move_iterator(added.begin()),
                        std::make_move_iterator(added.end()));
        boxes.insert(boxes.end(), std::make_move_iterator(added_boxes.begin()),
                     std::make_move_iterator(added_boxes.end()));
        ++end;
      }
      if (end - i < kMergeRunsFrom) {
        rules.push_back(std::move(chain.rules[i]));
        ++i;
        continue;
      }
      ir::RuleMap map{chain.name + "/m" + std::to_string(++maps), shape->key, std::move(elements)};
      ir::Rule lookup;
      for (const ir::Match* match : shape->fixed) lookup.matches.push_back(*match);
      lookup.verdict.kind = ir::VerdictKind::map_lookup;
      lookup.verdict.map = map.name;
      lookup.verdict.map_key = map.key;
      lookup.comment = merged_comment(chain.rules[i].comment, chain.rules[end - 1].comment, map.name);
      rules.push_back(std::move(lookup));
      ruleset.maps.push_back(std::move(map));
      i = end;
    }
    chain.rules = std::move(rules);
  }
}

}  // namespace portier
