#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <set>

#include "compile_policy.h"
#include "parse_policy.h"
#include "protocol_sets.h"
#include "render_nft.h"

using namespace portier;

namespace {

Policy policy_from(std::string_view text) {
  ParsedPolicy parsed = parse_policy(text, "c.toml",
                                     SystemTables{ServiceTable::parse("ssh 22/tcp\n"),
                                                  UserTable::parse("www:x:33:33::/:/bin/false\n")});
  REQUIRE_MESSAGE(parsed.ok(), parsed.report());
  // The neighbours' built-in zones (neighbours_test.cpp) would add their rules to every
  // chain here: these tests are about the rest, as with every stack switched off.
  std::erase_if(parsed.policy.zones, [](const Zone& zone) { return zone.builtin; });
  return parsed.policy;
}

const ir::Chain& chain(const ir::Ruleset& ruleset, std::string_view name) {
  for (const ir::Chain& c : ruleset.chains)
    if (c.name == name) return c;
  FAIL("no chain " << name);
  throw;
}

std::vector<std::string> chain_names(const ir::Ruleset& ruleset) {
  std::vector<std::string> names;
  for (const ir::Chain& c : ruleset.chains) names.push_back(c.name);
  return names;
}

// Rules of a chain that carry this comment.
std::vector<const ir::Rule*> rules_named(const ir::Chain& c, std::string_view comment) {
  std::vector<const ir::Rule*> found;
  for (const ir::Rule& rule : c.rules)
    if (rule.comment == comment) found.push_back(&rule);
  return found;
}

ir::Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  ir::Address address;
  address.bytes[0] = a;
  address.bytes[1] = b;
  address.bytes[2] = c;
  address.bytes[3] = d;
  return address;
}

ir::Verdict to_chain(ir::VerdictKind kind, std::string chain) {
  ir::Verdict verdict;
  verdict.kind = kind;
  verdict.chain = std::move(chain);
  return verdict;
}

constexpr std::size_t kFixedInputRules = 4;  // loopback, established, invalid, icmpv6

}  // namespace

TEST_CASE("merge_port_ranges sorts and joins overlapping and adjacent ranges") {
  CHECK(merge_port_ranges({{445, 445}, {137, 139}, {138, 140}, {141, 141}, {22, 22}}) ==
        std::vector<ir::PortRange>{{22, 22}, {137, 141}, {445, 445}});
  CHECK(merge_port_ranges({{65535, 65535}, {0, 65534}}) == std::vector<ir::PortRange>{{0, 65535}});
}

TEST_CASE("address ranges: CIDRs become ranges: adjacent and overlapping ones merge") {
  Cidr net;
  net.bytes = {10, 0, 0, 0};
  net.prefix = 25;
  CHECK(to_range(net) == ir::AddressRange{v4(10, 0, 0, 0), v4(10, 0, 0, 127)});
  CHECK(merge_address_ranges({{v4(10, 0, 0, 128), v4(10, 0, 0, 255)},
                              {v4(10, 0, 0, 0), v4(10, 0, 0, 127)},
                              {v4(10, 0, 0, 5), v4(10, 0, 0, 6)},
                              {v4(192, 168, 0, 1), v4(192, 168, 0, 1)}}) ==
        std::vector<ir::AddressRange>{{v4(10, 0, 0, 0), v4(10, 0, 0, 255)},
                                      {v4(192, 168, 0, 1), v4(192, 168, 0, 1)}});
  CHECK(merge_address_ranges({{v4(255, 255, 255, 255), v4(255, 255, 255, 255)},
                              {v4(0, 0, 0, 0), v4(255, 255, 255, 254)}}) ==
        std::vector<ir::AddressRange>{{v4(0, 0, 0, 0), v4(255, 255, 255, 255)}});
}

