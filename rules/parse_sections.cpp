// Reading the sections of one policy file: [policy], [nat], [zone.*], [set.*], [[rule]],
// [[bind]], [[forward]].
#include <algorithm>
#include <charconv>

#include "neighbours.h"
#include "policy_reader.h"

namespace portier {
namespace {

// What is wrong with `name` as a zone's interface, or empty. IFNAMSIZ is 16 with the NUL;
// a '*' is nft's wildcard and only makes sense at the end, after a prefix (nft has no
// wildcard without one); the name goes into nft text and error messages.
std::string interface_name_error(const std::string& name) {
  if (std::any_of(name.begin(), name.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '\\';
      }))
    return "an interface name has a control character or a backslash";
  if (name == "*")
    return "'*' alone is not an interface name: a wildcard needs a prefix ('eth*'); traffic "
           "of interfaces in no zone follows [policy]";
  const auto star = name.find('*');
  if (name.empty() || name.size() > 15 || (star != std::string::npos && star != name.size() - 1) ||
      name.find_first_of(" /\"\t") != std::string::npos)
    return "'" + name +
           "' is not an interface name (at most 15 characters, no spaces or '/', a '*' only at "
           "the end)";
  return {};
}

}  // namespace

void PolicyReader::read_document(const toml::table& document, Policy& policy,
                                 const std::function<void()>& more_rules) {
  if (is_drop_in_)
    check_keys(document, {"zone", "set", "rule", "bind", "forward"}, "a drop-in file");
  else
    check_keys(document, {"policy", "nat", "neighbours", "zone", "set", "rule", "bind", "forward"},
               "the policy file");
  if (!is_drop_in_) {
    if (const toml::node* node = document.get("policy")) {
      if (const toml::table* table = node->as_table())
        read_policy_section(*table, policy);
      else
        error(node->source(), "'policy' must be a table: [policy]");
    }
    if (const toml::node* node = document.get("nat")) {
      if (const toml::table* table = node->as_table())
        read_nat_section(*table, policy);
      else
        error(node->source(), "'nat' must be a table: [nat]");
    }
    if (const toml::node* node = document.get("neighbours")) {
      if (const toml::table* table = node->as_table())
        read_neighbours_section(*table, policy);
      else
        error(node->source(), "'neighbours' must be a table: [neighbours]");
    }
  }
  if (const toml::node* node = document.get("zone")) {
    if (const toml::table* table = node->as_table())
      read_zones(*table, policy);
    else
      error(node->source(), "'zone' must be a table of zones: [zone.NAME]");
  }
  if (const toml::node* node = document.get("set")) {
    if (const toml::table* table = node->as_table())
      read_sets(*table, policy);
    else
      error(node->source(), "'set' must be a table of sets: [set.NAME]");
  }
  each_table_of(document, "rule", [&](const toml::table& t) { read_rule(t, policy); });
  if (more_rules) more_rules();
  each_table_of(document, "bind", [&](const toml::table& t) { read_bind(t, policy); });
  each_table_of(document, "forward", [&](const toml::table& t) { read_forward(t, policy); });
}

template <typename Each>
void PolicyReader::each_table_of(const toml::node& document, std::string_view key, Each&& each) {
  const toml::node* node = document.as_table()->get(key);
  if (!node) return;
  const toml::array* array = node->as_array();
  if (!array || !array->is_array_of_tables()) {
    error(node->source(), "'" + std::string(key) + "' must be an array of tables: write each as [[" +
                              std::string(key) + "]]");
    return;
  }
  for (const toml::node& element : *array) each(*element.as_table());
}

void PolicyReader::read_policy_section(const toml::table& table, Policy& policy) {
  check_keys(table, {"input", "output", "forward", "log", "log_group"}, "[policy]");
  if (const toml::node* node = table.get("log_group")) {
    auto group = node->value_exact<std::int64_t>();
    if (group && *group >= 0 && *group <= 65535)
      policy.log_group = static_cast<std::uint16_t>(*group);
    else
      error(node->source(), "'log_group' must be an nflog group number from 0 to 65535");
  }
  if (const toml::node* node = table.get("input"))
    if (auto verdict = action(*node, "input")) policy.input = *verdict;
  if (const toml::node* node = table.get("output"))
    if (auto verdict = action(*node, "output")) policy.output = *verdict;
  if (const toml::node* node = table.get("forward"))
    if (auto verdict = action(*node, "forward")) policy.forward = *verdict;
  if (const toml::node* node = table.get("log")) {
    auto text = node->value_exact<std::string>();
    if (text == "off") policy.log = LogMode::off;
    else if (text == "denied") policy.log = LogMode::denied;
    else if (text == "all") policy.log = LogMode::all;
    else error(node->source(), "'log' must be \"off\", \"denied\" or \"all\"");
  }
}

