// explain_packet against hand-built IR (each match kind, each verdict path, the kernel's
// quirks) and against the golden policies compiled; parse_packet_shape's words and errors.
#include <doctest/doctest.h>

#include <arpa/inet.h>

#include <filesystem>

#include "compile_policy.h"
#include "explain.h"
#include "parse_policy.h"

using namespace portier;
namespace fs = std::filesystem;

namespace {

ir::Address addr(const char* text) {
  ir::Address a;
  if (inet_pton(AF_INET, text, a.bytes.data()) == 1) return a;
  a.family = ir::Family::ipv6;
  REQUIRE(inet_pton(AF_INET6, text, a.bytes.data()) == 1);
  return a;
}

ir::AddressRange range(const char* first, const char* last) { return {addr(first), addr(last)}; }

ir::Rule rule(std::vector<ir::Match> matches, ir::VerdictKind kind = ir::VerdictKind::accept,
              std::string comment = "r", std::string chain = {}) {
  ir::Rule r;
  r.matches = std::move(matches);
  r.verdict.kind = kind;
  r.verdict.chain = std::move(chain);
  r.comment = std::move(comment);
  return r;
}

ir::Chain base(const char* name, ir::Hook hook, bool policy_accept, std::vector<ir::Rule> rules) {
  return ir::Chain{name, ir::BaseChain{hook, ir::ChainType::filter, 10, policy_accept}, std::move(rules)};
}

ir::Chain regular(const char* name, std::vector<ir::Rule> rules) { return ir::Chain{name, std::nullopt, std::move(rules)}; }

// An input chain (policy drop) holding one accepting rule with `matches`, and the set of
// ssh.service's cgroups that socket matches look up.
ir::Ruleset one_rule(std::vector<ir::Match> matches) {
  ir::Ruleset ruleset;
  ir::NamedSet ssh;
  ssh.name = "cgroups_ssh-owner";
  ssh.key = ir::SetKey::cgroupv2;
  ssh.owner = {"ssh.service", ""};
  ruleset.sets.push_back(ssh);
  ruleset.chains.push_back(base("input", ir::Hook::input, false, {rule(std::move(matches))}));
  return ruleset;
}

PacketShape tcp_in(std::uint16_t port, const char* source = "203.0.113.9") {
  PacketShape p;
  p.protocol = ir::L4Proto::tcp;
  p.source = addr(source);
  p.family = p.source->family;
  p.destination_port = port;
  p.source_port = 40000;
  p.in_interface = "eth0";
  return p;
}

bool matches(std::vector<ir::Match> m, const PacketShape& p) { return explain_packet(one_rule(std::move(m)), p).verdict == "accept"; }

const SystemTables& golden_tables() {
  static const SystemTables tables{ServiceTable::load((fs::path(PORTIER_GOLDEN_DIR) / "services").string()),
                                   UserTable::load((fs::path(PORTIER_GOLDEN_DIR) / "passwd").string())};
  return tables;
}

Policy golden(const char* name) {
  ParsedPolicy parsed = parse_policy_file((fs::path(PORTIER_GOLDEN_DIR) / name).string(), golden_tables());
  REQUIRE_MESSAGE(parsed.ok(), parsed.report());
  return parsed.policy;
}

PacketShape shape(const Policy& policy, std::vector<std::string> words) {
  std::string error;
  auto parsed = parse_packet_shape(words, policy, error);
  REQUIRE_MESSAGE(parsed, error);
  return *parsed;
}

std::string shape_error(std::vector<std::string> words, const Policy& policy = {}) {
  std::string error;
  CHECK_FALSE(parse_packet_shape(words, policy, error));
  return error;
}

// "verdict by decided_by in chain" for one shape of a golden policy.
std::string verdict(const Policy& policy, std::vector<std::string> words) {
  ExplainResult r = explain_packet(compile_policy(policy), shape(policy, std::move(words)));
  return r.verdict + " by " + r.decided_by + " in " + r.chain;
}

}  // namespace

