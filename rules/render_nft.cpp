#include "render_nft.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <stdexcept>
#include <string_view>
#include <utility>

#include "address_range.h"
#include "overloaded.h"

namespace portier {
namespace {

bool is_identifier(std::string_view name) {
  // nft's scanner only reads bare names that start with a letter; policy names are
  // validated upstream, this only keeps a bad IR from turning into a parse error in nft.
  if (name.empty() || name.size() > 255) return false;
  auto is_letter = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); };
  if (!is_letter(name.front())) return false;
  for (char c : name) {
    bool is_digit = c >= '0' && c <= '9';
    // '/' is in nft's identifiers too; portier's chain parts use it (split_chains.h).
    if (!is_letter(c) && !is_digit && c != '_' && c != '.' && c != '-' && c != '/') return false;
  }
  return true;
}

const std::string& checked_name(const std::string& name, std::string_view what) {
  if (!is_identifier(name)) {
    throw std::invalid_argument("cannot render " + std::string(what) + " name '" + name +
                                "': nft accepts only [A-Za-z][A-Za-z0-9_.-/]*");
  }
  return name;
}

// nft strings have no escapes: a quote or a control character cannot be written at all.
std::string quoted(const std::string& text, std::string_view what, std::size_t max_length) {
  if (text.size() > max_length) {
    throw std::invalid_argument(std::string(what) + " longer than " + std::to_string(max_length) +
                                " bytes: '" + text + "'");
  }
  for (char c : text) {
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      throw std::invalid_argument(std::string(what) + " '" + text +
                                  "' has a quote, backslash or control character");
    }
  }
  return "\"" + text + "\"";
}

// The kernel-side userdata comment is capped at 128 bytes by nft (NFTNL_UDATA_COMMENT_MAXLEN).
std::string quoted_comment(const std::string& comment) {
  return quoted(comment, "rule comment", 128);
}

std::string quoted_interface(const std::string& name, bool wildcard_allowed) {
  // IFNAMSIZ is 16 with the NUL; a trailing '*' makes nft compare only the bytes before it.
  const std::size_t star = name.find('*');
  const bool wildcard = star != std::string::npos;
  if (name.empty() || name.size() > 15 || (wildcard && (star + 1 != name.size() || star == 0)) ||
      (wildcard && !wildcard_allowed)) {
    throw std::invalid_argument("cannot render interface name '" + name + "'");
  }
  return quoted(name, "interface name", 15);
}

using ir::protocol_name;

// `tcp dport` needs a protocol with ports: nft knows the header of these three.
const char* port_protocol_name(ir::L4Proto protocol) {
  switch (protocol) {
    case ir::L4Proto::tcp:
      return "tcp";
    case ir::L4Proto::udp:
      return "udp";
    case ir::L4Proto::sctp:
      return "sctp";
    default:
      throw std::invalid_argument(std::string("a port match needs tcp, udp or sctp, not ") +
                                  protocol_name(protocol));
  }
}

template <typename Item, typename Text>
std::string list_text(const std::vector<Item>& items, Text text, std::string_view what) {
  if (items.empty()) throw std::invalid_argument("empty " + std::string(what) + " match");
  if (items.size() == 1) return text(items.front());
  std::string out = "{ ";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    out += text(items[i]);
  }
  return out + " }";
}

std::string port_range_text(const ir::PortRange& range) {
  if (range.last < range.first) throw std::invalid_argument("port range ends before it starts");
  std::string text = std::to_string(range.first);
  if (range.last != range.first) text += "-" + std::to_string(range.last);
  return text;
}

std::string port_list_text(const std::vector<ir::PortRange>& ports) {
  return list_text(ports, port_range_text, "port");
}

std::string protocol_list_text(const ir::L4ProtoIn& protocols) {
  return list_text(protocols.protocols, protocol_name, "protocol");
}

std::string address_text(const ir::Address& address) {
  char text[INET6_ADDRSTRLEN] = {};
  const int family = address.family == ir::Family::ipv4 ? AF_INET : AF_INET6;
  if (inet_ntop(family, address.bytes.data(), text, sizeof text) == nullptr) {
    throw std::invalid_argument("unprintable address");
  }
  return text;
}