void PolicyReader::read_nat_section(const toml::table& table, Policy& policy) {
  check_keys(table, {"masquerade"}, "[nat]");
  if (const toml::node* node = table.get("masquerade"))
    for (const auto& [zone, item] : strings(*node, "masquerade")) policy.masquerade.push_back(zone);
}

void PolicyReader::read_neighbours_section(const toml::table& table, Policy& policy) {
  std::vector<std::string> known;
  for (const NeighbourStack& stack : neighbour_stacks()) known.emplace_back(stack.name);
  known.emplace_back("published");
  check_keys(table, known, "[neighbours]");
  policy.neighbours.where = at(table.source());
  for (const NeighbourStack& stack : neighbour_stacks())
    if (const toml::node* node = table.get(stack.name))
      if (auto on = boolean(*node, stack.name); on && !*on)
        policy.neighbours.off.emplace_back(stack.name);
  if (const toml::node* node = table.get("published")) {
    auto text = node->value_exact<std::string>();
    if (text == "policy")
      policy.neighbours.published_open = false;
    else if (text == "open")
      policy.neighbours.published_open = true;
    else
      error(node->source(),
            "'published' must be \"policy\" (the input rules decide) or \"open\" "
            "(open to everyone, as Docker does it)");
  }
}

// toml++ keeps a table's keys sorted; people expect their zones and sets in file order.
std::vector<std::pair<const toml::key*, const toml::node*>> in_file_order(const toml::table& table) {
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (auto&& [key, node] : table) entries.emplace_back(&key, &node);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const auto& x = a.first->source().begin;
    const auto& y = b.first->source().begin;
    return x.line != y.line ? x.line < y.line : x.column < y.column;
  });
  return entries;
}

void PolicyReader::read_zones(const toml::table& zones, Policy& policy) {
  for (auto [key_ptr, node_ptr] : in_file_order(zones)) {
    const toml::key& key = *key_ptr;
    const toml::node& node = *node_ptr;
    const toml::table* table = node.as_table();
    Zone zone;
    zone.name = std::string(key.str());
    zone.where = at(key.source());
    if (!table) {
      error(node.source(), "zone '" + zone.name + "' must be a table: [zone." + zone.name + "]");
      continue;
    }
    if (!valid_name(node, zone.name, "zone")) continue;
    check_keys(*table, {"interfaces", "networks", "input", "forward_to", "stack"},
               "[zone." + zone.name + "]");
    if (const toml::node* stack = table->get("stack")) {
      if (auto name = string(*stack, "stack")) {
        std::vector<std::string> names;
        for (const NeighbourStack& known : neighbour_stacks()) names.emplace_back(known.name);
        if (find_stack(*name)) {
          zone.stack = *name;
        } else {
          std::string message = "unknown stack '" + *name + "'";
          if (auto hint = closest_match(*name, names); !hint.empty())
            message += " (did you mean '" + hint + "'?)";
          error(stack->source(), message + ": one of docker, podman, libvirt, kubernetes");
        }
      }
    }
    if (const toml::node* interfaces = table->get("interfaces")) {
      for (const auto& [name, item] : strings(*interfaces, "interfaces")) {
        if (std::string problem = interface_name_error(name); problem.empty())
          zone.interfaces.push_back(name);
        else
          error(item->source(), problem);
      }
    }
    if (const toml::node* networks = table->get("networks"))
      for (const auto& [text, item] : strings(*networks, "networks"))
        if (auto network = cidr(text, item->source())) zone.networks.push_back(*network);
    if (const toml::node* input = table->get("input")) zone.input = action(*input, "input");
    if (const toml::node* forward_to = table->get("forward_to"))
      for (const auto& [name, item] : strings(*forward_to, "forward_to"))
        zone.forward_to.push_back(name);
    // A stack's zone without interfaces gets the stack's (add_neighbour_zones).
    if (zone.interfaces.empty() && zone.stack.empty() && !find_stack(zone.name))
      diagnostics_.push_back({Severity::warning, zone.where,
                              "zone '" + zone.name +
                                  "' has no interfaces: it matches by 'networks' only, and "
                                  "forward_to and masquerade need interfaces"});
    policy.zones.push_back(std::move(zone));
  }
}