TEST_CASE("explain: loopback and interface names") {
  PacketShape p = tcp_in(22);
  CHECK_FALSE(matches({ir::LoopbackInterface{false}}, p));
  p.in_interface = "lo";
  CHECK(matches({ir::LoopbackInterface{false}}, p));
  CHECK_FALSE(matches({ir::LoopbackInterface{true}}, p));  // oif: none on input
  p.in_interface = "eth0";
  CHECK(matches({ir::InterfaceNameIn{false, {"br-lan", "eth0"}}}, p));
  CHECK_FALSE(matches({ir::InterfaceNameIn{false, {"eth"}}}, p));  // exact, not a prefix
  CHECK(matches({ir::InterfaceNameIn{false, {"eth*"}}}, p));
  CHECK_FALSE(matches({ir::InterfaceNameIn{false, {"ppp*"}}}, p));
  CHECK_FALSE(matches({ir::InterfaceNameIn{true, {"eth*"}}}, p));  // oifname is "" on input
  p.in_interface = "ppp";
  CHECK(matches({ir::InterfaceNameIn{false, {"ppp*"}}}, p));  // the prefix alone
}

TEST_CASE("explain: conntrack state and status") {
  PacketShape p = tcp_in(22);
  CHECK(matches({ir::CtState{ir::ct_new | ir::ct_untracked}}, p));
  CHECK_FALSE(matches({ir::CtState{ir::ct_established | ir::ct_related}}, p));
  p.ct_state = ir::ct_related;
  CHECK(matches({ir::CtState{ir::ct_established | ir::ct_related}}, p));
  CHECK_FALSE(matches({ir::CtStatusDnat{}}, p));
}

TEST_CASE("explain: protocols and ports") {
  PacketShape p = tcp_in(139);
  CHECK(matches({ir::L4ProtoIn{{ir::L4Proto::tcp, ir::L4Proto::udp}}}, p));
  CHECK_FALSE(matches({ir::L4ProtoIn{{ir::L4Proto::udp}}}, p));
  std::vector<ir::PortRange> netbios{{137, 139}, {445, 445}};
  CHECK(matches({ir::L4ProtoIn{{ir::L4Proto::tcp}}, ir::DestPortIn{netbios}}, p));
  p.destination_port = 140;
  CHECK_FALSE(matches({ir::L4ProtoIn{{ir::L4Proto::tcp}}, ir::DestPortIn{netbios}}, p));
  p.destination_port = 445;
  CHECK(matches({ir::L4ProtoIn{{ir::L4Proto::tcp}}, ir::DestPortIn{netbios}}, p));
  CHECK(matches({ir::L4ProtoIn{{ir::L4Proto::tcp}}, ir::SourcePortIn{{{40000, 40000}}}}, p));
  CHECK_FALSE(matches({ir::L4ProtoIn{{ir::L4Proto::tcp}}, ir::SourcePortIn{{{80, 80}}}}, p));
  p.protocol = ir::L4Proto::sctp;
  CHECK(matches({ir::L4ProtoIn{{ir::L4Proto::sctp}}, ir::DestPortIn{netbios}}, p));
  // Ports belong to tcp, udp and sctp only: an ICMP packet has none to compare.
  PacketShape ping = p;
  ping.protocol = ir::L4Proto::icmp;
  CHECK_FALSE(matches({ir::DestPortIn{netbios}}, ping));
  ping.protocol.reset();
  CHECK_FALSE(matches({ir::L4ProtoIn{{ir::L4Proto::tcp}}}, ping));
}

