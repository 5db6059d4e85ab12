#include "write_policy.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace portier {
namespace {

// The TOML text is written directly, not through toml++'s tables and formatter: portierd
// writes its last-good copy on every load, and for a 10,000-rule policy building and
// printing those tables cost about a quarter of portierd's CPU time per reload. The form
// is the one toml++ prints: literal strings where they can be, keys in a table sorted.
// The text's room at the start: a rule with a name, protocols, ports, a source and an
// action takes about 100 bytes. A 10,000-rule policy is a megabyte, and growing to it by
// doubling wrote about twice that into fresh pages on every load.
constexpr std::size_t kRoomAtStart = 4096;
constexpr std::size_t kRoomPerRule = 128;

class Writer {
 public:
  explicit Writer(std::size_t room) { out_.reserve(room); }
  std::string take() { return std::move(out_); }

  void comment(std::string_view text) { out_.append("# ").append(text).append("\n"); }
  void table(std::string_view path) { out_.append("\n[").append(path).append("]\n"); }
  void table(std::string_view super, std::string_view name) {
    out_.append("\n[").append(super).append(".");
    key_of(name);
    out_.append("]\n");
  }
  void array_table(std::string_view name) { out_.append("\n[[").append(name).append("]]\n"); }

  void text(std::string_view key, std::string_view value) {
    start(key);
    quoted(value);
    out_ += '\n';
  }
  void number(std::string_view key, long long value) {
    start(key);
    out_.append(std::to_string(value)).append("\n");
  }
  void boolean(std::string_view key, bool value) {
    start(key);
    out_.append(value ? "true\n" : "false\n");
  }
  // An array of strings, each from `item(element)`.
  template <class List, class Item>
  void texts(std::string_view key, const List& list, Item item) {
    start(key);
    if (list.empty()) {
      out_.append("[]\n");
      return;
    }
    out_.append("[ ");
    bool first = true;
    for (const auto& element : list) {
      if (!first) out_.append(", ");
      first = false;
      quoted(item(element));
    }
    out_.append(" ]\n");
  }
  void texts(std::string_view key, const std::vector<std::string>& list) {
    texts(key, list, [](const std::string& s) -> const std::string& { return s; });
  }

 private:
  void start(std::string_view key) {
    key_of(key);
    out_.append(" = ");
  }
  static bool bare(std::string_view key) {
    if (key.empty()) return false;
    for (const char c : key)
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '-'))
        return false;
    return true;
  }
  void key_of(std::string_view key) {
    if (bare(key))
      out_.append(key);
    else
      quoted(key);
  }
  static bool control(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  }
  // A literal string ('...') unless the text holds a quote or a control character; then
  // a basic string with escapes.
  void quoted(std::string_view value) {
    if (std::none_of(value.begin(), value.end(), [](char c) { return c == '\'' || control(c); })) {
      out_.append("'").append(value).append("'");
      return;
    }
    out_ += '"';
    for (const char c : value) {
      switch (c) {
        case '"':
          out_.append("\\\"");
          break;
        case '\\':
          out_.append("\\\\");
          break;
        case '\b':
          out_.append("\\b");
          break;
        case '\t':
          out_.append("\\t");
          break;
        case '\n':
          out_.append("\\n");
          break;
        case '\f':
          out_.append("\\f");
          break;
        case '\r':
          out_.append("\\r");
          break;
        default:
          if (control(c)) {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\u%04X", static_cast<unsigned char>(c));
            out_.append(escaped);
          } else {
            out_ += c;
          }
      }
    }
    out_ += '"';
  }

  std::string out_;
};

std::string port_text(const PortRange& range) {
  return range.first == range.last ? std::to_string(range.first)
                                   : std::to_string(range.first) + "-" + std::to_string(range.last);
}

std::string endpoint_text(const Endpoint& endpoint) {
  switch (endpoint.kind) {
    case Endpoint::Kind::zone:
      return endpoint.name;
    case Endpoint::Kind::set:
      return "@" + endpoint.name;
    case Endpoint::Kind::network:
      return to_string(endpoint.network);
  }
  return endpoint.name;
}

std::string rate(const Rate& limit) {
  static const char* const kUnits[] = {"second", "minute", "hour", "day"};
  return std::to_string(limit.count) + "/" + kUnits[static_cast<int>(limit.unit)];
}

void protocols(Writer& out, const std::vector<Protocol>& list) {
  out.texts("protocols", list, [](Protocol protocol) { return std::string(to_string(protocol)); });
}

void ports(Writer& out, const std::vector<PortRange>& list) { out.texts("ports", list, port_text); }

}  // namespace

