// Checks that need the whole merged policy: unique names, references to zones and sets,
// and rules that an earlier rule makes unreachable.
#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

#include "parse_policy.h"

namespace portier {
namespace {

class Validator {
 public:
  explicit Validator(const Policy& policy) : policy_(policy) {
    for (const Zone& zone : policy.zones) zone_names_.push_back(zone.name);
    for (const NamedSet& set : policy.sets) set_names_.push_back(set.name);
  }

  std::vector<Diagnostic> run() {
    check_unique_names();
    check_interfaces_in_one_zone();
    check_one_zone_per_stack();
    for (const Zone& zone : policy_.zones)
      for (const std::string& target : zone.forward_to)
        require_zone(target, zone.where, "forward_to of zone '" + zone.name + "'");
    for (const std::string& zone : policy_.masquerade) require_zone_with_interfaces(zone, {}, "[nat] masquerade");
    for (const Forward& forward : policy_.forwards)
      require_zone_with_interfaces(forward.from, forward.where, "forward '" + forward.name + "'");
    for (const Rule& rule : policy_.rules) check_endpoints(rule);
    check_shadowing();
    return std::move(diagnostics_);
  }

 private:
  void error(const SourceLocation& where, std::string message) {
    diagnostics_.push_back({Severity::error, where, std::move(message)});
  }
  void warning(const SourceLocation& where, std::string message) {
    diagnostics_.push_back({Severity::warning, where, std::move(message)});
  }

  void check_unique_names() {
    // Names and places are viewed, not copied: a 10,000-rule policy copied every name, and
    // every place with its file name, on every reload. The names made here (a set's
    // "_hosts", a unit's cgroup set) live in `made`, whose elements stay where they are.
    struct First {
      std::string_view kind;
      const SourceLocation* where;
    };
    std::unordered_map<std::string_view, First> seen;
    seen.reserve(policy_.zones.size() + 2 * policy_.sets.size() + 2 * policy_.rules.size() +
                 2 * policy_.binds.size() + policy_.forwards.size());
    std::deque<std::string> made;
    auto add = [&](std::string_view name, std::string_view kind, const SourceLocation& where) {
      auto [it, inserted] = seen.emplace(name, First{kind, &where});
      if (!inserted)
        error(where, "name '" + std::string(name) + "' is already used by the " +
                         std::string(it->second.kind) + " at " + to_string(*it->second.where));
    };
    auto add_made = [&](std::string name, std::string_view kind, const SourceLocation& where) {
      add(made.emplace_back(std::move(name)), kind, where);
    };
    for (const Zone& zone : policy_.zones) add(zone.name, "zone", zone.where);
    for (const NamedSet& set : policy_.sets) {
      add(set.name, "set", set.where);
      // Its single addresses live in a kernel set of that name.
      if (set.family != SetFamily::port)
        add_made(set.name + "_hosts", "set (its single addresses)", set.where);
    }
    for (const Rule& rule : policy_.rules) {
      add(rule.name, "rule", rule.where);
      if (!rule.unit.empty())
        add_made(cgroup_set_name(rule.name), "set (the rule's unit)", rule.where);
    }
    for (const Bind& bind : policy_.binds) {
      add(bind.name, "bind", bind.where);
      if (!bind.user) add_made(cgroup_set_name(bind.name), "set (the bind's cgroups)", bind.where);
    }
    for (const Forward& forward : policy_.forwards) add(forward.name, "forward", forward.where);
  }

  void check_one_zone_per_stack() {
    std::map<std::string, const Zone*> owner;
    for (const Zone& zone : policy_.zones) {
      if (zone.stack.empty()) continue;
      auto [it, inserted] = owner.emplace(zone.stack, &zone);
      if (!inserted)
        error(zone.where, "zone '" + zone.name + "' is for stack '" + zone.stack + "', as zone '" +
                              it->second->name + "' at " + to_string(it->second->where) +
                              " already is");
    }
  }

  // Zones are told apart by the interface a packet uses: one interface, one zone.
  void check_interfaces_in_one_zone() {
    std::map<std::string, const Zone*> owner;
    for (const Zone& zone : policy_.zones)
      for (const std::string& name : zone.interfaces) {
        auto [it, inserted] = owner.emplace(name, &zone);
        if (!inserted && it->second != &zone)
          error(zone.where, "interface '" + name + "' of zone '" + zone.name +
                                "' is already in zone '" + it->second->name + "' at " +
                                to_string(it->second->where));
      }
  }

