// Reading single values of a policy: verdicts, ports, addresses, durations, rates, users.
#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "parse_policy.h"
#include "policy_reader.h"

namespace portier {
namespace {

constexpr std::uint16_t kMaxPort = 65535;

std::string quoted_list(const std::vector<std::string>& words) {
  std::string text;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i > 0) text += i + 1 == words.size() ? " or " : ", ";
    text += words[i];
  }
  return text;
}

// `message (did you mean 'y'?)`, or `message: use a, b or c` when nothing is close.
std::string with_hint(std::string message, const std::string& word,
                      const std::vector<std::string>& choices) {
  if (auto hint = closest_match(word, choices); !hint.empty())
    return message + " (did you mean '" + hint + "'?)";
  return message + ": use " + quoted_list(choices);
}

std::string unknown_word(std::string_view what, const std::string& word,
                         const std::vector<std::string>& choices) {
  return with_hint("unknown " + std::string(what) + " '" + word + "'", word, choices);
}

}  // namespace

void PolicyReader::error(const toml::source_region& region, std::string message) {
  diagnostics_.push_back({Severity::error, at(region), std::move(message)});
}

void PolicyReader::error_at(SourceLocation where, std::string message) {
  diagnostics_.push_back({Severity::error, std::move(where), std::move(message)});
}

std::size_t PolicyReader::error_count() const {
  return static_cast<std::size_t>(
      std::count_if(diagnostics_.begin(), diagnostics_.end(),
                    [](const Diagnostic& d) { return d.severity == Severity::error; }));
}

void PolicyReader::check_keys(const toml::table& table, const std::vector<std::string>& known,
                              std::string_view where) {
  for (auto&& [key, value] : table) {
    if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
    std::string message = "unknown key '" + std::string(key.str()) + "' in " + std::string(where);
    if (auto hint = closest_match(key.str(), known); !hint.empty())
      message += " (did you mean '" + hint + "'?)";
    error(key.source(), message);
  }
}

std::optional<Action> PolicyReader::action(const toml::node& node, std::string_view key) {
  auto value = node.value_exact<std::string>();
  if (value == "accept") return Action::accept;
  if (value == "drop") return Action::drop;
  if (value == "reject") return Action::reject;
  if (!value)
    error(node.source(), "'" + std::string(key) + "' must be a string: accept, drop or reject");
  else
    error(node.source(), with_hint("unknown action '" + *value + "' for '" + std::string(key) + "'",
                                   *value, {"accept", "drop", "reject"}));
  return std::nullopt;
}

std::optional<std::string> PolicyReader::string(const toml::node& node, std::string_view key) {
  if (auto value = node.value_exact<std::string>()) return value;
  error(node.source(), "'" + std::string(key) + "' must be a string");
  return std::nullopt;
}

std::optional<bool> PolicyReader::boolean(const toml::node& node, std::string_view key) {
  if (auto value = node.value_exact<bool>()) return value;
  error(node.source(), "'" + std::string(key) + "' must be true or false");
  return std::nullopt;
}

std::vector<std::pair<std::string, const toml::node*>> PolicyReader::strings(
    const toml::node& node, std::string_view key) {
  std::vector<std::pair<std::string, const toml::node*>> result;
  auto take = [&](const toml::node& item) {
    if (auto text = item.value_exact<std::string>())
      result.emplace_back(*text, &item);
    else
      error(item.source(), "'" + std::string(key) + "' must be a string or a list of strings");
  };
  if (const toml::array* array = node.as_array()) {
    if (array->empty())
      error(node.source(), "'" + std::string(key) + "' is an empty list: leave the key out instead");
    for (const toml::node& item : *array) take(item);
  } else {
    take(node);
  }
  return result;
}

std::vector<Protocol> PolicyReader::protocols(const toml::node& node) {
  static const std::vector<std::string> kNames = {"tcp", "udp", "icmp", "icmpv6", "sctp", "any"};
  std::vector<Protocol> result;
  bool any = false;
  for (const auto& [text, item] : strings(node, "protocols")) {
    auto it = std::find(kNames.begin(), kNames.end(), text);
    if (it == kNames.end()) {
      error(item->source(), unknown_word("protocol", text, kNames));
    } else if (text == "any") {
      any = true;
    } else {
      auto protocol = static_cast<Protocol>(it - kNames.begin());
      if (std::find(result.begin(), result.end(), protocol) == result.end())
        result.push_back(protocol);
    }
  }
  if (any && !result.empty())
    error(node.source(), "'any' already means every protocol: list no others beside it");
  std::sort(result.begin(), result.end());
  return result;
}

