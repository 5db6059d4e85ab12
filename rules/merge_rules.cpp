#include "merge_rules.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
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

}  // namespace

// A policy rule with IPv4 and IPv6 addresses becomes an IPv4 and an IPv6 kernel rule
// side by side, so a list of such rules alternates between the two shapes and no run
// forms. Within a stretch of rules that each match one family (the family grouping), the
// IPv4 rules go before the IPv6 ones, keeping their order within each family, where that
// lets runs form (at least kMergeRunsFrom mergeable rules of one family, and rules of
// both): no packet can match rules of both, so first-match decides as before. Other
// stretches keep the order the policy has.
//
// Rules come one at a time, so the grouping holds back only what may still move: IPv4
// rules before the stretch's first IPv6 rule go on at once (they are first either way),
// and once the stretch is sure to be grouped so do all its IPv4 rules; its IPv6 rules
// wait for its end. Until it is sure, everything from the first IPv6 rule waits.
struct ChainMerger::State {
  struct Held {
    ir::Rule rule;
    ir::Family family;
  };
  // A rule of the grouped chain waiting to join a run or to go out alone. Its shape points
  // into its matches: a deque's elements stay where they are.
  struct Pending {
    ir::Rule rule;
    std::optional<Shape> shape;
  };

  explicit State(std::string name) : chain(std::move(name)) {
    elements.reserve(kMapElementsAtMost);
    boxes.reserve(kMapElementsAtMost);
  }

  void group(ir::Rule rule) {
    const std::optional<ir::Family> family = family_of(rule);
    if (!family) {
      end_stretch();
      run(std::move(rule));
      return;
    }
    const bool mergeable = may_merge(rule);
    if (*family == ir::Family::ipv4) {
      ++v4;
      mergeable_v4 += mergeable;
    } else {
      ++v6;
      mergeable_v6 += mergeable;
    }
    if (!grouped && v4 > 0 && v6 > 0 && std::max(mergeable_v4, mergeable_v6) >= kMergeRunsFrom) {
      grouped = true;
      std::vector<Held> later;
      for (Held& waiting : held) {
        if (waiting.family == ir::Family::ipv4)
          run(std::move(waiting.rule));
        else
          later.push_back(std::move(waiting));
      }
      held = std::move(later);
    }
    if ((grouped || v6 == 0) && *family == ir::Family::ipv4)
      run(std::move(rule));
    else
      held.push_back({std::move(rule), *family});
  }

  void end_stretch() {
    for (Held& waiting : held) run(std::move(waiting.rule));
    held.clear();
    v4 = v6 = mergeable_v4 = mergeable_v6 = 0;
    grouped = false;
  }

  // The grouped chain's rules, in order: runs of at least kMergeRunsFrom rules of one shape
  // whose boxes are disjoint, within the map's element budget, become a map; a run tried
  // from a rule that falls short lets that rule go out alone, and is tried again from the
  // next one.
  void run(ir::Rule rule) {
    pending.push_back({std::move(rule), std::nullopt});
    pending.back().shape = shape_of(pending.back().rule);
    advance(false);
  }

  // `last`: no rule comes after the pending ones.
  void advance(bool last) {
    while (!pending.empty()) {
      const std::optional<Shape>& shape = pending.front().shape;
      bool ended = !shape;
      // The run from the first pending rule takes the next pending rules while it can.
      while (!ended && in_run < pending.size()) {
        const std::optional<Shape>& next = pending[in_run].shape;
        if (!next || !next->same_as(*shape) ||
            elements.size() + next->elements > kMapElementsAtMost) {
          ended = true;
          break;
        }
        const std::size_t before = elements.size();
        add_elements_of(pending[in_run].rule, *next, elements);
        bool disjoint = true;
        for (std::size_t e = before; e < elements.size() && disjoint; ++e) {
          boxes.push_back(box_of(elements[e]));
          for (std::size_t p = 0; p < before && disjoint; ++p)
            disjoint = !overlap(boxes.back(), boxes[p]);
        }
        if (!disjoint) {
          elements.resize(before);
          boxes.resize(before);
          ended = true;
          break;
        }
        ++in_run;
      }
      if (!ended && !last) return;  // the next rule may still join the run
      if (in_run < kMergeRunsFrom) {
        rules.push_back(std::move(pending.front().rule));
        pending.pop_front();
      } else {
        close_run(*shape);
      }
      in_run = 0;
      elements.clear();
      boxes.clear();
    }
  }

  // The first in_run pending rules as one lookup of a new map holding their elements.
  void close_run(const Shape& shape) {
    ir::RuleMap map{
        chain + "/m" + std::to_string(maps.size() + 1),
        shape.key_fields(),
        {std::make_move_iterator(elements.begin()), std::make_move_iterator(elements.end())}};
    ir::Rule lookup;
    for (std::size_t f = 0; f < shape.fixed_count; ++f) lookup.matches.push_back(*shape.fixed[f]);
    lookup.verdict.kind = ir::VerdictKind::map_lookup;
    lookup.verdict.map = map.name;
    lookup.verdict.map_key = map.key;
    lookup.comment =
        merged_comment(pending.front().rule.comment, pending[in_run - 1].rule.comment, map.name);
    rules.push_back(std::move(lookup));
    maps.push_back(std::move(map));
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(in_run));
  }

  std::string chain;
  // The family grouping: the open stretch's counts and the rules it holds back, in order.
  std::vector<Held> held;
  std::size_t v4 = 0, v6 = 0, mergeable_v4 = 0, mergeable_v6 = 0;
  bool grouped = false;  // the open stretch is sure to be grouped
  // The runs: the rules not yet out, the first in_run of which form the open run, whose
  // elements and their boxes are these.
  std::deque<Pending> pending;
  std::size_t in_run = 0;
  std::vector<ir::MapElement> elements;
  std::vector<Box> boxes;
  // What is out.
  std::vector<ir::Rule> rules;
  std::vector<ir::RuleMap> maps;  // <chain>/m1, /m2, ...
};

ChainMerger::ChainMerger(std::string chain) : state_(std::make_unique<State>(std::move(chain))) {}
ChainMerger::ChainMerger(ChainMerger&&) noexcept = default;
ChainMerger& ChainMerger::operator=(ChainMerger&&) noexcept = default;
ChainMerger::~ChainMerger() = default;

void ChainMerger::add(ir::Rule rule) { state_->group(std::move(rule)); }

void ChainMerger::finish(std::vector<ir::Rule>& rules, std::vector<ir::RuleMap>& maps) {
  state_->end_stretch();
  state_->advance(true);
  rules = std::move(state_->rules);
  state_->rules.clear();
  maps.insert(maps.end(), std::make_move_iterator(state_->maps.begin()),
              std::make_move_iterator(state_->maps.end()));
  state_->maps.clear();
}

void merge_rule_runs(ir::Ruleset& ruleset) {
  for (ir::Chain& chain : ruleset.chains) {
    ChainMerger merger(chain.name);
    for (ir::Rule& rule : chain.rules) merger.add(std::move(rule));
    merger.finish(chain.rules, ruleset.maps);
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
