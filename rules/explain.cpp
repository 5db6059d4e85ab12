// The evaluator behind `portierctl explain`: follows a packet shape through the IR the
// way nf_tables' core does (nft_do_chain): rules in order, the first terminal verdict
// wins, jump pushes a return point, goto does not, and falling off the end of the base
// chain applies its policy. Where the kernel's expressions "break" instead of comparing
// (a socket expression with no socket, a verdict-map miss), the rule simply does not match.
#include <algorithm>
#include <stdexcept>
#include <string_view>

#include "compile_policy.h"
#include "explain.h"

#include "cgroup_owner.h"
#include "overloaded.h"
#include "render_nft.h"

namespace portier {
namespace {

// NFT_JUMP_STACK_SIZE: the kernel refuses deeper jump chains when rules are added.
constexpr std::size_t kJumpStackSize = 16;
// Gotos do not use the stack; a loop of them is refused by the kernel too. This only keeps
// a malformed hand-built IR from spinning.
constexpr std::size_t kMaxRulesVisited = 1'000'000;

bool in_port_ranges(std::uint16_t port, const std::vector<ir::PortRange>& ranges) {
  return std::any_of(ranges.begin(), ranges.end(), [port](const ir::PortRange& range) {
    return range.first <= port && port <= range.last;
  });
}

bool in_address_ranges(const ir::Address& address, const std::vector<ir::AddressRange>& ranges) {
  // Address orders by family, then bytes in network order: numeric order within a family.
  return std::any_of(ranges.begin(), ranges.end(), [&address](const ir::AddressRange& range) {
    return range.first.family == address.family && range.first <= address && address <= range.last;
  });
}

// nft compares a wildcard name only up to the '*' (a prefix compare of that many bytes).
bool interface_matches(const std::string& name, const std::vector<std::string>& patterns) {
  return std::any_of(patterns.begin(), patterns.end(), [&name](const std::string& pattern) {
    if (pattern.ends_with('*'))
      return std::string_view(name).starts_with(
          std::string_view(pattern).substr(0, pattern.size() - 1));
    return name == pattern;
  });
}

bool has_ports(const PacketShape& packet) {
  return packet.protocol == ir::L4Proto::tcp || packet.protocol == ir::L4Proto::udp ||
         packet.protocol == ir::L4Proto::sctp;
}

// `socket cgroupv2 level N @SET`: the kernel takes the ancestor of the socket's cgroup at
// level N (cgroup_ancestor) and looks its id up in the set, which the daemon keeps holding
// the owner's cgroup while it exists. A socket in a cgroup shallower than N has no such
// ancestor and the expression breaks. The owner's cgroup is found from the socket's path
// (a socket's cgroup exists while it has one), so this also holds for a policy not loaded.
bool cgroup_matches(const ir::SocketCgroup& match, const ir::Ruleset& ruleset,
                    const std::optional<std::string>& socket_cgroup) {
  if (!socket_cgroup) return false;
  for (const ir::NamedSet& set : ruleset.sets) {
    if (set.name != match.set || set.key != ir::SetKey::cgroupv2) continue;
    std::optional<std::string> owned = owner_cgroup_in(set.owner, *socket_cgroup);
    return owned && cgroup_path_parts(*owned).size() == match.level;
  }
  return false;
}

class Evaluator {
 public:
  Evaluator(const ir::Ruleset& ruleset, const PacketShape& packet)
      : ruleset_(ruleset), packet_(packet) {}

  bool matches(const ir::Match& match) const {
    // matches_one() has one overload per kind of match and no template: a new kind does
    // not compile until the evaluator handles it.
    return std::visit([this](const auto& m) { return matches_one(m); }, match);
  }

  /// The element of the rule's map that the packet's key falls in; nullptr: a miss, or
  /// the packet lacks a field of the key (the kernel's payload load breaks the rule).
  const ir::MapElement* map_element(const ir::Verdict& verdict) const {
    std::vector<ir::Address> key;
    for (ir::KeyField field : verdict.map_key) {
      const ir::Address* address = nullptr;
      switch (field) {
        case ir::KeyField::ip_saddr:
          address = address_of(ir::Family::ipv4, false);
          break;
        case ir::KeyField::ip_daddr:
          address = address_of(ir::Family::ipv4, true);
          break;
        case ir::KeyField::ip6_saddr:
          address = address_of(ir::Family::ipv6, false);
          break;
        case ir::KeyField::ip6_daddr:
          address = address_of(ir::Family::ipv6, true);
          break;
        case ir::KeyField::sport:
        case ir::KeyField::dport:
          if (!has_ports(packet_)) return nullptr;
          key.push_back(ir::port_element(field == ir::KeyField::sport ? packet_.source_port
                                                                      : packet_.destination_port));
          continue;
        case ir::KeyField::ct_original_dport:
          // As CtOriginalDestPort: only a DNATed connection has an original tuple here.
          if (!packet_.dnat_original || !has_ports(packet_)) return nullptr;
          key.push_back(ir::port_element(packet_.dnat_original->destination_port));
          continue;
      }
      if (address == nullptr) return nullptr;
      key.push_back(*address);
    }
    for (const ir::RuleMap& map : ruleset_.maps) {
      if (map.name != verdict.map) continue;
      for (const ir::MapElement& element : map.elements) {
        bool inside = element.key.size() == key.size();
        for (std::size_t f = 0; inside && f < key.size(); ++f)
          inside = element.key[f].first <= key[f] && key[f] <= element.key[f].last;
        if (inside) return &element;
      }
    }
    return nullptr;
  }

