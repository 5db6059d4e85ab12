#include "merge_rules.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "compile_policy.h"
#include "explain.h"
#include "parse_policy.h"
#include "render_nft.h"
#include "split_chains.h"

using namespace portier;

namespace {

ir::Ruleset compiled(const std::string& text, bool merge) {
  ParsedPolicy parsed = parse_policy(text, "merge.toml", SystemTables{});
  REQUIRE_MESSAGE(parsed.ok(), text);
  // Without the neighbours' zones: their copies of input rules (in `published`, merged
  // into maps of their own) would double every map here; the last test case has them.
  std::erase_if(parsed.policy.zones, [](const Zone& zone) { return zone.builtin; });
  CompileOptions options;
  options.merge_rules = merge;
  return compile_policy(parsed.policy, options);
}

std::string rule_text(const std::string& name, const std::string& body) {
  return "[[rule]]\nname = '" + name + "'\n" + body;
}

bool boxes_overlap(const ir::MapElement& a, const ir::MapElement& b) {
  for (std::size_t f = 0; f < a.key.size(); ++f)
    if (b.key[f].last < a.key[f].first || a.key[f].last < b.key[f].first) return false;
  return true;
}

}  // namespace

TEST_CASE("a run of same-shape rules becomes one map lookup with an element per rule") {
  std::string text = "[policy]\ninput = 'drop'\n";
  text +=
      rule_text("ssh", "protocols = 'tcp'\nports = [22]\nfrom = '10.0.0.1'\naction = 'accept'\n");
  text += rule_text(
      "web", "protocols = 'tcp'\nports = ['80-90']\nfrom = '10.1.0.0/24'\naction = 'drop'\n");
  text +=
      rule_text("dns", "protocols = 'tcp'\nports = [53]\nfrom = '10.0.0.2'\naction = 'accept'\n");
  text +=
      rule_text("smtp", "protocols = 'tcp'\nports = [25]\nfrom = '10.0.0.3'\naction = 'accept'\n");
  text += rule_text("other", "protocols = 'udp'\nports = [25]\naction = 'accept'\n");
  const ir::Ruleset ruleset = compiled(text, true);
  REQUIRE(ruleset.maps.size() == 1);
  const ir::RuleMap& map = ruleset.maps[0];
  CHECK(map.name == "input/m1");
  CHECK(map.key == std::vector<ir::KeyField>{ir::KeyField::ip_saddr, ir::KeyField::dport});
  REQUIRE(map.elements.size() == 4);
  CHECK(map.elements[1].comment == "web");
  CHECK(map.elements[1].verdict == ir::VerdictKind::drop);
  CHECK(map.elements[1].key[1] == ir::AddressRange{ir::port_element(80), ir::port_element(90)});
  const std::string nft = render_nft(ruleset);
  CHECK(nft.find("\tmap input/m1 {\n\t\ttype ipv4_addr . inet_service : verdict\n\t\tflags "
                 "interval\n\t\tcounter\n\t\telements = { 10.0.0.1 . 22 comment \"ssh\" : accept,\n"
                 "\t\t\t     10.1.0.0/24 . 80-90 comment \"web\" : drop,") != std::string::npos);
  CHECK(nft.find("ip saddr . tcp dport vmap @input/m1 comment \"rules ssh to smtp\"") !=
        std::string::npos);
  // The udp rule has another shape and stays a rule of its own.
  CHECK(nft.find("udp dport 25 counter accept comment \"other\"") != std::string::npos);
}

TEST_CASE("runs shorter than kMergeRunsFrom, logged, limited and overlapping rules stay rules") {
  std::string text = "[policy]\ninput = 'drop'\n";
  for (int i = 0; i < 3; ++i)
    text += rule_text(
        "short" + std::to_string(i),
        "protocols = 'tcp'\nports = [" + std::to_string(100 + i) + "]\naction = 'accept'\n");
  text += rule_text("logged", "protocols = 'udp'\nports = [1]\naction = 'accept'\nlog = true\n");
  for (int i = 0; i < 4; ++i)
    text += rule_text("limited" + std::to_string(i),
                      "protocols = 'udp'\nports = [" + std::to_string(200 + i) +
                          "]\naction = 'accept'\nlimit = '5/minute'\n");
  // Overlapping ports: never two of them in one map.
  for (int i = 0; i < 4; ++i)
    text += rule_text("wide" + std::to_string(i),
                      "protocols = 'sctp'\nports = ['1-100']\naction = 'accept'\n");
  const ir::Ruleset ruleset = compiled(text, true);
  CHECK(ruleset.maps.empty());
  CHECK(ruleset == compiled(text, false));
}

