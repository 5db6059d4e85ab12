// Test helper (needs root for everything but `render`/`cases`):
//   portier_oracle cases              names of the built-in rulesets
//   portier_oracle render CASE        render_nft_replace() of the case
//   portier_oracle apply CASE [CMD]   NetlinkKernel::apply() of the case (CASE,CASE,... one
//                                     after the other on one socket); then runs the shell
//                                     command CMD while the socket still lives (an owned
//                                     table disappears with it)
//   portier_oracle counters TABLE [MAP...]  NetlinkKernel::read_counters(), one rule (then
//                                     one map element) per line
//   portier_oracle map-edit add|remove ELEMENT  NetlinkKernel::edit() of the element alone
//                                     with that comment in the `maps` case
//   portier_oracle exists TABLE       exit status 0 if the table exists, 1 if not
//   portier_oracle time CASE          how long encode_replace_batch(CASE) takes
//   portier_oracle dump CASE          encode_replace_batch(CASE, 0) as libmnl prints it,
//                                     the format of `nft --debug=mnl`
//   portier_oracle refill LOADED NEXT [CMD]  NetlinkKernel::refill() of NEXT over the table
//                                     an earlier `apply LOADED` left (same chains), then CMD
//   portier_oracle handles CASE       NetlinkKernel::apply() of the case, then the returned
//                                     handles: one line per rule, "chain handle"
//   portier_oracle edits DIR          the edit()/edit_set()/event scenario (kernel_edits.cpp)
//   portier_oracle watch              what a plain event subscriber sees (kernel_edits.cpp)
//   portier_oracle time-edits [N...]  timing of handles, edits, set edits (kernel_edits.cpp);
//                                     time-edits rules: only edits of a 10k-rule chain
#include <arpa/inet.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <string>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>

#include "encode_batch.h"
#include "kernel_edits.h"
#include "netlink_kernel.h"
#include "protocol_sets.h"
#include "render_nft.h"
#include "ruleset.h"