// nft prints a range that is one CIDR block as a prefix, a single address plainly.
std::string address_range_text(const ir::AddressRange& range) {
  if (range.first.family != range.last.family || range.last < range.first) {
    throw std::invalid_argument("address range with mixed families or reversed ends");
  }
  const std::uint32_t full = ir::address_length(range.first.family) * 8;
  if (const auto prefix = ir::prefix_length(range)) {
    if (*prefix == full) return address_text(range.first);
    return address_text(range.first) + "/" + std::to_string(*prefix);
  }
  return address_text(range.first) + "-" + address_text(range.last);
}

std::string family_keyword(ir::Family family) { return family == ir::Family::ipv4 ? "ip" : "ip6"; }

std::string address_match_text(const ir::AddressIn& match) {
  for (const ir::AddressRange& range : match.ranges) {
    if (range.first.family != match.family) {
      throw std::invalid_argument("address match mixes IPv4 and IPv6");
    }
  }
  return family_keyword(match.family) + (match.destination ? " daddr " : " saddr ") +
         list_text(match.ranges, address_range_text, "address");
}

// nft's names for ICMP types (its icmp_type / icmp6_type symbol tables); others print as
// numbers.
std::string icmp_type_name(bool v6, std::uint8_t type) {
  static constexpr std::pair<std::uint8_t, const char*> kIcmp[] = {
      {0, "echo-reply"},           {3, "destination-unreachable"},
      {4, "source-quench"},        {5, "redirect"},
      {8, "echo-request"},         {9, "router-advertisement"},
      {10, "router-solicitation"}, {11, "time-exceeded"},
      {12, "parameter-problem"},   {13, "timestamp-request"},
      {14, "timestamp-reply"},     {15, "info-request"},
      {16, "info-reply"},          {17, "address-mask-request"},
      {18, "address-mask-reply"},
  };
  static constexpr std::pair<std::uint8_t, const char*> kIcmp6[] = {
      {1, "destination-unreachable"}, {2, "packet-too-big"},        {3, "time-exceeded"},
      {4, "parameter-problem"},       {128, "echo-request"},        {129, "echo-reply"},
      {130, "mld-listener-query"},    {131, "mld-listener-report"}, {132, "mld-listener-done"},
      {133, "nd-router-solicit"},     {134, "nd-router-advert"},    {135, "nd-neighbor-solicit"},
      {136, "nd-neighbor-advert"},    {137, "nd-redirect"},         {138, "router-renumbering"},
      {141, "ind-neighbor-solicit"},  {142, "ind-neighbor-advert"}, {143, "mld2-listener-report"},
  };
  if (v6) {
    for (const auto& [number, name] : kIcmp6) {
      if (number == type) return name;
    }
  } else {
    for (const auto& [number, name] : kIcmp) {
      if (number == type) return name;
    }
  }
  return std::to_string(type);
}

std::string ct_state_text(const ir::CtState& state) {
  // nft prints the bits in the order of its ct_state symbol table, not by value.
  static constexpr std::pair<ir::CtStateBit, const char*> kBits[] = {
      {ir::ct_invalid, "invalid"}, {ir::ct_established, "established"}, {ir::ct_related, "related"},
      {ir::ct_new, "new"},         {ir::ct_untracked, "untracked"},
  };
  std::uint32_t known = 0;
  std::string text;
  for (const auto& [bit, name] : kBits) {
    known |= bit;
    if ((state.mask & bit) == 0) continue;
    if (!text.empty()) text += ",";
    text += name;
  }
  if (text.empty() || (state.mask & ~known) != 0) {
    throw std::invalid_argument("ct state mask " + std::to_string(state.mask) +
                                " is empty or has unknown bits");
  }
  return "ct state " + text;
}

std::string limit_text(const ir::Limit& limit) {
  static constexpr const char* kUnits[] = {"second", "minute", "hour", "day"};
  // nft refuses a burst of 0 packets, and leaves its default burst (5) out of listings.
  if (limit.burst == 0) throw std::invalid_argument("limit burst must be at least 1 packet");
  std::string text = std::string("limit rate ") + (limit.over ? "over " : "") +
                     std::to_string(limit.rate) + "/" + kUnits[static_cast<int>(limit.unit)];
  if (limit.burst != 5) text += " burst " + std::to_string(limit.burst) + " packets";
  return text;
}