TEST_CASE("without_owners takes a disabled rule's elements out of its map") {
  std::string text;
  for (int i = 0; i < 6; ++i)
    text +=
        rule_text("p" + std::to_string(i), "protocols = ['tcp', 'udp']\nports = [" +
                                               std::to_string(1000 + i) + "]\naction = 'accept'\n");
  const ir::Ruleset full = compiled(text, true);
  REQUIRE(full.maps.size() == 1);
  CHECK(full.maps[0].key == std::vector<ir::KeyField>{ir::KeyField::dport});
  CHECK(render_nft(full).find("meta l4proto @l4/tcp_udp th dport vmap @input/m1") !=
        std::string::npos);
  const ir::Ruleset some = without_owners(full, {"p1", "p4"});
  REQUIRE(some.maps[0].elements.size() == 4);
  for (const ir::MapElement& element : some.maps[0].elements)
    CHECK((element.comment != "p1" && element.comment != "p4"));
  CHECK(some.chains == full.chains);  // the lookup rule stays whatever is enabled
}

TEST_CASE(
    "merged rulesets decide every packet as the unmerged ones, rule for rule (random policies)") {
  std::mt19937 random(2026);
  const std::vector<std::string> sources{"10.0.0.1",  "10.0.0.2", "10.0.1.0/24", "10.0.0.0/16",
                                         "192.0.2.7", "fd00::1",  "fd00::/64",   "2001:db8::9"};
  const std::vector<std::string> ports{"22", "80", "'80-89'", "443", "'1000-1999'", "53", "8080"};
  const std::vector<std::string> actions{"accept", "accept", "drop", "reject"};
  std::size_t merged_elements = 0;
  for (int round = 0; round < 20; ++round) {
    std::string text =
        "[policy]\ninput = 'drop'\noutput = 'accept'\n[zone.lan]\ninterfaces = ['lan0']\n";
    const int count = 40 + static_cast<int>(random() % 200);
    for (int i = 0; i < count; ++i) {
      std::string body = "action = '" + actions[random() % actions.size()] + "'\n";
      // Mostly one shape (tcp from an address to a port), so that runs form and break.
      const bool common = random() % 10 < 7;
      const auto protocol = common ? 0 : random() % 3;
      body += protocol == 0   ? "protocols = 'tcp'\n"
              : protocol == 1 ? "protocols = 'udp'\n"
                              : "protocols = ['tcp', 'udp']\n";
      if (common || random() % 2) {
        body += "ports = [" + std::to_string(20 + random() % 40) + "]\n";
      } else {
        body += "ports = [" + ports[random() % ports.size()] + (random() % 5 == 0 ? ", 7000" : "") +
                "]\n";
      }
      if (common) {
        body += "from = '10.0.0." + std::to_string(random() % 30) + "'\n";
      } else if (random() % 3 != 0) {
        body += "from = '" + sources[random() % sources.size()] + "'\n";
      }
      if (random() % 9 == 0 && body.find("from = '") == std::string::npos) body += "from = 'lan'\n";
      if (random() % 11 == 0 && body.find("'lan'") == std::string::npos)
        body += "direction = 'out'\n";
      if (random() % 13 == 0) body += "log = true\n";
      text += rule_text("r" + std::to_string(i), body);
    }
    ParsedPolicy parsed = parse_policy(text, "random.toml", SystemTables{});
    REQUIRE_MESSAGE(parsed.ok(), text);
    CompileOptions unmerged_options;
    unmerged_options.merge_rules = false;
    const ir::Ruleset merged = compile_policy(parsed.policy);
    const ir::Ruleset unmerged = compile_policy(parsed.policy, unmerged_options);
    REQUIRE(!render_nft(merged).empty());
    for (const ir::RuleMap& map : merged.maps) {
      merged_elements += map.elements.size();
      CHECK(map.elements.size() <= kMapElementsAtMost);
      for (std::size_t a = 0; a < map.elements.size(); ++a)
        for (std::size_t b = a + 1; b < map.elements.size(); ++b)
          REQUIRE_FALSE(boxes_overlap(map.elements[a], map.elements[b]));
    }
    const std::string near = "10.0.0." + std::to_string(random() % 30);
    const std::vector<std::string> addresses{
        near,        near,           near,      "10.0.0.1", "10.0.0.2",    "10.0.1.5",   "10.0.9.9",
        "192.0.2.7", "198.51.100.1", "fd00::1", "fd00::77", "2001:db8::9", "2001:db8::1"};
    for (int probe = 0; probe < 300; ++probe) {
      const char* protocol = random() % 2 ? "tcp" : "udp";
      const std::string& address = addresses[random() % addresses.size()];
      const bool v6 = address.find(':') != std::string::npos;
      const std::string port = std::to_string(
          random() % 2 ? 20 + random() % 40
                       : std::vector<int>{22, 80, 85, 443, 1500, 53, 8080, 7000, 9}[random() % 9]);
      std::vector<std::string> words{protocol, v6 ? "[" + address + "]:4000" : address + ":4000",
                                     "->", port};
      if (random() % 2) words.insert(words.end(), {"in", "lan"});
      std::string error;
      std::optional<PacketShape> packet = parse_packet_shape(words, parsed.policy, error);
      REQUIRE_MESSAGE(packet, error);
      for (Direction direction : {Direction::in, Direction::out}) {
        packet->direction = direction;
        const ExplainResult want = explain_packet(unmerged, *packet);
        const ExplainResult got = explain_packet(merged, *packet);
        REQUIRE_MESSAGE(got.verdict == want.verdict, "round " << round << " probe " << probe);
        REQUIRE_MESSAGE(got.decided_by == want.decided_by, "round " << round << " probe " << probe);
      }
    }
  }
  MESSAGE(merged_elements << " rule elements in maps over 20 policies");
  CHECK(merged_elements > 200);  // the comparison covered merged rules, not only plain ones
}

