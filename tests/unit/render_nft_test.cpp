#include <doctest/doctest.h>

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
