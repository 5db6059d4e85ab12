#include "parse_policy.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace portier {
namespace {

constexpr std::uint16_t kMaxPort = 65535;

// Collects diagnostics for one file and knows how to turn toml++ regions into places.
class Reader {
 public:
  Reader(std::string file_name, const ServiceTable& services)
      : file_name_(std::move(file_name)), services_(services) {}

  SourceLocation at(const toml::source_region& region) const {
    return {file_name_, static_cast<int>(region.begin.line),
            static_cast<int>(region.begin.column)};
  }

  void error(const toml::source_region& region, std::string message) {
    diagnostics_.push_back({Severity::error, at(region), std::move(message)});
  }

  // Reports keys of `table` that are not in `known`, suggesting the nearest known one.
  void check_keys(const toml::table& table, const std::vector<std::string>& known,
                  std::string_view where) {
    for (auto&& [key, value] : table) {
      if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
      std::string message = "unknown key '" + std::string(key.str()) + "' in " + std::string(where);
      if (auto hint = closest_match(key.str(), known); !hint.empty())
        message += " (did you mean '" + hint + "'?)";
      error(key.source(), message);
    }
  }

  std::optional<Action> action(const toml::node& node, std::string_view key) {
    auto value = node.value<std::string>();
    if (value == "accept") return Action::accept;
    if (value == "drop") return Action::drop;
    if (value == "reject") return Action::reject;
    if (!value) {
      error(node.source(), "'" + std::string(key) + "' must be a string: accept, drop or reject");
    } else {
      std::string message = "unknown action '" + *value + "' for '" + std::string(key) + "'";
      if (auto hint = closest_match(*value, {"accept", "drop", "reject"}); !hint.empty())
        message += " (did you mean '" + hint + "'?)";
      else
        message += ": use accept, drop or reject";
      error(node.source(), message);
    }
    return std::nullopt;
  }

  void read_policy_section(const toml::node& node, Policy& policy) {
    const toml::table* table = node.as_table();
    if (!table) {
      error(node.source(), "'policy' must be a table: [policy]");
      return;
    }
    check_keys(*table, {"input", "output"}, "[policy]");
    if (const toml::node* input = table->get("input"))
      if (auto verdict = action(*input, "input")) policy.input = *verdict;
    if (const toml::node* output = table->get("output"))
      if (auto verdict = action(*output, "output")) policy.output = *verdict;
  }

  void read_rules(const toml::node& node, Policy& policy) {
    const toml::array* array = node.as_array();
    if (!array || !array->is_array_of_tables()) {
      error(node.source(), "'rule' must be an array of tables: write each rule as [[rule]]");
      return;
    }
    std::map<std::string, SourceLocation> names;
    for (const toml::node& element : *array) {
      auto rule = read_rule(*element.as_table());
      if (!rule) continue;
      auto [it, inserted] = names.emplace(rule->name, rule->where);
      if (!inserted) {
        const SourceLocation& first = it->second;
        diagnostics_.push_back(
            {Severity::error, rule->where,
             "rule name '" + rule->name + "' is already used by the rule at " + first.file + ":" +
                 std::to_string(first.line) + ":" + std::to_string(first.column)});
        continue;
      }
      policy.rules.push_back(std::move(*rule));
    }
  }

  std::vector<Diagnostic> take_diagnostics() { return std::move(diagnostics_); }