namespace {

using namespace portier::ir;

Rule rule(std::vector<Match> matches, Verdict verdict, std::string comment = {},
          bool counter = false) {
  Rule r;
  r.matches = std::move(matches);
  r.verdict = std::move(verdict);
  r.comment = std::move(comment);
  r.counter = counter;
  return r;
}

Verdict verdict(VerdictKind kind, std::string chain = {}) {
  Verdict v;
  v.kind = kind;
  v.chain = std::move(chain);
  return v;
}
Verdict accept() { return verdict(VerdictKind::accept); }
Verdict drop() { return verdict(VerdictKind::drop); }
Verdict jump(std::string chain) { return verdict(VerdictKind::jump, std::move(chain)); }

L4ProtoIn tcp() { return L4ProtoIn{{L4Proto::tcp}}; }
L4ProtoIn udp() { return L4ProtoIn{{L4Proto::udp}}; }
L4ProtoIn tcp_udp() { return L4ProtoIn{{L4Proto::tcp, L4Proto::udp}}; }
DestPortIn ports(std::vector<PortRange> ranges) { return DestPortIn{std::move(ranges)}; }

Chain base_chain(std::string name, Hook hook, std::int32_t priority, bool policy_accept,
                 std::vector<Rule> rules, ChainType type = ChainType::filter) {
  return Chain{std::move(name), BaseChain{hook, type, priority, policy_accept}, std::move(rules)};
}

Ruleset basic() {
  Ruleset r;
  r.chains.push_back(base_chain("input", Hook::input, 0, false,
                                {rule({LoopbackInterface{false}}, accept()),
                                 rule({CtState{ct_established | ct_related}}, accept()),
                                 rule({CtState{ct_invalid}}, drop(), "invalid", true),
                                 rule({tcp(), ports({{22, 22}})}, accept(), "ssh", true)}));
  r.chains.push_back(base_chain("output", Hook::output, 0, true,
                                {rule({LoopbackInterface{true}}, accept(), "lo-out")}));
  return r;
}

Ruleset port_shapes() {
  Ruleset r;
  r.chains.push_back(base_chain(
      "input", Hook::input, 0, false,
      {rule({tcp(), ports({{80, 80}})}, accept(), "one-port"),
       rule({tcp(), ports({{137, 139}})}, accept(), "one-range"),
       rule({udp(), ports({{0, 10}})}, accept(), "range-from-0"),
       rule({udp(), ports({{60000, 65535}})}, accept(), "range-to-max"),
       rule({tcp(), ports({{22, 22}, {80, 80}, {443, 443}})}, accept(), "port-set"),
       rule({tcp(), ports({{22, 22}, {137, 139}, {445, 445}})}, accept(), "interval-set"),
       rule({udp(), ports({{0, 10}, {22, 22}})}, accept(), "interval-from-0"),
       rule({udp(), ports({{1, 1}, {5, 7}, {65535, 65535}})}, accept(), "interval-to-max"),
       rule({tcp(), ports({{0, 0}, {5, 5}})}, accept(), "set-with-0"),
       rule({tcp_udp(), ports({{53, 53}})}, accept(), "th-one-port"),
       rule({tcp_udp(), ports({{137, 139}})}, accept(), "th-range"),
       rule({tcp_udp(), ports({{53, 53}, {5353, 5353}})}, accept(), "th-set"),
       rule({tcp_udp(), ports({{22, 22}, {137, 139}, {60000, 65535}})}, accept(), "th-interval"),
       rule({tcp()}, accept(), "tcp-only"), rule({tcp_udp()}, drop(), "tcp-udp-only", true)}));
  return r;
}

Ruleset verdicts_and_chains() {
  Ruleset r;
  r.chains.push_back(
      Chain{"zone.public",
            std::nullopt,
            {rule({tcp(), ports({{22, 22}})}, accept(), "ssh", true), rule({}, drop())}});
  r.chains.push_back(Chain{"empty_chain", std::nullopt, {}});
  r.chains.push_back(base_chain(
      "input", Hook::input, 10, false,
      {rule({CtState{ct_established | ct_related}}, accept(), "established"),
       rule({LoopbackInterface{false}}, jump("zone.public"), "to-zone", true),
       rule({tcp(), ports({{113, 113}})}, verdict(VerdictKind::reject_tcp_reset), "ident"),
       rule({tcp()}, verdict(VerdictKind::reject_tcp_reset)),
       rule({}, verdict(VerdictKind::reject_icmpx_port_unreachable), "final-reject", true)}));
  r.chains.push_back(base_chain("forward", Hook::forward, -5, false, {rule({}, drop())}));
  r.chains.push_back(base_chain("output", Hook::output, -300, true,
                                {rule({udp(), ports({{53, 53}})}, accept(), "dns-out")}));
  return r;
}

Ruleset ct_states() {
  Ruleset r;
  std::vector<Rule> rules;
  const std::uint32_t masks[] = {ct_invalid,
                                 ct_established,
                                 ct_related,
                                 ct_new,
                                 ct_untracked,
                                 ct_established | ct_related,
                                 ct_new | ct_untracked,
                                 ct_invalid | ct_established | ct_related | ct_new | ct_untracked};
  for (std::uint32_t mask : masks) rules.push_back(rule({CtState{mask}}, accept()));
  rules.push_back(rule({CtState{ct_new}, tcp(), ports({{22, 22}})}, accept(), "new-ssh"));
  rules.push_back(rule(
      {LoopbackInterface{false}, CtState{ct_new}, tcp_udp(), ports({{1000, 2000}, {3000, 3000}})},
      accept(), "all-kinds", true));
  r.chains.push_back(base_chain("input", Hook::input, 0, true, std::move(rules)));
  return r;
}

Ruleset big_sets() {
  // Element lists past 64 KiB: libnftnl splits them over several messages.
  std::vector<PortRange> singles;
  for (std::uint32_t port = 2; port <= 12000; port += 2) {
    singles.push_back({static_cast<std::uint16_t>(port), static_cast<std::uint16_t>(port)});
  }
  std::vector<PortRange> ranges;
  for (std::uint32_t port = 10; port + 3 <= 65535; port += 7) {
    ranges.push_back({static_cast<std::uint16_t>(port), static_cast<std::uint16_t>(port + 3)});
  }
  Ruleset r;
  r.chains.push_back(base_chain("input", Hook::input, 0, true,
                                {rule({tcp(), ports(singles)}, accept(), "many-ports"),
                                 rule({tcp_udp(), ports(ranges)}, accept(), "many-ranges")}));
  return r;
}

// Thousands of acknowledged messages in one batch: the replies must all fit the socket's
// receive buffer.
Ruleset many_rules() {
  std::vector<Rule> rules;
  for (std::uint16_t port = 1; port <= 5000; ++port) {
    rules.push_back(
        rule({tcp(), ports({{port, port}})}, accept(), "r" + std::to_string(port), port % 2 == 0));
  }
  Ruleset r;
  r.chains.push_back(base_chain("input", Hook::input, 0, true, std::move(rules)));
  return r;
}

Address address(const std::string& text) {
  Address a;
  a.family = text.find(':') == std::string::npos ? Family::ipv4 : Family::ipv6;
  if (inet_pton(a.family == Family::ipv4 ? AF_INET : AF_INET6, text.c_str(), a.bytes.data()) != 1) {
    throw std::invalid_argument("bad address in a case: " + text);
  }
  return a;
}

AddressRange range(const std::string& first, const std::string& last) {
  return {address(first), address(last)};
}
AddressRange single(const std::string& text) { return range(text, text); }

Rule with_log(Rule r, std::string prefix, std::optional<std::uint16_t> group = std::nullopt) {
  r.log = Log{std::move(prefix), group};
  return r;
}

InterfaceNameIn iifname(std::vector<std::string> names) { return {false, std::move(names)}; }

Ruleset interfaces() {
  Verdict vmap_in = verdict(VerdictKind::vmap);
  vmap_in.vmap = {{"br-lan", VerdictKind::accept, {}},
                  {"eth0", VerdictKind::go_to, "input_wan"},
                  {"wg0", VerdictKind::jump, "input_wan"},
                  {"x", VerdictKind::drop, {}}};
  Verdict vmap_out = verdict(VerdictKind::vmap);
  vmap_out.vmap_outgoing = true;
  vmap_out.vmap = {{"eth0", VerdictKind::drop, {}}};
  Ruleset r;
  r.chains.push_back(Chain{"input_wan",
                           std::nullopt,
                           {rule({iifname({"eth0"})}, accept(), "one-name"),
                            rule({iifname({"ppp*"})}, accept(), "wildcard"),
                            rule({iifname({"br-lan", "eth1"})}, accept(), "name-set", true),
                            rule({InterfaceNameIn{true, {"abcdefghijklmno"}}}, drop(), "15-chars"),
                            rule({InterfaceNameIn{true, {"a*"}}}, drop()),
                            rule({CtStatusDnat{}}, accept(), "port-forwarded"),
                            rule({CtState{ct_new}, CtStatusDnat{}}, accept())}});
  r.chains.push_back(base_chain("input", Hook::input, 0, false,
                                {rule({}, vmap_in, "zones"), rule({}, vmap_out, "out-map", true),
                                 rule({}, verdict(VerdictKind::go_to, "input_wan"), "goto")}));
  return r;
}

// What the neighbour zones add: negated interface names, matches on the destination a
// connection had before NAT (one port or range per rule; addresses alone, as prefixes,
// ranges and sets of both families).
Ruleset neighbours() {
  Ruleset r;
  r.chains.push_back(Chain{
      "published",
      std::nullopt,
      {rule({InterfaceNameIn{false, {"br-*"}, false}, InterfaceNameIn{false, {"br-lan"}, true}},
            verdict(VerdictKind::return_)),
       rule({InterfaceNameIn{false, {"docker0"}, true}}, accept(), "not-one"),
       rule({InterfaceNameIn{false, {"br-lan", "br-x"}, true}}, accept(), "not-set", true),
       rule({InterfaceNameIn{true, {"veth*"}, true}}, drop(), "not-wildcard"),
       rule({tcp(), CtOriginalDestPort{{8080, 8080}}}, accept(), "one-port", true),
       rule({tcp_udp(), CtOriginalDestPort{{8000, 8010}}}, accept(), "port-range", true),
       rule({CtOriginalAddressIn{Family::ipv4, {single("198.51.100.1")}}}, accept(), "v4"),
       rule({CtOriginalAddressIn{Family::ipv4, {range("10.0.0.0", "10.255.255.255")}}}, accept()),
       rule({CtOriginalAddressIn{Family::ipv4, {range("10.1.2.0", "10.1.3.255")}}}, accept()),
       rule({CtOriginalAddressIn{Family::ipv4, {range("10.0.0.1", "10.0.0.5")}}}, accept()),
       rule({CtOriginalAddressIn{Family::ipv4,
                                 {range("10.0.0.0", "10.255.255.255"), single("192.168.1.1")}}},
            accept(), "v4-set"),
       rule({CtOriginalAddressIn{Family::ipv6, {single("fd00::1"), single("fd00::2")}}}, accept(),
            "v6-set"),
       rule({AddressIn{Family::ipv4, false, {single("192.0.2.7")}},
             CtOriginalAddressIn{Family::ipv4, {single("198.51.100.1")}}, tcp(),
             CtOriginalDestPort{{8443, 8443}}},
            accept(), "both", true),
       rule({}, drop(), "default input", true)}});
  r.chains.push_back(
      base_chain("forward", Hook::forward, 10, false,
                 {rule({CtStatusDnat{}, InterfaceNameIn{true, {"docker0", "virbr0"}, false}},
                       verdict(VerdictKind::jump, "published")),
                  rule({CtStatusDnat{}, InterfaceNameIn{true, {"br-*"}, false},
                        InterfaceNameIn{true, {"br-lan"}, true}},
                       verdict(VerdictKind::jump, "published"))}));
  return r;
}

Ruleset addresses() {
  Ruleset r;
  NamedSet block{"blocklist",
                 SetKey::ipv4_addr,
                 true,
                 false,
                 false,
                 std::nullopt,
                 std::nullopt,
                 {range("10.0.0.0", "10.255.255.255"), single("192.168.1.7"),
                  range("192.168.2.1", "192.168.2.5"), range("224.0.0.0", "255.255.255.255")}};
  NamedSet block6{
      "blocklist6", SetKey::ipv6_addr,
      true,         false,
      false,        std::nullopt,
      1000,         {single("::1"), range("fd00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}};
  NamedSet plain{"plain4", SetKey::ipv4_addr, false,        false,
                 false,    std::nullopt,      std::nullopt, {single("1.2.3.4"), single("5.6.7.8")}};
  NamedSet services{"services", SetKey::inet_service, true,         false,
                    false,      std::nullopt,         std::nullopt, {}};
  services.elements = {{port_element(22), port_element(22)}, {port_element(80), port_element(90)}};
  NamedSet meter{"meter4", SetKey::ipv4_addr, false, true, true, 60, 65535, {}};
  NamedSet meter6{"meter6", SetKey::ipv6_addr, false, true, true, std::nullopt, std::nullopt, {}};
  NamedSet timed{"timed", SetKey::ipv4_addr, false,        true,
                 false,   std::nullopt,      std::nullopt, {single("9.9.9.9")}};
  NamedSet empty{"empty", SetKey::ipv4_addr, true, false, false, 5400, std::nullopt, {}};
  r.sets = {block, block6, plain, services, meter, meter6, timed, empty};
  auto in4 = [](bool dst, std::vector<AddressRange> ranges) {
    return AddressIn{Family::ipv4, dst, std::move(ranges)};
  };
  auto in6 = [](bool dst, std::vector<AddressRange> ranges) {
    return AddressIn{Family::ipv6, dst, std::move(ranges)};
  };
  r.chains.push_back(base_chain(
      "input", Hook::input, 0, true,
      {rule({in4(false, {single("10.0.0.1")})}, accept(), "v4-single"),
       rule({in4(false, {range("10.0.0.0", "10.255.255.255")})}, accept(), "v4-slash8"),
       rule({in4(true, {range("10.16.0.0", "10.31.255.255")})}, accept(), "v4-slash12"),
       rule({in4(false, {range("10.0.0.0", "10.0.0.1")})}, accept(), "v4-slash31"),
       rule({in4(false, {range("10.0.0.0", "10.0.0.5")})}, accept(), "v4-range"),
       rule({in4(false, {range("0.0.0.0", "255.255.255.255")})}, accept(), "v4-any"),
       rule({in6(true, {range("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")})}, accept(),
            "v6-any"),
       rule({in4(true, {range("10.0.0.0", "10.255.255.255"), single("192.168.1.7")})}, accept(),
            "v4-interval-set"),
       rule({in4(true, {single("1.1.1.1"), single("8.8.8.8")})}, accept(), "v4-plain-set"),
       rule({in4(false, {range("0.0.0.0", "0.0.0.255"), range("255.0.0.0", "255.255.255.255")})},
            accept(), "v4-edges"),
       rule({in6(false, {single("fd00::1")})}, accept(), "v6-single"),
       rule({in6(false, {range("fd00::", "fd00::ffff:ffff:ffff:ffff")})}, accept(), "v6-slash64"),
       rule({in6(true, {range("fd00::", "fd00::1:ffff:ffff:ffff:ffff")})}, accept(), "v6-slash63"),
       rule({in6(false, {range("fe80::1", "fe80::5")})}, accept(), "v6-range"),
       rule({in6(true,
                 {single("fd00::1"), range("fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff")})},
            accept(), "v6-set"),
       rule({AddressInSet{Family::ipv4, false, "blocklist"}}, drop(), "blocked", true),
       rule({AddressInSet{Family::ipv6, true, "blocklist6"}}, drop()),
       rule({AddressInSet{Family::ipv4, true, "plain4"}}, drop()),
       rule({tcp(), ports({{1, 1}}), AddressInSet{Family::ipv4, false, "timed"}}, drop()),
       rule({MeterOver{"meter4", Family::ipv4, Limit{10, RateUnit::second, 5, true}}}, drop(),
            "meter"),
       rule({tcp(), ports({{22, 22}}),
             MeterOver{"meter6", Family::ipv6, Limit{3, RateUnit::minute, 7, true}}},
            drop(), "meter6", true)}));
  return r;
}

Ruleset protocols() {
  L4ProtoIn sctp{{L4Proto::sctp}};
  Ruleset r;
  r.chains.push_back(base_chain(
      "input", Hook::input, 0, false,
      {rule({IcmpTypeIn{false, {8}}}, accept(), "ping"),
       rule({IcmpTypeIn{false, {0, 3, 8, 11, 12, 42}}}, accept(), "icmp-set"),
       rule({IcmpTypeIn{true, {1, 2, 128, 130, 134, 135, 136, 143, 200}}}, accept(), "icmpv6-set"),
       rule({IcmpTypeIn{true, {135}}}, accept()),
       rule({L4ProtoIn{{L4Proto::icmp}}}, accept()),
       rule({L4ProtoIn{{L4Proto::icmpv6}}}, accept()),
       rule({L4ProtoIn{{L4Proto::icmp, L4Proto::tcp, L4Proto::icmpv6, L4Proto::sctp}}}, accept()),
       rule({sctp, ports({{9, 9}})}, accept(), "sctp-port"),
       rule({sctp, ports({{9, 9}, {100, 200}})}, accept(), "sctp-ports"),
       rule({tcp(), SourcePortIn{{{80, 80}}}}, accept(), "sport"),
       rule({udp(), SourcePortIn{{{53, 53}, {123, 123}}}}, accept(), "sport-set"),
       rule({tcp_udp(), SourcePortIn{{{1000, 2000}}}, ports({{53, 53}, {5353, 5353}})}, accept(),
            "th-sport-dport"),
       rule({tcp(), SourcePortIn{{{1024, 65535}}}, ports({{22, 22}})}, accept(), "sport-dport"),
       rule({TcpSyn{}}, accept(), "syn"),
       rule({tcp(), ports({{80, 80}}), TcpSyn{}}, accept(), "port-then-syn"),
       rule({tcp(), CtState{ct_new}, TcpSyn{}}, accept(), "tcp-then-syn"),
       rule({AddressIn{Family::ipv4, false, {single("10.0.0.1")}},
             AddressIn{Family::ipv4, true, {single("10.0.0.2")}}},
            accept(), "saddr-daddr"),
       rule({AddressIn{Family::ipv6, false, {single("fd00::1")}}, IcmpTypeIn{true, {128}}},
            accept(), "address-then-icmp"),
       rule({IcmpTypeIn{false, {8}}, AddressIn{Family::ipv4, false, {single("10.0.0.1")}}},
            accept(), "icmp-then-address"),
       rule({L4ProtoIn{{L4Proto::icmp}}, IcmpTypeIn{false, {0, 8}}}, accept(), "l4-then-icmp")}));
  // Named protocol sets, as share_protocol_sets() makes them (an anonymous set above).
  for (const std::vector<L4Proto>& protocols :
       {std::vector{L4Proto::tcp, L4Proto::udp}, std::vector{L4Proto::icmp, L4Proto::icmpv6}}) {
    NamedSet set;
    set.name = portier::protocol_set_name(protocols);
    set.key = SetKey::inet_proto;
    for (L4Proto protocol : protocols) set.elements.push_back(protocol_element(protocol));
    r.sets.push_back(set);
  }
  const L4ProtoIn shared{{L4Proto::tcp, L4Proto::udp}, "l4/tcp_udp"};
  r.chains.push_back(
      Chain{"shared",
            std::nullopt,
            {rule({shared, ports({{53, 53}})}, accept(), "shared-dport"),
             rule({shared, SourcePortIn{{{1000, 2000}}}, ports({{53, 53}, {5353, 5353}})}, accept(),
                  "shared-sport-dport"),
             rule({L4ProtoIn{{L4Proto::icmp, L4Proto::icmpv6}, "l4/icmp_ipv6-icmp"}}, accept(),
                  "shared-alone")}});
  return r;
}

Ruleset statements() {
  Ruleset r;
  r.chains.push_back(Chain{"input_lan", std::nullopt, {rule({}, accept())}});
  r.chains.push_back(base_chain(
      "output", Hook::output, 0, true,
      {rule({SocketUid{33, false}}, accept(), "www-data"),
       rule({SocketUid{0, true}}, drop(), "not-root", true),
       rule({Limit{10, RateUnit::second, 5, false}}, accept(), "limit"),
       rule({Limit{10, RateUnit::minute, 20, true}}, drop(), "limit-over"),
       rule({Limit{1, RateUnit::hour, 1, false}}, accept()),
       rule({Limit{4000000000u, RateUnit::day, 5, true}}, accept()),
       with_log(rule({}, accept(), "logged", true), "portier x "),
       with_log(rule({tcp()}, drop()), "portier y ", 3),
       with_log(rule({}, verdict(VerdictKind::none)), "", 0),
       rule({}, verdict(VerdictKind::none), "count-only", true),
       rule({udp()}, verdict(VerdictKind::none)),
       rule({LoopbackInterface{true}}, verdict(VerdictKind::go_to, "input_lan"), "goto")}));
  return r;
}

Ruleset nat() {
  Verdict to4 = verdict(VerdictKind::dnat);
  to4.nat_address = address("192.168.1.10");
  to4.nat_port = 80;
  Verdict to6 = verdict(VerdictKind::dnat);
  to6.nat_address = address("fd00::2");
  to6.nat_port = 8080;
  Verdict to4_address = verdict(VerdictKind::dnat);
  to4_address.nat_address = address("192.168.1.11");
  Verdict to6_address = verdict(VerdictKind::dnat);
  to6_address.nat_address = address("fd00::3");
  Ruleset r;
  r.chains.push_back(
      base_chain("prerouting", Hook::prerouting, -90, true,
                 {rule({iifname({"eth0"}), tcp(), ports({{8080, 8080}})}, to4, "forward-web", true),
                  rule({tcp(), ports({{8443, 8443}})}, to6, "forward-web6"),
                  rule({udp(), ports({{53, 53}})}, to4_address, "dns-v4"),
                  rule({AddressIn{Family::ipv6, true, {single("fd00::1")}}}, to6_address)},
                 ChainType::nat));
  r.chains.push_back(base_chain(
      "postrouting", Hook::postrouting, 110, true,
      {rule({InterfaceNameIn{true, {"eth0"}}}, verdict(VerdictKind::masquerade), "masq", true)},
      ChainType::nat));
  r.chains.push_back(base_chain("forward", Hook::forward, 0, true,
                                {rule({TcpSyn{}}, verdict(VerdictKind::clamp_mss), "mss"),
                                 rule({CtStatusDnat{}}, accept())}));
  r.chains.push_back(base_chain("prerouting2", Hook::prerouting, -100, true, {}, ChainType::nat));
  r.chains.push_back(base_chain("postrouting2", Hook::postrouting, 100, true, {}, ChainType::nat));
  r.chains.push_back(base_chain("postrouting3", Hook::postrouting, -100, true, {}, ChainType::nat));
  return r;
}

Ruleset priorities() {
  Ruleset r;
  const std::int32_t values[] = {-300, -290, -160, -150, -11, -10, 0, 10, 11, 40, 60, 100, 200};
  int n = 0;
  for (std::int32_t value : values) {
    for (Hook hook : {Hook::input, Hook::prerouting, Hook::postrouting}) {
      r.chains.push_back(base_chain("c" + std::to_string(n++), hook, value, true, {}));
    }
  }
  return r;
}

// The cgroups live where the test script created them: /sys/fs/cgroup is cgroup2 there.
// One set holds the leaf (as the daemon fills a unit's set), one is empty (a unit that
// does not run), each looked up at two levels.
Ruleset cgroup() {
  const std::string path = "portier-oracle.test/leaf";
  struct stat info {};
  if (stat(("/sys/fs/cgroup/" + path).c_str(), &info) != 0) {
    throw std::runtime_error("cgroup /sys/fs/cgroup/" + path + " does not exist");
  }
  Ruleset r;
  NamedSet running;
  running.name = "cgroups_running";
  running.key = SetKey::cgroupv2;
  running.owner = {"", path};
  running.cgroups = {{path, static_cast<std::uint64_t>(info.st_ino)}};
  NamedSet stopped = running;
  stopped.name = "cgroups_stopped";
  stopped.owner = {"stopped.service", ""};
  stopped.cgroups.clear();
  r.sets = {running, stopped};
  r.chains.push_back(
      base_chain("output", Hook::output, 0, true,
                 {rule({SocketCgroup{2, "cgroups_running"}}, accept(), "in-cgroup"),
                  rule({SocketCgroup{1, "cgroups_running"}}, accept(), "in-cgroup"),
                  rule({SocketCgroup{2, "cgroups_stopped"}}, drop(), "not-running", true)}));
  return r;
}

Ruleset owned() {
  Ruleset r = basic();
  r.owner = true;
  r.sets.push_back(NamedSet{"s",
                            SetKey::inet_service,
                            false,
                            false,
                            false,
                            std::nullopt,
                            std::nullopt,
                            {{port_element(1), port_element(1)}}});
  return r;
}

Ruleset persistent() {
  Ruleset r = owned();
  r.persist = true;
  return r;
}

// A named interval set past 64 KiB of elements: the list is split like nft splits it.
Ruleset big_named_set() {
  NamedSet set{"big", SetKey::ipv4_addr, true, false, false, std::nullopt, std::nullopt, {}};
  for (std::uint32_t i = 0; i < 20000; ++i) {
    Address first;
    const std::uint32_t network = (10u << 24) | (i << 8);
    for (int b = 0; b < 4; ++b) first.bytes[b] = static_cast<std::uint8_t>(network >> (24 - 8 * b));
    Address last = first;
    last.bytes[3] = i % 2 == 0 ? 255 : 0;  // /24 prefixes and single addresses
    set.elements.push_back({first, last});
  }
  Ruleset r;
  r.sets.push_back(std::move(set));
  r.chains.push_back(base_chain("input", Hook::input, 0, true,
                                {rule({AddressInSet{Family::ipv4, false, "big"}}, drop())}));
  return r;
}

// NUMBER ipv4 /32 prefixes... used for timing: `portier_oracle million` builds 1M prefixes.
Ruleset prefixes(std::uint32_t count) {
  NamedSet set{"big", SetKey::ipv4_addr, true, false, false, std::nullopt, std::nullopt, {}};
  set.elements.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    // Every other /30 from 1.0.0.0 on: no two prefixes adjacent.
    const std::uint32_t network = (1u << 24) + i * 8;
    Address first;
    for (int b = 0; b < 4; ++b) first.bytes[b] = static_cast<std::uint8_t>(network >> (24 - 8 * b));
    Address last = first;
    last.bytes[3] = static_cast<std::uint8_t>(last.bytes[3] + 3);
    set.elements.push_back({first, last});
  }
  Ruleset r;
  r.sets.push_back(std::move(set));
  r.chains.push_back(base_chain("input", Hook::input, 0, true,
                                {rule({AddressInSet{Family::ipv4, false, "big"}}, drop())}));
  return r;
}

Ruleset empty_table() { return Ruleset{}; }

Ruleset other_table() {
  Ruleset r = basic();
  r.table = "portier-test";
  return r;
}

// Refused by the kernel: the jump target does not exist.
Ruleset broken() {
  Ruleset r = basic();
  r.chains[0].rules.push_back(rule({tcp(), ports({{80, 80}})}, jump("no_such_chain"), "broken"));
  return r;
}

Ruleset counted() {
  Ruleset r;
  r.chains.push_back(
      base_chain("input", Hook::input, 0, true,
                 {rule({LoopbackInterface{false}}, accept(), "lo-in", true), rule({}, accept())}));
  r.chains.push_back(base_chain("output", Hook::output, 0, true,
                                {rule({udp(), ports({{9, 9}})}, accept(), "discard-out", true),
                                 rule({LoopbackInterface{true}}, accept(), "lo-out")}));
  return r;
}

Verdict map_lookup(std::string map, std::vector<KeyField> key) {
  Verdict v = verdict(VerdictKind::map_lookup);
  v.map = std::move(map);
  v.map_key = std::move(key);
  return v;
}

AddressRange port_range(std::uint16_t first, std::uint16_t last) {
  return {port_element(first), port_element(last)};
}

// RuleMaps as merge_rules would make them, by hand: a concatenation of an IPv4 address
// and a port (a prefix, a port range), one of an IPv6 address and a source port, and a
// single port field (an rbtree map, its elements out of order, two of them adjacent:
// the end of one and the start of the next share a key), after a named set so
// that the map ids count on from the sets'. tests/oracle/maps.nft is its nft text.
Ruleset maps() {
  Ruleset r;
  r.sets.push_back(NamedSet{"blocklist",
                            SetKey::ipv4_addr,
                            true,
                            false,
                            false,
                            std::nullopt,
                            std::nullopt,
                            {range("192.0.2.0", "192.0.2.255")}});
  r.maps.push_back(
      RuleMap{"input/m1",
              {KeyField::ip_saddr, KeyField::dport},
              {{{single("10.0.0.1"), port_range(22, 22)}, VerdictKind::accept, "r1"},
               {{range("10.1.0.0", "10.1.0.255"), port_range(80, 90)}, VerdictKind::drop, "r2"}}});
  r.maps.push_back(
      RuleMap{"input/m2",
              {KeyField::ip6_daddr, KeyField::sport},
              {{{single("fd00::1"), port_range(1024, 65535)}, VerdictKind::accept, "a"},
               {{range("fd00::", "fd00::ffff:ffff:ffff:ffff"), port_range(53, 53)},
                VerdictKind::drop,
                "b"}}});
  r.maps.push_back(RuleMap{"input/m3",
                           {KeyField::dport},
                           {{{port_range(22, 22)}, VerdictKind::accept, "ssh"},
                            {{port_range(80, 90)}, VerdictKind::drop, "web"},
                            {{port_range(60000, 65535)}, VerdictKind::accept, "high"},
                            {{port_range(0, 5)}, VerdictKind::drop, "low"},
                            {{port_range(6, 10)}, VerdictKind::accept, "next-to-low"}}});
  r.maps.push_back(
      RuleMap{"output/m4",
              {KeyField::ip_daddr, KeyField::dport},
              {{{single("127.0.0.2"), port_range(9, 9)}, VerdictKind::accept, "disc2"},
               {{single("127.0.0.3"), port_range(9, 10)}, VerdictKind::drop, "disc3"}}});
  // The published chain's merged copies: the port before DNAT, from conntrack.
  r.maps.push_back(RuleMap{
      "input/m6",
      {KeyField::ip_saddr, KeyField::ct_original_dport},
      {{{single("10.0.0.1"), port_range(8080, 8080)}, VerdictKind::accept, "pub1"},
       {{range("10.2.0.0", "10.2.0.255"), port_range(8000, 8010)}, VerdictKind::drop, "pub2"}}});
  r.chains.push_back(base_chain(
      "input", Hook::input, 10, true,
      {rule({AddressInSet{Family::ipv4, false, "blocklist"}}, drop(), "blocked"),
       rule({tcp()}, map_lookup("input/m1", {KeyField::ip_saddr, KeyField::dport}),
            "merged r1 to r2"),
       rule({tcp_udp()}, map_lookup("input/m2", {KeyField::ip6_daddr, KeyField::sport}),
            "merged a to b"),
       rule({tcp_udp()}, map_lookup("input/m3", {KeyField::dport}), "merged ssh to low", true),
       rule({tcp()}, map_lookup("input/m6", {KeyField::ip_saddr, KeyField::ct_original_dport}),
            "merged pub1 to pub2"),
       // A published chain's copy sharing the input map (share_maps): m1's key is a dport.
       rule({tcp()}, map_lookup("input/m1", {KeyField::ip_saddr, KeyField::ct_original_dport}),
            "shared r1 to r2")}));
  r.chains.push_back(base_chain(
      "output", Hook::output, 0, true,
      {rule({udp()}, map_lookup("output/m4", {KeyField::ip_daddr, KeyField::dport}), "discard")}));
  return r;
}

// What a reload brings over basic and maps: the same chains (so refill keeps them in
// place), other rules, a set added, and over maps a set gone, a map gone, a map's elements
// changed and another map added.
Ruleset basic_refilled() {
  Ruleset r = basic();
  r.sets.push_back(NamedSet{"admins",
                            SetKey::ipv4_addr,
                            true,
                            false,
                            false,
                            std::nullopt,
                            std::nullopt,
                            {range("192.0.2.0", "192.0.2.127")}});
  Chain& input = r.chains[0];
  input.rules.erase(input.rules.begin() + 2);  // invalid
  input.rules.push_back(
      rule({AddressInSet{Family::ipv4, false, "admins"}, tcp(), ports({{22, 23}})}, accept(),
           "admins", true));
  return r;
}

Ruleset maps_refilled() {
  Ruleset r = maps();
  r.sets.clear();  // blocklist
  r.sets.push_back(NamedSet{"allowlist",
                            SetKey::ipv6_addr,
                            true,
                            false,
                            false,
                            std::nullopt,
                            std::nullopt,
                            {range("fd00::", "fd00::ff")}});
  r.maps.erase(r.maps.begin() + 1);  // input/m2
  r.maps[1].elements.pop_back();     // input/m3 without next-to-low
  r.maps[1].elements[0].verdict = VerdictKind::drop;
  r.maps.push_back(
      RuleMap{"output/m5", {KeyField::dport}, {{{port_range(7, 7)}, VerdictKind::accept, "echo"}}});
  Chain& input = r.chains[0];
  input.rules.erase(input.rules.begin(), input.rules.begin() + 1);  // blocked
  input.rules.erase(input.rules.begin() + 1);                       // merged a to b
  input.rules.insert(input.rules.begin(),
                     rule({AddressInSet{Family::ipv6, true, "allowlist"}}, accept(), "allowed"));
  r.chains[1].rules.push_back(
      rule({udp()}, map_lookup("output/m5", {KeyField::dport}), "echo-map"));
  return r;
}

const std::map<std::string, std::function<Ruleset()>>& cases() {
  static const std::map<std::string, std::function<Ruleset()>> all = {
      {"basic", basic},
      {"port-shapes", port_shapes},
      {"verdicts", verdicts_and_chains},
      {"ct-states", ct_states},
      {"big-sets", big_sets},
      {"empty", empty_table},
      {"other-table", other_table},
      {"broken", broken},
      {"counted", counted},
      {"many-rules", many_rules},
      {"interfaces", interfaces},
      {"addresses", addresses},
      {"neighbours", neighbours},
      {"protocols", protocols},
      {"statements", statements},
      {"nat", nat},
      {"priorities", priorities},
      {"cgroup", cgroup},
      {"owner", owned},
      {"persist", persistent},
      {"big-named-set", big_named_set},
      {"maps", maps},
      {"basic-refilled", basic_refilled},
      {"maps-refilled", maps_refilled},
      {"million", [] { return prefixes(1000000); }},
  };
  return all;
}

Ruleset find_case(const std::string& name) {
  auto found = cases().find(name);
  if (found == cases().end()) throw std::invalid_argument("no such case: " + name);
  return found->second();
}

int run(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  const std::string argument = argc > 2 ? argv[2] : "";
  if (command == "cases") {
    for (const auto& [name, make] : cases()) std::cout << name << '\n';
    return 0;
  }
  if (command == "render" && argc == 3) {
    std::cout << portier::render_nft_replace(find_case(argument));
    return 0;
  }
  if (command == "dump" && argc == 3) {
    const portier::EncodedBatch batch = portier::encode_replace_batch(find_case(argument), 0);
    mnl_nlmsg_fprintf(stdout, batch.bytes.data(), batch.bytes.size(), sizeof(nfgenmsg));
    return 0;
  }
  if (command == "apply" && (argc == 3 || argc == 4)) {
    portier::NetlinkKernel kernel;
    // CASE,CASE,...: one after the other through the same socket, as the daemon reloads.
    for (std::size_t start = 0; start <= argument.size();) {
      const std::size_t comma = std::min(argument.find(',', start), argument.size());
      kernel.apply(find_case(argument.substr(start, comma - start)));
      start = comma + 1;
    }
    if (argc == 4) return std::system(argv[3]) == 0 ? 0 : 1;
    return 0;
  }
  if (command == "refill" && (argc == 4 || argc == 5)) {
    // The kernel holds LOADED (an earlier `apply LOADED`): NetlinkKernel::refill() of NEXT.
    const Ruleset loaded = find_case(argument);
    const Ruleset next = find_case(argv[3]);
    if (!portier::replaces_in_place(loaded, next))
      throw std::invalid_argument(argument + " and " + argv[3] + " differ in their chains");
    portier::NetlinkKernel kernel;
    kernel.refill(loaded, next);
    if (argc == 5) return std::system(argv[4]) == 0 ? 0 : 1;
    return 0;
  }
  if (command == "handles" && argc == 3) {
    portier::NetlinkKernel kernel;
    const Ruleset ruleset = find_case(argument);
    const portier::RuleHandles handles = kernel.apply(ruleset);
    for (std::size_t c = 0; c < ruleset.chains.size(); ++c) {
      for (std::uint64_t handle : handles.at(c)) {
        std::cout << ruleset.chains[c].name << ' ' << handle << '\n';
      }
    }
    return 0;
  }
  if (command == "edits" && argc == 3) return portier::oracle::run_edits(argument);
  if (command == "watch" && argc == 2) return portier::oracle::run_watch();
  if (command == "time-edits") {
    return portier::oracle::run_time_edits(std::vector<std::string>(argv + 2, argv + argc));
  }
  if (command == "counters" && argc >= 3) {
    portier::NetlinkKernel kernel;
    const std::vector<std::string> maps(argv + 3, argv + argc);
    for (const auto& counter : kernel.read_counters(argument, maps)) {
      std::cout << counter.chain << '\t' << counter.comment << '\t' << counter.packets << '\t'
                << counter.bytes << '\n';
    }
    return 0;
  }
  if (command == "map-edit" && argc == 4) {
    // Takes out (remove) or puts back (add) the element named ELEMENT of a map of the
    // `maps` case, as the daemon toggles a merged rule.
    const Ruleset ruleset = maps();
    const std::string element = argv[3];
    for (const RuleMap& map : ruleset.maps) {
      for (const MapElement& e : map.elements) {
        if (e.comment != element) continue;
        portier::TableEdit edit;
        edit.maps.push_back({map.name, map.key, {}, {}});
        (argument == "add" ? edit.maps[0].add : edit.maps[0].remove).push_back(e);
        portier::NetlinkKernel kernel;
        kernel.edit(ruleset, edit);
        return 0;
      }
    }
    throw std::invalid_argument("no map element " + element + " in the maps case");
  }
  if (command == "time" && argc == 3) {
    // Building the IR is not the encoder's work: time encode_replace_batch() alone.
    const Ruleset ruleset = find_case(argument);
    const auto start = std::chrono::steady_clock::now();
    const portier::EncodedBatch batch = portier::encode_replace_batch(ruleset, 0);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    std::cout << "encoded " << batch.messages.size() << " messages, " << batch.bytes.size()
              << " bytes in " << took.count() << " s\n";
    return 0;
  }
  if (command == "exists" && argc == 3) {
    portier::NetlinkKernel kernel;
    return kernel.table_exists(argument) ? 0 : 1;
  }
  std::cerr << "usage: portier_oracle cases | render CASE | apply CASE [CMD] | counters TABLE "
               "[MAP...] | map-edit add|remove ELEMENT | "
               "exists TABLE | dump CASE | time CASE | handles CASE | edits DIR | watch | "
               "time-edits [N...]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& failure) {
    std::cerr << "portier_oracle: " << failure.what() << '\n';
    return 3;
  }
}