TEST_CASE("explain: addresses by family, ranges and named sets") {
  PacketShape p = tcp_in(22, "10.1.2.3");
  p.destination = addr("192.0.2.1");
  CHECK(matches({ir::AddressIn{ir::Family::ipv4, false, {range("10.0.0.0", "10.255.255.255")}}}, p));
  CHECK_FALSE(matches({ir::AddressIn{ir::Family::ipv4, false, {range("10.1.2.4", "10.1.2.9")}}}, p));
  CHECK(matches({ir::AddressIn{ir::Family::ipv4, true, {range("192.0.2.1", "192.0.2.1")}}}, p));
  CHECK_FALSE(matches({ir::AddressIn{ir::Family::ipv4, true, {range("10.0.0.0", "10.255.255.255")}}}, p));
  // `ip saddr` carries `meta nfproto ipv4`: never an IPv6 packet, whatever its bytes.
  PacketShape v6 = tcp_in(22, "a01:203::");
  CHECK_FALSE(matches({ir::AddressIn{ir::Family::ipv4, false, {range("10.0.0.0", "10.255.255.255")}}}, v6));
  CHECK(matches({ir::AddressIn{ir::Family::ipv6, false, {range("a00::", "aff::")}}}, v6));
  // No address in the shape: no address match.
  PacketShape none = tcp_in(22);
  none.source.reset();
  CHECK_FALSE(matches({ir::AddressIn{ir::Family::ipv4, false, {range("0.0.0.0", "255.255.255.255")}}}, none));

  ir::Ruleset ruleset = one_rule({ir::AddressInSet{ir::Family::ipv4, false, "blocklist"}});
  ruleset.sets.push_back(ir::NamedSet{"blocklist", ir::SetKey::ipv4_addr, true, false, false, {}, {},
                                      {range("10.1.2.0", "10.1.2.255"), range("198.51.100.7", "198.51.100.8")}});
  CHECK(explain_packet(ruleset, p).verdict == "accept");
  CHECK(explain_packet(ruleset, tcp_in(22, "198.51.100.8")).verdict == "accept");
  CHECK(explain_packet(ruleset, tcp_in(22, "198.51.100.9")).verdict == "drop");
  CHECK(explain_packet(ruleset, v6).verdict == "drop");
  ruleset.chains[0].rules[0].matches[0] = ir::AddressInSet{ir::Family::ipv4, false, "missing"};
  CHECK(explain_packet(ruleset, p).verdict == "drop");
}

TEST_CASE("explain: ICMP types are family-specific") {
  PacketShape ping;
  ping.protocol = ir::L4Proto::icmp;
  ping.icmp_type = 8;
  CHECK(matches({ir::IcmpTypeIn{false, {0, 8}}}, ping));
  CHECK_FALSE(matches({ir::IcmpTypeIn{true, {8, 128}}}, ping));
  ping.icmp_type = 13;
  CHECK_FALSE(matches({ir::IcmpTypeIn{false, {0, 8}}}, ping));
  PacketShape ping6;
  ping6.family = ir::Family::ipv6;
  ping6.protocol = ir::L4Proto::icmpv6;
  ping6.icmp_type = 135;
  CHECK(matches({ir::IcmpTypeIn{true, {135}}}, ping6));
  CHECK_FALSE(matches({ir::IcmpTypeIn{false, {135}}}, ping6));
  // Protocol 1 inside IPv6 is not what `icmp type` reads.
  ping6.protocol = ir::L4Proto::icmp;
  CHECK_FALSE(matches({ir::IcmpTypeIn{false, {135}}}, ping6));
}