void PolicyReader::read_sets(const toml::table& sets, Policy& policy) {
  for (auto [key_ptr, node_ptr] : in_file_order(sets)) {
    const toml::key& key = *key_ptr;
    const toml::node& node = *node_ptr;
    const toml::table* table = node.as_table();
    NamedSet set;
    set.name = std::string(key.str());
    set.where = at(key.source());
    if (!table) {
      error(node.source(), "set '" + set.name + "' must be a table: [set." + set.name + "]");
      continue;
    }
    if (!valid_name(node, set.name, "set")) continue;
    check_keys(*table, {"family", "elements", "file", "timeout"}, "[set." + set.name + "]");
    const toml::node* family = table->get("family");
    auto family_text = family ? family->value_exact<std::string>() : std::nullopt;
    if (family_text == "ipv4") set.family = SetFamily::ipv4;
    else if (family_text == "ipv6") set.family = SetFamily::ipv6;
    else if (family_text == "port") set.family = SetFamily::port;
    else {
      error(family ? family->source() : table->source(),
            "set '" + set.name + "' needs 'family': \"ipv4\", \"ipv6\" or \"port\"");
      continue;
    }
    if (const toml::node* elements = table->get("elements")) {
      if (set.family == SetFamily::port) {
        set.ports = ports(*elements, {Protocol::tcp});
      } else {
        for (const auto& [text, item] : strings(*elements, "elements")) {
          auto address = cidr(text, item->source());
          if (!address) continue;
          if ((address->family == Family::ipv4) != (set.family == SetFamily::ipv4)) {
            error(item->source(), "'" + text + "' is not an " + *family_text + " address");
            continue;
          }
          set.addresses.push_back(*address);
        }
      }
    }
    if (const toml::node* file = table->get("file")) read_set_file(*file, set);
    if (const toml::node* timeout = table->get("timeout")) set.timeout = duration(*timeout, "timeout");
    policy.sets.push_back(std::move(set));
  }
}