TEST_CASE("a long run fills maps of at most kMapElementsAtMost elements, in rule order") {
  std::string text;
  for (int i = 0; i < 300; ++i)
    text += rule_text("n" + std::to_string(i),
                      "protocols = 'tcp'\nports = [" + std::to_string(2000 + i) +
                          "]\nfrom = '10.0." + std::to_string(i / 250) + "." +
                          std::to_string(i % 250) + "'\naction = 'accept'\n");
  const ir::Ruleset ruleset = compiled(text, true);
  REQUIRE(ruleset.maps.size() == (300 + kMapElementsAtMost - 1) / kMapElementsAtMost);
  CHECK(ruleset.maps[0].elements.size() == kMapElementsAtMost);
  CHECK(ruleset.maps.back().elements.back().comment == "n299");
  CHECK(ruleset.maps[1].elements.front().comment == "n" + std::to_string(kMapElementsAtMost));
}

namespace {

ir::Address v4(const std::string& text) {
  ir::Address address;
  REQUIRE(inet_pton(AF_INET, text.c_str(), address.bytes.data()) == 1);
  return address;
}

}  // namespace

TEST_CASE(
    "the published chain's copies merge too, looking up the input map by ct original proto-dst, "
    "and decide as before") {
  // The neighbours' zones are kept here: their `published` chain holds a copy of each
  // input port rule for connections another table DNATed (compile_neighbours.h).
  std::string text = "[policy]\ninput = 'drop'\n";
  for (int i = 0; i < 12; ++i)
    text += rule_text("r" + std::to_string(i),
                      "protocols = 'tcp'\nports = [" + std::to_string(8000 + i * 2) +
                          "]\nfrom = '10.0.0." + std::to_string(i) + "'\naction = '" +
                          (i % 3 ? "accept" : "drop") + "'\n");
  ParsedPolicy parsed = parse_policy(text, "merge.toml", SystemTables{});
  REQUIRE_MESSAGE(parsed.ok(), parsed.report());
  CompileOptions unmerged_options;
  unmerged_options.merge_rules = false;
  const ir::Ruleset merged = compile_policy(parsed.policy);
  const ir::Ruleset unmerged = compile_policy(parsed.policy, unmerged_options);
  // One map, the input chain's, looked up by both chains (share_maps): the copy's map held
  // the same 12 elements.
  REQUIRE(merged.maps.size() == 1);
  const ir::RuleMap& map = merged.maps[0];
  CHECK(map.name == "input/m1");
  CHECK(map.key == std::vector<ir::KeyField>{ir::KeyField::ip_saddr, ir::KeyField::dport});
  CHECK(map.elements.size() == 12);
  const ir::Rule* published_lookup = nullptr;
  for (const ir::Chain& chain : merged.chains)
    if (chain.name == "published")
      for (const ir::Rule& rule : chain.rules)
        if (rule.verdict.kind == ir::VerdictKind::map_lookup) published_lookup = &rule;
  REQUIRE(published_lookup != nullptr);
  CHECK(published_lookup->verdict.map == "input/m1");
  CHECK(published_lookup->verdict.map_key ==
        std::vector<ir::KeyField>{ir::KeyField::ip_saddr, ir::KeyField::ct_original_dport});
  const std::string nft = render_nft(merged);
  CHECK(nft.find("meta l4proto tcp ip saddr . ct original proto-dst vmap @input/m1"
                 " comment \"rules r0 to r11\"") != std::string::npos);
  CHECK(nft.find("meta l4proto tcp ip saddr . tcp dport vmap @input/m1") != std::string::npos);
  CHECK(nft.find("ct original proto-dst 8000 counter") == std::string::npos);

  // DNATed connections from each rule's address (and another), to each rule's original
  // port (and ports between them), with and without a DNAT: the same verdict and rule.
  std::size_t decided_by_rules = 0;
  for (int source = 0; source < 14; ++source)
    for (std::uint16_t port = 7999; port < 8026; ++port)
      for (bool dnat : {true, false}) {
        PacketShape packet;
        packet.direction = Direction::forward;
        packet.protocol = ir::L4Proto::tcp;
        packet.source = v4("10.0.0." + std::to_string(source));
        packet.destination = v4("172.17.0.2");
        packet.source_port = 40000;
        packet.destination_port = 80;  // the container's port, after DNAT
        packet.in_interface = "eth0";
        packet.out_interface = "docker0";
        if (dnat) packet.dnat_original = PacketShape::Original{std::nullopt, port};
        const ExplainResult want = explain_packet(unmerged, packet);
        const ExplainResult got = explain_packet(merged, packet);
        REQUIRE_MESSAGE(got.verdict == want.verdict, source << " -> " << port << " dnat " << dnat);
        REQUIRE_MESSAGE(got.decided_by == want.decided_by,
                        source << " -> " << port << " dnat " << dnat);
        decided_by_rules += want.decided_by.starts_with("r");
      }
  CHECK(decided_by_rules == 12);  // each rule decided its own address and port once
}

