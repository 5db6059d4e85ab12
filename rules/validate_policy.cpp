// Checks that need the whole merged policy: unique names, references to zones and sets,
// and rules that an earlier rule makes unreachable.
#include <algorithm>
#include <map>

#include "parse_policy.h"

namespace portier {
namespace {

std::string place(const SourceLocation& where) {
  return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
}

class Validator {
 public:
  explicit Validator(const Policy& policy) : policy_(policy) {
    for (const Zone& zone : policy.zones) zone_names_.push_back(zone.name);
    for (const NamedSet& set : policy.sets) set_names_.push_back(set.name);
  }

  std::vector<Diagnostic> run() {
    check_unique_names();
    check_interfaces_in_one_zone();
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
    std::map<std::string, std::pair<std::string, SourceLocation>> seen;
    auto add = [&](const std::string& name, std::string_view kind, const SourceLocation& where) {
      auto [it, inserted] = seen.emplace(name, std::pair{std::string(kind), where});
      if (!inserted)
        error(where, "name '" + name + "' is already used by the " + it->second.first + " at " +
                         place(it->second.second));
    };
    for (const Zone& zone : policy_.zones) add(zone.name, "zone", zone.where);
    for (const NamedSet& set : policy_.sets) add(set.name, "set", set.where);
    for (const Rule& rule : policy_.rules) add(rule.name, "rule", rule.where);
    for (const Bind& bind : policy_.binds) add(bind.name, "bind", bind.where);
    for (const Forward& forward : policy_.forwards) add(forward.name, "forward", forward.where);
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
                                place(it->second->where));
      }
  }

  const Zone* require_zone(const std::string& name, const SourceLocation& where,
                           std::string_view used_by) {
    if (const Zone* zone = policy_.find_zone(name)) return zone;
    std::string message = "unknown zone '" + name + "' in " + std::string(used_by);
    if (auto hint = closest_match(name, zone_names_); !hint.empty())
      message += " (did you mean '" + hint + "'?)";
    else if (zone_names_.empty())
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

  // Whether every packet `later` matches is also matched by `earlier` (conservatively:
  // only rules without addresses, limits and socket owners are compared).
  static bool covers(const Rule& earlier, const Rule& later) {
    if (!earlier.from.empty() || !earlier.to.empty() || earlier.limit || earlier.user ||
        !earlier.unit.empty())
      return false;
    if (!earlier.protocols.empty()) {
      if (later.protocols.empty()) return false;
      for (Protocol protocol : later.protocols)
        if (std::find(earlier.protocols.begin(), earlier.protocols.end(), protocol) ==
            earlier.protocols.end())
          return false;
    }
    if (earlier.ports.empty()) return true;
    if (later.ports.empty()) return false;
    return std::all_of(later.ports.begin(), later.ports.end(), [&](const PortRange& range) {
      for (std::uint32_t port = range.first; port <= range.last; ++port) {
        bool inside = std::any_of(earlier.ports.begin(), earlier.ports.end(),
                                  [&](const PortRange& e) { return e.first <= port && port <= e.last; });
        if (!inside) return false;
      }
      return true;
    });
  }

  void check_shadowing() {
    for (std::size_t i = 0; i < policy_.rules.size(); ++i) {
      const Rule& later = policy_.rules[i];
      if (!later.enabled) continue;
      for (std::size_t j = 0; j < i; ++j) {
        const Rule& earlier = policy_.rules[j];
        if (!earlier.enabled || earlier.direction != later.direction || !covers(earlier, later))
          continue;
        if (later.action == Action::accept && earlier.action != Action::accept)
          warning(later.where, "accept rule '" + later.name + "' comes after " +
                                   std::string(to_string(earlier.action)) + " rule '" +
                                   earlier.name + "' at " + place(earlier.where) +
                                   ", which covers it: it can never accept anything");
        else
          warning(later.where, "rule '" + later.name + "' can never match: rule '" + earlier.name +
                                   "' at " + place(earlier.where) + " matches everything it does");
        break;
      }
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
