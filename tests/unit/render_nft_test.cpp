#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <stdexcept>
#include <string>

#include "render_nft.h"

namespace {

using namespace portier::ir;

Rule make_rule(std::vector<Match> matches, VerdictKind kind, std::string comment = {},
               bool counter = false, std::string jump_target = {}) {
  Rule rule;
  rule.matches = std::move(matches);
  rule.verdict.kind = kind;
  rule.verdict.chain = std::move(jump_target);
  rule.comment = std::move(comment);
  rule.counter = counter;
  return rule;
}

Chain input_chain(std::vector<Rule> rules, std::int32_t priority = 0, bool policy_accept = false) {
  return Chain{"input", BaseChain{Hook::input, ChainType::filter, priority, policy_accept},
               std::move(rules)};
}

Ruleset with_input_rules(std::vector<Rule> rules) {
  Ruleset ruleset;
  ruleset.chains.push_back(input_chain(std::move(rules)));
  return ruleset;
}

// The rule lines of a ruleset whose only chain is the input base chain.
std::string rule_lines(const Ruleset& ruleset) {
  const std::string text = portier::render_nft(ruleset);
  const std::string head =
      "table inet portier {\n\tchain input {\n\t\ttype filter hook input priority filter; "
      "policy drop;\n";
  const std::string tail = "\t}\n}\n";
  REQUIRE(text.substr(0, head.size()) == head);
  REQUIRE(text.substr(text.size() - tail.size()) == tail);
  return text.substr(head.size(), text.size() - head.size() - tail.size());
}

std::string one_rule(Rule rule) { return rule_lines(with_input_rules({std::move(rule)})); }

const L4ProtoIn kTcp{{L4Proto::tcp}};
const L4ProtoIn kUdp{{L4Proto::udp}};
const L4ProtoIn kTcpUdp{{L4Proto::tcp, L4Proto::udp}};

}  // namespace

TEST_CASE("render_nft: a whole ruleset with regular and base chains") {
  Ruleset ruleset;
  ruleset.chains.push_back(
      Chain{"zone-public",
            std::nullopt,
            {make_rule({kTcp, DestPortIn{{{22, 22}}}}, VerdictKind::accept, "ssh", true)}});
  ruleset.chains.push_back(
      input_chain({make_rule({LoopbackInterface{false}}, VerdictKind::accept),
                   make_rule({CtState{ct_established | ct_related}}, VerdictKind::accept),
                   make_rule({}, VerdictKind::jump, "to-public", false, "zone-public")}));
  ruleset.chains.push_back(Chain{"output",
                                 BaseChain{Hook::output, ChainType::filter, 0, true},
                                 {make_rule({LoopbackInterface{true}}, VerdictKind::accept)}});
  ruleset.chains.push_back(
      Chain{"forward", BaseChain{Hook::forward, ChainType::filter, 0, false}, {}});

  CHECK(portier::render_nft(ruleset) ==
        "table inet portier {\n"
        "\tchain zone-public {\n"
        "\t\ttcp dport 22 counter accept comment \"ssh\"\n"
        "\t}\n"
        "\n"
        "\tchain input {\n"
        "\t\ttype filter hook input priority filter; policy drop;\n"
        "\t\tiif \"lo\" accept\n"
        "\t\tct state established,related accept\n"
        "\t\tjump zone-public comment \"to-public\"\n"
        "\t}\n"
        "\n"
        "\tchain output {\n"
        "\t\ttype filter hook output priority filter; policy accept;\n"
        "\t\toif \"lo\" accept\n"
        "\t}\n"
        "\n"
        "\tchain forward {\n"
        "\t\ttype filter hook forward priority filter; policy drop;\n"
        "\t}\n"
        "}\n");
}

TEST_CASE("render_nft: an empty table") {
  CHECK(portier::render_nft(Ruleset{}) == "table inet portier {\n}\n");
}

TEST_CASE("render_nft_replace: create, delete and fill in one transaction") {
  Ruleset ruleset;
  ruleset.table = "other";
  CHECK(portier::render_nft_replace(ruleset) ==
        "table inet other\n"
        "delete table inet other\n"
        "table inet other {\n"
        "}\n");
}