TEST_CASE("the fixed rules come first and the defaults become chain policies") {
  ir::Ruleset ruleset = compile_policy(policy_from("[policy]\ninput='drop'\noutput='accept'\n"));
  CHECK(ruleset.table == "portier");
  CHECK_FALSE(ruleset.owner);
  CHECK(chain_names(ruleset) == std::vector<std::string>{"input", "forward", "output"});

  const ir::Chain& input = chain(ruleset, "input");
  REQUIRE(input.base);
  CHECK(input.base->hook == ir::Hook::input);
  CHECK(input.base->priority == kFilterPriority);
  CHECK_FALSE(input.base->policy_accept);
  REQUIRE(input.rules.size() == kFixedInputRules);
  CHECK(input.rules[0].matches == std::vector<ir::Match>{ir::LoopbackInterface{false}});
  CHECK(input.rules[1].matches ==
        std::vector<ir::Match>{ir::CtState{ir::ct_established | ir::ct_related}});
  CHECK(input.rules[2].matches == std::vector<ir::Match>{ir::CtState{ir::ct_invalid}});
  CHECK(input.rules[2].verdict.kind == ir::VerdictKind::drop);
  // IPv6 keeps working under a dropping default: ND, RA, MLD and errors come in.
  const auto* icmpv6 = std::get_if<ir::IcmpTypeIn>(&input.rules[3].matches[0]);
  REQUIRE(icmpv6);
  CHECK(icmpv6->v6);
  CHECK(icmpv6->types ==
        std::vector<std::uint8_t>{1, 2, 3, 4, 130, 131, 132, 133, 134, 135, 136, 143});

  const ir::Chain& forward = chain(ruleset, "forward");
  CHECK_FALSE(forward.base->policy_accept);  // routing is off unless the policy says so
  const ir::Chain& output = chain(ruleset, "output");
  CHECK(output.base->policy_accept);
  CHECK(output.rules[0].matches == std::vector<ir::Match>{ir::LoopbackInterface{true}});
}

TEST_CASE("portierd's table carries the owner and persist flags") {
  ir::Ruleset ruleset = compile_policy(policy_from(""), CompileOptions{true, 10});
  CHECK(ruleset.owner);
  CHECK(ruleset.persist);
}

TEST_CASE("a rule over tcp and udp is one kernel rule with merged ports, counter and name") {
  ir::Ruleset ruleset =
      compile_policy(policy_from("[[rule]]\nname='netbios-in'\nprotocols=['udp','tcp']\nports=['"
                                 "139','137-138']\naction='drop'\n"));
  const ir::Chain& input = chain(ruleset, "input");
  REQUIRE(input.rules.size() == kFixedInputRules + 1);
  const ir::Rule& rule = input.rules.back();
  // The two protocols are one lookup in a set that every tcp+udp rule shares.
  CHECK(rule.matches ==
        std::vector<ir::Match>{ir::L4ProtoIn{{ir::L4Proto::tcp, ir::L4Proto::udp}, "l4/tcp_udp"},
                               ir::DestPortIn{{{137, 139}}}});
  REQUIRE(ruleset.sets.size() == 1);
  CHECK(ruleset.sets[0].name == "l4/tcp_udp");
  CHECK(ruleset.sets[0].key == ir::SetKey::inet_proto);
  CHECK(ruleset.sets[0].elements == std::vector<ir::AddressRange>{
                                        ir::protocol_element(ir::L4Proto::tcp),
                                        ir::protocol_element(ir::L4Proto::udp)});
  CHECK(rule.counter);
  CHECK(rule.verdict.kind == ir::VerdictKind::drop);
  CHECK(rule.comment == "netbios-in");
}

TEST_CASE("rules of the same protocols share one named set: one protocol stays a compare") {
  std::string text;
  for (const char* name : {"a", "b", "c"})
    text += std::string("[[rule]]\nname='") + name +
            "'\nprotocols=['tcp','udp']\nports=[53]\nfrom='10.0.0.0/8'\naction='accept'\n";
  text += "[[rule]]\nname='ping'\nprotocols=['icmp','icmpv6']\naction='accept'\n";
  text += "[[rule]]\nname='web'\nprotocols=['tcp']\nports=[80]\naction='accept'\n";
  ir::Ruleset ruleset = compile_policy(policy_from(text));
  std::vector<std::string> names;
  for (const ir::NamedSet& set : ruleset.sets) names.push_back(set.name);
  CHECK(names == std::vector<std::string>{"l4/tcp_udp", "l4/icmp_ipv6-icmp"});
  const std::string nft = render_nft(ruleset);
  CHECK(nft.find("meta l4proto { ") == std::string::npos);  // no anonymous protocol set left
  CHECK(nft.find("type inet_proto\n\t\telements = { tcp, udp }") != std::string::npos);
  CHECK(nft.find("meta l4proto @l4/icmp_ipv6-icmp counter accept comment \"ping\"") !=
        std::string::npos);
  CHECK(nft.find("tcp dport 80 counter accept comment \"web\"") != std::string::npos);
  CHECK(protocol_set_name({ir::L4Proto::tcp, ir::L4Proto::udp, ir::L4Proto::sctp}) ==
        "l4/tcp_udp_sctp");
}