TEST_CASE("explain: socket matches break without a socket, != included") {
  PacketShape p = tcp_in(22);
  // `socket cgroupv2 level 2 @cgroups_ssh-owner`, the set standing for ssh.service.
  const ir::SocketCgroup ssh{2, "cgroups_ssh-owner"};
  const ir::SocketCgroup deeper{3, "cgroups_ssh-owner"};
  CHECK_FALSE(matches({ssh}, p));
  p.socket_cgroup = "system.slice/ssh.service";
  CHECK(matches({ssh}, p));
  CHECK_FALSE(matches({deeper}, p));  // the unit's cgroup is at level 2, not 3
  p.socket_cgroup = "system.slice/ssh.service/child";  // the ancestor at level 2 counts
  CHECK(matches({ssh}, p));
  p.socket_cgroup = "system.slice/cron.service";
  CHECK_FALSE(matches({ssh}, p));
  // Shallower than the level: cgroup_ancestor() finds nothing and the expression breaks.
  p.socket_cgroup = "system.slice";
  CHECK_FALSE(matches({ssh}, p));
  p.socket_cgroup = "";
  CHECK_FALSE(matches({ssh}, p));
  // A templated unit sits in its own slice, one level deeper.
  p.socket_cgroup = "system.slice/system-ssh.slice/ssh.service";
  CHECK_FALSE(matches({ssh}, p));
  CHECK(matches({deeper}, p));
  // Below something that is not a slice, it is not the system's unit.
  p.socket_cgroup = "machine.slice/container.scope/ssh.service";
  CHECK_FALSE(matches({deeper}, p));

  PacketShape out = tcp_in(80);
  CHECK_FALSE(matches({ir::SocketUid{33, false}}, out));
  CHECK_FALSE(matches({ir::SocketUid{33, true}}, out));
  out.socket_uid = 33;
  CHECK(matches({ir::SocketUid{33, false}}, out));
  CHECK_FALSE(matches({ir::SocketUid{33, true}}, out));
  out.socket_uid = 0;
  CHECK(matches({ir::SocketUid{33, true}}, out));
}

TEST_CASE("explain: SYN, limits and meters") {
  PacketShape p = tcp_in(22);
  CHECK(matches({ir::TcpSyn{}}, p));
  p.ct_state = ir::ct_established;
  CHECK_FALSE(matches({ir::TcpSyn{}}, p));
  PacketShape udp = tcp_in(53);
  udp.protocol = ir::L4Proto::udp;
  CHECK_FALSE(matches({ir::TcpSyn{}}, udp));
  CHECK(matches({ir::Limit{10, ir::RateUnit::minute, 5, false}}, udp));
  CHECK_FALSE(matches({ir::Limit{10, ir::RateUnit::minute, 5, true}}, udp));
  CHECK_FALSE(matches({ir::MeterOver{"m", ir::Family::ipv4, {10, ir::RateUnit::minute, 5, true}}}, udp));
}