 private:
  bool matches_one(const ir::NfProto& match) const { return packet_.family == match.family; }
  // The shape's socket is never IP_TRANSPARENT; with no socket the expression breaks.
  bool matches_one(const ir::SocketTransparent& match) const {
    bool has_socket = packet_.socket_cgroup.has_value() || packet_.socket_uid.has_value();
    return has_socket && !match.value;
  }
  bool matches_one(const ir::LoopbackInterface& match) const {
    return (match.outgoing ? packet_.out_interface : packet_.in_interface) == "lo";
  }
  bool matches_one(const ir::InterfaceNameIn& match) const {
    // In the input hook there is no outgoing device: the kernel's oifname is "".
    return interface_matches(match.outgoing ? packet_.out_interface : packet_.in_interface,
                             match.names) != match.negate;
  }
  bool matches_one(const ir::CtState& match) const { return (packet_.ct_state & match.mask) != 0; }
  bool matches_one(const ir::CtStatusDnat&) const { return packet_.dnat_original.has_value(); }
  // Asked about DNATed connections only (the rules follow `ct status dnat`): a shape with
  // no original destination is a connection nobody NATed.
  bool matches_one(const ir::CtOriginalDestPort& match) const {
    return packet_.dnat_original && has_ports(packet_) &&
           in_port_ranges(packet_.dnat_original->destination_port, {match.ports});
  }
  bool matches_one(const ir::CtOriginalAddressIn& match) const {
    return packet_.dnat_original && packet_.dnat_original->destination &&
           packet_.dnat_original->destination->family == match.family &&
           in_address_ranges(*packet_.dnat_original->destination, match.ranges);
  }
  bool matches_one(const ir::L4ProtoIn& match) const {
    return packet_.protocol && std::find(match.protocols.begin(), match.protocols.end(),
                                         *packet_.protocol) != match.protocols.end();
  }
  bool matches_one(const ir::DestPortIn& match) const {
    return has_ports(packet_) && in_port_ranges(packet_.destination_port, match.ports);
  }
  bool matches_one(const ir::SourcePortIn& match) const {
    return has_ports(packet_) && in_port_ranges(packet_.source_port, match.ports);
  }
  bool matches_one(const ir::AddressIn& match) const {
    const auto* address = address_of(match.family, match.destination);
    return address && in_address_ranges(*address, match.ranges);
  }
  bool matches_one(const ir::AddressInSet& match) const {
    const auto* address = address_of(match.family, match.destination);
    if (!address) return false;
    for (const ir::NamedSet& set : ruleset_.sets) {
      if (set.name != match.set) continue;
      const ir::SetKey key =
          match.family == ir::Family::ipv4 ? ir::SetKey::ipv4_addr : ir::SetKey::ipv6_addr;
      return set.key == key && in_address_ranges(*address, set.elements);
    }
    return false;
  }
  bool matches_one(const ir::IcmpTypeIn& match) const {
    // nft adds `meta nfproto ipv4 meta l4proto icmp` (or the IPv6 pair) before the type.
    const bool right_header =
        match.v6 ? packet_.family == ir::Family::ipv6 && packet_.protocol == ir::L4Proto::icmpv6
                 : packet_.family == ir::Family::ipv4 && packet_.protocol == ir::L4Proto::icmp;
    return right_header && std::find(match.types.begin(), match.types.end(), packet_.icmp_type) !=
                               match.types.end();
  }
  bool matches_one(const ir::SocketCgroup& match) const {
    return cgroup_matches(match, ruleset_, packet_.socket_cgroup);
  }
  bool matches_one(const ir::SocketUid& match) const {
    // No socket: the meta expression breaks, so `!=` does not match either.
    return packet_.socket_uid && ((*packet_.socket_uid == match.uid) != match.negate);
  }
  bool matches_one(const ir::TcpSyn&) const {
    return packet_.protocol == ir::L4Proto::tcp && (packet_.ct_state & ir::ct_new) != 0;
  }
  bool matches_one(const ir::Limit& match) const { return !match.over; }
  bool matches_one(const ir::MeterOver&) const { return false; }