TEST_CASE("render_nft: priorities as nft lists them, and policies") {
  auto header = [](std::int32_t priority, bool policy_accept) {
    Ruleset ruleset;
    ruleset.chains.push_back(input_chain({}, priority, policy_accept));
    const std::string text = portier::render_nft(ruleset);
    const auto start = text.find("type");
    return text.substr(start, text.find('\n', start) - start);
  };
  CHECK(header(0, true) == "type filter hook input priority filter; policy accept;");
  CHECK(header(0, false) == "type filter hook input priority filter; policy drop;");
  CHECK(header(10, false) == "type filter hook input priority filter + 10; policy drop;");
  CHECK(header(-5, true) == "type filter hook input priority filter - 5; policy accept;");
  // The first standard priority within 10 that suits the hook, else the number.
  CHECK(header(-300, true) == "type filter hook input priority raw; policy accept;");
  CHECK(header(-140, true) == "type filter hook input priority mangle + 10; policy accept;");
  CHECK(header(11, true) == "type filter hook input priority 11; policy accept;");
  CHECK(header(-11, true) == "type filter hook input priority -11; policy accept;");
  CHECK(header(60, true) == "type filter hook input priority security + 10; policy accept;");
  CHECK(header(INT32_MIN, true) == "type filter hook input priority -2147483648; policy accept;");
}

TEST_CASE("render_nft: interface and conntrack matches") {
  CHECK(one_rule(make_rule({LoopbackInterface{false}}, VerdictKind::accept)) ==
        "\t\tiif \"lo\" accept\n");
  CHECK(one_rule(make_rule({LoopbackInterface{true}}, VerdictKind::accept)) ==
        "\t\toif \"lo\" accept\n");
  CHECK(one_rule(make_rule({CtState{ct_new}}, VerdictKind::accept)) == "\t\tct state new accept\n");
  // nft's order, not bit order: untracked (bit 6) last, new (bit 3) after related.
  CHECK(one_rule(make_rule(
            {CtState{ct_untracked | ct_new | ct_related | ct_established | ct_invalid}},
            VerdictKind::drop)) == "\t\tct state invalid,established,related,new,untracked drop\n");
}

TEST_CASE("render_nft: protocols and ports") {
  CHECK(one_rule(make_rule({kTcp}, VerdictKind::accept)) == "\t\tmeta l4proto tcp accept\n");
  CHECK(one_rule(make_rule({kTcpUdp}, VerdictKind::accept)) ==
        "\t\tmeta l4proto { tcp, udp } accept\n");
  CHECK(one_rule(make_rule({kTcp, DestPortIn{{{22, 22}}}}, VerdictKind::accept)) ==
        "\t\ttcp dport 22 accept\n");
  CHECK(one_rule(make_rule({kUdp, DestPortIn{{{137, 139}}}}, VerdictKind::accept)) ==
        "\t\tudp dport 137-139 accept\n");
  CHECK(one_rule(make_rule({kTcp, DestPortIn{{{22, 22}, {80, 80}, {443, 443}}}},
                           VerdictKind::accept)) == "\t\ttcp dport { 22, 80, 443 } accept\n");
  CHECK(one_rule(make_rule({kTcp, DestPortIn{{{22, 22}, {137, 139}, {445, 445}}}},
                           VerdictKind::accept)) == "\t\ttcp dport { 22, 137-139, 445 } accept\n");
  CHECK(one_rule(make_rule({kTcpUdp, DestPortIn{{{137, 139}}}}, VerdictKind::drop)) ==
        "\t\tmeta l4proto { tcp, udp } th dport 137-139 drop\n");
  CHECK(
      one_rule(make_rule({kTcpUdp, DestPortIn{{{53, 53}, {60000, 65535}}}}, VerdictKind::accept)) ==
      "\t\tmeta l4proto { tcp, udp } th dport { 53, 60000-65535 } accept\n");
}