// A set file is one element per line with '#' comments. It may hold a million lines,
// so its lines are read with a cheap parser, and its errors name its own lines.
void PolicyReader::read_set_file(const toml::node& node, NamedSet& set) {
  auto name = string(node, "file");
  if (!name) return;
  set.file = *name;
  std::filesystem::path path = *name;
  if (path.is_relative()) path = std::filesystem::path(file_name_).parent_path() / path;
  std::string why;  // unused: the message names the file only, as it always has
  const std::optional<std::string> contents = files_.read(path.string(), why);
  if (!contents) {
    error(node.source(), "cannot read set file '" + path.string() + "'");
    return;
  }
  int line_number = 0;
  int errors = 0;
  // Line by line as std::getline() splits: at each '\n', and a last line without one.
  for (std::size_t start = 0; start < contents->size();) {
    const std::size_t newline = contents->find('\n', start);
    const std::size_t line_end = newline == std::string::npos ? contents->size() : newline;
    std::string_view line = std::string_view(*contents).substr(start, line_end - start);
    start = line_end + 1;
    ++line_number;
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    auto begin = line.find_first_not_of(" \t\r");
    if (begin == std::string::npos) continue;
    auto end = line.find_last_not_of(" \t\r");
    std::string_view text = std::string_view(line).substr(begin, end - begin + 1);
    SourceLocation where{path.string(), line_number, static_cast<int>(begin) + 1};
    if (set.family == SetFamily::port) {
      std::uint16_t port = 0;
      auto [stop, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
      if (ec == std::errc() && stop == text.data() + text.size()) {
        set.ports.push_back({port, port});
        continue;
      }
    } else {
      std::size_t before = error_count();
      auto address = cidr(text, node.source());
      if (address && (address->family == Family::ipv4) == (set.family == SetFamily::ipv4)) {
        set.addresses.push_back(*address);
        continue;
      }
      // cidr() blamed the `file` key; blame the line in the set file instead.
      if (error_count() > before) diagnostics_.pop_back();
    }
    if (++errors <= 10)
      error_at(where, "'" + std::string(text) + "' is not a valid element of " +
                          (set.family == SetFamily::ipv4   ? "an ipv4"
                           : set.family == SetFamily::ipv6 ? "an ipv6"
                                                           : "a port") +
                          " set");
  }
  if (errors > 10)
    error(node.source(), std::to_string(errors - 10) + " more bad lines in '" + path.string() + "'");
}

void PolicyReader::read_rule(const toml::table& table, Policy& policy) {
  std::size_t errors_before = error_count();
  Rule rule;
  rule.where = at(table.source());
  check_keys(table,
             {"name", "direction", "protocols", "ports", "from", "to", "action", "log", "limit",
              "enabled", "user", "unit", "comment"},
             "[[rule]]");

  if (const toml::node* name = table.get("name")) {
    if (auto text = string(*name, "name"); text && valid_name(*name, *text, "rule")) rule.name = *text;
  } else {
    error(table.source(), "rule has no 'name': every rule needs a unique name");
  }
  if (const toml::node* direction = table.get("direction")) {
    auto text = direction->value_exact<std::string>();
    if (text == "in") rule.direction = Direction::in;
    else if (text == "out") rule.direction = Direction::out;
    else if (text == "forward") rule.direction = Direction::forward;
    else error(direction->source(), "'direction' must be \"in\", \"out\" or \"forward\"");
  }
  const toml::node* protocol_node = table.get("protocols");
  if (protocol_node) rule.protocols = protocols(*protocol_node);
  if (const toml::node* node = table.get("action")) {
    if (auto verdict = action(*node, "action")) rule.action = *verdict;
  } else {
    error(table.source(), "rule has no 'action': say accept, drop or reject");
  }
  if (const toml::node* node = table.get("enabled"))
    if (auto flag = boolean(*node, "enabled")) rule.enabled = *flag;
  if (const toml::node* node = table.get("log"))
    if (auto flag = boolean(*node, "log")) rule.log = *flag;
  if (const toml::node* node = table.get("comment"))
    if (auto text = string(*node, "comment")) rule.comment = *text;
  if (const toml::node* node = table.get("from")) rule.from = endpoints(*node, "from");
  if (const toml::node* node = table.get("to")) rule.to = endpoints(*node, "to");
  if (const toml::node* node = table.get("limit")) {
    rule.limit = rate(*node);
    if (rule.limit && rule.action != Action::accept)
      error(node->source(), "'limit' caps how many new connections an accept rule lets in: "
                            "use it with action = \"accept\"");
  }
  if (const toml::node* node = table.get("user")) {
    if (rule.direction != Direction::out)
      error(node->source(), "'user' matches the owner of a local socket sending out: only "
                            "direction = \"out\" rules can use it");
    else
      rule.user = user(*node, &rule.user_name);
  }
  if (const toml::node* node = table.get("unit")) {
    if (rule.direction == Direction::forward)
      error(node->source(), "'unit' matches a local socket: forwarded packets have none");
    else if (auto text = string(*node, "unit")) {
      if (auto problem = unit_name_problem(*text))
        error(node->source(), *problem);
      else
        rule.unit = *text;
    }
  }
  // Ports come last: service names resolve per protocol of the rule.
  if (const toml::node* node = table.get("ports")) {
    bool ports_fit = !rule.protocols.empty() &&
                     std::all_of(rule.protocols.begin(), rule.protocols.end(), [](Protocol p) {
                       return p == Protocol::tcp || p == Protocol::udp || p == Protocol::sctp;
                     });
    if (!protocol_node)
      error(node->source(), "'ports' needs 'protocols' (tcp, udp or both) in the same rule");
    else if (!ports_fit && error_count() == errors_before)
      error(node->source(), "'ports' needs protocols that have ports: tcp, udp or sctp only");
    else if (ports_fit)
      rule.ports = ports(*node, rule.protocols);
  }
  if (error_count() == errors_before) policy.rules.push_back(std::move(rule));
}

void PolicyReader::read_bind(const toml::table& table, Policy& policy) {
  std::size_t errors_before = error_count();
  Bind bind;
  bind.where = at(table.source());
  check_keys(table, {"name", "protocols", "ports", "unit", "cgroup", "user"}, "[[bind]]");
  if (const toml::node* name = table.get("name")) {
    if (auto text = string(*name, "name"); text && valid_name(*name, *text, "bind")) bind.name = *text;
  } else {
    error(table.source(), "bind has no 'name': every bind needs a unique name");
  }
  const toml::node* protocol_node = table.get("protocols");
  if (protocol_node) bind.protocols = protocols(*protocol_node);
  bool ports_fit = !bind.protocols.empty() &&
                   std::all_of(bind.protocols.begin(), bind.protocols.end(), [](Protocol p) {
                     return p == Protocol::tcp || p == Protocol::udp || p == Protocol::sctp;
                   });
  if (const toml::node* node = table.get("ports")) {
    if (ports_fit) bind.ports = ports(*node, bind.protocols);
    else if (error_count() == errors_before)
      error(protocol_node ? protocol_node->source() : table.source(),
            "a bind needs 'protocols' with ports: tcp, udp or sctp");
  } else {
    error(table.source(), "bind has no 'ports': say which ports the owner serves");
  }
  int owners = 0;
  if (const toml::node* node = table.get("unit")) {
    ++owners;
    if (auto text = string(*node, "unit")) {
      if (auto problem = unit_name_problem(*text))
        error(node->source(), *problem);
      else
        bind.unit = *text;
    }
  }
  if (const toml::node* node = table.get("cgroup")) {
    ++owners;
    if (auto text = string(*node, "cgroup")) {
      std::string path = *text;
      while (!path.empty() && path.front() == '/') path.erase(0, 1);
      while (!path.empty() && path.back() == '/') path.pop_back();
      if (auto problem = cgroup_path_problem(path))
        error(node->source(), *problem);
      else
        bind.cgroup = std::move(path);
    }
  }
  if (const toml::node* node = table.get("user")) {
    ++owners;
    bind.user = user(*node, &bind.user_name);
  }
  if (owners != 1)
    error(table.source(), "a bind needs exactly one owner: unit, cgroup or user");
  if (error_count() == errors_before) policy.binds.push_back(std::move(bind));
}

void PolicyReader::read_forward(const toml::table& table, Policy& policy) {
  std::size_t errors_before = error_count();
  Forward forward;
  forward.where = at(table.source());
  check_keys(table, {"name", "from", "protocols", "ports", "to", "enabled"}, "[[forward]]");
  if (const toml::node* name = table.get("name")) {
    if (auto text = string(*name, "name"); text && valid_name(*name, *text, "forward"))
      forward.name = *text;
  } else {
    error(table.source(), "forward has no 'name': every forward needs a unique name");
  }
  if (const toml::node* node = table.get("from")) {
    if (auto text = string(*node, "from")) forward.from = *text;
  } else {
    error(table.source(), "forward has no 'from': name the zone it listens on");
  }
  if (const toml::node* node = table.get("protocols")) {
    forward.protocols = protocols(*node);
    bool fit = !forward.protocols.empty() &&
               std::all_of(forward.protocols.begin(), forward.protocols.end(),
                           [](Protocol p) { return p == Protocol::tcp || p == Protocol::udp; });
    if (!fit && error_count() == errors_before)
      error(node->source(), "a forward's 'protocols' must be tcp, udp or both");
  } else {
    error(table.source(), "forward has no 'protocols': tcp, udp or both");
  }
  if (const toml::node* node = table.get("ports")) {
    if (error_count() == errors_before) forward.ports = ports(*node, forward.protocols);
  } else {
    error(table.source(), "forward has no 'ports': say which ports are forwarded");
  }
  if (const toml::node* node = table.get("enabled"))
    if (auto flag = boolean(*node, "enabled")) forward.enabled = *flag;
  if (const toml::node* node = table.get("to")) {
    if (auto text = string(*node, "to")) {
      // address, address:port, [v6], [v6]:port
      std::string address = *text;
      std::string port;
      if (!address.empty() && address[0] == '[') {
        auto close = address.find(']');
        if (close != std::string::npos) {
          if (close + 1 < address.size() && address[close + 1] == ':') port = address.substr(close + 2);
          address = address.substr(1, close - 1);
        }
      } else if (std::count(address.begin(), address.end(), ':') == 1) {
        port = address.substr(address.find(':') + 1);
        address = address.substr(0, address.find(':'));
      }
      auto target = cidr(address, node->source());
      if (target && target->prefix != target->size() * 8)
        error(node->source(), "'to' must be one address, not a network");
      else if (target)
        forward.to_address = *target;
      if (!port.empty()) forward.to_port = port_number(port, node->source());
    }
  } else {
    error(table.source(), "forward has no 'to': the address[:port] to send connections to");
  }
  if (error_count() == errors_before) policy.forwards.push_back(std::move(forward));
}

}  // namespace portier