std::string meter_text(const ir::MeterOver& meter) {
  if (!meter.limit.over) throw std::invalid_argument("a meter matches only over its rate");
  return "update @" + checked_name(meter.set, "set") + " { " + family_keyword(meter.family) +
         " saddr " + limit_text(meter.limit) + " }";
}

std::string cgroup_text(const ir::SocketCgroup& cgroup) {
  return "socket cgroupv2 level " + std::to_string(cgroup.level) + " @" +
         checked_name(cgroup.set, "set");
}

// `tcp sport 80 tcp dport 22`: a single protocol followed by port matches lists as the
// protocol's own header fields; nft drops the `meta l4proto` dependency from the listing.
std::string ports_text(const ir::L4ProtoIn& protocols, bool source,
                       const std::vector<ir::PortRange>& ports) {
  const std::string field = source ? " sport " : " dport ";
  if (protocols.protocols.size() == 1) {
    return port_protocol_name(protocols.protocols.front()) + field + port_list_text(ports);
  }
  return "th" + field + port_list_text(ports);
}

std::string matches_text(const std::vector<ir::Match>& matches) {
  std::string text;
  auto append = [&text](const std::string& part) {
    if (!text.empty()) text += ' ';
    text += part;
  };
  const ir::L4ProtoIn* protocols = nullptr;  // the latest protocol match
  for (std::size_t i = 0; i < matches.size(); ++i) {
    const ir::Match& match = matches[i];
    const bool port_follows =
        i + 1 < matches.size() && (std::holds_alternative<ir::DestPortIn>(matches[i + 1]) ||
                                   std::holds_alternative<ir::SourcePortIn>(matches[i + 1]));
    // One overload per kind of match: a new kind does not compile until it is rendered here.
    std::visit(
        overloaded{
            [&](const ir::SocketTransparent& transparent) {
              append(transparent.value ? "socket transparent 1" : "socket transparent 0");
            },
            [&](const ir::NfProto& family) {
              append(family.family == ir::Family::ipv4 ? "meta nfproto ipv4" : "meta nfproto ipv6");
            },
            [&](const ir::LoopbackInterface& loopback) {
              append(loopback.outgoing ? "oif \"lo\"" : "iif \"lo\"");
            },
            [&](const ir::InterfaceNameIn& names) {
              const bool alone = names.names.size() == 1;
              append(std::string(names.outgoing ? "oifname " : "iifname ") +
                     (names.negate ? "!= " : "") +
                     list_text(
                         names.names,
                         [alone](const std::string& name) { return quoted_interface(name, alone); },
                         "interface"));
            },
            [&](const ir::CtState& state) { append(ct_state_text(state)); },
            [&](const ir::CtStatusDnat&) { append("ct status dnat"); },
            [&](const ir::L4ProtoIn& l4) {
              protocols = &l4;
              if (!l4.set.empty()) {
                if (l4.protocols.size() < 2)
                  throw std::invalid_argument("a protocol set stands for two or more protocols");
                append("meta l4proto @" + checked_name(l4.set, "set"));
              } else if (!port_follows) {
                append("meta l4proto " + protocol_list_text(l4));
              } else if (l4.protocols.size() > 1) {
                append("meta l4proto " + protocol_list_text(l4));
              } else if (l4.protocols.empty()) {
                throw std::invalid_argument("empty protocol match");
              }
            },
            [&](const ir::DestPortIn& dports) {
              if (protocols == nullptr || i == 0) {
                throw std::invalid_argument("a port match must follow a protocol match");
              }
              append(ports_text(*protocols, false, dports.ports));
            },
            [&](const ir::SourcePortIn& sports) {
              if (protocols == nullptr || i == 0) {
                throw std::invalid_argument("a port match must follow a protocol match");
              }
              append(ports_text(*protocols, true, sports.ports));
            },
            [&](const ir::AddressIn& addresses) { append(address_match_text(addresses)); },
            [&](const ir::CtOriginalDestPort& original) {
              if (protocols == nullptr)
                throw std::invalid_argument("a port match must follow a protocol match");
              append("ct original proto-dst " + port_range_text(original.ports));
            },
            [&](const ir::CtOriginalAddressIn& before_nat) {
              for (const ir::AddressRange& range : before_nat.ranges)
                if (range.first.family != before_nat.family)
                  throw std::invalid_argument("address match mixes IPv4 and IPv6");
              append("ct original " + family_keyword(before_nat.family) + " daddr " +
                     list_text(before_nat.ranges, address_range_text, "address"));
            },
            [&](const ir::AddressInSet& lookup) {
              append(family_keyword(lookup.family) +
                     (lookup.destination ? " daddr @" : " saddr @") +
                     checked_name(lookup.set, "set"));
            },
            [&](const ir::IcmpTypeIn& icmp) {
              const bool v6 = icmp.v6;
              append(std::string(v6 ? "icmpv6 type " : "icmp type ") +
                     list_text(
                         icmp.types, [v6](std::uint8_t type) { return icmp_type_name(v6, type); },
                         "ICMP type"));
            },
            [&](const ir::SocketCgroup& cgroup) { append(cgroup_text(cgroup)); },
            [&](const ir::SocketUid& uid) {
              append(std::string("meta skuid ") + (uid.negate ? "!= " : "") +
                     std::to_string(uid.uid));
            },
            [&](const ir::TcpSyn&) { append("tcp flags syn"); },
            [&](const ir::Limit& limit) { append(limit_text(limit)); },
            [&](const ir::MeterOver& meter) { append(meter_text(meter)); }},
        match);
  }
  return text;
}

