#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "file_reader.h"
#include "parse_policy.h"

using namespace portier;

namespace {

const SystemTables& test_tables() {
  static const SystemTables tables{ServiceTable::parse(
      "ssh\t\t22/tcp\n"
      "http\t\t80/tcp\t\twww\n"
      "https\t\t443/tcp\n"
      "https\t\t443/udp\n"
      "domain\t\t53/tcp\n"
      "domain\t\t53/udp\n"
      "netbios-ns\t137/udp\n"
      "netbios-ns\t137/tcp\n"
      "odd\t\t1000/tcp\n"
      "odd\t\t1001/udp\n"),
      UserTable::parse("root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n")};
  return tables;
}

ParsedPolicy parse(std::string_view text) { return parse_policy(text, "p.toml", test_tables()); }

// The headline of the only error the policy has (warnings aside).
std::string only_error(std::string_view text) {
  ParsedPolicy parsed = parse(text);
  std::vector<Diagnostic> errors;
  for (const Diagnostic& d : parsed.diagnostics)
    if (d.severity == Severity::error) errors.push_back(d);
  REQUIRE(errors.size() == 1);
  return format_headline(errors[0]);
}

}  // namespace

TEST_CASE("a complete policy parses into the model") {
  ParsedPolicy parsed = parse(R"(# workstation
[policy]
input = "reject"
output = "drop"

[[rule]]
name = "netbios-in"
direction = "in"
protocols = ["tcp", "udp"]
ports = ["137-139", 445]
action = "drop"
comment = "never"

[[rule]]
name = "web"
protocols = "tcp"
ports = ["http", "https", 8080]
action = "accept"
enabled = false

[[rule]]
name = "dns-out"
direction = "out"
protocols = ["udp", "tcp"]
ports = "domain"
action = "accept"
)");
  REQUIRE(parsed.ok());
  CHECK(parsed.diagnostics.empty());
  const Policy& policy = parsed.policy;
  CHECK(policy.input == Action::reject);
  CHECK(policy.output == Action::drop);
  REQUIRE(policy.rules.size() == 3);

  const Rule& netbios = policy.rules[0];
  CHECK(netbios.name == "netbios-in");
  CHECK(netbios.direction == Direction::in);
  CHECK(netbios.protocols == std::vector{Protocol::tcp, Protocol::udp});
  CHECK(netbios.ports == std::vector<PortRange>{{137, 139}, {445, 445}});
  CHECK(netbios.action == Action::drop);
  CHECK(netbios.enabled);
  CHECK(netbios.comment == "never");
  CHECK(netbios.where.line == 6);
  CHECK(netbios.where.column == 1);

  const Rule& web = policy.rules[1];
  CHECK(web.direction == Direction::in);  // the default
  CHECK(web.ports == std::vector<PortRange>{{80, 80}, {443, 443}, {8080, 8080}});
  CHECK_FALSE(web.enabled);

  const Rule& dns = policy.rules[2];
  CHECK(dns.direction == Direction::out);
  CHECK(dns.protocols == std::vector{Protocol::tcp, Protocol::udp});  // sorted
  CHECK(dns.ports == std::vector<PortRange>{{53, 53}});
  CHECK(describe_match(dns) == "tcp,udp 53");
}

TEST_CASE("defaults: input drop, output accept, no rules") {
  ParsedPolicy parsed = parse("");
  REQUIRE(parsed.ok());
  CHECK(parsed.policy.input == Action::drop);
  CHECK(parsed.policy.output == Action::accept);
  CHECK(parsed.policy.rules.empty());
}

TEST_CASE("service aliases resolve like the first name") {
  ParsedPolicy parsed = parse("[[rule]]\nname='w'\nprotocols='tcp'\nports=['www']\naction='accept'\n");
  REQUIRE(parsed.ok());
  CHECK(parsed.policy.rules[0].ports == std::vector<PortRange>{{80, 80}});
}