TEST_CASE("render_nft: several matches, counter, verdicts and comments in nft's order") {
  CHECK(one_rule(
            make_rule({LoopbackInterface{false}, CtState{ct_new}, kTcp, DestPortIn{{{8080, 8080}}}},
                      VerdictKind::accept, "web.alt-in", true)) ==
        "\t\tiif \"lo\" ct state new tcp dport 8080 counter accept comment \"web.alt-in\"\n");
  CHECK(one_rule(make_rule({kTcp}, VerdictKind::reject_tcp_reset, "rst")) ==
        "\t\tmeta l4proto tcp reject with tcp reset comment \"rst\"\n");
  CHECK(one_rule(make_rule({kTcp, DestPortIn{{{113, 113}}}}, VerdictKind::reject_tcp_reset)) ==
        "\t\ttcp dport 113 reject with tcp reset\n");
  CHECK(one_rule(make_rule({}, VerdictKind::reject_icmpx_port_unreachable, {}, true)) ==
        "\t\tcounter reject with icmpx port-unreachable\n");
  CHECK(one_rule(make_rule({}, VerdictKind::drop)) == "\t\tdrop\n");
  CHECK(one_rule(make_rule({}, VerdictKind::jump, {}, false, "zone_a")) == "\t\tjump zone_a\n");
}

TEST_CASE("render_nft: refuses what nft could not parse back") {
  CHECK_THROWS_AS(one_rule(make_rule({}, VerdictKind::accept, "say \"hi\"")),
                  std::invalid_argument);
  CHECK_THROWS_AS(one_rule(make_rule({}, VerdictKind::accept, "line\nbreak")),
                  std::invalid_argument);
  CHECK_THROWS_AS(one_rule(make_rule({}, VerdictKind::accept, std::string(129, 'x'))),
                  std::invalid_argument);
  CHECK_NOTHROW(one_rule(make_rule({}, VerdictKind::accept, std::string(128, 'x'))));
  CHECK_THROWS_AS(one_rule(make_rule({DestPortIn{{{22, 22}}}}, VerdictKind::accept)),
                  std::invalid_argument);
  CHECK_THROWS_AS(one_rule(make_rule({CtState{0}}, VerdictKind::accept)), std::invalid_argument);
  CHECK_THROWS_AS(one_rule(make_rule({CtState{1u << 4}}, VerdictKind::accept)),
                  std::invalid_argument);
  CHECK_THROWS_AS(one_rule(make_rule({}, VerdictKind::jump, {}, false, "")), std::invalid_argument);
  CHECK_THROWS_AS(one_rule(make_rule({}, VerdictKind::jump, {}, false, "9lives")),
                  std::invalid_argument);
  Ruleset bad_table;
  bad_table.table = "has space";
  CHECK_THROWS_AS(portier::render_nft(bad_table), std::invalid_argument);
}

namespace {

Address ip(const std::string& text) {
  Address address;
  address.family = text.find(':') == std::string::npos ? Family::ipv4 : Family::ipv6;
  REQUIRE(inet_pton(address.family == Family::ipv4 ? AF_INET : AF_INET6, text.c_str(),
                    address.bytes.data()) == 1);
  return address;
}

AddressRange span(const std::string& first, const std::string& last) {
  return {ip(first), ip(last)};
}

Rule verdict_rule(Verdict verdict, std::vector<Match> matches = {}) {
  Rule rule;
  rule.matches = std::move(matches);
  rule.verdict = std::move(verdict);
  return rule;
}

Verdict of_kind(VerdictKind kind, std::string chain = {}) {
  Verdict verdict;
  verdict.kind = kind;
  verdict.chain = std::move(chain);
  return verdict;
}

}  // namespace

TEST_CASE("render_nft: interface names, wildcards, sets and ct status") {
  CHECK(one_rule(make_rule({InterfaceNameIn{false, {"eth0"}}}, VerdictKind::accept)) ==
        "\t\tiifname \"eth0\" accept\n");
  CHECK(one_rule(make_rule({InterfaceNameIn{true, {"ppp*"}}}, VerdictKind::drop)) ==
        "\t\toifname \"ppp*\" drop\n");
  CHECK(one_rule(make_rule({InterfaceNameIn{false, {"br-lan", "eth1"}}}, VerdictKind::accept)) ==
        "\t\tiifname { \"br-lan\", \"eth1\" } accept\n");
  CHECK(one_rule(make_rule({CtState{ct_new}, CtStatusDnat{}}, VerdictKind::accept)) ==
        "\t\tct state new ct status dnat accept\n");
  CHECK_THROWS_AS(one_rule(make_rule({InterfaceNameIn{false, {"a*", "b"}}}, VerdictKind::accept)),
                  std::invalid_argument);
  CHECK_THROWS_AS(one_rule(make_rule({InterfaceNameIn{false, {"a*b"}}}, VerdictKind::accept)),
                  std::invalid_argument);
  CHECK_THROWS_AS(
      one_rule(make_rule({InterfaceNameIn{false, {"sixteen-chars-xx"}}}, VerdictKind::accept)),
      std::invalid_argument);
  CHECK_THROWS_AS(one_rule(make_rule({InterfaceNameIn{false, {}}}, VerdictKind::accept)),
                  std::invalid_argument);
}