std::vector<PortRange> PolicyReader::ports(const toml::node& node,
                                           const std::vector<Protocol>& protocols) {
  std::vector<PortRange> result;
  auto take = [&](const toml::node& item) {
    if (auto number = item.value_exact<std::int64_t>()) {
      if (*number < 0 || *number > kMaxPort) {
        error(item.source(), "port " + std::to_string(*number) + " is out of range 0-65535");
        return;
      }
      auto port = static_cast<std::uint16_t>(*number);
      result.push_back({port, port});
    } else if (auto text = item.value_exact<std::string>()) {
      if (auto range = port_text(*text, protocols, item.source())) result.push_back(*range);
    } else {
      error(item.source(), "a port must be a number, a range \"low-high\" or a service name");
    }
  };
  if (const toml::array* array = node.as_array()) {
    if (array->empty()) error(node.source(), "'ports' is an empty list: leave the key out instead");
    for (const toml::node& item : *array) take(item);
  } else {
    take(node);
  }
  return result;
}

std::optional<std::uint16_t> PolicyReader::port_number(std::string_view text,
                                                       const toml::source_region& where) {
  unsigned long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc() && end == text.data() + text.size() && value <= kMaxPort)
    return static_cast<std::uint16_t>(value);
  error(where, "port '" + std::string(text) + "' is not a number from 0 to 65535");
  return std::nullopt;
}

std::optional<PortRange> PolicyReader::port_text(const std::string& text,
                                                 const std::vector<Protocol>& protocols,
                                                 const toml::source_region& where) {
  if (text.empty()) {
    error(where, "empty port");
    return std::nullopt;
  }
  if (!std::isdigit(static_cast<unsigned char>(text[0]))) return service(text, protocols, where);
  auto dash = text.find('-');
  if (dash == std::string::npos) {
    auto port = port_number(text, where);
    if (!port) return std::nullopt;
    return PortRange{*port, *port};
  }
  auto first = port_number(std::string_view(text).substr(0, dash), where);
  auto last = port_number(std::string_view(text).substr(dash + 1), where);
  if (!first || !last) return std::nullopt;
  if (*first > *last) {
    error(where, "port range '" + text + "' runs backwards: write it low-high");
    return std::nullopt;
  }
  return PortRange{*first, *last};
}

// A service name must mean the same port for every protocol of the rule, or the one
// rule could not say both.
std::optional<PortRange> PolicyReader::service(const std::string& name,
                                               const std::vector<Protocol>& protocols,
                                               const toml::source_region& where) {
  std::optional<std::uint16_t> port;
  std::optional<Protocol> port_protocol;
  for (Protocol protocol : protocols) {
    auto found = tables_.services.port(name, protocol);
    if (!found) {
      std::string message = "unknown service '" + name + "' for " +
                            std::string(to_string(protocol));
      if (auto hint = closest_match(name, tables_.services.names(protocol)); !hint.empty())
        message += " (did you mean '" + hint + "'?)";
      else
        message += " (not in /etc/services)";
      error(where, message);
      return std::nullopt;
    }
    if (port && *port != *found) {
      error(where, "service '" + name + "' is port " + std::to_string(*port) + " for " +
                       std::string(to_string(*port_protocol)) + " but " + std::to_string(*found) +
                       " for " + std::string(to_string(protocol)) +
                       ": split the rule by protocol");
      return std::nullopt;
    }
    port = found;
    port_protocol = protocol;
  }
  if (!port) return std::nullopt;
  return PortRange{*port, *port};
}