 private:
  std::optional<Rule> read_rule(const toml::table& table) {
    std::size_t errors_before = error_count();
    Rule rule;
    rule.where = at(table.source());
    check_keys(table, {"name", "direction", "protocols", "ports", "action", "enabled", "comment"},
               "[[rule]]");

    if (const toml::node* name = table.get("name")) {
      if (auto text = name->value<std::string>()) {
        if (valid_rule_name(*text))
          rule.name = *text;
        else
          error(name->source(),
                "rule name '" + *text +
                    "' must be 1-63 characters of letters, digits, '-', '_' or '.', starting "
                    "with a letter or digit");
      } else {
        error(name->source(), "'name' must be a string");
      }
    } else {
      error(table.source(), "rule has no 'name': every rule needs a unique name");
    }

    if (const toml::node* direction = table.get("direction")) {
      auto text = direction->value<std::string>();
      if (text == "in") {
        rule.direction = Direction::in;
      } else if (text == "out") {
        rule.direction = Direction::out;
      } else {
        error(direction->source(), "'direction' must be \"in\" or \"out\"");
      }
    }

    if (const toml::node* protocols = table.get("protocols")) read_protocols(*protocols, rule);

    if (const toml::node* action_node = table.get("action")) {
      if (auto verdict = action(*action_node, "action")) rule.action = *verdict;
    } else {
      error(table.source(), "rule has no 'action': say accept, drop or reject");
    }

    if (const toml::node* enabled = table.get("enabled")) {
      if (auto flag = enabled->value<bool>())
        rule.enabled = *flag;
      else
        error(enabled->source(), "'enabled' must be true or false");
    }

    if (const toml::node* comment = table.get("comment")) {
      if (auto text = comment->value<std::string>())
        rule.comment = *text;
      else
        error(comment->source(), "'comment' must be a string");
    }

    // Ports come last: service names resolve per protocol of the rule.
    if (const toml::node* ports = table.get("ports")) {
      if (rule.protocols.empty() && error_count() == errors_before && !table.get("protocols"))
        error(ports->source(), "'ports' needs 'protocols' (tcp, udp or both) in the same rule");
      else
        read_ports(*ports, rule);
    }

    if (error_count() != errors_before) return std::nullopt;
    return rule;
  }