TEST_CASE("render_nft: new protocols, source ports and sctp") {
  const L4ProtoIn sctp{{L4Proto::sctp}};
  CHECK(one_rule(make_rule({L4ProtoIn{{L4Proto::icmpv6}}}, VerdictKind::accept)) ==
        "\t\tmeta l4proto ipv6-icmp accept\n");
  CHECK(one_rule(make_rule({L4ProtoIn{{L4Proto::icmp, L4Proto::tcp, L4Proto::icmpv6}}},
                           VerdictKind::accept)) ==
        "\t\tmeta l4proto { icmp, tcp, ipv6-icmp } accept\n");
  CHECK(one_rule(make_rule({sctp, DestPortIn{{{9, 9}}}}, VerdictKind::accept)) ==
        "\t\tsctp dport 9 accept\n");
  CHECK(one_rule(make_rule({kTcp, SourcePortIn{{{80, 80}}}}, VerdictKind::accept)) ==
        "\t\ttcp sport 80 accept\n");
  CHECK(one_rule(make_rule({kTcp, SourcePortIn{{{1024, 65535}}}, DestPortIn{{{22, 22}}}},
                           VerdictKind::accept)) ==
        "\t\ttcp sport 1024-65535 tcp dport 22 accept\n");
  CHECK(one_rule(make_rule({kTcpUdp, SourcePortIn{{{53, 53}, {123, 123}}}}, VerdictKind::accept)) ==
        "\t\tmeta l4proto { tcp, udp } th sport { 53, 123 } accept\n");
  CHECK_THROWS_AS(
      one_rule(make_rule({L4ProtoIn{{L4Proto::icmp}}, DestPortIn{{{1, 1}}}}, VerdictKind::accept)),
      std::invalid_argument);
  CHECK_THROWS_AS(one_rule(make_rule({SourcePortIn{{{1, 1}}}}, VerdictKind::accept)),
                  std::invalid_argument);
}

TEST_CASE("render_nft: addresses print as nft lists them") {
  auto saddr = [](std::vector<AddressRange> ranges, Family family = Family::ipv4) {
    return one_rule(make_rule({AddressIn{family, false, std::move(ranges)}}, VerdictKind::accept));
  };
  CHECK(saddr({span("10.0.0.1", "10.0.0.1")}) == "\t\tip saddr 10.0.0.1 accept\n");
  CHECK(saddr({span("10.0.0.0", "10.255.255.255")}) == "\t\tip saddr 10.0.0.0/8 accept\n");
  CHECK(saddr({span("10.16.0.0", "10.31.255.255")}) == "\t\tip saddr 10.16.0.0/12 accept\n");
  CHECK(saddr({span("10.0.0.0", "10.0.0.5")}) == "\t\tip saddr 10.0.0.0-10.0.0.5 accept\n");
  CHECK(saddr({span("0.0.0.0", "255.255.255.255")}) == "\t\tip saddr 0.0.0.0/0 accept\n");
  CHECK(saddr({span("10.0.0.0", "10.255.255.255"), span("192.168.1.7", "192.168.1.7")}) ==
        "\t\tip saddr { 10.0.0.0/8, 192.168.1.7 } accept\n");
  CHECK(saddr({span("fd00::", "fd00::ffff:ffff:ffff:ffff")}, Family::ipv6) ==
        "\t\tip6 saddr fd00::/64 accept\n");
  CHECK(saddr({span("fe80::1", "fe80::5")}, Family::ipv6) ==
        "\t\tip6 saddr fe80::1-fe80::5 accept\n");
  CHECK(one_rule(make_rule({AddressIn{Family::ipv6, true, {span("::1", "::1")}}},
                           VerdictKind::drop)) == "\t\tip6 daddr ::1 drop\n");
  CHECK(one_rule(make_rule({AddressInSet{Family::ipv4, false, "blocklist"}}, VerdictKind::drop)) ==
        "\t\tip saddr @blocklist drop\n");
  CHECK(one_rule(make_rule({AddressInSet{Family::ipv6, true, "v6"}}, VerdictKind::drop)) ==
        "\t\tip6 daddr @v6 drop\n");
  CHECK_THROWS_AS(saddr({span("fd00::1", "fd00::1")}), std::invalid_argument);  // wrong family
  CHECK_THROWS_AS(saddr({span("10.0.0.5", "10.0.0.1")}), std::invalid_argument);
}