TEST_CASE("rules go to their direction's chain in file order: disabled rules are left out") {
  ir::Ruleset ruleset = compile_policy(
      policy_from("[[rule]]\nname='a'\nprotocols='tcp'\nports='ssh'\naction='accept'\n"
                  "[[rule]]\nname='b'\ndirection='out'\naction='drop'\n"
                  "[[rule]]\nname='c'\nprotocols='udp'\naction='accept'\nenabled=false\n"
                  "[[rule]]\nname='d'\nprotocols='udp'\naction='accept'\n"
                  "[[rule]]\nname='e'\ndirection='forward'\nprotocols='icmp'\naction='accept'\n"));
  const ir::Chain& input = chain(ruleset, "input");
  REQUIRE(input.rules.size() == kFixedInputRules + 2);
  CHECK(input.rules[4].comment == "a");
  CHECK(input.rules[4].matches[1] == ir::Match{ir::DestPortIn{{{22, 22}}}});
  CHECK(input.rules[5].comment == "d");
  CHECK(rules_named(chain(ruleset, "output"), "b").size() == 1);
  auto forwarded = rules_named(chain(ruleset, "forward"), "e");
  REQUIRE(forwarded.size() == 1);
  CHECK(forwarded[0]->matches == std::vector<ir::Match>{ir::L4ProtoIn{{ir::L4Proto::icmp}}});
}

TEST_CASE("reject answers TCP with a reset and the rest with port unreachable") {
  ir::Ruleset ruleset = compile_policy(
      policy_from("[policy]\ninput='reject'\n"
                  "[[rule]]\nname='t'\nprotocols='tcp'\naction='reject'\n"
                  "[[rule]]\nname='u'\nprotocols='udp'\naction='reject'\n"
                  "[[rule]]\nname='both'\nprotocols=['tcp','udp']\nports=[1]\naction='reject'\n"));
  const ir::Chain& reject = ruleset.chains[0];  // before the chains that jump to it
  CHECK(reject.name == kRejectChain);
  CHECK_FALSE(reject.base);
  REQUIRE(reject.rules.size() == 2);
  CHECK(reject.rules[0].verdict.kind == ir::VerdictKind::reject_tcp_reset);
  CHECK(reject.rules[1].verdict.kind == ir::VerdictKind::reject_icmpx_port_unreachable);

  const ir::Chain& input = chain(ruleset, "input");
  CHECK_FALSE(input.base->policy_accept);
  CHECK(rules_named(input, "t")[0]->verdict.kind == ir::VerdictKind::reject_tcp_reset);
  CHECK(rules_named(input, "u")[0]->verdict.kind == ir::VerdictKind::reject_icmpx_port_unreachable);
  CHECK(rules_named(input, "both")[0]->verdict == to_chain(ir::VerdictKind::jump, kRejectChain));
  const ir::Rule& last = input.rules.back();
  CHECK(last.comment == "default input");
  CHECK(last.matches.empty());
  CHECK(last.verdict == to_chain(ir::VerdictKind::jump, kRejectChain));
}