TEST_CASE("share_maps keeps the copy's map where its elements or key differ from the original's") {
  std::string text = "[policy]\ninput = 'drop'\n";
  for (int i = 0; i < 6; ++i)
    text += rule_text("r" + std::to_string(i), "protocols = 'tcp'\nports = [" +
                                                   std::to_string(8000 + i) + "]\nfrom = '10.0.0." +
                                                   std::to_string(i) + "'\naction = 'accept'\n");
  ParsedPolicy parsed = parse_policy(text, "merge.toml", SystemTables{});
  REQUIRE_MESSAGE(parsed.ok(), parsed.report());
  CompileOptions options;
  options.merge_rules = false;
  ir::Ruleset base = compile_policy(parsed.policy, options);
  auto chain_of = [](ir::Ruleset& ruleset, const std::string& name) -> ir::Chain& {
    for (ir::Chain& chain : ruleset.chains)
      if (chain.name == name) return chain;
    FAIL("no chain " << name);
    throw std::logic_error("unreachable");
  };
  SUBCASE("one element's verdict differs") {
    ir::Ruleset ruleset = base;
    for (ir::Rule& rule : chain_of(ruleset, "published").rules)
      if (rule.comment == "r3") rule.verdict.kind = ir::VerdictKind::drop;
    merge_rule_runs(ruleset);
    REQUIRE(ruleset.maps.size() == 2);
    share_maps(ruleset, "published", "input");
    CHECK(ruleset.maps.size() == 2);
  }
  SUBCASE("the input chain cannot use the published map: its key is not the one loaded") {
    ir::Ruleset ruleset = base;
    merge_rule_runs(ruleset);
    REQUIRE(ruleset.maps.size() == 2);
    // The other way round: input's lookups of dport cannot use published's map of
    // ct original proto-dst (loads_key_field is one way).
    share_maps(ruleset, "input", "published");
    CHECK(ruleset.maps.size() == 2);
    share_maps(ruleset, "published", "input");
    REQUIRE(ruleset.maps.size() == 1);
    CHECK(ruleset.maps[0].name == "input/m1");
    // Both chains' lookups name the map that stayed.
    std::size_t lookups = 0;
    for (const ir::Chain& chain : ruleset.chains)
      for (const ir::Rule& rule : chain.rules)
        if (rule.verdict.kind == ir::VerdictKind::map_lookup) {
          CHECK(rule.verdict.map == "input/m1");
          ++lookups;
        }
    CHECK(lookups == 2);
  }
}