  const Zone* require_zone(const std::string& name, const SourceLocation& where,
                           std::string_view used_by) {
    if (const Zone* zone = policy_.find_zone(name)) return zone;
    std::string message = "unknown zone '" + name + "' in " + std::string(used_by);
    if (auto hint = closest_match(name, zone_names_); !hint.empty())
      message += " (did you mean '" + hint + "'?)";
    else if (std::all_of(policy_.zones.begin(), policy_.zones.end(),
                         [](const Zone& zone) { return zone.builtin; }))
      message += ": the policy defines no zones ([zone.NAME])";
    error(where, message);
    return nullptr;
  }

  void require_zone_with_interfaces(const std::string& name, const SourceLocation& where,
                                    std::string_view used_by) {
    SourceLocation at = where.file.empty() ? SourceLocation{policy_.source, 0, 0} : where;
    if (const Zone* zone = require_zone(name, at, used_by); zone && zone->interfaces.empty())
      error(at, "zone '" + name + "' in " + std::string(used_by) + " needs interfaces");
  }

  void check_endpoints(const Rule& rule) {
    auto check = [&](const std::vector<Endpoint>& endpoints, bool is_from) {
      for (const Endpoint& endpoint : endpoints) {
        if (endpoint.kind == Endpoint::Kind::zone) {
          bool local_side = (rule.direction == Direction::in && !is_from) ||
                            (rule.direction == Direction::out && is_from);
          if (local_side) {
            error(endpoint.where, std::string(is_from ? "'from'" : "'to'") + " of an '" +
                                      std::string(to_string(rule.direction)) +
                                      "' rule is this host: give addresses or a set, not zone '" +
                                      endpoint.name + "'");
          } else {
            require_zone(endpoint.name, endpoint.where, "rule '" + rule.name + "'");
          }
        } else if (endpoint.kind == Endpoint::Kind::set) {
          const NamedSet* set = policy_.find_set(endpoint.name);
          if (!set) {
            std::string message = "unknown set '@" + endpoint.name + "' in rule '" + rule.name + "'";
            if (auto hint = closest_match(endpoint.name, set_names_); !hint.empty())
              message += " (did you mean '@" + hint + "'?)";
            error(endpoint.where, message);
          } else if (set->family == SetFamily::port) {
            error(endpoint.where, "set '@" + endpoint.name +
                                      "' holds ports: 'from' and 'to' need an ipv4 or ipv6 set");
          }
        }
      }
    };
    check(rule.from, true);
    check(rule.to, false);
  }

  // Rules the shadowing check compares: no addresses, limits or socket owners, whose
  // matches are only protocols and ports.
  static bool is_simple(const Rule& rule) {
    return rule.enabled && rule.from.empty() && rule.to.empty() && !rule.limit && !rule.user &&
           rule.unit.empty();
  }

  // Whether every packet `later` matches is also matched by `earlier` (a simple rule).
  static bool covers(const Rule& earlier, const Rule& later) {
    if (!earlier.protocols.empty()) {
      if (later.protocols.empty()) return false;
      for (Protocol protocol : later.protocols)
        if (std::find(earlier.protocols.begin(), earlier.protocols.end(), protocol) == earlier.protocols.end())
          return false;
    }
    if (earlier.ports.empty()) return true;
    if (later.ports.empty()) return false;
    std::vector<PortRange> outer = earlier.ports;
    std::sort(outer.begin(), outer.end(), [](auto& a, auto& b) { return a.first < b.first; });
    return std::all_of(later.ports.begin(), later.ports.end(), [&](const PortRange& range) {
      // Walk the sorted ranges of `earlier` from the one holding range.first onwards.
      std::uint32_t next = range.first;
      for (const PortRange& e : outer) {
        if (e.last < next) continue;
        if (e.first > next) return false;
        if (e.last >= range.last) return true;
        next = e.last + 1u;
      }
      return false;
    });
  }