std::string chain_verdict_text(ir::VerdictKind kind, const std::string& chain) {
  switch (kind) {
    case ir::VerdictKind::accept:
      return "accept";
    case ir::VerdictKind::drop:
      return "drop";
    case ir::VerdictKind::jump:
      return "jump " + checked_name(chain, "jump target chain");
    case ir::VerdictKind::go_to:
      return "goto " + checked_name(chain, "goto target chain");
    case ir::VerdictKind::return_:
      return "return";
    default:
      throw std::invalid_argument("a verdict map entry must accept, drop, jump or goto");
  }
}

std::string dnat_text(const ir::Verdict& verdict) {
  if (!verdict.nat_address) throw std::invalid_argument("dnat without an address");
  const ir::Address& address = *verdict.nat_address;
  const bool v4 = address.family == ir::Family::ipv4;
  std::string text = std::string("dnat ") + (v4 ? "ip" : "ip6") + " to ";
  if (!verdict.nat_port) return text + address_text(address);
  // An IPv6 address needs brackets before a port.
  text += v4 ? address_text(address) : "[" + address_text(address) + "]";
  return text + ":" + std::to_string(*verdict.nat_port);
}

std::string vmap_text(const ir::Verdict& verdict) {
  return std::string(verdict.vmap_outgoing ? "oifname" : "iifname") + " vmap { " + [&verdict] {
    if (verdict.vmap.empty()) throw std::invalid_argument("empty verdict map");
    std::string entries;
    for (const ir::VmapEntry& entry : verdict.vmap) {
      if (!entries.empty()) entries += ", ";
      entries += quoted_interface(entry.interface, false) + " : " +
                 chain_verdict_text(entry.kind, entry.chain);
    }
    return entries;
  }() + " }";
}

std::string verdict_text(const ir::Verdict& verdict) {
  switch (verdict.kind) {
    case ir::VerdictKind::accept:
    case ir::VerdictKind::drop:
    case ir::VerdictKind::jump:
    case ir::VerdictKind::go_to:
    case ir::VerdictKind::return_:
      return chain_verdict_text(verdict.kind, verdict.chain);
    case ir::VerdictKind::reject_tcp_reset:
      return "reject with tcp reset";
    case ir::VerdictKind::reject_icmpx_port_unreachable:
      return "reject with icmpx port-unreachable";
    case ir::VerdictKind::none:
      return {};
    case ir::VerdictKind::masquerade:
      return "masquerade";
    case ir::VerdictKind::dnat:
      return dnat_text(verdict);
    case ir::VerdictKind::clamp_mss:
      return "tcp option maxseg size set rt mtu";
    case ir::VerdictKind::vmap:
      return vmap_text(verdict);
    case ir::VerdictKind::map_lookup:
      break;  // needs the rule's protocol: map_lookup_text()
  }
  throw std::invalid_argument("unknown verdict");
}