TEST_CASE("the compiler merging rules as it makes them gives what merging its whole chains gives") {
  // Chains far longer than a hand-over (kHandOverFrom, compile_policy.cpp): the input
  // chain, a zone's chain, and the neighbours' published copies of both; rules of either
  // family or both (the family grouping holds some back), runs cut by logged, limited and
  // overlapping rules. One protocol each and under kSplitChainsAbove kernel rules a chain,
  // so that the unmerged compile has no protocol sets and no split chains, and merging it
  // afterwards is what compile_policy did before it merged as it went.
  std::string text =
      "[policy]\ninput = 'drop'\nforward = 'drop'\n[zone.lan]\ninterfaces = ['eth0']\n"
      "[zone.wan]\ninterfaces = ['eth1']\n";
  for (int i = 0; i < 260; ++i) {
    const std::string n = std::to_string(i);
    std::string body = "protocols = '" + std::string(i % 7 == 3 ? "udp" : "tcp") + "'\nports = [" +
                       std::to_string(2000 + (i % 90) * 3) + "]\n";
    switch (i / 20 % 5) {  // runs of 20 rules of one shape
      case 0:
        body += "from = '192.0.2." + std::to_string(i % 250) + "'\n";
        break;
      case 1:
        body += "from = '2001:db8::" + std::to_string(i) + "'\n";
        break;
      case 2:
        body += "from = ['198.51.100." + std::to_string(i % 250) + "', '2001:db8:1::" + n + "']\n";
        break;
      case 3:
        body += "from = 'lan'\n";
        break;
      default:
        break;
    }
    if (i % 37 == 5) body += "log = true\n";
    if (i % 41 == 7 && i % 11 != 4) body += "limit = '10/minute'\n";
    if (i % 53 == 9) body += "direction = 'forward'\nto = 'wan'\n";
    body += "action = '" + std::string(i % 11 == 4 ? "drop" : "accept") + "'\n";
    text += rule_text("r" + n, body);
  }
  ParsedPolicy parsed = parse_policy(text, "merge.toml", SystemTables{});
  REQUIRE_MESSAGE(parsed.ok(), parsed.report());
  const ir::Ruleset merged = compile_policy(parsed.policy);

  CompileOptions unmerged_options;
  unmerged_options.merge_rules = false;
  ir::Ruleset afterwards = compile_policy(parsed.policy, unmerged_options);
  REQUIRE(afterwards.sets.size() == merged.sets.size());  // no protocol sets
  bool published = false;
  for (const ir::Chain& chain : afterwards.chains) {
    CHECK(chain.rules.size() <= kSplitChainsAbove);
    published |= chain.name == "published_lan";
  }
  CHECK(published);
  merge_rule_runs(afterwards);
  share_maps(afterwards, "published", "input");
  for (const char* zone : {"lan", "wan"})
    share_maps(afterwards, std::string("published_") + zone, std::string("input_") + zone);
  CHECK(merged.maps.size() > 6);
  CHECK(merged == afterwards);
}
