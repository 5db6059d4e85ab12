// Test helper (needs root for everything but `render`/`cases`):
//   portier_oracle cases              names of the built-in rulesets
//   portier_oracle render CASE        render_nft_replace() of the case
//   portier_oracle apply CASE         NetlinkKernel::apply() of the case
//   portier_oracle counters TABLE     NetlinkKernel::read_counters(), one rule per line
//   portier_oracle exists TABLE       exit status 0 if the table exists, 1 if not
//   portier_oracle dump CASE          encode_replace_batch(CASE, 0) as libmnl prints it,
//                                     the format of `nft --debug=mnl`
#include <cstdio>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <string>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>

#include "encode_batch.h"
#include "netlink_kernel.h"
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

Verdict accept() { return {VerdictKind::accept, {}}; }
Verdict drop() { return {VerdictKind::drop, {}}; }
Verdict jump(std::string chain) { return {VerdictKind::jump, std::move(chain)}; }

L4ProtoIn tcp() { return L4ProtoIn{{L4Proto::tcp}}; }
L4ProtoIn udp() { return L4ProtoIn{{L4Proto::udp}}; }
L4ProtoIn tcp_udp() { return L4ProtoIn{{L4Proto::tcp, L4Proto::udp}}; }
DestPortIn ports(std::vector<PortRange> ranges) { return DestPortIn{std::move(ranges)}; }

Chain base_chain(std::string name, Hook hook, std::int32_t priority, bool policy_accept,
                 std::vector<Rule> rules) {
  return Chain{std::move(name), BaseChain{hook, priority, policy_accept}, std::move(rules)};
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
       rule({tcp(), ports({{113, 113}})}, {VerdictKind::reject_tcp_reset, {}}, "ident"),
       rule({tcp()}, {VerdictKind::reject_tcp_reset, {}}),
       rule({}, {VerdictKind::reject_icmpx_port_unreachable, {}}, "final-reject", true)}));
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
  if (command == "apply" && argc == 3) {
    portier::NetlinkKernel kernel;
    kernel.apply(find_case(argument));
    return 0;
  }
  if (command == "counters" && argc == 3) {
    portier::NetlinkKernel kernel;
    for (const auto& counter : kernel.read_counters(argument)) {
      std::cout << counter.chain << '\t' << counter.comment << '\t' << counter.packets << '\t'
                << counter.bytes << '\n';
    }
    return 0;
  }
  if (command == "exists" && argc == 3) {
    portier::NetlinkKernel kernel;
    return kernel.table_exists(argument) ? 0 : 1;
  }
  std::cerr << "usage: portier_oracle cases | render CASE | apply CASE | counters TABLE | "
               "exists TABLE | dump CASE\n";
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
