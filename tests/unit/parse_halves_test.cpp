// Long policies are parsed in two halves on two threads (parse_policy.cpp): the result
// and every diagnostic's place must be those of parsing the whole file at once.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "compile_policy.h"
#include "parse_policy.h"

using namespace portier;

namespace {

// 3,000 rules: about 300 KB, above the size from which halves are parsed.
std::string long_policy(const std::string& rule_500_extra, const std::string& rule_2900_extra) {
  std::string text = "[policy]\ninput = 'drop'\n[zone.lan]\ninterfaces = ['lan0']\n";
  for (int i = 0; i < 3000; ++i) {
    text += "\n[[rule]]\nname = 'rule-" + std::to_string(i) + "'\nprotocols = 'tcp'\nports = [" +
            std::to_string(1000 + i) + "]\nfrom = '10.0." + std::to_string(i / 250) + "." +
            std::to_string(i % 250) +
            "'\naction = 'accept'\ncomment = 'a rule that is here to make the file long'\n";
    if (i == 500) text += rule_500_extra;
    if (i == 2900) text += rule_2900_extra;
  }
  return text;
}

// A multi-line string anywhere keeps the whole file in one parse, as do table headers
// other than [[rule]] in the second half and short files.
std::string whole(const std::string& text) { return text + "# '''\n"; }

int line_of(const std::string& text, const std::string& needle) {
  const std::size_t at = text.find(needle);
  REQUIRE(at != std::string::npos);
  return 1 + static_cast<int>(
                 std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
}

}  // namespace

TEST_CASE("a long policy parsed in halves reads as the whole file does, lines included") {
  const std::string text = long_policy("", "");
  REQUIRE(parse_split_point(text) > text.size() / 2);
  CHECK(text.substr(parse_split_point(text), 9) == "[[rule]]\n");
  CHECK(parse_split_point(whole(text)) == 0);
  const ParsedPolicy halves = parse_policy(text, "long.toml", SystemTables{});
  const ParsedPolicy once = parse_policy(whole(text), "long.toml", SystemTables{});
  REQUIRE(halves.ok());
  REQUIRE(once.ok());
  REQUIRE(halves.policy.rules.size() == 3000);
  REQUIRE(once.policy.rules.size() == 3000);
  for (std::size_t i = 0; i < 3000; ++i) {
    CHECK(halves.policy.rules[i].name == once.policy.rules[i].name);
    CHECK(halves.policy.rules[i].where.line == once.policy.rules[i].where.line);
    CHECK(halves.policy.rules[i].where.column == once.policy.rules[i].where.column);
  }
  CHECK(halves.policy.rules[2999].where.line == line_of(text, "name = 'rule-2999'") - 1);
  CHECK(compile_policy(halves.policy) == compile_policy(once.policy));
  CHECK(parse_split_point(
            text + "[[bind]]\nname = 'b'\nprotocols = ['tcp']\nports = [22]\nuser = 'root'\n") ==
        0);
  CHECK(parse_split_point(text.substr(0, 100000)) == 0);
}

TEST_CASE("errors in either half of a long policy name the line they are on in the file") {
  const std::string text = long_policy("prots = 'udp'\n", "action2 = 'drop'\n");
  REQUIRE(parse_split_point(text) > 0);
  const ParsedPolicy halves = parse_policy(text, "long.toml", SystemTables{});
  CHECK_FALSE(halves.ok());
  REQUIRE(halves.diagnostics.size() == 2);
  CHECK(halves.diagnostics[0].where.line == line_of(text, "prots = "));
  CHECK(halves.diagnostics[1].where.line == line_of(text, "action2 = "));
  CHECK(halves.diagnostics[1].where.column == 1);
  CHECK(halves.diagnostics[1].message.find("action2") != std::string::npos);
  // A TOML syntax error in the second half: the whole file is parsed again for it.
  const std::string broken = long_policy("", "ports = [1,\n");
  const ParsedPolicy failed = parse_policy(broken, "long.toml", SystemTables{});
  CHECK_FALSE(failed.ok());
  REQUIRE(!failed.diagnostics.empty());
  CHECK(failed.diagnostics[0].where.line >= line_of(broken, "ports = [1,\n"));
  CHECK(failed.diagnostics[0].where.line <= line_of(broken, "ports = [1,\n") + 2);
}