TEST_CASE("render_nft: ICMP types by nft's names") {
  CHECK(one_rule(make_rule({IcmpTypeIn{false, {8}}}, VerdictKind::accept)) ==
        "\t\ticmp type echo-request accept\n");
  CHECK(one_rule(make_rule({IcmpTypeIn{false, {0, 3, 11, 42}}}, VerdictKind::accept)) ==
        "\t\ticmp type { echo-reply, destination-unreachable, time-exceeded, 42 } accept\n");
  CHECK(one_rule(make_rule({IcmpTypeIn{true, {2, 130, 134, 135, 143}}}, VerdictKind::accept)) ==
        "\t\ticmpv6 type { packet-too-big, mld-listener-query, nd-router-advert, "
        "nd-neighbor-solicit, mld2-listener-report } accept\n");
}

TEST_CASE("render_nft: socket owner, cgroup, tcp syn, limits and meters") {
  CHECK(one_rule(make_rule({SocketUid{33, false}}, VerdictKind::accept)) ==
        "\t\tmeta skuid 33 accept\n");
  CHECK(one_rule(make_rule({SocketUid{0, true}}, VerdictKind::drop)) ==
        "\t\tmeta skuid != 0 drop\n");
  CHECK(one_rule(make_rule({SocketCgroup{2, "cgroups_web"}}, VerdictKind::accept)) ==
        "\t\tsocket cgroupv2 level 2 @cgroups_web accept\n");
  CHECK(one_rule(make_rule({TcpSyn{}}, VerdictKind::accept)) == "\t\ttcp flags syn accept\n");
  // nft leaves its default burst of 5 out of listings.
  CHECK(one_rule(make_rule({Limit{10, RateUnit::second, 5, false}}, VerdictKind::accept)) ==
        "\t\tlimit rate 10/second accept\n");
  CHECK(one_rule(make_rule({Limit{10, RateUnit::minute, 20, true}}, VerdictKind::drop)) ==
        "\t\tlimit rate over 10/minute burst 20 packets drop\n");
  CHECK(one_rule(make_rule({Limit{1, RateUnit::day, 1, false}}, VerdictKind::accept)) ==
        "\t\tlimit rate 1/day burst 1 packets accept\n");
  CHECK(one_rule(make_rule({MeterOver{"m", Family::ipv4, Limit{3, RateUnit::hour, 5, true}}},
                           VerdictKind::drop)) ==
        "\t\tupdate @m { ip saddr limit rate over 3/hour } drop\n");
  CHECK(one_rule(make_rule({MeterOver{"m6", Family::ipv6, Limit{3, RateUnit::second, 9, true}}},
                           VerdictKind::drop)) ==
        "\t\tupdate @m6 { ip6 saddr limit rate over 3/second burst 9 packets } drop\n");
  CHECK_THROWS_AS(one_rule(make_rule({Limit{1, RateUnit::second, 0, false}}, VerdictKind::accept)),
                  std::invalid_argument);
  CHECK_THROWS_AS(one_rule(make_rule({MeterOver{"m", Family::ipv4, Limit{}}}, VerdictKind::drop)),
                  std::invalid_argument);
  CHECK_THROWS_AS(one_rule(make_rule({SocketCgroup{1, "bad name"}}, VerdictKind::accept)),
                  std::invalid_argument);
}