std::string key_field_text(ir::KeyField field, const ir::L4ProtoIn* protocols) {
  if (field == ir::KeyField::ct_original_dport) {
    // No header word, but nft types it only after a single protocol.
    if (protocols == nullptr || protocols->protocols.size() != 1)
      throw std::invalid_argument("ct original proto-dst in a map key must follow one protocol");
    return ir::key_field_name(field);
  }
  if (!ir::is_port_field(field)) return ir::key_field_name(field);
  if (protocols == nullptr || protocols->protocols.empty()) {
    throw std::invalid_argument("a port key field must follow a protocol match");
  }
  const std::string header = protocols->protocols.size() == 1
                                 ? std::string(port_protocol_name(protocols->protocols.front()))
                                 : std::string("th");
  return header + " " + ir::key_field_name(field);
}

// `ip saddr . tcp dport vmap @input/m1`
std::string map_lookup_text(const ir::Rule& rule) {
  const ir::L4ProtoIn* protocols = nullptr;
  for (const ir::Match& match : rule.matches)
    if (const auto* l4 = std::get_if<ir::L4ProtoIn>(&match)) protocols = l4;
  if (rule.verdict.map_key.empty()) throw std::invalid_argument("a map lookup without a key");
  std::string text;
  for (ir::KeyField field : rule.verdict.map_key) {
    if (!text.empty()) text += " . ";
    text += key_field_text(field, protocols);
  }
  return text + " vmap @" + checked_name(rule.verdict.map, "map");
}

std::string log_text(const ir::Log& log) {
  // The kernel keeps at most 127 prefix bytes (NF_LOG_PREFIXLEN with the NUL).
  std::string text = "log prefix " + quoted(log.prefix, "log prefix", 127);
  if (log.group) text += " group " + std::to_string(*log.group);
  return text;
}

std::string rule_text(const ir::Rule& rule) {
  std::string text = matches_text(rule.matches);
  auto append = [&text](const std::string& part) {
    if (part.empty()) return;
    if (!text.empty()) text += ' ';
    text += part;
  };
  if (rule.counter) append("counter");
  if (rule.log) append(log_text(*rule.log));
  append(rule.verdict.kind == ir::VerdictKind::map_lookup ? map_lookup_text(rule)
                                                          : verdict_text(rule.verdict));
  if (text.empty()) throw std::invalid_argument("a rule that neither matches nor acts");
  if (!rule.comment.empty()) append("comment " + quoted_comment(rule.comment));
  return text;
}

const char* hook_name(ir::Hook hook) {
  switch (hook) {
    case ir::Hook::prerouting:
      return "prerouting";
    case ir::Hook::input:
      return "input";
    case ir::Hook::forward:
      return "forward";
    case ir::Hook::output:
      return "output";
    case ir::Hook::postrouting:
      return "postrouting";
  }
  throw std::invalid_argument("unknown hook");
}

// As `nft list` prints a priority: the first standard priority (in nft's order) that suits
// the hook and lies within 10 of it, with the offset; otherwise the plain number. dstnat
// only suits prerouting, srcnat only postrouting.
std::string priority_text(ir::Hook hook, std::int32_t priority) {
  struct Standard {
    std::int32_t value;
    const char* name;
  };
  static constexpr Standard kStandard[] = {{-300, "raw"}, {-150, "mangle"}, {-100, "dstnat"},
                                           {0, "filter"}, {50, "security"}, {100, "srcnat"}};
  for (const Standard& standard : kStandard) {
    if (standard.value == -100 && hook != ir::Hook::prerouting) continue;
    if (standard.value == 100 && hook != ir::Hook::postrouting) continue;
    const std::int64_t offset = static_cast<std::int64_t>(priority) - standard.value;
    if (offset < -10 || offset > 10) continue;
    if (offset == 0) return standard.name;
    return std::string(standard.name) + (offset > 0 ? " + " : " - ") +
           std::to_string(offset > 0 ? offset : -offset);
  }
  return std::to_string(priority);
}