TEST_CASE("explain: verdicts, jumps, gotos, verdict maps and the chain policy") {
  using K = ir::VerdictKind;
  ir::Ruleset ruleset;
  ruleset.chains.push_back(regular("reject_packet", {rule({ir::L4ProtoIn{{ir::L4Proto::tcp}}}, K::reject_tcp_reset, ""),
                                                     rule({}, K::reject_icmpx_port_unreachable, "")}));
  ir::Rule count = rule({}, K::none, "count");
  count.counter = true;
  ruleset.chains.push_back(regular("counted", {count}));
  ruleset.chains.push_back(regular("zone_wan", {rule({ir::L4ProtoIn{{ir::L4Proto::udp}}}, K::drop, "udp-from-wan")}));
  ir::Rule vmap = rule({}, K::vmap, "");
  vmap.verdict.vmap = {{"eth0", K::go_to, "zone_wan"}, {"eth1", K::jump, "counted"}, {"eth2", K::drop, ""}};
  ruleset.chains.push_back(base(
      "input", ir::Hook::input, true,
      {rule({ir::LoopbackInterface{false}}, K::accept, ""), rule({ir::CtState{ir::ct_invalid}}, K::drop, ""),
       vmap, rule({ir::InterfaceNameIn{false, {"ppp*"}}}, K::go_to, "", "zone_wan"),
       rule({ir::L4ProtoIn{{ir::L4Proto::tcp}}, ir::DestPortIn{{{23, 23}}}}, K::jump, "telnet", "reject_packet"),
       rule({ir::L4ProtoIn{{ir::L4Proto::tcp}}, ir::DestPortIn{{{25, 25}}}}, K::reject_icmpx_port_unreachable, "smtp"),
       rule({ir::L4ProtoIn{{ir::L4Proto::tcp}}, ir::DestPortIn{{{80, 80}}}}, K::clamp_mss, ""),
       rule({ir::L4ProtoIn{{ir::L4Proto::tcp}}, ir::DestPortIn{{{80, 80}}}}, K::drop, "web")}));
  ruleset.chains.push_back(base("output", ir::Hook::output, false, {rule({ir::LoopbackInterface{true}}, K::accept, "")}));

  PacketShape p = tcp_in(23);
  p.in_interface = "eth9";
  ExplainResult r = explain_packet(ruleset, p);
  // The fixed reject rule decides, but the policy rule that jumped there is to blame.
  CHECK(r.verdict == "reject");
  CHECK(r.decided_by == "telnet");
  CHECK(r.chain == "input");
  CHECK(r.trace == std::vector<std::string>{"input: tcp dport 23 jump reject_packet comment \"telnet\"",
                                            "reject_packet: meta l4proto tcp reject with tcp reset"});
  p.destination_port = 25;
  r = explain_packet(ruleset, p);
  CHECK((r.verdict == "reject" && r.decided_by == "smtp"));
  // clamp_mss has no verdict: evaluation goes on.
  p.destination_port = 80;
  r = explain_packet(ruleset, p);
  CHECK((r.verdict == "drop" && r.decided_by == "web" && r.trace.size() == 2));
  // Nothing matches: the base chain's policy.
  p.destination_port = 81;
  r = explain_packet(ruleset, p);
  CHECK((r.verdict == "accept" && r.decided_by == "chain policy" && r.chain == "input" && r.trace.empty()));
  // A verdict-map goto; the zone chain decides.
  p.in_interface = "eth0";
  p.protocol = ir::L4Proto::udp;
  r = explain_packet(ruleset, p);
  CHECK((r.verdict == "drop" && r.decided_by == "udp-from-wan" && r.chain == "zone_wan"));
  // The end of a chain entered by goto is the end of the base chain: its policy, not the
  // rules after the goto (port 80 would be dropped by "web").
  p.protocol = ir::L4Proto::tcp;
  p.destination_port = 80;
  r = explain_packet(ruleset, p);
  CHECK((r.verdict == "accept" && r.decided_by == "chain policy" && r.chain == "input"));
  p.in_interface = "ppp0";  // the wildcard goto, same outcome
  CHECK(explain_packet(ruleset, p).decided_by == "chain policy");
  // A jump returns: after "counted", the rules after the map still apply.
  p.in_interface = "eth1";
  r = explain_packet(ruleset, p);
  CHECK((r.verdict == "drop" && r.decided_by == "web"));
  CHECK(r.trace.front() == "input: iifname vmap { \"eth0\" : goto zone_wan, \"eth1\" : jump counted, \"eth2\" : drop }");
  CHECK(r.trace[1] == "counted: counter comment \"count\"");
  p.in_interface = "eth2";  // a map entry with a verdict of its own
  r = explain_packet(ruleset, p);
  CHECK((r.verdict == "drop" && r.decided_by == "zone dispatch"));
  // Fixed rules are described.
  p.in_interface = "lo";
  CHECK(explain_packet(ruleset, p).decided_by == "loopback");
  p.in_interface = "eth9";
  p.ct_state = ir::ct_invalid;
  CHECK(explain_packet(ruleset, p).decided_by == "invalid");
  // Output: its own base chain and policy.
  PacketShape out = tcp_in(443);
  out.direction = Direction::out;
  out.out_interface = "eth0";
  r = explain_packet(ruleset, out);
  CHECK((r.verdict == "drop" && r.decided_by == "chain policy" && r.chain == "output"));
  // No chain on the forward hook: the table does not see the packet.
  out.direction = Direction::forward;
  CHECK(explain_packet(ruleset, out).verdict == "accept");
}

TEST_CASE("explain: a jump to a missing chain is an error, not a guess") {
  ir::Ruleset ruleset = one_rule({});
  ruleset.chains[0].rules[0].verdict.kind = ir::VerdictKind::jump;
  ruleset.chains[0].rules[0].verdict.chain = "nowhere";
  CHECK_THROWS_AS(explain_packet(ruleset, tcp_in(22)), std::invalid_argument);
}