TEST_CASE("bad policies: each error names file, line and column") {
  SUBCASE("TOML syntax") {
    CHECK(only_error("[policy]\ninput = drop\n").starts_with("p.toml:2:9: error: "));
  }
  SUBCASE("unknown top-level key with a hint") {
    CHECK(only_error("[polcy]\ninput = 'drop'\n") ==
          "p.toml:1:2: error: unknown key 'polcy' in the policy file (did you mean 'policy'?)");
  }
  SUBCASE("unknown key in [policy]") {
    CHECK(only_error("[policy]\ninptu = 'drop'\n") ==
          "p.toml:2:1: error: unknown key 'inptu' in [policy] (did you mean 'input'?)");
  }
  SUBCASE("unknown default verdict") {
    CHECK(only_error("[policy]\ninput = 'dorp'\n") ==
          "p.toml:2:9: error: unknown action 'dorp' for 'input' (did you mean 'drop'?)");
  }
  SUBCASE("verdict of the wrong type") {
    CHECK(only_error("[policy]\noutput = 1\n") ==
          "p.toml:2:10: error: 'output' must be a string: accept, drop or reject");
  }
  SUBCASE("unknown key in a rule") {
    CHECK(only_error("[[rule]]\nname = 'a'\naction = 'drop'\nport = [22]\n") ==
          "p.toml:4:1: error: unknown key 'port' in [[rule]] (did you mean 'ports'?)");
  }
  SUBCASE("rule without a name") {
    CHECK(only_error("[[rule]]\naction = 'drop'\n") ==
          "p.toml:1:1: error: rule has no 'name': every rule needs a unique name");
  }
  SUBCASE("rule without an action") {
    CHECK(only_error("\n[[rule]]\nname = 'a'\n") ==
          "p.toml:2:1: error: rule has no 'action': say accept, drop or reject");
  }
  SUBCASE("duplicate rule name names the first place") {
    CHECK(only_error("[[rule]]\nname='a'\naction='drop'\n[[rule]]\nname='a'\naction='accept'\n") ==
          "p.toml:4:1: error: name 'a' is already used by the rule at p.toml:1:1");
  }
  SUBCASE("bad rule name") {
    CHECK(only_error("[[rule]]\nname = 'has space'\naction = 'drop'\n") ==
          "p.toml:2:8: error: rule name 'has space' must be 1-63 characters of letters, digits, "
          "'-', '_' or '.', starting with a letter or digit");
  }
  SUBCASE("unknown protocol") {
    CHECK(only_error("[[rule]]\nname='a'\nprotocols=['tpc']\naction='drop'\n") ==
          "p.toml:3:12: error: unknown protocol 'tpc' (did you mean 'tcp'?)");
  }
  SUBCASE("bad direction") {
    CHECK(only_error("[[rule]]\nname='a'\ndirection='inbound'\naction='drop'\n") ==
          "p.toml:3:11: error: 'direction' must be \"in\", \"out\" or \"forward\"");
  }
  SUBCASE("port out of range") {
    CHECK(only_error("[[rule]]\nname='a'\nprotocols='tcp'\nports=[70000]\naction='drop'\n") ==
          "p.toml:4:8: error: port 70000 is out of range 0-65535");
  }
  SUBCASE("backwards range") {
    CHECK(only_error("[[rule]]\nname='a'\nprotocols='tcp'\nports=['139-137']\naction='drop'\n") ==
          "p.toml:4:8: error: port range '139-137' runs backwards: write it low-high");
  }
  SUBCASE("range end out of range") {
    CHECK(only_error("[[rule]]\nname='a'\nprotocols='tcp'\nports=['1-99999']\naction='drop'\n") ==
          "p.toml:4:8: error: port '99999' is not a number from 0 to 65535");
  }
  SUBCASE("unknown service with a hint") {
    CHECK(only_error("[[rule]]\nname='a'\nprotocols='tcp'\nports=['htps']\naction='drop'\n") ==
          "p.toml:4:8: error: unknown service 'htps' for tcp (did you mean 'https'?)");
  }
  SUBCASE("service unknown for one of the protocols") {
    CHECK(only_error("[[rule]]\nname='a'\nprotocols=['tcp','udp']\nports=['ssh']\naction='drop'\n") ==
          "p.toml:4:8: error: unknown service 'ssh' for udp (not in /etc/services)");
  }
  SUBCASE("service with different ports per protocol") {
    CHECK(only_error("[[rule]]\nname='a'\nprotocols=['tcp','udp']\nports=['odd']\naction='drop'\n") ==
          "p.toml:4:8: error: service 'odd' is port 1000 for tcp but 1001 for udp: split the rule "
          "by protocol");
  }
  SUBCASE("ports without protocols") {
    CHECK(only_error("[[rule]]\nname='a'\nports=[22]\naction='drop'\n") ==
          "p.toml:3:7: error: 'ports' needs 'protocols' (tcp, udp or both) in the same rule");
  }
  SUBCASE("enabled that is not a boolean") {
    CHECK(only_error("[[rule]]\nname='a'\naction='drop'\nenabled='yes'\n") ==
          "p.toml:4:9: error: 'enabled' must be true or false");
  }
  SUBCASE("rule as a plain table") {
    CHECK(only_error("[rule]\nname='a'\n") ==
          "p.toml:1:1: error: 'rule' must be an array of tables: write each as [[rule]]");
  }
}