TEST_CASE("render_nft: a set of cgroups lists them by path") {
  Ruleset ruleset;
  NamedSet owners;
  owners.name = "cgroups_web";
  owners.key = SetKey::cgroupv2;
  owners.owner = {"nginx.service", ""};
  ruleset.sets = {owners};
  // While the unit does not run, the set is empty.
  CHECK(portier::render_nft(ruleset) ==
        "table inet portier {\n\tset cgroups_web {\n\t\ttype cgroupsv2\n\t}\n}\n");
  ruleset.sets[0].cgroups = {{"system.slice/nginx.service", 4242}};
  CHECK(portier::render_nft(ruleset) ==
        "table inet portier {\n\tset cgroups_web {\n\t\ttype cgroupsv2\n"
        "\t\telements = { \"system.slice/nginx.service\" }\n\t}\n}\n");
  ruleset.sets[0].cgroups = {{"/abs", 1}};
  CHECK_THROWS_AS(portier::render_nft(ruleset), std::invalid_argument);
}

TEST_CASE("render_nft: log after counter, and the new verdicts") {
  Rule logged = make_rule({kTcp}, VerdictKind::drop, "x", true);
  logged.log = Log{"portier x ", std::nullopt};
  CHECK(one_rule(logged) ==
        "\t\tmeta l4proto tcp counter log prefix \"portier x \" drop comment \"x\"\n");
  logged.log = Log{"p ", 3};
  logged.verdict = of_kind(VerdictKind::none);
  CHECK(one_rule(logged) ==
        "\t\tmeta l4proto tcp counter log prefix \"p \" group 3 comment \"x\"\n");
  CHECK(one_rule(make_rule({}, VerdictKind::none, {}, true)) == "\t\tcounter\n");
  CHECK_THROWS_AS(one_rule(make_rule({}, VerdictKind::none)), std::invalid_argument);
  CHECK(one_rule(verdict_rule(of_kind(VerdictKind::go_to, "zone_a"))) == "\t\tgoto zone_a\n");
  CHECK(
      one_rule(verdict_rule(of_kind(VerdictKind::masquerade), {InterfaceNameIn{true, {"eth0"}}})) ==
      "\t\toifname \"eth0\" masquerade\n");
  CHECK(one_rule(verdict_rule(of_kind(VerdictKind::clamp_mss), {TcpSyn{}})) ==
        "\t\ttcp flags syn tcp option maxseg size set rt mtu\n");

  Verdict dnat = of_kind(VerdictKind::dnat);
  dnat.nat_address = ip("192.168.1.10");
  dnat.nat_port = 80;
  CHECK(one_rule(verdict_rule(dnat, {kTcp, DestPortIn{{{8080, 8080}}}})) ==
        "\t\ttcp dport 8080 dnat ip to 192.168.1.10:80\n");
  dnat.nat_port.reset();
  CHECK(one_rule(verdict_rule(dnat)) == "\t\tdnat ip to 192.168.1.10\n");
  dnat.nat_address = ip("fd00::2");
  dnat.nat_port = 80;
  CHECK(one_rule(verdict_rule(dnat, {kTcp})) == "\t\tmeta l4proto tcp dnat ip6 to [fd00::2]:80\n");
  dnat.nat_port.reset();
  CHECK(one_rule(verdict_rule(dnat)) == "\t\tdnat ip6 to fd00::2\n");
  CHECK_THROWS_AS(one_rule(verdict_rule(of_kind(VerdictKind::dnat))), std::invalid_argument);

  Verdict vmap = of_kind(VerdictKind::vmap);
  vmap.vmap = {{"br-lan", VerdictKind::accept, {}},
               {"eth0", VerdictKind::go_to, "input_wan"},
               {"wg0", VerdictKind::jump, "vpn"},
               {"x", VerdictKind::drop, {}}};
  CHECK(one_rule(verdict_rule(vmap)) ==
        "\t\tiifname vmap { \"br-lan\" : accept, \"eth0\" : goto input_wan, \"wg0\" : jump vpn, "
        "\"x\" : drop }\n");
  vmap.vmap_outgoing = true;
  vmap.vmap = {{"eth0", VerdictKind::drop, {}}};
  Rule counted = verdict_rule(vmap);
  counted.counter = true;
  CHECK(one_rule(counted) == "\t\tcounter oifname vmap { \"eth0\" : drop }\n");
  vmap.vmap = {{"eth0", VerdictKind::reject_tcp_reset, {}}};
  CHECK_THROWS_AS(one_rule(verdict_rule(vmap)), std::invalid_argument);
  vmap.vmap = {{"eth*", VerdictKind::drop, {}}};
  CHECK_THROWS_AS(one_rule(verdict_rule(vmap)), std::invalid_argument);
}