TEST_CASE("explain: golden zones policy") {
  const Policy policy = golden("zones.toml");
  CHECK(verdict(policy, {"tcp", "->", "22", "in", "wan"}) == "accept by ssh-from-wan in input_wan");
  CHECK(verdict(policy, {"tcp", "->", "22", "in", "ppp7"}) == "accept by ssh-from-wan in input_wan");
  CHECK(verdict(policy, {"tcp", "->", "23", "in", "wan"}) == "drop by default input from wan in input_wan");
  // lan stands for br-lan and, lacking a source, an address of its networks.
  CHECK(verdict(policy, {"udp", "->", "53", "in", "lan"}) == "accept by dns-from-lan in input_lan");
  CHECK(verdict(policy, {"udp", "10.9.9.9", "->", "53", "in", "wlan0"}) == "accept by default input from lan in input_lan");
  CHECK(verdict(policy, {"udp", "fd00::5", "->", "53", "in", "lan"}) == "accept by dns-from-lan in input_lan");
  CHECK(verdict(policy, {"tcp", "->", "443", "in", "vpn"}) == "accept by vpn-web in input");
  CHECK(verdict(policy, {"tcp", "->", "443", "in", "eth5"}) == "drop by chain policy in input");
  CHECK(verdict(policy, {"icmp", "->", "192.0.2.1", "in", "eth5"}) == "accept by everyone-icmp in input");
  CHECK(verdict(policy, {"icmpv6", "->", "fd00::1", "in", "wan", "--icmp-type", "135"}) ==
        "accept by icmpv6 essentials in input");
  CHECK(verdict(policy, {"tcp", "->", "22", "in", "wan", "--established"}) ==
        "accept by established,related in input");
  CHECK(verdict(policy, {"tcp", "->", "22", "in", "lo"}) == "accept by loopback in input");
  CHECK(verdict(policy, {"tcp", "->", "22", "forward", "wan", "lan"}) == "drop by default forward from wan in forward_wan");
  CHECK(verdict(policy, {"tcp", "->", "443", "out", "wan"}) == "accept by chain policy in output");
}

TEST_CASE("explain: golden router policy") {
  const Policy policy = golden("router.toml");
  CHECK(verdict(policy, {"tcp", "->", "445", "forward", "lan", "wan"}) == "drop by no-smb-out in forward_lan");
  CHECK(verdict(policy, {"tcp", "->", "443", "forward", "lan", "wan"}) == "accept by lan to wan in forward_lan");
  CHECK(verdict(policy, {"udp", "->", "53", "forward", "guest", "lan"}) == "reject by guest-isolation in forward_guest");
  CHECK(verdict(policy, {"tcp", "->", "80", "forward", "guest", "wan"}) == "accept by guest to wan in forward_guest");
  CHECK(verdict(policy, {"tcp", "->", "80", "forward", "wan", "lan"}) == "drop by default forward from wan in forward_wan");
  // A port forward's packet: conntrack's dnat status is not part of the shape.
  CHECK(verdict(policy, {"tcp", "->", "80", "forward", "eth9", "lan"}) == "drop by chain policy in forward");
  CHECK(verdict(policy, {"tcp", "->", "80", "in", "lan"}) == "accept by default input from lan in input_lan");
}

