#include <doctest/doctest.h>

#include "compile_policy.h"
#include "explain.h"
#include "parse_policy.h"
#include "render_nft.h"
#include "split_chains.h"

using namespace portier;

namespace {

ir::Rule counted(ir::VerdictKind kind, std::string comment) {
  ir::Rule rule;
  rule.verdict.kind = kind;
  rule.comment = std::move(comment);
  rule.counter = true;
  return rule;
}

}  // namespace

TEST_CASE("a short chain stays whole") {
  ir::Ruleset ruleset;
  ruleset.chains.push_back({"input", std::nullopt, {}});
  for (int i = 0; i < 10; ++i)
    ruleset.chains[0].rules.push_back(counted(ir::VerdictKind::accept, "r"));
  ir::Ruleset before = ruleset;
  split_long_chains(ruleset, 10, 4);
  CHECK(ruleset == before);
}

TEST_CASE("a long chain is cut into parts around the rules that must stay") {
  ir::Ruleset ruleset;
  ruleset.chains.push_back({"input", std::nullopt, {}});
  auto& rules = ruleset.chains[0].rules;
  rules.push_back(
      counted(ir::VerdictKind::go_to, "dispatch"));  // stays: goto means another thing in a part
  for (int i = 0; i < 5; ++i)
    rules.push_back(counted(ir::VerdictKind::accept, "a" + std::to_string(i)));
  rules.push_back(counted(ir::VerdictKind::return_, "back"));  // stays
  rules.push_back(counted(ir::VerdictKind::drop, "lonely"));   // one rule: no part for it
  rules.push_back(counted(ir::VerdictKind::return_, "back2"));
  split_long_chains(ruleset, 4, 2);
  REQUIRE(ruleset.chains.size() == 4);
  CHECK(ruleset.chains[0].name == "input/1");
  CHECK(ruleset.chains[1].name == "input/2");
  CHECK(ruleset.chains[2].name == "input/3");
  CHECK(ruleset.chains[0].rules.size() == 2);
  CHECK(ruleset.chains[0].rules[0].comment == "a0");
  CHECK(ruleset.chains[2].rules.size() == 1);
  CHECK(ruleset.chains[2].rules[0].comment == "a4");
  const ir::Chain& input = ruleset.chains[3];
  REQUIRE(input.rules.size() == 7);
  CHECK(input.rules[0].comment == "dispatch");
  for (int part = 1; part <= 3; ++part) {
    CHECK(input.rules[static_cast<std::size_t>(part)].verdict.kind == ir::VerdictKind::jump);
    CHECK(input.rules[static_cast<std::size_t>(part)].verdict.chain ==
          "input/" + std::to_string(part));
  }
  CHECK(input.rules[4].comment == "back");
  CHECK(input.rules[5].comment == "lonely");
  CHECK(input.rules[6].comment == "back2");
}

TEST_CASE(
    "a 2,000-rule policy compiles into parts, renders for nft, and decides packets as before") {
  // Logged rules: runs of plain rules of one shape would become maps (merge_rules.h).
  std::string text = "[policy]\ninput = 'drop'\n[zone.wan]\ninterfaces = ['wan0']\n";
  for (int i = 0; i < 2000; ++i) {
    text += "[[rule]]\nname = 'r" + std::to_string(i) + "'\nlog = true\nprotocols = 'tcp'\nports = [" +
            std::to_string(1000 + i) + "]\nfrom = '" + (i % 2 ? "wan" : "10.0.0.0/8") +
            "'\naction = '" + (i % 7 == 0 ? "drop" : "accept") + "'\n";
  }
  ParsedPolicy parsed = parse_policy(text, "big.toml", SystemTables{});
  REQUIRE(parsed.ok());
  ir::Ruleset ruleset = compile_policy(parsed.policy);
  std::size_t longest = 0, parts = 0;
  for (const ir::Chain& chain : ruleset.chains) {
    longest = std::max(longest, chain.rules.size());
    if (chain.name.find('/') != std::string::npos) ++parts;
  }
  CHECK(longest <= kSplitChainsAbove);
  CHECK(parts >= 4);
  CHECK(render_nft(ruleset).find("jump input/1") != std::string::npos);
  // The verdicts and deciding rules a whole chain would give, rule for rule.
  for (int port : {1000, 1001, 1007, 1500, 1999, 2999}) {
    for (const char* source : {"10.1.2.3", "192.0.2.1"}) {
      for (bool from_wan : {true, false}) {
        std::vector<std::string> words{"tcp", std::string(source) + ":40000", "->",
                                       std::to_string(port)};
        if (from_wan) words.insert(words.end(), {"in", "wan"});
        std::string error;
        std::optional<PacketShape> packet = parse_packet_shape(words, parsed.policy, error);
        REQUIRE_MESSAGE(packet, error);
        ExplainResult result = explain_packet(ruleset, *packet);
        int i = port - 1000;
        bool matches = i < 2000 && (i % 2 ? from_wan : std::string(source) == "10.1.2.3");
        std::string want = matches ? (i % 7 == 0 ? "drop" : "accept") : "drop";
        CHECK_MESSAGE(result.verdict == want,
                      source << " -> " << port << (from_wan ? " in wan" : ""));
        if (matches) CHECK(result.decided_by == "r" + std::to_string(i));
        if (matches) CHECK(result.chain.find('/') != std::string::npos);
      }
    }
  }
}