  static bool valid_rule_name(std::string_view name) {
    if (name.empty() || name.size() > 63 || !std::isalnum(static_cast<unsigned char>(name[0])))
      return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    });
  }

  // A string or an array of strings, as `protocols` and `ports` accept both.
  template <typename Each>
  void for_each_item(const toml::node& node, Each&& each) {
    if (const toml::array* array = node.as_array()) {
      if (array->empty()) error(node.source(), "empty list: leave the key out to match anything");
      for (const toml::node& item : *array) each(item);
    } else {
      each(node);
    }
  }

  void read_protocols(const toml::node& node, Rule& rule) {
    for_each_item(node, [&](const toml::node& item) {
      auto text = item.value<std::string>();
      if (text == "tcp" || text == "udp") {
        Protocol protocol = *text == "tcp" ? Protocol::tcp : Protocol::udp;
        if (std::find(rule.protocols.begin(), rule.protocols.end(), protocol) ==
            rule.protocols.end())
          rule.protocols.push_back(protocol);
      } else if (!text) {
        error(item.source(), "a protocol must be a string: \"tcp\" or \"udp\"");
      } else {
        std::string message = "unknown protocol '" + *text + "'";
        if (auto hint = closest_match(*text, {"tcp", "udp"}); !hint.empty())
          message += " (did you mean '" + hint + "'?)";
        else
          message += ": use tcp or udp";
        error(item.source(), message);
      }
    });
    std::sort(rule.protocols.begin(), rule.protocols.end());
  }

  void read_ports(const toml::node& node, Rule& rule) {
    for_each_item(node, [&](const toml::node& item) {
      if (auto number = item.value_exact<std::int64_t>()) {
        if (*number < 0 || *number > kMaxPort) {
          error(item.source(), "port " + std::to_string(*number) + " is out of range 0-65535");
          return;
        }
        auto port = static_cast<std::uint16_t>(*number);
        rule.ports.push_back({port, port});
      } else if (auto text = item.value_exact<std::string>()) {
        if (auto range = read_port_text(*text, rule, item.source())) rule.ports.push_back(*range);
      } else {
        error(item.source(), "a port must be a number, a range \"low-high\" or a service name");
      }
    });
  }

  std::optional<std::uint16_t> read_port_number(std::string_view text,
                                                 const toml::source_region& where) {
    unsigned long value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc() && end == text.data() + text.size() && value <= kMaxPort)
      return static_cast<std::uint16_t>(value);
    error(where, "port '" + std::string(text) + "' is not a number from 0 to 65535");
    return std::nullopt;
  }

  std::optional<PortRange> read_port_text(const std::string& text, const Rule& rule,
                                          const toml::source_region& where) {
    if (text.empty()) {
      error(where, "empty port");
      return std::nullopt;
    }
    if (std::isdigit(static_cast<unsigned char>(text[0]))) {
      auto dash = text.find('-');
      if (dash == std::string::npos) {
        auto port = read_port_number(text, where);
        if (!port) return std::nullopt;
        return PortRange{*port, *port};
      }
      auto first = read_port_number(std::string_view(text).substr(0, dash), where);
      auto last = read_port_number(std::string_view(text).substr(dash + 1), where);
      if (!first || !last) return std::nullopt;
      if (*first > *last) {
        error(where, "port range '" + text + "' runs backwards: write it low-high");
        return std::nullopt;
      }
      return PortRange{*first, *last};
    }
    return resolve_service(text, rule, where);
  }

  // A service name must mean the same port for every protocol of the rule, or the
  // one rule could not say both.
  std::optional<PortRange> resolve_service(const std::string& name, const Rule& rule,
                                           const toml::source_region& where) {
    std::optional<std::uint16_t> port;
    for (Protocol protocol : rule.protocols) {
      auto found = services_.port(name, protocol);
      if (!found) {
        std::string message = "unknown service '" + name + "' for " +
                              std::string(to_string(protocol)) + " (not in /etc/services)";
        if (auto hint = closest_match(name, services_.names(protocol)); !hint.empty())
          message = "unknown service '" + name + "' for " + std::string(to_string(protocol)) +
                    " (did you mean '" + hint + "'?)";
        error(where, message);
        return std::nullopt;
      }
      if (port && *port != *found) {
        error(where, "service '" + name + "' is port " + std::to_string(*port) + " for tcp but " +
                         std::to_string(*found) + " for udp: split the rule by protocol");
        return std::nullopt;
      }
      port = found;
    }
    if (!port) return std::nullopt;
    return PortRange{*port, *port};
  }

  std::size_t error_count() const {
    return static_cast<std::size_t>(
        std::count_if(diagnostics_.begin(), diagnostics_.end(),
                      [](const Diagnostic& d) { return d.severity == Severity::error; }));
  }

  std::string file_name_;
  const ServiceTable& services_;
  std::vector<Diagnostic> diagnostics_;
};

}  // namespace

std::string ParsedPolicy::report() const {
  std::string printed;
  for (const Diagnostic& diagnostic : diagnostics) {
    printed += format_with_source(diagnostic, text);
    printed += '\n';
  }
  return printed;
}

ParsedPolicy parse_policy(std::string_view source, const std::string& file_name,
                          const ServiceTable& services) {
  ParsedPolicy result;
  result.text = std::string(source);
  result.policy.source = file_name;
  Reader reader(file_name, services);

  toml::table document;
  try {
    document = toml::parse(result.text, file_name);
  } catch (const toml::parse_error& failure) {
    result.diagnostics.push_back(
        {Severity::error, reader.at(failure.source()), std::string(failure.description())});
    return result;
  }

  reader.check_keys(document, {"policy", "rule"}, "the policy file");
  if (const toml::node* section = document.get("policy"))
    reader.read_policy_section(*section, result.policy);
  if (const toml::node* rules = document.get("rule")) reader.read_rules(*rules, result.policy);
  result.diagnostics = reader.take_diagnostics();
  return result;
}

ParsedPolicy parse_policy_file(const std::string& path, const ServiceTable& services) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    ParsedPolicy result;
    result.diagnostics.push_back(
        {Severity::error, {path, 0, 0}, std::string("cannot read policy: ") + std::strerror(errno)});
    return result;
  }
  std::stringstream contents;
  contents << file.rdbuf();
  return parse_policy(contents.str(), path, services);
}

}  // namespace portier
