#include "write_policy.h"

#include <toml++/toml.h>

#include <sstream>

namespace portier {
namespace {

toml::array strings(const std::vector<std::string>& items) {
  toml::array array;
  for (const std::string& item : items) array.push_back(item);
  return array;
}

toml::array protocols(const std::vector<Protocol>& list) {
  toml::array array;
  for (Protocol protocol : list) array.push_back(std::string(to_string(protocol)));
  return array;
}

toml::array ports(const std::vector<PortRange>& list) {
  toml::array array;
  for (const PortRange& range : list)
    array.push_back(range.first == range.last
                        ? std::to_string(range.first)
                        : std::to_string(range.first) + "-" + std::to_string(range.last));
  return array;
}

toml::array endpoints(const std::vector<Endpoint>& list) {
  toml::array array;
  for (const Endpoint& endpoint : list) {
    switch (endpoint.kind) {
      case Endpoint::Kind::zone: array.push_back(endpoint.name); break;
      case Endpoint::Kind::set: array.push_back("@" + endpoint.name); break;
      case Endpoint::Kind::network: array.push_back(to_string(endpoint.network)); break;
    }
  }
  return array;
}

std::string rate(const Rate& limit) {
  static const char* const kUnits[] = {"second", "minute", "hour", "day"};
  return std::to_string(limit.count) + "/" + kUnits[static_cast<int>(limit.unit)];
}

}  // namespace

std::string write_policy(const Policy& policy) {
  toml::table document;
  static const char* const kLog[] = {"off", "denied", "all"};
  document.insert("policy", toml::table{{"input", std::string(to_string(policy.input))},
                                        {"output", std::string(to_string(policy.output))},
                                        {"forward", std::string(to_string(policy.forward))},
                                        {"log", kLog[static_cast<int>(policy.log)]}});
  if (policy.log_group)
    document["policy"].as_table()->insert("log_group", static_cast<std::int64_t>(*policy.log_group));
  if (!policy.masquerade.empty())
    document.insert("nat", toml::table{{"masquerade", strings(policy.masquerade)}});

  if (!policy.neighbours.off.empty() || policy.neighbours.published_open) {
    toml::table neighbours;
    for (const std::string& stack : policy.neighbours.off) neighbours.insert(stack, false);
    if (policy.neighbours.published_open) neighbours.insert("published", "open");
    document.insert("neighbours", std::move(neighbours));
  }

  // Zones and sets are written one section at a time, in the policy's order: a toml::table
  // sorts its keys, but their order is the policy's (neighbour zones are matched in it).
  std::vector<toml::table> sections;
  for (const Zone& zone : policy.zones) {
    if (zone.builtin) continue;  // parsing makes it again
    toml::table table;
    if (!zone.stack.empty() && zone.stack != zone.name) table.insert("stack", zone.stack);
    if (!zone.interfaces.empty()) table.insert("interfaces", strings(zone.interfaces));
    if (!zone.networks.empty()) {
      toml::array networks;
      for (const Cidr& network : zone.networks) networks.push_back(to_string(network));
      table.insert("networks", std::move(networks));
    }
    if (zone.input) table.insert("input", std::string(to_string(*zone.input)));
    if (!zone.forward_to.empty()) table.insert("forward_to", strings(zone.forward_to));
    sections.push_back(toml::table{{"zone", toml::table{{zone.name, std::move(table)}}}});
  }


  for (const NamedSet& set : policy.sets) {
    static const char* const kFamilies[] = {"ipv4", "ipv6", "port"};
    toml::table table{{"family", kFamilies[static_cast<int>(set.family)]}};
    if (set.family == SetFamily::port) {
      table.insert("elements", ports(set.ports));
    } else {
      toml::array elements;
      for (const Cidr& address : set.addresses) elements.push_back(to_string(address));
      table.insert("elements", std::move(elements));
    }
    if (set.timeout) table.insert("timeout", std::to_string(set.timeout->count()) + "s");
    sections.push_back(toml::table{{"set", toml::table{{set.name, std::move(table)}}}});
  }

  toml::array rules;
  for (const Rule& rule : policy.rules) {
    toml::table table{{"name", rule.name},
                      {"direction", std::string(to_string(rule.direction))},
                      {"action", std::string(to_string(rule.action))}};
    if (!rule.protocols.empty()) table.insert("protocols", protocols(rule.protocols));
    if (!rule.ports.empty()) table.insert("ports", ports(rule.ports));
    if (!rule.from.empty()) table.insert("from", endpoints(rule.from));
    if (!rule.to.empty()) table.insert("to", endpoints(rule.to));
    if (rule.log) table.insert("log", true);
    if (rule.limit) table.insert("limit", rate(*rule.limit));
    if (rule.user) table.insert("user", static_cast<std::int64_t>(*rule.user));
    if (!rule.unit.empty()) table.insert("unit", rule.unit);
    if (!rule.enabled) table.insert("enabled", false);
    if (!rule.comment.empty()) table.insert("comment", rule.comment);
    rules.push_back(std::move(table));
  }
  if (!rules.empty()) document.insert("rule", std::move(rules));

  toml::array binds;
  for (const Bind& bind : policy.binds) {
    toml::table table{{"name", bind.name}, {"protocols", protocols(bind.protocols)}, {"ports", ports(bind.ports)}};
    if (bind.user)
      table.insert("user", static_cast<std::int64_t>(*bind.user));
    else if (!bind.unit.empty())
      table.insert("unit", bind.unit);
    else
      table.insert("cgroup", bind.cgroup);
    binds.push_back(std::move(table));
  }
  if (!binds.empty()) document.insert("bind", std::move(binds));

  toml::array forwards;
  for (const Forward& forward : policy.forwards) {
    std::string target = to_string(forward.to_address);
    if (forward.to_address.family == Family::ipv6) target = "[" + target + "]";
    if (forward.to_port) target += ":" + std::to_string(*forward.to_port);
    toml::table table{{"name", forward.name}, {"from", forward.from},
                      {"protocols", protocols(forward.protocols)}, {"ports", ports(forward.ports)},
                      {"to", target}};
    if (!forward.enabled) table.insert("enabled", false);
    forwards.push_back(std::move(table));
  }
  if (!forwards.empty()) document.insert("forward", std::move(forwards));

  std::ostringstream out;
  out << "# Written by portierd: the last policy the kernel accepted, self-contained.\n"
      << toml::toml_formatter{document} << "\n";
  for (const toml::table& section : sections) out << "\n" << toml::toml_formatter{section} << "\n";
  return out.str();
}

}  // namespace portier