std::optional<Cidr> PolicyReader::cidr(std::string_view text, const toml::source_region& where) {
  Cidr result;
  std::string address(text.substr(0, text.find('/')));
  if (inet_pton(AF_INET, address.c_str(), result.bytes.data()) == 1) {
    result.family = Family::ipv4;
  } else if (inet_pton(AF_INET6, address.c_str(), result.bytes.data()) == 1) {
    result.family = Family::ipv6;
  } else {
    error(where, "'" + std::string(text) + "' is not an IPv4 or IPv6 address or network");
    return std::nullopt;
  }
  const unsigned bits = static_cast<unsigned>(result.size() * 8);
  result.prefix = static_cast<std::uint8_t>(bits);
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    std::string_view prefix = text.substr(slash + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(prefix.data(), prefix.data() + prefix.size(), value);
    if (ec != std::errc() || end != prefix.data() + prefix.size() || value > bits) {
      error(where, "prefix length in '" + std::string(text) + "' must be 0 to " +
                       std::to_string(bits));
      return std::nullopt;
    }
    result.prefix = static_cast<std::uint8_t>(value);
  }
  // Host bits set (192.168.1.1/24) are almost always a typo for the network or the host.
  for (unsigned bit = result.prefix; bit < bits; ++bit) {
    if (result.bytes[bit / 8] & (0x80 >> (bit % 8))) {
      error(where, "'" + std::string(text) + "' has host bits set: write the network (" +
                       "or the single address without a prefix)");
      return std::nullopt;
    }
  }
  return result;
}

Duration parse_duration(std::string_view text) {
  Duration result;
  if (text.empty()) result.problem = DurationProblem::malformed;
  std::uint64_t total = 0;
  while (!text.empty() && result.problem == DurationProblem::none) {
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc::result_out_of_range) {
      // Still a duration, only a long one: say so rather than "not a duration".
      while (end != text.data() + text.size() && *end >= '0' && *end <= '9') ++end;
      value = UINT64_MAX;
    } else if (ec != std::errc()) {
      result.problem = DurationProblem::malformed;
      break;
    }
    if (end == text.data() + text.size()) {
      result.problem = DurationProblem::malformed;
      break;
    }
    std::uint64_t unit = 0;
    switch (*end) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      default:
        result.problem = DurationProblem::malformed;
        continue;
    }
    // Checked against the limit before each step, so nothing wraps around.
    if (value > kMaxDurationSeconds / unit || total + value * unit > kMaxDurationSeconds)
      result.problem = DurationProblem::too_long;
    else
      total += value * unit;
    text.remove_prefix(static_cast<std::size_t>(end - text.data()) + 1);
  }
  if (result.problem == DurationProblem::none && total == 0)
    result.problem = DurationProblem::malformed;
  if (result.problem == DurationProblem::none)
    result.value = std::chrono::seconds(static_cast<std::int64_t>(total));
  return result;
}

std::optional<std::chrono::seconds> PolicyReader::duration(const toml::node& node,
                                                           std::string_view key) {
  auto text = node.value_exact<std::string>();
  Duration parsed = text ? parse_duration(*text) : Duration{{}, DurationProblem::malformed};
  if (parsed.problem == DurationProblem::none) return parsed.value;
  if (parsed.problem == DurationProblem::too_long)
    error(node.source(), "'" + std::string(key) + "' is too long: at most " +
                             std::to_string(kMaxDurationSeconds / 86400) + "d (" +
                             std::to_string(kMaxDurationSeconds) + " seconds)");
  else
    error(node.source(), "'" + std::string(key) +
                             "' must be a duration such as \"30s\", \"15m\", \"1h\" or \"1d12h\"");
  return std::nullopt;
}

std::optional<Rate> PolicyReader::rate(const toml::node& node) {
  auto text = node.value_exact<std::string>();
  if (text) {
    auto slash = text->find('/');
    Rate result;
    std::string_view count = std::string_view(*text).substr(0, slash);
    auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), result.count);
    std::string unit = slash == std::string::npos ? "" : text->substr(slash + 1);
    bool unit_ok = true;
    if (unit == "second") result.unit = Rate::Unit::second;
    else if (unit == "minute") result.unit = Rate::Unit::minute;
    else if (unit == "hour") result.unit = Rate::Unit::hour;
    else if (unit == "day") result.unit = Rate::Unit::day;
    else unit_ok = false;
    if (ec == std::errc() && end == count.data() + count.size() && result.count > 0 && unit_ok)
      return result;
  }
  error(node.source(), "'limit' must be a rate such as \"10/minute\" (per second, minute, hour or day)");
  return std::nullopt;
}

std::optional<std::uint32_t> PolicyReader::user(const toml::node& node, std::string* name) {
  auto text = node.value_exact<std::string>();
  if (!text) {
    if (auto number = node.value_exact<std::int64_t>(); number && *number >= 0 && *number < (1LL << 32)) {
      *name = std::to_string(*number);
      return static_cast<std::uint32_t>(*number);
    }
    error(node.source(), "'user' must be a user name or a numeric uid");
    return std::nullopt;
  }
  *name = *text;
  if (auto uid = tables_.users.uid(*text)) return uid;
  std::string message = "unknown user '" + *text + "' (not in /etc/passwd)";
  if (auto hint = closest_match(*text, tables_.users.names()); !hint.empty())
    message = "unknown user '" + *text + "' (did you mean '" + hint + "'?)";
  error(node.source(), message);
  return std::nullopt;
}