TEST_CASE("render_nft: nat chains, owner flag and named sets") {
  Ruleset ruleset;
  ruleset.owner = true;
  ruleset.persist = true;  // nft 1.0.6 cannot write it: nothing rendered
  NamedSet block{"blocklist",
                 SetKey::ipv4_addr,
                 true,
                 false,
                 false,
                 std::nullopt,
                 std::nullopt,
                 {span("10.0.0.0", "10.255.255.255"), span("192.168.1.7", "192.168.1.7"),
                  span("192.168.2.1", "192.168.2.5")}};
  NamedSet meter{"meter6", SetKey::ipv6_addr, false, true, true, 90, 65535, {}};
  NamedSet ports{
      "ports",      SetKey::inet_service,
      true,         false,
      false,        std::nullopt,
      std::nullopt, {{port_element(22), port_element(22)}, {port_element(80), port_element(90)}}};
  NamedSet timed{"timed", SetKey::ipv4_addr, false,        false,
                 false,   86400 + 3600 + 1,  std::nullopt, {}};
  ruleset.sets = {block, meter, ports, timed};
  ruleset.chains.push_back(
      Chain{"pre", BaseChain{Hook::prerouting, ChainType::nat, -90, true}, {}});
  ruleset.chains.push_back(
      Chain{"post", BaseChain{Hook::postrouting, ChainType::nat, 100, true}, {}});
  ruleset.chains.push_back(
      Chain{"post2", BaseChain{Hook::postrouting, ChainType::nat, -100, true}, {}});
  CHECK(portier::render_nft(ruleset) ==
        "table inet portier {\n"
        "\tflags owner\n"
        "\n"
        "\tset blocklist {\n"
        "\t\ttype ipv4_addr\n"
        "\t\tflags interval\n"
        "\t\telements = { 10.0.0.0/8, 192.168.1.7, 192.168.2.1-192.168.2.5 }\n"
        "\t}\n"
        "\n"
        "\tset meter6 {\n"
        "\t\ttype ipv6_addr\n"
        "\t\tsize 65535\n"
        "\t\tflags dynamic,timeout\n"
        "\t\ttimeout 1m30s\n"
        "\t}\n"
        "\n"
        "\tset ports {\n"
        "\t\ttype inet_service\n"
        "\t\tflags interval\n"
        "\t\telements = { 22, 80-90 }\n"
        "\t}\n"
        "\n"
        "\tset timed {\n"
        "\t\ttype ipv4_addr\n"
        "\t\tflags timeout\n"
        "\t\ttimeout 1d1h1s\n"
        "\t}\n"
        "\n"
        "\tchain pre {\n"
        "\t\ttype nat hook prerouting priority dstnat + 10; policy accept;\n"
        "\t}\n"
        "\n"
        "\tchain post {\n"
        "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        "\t}\n"
        "\n"
        "\tchain post2 {\n"
        "\t\ttype nat hook postrouting priority -100; policy accept;\n"
        "\t}\n"
        "}\n");

  Ruleset bad = ruleset;
  bad.sets[2].interval = false;  // a range in a set without flags interval
  CHECK_THROWS_AS(portier::render_nft(bad), std::invalid_argument);
  bad = ruleset;
  bad.sets[0].elements.push_back(span("fd00::1", "fd00::1"));
  CHECK_THROWS_AS(portier::render_nft(bad), std::invalid_argument);
  bad = ruleset;
  bad.chains.push_back(Chain{"f", BaseChain{Hook::forward, ChainType::nat, 0, true}, {}});
  CHECK_THROWS_AS(portier::render_nft(bad), std::invalid_argument);
}