TEST_CASE("zones: interfaces dispatch through a verdict map to per-zone chains") {
  ir::Ruleset ruleset = compile_policy(policy_from(R"(
[policy]
input = "drop"
forward = "drop"
[zone.wan]
interfaces = ["eth0", "ppp*"]
[zone.lan]
interfaces = ["br-lan"]
networks = ["192.168.1.0/24"]
input = "accept"
forward_to = ["wan"]
[[rule]]
name = "ssh-wan"
from = "wan"
protocols = "tcp"
ports = 22
action = "accept"
[[rule]]
name = "anyone-dns"
protocols = "udp"
ports = 53
action = "accept"
)"));
  CHECK(chain_names(ruleset) == std::vector<std::string>{"input_lan", "input_wan", "forward_lan",
                                                         "forward_wan", "input", "forward",
                                                         "output"});
  const ir::Chain& input = chain(ruleset, "input");
  const ir::Rule& vmap = input.rules[kFixedInputRules];
  CHECK(vmap.verdict.kind == ir::VerdictKind::vmap);
  CHECK(vmap.verdict.vmap ==
        std::vector<ir::VmapEntry>{{"br-lan", ir::VerdictKind::go_to, "input_lan"},
                                   {"eth0", ir::VerdictKind::go_to, "input_wan"}});
  const ir::Rule& wildcard = input.rules[kFixedInputRules + 1];
  CHECK(wildcard.matches == std::vector<ir::Match>{ir::InterfaceNameIn{false, {"ppp*"}}});
  CHECK(wildcard.verdict == to_chain(ir::VerdictKind::go_to, "input_wan"));
  // Outside any zone only the zone-less rule applies.
  CHECK(rules_named(input, "ssh-wan").empty());
  CHECK(rules_named(input, "anyone-dns").size() == 1);

  const ir::Chain& wan = chain(ruleset, "input_wan");
  REQUIRE(wan.rules.size() == 3);
  CHECK(wan.rules[0].comment == "ssh-wan");
  CHECK(wan.rules[0].matches.size() == 2);  // no interface match: the dispatch did that
  CHECK(wan.rules[1].comment == "anyone-dns");
  CHECK(wan.rules[2].verdict.kind == ir::VerdictKind::drop);
  const ir::Chain& lan = chain(ruleset, "input_lan");
  CHECK(lan.rules.back().verdict.kind == ir::VerdictKind::accept);  // the zone's own input

  const ir::Chain& forward_lan = chain(ruleset, "forward_lan");
  REQUIRE(forward_lan.rules.size() == 3);
  CHECK(forward_lan.rules[0].matches ==
        std::vector<ir::Match>{ir::InterfaceNameIn{true, {"eth0"}}});
  CHECK(forward_lan.rules[1].matches ==
        std::vector<ir::Match>{ir::InterfaceNameIn{true, {"ppp*"}}});
  CHECK(forward_lan.rules[0].verdict.kind == ir::VerdictKind::accept);
  CHECK(forward_lan.rules[2].verdict.kind == ir::VerdictKind::drop);
}

TEST_CASE("from and to across families and sets become one kernel rule per alternative") {
  ir::Ruleset ruleset = compile_policy(policy_from(R"(
[set.friends]
family = "ipv6"
elements = ["2001:db8::/32"]
[[rule]]
name = "mixed"
from = ["10.0.0.0/8", "192.168.0.1", "fd00::/8", "@friends"]
to = "10.1.2.3"
protocols = "tcp"
action = "accept"
)"));
  // The policy's set is two kernel sets: networks (interval) and single addresses (hash).
  REQUIRE(ruleset.sets.size() == 2);
  CHECK(ruleset.sets[0].name == "friends");
  CHECK(ruleset.sets[0].key == ir::SetKey::ipv6_addr);
  CHECK(ruleset.sets[0].interval);
  CHECK(ruleset.sets[0].elements.size() == 1);
  CHECK(ruleset.sets[1].name == "friends_hosts");
  CHECK_FALSE(ruleset.sets[1].interval);
  CHECK(ruleset.sets[1].elements.empty());
  auto rules = rules_named(chain(ruleset, "input"), "mixed");
  // v4 sources with the v4 destination; the v6 source and the v6 set cannot pair with it.
  REQUIRE(rules.size() == 1);
  const auto* from = std::get_if<ir::AddressIn>(&rules[0]->matches[0]);
  REQUIRE(from);
  CHECK_FALSE(from->destination);
  CHECK(from->ranges == std::vector<ir::AddressRange>{{v4(10, 0, 0, 0), v4(10, 255, 255, 255)},
                                                      {v4(192, 168, 0, 1), v4(192, 168, 0, 1)}});
  const auto* to = std::get_if<ir::AddressIn>(&rules[0]->matches[1]);
  REQUIRE(to);
  CHECK(to->destination);
}

TEST_CASE("limit, log, user and unit") {
  ir::Ruleset ruleset = compile_policy(policy_from(R"(
[[rule]]
name = "ssh"
protocols = "tcp"
ports = 22
limit = "10/minute"
log = true
unit = "ssh.service"
action = "accept"
[[rule]]
name = "web-out"
direction = "out"
protocols = "tcp"
user = "www"
action = "accept"
)"));
  REQUIRE(ruleset.sets.size() == 3);
  CHECK(ruleset.sets[0].name == "cgroups_ssh");  // where ssh.service is
  CHECK(ruleset.sets[0].key == ir::SetKey::cgroupv2);
  CHECK(ruleset.sets[1].name == "limit_ssh_v4");
  CHECK(ruleset.sets[1].dynamic);
  CHECK(ruleset.sets[1].default_timeout_seconds == 60u);
  CHECK(ruleset.sets[2].name == "limit_ssh_v6");
  const ir::Chain& input = chain(ruleset, "input");
  auto over = rules_named(input, "ssh over limit");
  REQUIRE(over.size() == 2 * ir::kCgroupLevels);  // each family's meter, at each level
  const auto* meter = std::get_if<ir::MeterOver>(&over[0]->matches.back());
  REQUIRE(meter);
  CHECK(meter->set == "limit_ssh_v4");
  CHECK(meter->limit == ir::Limit{10, ir::RateUnit::minute, 5, true});
  CHECK(over[0]->verdict.kind == ir::VerdictKind::drop);
  const ir::Rule& log = input.rules[input.rules.size() - 2];
  REQUIRE(log.log);
  CHECK(log.log->prefix == "portier ssh ");
  CHECK(log.verdict.kind == ir::VerdictKind::none);
  // A unit's socket is looked for at every cgroup level, each a kernel rule of its own.
  auto accepts = rules_named(input, "ssh");
  REQUIRE(accepts.size() == ir::kCgroupLevels);
  for (std::uint32_t level = 1; level <= ir::kCgroupLevels; ++level)
    CHECK(accepts[level - 1]->matches.back() ==
          ir::Match{ir::SocketCgroup{level, "cgroups_ssh"}});
  auto web = rules_named(chain(ruleset, "output"), "web-out");
  REQUIRE(web.size() == 1);
  CHECK(web[0]->matches.back() == ir::Match{ir::SocketUid{33, false}});
}

TEST_CASE("binds: cgroup owners checked on input, user owners on output") {
  ir::Ruleset ruleset = compile_policy(policy_from(R"(
[[bind]]
name = "ssh-owner"
protocols = "tcp"
ports = "ssh"
unit = "ssh.service"
[[bind]]
name = "web-owner"
protocols = "tcp"
ports = [80]
user = "www"
)"));
  const ir::Chain& input = chain(ruleset, "input");
  // Before conntrack accepts anything, packets for the port go through the bind's chain.
  CHECK(input.rules[1].matches == std::vector<ir::Match>{ir::L4ProtoIn{{ir::L4Proto::tcp}},
                                                         ir::DestPortIn{{{22, 22}}},
                                                         ir::CtState{ir::ct_new}});
  CHECK(input.rules[1].verdict == to_chain(ir::VerdictKind::jump, "bind_ssh-owner"));
  const ir::Chain& bind = ruleset.chains[0];  // before the chain that jumps to it
  CHECK(bind.name == "bind_ssh-owner");
  REQUIRE(bind.rules.size() == ir::kCgroupLevels + 2);
  // The owner's socket returns, at whatever level its cgroup is: the set holds it.
  for (std::uint32_t level = 1; level <= ir::kCgroupLevels; ++level) {
    CHECK(bind.rules[level - 1].matches ==
          std::vector<ir::Match>{ir::SocketCgroup{level, "cgroups_ssh-owner"}});
    CHECK(bind.rules[level - 1].verdict.kind == ir::VerdictKind::return_);
    CHECK(bind.rules[level - 1].comment == "ssh-owner");
  }
  const ir::NamedSet* owners = nullptr;
  for (const ir::NamedSet& set : ruleset.sets)
    if (set.name == "cgroups_ssh-owner") owners = &set;
  REQUIRE(owners);
  CHECK(owners->key == ir::SetKey::cgroupv2);
  CHECK(owners->owner == ir::CgroupOwner{"ssh.service", ""});
  CHECK(owners->cgroups.empty());  // the compiler cannot know where the unit is
  // Any other socket, however shallow its cgroup, is dropped.
  const std::size_t others = ir::kCgroupLevels;
  CHECK(bind.rules[others].matches == std::vector<ir::Match>{ir::SocketTransparent{false}});
  CHECK(bind.rules[others].verdict.kind == ir::VerdictKind::drop);
  CHECK(bind.rules[others].comment == "ssh-owner");
  CHECK(bind.rules[others + 1].matches == std::vector<ir::Match>{ir::SocketTransparent{true}});
  const ir::Chain& output = chain(ruleset, "output");
  CHECK(output.rules[1].comment == "web-owner");
  CHECK(output.rules[1].matches == std::vector<ir::Match>{ir::L4ProtoIn{{ir::L4Proto::tcp}},
                                                          ir::SourcePortIn{{{80, 80}}},
                                                          ir::SocketUid{33, true}});
}

TEST_CASE("routers: masquerade, port forwards, MSS clamping, NAT leakage") {
  ir::Ruleset ruleset = compile_policy(policy_from(R"(
[zone.wan]
interfaces = ["eth0"]
[zone.lan]
interfaces = ["br-lan"]
forward_to = ["wan"]
[nat]
masquerade = ["wan"]
[[forward]]
name = "nas"
from = "wan"
protocols = "tcp"
ports = 8080
to = "192.168.1.10:80"
[[forward]]
name = "off"
from = "wan"
protocols = "tcp"
ports = 9090
to = "192.168.1.11"
enabled = false
)"));
  const ir::Chain& pre = chain(ruleset, "prerouting");
  REQUIRE(pre.base);
  CHECK(pre.base->type == ir::ChainType::nat);
  CHECK(pre.base->priority == kDstnatPriority);
  REQUIRE(pre.rules.size() == 1);  // the disabled forward is not loaded
  CHECK(pre.rules[0].comment == "nas");
  CHECK(pre.rules[0].verdict.kind == ir::VerdictKind::dnat);
  CHECK(pre.rules[0].verdict.nat_address == v4(192, 168, 1, 10));
  CHECK(pre.rules[0].verdict.nat_port == 80);
  const ir::Chain& post = chain(ruleset, "postrouting");
  REQUIRE(post.rules.size() == 1);
  CHECK(post.rules[0].matches ==
        std::vector<ir::Match>{ir::NfProto{ir::Family::ipv4}, ir::InterfaceNameIn{true, {"eth0"}}});
  CHECK(post.rules[0].verdict.kind == ir::VerdictKind::masquerade);
  const ir::Chain& forward = chain(ruleset, "forward");
  CHECK(forward.rules[0].verdict.kind == ir::VerdictKind::clamp_mss);
  CHECK(forward.rules[0].matches ==
        std::vector<ir::Match>{ir::TcpSyn{}, ir::InterfaceNameIn{true, {"eth0"}}});
  CHECK(forward.rules[1].matches ==
        std::vector<ir::Match>{ir::TcpSyn{}, ir::InterfaceNameIn{false, {"eth0"}}});
  CHECK(rules_named(forward, "port forwards").size() == 1);
  const ir::Chain& output = chain(ruleset, "output");
  bool leak_rule = std::any_of(output.rules.begin(), output.rules.end(), [](const ir::Rule& r) {
    return r.matches == std::vector<ir::Match>{ir::InterfaceNameIn{true, {"eth0"}},
                                               ir::CtState{ir::ct_invalid}} &&
           r.verdict.kind == ir::VerdictKind::drop;
  });
  CHECK(leak_rule);
}

TEST_CASE("default logging: denied defaults are logged, rate-limited") {
  ir::Ruleset ruleset = compile_policy(policy_from("[policy]\nlog='denied'\n"));
  const ir::Chain& input = chain(ruleset, "input");
  const ir::Rule& log = input.rules.back();
  REQUIRE(log.log);
  CHECK(log.log->prefix == "portier denied input ");
  CHECK(log.matches == std::vector<ir::Match>{ir::Limit{10, ir::RateUnit::minute, 5, false}});
  const ir::Chain& output = chain(ruleset, "output");  // accept default: not logged
  CHECK_FALSE(output.rules.back().log);
}

TEST_CASE(
    "forward rules: `to` a zone matches its outgoing interfaces inside the source zone's chain") {
  ir::Ruleset ruleset = compile_policy(policy_from(R"(
[zone.lan]
interfaces = ["br-lan"]
[zone.guest]
interfaces = ["guest0"]
[[rule]]
name = "guest-isolation"
direction = "forward"
from = "guest"
to = "lan"
action = "reject"
)"));
  auto isolation = rules_named(chain(ruleset, "forward_guest"), "guest-isolation");
  REQUIRE(isolation.size() == 1);
  CHECK(isolation[0]->matches == std::vector<ir::Match>{ir::InterfaceNameIn{true, {"br-lan"}}});
  CHECK(isolation[0]->verdict == to_chain(ir::VerdictKind::jump, kRejectChain));
  CHECK(ruleset.chains[0].name == kRejectChain);
  CHECK(rules_named(chain(ruleset, "forward_lan"), "guest-isolation").empty());
}

// The property fast toggles rely on: disabling rules only removes their own kernel rules.
TEST_CASE(
    "compile(P) is compile(P with everything enabled) without the disabled rules' kernel rules") {
  namespace fs = std::filesystem;
  const fs::path golden = PORTIER_GOLDEN_DIR;
  const SystemTables tables{ServiceTable::load((golden / "services").string()),
                            UserTable::load((golden / "passwd").string())};
  int cases = 0;
  for (const fs::path& dir : {golden, fs::path(PORTIER_SOURCE_DIR) / "rules" / "policies"}) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.path().extension() != ".toml") continue;
      ParsedPolicy parsed = parse_policy_file(entry.path().string(), tables);
      REQUIRE(parsed.ok());
      Policy all = parsed.policy;
      for (Rule& rule : all.rules) rule.enabled = true;
      for (Forward& forward : all.forwards) forward.enabled = true;
      const ir::Ruleset full = compile_policy(all);
      // Each rule and forward off on its own, and the policy as written.
      std::vector<std::string> names;
      for (const Rule& rule : all.rules) names.push_back(rule.name);
      for (const Forward& forward : all.forwards) names.push_back(forward.name);
      for (const std::string& name : names) {
        CAPTURE(entry.path().string());
        CAPTURE(name);
        Policy one_off = all;
        if (Rule* rule = one_off.find_rule(name)) rule->enabled = false;
        if (Forward* forward = one_off.find_forward(name)) forward->enabled = false;
        CHECK(compile_policy(one_off) == without_owners(full, {name}));
        // Kept in (portierd's build): the same as with everything enabled.
        CompileOptions keep;
        keep.leave_out_disabled = false;
        CHECK(compile_policy(one_off, keep) == full);
        ++cases;
      }
      std::set<std::string, std::less<>> disabled;
      for (const Rule& rule : parsed.policy.rules)
        if (!rule.enabled) disabled.insert(rule.name);
      for (const Forward& forward : parsed.policy.forwards)
        if (!forward.enabled) disabled.insert(forward.name);
      CHECK(compile_policy(parsed.policy) == without_owners(full, disabled));
    }
  }
  CHECK(cases >= 30);
}

TEST_CASE("a limited rule from IPv4 addresses gets only the IPv4 meter") {
  ir::Ruleset ruleset = compile_policy(policy_from(
      "[[rule]]\nname='ssh-in'\nprotocols='tcp'\nports='ssh'\nfrom=['10.0.0.0/8', 'fd00::/8']\n"
      "limit='10/minute'\naction='accept'\n"));
  auto over = rules_named(chain(ruleset, "input"), "ssh-in over limit");
  REQUIRE(over.size() == 2);  // one per family of the from addresses, each with its own meter
  CHECK(std::get<ir::MeterOver>(over[0]->matches.back()).family == ir::Family::ipv4);
  CHECK(std::get<ir::AddressIn>(over[0]->matches.front()).family == ir::Family::ipv4);
  CHECK(std::get<ir::MeterOver>(over[1]->matches.back()).family == ir::Family::ipv6);
  CHECK(std::get<ir::AddressIn>(over[1]->matches.front()).family == ir::Family::ipv6);
}

TEST_CASE("a big hash set of addresses is declared with twice its size, a small one without") {
  auto compiled_hosts = [](std::size_t count) {
    std::string elements;
    for (std::size_t i = 0; i < count; ++i)
      elements += (i ? ", '10." : "'10.") + std::to_string(i / 65536) + "." +
                  std::to_string(i / 256 % 256) + "." + std::to_string(i % 256) + "'";
    ir::Ruleset ruleset =
        compile_policy(policy_from("[set.many]\nfamily = 'ipv4'\nelements = [" + elements + "]\n"));
    REQUIRE(ruleset.sets.size() == 2);
    REQUIRE(ruleset.sets[1].name == "many_hosts");
    CHECK(ruleset.sets[1].elements.size() == count);
    return ruleset.sets[1];
  };
  CHECK_FALSE(compiled_hosts(100).size);
  CHECK_FALSE(compiled_hosts(kSizedHashSetAbove).size);
  // 12,000 addresses: room for 24,000, rounded up to the kernel's power of two.
  CHECK(compiled_hosts(12000).size == 32768u);
}

TEST_CASE(
    "a set's addresses inside one of its networks are left to the network, whatever their order") {
  // Random hosts and networks of one /16, compared with a search of every network.
  std::mt19937 random(5);
  for (int round = 0; round < 20; ++round) {
    std::vector<std::string> elements;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> networks;
    std::set<std::uint32_t> hosts;
    for (int i = 0; i < 60; ++i) {
      auto third = static_cast<std::uint32_t>(random() % 64),
           fourth = static_cast<std::uint32_t>(random() % 256);
      if (random() % 4 == 0) {
        auto prefix = static_cast<unsigned>(24 + random() % 7);  // /24 .. /30
        std::uint32_t size = 1u << (32 - prefix);
        std::uint32_t start = (third << 8 | fourth) & ~(size - 1);
        networks.push_back({start, start + size - 1});
        elements.push_back("10.1." + std::to_string(start >> 8) + "." +
                           std::to_string(start & 255) + "/" + std::to_string(prefix));
      } else {
        hosts.insert(third << 8 | fourth);
        elements.push_back("10.1." + std::to_string(third) + "." + std::to_string(fourth));
      }
    }
    std::string list;
    for (const std::string& element : elements)
      list += (list.empty() ? "'" : ", '") + element + "'";
    ir::Ruleset ruleset =
        compile_policy(policy_from("[set.s]\nfamily = 'ipv4'\nelements = [" + list + "]\n"));
    REQUIRE(ruleset.sets.size() == 2);
    std::set<std::uint32_t> expected;
    for (std::uint32_t host : hosts)
      if (std::none_of(networks.begin(), networks.end(),
                       [&](const auto& net) { return net.first <= host && host <= net.second; }))
        expected.insert(host);
    std::set<std::uint32_t> seen;
    for (const ir::AddressRange& range : ruleset.sets[1].elements)
      seen.insert(static_cast<std::uint32_t>(range.first.bytes[2]) << 8 | range.first.bytes[3]);
    CHECK_MESSAGE(seen == expected, "round " << round);
    CHECK(ruleset.sets[1].elements.size() == expected.size());
  }
}