TEST_CASE("all errors of a file are reported, not just the first") {
  ParsedPolicy parsed = parse(
      "[policy]\ninput='maybe'\n[[rule]]\nname='a'\naction='allow'\n[[rule]]\nname='b'\n"
      "protocols='icnp'\naction='drop'\n");
  CHECK_FALSE(parsed.ok());
  REQUIRE(parsed.diagnostics.size() == 3);
  CHECK(parsed.diagnostics[0].where.line == 2);
  CHECK(parsed.diagnostics[1].where.line == 5);
  CHECK(parsed.diagnostics[2].where.line == 8);
}

TEST_CASE("the report shows the source line with a caret under the column") {
  ParsedPolicy parsed = parse("[policy]\ninput = 'dorp'\n");
  CHECK(parsed.report() ==
        "p.toml:2:9: error: unknown action 'dorp' for 'input' (did you mean 'drop'?)\n"
        "  input = 'dorp'\n"
        "          ^\n");
}

TEST_CASE("an unreadable file is one error naming it") {
  ParsedPolicy parsed = parse_policy_file("/nonexistent/policy.toml", test_tables());
  REQUIRE(parsed.diagnostics.size() == 1);
  CHECK(format_headline(parsed.diagnostics[0]) ==
        "/nonexistent/policy.toml: error: cannot read policy: No such file or directory");
}

TEST_CASE("services(5) parsing skips comments and other protocols") {
  ServiceTable table = ServiceTable::parse("# c\nfoo 10/tcp bar # x\nbaz 11/ddp\nqux x/udp\n");
  CHECK(table.port("foo", Protocol::tcp) == 10);
  CHECK(table.port("bar", Protocol::tcp) == 10);
  CHECK_FALSE(table.port("foo", Protocol::udp));
  CHECK_FALSE(table.port("baz", Protocol::tcp));
  CHECK_FALSE(table.port("qux", Protocol::udp));
}

// A megabyte-long service name gets no "did you mean": comparing it with every known
// name used to take minutes (and froze portierd's Check for everyone).
TEST_CASE("a huge value gets its error without a hint") {
  std::string huge(1 << 20, 'a');
  ParsedPolicy parsed = parse("[[rule]]\nname='x'\nprotocols='tcp'\nports=['" + huge + "']\naction='drop'\n");
  REQUIRE(parsed.diagnostics.size() == 1);
  CHECK(parsed.diagnostics[0].message.ends_with("for tcp (not in /etc/services)"));
  CHECK(closest_match(huge, {"aaa"}).empty());
  CHECK(closest_match("htps", {"https", std::string(100, 'h')}) == "https");
}

namespace {

// The files of a policy in memory (rules/file_reader.h): what parse_policy_file() asked
// for is recorded, so a test sees that nothing went to the disk.
class FakeFiles final : public FileReader {
 public:
  std::map<std::string, std::string> files;
  mutable std::vector<std::string> asked;

