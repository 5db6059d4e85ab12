#include "compile_policy.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <string_view>
#include <utility>

#include "compile_match.h"
#include "compile_neighbours.h"
#include "merge_rules.h"
#include "neighbours.h"
#include "protocol_sets.h"
#include "split_chains.h"

namespace portier {
namespace {

// Zone chains of the input base chain: input_lan (published_lan mirrors it).
constexpr const char* kInputZonePrefix = "input_";
// Chain rules after the policy's own (defaults, a log line, neighbour services): reserved
// with them, so that appending them does not move the policy's rules again.
constexpr std::size_t kRoomAfterRules = 8;
// How many rules a chain collects before they go to its ChainMerger (hand_over_some()).
constexpr std::size_t kHandOverFrom = 64;

// An address as its family and two big-endian 64-bit halves, ordered as ir::Address is
// (family, then the bytes): sets of a million addresses are sorted and walked by these,
// without a byte-by-byte comparison each time.
struct AddressKey {
  ir::Family family;
  std::uint64_t high;
  std::uint64_t low;
  friend auto operator<=>(const AddressKey&, const AddressKey&) = default;
};

AddressKey key_of(const ir::Address& address) {
  std::uint64_t high = 0;
  std::uint64_t low = 0;
  std::memcpy(&high, address.bytes.data(), 8);
  std::memcpy(&low, address.bytes.data() + 8, 8);
  if constexpr (std::endian::native == std::endian::little) {
    high = __builtin_bswap64(high);
    low = __builtin_bswap64(low);
  }
  return {address.family, high, low};
}

bool first_before(const ir::AddressRange& a, const ir::AddressRange& b) {
  return key_of(a.first) < key_of(b.first);
}

ir::Rule rule_of(std::vector<ir::Match> matches, ir::VerdictKind kind, std::string comment = {},
                 bool counter = false) {
  ir::Rule rule;
  rule.matches = std::move(matches);
  rule.counter = counter;
  rule.verdict.kind = kind;
  rule.comment = std::move(comment);
  return rule;
}

ir::Rule goto_rule(std::vector<ir::Match> matches, std::string chain) {
  ir::Rule rule = rule_of(std::move(matches), ir::VerdictKind::go_to);
  rule.verdict.chain = std::move(chain);
  return rule;
}

std::uint32_t seconds_of(Rate::Unit unit) {
  switch (unit) {
    case Rate::Unit::second:
      return 60;  // a minute of memory is plenty for a per-second rate
    case Rate::Unit::minute:
      return 60;
    case Rate::Unit::hour:
      return 3600;
    case Rate::Unit::day:
      return 86400;
  }
  return 60;
}

ir::RateUnit rate_unit(Rate::Unit unit) {
  switch (unit) {
    case Rate::Unit::second:
      return ir::RateUnit::second;
    case Rate::Unit::minute:
      return ir::RateUnit::minute;
    case Rate::Unit::hour:
      return ir::RateUnit::hour;
    case Rate::Unit::day:
      return ir::RateUnit::day;
  }
  return ir::RateUnit::second;
}

std::string meter_name(const Rule& rule, ir::Family family) {
  return "limit_" + rule.name + (family == ir::Family::ipv4 ? "_v4" : "_v6");
}

std::vector<ir::Match> concat(std::vector<ir::Match> a, const std::vector<ir::Match>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Fills a ruleset from a policy. One instance per compilation.
class Compiler {
 public:
  Compiler(const Policy& policy, const CompileOptions& options)
      : policy_(policy), options_(options) {
    // Neighbour zones are not dispatched (compile_neighbours.h).
    for (const Zone& zone : policy.zones)
      if (!zone.interfaces.empty() && zone.stack.empty()) dispatch_zones_.push_back(&zone);
    has_neighbours_ = !neighbour_zones(policy).empty();
    // Zones are disjoint by interface, so their order does not matter; by name, the ruleset
    // is the same however the policy was written (or written back, see write_policy).
    std::sort(dispatch_zones_.begin(), dispatch_zones_.end(),
              [](const Zone* a, const Zone* b) { return a->name < b->name; });
  }

  ir::Ruleset run() {
    ir::Ruleset ruleset;
    ruleset.owner = options_.owner;
    ruleset.persist = options_.owner;
    add_policy_sets(ruleset);
    add_owner_sets(ruleset);
    add_meter_sets();
    std::vector<ir::Chain> zone_chains;
    if (publishes()) start_published_chains();
    ir::Chain input = input_chain(zone_chains);
    if (publishes()) published_chains(zone_chains);
    ir::Chain forward = forward_chain(zone_chains);
    ir::Chain output = output_chain();
    // The kernel resolves jump and goto targets when a rule is added: targets first.
    if (needs_reject_chain()) ruleset.chains.push_back(reject_chain());
    for (const Bind& bind : policy_.binds)
      if (!bind.user) ruleset.chains.push_back(bind_chain(bind));
    for (ir::Chain& chain : zone_chains) ruleset.chains.push_back(std::move(chain));
    ruleset.chains.push_back(std::move(input));
    ruleset.chains.push_back(std::move(forward));
    ruleset.chains.push_back(std::move(output));
    if (needs_nat()) {
      ruleset.chains.push_back(prerouting_chain());
      ruleset.chains.push_back(postrouting_chain());
    }
    ruleset.sets.insert(ruleset.sets.end(), meters_.begin(), meters_.end());
    if (options_.merge_rules) merge_chains(ruleset);
    return ruleset;
  }

 private:
  void add_policy_sets(ir::Ruleset& ruleset) {
    for (const NamedSet& set : policy_.sets) {
      ir::NamedSet compiled;
      compiled.name = set.name;
      compiled.interval = true;
      compiled.timeout = set.timeout.has_value();
      if (set.family == SetFamily::port) {
        compiled.key = ir::SetKey::inet_service;
        for (const ir::PortRange& range : merge_port_ranges(set.ports))
          compiled.elements.push_back(
              {ir::port_element(range.first), ir::port_element(range.last)});
      } else {
        // Single addresses go into a hash set, networks into an interval set: adding or
        // removing one element of a hash set costs the same at a million elements, while
        // the kernel's interval tree is walked whole on every change (docs/nftables-owner.md).
        compiled.key =
            set.family == SetFamily::ipv4 ? ir::SetKey::ipv4_addr : ir::SetKey::ipv6_addr;
        ir::NamedSet hosts = compiled;
        hosts.name = host_set_name(set.name);
        hosts.interval = false;
        std::vector<ir::AddressRange> networks;
        for (const Cidr& cidr : set.addresses) {
          if (cidr.prefix == cidr.size() * 8)
            hosts.elements.push_back(to_range(cidr));
          else
            networks.push_back(to_range(cidr));
        }
        std::sort(hosts.elements.begin(), hosts.elements.end(), first_before);
        hosts.elements.erase(std::unique(hosts.elements.begin(), hosts.elements.end()),
                             hosts.elements.end());
        compiled.elements = merge_address_ranges(std::move(networks));
        // An address inside one of the networks is matched there already. Both are sorted
        // and the networks do not overlap: one walk along both finds them.
        std::size_t network = 0;
        const std::vector<ir::AddressRange>& nets = compiled.elements;
        std::erase_if(hosts.elements, [&](const ir::AddressRange& host) {
          AddressKey address = key_of(host.first);
          while (network < nets.size() && key_of(nets[network].last) < address) ++network;
          return network < nets.size() && !(address < key_of(nets[network].first));
        });
        // A big hash set is declared with its size, so that the kernel allocates its table
        // once instead of growing and rehashing it step by step while it is filled: 2-3x
        // less kernel time at half a million addresses. An add beyond it is refused, and
        // portierd then loads the set anew, with a larger size.
        if (hosts.elements.size() > kSizedHashSetAbove)
          hosts.size = static_cast<std::uint32_t>(std::bit_ceil(2 * hosts.elements.size()));
        ruleset.sets.push_back(std::move(compiled));
        ruleset.sets.push_back(std::move(hosts));
        continue;
      }
      ruleset.sets.push_back(std::move(compiled));
    }
  }

  // Whether chains and sets exist does not depend on which rules are enabled, so that
  // turning a rule on or off only adds or removes that rule's own kernel rules.
  bool needs_nat() const { return !policy_.masquerade.empty() || !policy_.forwards.empty(); }

  bool needs_reject_chain() const {
    auto rejects = [](Action action) { return action == Action::reject; };
    if (rejects(policy_.input) || rejects(policy_.output) || rejects(policy_.forward)) return true;
    for (const Zone& zone : policy_.zones)
      if (zone.input && rejects(*zone.input)) return true;
    return std::any_of(policy_.rules.begin(), policy_.rules.end(), [](const Rule& rule) {
      bool single = rule.protocols.size() == 1 &&
                    (rule.protocols[0] == Protocol::tcp || rule.protocols[0] == Protocol::udp);
      return rule.action == Action::reject && !single;
    });
  }

  // One set of cgroup ids per socket owner that is a unit or cgroup: the daemon puts the
  // owner's cgroup in while it exists, so the rules never change when the unit restarts.
  void add_owner_sets(ir::Ruleset& ruleset) const {
    auto add = [&ruleset](const std::string& owner_name, ir::CgroupOwner owner) {
      ir::NamedSet set;
      set.name = cgroup_set_name(owner_name);
      set.key = ir::SetKey::cgroupv2;
      set.owner = std::move(owner);
      ruleset.sets.push_back(std::move(set));
    };
    for (const Bind& bind : policy_.binds)
      if (!bind.user) add(bind.name, {bind.unit, bind.cgroup});
    for (const Rule& rule : policy_.rules)
      if (!rule.unit.empty()) add(rule.name, {rule.unit, {}});
  }

  void add_meter_sets() {
    for (const Rule& rule : policy_.rules) {
      if (!rule.limit) continue;
      for (ir::Family family : {ir::Family::ipv4, ir::Family::ipv6}) {
        ir::NamedSet meter;
        meter.name = meter_name(rule, family);
        meter.key = family == ir::Family::ipv4 ? ir::SetKey::ipv4_addr : ir::SetKey::ipv6_addr;
        meter.dynamic = true;
        meter.timeout = true;
        meter.default_timeout_seconds = seconds_of(rule.limit->unit);
        meter.size = 65535;
        meters_.push_back(std::move(meter));
      }
    }
  }

  // TCP gets a reset and everything else an ICMP(v6) port unreachable, as a closed port
  // would answer. A rule over TCP or UDP alone rejects directly; anything else goes
  // through a chain that picks the answer per packet.
  ir::Verdict verdict_for(Action action, const std::vector<Protocol>& protocols) {
    ir::Verdict verdict;
    switch (action) {
      case Action::accept:
        verdict.kind = ir::VerdictKind::accept;
        break;
      case Action::drop:
        verdict.kind = ir::VerdictKind::drop;
        break;
      case Action::reject:
        if (protocols.size() == 1 && protocols[0] == Protocol::tcp) {
          verdict.kind = ir::VerdictKind::reject_tcp_reset;
        } else if (protocols.size() == 1 && protocols[0] == Protocol::udp) {
          verdict.kind = ir::VerdictKind::reject_icmpx_port_unreachable;
        } else {
          verdict.kind = ir::VerdictKind::jump;
          verdict.chain = kRejectChain;
        }
        break;
    }
    return verdict;
  }

  ir::Rule log_rule(std::vector<ir::Match> matches, std::string prefix,
                    std::string comment = {}) const {
    matches.push_back(ir::Limit{options_.log_rate_per_minute, ir::RateUnit::minute, 5, false});
    ir::Rule rule = rule_of(std::move(matches), ir::VerdictKind::none, std::move(comment));
    rule.log = ir::Log{std::move(prefix), policy_.log_group};
    return rule;
  }

  // The verdict for packets no rule decided, logged as [policy].log asks.
  void add_default(ir::Chain& chain, Action action, const std::string& where,
                   bool explicit_verdict) {
    bool log =
        policy_.log == LogMode::all || (policy_.log == LogMode::denied && action != Action::accept);
    if (log)
      chain.rules.push_back(log_rule(
          {}, "portier " + std::string(action == Action::accept ? "accepted " : "denied ") + where +
                  " "));
    if (action == Action::reject || explicit_verdict) {
      ir::Rule rule = rule_of({}, ir::VerdictKind::none, "default " + where, true);
      rule.verdict = verdict_for(action, {});
      chain.rules.push_back(std::move(rule));
    }
  }

  // A policy rule as kernel rules in `chain`: one per alternative of its endpoints,
  // preceded by its per-source limit and its log rule where it has them.
  void add_rule(ir::Chain& chain, const Rule& rule, const ChainZone& zone) {
    auto from = endpoint_segments(policy_, rule.from, false, false, zone);
    // The zone dispatch is by incoming interface: it tells nothing about where a packet goes.
    auto to = endpoint_segments(policy_, rule.to, true, true, ChainZone{});
    std::vector<ir::Match> tail = protocol_matches(rule.protocols, rule.ports, false);
    if (rule.user) tail.push_back(ir::SocketUid{*rule.user, false});
    // A unit's socket is matched at every level its cgroup may be at (ruleset.h).
    std::vector<std::vector<ir::Match>> tails;
    if (rule.unit.empty()) {
      tails.push_back(std::move(tail));
    } else {
      for (std::uint32_t level = 1; level <= ir::kCgroupLevels; ++level)
        tails.push_back(concat(tail, {ir::SocketCgroup{level, cgroup_set_name(rule.name)}}));
    }
    for (const Segment& segment : combine(from, to)) {
      for (const std::vector<ir::Match>& owner_tail : tails) {
        std::vector<ir::Match> matches = concat(segment, owner_tail);
        if (published_copy_)
          for (std::vector<ir::Match>& alternative : published_alternatives(matches))
            add_rule_segment(*published_copy_, rule, std::move(alternative));
        add_rule_segment(chain, rule, std::move(matches));
      }
    }
  }

  // The input rules of `zone`'s chain (zone.zone nullptr: the base chain) into `chain`, and
  // while neighbours publish ports their copies for DNATed connections into the published
  // chain's rules (published_chains()): each rule's endpoints are worked out once for both.
  void add_input_rules(ir::Chain& chain, const ChainZone& zone) {
    published_copy_ = publishes() ? &published_.at(zone.zone) : nullptr;
    if (published_copy_ && !options_.merge_rules)
      published_copy_->rules.reserve(published_copy_->rules.size() + room_for(Direction::in));
    add_rules(chain, Direction::in, zone);
    published_copy_ = nullptr;
  }

  // One alternative of a policy rule: its per-source limit, its log line, the rule.
  void add_rule_segment(ir::Chain& chain, const Rule& rule, std::vector<ir::Match> matches) {
    if (rule.limit) add_meter_rules(chain, rule, matches);
    if (rule.log || policy_.log == LogMode::all)
      chain.rules.push_back(
          log_rule(matches, "portier " + rule.name + " ", rule.name + kLogSuffix));
    ir::Rule compiled = rule_of(std::move(matches), ir::VerdictKind::accept, rule.name, true);
    compiled.verdict = verdict_for(rule.action, rule.protocols);
    chain.rules.push_back(std::move(compiled));
  }

  // New connections over the rule's per-source rate are dropped before the rule accepts.
  void add_meter_rules(ir::Chain& chain, const Rule& rule, const std::vector<ir::Match>& matches) {
    ir::Limit limit{rule.limit->count, rate_unit(rule.limit->unit), 5, true};
    // Matches on addresses of one family leave only that family's meter meaningful: a rule
    // asking for ip saddr and ip6 saddr at once could never match (and nft refuses it).
    std::optional<ir::Family> only;
    for (const ir::Match& match : matches) {
      if (const auto* in = std::get_if<ir::AddressIn>(&match)) only = in->family;
      if (const auto* in_set = std::get_if<ir::AddressInSet>(&match)) only = in_set->family;
    }
    for (ir::Family family : {ir::Family::ipv4, ir::Family::ipv6}) {
      if (only && *only != family) continue;
      std::vector<ir::Match> over = matches;
      over.push_back(ir::MeterOver{meter_name(rule, family), family, limit});
      chain.rules.push_back(
          rule_of(std::move(over), ir::VerdictKind::drop, rule.name + kOverLimitSuffix, true));
    }
  }

  // Packets are sent to zone chains by interface: exact names through one verdict map,
  // wildcards one rule each.
  void add_dispatch(ir::Chain& chain, const std::string& prefix) {
    if (dispatch_zones_.empty()) return;
    ir::Rule vmap = rule_of({}, ir::VerdictKind::vmap);
    std::vector<ir::Rule> wildcards;
    for (const Zone* zone : dispatch_zones_) {
      for (const std::string& name : zone->interfaces) {
        if (name.ends_with('*'))
          wildcards.push_back(goto_rule({ir::InterfaceNameIn{false, {name}}}, prefix + zone->name));
        else
          vmap.verdict.vmap.push_back({name, ir::VerdictKind::go_to, prefix + zone->name});
      }
    }
    std::sort(
        vmap.verdict.vmap.begin(), vmap.verdict.vmap.end(),
        [](const ir::VmapEntry& a, const ir::VmapEntry& b) { return a.interface < b.interface; });
    if (!vmap.verdict.vmap.empty()) chain.rules.push_back(std::move(vmap));
    for (ir::Rule& rule : wildcards) chain.rules.push_back(std::move(rule));
  }

  // Room for one kernel rule per policy rule of `direction`, the common case, and the few
  // rules that follow them (defaults), when the rules are not merged: a 10,000-rule chain
  // grown by doubling was moved a dozen times, each time into fresh pages. (Merged, a
  // chain holds at most kHandOverFrom of them, hand_over_some().)
  std::size_t room_for(Direction direction) const {
    return static_cast<std::size_t>(
               std::count_if(policy_.rules.begin(), policy_.rules.end(),
                             [&](const Rule& rule) { return rule.direction == direction; })) +
           kRoomAfterRules;
  }

  void add_rules(ir::Chain& chain, Direction direction, const ChainZone& zone) {
    if (!options_.merge_rules) chain.rules.reserve(chain.rules.size() + room_for(direction));
    for (const Rule& rule : policy_.rules) {
      if (rule.direction != direction) continue;
      add_rule(chain, rule, zone);
      hand_over_some(chain);
      if (published_copy_) hand_over_some(*published_copy_);
    }
  }

  // With merging on, a chain's rules go to its ChainMerger (merge_rules.h) as they are
  // made, kHandOverFrom at a time, so no chain ever holds its policy rules unmerged.
  void hand_over_some(ir::Chain& chain) {
    if (options_.merge_rules && chain.rules.size() >= kHandOverFrom) hand_over(chain);
  }
  void hand_over(ir::Chain& chain) {
    ChainMerger& merger = mergers_.try_emplace(chain.name, chain.name).first->second;
    for (ir::Rule& rule : chain.rules) merger.add(std::move(rule));
    chain.rules.clear();
  }

  // Every chain merged, in the ruleset's order, which is the order of its maps.
  void merge_chains(ir::Ruleset& ruleset) {
    for (ir::Chain& chain : ruleset.chains) {
      hand_over(chain);
      auto merger = mergers_.find(chain.name);
      merger->second.finish(chain.rules, ruleset.maps);
      mergers_.erase(merger);
    }
  }

  ir::Chain input_chain(std::vector<ir::Chain>& zone_chains) {
    ir::Chain chain{kInputChain,
                    ir::BaseChain{ir::Hook::input, ir::ChainType::filter, kFilterPriority,
                                  policy_.input == Action::accept},
                    {}};
    chain.rules.push_back(rule_of({ir::LoopbackInterface{false}}, ir::VerdictKind::accept));
    for (const Bind& bind : policy_.binds) {
      if (bind.user) continue;
      // Only new connections: the ACK that completes a handshake belongs to a request
      // socket, which `socket cgroupv2` cannot place, and later packets to established
      // connections the owner already accepted.
      auto matches = protocol_matches(bind.protocols, bind.ports, false);
      matches.push_back(ir::CtState{ir::ct_new});
      ir::Rule check = rule_of(std::move(matches), ir::VerdictKind::jump);
      check.verdict.chain = bind_chain_name(bind);
      chain.rules.push_back(std::move(check));
    }
    chain.rules.push_back(
        rule_of({ir::CtState{ir::ct_established | ir::ct_related}}, ir::VerdictKind::accept));
    chain.rules.push_back(rule_of({ir::CtState{ir::ct_invalid}}, ir::VerdictKind::drop));
    chain.rules.push_back(rule_of(
        {ir::IcmpTypeIn{true, {std::begin(kIcmpv6Essentials), std::end(kIcmpv6Essentials)}}},
        ir::VerdictKind::accept));
    for (const Zone* zone : dispatch_zones_) {
      ir::Chain zone_chain{kInputZonePrefix + zone->name, std::nullopt, {}};
      add_input_rules(zone_chain, {zone, true});
      add_default(zone_chain, zone->input.value_or(policy_.input), "input from " + zone->name,
                  true);
      zone_chains.push_back(std::move(zone_chain));
    }
    add_dispatch(chain, kInputZonePrefix);
    add_input_rules(chain, {nullptr, !dispatch_zones_.empty()});
    add_neighbour_input(chain);
    add_default(chain, policy_.input, "input", false);
    return chain;
  }

  // After the policy's input rules, in the base chain (neighbours are not dispatched): the
  // services the host gives libvirt's guests and podman's containers, and a neighbour
  // zone's own input default.
  void add_neighbour_input(ir::Chain& chain) {
    for (const Zone* zone : neighbour_zones(policy_)) {
      const NeighbourStack* stack = find_stack(zone->stack);
      for (const Segment& segment : neighbour_segments(policy_, *zone, false)) {
        if (stack)
          for (const std::vector<ir::Match>& services : guest_service_matches(*stack))
            chain.rules.push_back(rule_of(concat(segment, services), ir::VerdictKind::accept,
                                          guest_service_comment(zone->name, *stack), true));
        if (zone->input) {
          ir::Rule rule =
              rule_of(segment, ir::VerdictKind::accept, "default input from " + zone->name, true);
          rule.verdict = verdict_for(*zone->input, {});
          chain.rules.push_back(std::move(rule));
        }
      }
    }
  }

  // Neighbours publish ports, and the policy's input rules decide them (not "open").
  bool publishes() const { return has_neighbours_ && !policy_.neighbours.published_open; }

  // The input rules and defaults again, for connections a neighbour DNATs to one of its
  // containers: `published` mirrors the input base chain, `published_ZONE` input_ZONE (their
  // rules made beside the input chains', add_input_rules()).
  // Connections that come from a neighbour (a pod to a Kubernetes service, a container to
  // another's port through the host's address) go back to the forward chain, to be left to
  // their owner like the rest of its traffic.
  // The published chains up to the copies, which add_input_rules() adds as it makes the
  // input chains' rules (published_chains() finishes them).
  void start_published_chains() {
    ir::Chain& chain = published_[nullptr];
    chain.name = kPublishedChain;
    for (Segment& segment : neighbour_segments(policy_, false))
      chain.rules.push_back(rule_of(std::move(segment), ir::VerdictKind::return_));
    add_dispatch(chain, kPublishedPrefix);
    for (const Zone* zone : dispatch_zones_) published_[zone].name = kPublishedPrefix + zone->name;
  }

  // After the input chains: the published chains' defaults, and the chains into
  // zone_chains (the zones' first, then `published`).
  void published_chains(std::vector<ir::Chain>& zone_chains) {
    for (const Zone* zone : dispatch_zones_) {
      ir::Chain& zone_chain = published_.at(zone);
      add_default(zone_chain, zone->input.value_or(policy_.input), "input from " + zone->name,
                  true);
      zone_chains.push_back(std::move(zone_chain));
    }
    ir::Chain& chain = published_.at(nullptr);
    add_default(chain, policy_.input, "input", true);
    zone_chains.push_back(std::move(chain));
    published_.clear();
  }

  // Early in the forward chain: DNATed connections out through a neighbour's interface go
  // to `published` (or are accepted, with published = "open").
  void add_published_dispatch(ir::Chain& chain) {
    if (!has_neighbours_) return;
    for (Segment& segment : neighbour_segments(policy_, true)) {
      segment.insert(segment.begin(), ir::CtStatusDnat{});
      if (publishes()) {
        ir::Rule rule = rule_of(std::move(segment), ir::VerdictKind::jump);
        rule.verdict.chain = kPublishedChain;
        chain.rules.push_back(std::move(rule));
      } else {
        chain.rules.push_back(
            rule_of(std::move(segment), ir::VerdictKind::accept, "published ports open", true));
      }
    }
  }

  // Last in the forward chain, after the policy's forward rules: whatever comes from a
  // neighbour's interface is its owner's to decide, and its chains (at the standard
  // priority, before portier's) already did.
  void add_neighbour_forward(ir::Chain& chain) {
    for (const Zone* zone : neighbour_zones(policy_))
      for (Segment& segment : neighbour_segments(policy_, *zone, false))
        chain.rules.push_back(
            rule_of(std::move(segment), ir::VerdictKind::accept, "left to " + zone->name, true));
  }

  ir::Chain forward_chain(std::vector<ir::Chain>& zone_chains) {
    ir::Chain chain{kForwardChain,
                    ir::BaseChain{ir::Hook::forward, ir::ChainType::filter, kFilterPriority,
                                  policy_.forward == Action::accept},
                    {}};
    // Clamp the MSS of connections through masqueraded links (often PPPoE with a smaller
    // MTU) to the route's MTU, both the SYN out and the SYN-ACK back.
    for (const std::string& name : policy_.masquerade) {
      const Zone* zone = policy_.find_zone(name);
      if (!zone) continue;
      for (bool outgoing : {true, false})
        for (Segment& segment : interface_segments(*zone, outgoing)) {
          segment.insert(segment.begin(), ir::TcpSyn{});
          chain.rules.push_back(rule_of(std::move(segment), ir::VerdictKind::clamp_mss));
        }
    }
    chain.rules.push_back(
        rule_of({ir::CtState{ir::ct_established | ir::ct_related}}, ir::VerdictKind::accept));
    chain.rules.push_back(rule_of({ir::CtState{ir::ct_invalid}}, ir::VerdictKind::drop));
    add_published_dispatch(chain);
    if (!policy_.forwards.empty())
      chain.rules.push_back(
          rule_of({ir::CtStatusDnat{}}, ir::VerdictKind::accept, "port forwards", true));
    for (const Zone* zone : dispatch_zones_) {
      ir::Chain zone_chain{std::string("forward_") + zone->name, std::nullopt, {}};
      add_rules(zone_chain, Direction::forward, {zone, true});
      for (const std::string& target_name : zone->forward_to) {
        const Zone* target = policy_.find_zone(target_name);
        if (!target) continue;
        for (Segment& segment : interface_segments(*target, true))
          zone_chain.rules.push_back(rule_of(std::move(segment), ir::VerdictKind::accept,
                                             zone->name + " to " + target->name, true));
      }
      add_default(zone_chain, policy_.forward, "forward from " + zone->name, true);
      zone_chains.push_back(std::move(zone_chain));
    }
    add_dispatch(chain, "forward_");
    add_rules(chain, Direction::forward, {nullptr, !dispatch_zones_.empty()});
    add_neighbour_forward(chain);
    add_default(chain, policy_.forward, "forward", false);
    return chain;
  }

  ir::Chain output_chain() {
    ir::Chain chain{kOutputChain,
                    ir::BaseChain{ir::Hook::output, ir::ChainType::filter, kFilterPriority,
                                  policy_.output == Action::accept},
                    {}};
    chain.rules.push_back(rule_of({ir::LoopbackInterface{true}}, ir::VerdictKind::accept));
    // A port tied to a user: whatever else answers from it is dropped on the way out.
    for (const Bind& bind : policy_.binds) {
      if (!bind.user) continue;
      auto matches = protocol_matches(bind.protocols, bind.ports, true);
      matches.push_back(ir::SocketUid{*bind.user, true});
      chain.rules.push_back(rule_of(std::move(matches), ir::VerdictKind::drop, bind.name, true));
    }
    chain.rules.push_back(
        rule_of({ir::CtState{ir::ct_established | ir::ct_related}}, ir::VerdictKind::accept));
    // NAT leakage: a packet conntrack cannot place would leave with its private source.
    for (const std::string& name : policy_.masquerade)
      if (const Zone* zone = policy_.find_zone(name))
        for (Segment& segment : interface_segments(*zone, true)) {
          segment.push_back(ir::CtState{ir::ct_invalid});
          chain.rules.push_back(rule_of(std::move(segment), ir::VerdictKind::drop));
        }
    add_rules(chain, Direction::out, {nullptr, false});
    add_default(chain, policy_.output, "output", false);
    return chain;
  }

  ir::Chain prerouting_chain() {
    ir::Chain chain{kPreroutingChain,
                    ir::BaseChain{ir::Hook::prerouting, ir::ChainType::nat, kDstnatPriority, true},
                    {}};
    for (const Forward& forward : policy_.forwards) {
      const Zone* zone = policy_.find_zone(forward.from);
      if (!zone) continue;
      for (Segment& segment : interface_segments(*zone, false)) {
        auto matches =
            concat(std::move(segment), protocol_matches(forward.protocols, forward.ports, false));
        ir::Rule rule = rule_of(std::move(matches), ir::VerdictKind::dnat, forward.name, true);
        rule.verdict.nat_address = to_range(forward.to_address).first;
        rule.verdict.nat_port = forward.to_port;
        chain.rules.push_back(std::move(rule));
      }
    }
    return chain;
  }

  // IPv4 only: IPv6 has addresses enough for every host, so it is routed, not NATed (as
  // OpenWrt's firewall4 does by default).
  ir::Chain postrouting_chain() {
    ir::Chain chain{kPostroutingChain,
                    ir::BaseChain{ir::Hook::postrouting, ir::ChainType::nat, kSrcnatPriority, true},
                    {}};
    for (const std::string& name : policy_.masquerade)
      if (const Zone* zone = policy_.find_zone(name))
        for (Segment& segment : interface_segments(*zone, true)) {
          segment.insert(segment.begin(), ir::NfProto{ir::Family::ipv4});
          chain.rules.push_back(
              rule_of(std::move(segment), ir::VerdictKind::masquerade, "masquerade " + name, true));
        }
    return chain;
  }

  static std::string bind_chain_name(const Bind& bind) { return "bind_" + bind.name; }

  // Packets for a bound port reach the owner's socket; any other socket gets nothing.
  // The owner's socket returns (its cgroup's ancestor at some level is in the bind's set,
  // which is empty while the unit does not run), any socket still here is dropped
  // (`socket transparent` matches whenever there is a socket), no socket passes on.
  // `socket cgroupv2 level N != ...` alone would not do: for a socket in a cgroup less
  // than N levels deep there is no level-N ancestor, and the expression never matches.
  ir::Chain bind_chain(const Bind& bind) const {
    ir::Chain chain{bind_chain_name(bind), std::nullopt, {}};
    // Named like the bind, as every kernel rule of it is: errors and counters find it.
    for (std::uint32_t level = 1; level <= ir::kCgroupLevels; ++level)
      chain.rules.push_back(rule_of({ir::SocketCgroup{level, cgroup_set_name(bind.name)}},
                                    ir::VerdictKind::return_, bind.name));
    for (bool transparent : {false, true})
      chain.rules.push_back(
          rule_of({ir::SocketTransparent{transparent}}, ir::VerdictKind::drop, bind.name, true));
    return chain;
  }

  static ir::Chain reject_chain() {
    ir::Chain chain{kRejectChain, std::nullopt, {}};
    chain.rules.push_back(
        rule_of({ir::L4ProtoIn{{ir::L4Proto::tcp}}}, ir::VerdictKind::reject_tcp_reset));
    chain.rules.push_back(rule_of({}, ir::VerdictKind::reject_icmpx_port_unreachable));
    return chain;
  }

  const Policy& policy_;
  const CompileOptions& options_;
  std::vector<const Zone*> dispatch_zones_;  // zones with interfaces, by name; no neighbours
  bool has_neighbours_ = false;              // neighbour zones with interfaces
  ir::Chain* published_copy_ = nullptr;      // add_input_rules(): where add_rule puts the copies
  std::map<const Zone*, ir::Chain> published_;  // the published chains being made, by zone
  std::map<std::string, ChainMerger, std::less<>> mergers_;  // by chain name (hand_over())
  std::vector<ir::NamedSet> meters_;
};

}  // namespace

std::vector<ir::PortRange> merge_port_ranges(const std::vector<PortRange>& ports) {
  std::vector<ir::PortRange> sorted;
  sorted.reserve(ports.size());
  for (const PortRange& port : ports) sorted.push_back({port.first, port.last});
  std::sort(sorted.begin(), sorted.end(),
            [](const ir::PortRange& a, const ir::PortRange& b) { return a.first < b.first; });
  std::vector<ir::PortRange> merged;
  for (const ir::PortRange& range : sorted) {
    if (!merged.empty() && range.first <= static_cast<std::uint32_t>(merged.back().last) + 1)
      merged.back().last = std::max(merged.back().last, range.last);
    else
      merged.push_back(range);
  }
  return merged;
}

namespace {

// The address one after `address`, or nullopt past the last one of its family.
std::optional<ir::Address> successor(ir::Address address) {
  std::size_t size = address.family == ir::Family::ipv4 ? 4 : 16;
  for (std::size_t i = size; i-- > 0;) {
    if (++address.bytes[i] != 0) return address;
  }
  return std::nullopt;
}

}  // namespace

std::vector<ir::AddressRange> merge_address_ranges(std::vector<ir::AddressRange> ranges) {
  std::sort(ranges.begin(), ranges.end(), first_before);
  std::vector<ir::AddressRange> merged;
  merged.reserve(ranges.size());
  for (const ir::AddressRange& range : ranges) {
    if (!merged.empty()) {
      auto next = successor(merged.back().last);
      if (!next || range.first <= *next) {
        if (merged.back().last < range.last) merged.back().last = range.last;
        continue;
      }
    }
    merged.push_back(range);
  }
  return merged;
}

ir::AddressRange to_range(const Cidr& cidr) {
  ir::AddressRange range;
  range.first.family = range.last.family =
      cidr.family == Family::ipv4 ? ir::Family::ipv4 : ir::Family::ipv6;
  range.first.bytes = range.last.bytes = cidr.bytes;
  const std::size_t bits = cidr.size() * 8;
  for (std::size_t bit = cidr.prefix; bit < bits; ++bit) {
    auto mask = static_cast<std::uint8_t>(0x80 >> (bit % 8));
    range.first.bytes[bit / 8] = static_cast<std::uint8_t>(range.first.bytes[bit / 8] & ~mask);
    range.last.bytes[bit / 8] = static_cast<std::uint8_t>(range.last.bytes[bit / 8] | mask);
  }
  return range;
}

std::string_view rule_owner(const ir::Rule& rule) {
  std::string_view comment = rule.comment;
  for (std::string_view suffix : {std::string_view(kOverLimitSuffix), std::string_view(kLogSuffix)})
    if (comment.ends_with(suffix)) return comment.substr(0, comment.size() - suffix.size());
  return comment;
}

std::set<std::string, std::less<>> disabled_names(const Policy& policy) {
  std::set<std::string, std::less<>> disabled;
  for (const Rule& rule : policy.rules)
    if (!rule.enabled) disabled.insert(rule.name);
  for (const Forward& forward : policy.forwards)
    if (!forward.enabled) disabled.insert(forward.name);
  return disabled;
}

ir::Ruleset without_owners(const ir::Ruleset& full,
                           const std::set<std::string, std::less<>>& disabled) {
  ir::Ruleset result = full;
  for (ir::Chain& chain : result.chains)
    std::erase_if(chain.rules,
                  [&](const ir::Rule& rule) { return disabled.count(rule_owner(rule)) > 0; });
  for (ir::RuleMap& map : result.maps)
    std::erase_if(map.elements,
                  [&](const ir::MapElement& element) { return disabled.count(element.comment) > 0; });
  return result;
}

ir::Ruleset compile_panic(bool keep_established, const CompileOptions& options) {
  ir::Ruleset ruleset;
  ruleset.owner = ruleset.persist = options.owner;
  struct Base {
    const char* name;
    ir::Hook hook;
  };
  for (Base base : {Base{kInputChain, ir::Hook::input}, Base{kForwardChain, ir::Hook::forward},
                    Base{kOutputChain, ir::Hook::output}}) {
    ir::Chain chain{
        base.name, ir::BaseChain{base.hook, ir::ChainType::filter, kFilterPriority, false}, {}};
    if (base.hook != ir::Hook::forward)
      chain.rules.push_back(
          rule_of({ir::LoopbackInterface{base.hook == ir::Hook::output}}, ir::VerdictKind::accept));
    if (keep_established)
      chain.rules.push_back(
          rule_of({ir::CtState{ir::ct_established | ir::ct_related}}, ir::VerdictKind::accept));
    chain.rules.push_back(rule_of({}, ir::VerdictKind::drop, "panic", true));
    ruleset.chains.push_back(std::move(chain));
  }
  return ruleset;
}

ir::Ruleset compile_policy(const Policy& policy, const CompileOptions& options) {
  // Everything is compiled, enabled or not, and the disabled rules' kernel rules and map
  // elements are taken out afterwards: so which rules merge, and where, never depends
  // on what is enabled, and a toggle is an edit of what is loaded (without_owners).
  ir::Ruleset ruleset = Compiler(policy, options).run();
  if (options.merge_rules) {
    // Compiler::run() merged every chain's runs (merge_chains()).
    // `published` mirrors the input base chain, `published_ZONE` input_ZONE (published_chains).
    std::vector<std::pair<std::string, std::string>> mirrors;
    for (const ir::Chain& chain : ruleset.chains) {
      if (chain.name == kPublishedChain)
        mirrors.emplace_back(chain.name, kInputChain);
      else if (chain.name.starts_with(kPublishedPrefix))
        mirrors.emplace_back(
            chain.name,
            kInputZonePrefix + chain.name.substr(std::string_view(kPublishedPrefix).size()));
    }
    for (const auto& [copy, original] : mirrors) share_maps(ruleset, copy, original);
  }
  split_long_chains(ruleset);
  share_protocol_sets(ruleset);
  if (!options.leave_out_disabled) return ruleset;
  const std::set<std::string, std::less<>> disabled = disabled_names(policy);
  if (disabled.empty()) return ruleset;
  return without_owners(ruleset, disabled);
}

}  // namespace portier
