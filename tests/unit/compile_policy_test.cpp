#include <doctest/doctest.h>

#include "compile_policy.h"
#include "parse_policy.h"

using namespace portier;

namespace {

Policy policy_from(std::string_view text) {
  ParsedPolicy parsed = parse_policy(text, "c.toml", SystemTables{ServiceTable::parse("ssh 22/tcp\n"), {}});
  REQUIRE_MESSAGE(parsed.ok(), parsed.report());
  return parsed.policy;
}

const ir::Chain& chain(const ir::Ruleset& ruleset, std::string_view name) {
  for (const ir::Chain& c : ruleset.chains)
    if (c.name == name) return c;
  FAIL("no chain " << name);
  throw;
}

}  // namespace

TEST_CASE("merge_port_ranges sorts and joins overlapping and adjacent ranges") {
  CHECK(merge_port_ranges({{445, 445}, {137, 139}, {138, 140}, {141, 141}, {22, 22}}) ==
        std::vector<ir::PortRange>{{22, 22}, {137, 141}, {445, 445}});
  CHECK(merge_port_ranges({{65535, 65535}, {0, 65534}}) == std::vector<ir::PortRange>{{0, 65535}});
}

TEST_CASE("the fixed rules come first and the defaults become chain policies") {
  ir::Ruleset ruleset = compile_policy(policy_from("[policy]\ninput='drop'\noutput='accept'\n"));
  CHECK(ruleset.table == "portier");
  REQUIRE(ruleset.chains.size() == 2);  // no reject chain when nothing rejects

  const ir::Chain& input = chain(ruleset, "input");
  REQUIRE(input.base);
  CHECK(input.base->hook == ir::Hook::input);
  CHECK_FALSE(input.base->policy_accept);
  REQUIRE(input.rules.size() == 3);
  CHECK(input.rules[0].matches == std::vector<ir::Match>{ir::LoopbackInterface{false}});
  CHECK(input.rules[1].matches ==
        std::vector<ir::Match>{ir::CtState{ir::ct_established | ir::ct_related}});
  CHECK(input.rules[1].verdict.kind == ir::VerdictKind::accept);
  CHECK(input.rules[2].matches == std::vector<ir::Match>{ir::CtState{ir::ct_invalid}});
  CHECK(input.rules[2].verdict.kind == ir::VerdictKind::drop);

  const ir::Chain& output = chain(ruleset, "output");
  CHECK(output.base->policy_accept);
  CHECK(output.rules[0].matches == std::vector<ir::Match>{ir::LoopbackInterface{true}});
}

TEST_CASE("a rule over tcp and udp is one kernel rule with merged ports, counter and name") {
  ir::Ruleset ruleset = compile_policy(policy_from(
      "[[rule]]\nname='netbios-in'\nprotocols=['udp','tcp']\nports=['139','137-138']\n"
      "action='drop'\n"));
  const ir::Chain& input = chain(ruleset, "input");
  REQUIRE(input.rules.size() == 4);
  const ir::Rule& rule = input.rules[3];
  CHECK(rule.matches ==
        std::vector<ir::Match>{ir::L4ProtoIn{{ir::L4Proto::tcp, ir::L4Proto::udp}},
                               ir::DestPortIn{{{137, 139}}}});
  CHECK(rule.counter);
  CHECK(rule.verdict == ir::Verdict{ir::VerdictKind::drop, {}});
  CHECK(rule.comment == "netbios-in");
}

TEST_CASE("rules go to their direction's chain in file order; disabled rules are left out") {
  ir::Ruleset ruleset = compile_policy(policy_from(
      "[[rule]]\nname='a'\nprotocols='tcp'\nports='ssh'\naction='accept'\n"
      "[[rule]]\nname='b'\ndirection='out'\naction='drop'\n"
      "[[rule]]\nname='c'\nprotocols='udp'\naction='accept'\nenabled=false\n"
      "[[rule]]\nname='d'\nprotocols='udp'\naction='accept'\n"));
  const ir::Chain& input = chain(ruleset, "input");
  REQUIRE(input.rules.size() == 5);
  CHECK(input.rules[3].comment == "a");
  CHECK(input.rules[3].matches[1] == ir::Match{ir::DestPortIn{{{22, 22}}}});
  CHECK(input.rules[4].comment == "d");
  const ir::Chain& output = chain(ruleset, "output");
  REQUIRE(output.rules.size() == 3);
  CHECK(output.rules[2].comment == "b");
  CHECK(output.rules[2].matches.empty());
}

TEST_CASE("reject answers TCP with a reset and the rest with port unreachable") {
  ir::Ruleset ruleset = compile_policy(policy_from(
      "[policy]\ninput='reject'\n"
      "[[rule]]\nname='t'\nprotocols='tcp'\naction='reject'\n"
      "[[rule]]\nname='u'\nprotocols='udp'\naction='reject'\n"
      "[[rule]]\nname='both'\nprotocols=['tcp','udp']\nports=[1]\naction='reject'\n"));
  REQUIRE(ruleset.chains.size() == 3);
  const ir::Chain& reject = ruleset.chains[0];  // before the chains that jump to it
  CHECK(reject.name == kRejectChain);
  CHECK_FALSE(reject.base);
  REQUIRE(reject.rules.size() == 2);
  CHECK(reject.rules[0].verdict.kind == ir::VerdictKind::reject_tcp_reset);
  CHECK(reject.rules[0].matches == std::vector<ir::Match>{ir::L4ProtoIn{{ir::L4Proto::tcp}}});
  CHECK(reject.rules[1].verdict.kind == ir::VerdictKind::reject_icmpx_port_unreachable);

  const ir::Chain& input = chain(ruleset, "input");
  CHECK_FALSE(input.base->policy_accept);  // reject defaults drop should the jump not happen
  REQUIRE(input.rules.size() == 7);
  CHECK(input.rules[3].verdict.kind == ir::VerdictKind::reject_tcp_reset);
  CHECK(input.rules[4].verdict.kind == ir::VerdictKind::reject_icmpx_port_unreachable);
  CHECK(input.rules[5].verdict == ir::Verdict{ir::VerdictKind::jump, kRejectChain});
  CHECK(input.rules[6].matches.empty());
  CHECK(input.rules[6].verdict == ir::Verdict{ir::VerdictKind::jump, kRejectChain});
}