// Zones and sets are checked against the whole merged policy later, since a drop-in may
// define what the main file uses.
std::vector<Endpoint> PolicyReader::endpoints(const toml::node& node, std::string_view key) {
  std::vector<Endpoint> result;
  for (const auto& [text, item] : strings(node, key)) {
    Endpoint endpoint;
    endpoint.where = at(item->source());
    if (!text.empty() && text[0] == '@') {
      endpoint.kind = Endpoint::Kind::set;
      endpoint.name = text.substr(1);
    } else if (!text.empty() && (std::isdigit(static_cast<unsigned char>(text[0])) ||
                                 text.find(':') != std::string::npos)) {
      auto network = cidr(text, item->source());
      if (!network) continue;
      endpoint.kind = Endpoint::Kind::network;
      endpoint.network = *network;
    } else {
      endpoint.kind = Endpoint::Kind::zone;
      endpoint.name = text;
    }
    result.push_back(std::move(endpoint));
  }
  return result;
}

bool PolicyReader::valid_name(const toml::node& node, const std::string& name,
                              std::string_view what) {
  // Zones and sets become nft identifiers (chain and set names), which start with a letter.
  const bool letter_first = what == "zone" || what == "set";
  bool ok = !name.empty() && name.size() <= 63 &&
            (letter_first ? std::isalpha(static_cast<unsigned char>(name[0]))
                          : std::isalnum(static_cast<unsigned char>(name[0]))) &&
            std::all_of(name.begin(), name.end(), [](char c) {
              return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
            });
  if (!ok)
    error(node.source(), std::string(what) + " name '" + name +
                             "' must be 1-63 characters of letters, digits, '-', '_' or '.', "
                             "starting with a letter" + (letter_first ? "" : " or digit"));
  return ok;
}

std::optional<std::string> unit_name_problem(std::string_view unit) {
  // systemd's rules (unit_name_is_valid): PREFIX[@INSTANCE].TYPE of at most 255 characters
  // from [A-Za-z0-9:_.\\-]; only units with a cgroup of their own can own a socket.
  static constexpr std::string_view kTypes[] = {".service", ".socket", ".scope",
                                                ".slice",   ".mount",  ".swap"};
  if (unit.empty()) return "the unit name is empty";
  if (unit.size() > 255) return "a unit name has at most 255 characters";
  for (char c : unit) {
    bool fits = std::isalnum(static_cast<unsigned char>(c)) || c == ':' || c == '_' || c == '.' ||
                c == '\\' || c == '-' || c == '@';
    if (!fits) return "'" + std::string(1, c) + "' cannot be part of a unit name";
  }
  std::size_t dot = unit.rfind('.');
  if (dot == std::string_view::npos || dot == 0)
    return "'" + std::string(unit) + "' has no unit type: did you mean '" + std::string(unit) +
           ".service'?";
  std::string_view type = unit.substr(dot);
  if (std::find(std::begin(kTypes), std::end(kTypes), type) == std::end(kTypes))
    return "a " + std::string(type.substr(1)) +
           " unit has no cgroup of its own: name a .service, .socket, .scope, .slice, .mount "
           "or .swap unit";
  std::string_view name = unit.substr(0, dot);
  std::size_t at = name.find('@');
  if (at != std::string_view::npos) {
    if (at == 0) return "a unit name cannot start with '@'";
    if (name.find('@', at + 1) != std::string_view::npos) return "a unit name has at most one '@'";
    if (at + 1 == name.size())
      return "'" + std::string(unit) + "' is a template: name an instance, such as '" +
             std::string(name) + "tty1" + std::string(type) + "'";
  }
  return std::nullopt;
}

std::optional<std::string> cgroup_path_problem(std::string_view path) {
  if (path.empty()) return "'cgroup' must name a cgroup below the root";
  if (path.size() > 4095) return "a cgroup path has at most 4095 characters";
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    std::string_view part = path.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (part.empty()) return "a cgroup path has no empty parts ('//')";
    if (part == "." || part == "..")
      return "'cgroup' must stay inside the cgroup tree: no '.' or '..' in the path";
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return std::nullopt;
}

}  // namespace portier