  // For each direction and protocol, the earliest simple rule matching each port: the
  // one candidate per later rule that could cover it. Comparing each rule with every
  // earlier one would take quadratic time on policies of thousands of rules.
  //
  // Rules come in order, so a port's earliest rule is the first one added that covers it
  // and never changes after: each slot keeps the ports covered so far as disjoint
  // intervals, each with that rule. A flat table of 65,536 ports per slot was the
  // simplest form, but filling it cost more than the rest of validating a small policy
  // (and paging in half a megabyte per slot on every check).
  class EarliestIndex {
   public:
    static constexpr std::size_t kAnyProtocol = 5;
    void add(const Rule& rule, std::size_t index) {
      std::vector<std::size_t> slots;
      if (rule.protocols.empty()) slots.push_back(kAnyProtocol);
      for (Protocol protocol : rule.protocols) slots.push_back(static_cast<std::size_t>(protocol));
      for (std::size_t slot : slots) {
        Covered& covered = slot_of(rule.direction, slot);
        if (rule.ports.empty()) {
          cover(covered, 0, 65535, index);
        } else {
          for (const PortRange& range : rule.ports) cover(covered, range.first, range.last, index);
        }
      }
    }
    // Candidates that might cover `rule`: for its first port, the earliest rule per slot.
    std::vector<std::size_t> candidates(const Rule& rule) const {
      std::uint16_t port = rule.ports.empty() ? 0 : rule.ports[0].first;
      std::vector<std::size_t> result{earliest(slot_of(rule.direction, kAnyProtocol), port)};
      if (!rule.protocols.empty())
        result.push_back(
            earliest(slot_of(rule.direction, static_cast<std::size_t>(rule.protocols[0])), port));
      return result;
    }

   private:
    struct Interval {
      std::uint32_t last;
      std::size_t rule;
    };
    // Disjoint intervals by their first port.
    struct Covered {
      std::map<std::uint32_t, Interval> intervals;
      std::uint32_t ports = 0;  // how many ports are covered: 65,536 means nothing is left
    };

    // The ports of [first, last] not covered yet get `rule`.
    static void cover(Covered& covered, std::uint32_t first, std::uint32_t last, std::size_t rule) {
      if (covered.ports == 65536 || first > last) return;
      auto& intervals = covered.intervals;
      std::uint32_t port = first;
      auto it = intervals.upper_bound(port);
      if (it != intervals.begin() && std::prev(it)->second.last >= port)
        port = std::prev(it)->second.last + 1;
      while (port <= last) {
        // `it`: the first interval starting after `port`, if any.
        std::uint32_t gap_end = it == intervals.end() ? last : std::min(last, it->first - 1);
        if (gap_end >= port) {
          intervals.emplace_hint(it, port, Interval{gap_end, rule});
          covered.ports += gap_end - port + 1;
        }
        if (it == intervals.end() || it->first > last) break;
        port = it->second.last + 1;
        ++it;
      }
    }
    static std::size_t earliest(const Covered& covered, std::uint32_t port) {
      auto it = covered.intervals.upper_bound(port);
      if (it == covered.intervals.begin()) return SIZE_MAX;
      --it;
      return it->second.last >= port ? it->second.rule : SIZE_MAX;
    }
    Covered& slot_of(Direction direction, std::size_t slot) {
      return slots_[static_cast<std::size_t>(direction) * 6 + slot];
    }
    const Covered& slot_of(Direction direction, std::size_t slot) const {
      return slots_[static_cast<std::size_t>(direction) * 6 + slot];
    }
    std::array<Covered, 18> slots_;
  };

  void check_shadowing() {
    EarliestIndex index;
    for (std::size_t i = 0; i < policy_.rules.size(); ++i) {
      const Rule& later = policy_.rules[i];
      if (!later.enabled) continue;
      for (std::size_t j : index.candidates(later)) {
        if (j == SIZE_MAX) continue;
        const Rule& earlier = policy_.rules[j];
        if (!covers(earlier, later)) continue;
        if (later.action == Action::accept && earlier.action != Action::accept)
          warning(later.where, "accept rule '" + later.name + "' comes after " +
                                   std::string(to_string(earlier.action)) + " rule '" +
                                   earlier.name + "' at " + to_string(earlier.where) +
                                   ", which covers it: it can never accept anything");
        else
          warning(later.where, "rule '" + later.name + "' can never match: rule '" + earlier.name +
                                   "' at " + to_string(earlier.where) +
                                   " matches everything it does");
        break;
      }
      if (is_simple(later)) index.add(later, i);
    }
  }

  const Policy& policy_;
  std::vector<std::string> zone_names_;
  std::vector<std::string> set_names_;
  std::vector<Diagnostic> diagnostics_;
};

}  // namespace

std::vector<Diagnostic> validate_policy(const Policy& policy) { return Validator(policy).run(); }

}  // namespace portier