std::string write_policy(const Policy& policy) {
  Writer out(kRoomAtStart + policy.rules.size() * kRoomPerRule);
  out.comment("Written by portierd: the last policy the kernel accepted, self-contained.");

  // Tables before arrays of tables, each table's keys in sorted order.
  if (!policy.masquerade.empty()) {
    out.table("nat");
    out.texts("masquerade", policy.masquerade);
  }
  if (!policy.neighbours.off.empty() || policy.neighbours.published_open) {
    out.table("neighbours");
    // Sorted, as the keys of a table: "published" among the stacks' names.
    std::vector<std::string> keys = policy.neighbours.off;
    if (policy.neighbours.published_open) keys.push_back("published");
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    for (const std::string& key : keys) {
      if (key == "published" && policy.neighbours.published_open)
        out.text(key, "open");
      else
        out.boolean(key, false);
    }
  }
  static const char* const kLog[] = {"off", "denied", "all"};
  out.table("policy");
  out.text("forward", to_string(policy.forward));
  out.text("input", to_string(policy.input));
  out.text("log", kLog[static_cast<int>(policy.log)]);
  if (policy.log_group) out.number("log_group", *policy.log_group);
  out.text("output", to_string(policy.output));

  for (const Bind& bind : policy.binds) {
    out.array_table("bind");
    if (!bind.user && bind.unit.empty()) out.text("cgroup", bind.cgroup);
    out.text("name", bind.name);
    ports(out, bind.ports);
    protocols(out, bind.protocols);
    if (bind.user)
      out.number("user", *bind.user);
    else if (!bind.unit.empty())
      out.text("unit", bind.unit);
  }

  for (const Forward& forward : policy.forwards) {
    out.array_table("forward");
    std::string target = to_string(forward.to_address);
    if (forward.to_address.family == Family::ipv6) target = "[" + target + "]";
    if (forward.to_port) target += ":" + std::to_string(*forward.to_port);
    if (!forward.enabled) out.boolean("enabled", false);
    out.text("from", forward.from);
    out.text("name", forward.name);
    ports(out, forward.ports);
    protocols(out, forward.protocols);
    out.text("to", target);
  }

  for (const Rule& rule : policy.rules) {
    out.array_table("rule");
    out.text("action", to_string(rule.action));
    if (!rule.comment.empty()) out.text("comment", rule.comment);
    out.text("direction", to_string(rule.direction));
    if (!rule.enabled) out.boolean("enabled", false);
    if (!rule.from.empty()) out.texts("from", rule.from, endpoint_text);
    if (rule.limit) out.text("limit", rate(*rule.limit));
    if (rule.log) out.boolean("log", true);
    out.text("name", rule.name);
    if (!rule.ports.empty()) ports(out, rule.ports);
    if (!rule.protocols.empty()) protocols(out, rule.protocols);
    if (!rule.to.empty()) out.texts("to", rule.to, endpoint_text);
    if (!rule.unit.empty()) out.text("unit", rule.unit);
    if (rule.user) out.number("user", *rule.user);
  }

  // Zones and sets one section each, in the policy's order: it is theirs (neighbour zones
  // are matched in it).
  for (const Zone& zone : policy.zones) {
    if (zone.builtin) continue;  // parsing makes it again
    out.table("zone", zone.name);
    if (!zone.forward_to.empty()) out.texts("forward_to", zone.forward_to);
    if (zone.input) out.text("input", to_string(*zone.input));
    if (!zone.interfaces.empty()) out.texts("interfaces", zone.interfaces);
    if (!zone.networks.empty())
      out.texts("networks", zone.networks, [](const Cidr& network) { return to_string(network); });
    if (!zone.stack.empty() && zone.stack != zone.name) out.text("stack", zone.stack);
  }
  for (const NamedSet& set : policy.sets) {
    static const char* const kFamilies[] = {"ipv4", "ipv6", "port"};
    out.table("set", set.name);
    // No elements, no key: the parser refuses an empty list (fuzz_policy).
    if (set.family == SetFamily::port && !set.ports.empty())
      out.texts("elements", set.ports, port_text);
    else if (set.family != SetFamily::port && !set.addresses.empty())
      out.texts("elements", set.addresses, [](const Cidr& address) { return to_string(address); });
    out.text("family", kFamilies[static_cast<int>(set.family)]);
    if (set.timeout) out.text("timeout", std::to_string(set.timeout->count()) + "s");
  }
  return out.take();
}

namespace {

// A rule given at run time and the one-line edit are small: toml++ writes the one and
// finds the source position of the other.
toml::array toml_strings(const std::vector<std::string>& items) {
  toml::array array;
  for (const std::string& item : items) array.push_back(item);
  return array;
}

}  // namespace

std::string write_rule(const RuleFields& rule) {
  toml::table table{{"name", rule.name}, {"direction", rule.direction}, {"action", rule.action}};
  if (!rule.protocols.empty()) table.insert("protocols", toml_strings(rule.protocols));
  if (!rule.ports.empty()) table.insert("ports", toml_strings(rule.ports));
  if (!rule.from.empty()) table.insert("from", toml_strings(rule.from));
  if (!rule.to.empty()) table.insert("to", toml_strings(rule.to));
  std::ostringstream text;
  text << toml::toml_formatter{toml::table{{"rule", toml::array{table}}}} << "\n";
  return text.str();
}

std::optional<std::string> edit_enabled(const std::string& text, const std::string& file_name,
                                        const std::string& name, bool enabled) {
  toml::table document = toml::parse(text, file_name);
  const toml::table* entry = nullptr;
  for (const char* key : {"rule", "forward"})
    if (const toml::array* array = document[key].as_array())
      for (const toml::node& node : *array)
        if (const toml::table* table = node.as_table();
            table && (*table)["name"].value<std::string>() == name)
          entry = table;
  if (!entry) return std::nullopt;

  // The parser's source positions say where the values are; the text is edited by line.
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  const std::string value = enabled ? "true" : "false";
  if (const toml::node* node = entry->get("enabled")) {
    std::string& line = lines.at(node->source().begin.line - 1);
    std::size_t column = node->source().begin.column - 1;
    std::size_t length = line.compare(column, 4, "true") == 0 ? 4 : 5;
    line.replace(column, length, value);
  } else {
    const toml::node* name_node = entry->get("name");
    std::size_t after = name_node->source().begin.line;  // 1-based line of name = index after it
    const std::string& name_line = lines.at(after - 1);
    std::string indent = name_line.substr(0, name_line.find_first_not_of(" \t"));
    lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(after), indent + "enabled = " + value);
  }
  std::string edited;
  for (const std::string& line : lines) edited += line + "\n";
  if (!text.empty() && text.back() != '\n') edited.pop_back();
  return edited;
}

}  // namespace portier