  std::optional<std::string> read(const std::string& path, std::string& error) const override {
    asked.push_back(path);
    const auto found = files.find(path);
    if (found == files.end()) {
      error = "No such file or directory";
      return std::nullopt;
    }
    return found->second;
  }
  std::vector<std::string> list(const std::string& dir) const override {
    asked.push_back(dir + "/");
    std::vector<std::string> entries;
    for (const auto& [path, text] : files)
      if (path.starts_with(dir + "/")) entries.push_back(path);
    std::reverse(entries.begin(), entries.end());  // no order promised: the parser sorts
    return entries;
  }
};

}  // namespace

TEST_CASE("parse_policy_file reads the policy, its drop-ins and set files through a FileReader") {
  FakeFiles fake;
  fake.files["/virtual/policy.toml"] =
      "[set.bad]\nfamily='ipv4'\nfile='bad.txt'\n[[rule]]\nname='main'\naction='drop'\n"
      "from='@bad'\n";
  fake.files["/virtual/bad.txt"] = "# blocked\n203.0.113.0/24\n198.51.100.7";
  fake.files["/virtual/policy.d/20-b.toml"] =
      "[[rule]]\nname='b'\nprotocols='tcp'\naction='accept'\n";
  fake.files["/virtual/policy.d/10-a.toml"] =
      "[[rule]]\nname='a'\nprotocols='udp'\naction='accept'\n";
  fake.files["/virtual/policy.d/notes.txt"] = "not toml";

  ParsedPolicy parsed = parse_policy_file("/virtual/policy.toml", test_tables(), fake);
  REQUIRE_MESSAGE(parsed.ok(), parsed.report());
  REQUIRE(parsed.policy.rules.size() == 3);
  CHECK(parsed.policy.rules[0].name == "main");
  CHECK(parsed.policy.rules[1].name == "a");
  CHECK(parsed.policy.rules[2].name == "b");
  REQUIRE(parsed.policy.sets.size() == 1);
  REQUIRE(parsed.policy.sets[0].addresses.size() == 2);
  CHECK(to_string(parsed.policy.sets[0].addresses[1]) == "198.51.100.7");
  CHECK(fake.asked == std::vector<std::string>{"/virtual/policy.toml", "/virtual/bad.txt",
                                               "/virtual/policy.d/", "/virtual/policy.d/10-a.toml",
                                               "/virtual/policy.d/20-b.toml"});

  // What the reader cannot give is reported as the disk's errors were.
  fake.files.erase("/virtual/bad.txt");
  parsed = parse_policy_file("/virtual/policy.toml", test_tables(), fake);
  REQUIRE(!parsed.ok());
  CHECK(format_headline(parsed.diagnostics.at(0)) ==
        "/virtual/policy.toml:3:6: error: cannot read set file '/virtual/bad.txt'");
  parsed = parse_policy_file("/virtual/missing.toml", test_tables(), fake);
  REQUIRE(parsed.diagnostics.size() == 1);
  CHECK(format_headline(parsed.diagnostics[0]) ==
        "/virtual/missing.toml: error: cannot read policy: No such file or directory");
}

TEST_CASE("durations: sums of seconds, minutes, hours and days, up to 2^32 - 1 seconds") {
  CHECK(parse_duration("30s").value == std::chrono::seconds(30));
  CHECK(parse_duration("1d12h").value == std::chrono::hours(36));
  CHECK(parse_duration("1h30m15s").value == std::chrono::seconds(5415));
  CHECK(parse_duration("4294967295s").value == std::chrono::seconds(4294967295));
  for (const char* malformed : {"", "1", "1 hour", "h", "1w", "-1s", "1s2", "0s"}) {
    CAPTURE(malformed);
    CHECK(parse_duration(malformed).problem == DurationProblem::malformed);
  }
  // Each of these overflowed 64 bits on the way (seconds, minutes, hours, days, the sum) or
  // ends past 2^32 - 1 seconds, which portierctl's and the bus's u32 could not carry.
  for (const char* too_long :
       {"4294967296s", "18446744073709551615s", "307445734561825861m", "7686143364045646502h",
        "213503982334601d", "4294967295s1s", "18446744073709551615s18446744073709551615s"}) {
    CAPTURE(too_long);
    CHECK(parse_duration(too_long).problem == DurationProblem::too_long);
  }
}