TEST_CASE("explain: golden sets, reject and owners policies") {
  const Policy sets = golden("sets.toml");
  CHECK(verdict(sets, {"tcp", "198.51.100.8", "->", "22"}) == "drop by blocked in input");
  CHECK(verdict(sets, {"tcp", "2001:db8:5::1", "->", "22"}) == "drop by blocked in input");
  CHECK(verdict(sets, {"tcp", "10.0.0.1", "->", "10.1.2.3:22"}) == "accept by office in input");
  CHECK(verdict(sets, {"tcp", "10.0.0.1", "->", "10.1.2.4:22"}) == "drop by chain policy in input");
  CHECK(verdict(sets, {"tcp", "2001:db8:1::9", "->", "[2001:db8:1::1]:22"}) == "drop by blocked in input");
  CHECK(verdict(sets, {"tcp", "->", "192.0.2.1:25", "out"}) == "reject by no-smtp-out in output");

  const Policy reject = golden("reject.toml");
  CHECK(verdict(reject, {"tcp", "->", "23"}) == "reject by tcp-only in input");
  CHECK(verdict(reject, {"udp", "->", "111"}) == "reject by both in input");
  CHECK(verdict(reject, {"udp", "->", "112"}) == "reject by default input in input");
  CHECK(verdict(reject, {"tcp", "->", "112", "out"}) == "accept by anything-out in output");

  const Policy owners = golden("owners.toml");
  CHECK(verdict(owners, {"tcp", "->", "22", "--cgroup", "/system.slice/ssh.service"}) == "accept by ssh in input");
  CHECK(verdict(owners, {"tcp", "->", "22", "--cgroup", "system.slice/other.service"}) ==
        "drop by ssh-owner in bind_ssh-owner");
  // A socket in a shallower cgroup than the bind's has no ancestor at its level: still dropped.
  CHECK(verdict(owners, {"tcp", "->", "22", "--cgroup", "/"}) == "drop by ssh-owner in bind_ssh-owner");
  CHECK(verdict(owners, {"tcp", "->", "22", "--cgroup", "system.slice"}) == "drop by ssh-owner in bind_ssh-owner");
  // No socket (nothing listens): the bind's chain lets it pass; the rule decides.
  CHECK(verdict(owners, {"tcp", "->", "22"}) == "accept by ssh in input");
  CHECK(verdict(owners, {"tcp", "10.0.0.1:443", "->", "10.0.0.2:50000", "out", "--uid", "0"}) ==
        "drop by web-owner in output");
  CHECK(verdict(owners, {"tcp", "10.0.0.1:443", "->", "10.0.0.2:50000", "out", "--uid", "33"}) ==
        "accept by chain policy in output");
  CHECK(verdict(owners, {"tcp", "->", "443", "out", "--uid", "33"}) == "accept by web-out-only-www in output");
  CHECK(verdict(owners, {"udp", "->", "53", "out", "--cgroup", "system.slice/apt-daily.service"}) ==
        "accept by unit-out in output");
}

TEST_CASE("explain: the trace lists every rule that matched, log rules included") {
  const Policy policy = golden("owners.toml");
  ExplainResult r = explain_packet(compile_policy(policy), shape(policy, {"tcp", "->", "22"}));
  REQUIRE(r.trace.size() == 3);
  CHECK(r.trace[0] == "input: tcp dport 22 ct state new jump bind_ssh-owner");
  CHECK(r.trace[1].starts_with("input: tcp dport 22 limit rate 10/minute log prefix \"portier ssh \""));
  CHECK(r.trace[2] == "input: tcp dport 22 counter accept comment \"ssh\"");
}

