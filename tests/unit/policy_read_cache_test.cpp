// PolicyReadCache (parse_policy.h): reading a policy file again through the rules kept from
// the last read must give what reading the whole text gives, every diagnostic and line
// included, whatever changed in between.
#include <doctest/doctest.h>

#include <string>

#include "compile_policy.h"
#include "parse_policy.h"
#include "write_policy.h"

using namespace portier;

namespace {

const SystemTables& tables() {
  static const SystemTables loaded{ServiceTable{}, UserTable::parse("root:x:0:0::/root:/bin/sh\n")};
  return loaded;
}

std::string rule(int i, const std::string& extra = "") {
  return "[[rule]]\nname = 'rule-" + std::to_string(i) + "'\nprotocols = 'tcp'\nports = [" +
         std::to_string(1000 + i) + "]\nfrom = ['lan', '10.0." + std::to_string(i / 250) + "." +
         std::to_string(i % 250) + "']\naction = 'accept'\n" + extra + "\n";
}

const std::string kHead =
    "[policy]\ninput = 'drop'\n[zone.lan]\ninterfaces = ['lan0']\n"
    "[[bind]]\nname = 'ssh'\nprotocols = ['tcp']\nports = [22]\nuser = 'root'\n";

std::string policy(int rules, int edited = -1, const std::string& edit = "") {
  std::string text = kHead;
  for (int i = 0; i < rules; ++i) text += rule(i, i == edited ? edit : "");
  return text;
}

// What reading the whole text gives, against a read through `cache`.
void same_as_whole(const std::string& text, PolicyReadCache& cache) {
  const ParsedPolicy whole = parse_policy(text, "p.toml", tables());
  const ParsedPolicy cached = parse_policy(text, "p.toml", tables(), disk_files(), &cache);
  CHECK(cached.report() == whole.report());
  REQUIRE(cached.diagnostics.size() == whole.diagnostics.size());
  for (std::size_t i = 0; i < whole.diagnostics.size(); ++i) {
    CHECK(cached.diagnostics[i].where.file == whole.diagnostics[i].where.file);
    CHECK(cached.diagnostics[i].where.line == whole.diagnostics[i].where.line);
    CHECK(cached.diagnostics[i].where.column == whole.diagnostics[i].where.column);
  }
  REQUIRE(cached.ok() == whole.ok());
  if (!whole.ok()) return;
  CHECK(write_policy(cached.policy) == write_policy(whole.policy));
  CHECK(compile_policy(cached.policy) == compile_policy(whole.policy));
  CHECK(cached.policy.files == whole.policy.files);
  REQUIRE(cached.policy.rules.size() == whole.policy.rules.size());
  for (std::size_t i = 0; i < whole.policy.rules.size(); ++i) {
    const Rule& a = cached.policy.rules[i];
    const Rule& b = whole.policy.rules[i];
    CHECK(a.name == b.name);
    CHECK(a.where.file == b.where.file);
    CHECK(a.where.line == b.where.line);
    CHECK(a.where.column == b.where.column);
    REQUIRE(a.from.size() == b.from.size());
    for (std::size_t j = 0; j < a.from.size(); ++j) {
      CHECK(a.from[j].where.file == b.from[j].where.file);
      CHECK(a.from[j].where.line == b.from[j].where.line);
      CHECK(a.from[j].where.column == b.from[j].where.column);
    }
  }
}

}  // namespace

TEST_CASE("a policy read again through the kept rules reads as the whole text does") {
  PolicyReadCache cache;
  const std::string first = policy(300);
  same_as_whole(first, cache);
  // Every rule of the tail but its first (read with the head) is kept, once per text.
  CHECK(cache.size() == 299);
  // One rule edited: the others are the kept ones.
  same_as_whole(policy(300, 120, "comment = 'edited'\n"), cache);
  CHECK(cache.size() == 299);
  // Lines added at the top: every kept rule moves down.
  same_as_whole("# a comment\n\n" + policy(300, 120, "comment = 'edited'\n"), cache);
  // Rules removed, moved and repeated (a repeated name is an error, reported twice).
  std::string shuffled = kHead + rule(7) + rule(3) + rule(3) + rule(250) + rule(9);
  same_as_whole(shuffled, cache);
  CHECK(cache.size() == 3);  // rule 3 once; rule 7 is read with the head
  same_as_whole(first, cache);
}

TEST_CASE("diagnostics of kept rules come back at their lines, in the order of the whole file") {
  PolicyReadCache cache;
  // An unknown key in rule 40 (kept once read), an error in the head's bind, which the whole
  // file reports after every rule's.
  std::string text = policy(100, 40, "prots = 'udp'\n");
  text.replace(text.find("user = 'root'"), 13, "user = 'no-such-user-here'");
  same_as_whole(text, cache);
  same_as_whole(text, cache);
  same_as_whole("\n\n\n" + text, cache);
  const ParsedPolicy again =
      parse_policy("\n\n\n" + text, "p.toml", tables(), disk_files(), &cache);
  REQUIRE(!again.ok());
  CHECK(again.report().find("prots") != std::string::npos);
}

TEST_CASE("a rule tail that does not parse alone is read as the whole file, the kept rules stay") {
  PolicyReadCache cache;
  same_as_whole(policy(50), cache);
  REQUIRE(cache.size() == 49);
  // A TOML syntax error in one rule: the whole file's diagnostic, from the whole parse.
  same_as_whole(policy(50, 30, "ports = [1,\n"), cache);
  CHECK(cache.size() == 49);
  // `rule` as a static array in the head: [[rule]] cannot extend it, the whole file says.
  same_as_whole("rule = [{name = 'x', action = 'accept'}]\n" + policy(50), cache);
  // A table after the rules ends the tail there; the rules before it go with the head.
  same_as_whole(policy(50) + "[[forward]]\nname = 'f'\n", cache);
  // No rule tail at all: read as before.
  same_as_whole(kHead, cache);
  // A multi-line string anywhere: read whole.
  same_as_whole(policy(50, 10, "comment = '''\n[[rule]]\n'''\n"), cache);
}

TEST_CASE("the kept rules are for one file name and one SystemTables") {
  PolicyReadCache cache;
  same_as_whole(policy(20), cache);
  // Another name: the rules and diagnostics name the file they are read from.
  const ParsedPolicy other =
      parse_policy(policy(20, 5, "prots = 1\n"), "other.toml", tables(), disk_files(), &cache);
  REQUIRE(!other.diagnostics.empty());
  CHECK(other.diagnostics[0].where.file == "other.toml");
  REQUIRE(!other.policy.rules.empty());
  CHECK(other.policy.rules.back().where.file == "other.toml");
  const SystemTables more = tables();
  const ParsedPolicy with_more = parse_policy(policy(20), "other.toml", more, disk_files(), &cache);
  CHECK(with_more.ok());
  same_as_whole(policy(20), cache);
}

TEST_CASE("a first read of many rules, parsed on two threads, reads as the whole text does") {
  // 1,500 new rules: above the count from which they are parsed on two threads.
  PolicyReadCache cache;
  same_as_whole(policy(1500, 1400, "prots = 'udp'\n"), cache);
  same_as_whole(policy(1500), cache);
  CHECK(cache.size() == 1499);
  // A TOML error in the second thread's half: read whole, as the whole file says.
  PolicyReadCache fresh;
  same_as_whole(policy(1500, 1450, "ports = [1,\n"), fresh);
  CHECK(fresh.size() == 0);
}