std::string base_chain_text(const ir::BaseChain& base) {
  const bool nat = base.type == ir::ChainType::nat;
  if (nat && (base.hook == ir::Hook::forward)) {
    throw std::invalid_argument("a nat chain cannot hook forward");
  }
  return std::string("\t\ttype ") + (nat ? "nat" : "filter") + " hook " + hook_name(base.hook) +
         " priority " + priority_text(base.hook, base.priority) + "; policy " +
         (base.policy_accept ? "accept" : "drop") + ";\n";
}

// nft's time format: 90 seconds is "1m30s".
std::string duration_text(std::uint32_t seconds) {
  if (seconds == 0) throw std::invalid_argument("a set timeout must be at least 1 second");
  static constexpr std::pair<std::uint32_t, char> kUnits[] = {
      {86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
  std::string text;
  for (const auto& [size, unit] : kUnits) {
    if (seconds / size == 0) continue;
    text += std::to_string(seconds / size) + unit;
    seconds %= size;
  }
  return text;
}

std::string set_element_text(const ir::NamedSet& set, const ir::AddressRange& element) {
  if (set.key == ir::SetKey::inet_proto) {
    if (element.first != element.last)
      throw std::invalid_argument("set " + set.name + " holds a range of protocols");
    return protocol_name(static_cast<ir::L4Proto>(element.first.bytes[0]));
  }
  if (set.key == ir::SetKey::inet_service) {
    auto port = [](const ir::Address& a) {
      return static_cast<std::uint16_t>(a.bytes[0] << 8 | a.bytes[1]);
    };
    return port_range_text({port(element.first), port(element.last)});
  }
  const ir::Family family = set.key == ir::SetKey::ipv4_addr ? ir::Family::ipv4 : ir::Family::ipv6;
  if (element.first.family != family) {
    throw std::invalid_argument("set " + set.name + " holds an address of the other family");
  }
  return address_range_text(element);
}

// A cgroup by its path, which nft resolves to the id under /sys/fs/cgroup (and prints
// back the same way, where it finds the id there).
std::string cgroup_member_text(const ir::CgroupMember& member) {
  if (member.path.empty() || member.path.front() == '/') {
    throw std::invalid_argument("cgroup path '" + member.path + "' must be relative");
  }
  return quoted(member.path, "cgroup path", 4095);
}

std::string set_text(const ir::NamedSet& set) {
  static constexpr const char* kTypes[] = {"ipv4_addr", "ipv6_addr", "inet_service", "cgroupsv2",
                                           "inet_proto"};
  std::string text = "\tset " + checked_name(set.name, "set") + " {\n\t\ttype " +
                     kTypes[static_cast<int>(set.key)] + "\n";
  if (set.size) text += "\t\tsize " + std::to_string(*set.size) + "\n";
  // nft sets the timeout flag itself for a set with a default timeout, and lists the
  // flags in this order.
  const bool timeout = set.timeout || set.default_timeout_seconds.has_value();
  std::string flags;
  auto flag = [&flags](bool on, const char* name) {
    if (!on) return;
    flags += flags.empty() ? "" : ",";
    flags += name;
  };
  flag(set.interval, "interval");
  flag(set.dynamic, "dynamic");
  flag(timeout, "timeout");
  if (!flags.empty()) text += "\t\tflags " + flags + "\n";
  if (set.default_timeout_seconds) {
    text += "\t\ttimeout " + duration_text(*set.default_timeout_seconds) + "\n";
  }
  if (set.key == ir::SetKey::cgroupv2) {
    if (!set.elements.empty())
      throw std::invalid_argument("set " + set.name + " of cgroups holds addresses");
    for (std::size_t i = 0; i < set.cgroups.size(); ++i)
      text += (i == 0 ? "\t\telements = { " : ", ") + cgroup_member_text(set.cgroups[i]) +
              (i + 1 == set.cgroups.size() ? " }\n" : "");
  } else if (!set.elements.empty()) {
    bool has_range = false;
    text += "\t\telements = { ";
    for (std::size_t i = 0; i < set.elements.size(); ++i) {
      if (i > 0) text += ", ";
      const ir::AddressRange& element = set.elements[i];
      has_range |= element.first != element.last;
      text += set_element_text(set, element);
    }
    text += " }\n";
    if (has_range && !set.interval) {
      throw std::invalid_argument("set " + set.name + " holds ranges but is not an interval set");
    }
  }
  return text + "\t}\n";
}

const char* key_type_name(ir::KeyField field) {
  switch (field) {
    case ir::KeyField::ip_saddr:
    case ir::KeyField::ip_daddr:
      return "ipv4_addr";
    case ir::KeyField::ip6_saddr:
    case ir::KeyField::ip6_daddr:
      return "ipv6_addr";
    case ir::KeyField::sport:
    case ir::KeyField::dport:
    case ir::KeyField::ct_original_dport:
      return "inet_service";
  }
  throw std::invalid_argument("unknown key field");
}

std::string key_range_text(ir::KeyField field, const ir::AddressRange& range) {
  if (ir::is_port_field(field)) {
    auto port = [](const ir::Address& a) {
      return static_cast<std::uint16_t>(a.bytes[0] << 8 | a.bytes[1]);
    };
    return port_range_text({port(range.first), port(range.last)});
  }
  const ir::Family family = field == ir::KeyField::ip_saddr || field == ir::KeyField::ip_daddr
                                ? ir::Family::ipv4
                                : ir::Family::ipv6;
  if (range.first.family != family) {
    throw std::invalid_argument("a map element holds an address of the other family");
  }
  return address_range_text(range);
}

// The counter line makes the kernel give every element its own counter: one per
// policy rule, as `nft list` shows them.
std::string map_text(const ir::RuleMap& map) {
  if (map.key.empty()) throw std::invalid_argument("map " + map.name + " has no key");
  std::string type;
  for (ir::KeyField field : map.key) {
    if (!type.empty()) type += " . ";
    type += key_type_name(field);
  }
  std::string text = "\tmap " + checked_name(map.name, "map") + " {\n\t\ttype " + type +
                     " : verdict\n\t\tflags interval\n\t\tcounter\n";
  if (!map.elements.empty()) {
    text += "\t\telements = { ";
    for (std::size_t i = 0; i < map.elements.size(); ++i) {
      const ir::MapElement& element = map.elements[i];
      if (element.key.size() != map.key.size()) {
        throw std::invalid_argument("map " + map.name + ": an element's key has the wrong size");
      }
      if (element.verdict != ir::VerdictKind::accept && element.verdict != ir::VerdictKind::drop) {
        throw std::invalid_argument("map " + map.name + ": elements accept or drop");
      }
      if (i > 0) text += ",\n\t\t\t     ";
      for (std::size_t f = 0; f < map.key.size(); ++f) {
        if (f > 0) text += " . ";
        text += key_range_text(map.key[f], element.key[f]);
      }
      if (!element.comment.empty()) text += " comment " + quoted_comment(element.comment);
      text += element.verdict == ir::VerdictKind::accept ? " : accept" : " : drop";
    }
    text += " }\n";
  }
  return text + "\t}\n";
}

}  // namespace

std::string render_nft(const ir::Ruleset& ruleset) {
  std::string text = "table inet " + checked_name(ruleset.table, "table") + " {\n";
  // nft 1.0.6 knows no `persist` flag: a persistent table is rendered without it (see
  // docs/nftables-owner.md), so its listing differs from the daemon's in that line only.
  bool first_block = true;
  if (ruleset.owner) {
    text += "\tflags owner\n";
    first_block = false;
  }
  auto separate = [&text, &first_block] {
    if (!first_block) text += "\n";
    first_block = false;
  };
  for (const ir::NamedSet& set : ruleset.sets) {
    separate();
    text += set_text(set);
  }
  for (const ir::RuleMap& map : ruleset.maps) {
    separate();
    text += map_text(map);
  }
  for (const ir::Chain& chain : ruleset.chains) {
    separate();
    text += "\tchain " + checked_name(chain.name, "chain") + " {\n";
    if (chain.base) text += base_chain_text(*chain.base);
    for (const ir::Rule& rule : chain.rules) text += "\t\t" + rule_text(rule) + "\n";
    text += "\t}\n";
  }
  return text + "}\n";
}

std::string render_nft_replace(const ir::Ruleset& ruleset) {
  const std::string& table = checked_name(ruleset.table, "table");
  return "table inet " + table + "\ndelete table inet " + table + "\n" + render_nft(ruleset);
}

}  // namespace portier