TEST_CASE("explain: packet shapes from words") {
  const Policy policy = golden("zones.toml");
  PacketShape p = shape(policy, {"tcp", "203.0.113.9:40000", "->", "139", "in", "wan"});
  CHECK(p.protocol == ir::L4Proto::tcp);
  CHECK(p.direction == Direction::in);
  CHECK(p.family == ir::Family::ipv4);
  CHECK(p.source == addr("203.0.113.9"));
  CHECK(p.source_port == 40000);
  CHECK(p.destination_port == 139);
  CHECK_FALSE(p.destination);
  CHECK(p.in_interface == "eth0");
  CHECK(p.ct_state == ir::ct_new);

  p = shape(policy, {"udp", "->", "53"});
  CHECK((p.direction == Direction::in && p.family == ir::Family::ipv4 && p.in_interface.empty() && !p.source));

  p = shape(policy, {"icmp", "10.0.0.1", "->", "10.0.0.2", "in", "lan"});
  CHECK((p.protocol == ir::L4Proto::icmp && p.icmp_type == 8 && p.destination == addr("10.0.0.2")));
  CHECK(p.in_interface == "br-lan");
  CHECK(p.source == addr("10.0.0.1"));  // given: the zone's network does not replace it

  p = shape(policy, {"tcp", "fd00::1", "->", "[fd00::2]:22"});
  CHECK((p.family == ir::Family::ipv6 && p.source == addr("fd00::1") && p.destination == addr("fd00::2")));
  CHECK(p.destination_port == 22);

  p = shape(policy, {"icmp", "fd00::1", "->", "fd00::2"});  // ping over IPv6 is ICMPv6
  CHECK((p.protocol == ir::L4Proto::icmpv6 && p.icmp_type == 128));

  p = shape(policy, {"tcp", "[fd00::1]:5000", "->", "fd00::2", "443", "forward", "lan", "wan"});
  CHECK((p.source_port == 5000 && p.destination_port == 443 && p.in_interface == "br-lan" && p.out_interface == "eth0"));

  p = shape(policy, {"udp", "->", "10.0.0.2:53", "out", "ppp", "--uid", "33", "--cgroup", "/system.slice/x.service"});
  // "ppp" is an interface the wan zone's "ppp*" takes.
  CHECK((p.direction == Direction::out && p.out_interface == "ppp" && p.socket_uid == 33u));
  CHECK(p.socket_cgroup == "system.slice/x.service");

  p = shape(policy, {"icmp", "->", "10.0.0.2", "--icmp-type", "13", "--established"});
  CHECK((p.icmp_type == 13 && p.ct_state == ir::ct_established));
}

TEST_CASE("explain: bad shapes name the word") {
  const Policy policy = golden("zones.toml");
  CHECK(shape_error({"tpc", "->", "22"}) == "unknown protocol 'tpc' (did you mean 'tcp'?)");
  CHECK(shape_error({"tcp", "22"}) == "no '->': the shape is PROTO [SRC[:PORT]] -> [DST[:]]PORT");
  CHECK(shape_error({"tcp", "->"}) == "nothing after '->': give the destination port or address");
  CHECK(shape_error({"tcp", "->", "70000"}) ==
        "'70000' is not a destination (PORT, ADDRESS, ADDRESS:PORT or [IPv6]:PORT)");
  CHECK(shape_error({"tcp", "host", "->", "22"}) ==
        "'host' is not a source address (ADDRESS, ADDRESS:PORT or [IPv6]:PORT)");
  CHECK(shape_error({"tcp", "->", "22", "in", "wna"}, policy) == "unknown zone or interface 'wna' (did you mean 'wan'?)");
  CHECK(shape_error({"tcp", "->", "22", "in", "wan", "lan"}, policy) == "unexpected 'lan' (one zone or interface)");
  CHECK(shape_error({"tcp", "->", "22", "--uid"}) == "'--uid' needs a value");
  CHECK(shape_error({"tcp", "->", "22", "--uid", "root"}) == "'root' is not a valid number for --uid");
  CHECK(shape_error({"tcp", "->", "22", "--frobnicate"}) == "unknown option '--frobnicate'");
  CHECK(shape_error({"tcp", "1.2.3.4", "->", "[fd00::1]:22"}) ==
        "'[fd00::1]:22' and '1.2.3.4' are of different address families");
  CHECK(shape_error({"tcp", "->", "10.0.0.1"}) == "no destination port for tcp");
  CHECK(shape_error({"icmp", "->", "22"}) == "icmp has no ports");
  CHECK(shape_error({"icmpv6", "->", "10.0.0.1"}) == "icmpv6 needs IPv6 addresses");
  CHECK(shape_error({"tcp", "->", "22", "--icmp-type", "8"}) == "--icmp-type is only for icmp and icmpv6");
  CHECK(shape_error({}) == "no protocol: the shape starts with tcp, udp, sctp, icmp or icmpv6");
}