  // The address an address match reads, if the packet is of that family and has one:
  // nft puts `meta nfproto ipv4` (or ipv6) before every ip/ip6 header match.
  const ir::Address* address_of(ir::Family family, bool destination) const {
    if (packet_.family != family) return nullptr;
    const auto& address = destination ? packet_.destination : packet_.source;
    if (!address || address->family != family) return nullptr;
    return &*address;
  }

  const ir::Ruleset& ruleset_;
  const PacketShape& packet_;
};

const ir::Chain& chain_named(const ir::Ruleset& ruleset, const std::string& name) {
  for (const ir::Chain& chain : ruleset.chains)
    if (chain.name == name) return chain;
  throw std::invalid_argument("the ruleset has no chain '" + name + "'");
}

ir::Hook hook_of(Direction direction) {
  switch (direction) {
    case Direction::in:
      return ir::Hook::input;
    case Direction::out:
      return ir::Hook::output;
    case Direction::forward:
      return ir::Hook::forward;
  }
  return ir::Hook::input;
}

// The nft text of one rule, as render_nft prints it inside its chain (the one renderer,
// so the trace reads exactly like `portierctl show`).
std::string rule_text(const ir::Rule& rule) {
  ir::Ruleset one;
  one.chains.push_back(ir::Chain{"trace", std::nullopt, {rule}});
  try {
    const std::string text = render_nft(one);
    const std::size_t start = text.find("\n\t\t");
    if (start == std::string::npos) return "(empty rule)";
    const std::size_t end = text.find('\n', start + 3);
    return text.substr(start + 3, end - start - 3);
  } catch (const std::invalid_argument& failure) {
    return std::string("(rule nft cannot print: ") + failure.what() + ")";
  }
}

// What an ownerless (fixed) rule is for, in the words `portierctl explain` prints.
std::string describe_fixed_rule(const ir::Rule& rule) {
  if (rule.verdict.kind == ir::VerdictKind::vmap) return "zone dispatch";
  for (const ir::Match& match : rule.matches) {
    // One overload per kind of match, those that say nothing listed too: a new kind does
    // not compile until it is decided here whether it names the rule. nullptr: it does not.
    const char* name = std::visit(
        overloaded{[](const ir::LoopbackInterface&) -> const char* { return "loopback"; },
                   [](const ir::CtState& state) -> const char* {
                     if (state.mask & ir::ct_invalid) return "invalid";
                     if (state.mask & (ir::ct_established | ir::ct_related))
                       return "established,related";
                     return nullptr;
                   },
                   [](const ir::IcmpTypeIn& icmp) -> const char* {
                     return icmp.v6 ? "icmpv6 essentials" : nullptr;
                   },
                   [](const ir::InterfaceNameIn&) -> const char* { return nullptr; },
                   [](const ir::CtStatusDnat&) -> const char* { return nullptr; },
                   [](const ir::L4ProtoIn&) -> const char* { return nullptr; },
                   [](const ir::DestPortIn&) -> const char* { return nullptr; },
                   [](const ir::SourcePortIn&) -> const char* { return nullptr; },
                   [](const ir::AddressIn&) -> const char* { return nullptr; },
                   [](const ir::AddressInSet&) -> const char* { return nullptr; },
                   [](const ir::SocketCgroup&) -> const char* { return nullptr; },
                   [](const ir::SocketUid&) -> const char* { return nullptr; },
                   [](const ir::TcpSyn&) -> const char* { return nullptr; },
                   [](const ir::Limit&) -> const char* { return nullptr; },
                   [](const ir::MeterOver&) -> const char* { return nullptr; },
                   [](const ir::NfProto&) -> const char* { return nullptr; },
                   [](const ir::SocketTransparent&) -> const char* { return nullptr; },
                   [](const ir::CtOriginalDestPort&) -> const char* { return nullptr; },
                   [](const ir::CtOriginalAddressIn&) -> const char* { return nullptr; }},
        match);
    if (name != nullptr) return name;
  }
  if (rule.verdict.kind == ir::VerdictKind::go_to) return "zone dispatch";
  if (rule.verdict.kind == ir::VerdictKind::reject_tcp_reset ||
      rule.verdict.kind == ir::VerdictKind::reject_icmpx_port_unreachable)
    return "reject";
  return rule_text(rule);
}

// The rule whose jump or goto led to the current chain, for blaming a fixed rule there
// (the shared reject chain) on the policy rule that sent the packet to it.
struct Caller {
  const ir::Rule* rule = nullptr;
  const ir::Chain* chain = nullptr;
};

struct ReturnPoint {
  const ir::Chain* chain;
  std::size_t next;
  Caller caller;
};

}  // namespace

ExplainResult explain_packet(const ir::Ruleset& ruleset, const PacketShape& packet) {
  ExplainResult result;
  const ir::Hook hook = hook_of(packet.direction);
  const ir::Chain* base = nullptr;
  for (const ir::Chain& chain : ruleset.chains)
    if (chain.base && chain.base->hook == hook && chain.base->type == ir::ChainType::filter) {
      base = &chain;
      break;
    }
  if (!base) {
    // Without a chain on the hook, the table does not see the packet: netfilter accepts.
    result.verdict = "accept";
    result.decided_by = "no chain";
    return result;
  }

  const Evaluator evaluator(ruleset, packet);
  const ir::Chain* chain = base;
  std::size_t next = 0;
  Caller caller;
  std::vector<ReturnPoint> returns;
  auto decide = [&](const ir::Rule& rule, const ir::Chain& where, std::string verdict) {
    result.verdict = std::move(verdict);
    if (!rule_owner(rule).empty()) {
      result.decided_by = std::string(rule_owner(rule));
      result.chain = where.name;
    } else if (caller.rule) {
      result.decided_by = std::string(rule_owner(*caller.rule));
      result.chain = caller.chain->name;
    } else {
      result.decided_by = describe_fixed_rule(rule);
      result.chain = where.name;
    }
    return result;
  };
  auto enter = [&](const ir::Rule& rule, const std::string& target, bool jump) {
    if (jump) {
      if (returns.size() >= kJumpStackSize)
        throw std::invalid_argument("jumps nest deeper than the kernel allows");
      returns.push_back({chain, next, caller});
    }
    if (!rule_owner(rule).empty()) caller = {&rule, chain};
    chain = &chain_named(ruleset, target);
    next = 0;
  };

  for (std::size_t visited = 0; visited < kMaxRulesVisited; ++visited) {
    if (next == chain->rules.size()) {
      if (returns.empty()) {
        // The end of the base chain, or of a chain it went to by goto: the base policy.
        result.verdict = base->base->policy_accept ? "accept" : "drop";
        result.decided_by = "chain policy";
        result.chain = base->name;
        return result;
      }
      chain = returns.back().chain;
      next = returns.back().next;
      caller = returns.back().caller;
      returns.pop_back();
      continue;
    }
    const ir::Rule& rule = chain->rules[next++];
    if (!std::all_of(rule.matches.begin(), rule.matches.end(),
                     [&evaluator](const ir::Match& match) { return evaluator.matches(match); }))
      continue;
    ir::VerdictKind kind = rule.verdict.kind;
    std::string target = rule.verdict.chain;
    if (kind == ir::VerdictKind::map_lookup) {
      const ir::MapElement* element = evaluator.map_element(rule.verdict);
      if (element == nullptr) continue;
      result.trace.push_back(chain->name + ": " + rule_text(rule) + " (element of " +
                             element->comment + ")");
      result.verdict = element->verdict == ir::VerdictKind::accept ? "accept" : "drop";
      result.decided_by = element->comment;
      result.chain = chain->name;
      return result;
    }
    if (kind == ir::VerdictKind::vmap) {
      const std::string& name =
          rule.verdict.vmap_outgoing ? packet.out_interface : packet.in_interface;
      auto entry = std::find_if(rule.verdict.vmap.begin(), rule.verdict.vmap.end(),
                                [&name](const ir::VmapEntry& e) { return e.interface == name; });
      if (entry == rule.verdict.vmap.end()) continue;  // a lookup miss breaks the rule
      kind = entry->kind;
      target = entry->chain;
    }
    result.trace.push_back(chain->name + ": " + rule_text(rule));
    switch (kind) {
      case ir::VerdictKind::accept:
        return decide(rule, *chain, "accept");
      case ir::VerdictKind::drop:
        return decide(rule, *chain, "drop");
      case ir::VerdictKind::reject_tcp_reset:
      case ir::VerdictKind::reject_icmpx_port_unreachable:
        return decide(rule, *chain, "reject");
      // NAT statements end evaluation with NF_ACCEPT; they only appear in nat chains.
      case ir::VerdictKind::masquerade:
      case ir::VerdictKind::dnat:
        return decide(rule, *chain, "accept");
      case ir::VerdictKind::jump:
        enter(rule, target, true);
        break;
      case ir::VerdictKind::go_to:
        enter(rule, target, false);
        break;
      case ir::VerdictKind::return_:
        next = chain->rules.size();
        break;  // as if at the end
      case ir::VerdictKind::none:
      case ir::VerdictKind::clamp_mss:
      case ir::VerdictKind::vmap:
      case ir::VerdictKind::map_lookup:
        break;
    }
  }
  throw std::invalid_argument("chain " + chain->name + " loops (goto cycle)");
}

std::string decided_where(const Policy& policy, const ExplainResult& result) {
  const Rule* rule = policy.find_rule(result.decided_by);
  return rule ? to_string(rule->where) : std::string();
}

}  // namespace portier
