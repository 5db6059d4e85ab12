// Parsing of zones, sets, routers, binds and drop-ins, and the cross-checks on them.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "parse_policy.h"

namespace doctest {
template <>
struct StringMaker<std::vector<std::string>> {
  static String convert(const std::vector<std::string>& lines) {
    std::string text = "{";
    for (const auto& line : lines) text += "\n  \"" + line + "\"";
    return (text + "}").c_str();
  }
};
}  // namespace doctest

using namespace portier;
namespace fs = std::filesystem;

namespace {

const SystemTables& tables() {
  static const SystemTables t{
      ServiceTable::parse("ssh 22/tcp\nhttp 80/tcp\nhttps 443/tcp\ndomain 53/tcp\ndomain 53/udp\n"),
      UserTable::parse("root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\n")};
  return t;
}

ParsedPolicy parse(std::string_view text) { return parse_policy(text, "r.toml", tables()); }

std::vector<std::string> headlines(const ParsedPolicy& parsed) {
  std::vector<std::string> lines;
  for (const Diagnostic& d : parsed.diagnostics) lines.push_back(format_headline(d));
  return lines;
}

// A folder with a policy and its drop-ins, removed afterwards.
struct PolicyDir {
  PolicyDir() : dir(fs::temp_directory_path() / ("portier-dropin-" + std::to_string(::getpid()))) {
    fs::create_directories(dir / "policy.d");
  }
  ~PolicyDir() { fs::remove_all(dir); }
  void write(const std::string& name, std::string_view text) const { std::ofstream(dir / name) << text; }
  std::string main() const { return (dir / "policy.toml").string(); }
  fs::path dir;
};

}  // namespace

TEST_CASE("a router policy: zones, sets, forward rules, nat, forwards, binds") {
  ParsedPolicy parsed = parse(R"(
[policy]
input = "drop"
forward = "drop"
log = "denied"

[zone.wan]
interfaces = ["eth0", "ppp*"]
[zone.lan]
interfaces = ["br-lan"]
networks = ["192.168.1.0/24", "fd00::/8"]
input = "accept"
forward_to = ["wan"]

[set.blocklist]
family = "ipv4"
elements = ["203.0.113.0/24", "198.51.100.7"]
timeout = "1h30m"

[[rule]]
name = "block"
from = "@blocklist"
action = "drop"
log = true

[[rule]]
name = "ssh"
protocols = "tcp"
ports = "ssh"
from = ["lan", "10.0.0.0/8"]
limit = "10/minute"
action = "accept"

[[rule]]
name = "web-out"
direction = "out"
protocols = "tcp"
ports = ["http", "https"]
user = "www-data"
unit = "nginx.service"
action = "accept"

[[bind]]
name = "ssh-owner"
protocols = "tcp"
ports = "ssh"
unit = "ssh.service"

[[bind]]
name = "web-owner"
protocols = "tcp"
ports = [80, 443]
user = "www-data"

[[forward]]
name = "nas-web"
from = "wan"
protocols = ["tcp"]
ports = ["8080"]
to = "192.168.1.10:80"
enabled = false

[[forward]]
name = "v6"
from = "wan"
protocols = "udp"
ports = [51820]
to = "[fd00::2]:51821"

[nat]
masquerade = ["wan"]
)");
  REQUIRE_MESSAGE(parsed.ok(), parsed.report());
  CHECK(parsed.diagnostics.empty());
  const Policy& p = parsed.policy;
  CHECK(p.forward == Action::drop);
  CHECK(p.log == LogMode::denied);
  // The two of the policy, then the neighbours' four built-in ones.
  REQUIRE(p.zones.size() == 6);
  CHECK(p.zones[2].builtin);
  CHECK(p.zones[0].name == "wan");
  CHECK(p.zones[0].interfaces == std::vector<std::string>{"eth0", "ppp*"});
  CHECK(p.zones[1].networks.size() == 2);
  CHECK(to_string(p.zones[1].networks[1]) == "fd00::/8");
  CHECK(p.zones[1].input == Action::accept);
  CHECK(p.zones[1].forward_to == std::vector<std::string>{"wan"});

  REQUIRE(p.sets.size() == 1);
  CHECK(p.sets[0].addresses.size() == 2);
  CHECK(to_string(p.sets[0].addresses[1]) == "198.51.100.7");
  CHECK(p.sets[0].timeout == std::chrono::seconds(5400));

  REQUIRE(p.rules.size() == 3);
  CHECK(p.rules[0].from[0].kind == Endpoint::Kind::set);
  CHECK(p.rules[0].log);
  CHECK(p.rules[1].from.size() == 2);
  CHECK(p.rules[1].from[1].kind == Endpoint::Kind::network);
  CHECK(p.rules[1].limit == Rate{10, Rate::Unit::minute});
  CHECK(p.rules[2].user == 33u);
  CHECK(p.rules[2].unit == "nginx.service");
  CHECK(describe_match(p.rules[1]) == "tcp 22 from lan,10.0.0.0/8");

  REQUIRE(p.binds.size() == 2);
  CHECK(p.binds[0].unit == "ssh.service");
  CHECK(p.binds[0].cgroup.empty());  // found where it runs, not derived from its name
  CHECK(p.binds[1].user == 33u);

  REQUIRE(p.forwards.size() == 2);
  CHECK_FALSE(p.forwards[0].enabled);
  CHECK(to_string(p.forwards[0].to_address) == "192.168.1.10");
  CHECK(p.forwards[0].to_port == 80);
  CHECK(to_string(p.forwards[1].to_address) == "fd00::2");
  CHECK(p.forwards[1].to_port == 51821);
  CHECK(p.masquerade == std::vector<std::string>{"wan"});
}

TEST_CASE("bind owners: malformed unit names and paths outside the tree are errors") {
  auto bind = [](const std::string& owner) {
    return headlines(parse("[[bind]]\nname='b'\nprotocols='tcp'\nports=[22]\n" + owner + "\n"));
  };
  CHECK(bind("unit='ssh.service'").empty());
  CHECK(bind("unit='getty@tty1.service'").empty());
  CHECK(bind("unit='system-web.slice'").empty());
  CHECK(bind("unit='ssh'") == std::vector<std::string>{
                                  "r.toml:5:6: error: 'ssh' has no unit type: did you mean 'ssh.service'?"});
  CHECK(bind("unit='getty@.service'") ==
        std::vector<std::string>{"r.toml:5:6: error: 'getty@.service' is a template: name an instance, "
                                 "such as 'getty@tty1.service'"});
  CHECK(bind("unit='backup.timer'") ==
        std::vector<std::string>{"r.toml:5:6: error: a timer unit has no cgroup of its own: name a "
                                 ".service, .socket, .scope, .slice, .mount or .swap unit"});
  CHECK(bind("unit='ssh/x.service'") ==
        std::vector<std::string>{"r.toml:5:6: error: '/' cannot be part of a unit name"});
  CHECK(bind("cgroup='/lab/allowed/'").empty());
  CHECK(bind("cgroup='lab/../etc'") ==
        std::vector<std::string>{"r.toml:5:8: error: 'cgroup' must stay inside the cgroup tree: no '.' "
                                 "or '..' in the path"});
  CHECK(bind("cgroup='lab//x'") ==
        std::vector<std::string>{"r.toml:5:8: error: a cgroup path has no empty parts ('//')"});
  CHECK(bind("cgroup='/'") ==
        std::vector<std::string>{"r.toml:5:8: error: 'cgroup' must name a cgroup below the root"});
  // A rule's unit is checked the same way.
  CHECK(headlines(parse("[[rule]]\nname='r'\ndirection='out'\nunit='apt'\naction='accept'\n")) ==
        std::vector<std::string>{"r.toml:4:6: error: 'apt' has no unit type: did you mean 'apt.service'?"});
  // A set named like a bind's set of cgroups would clash with it in the kernel.
  CHECK(headlines(parse("[set.cgroups_b]\nfamily='ipv4'\n[[bind]]\nname='b'\nprotocols='tcp'\n"
                        "ports=[22]\nunit='ssh.service'\n")) ==
        std::vector<std::string>{"r.toml:3:1: error: name 'cgroups_b' is already used by the set at r.toml:1:6"});
}

TEST_CASE("bad router policies: each error names its place") {
  SUBCASE("unknown zone with a hint") {
    CHECK(headlines(parse("[zone.lan]\ninterfaces=['br0']\n[[rule]]\nname='a'\nfrom='lna'\naction='drop'\n")) ==
          std::vector<std::string>{"r.toml:5:6: error: unknown zone 'lna' in rule 'a' (did you mean 'lan'?)"});
  }
  SUBCASE("unknown set") {
    CHECK(headlines(parse("[[rule]]\nname='a'\nfrom='@nope'\naction='drop'\n")) ==
          std::vector<std::string>{"r.toml:3:6: error: unknown set '@nope' in rule 'a'"});
  }
  SUBCASE("a port set in from") {
    CHECK(headlines(parse("[set.p]\nfamily='port'\nelements=[1]\n[[rule]]\nname='a'\nfrom='@p'\naction='drop'\n")) ==
          std::vector<std::string>{
              "r.toml:6:6: error: set '@p' holds ports: 'from' and 'to' need an ipv4 or ipv6 set"});
  }
  SUBCASE("host bits in a network") {
    CHECK(headlines(parse("[zone.lan]\ninterfaces=['x']\nnetworks=['192.168.1.1/24']\n")) ==
          std::vector<std::string>{"r.toml:3:11: error: '192.168.1.1/24' has host bits set: write the "
                                   "network (or the single address without a prefix)"});
  }
  SUBCASE("an address of the wrong family in a set") {
    CHECK(headlines(parse("[set.s]\nfamily='ipv6'\nelements=['10.0.0.1']\n")) ==
          std::vector<std::string>{"r.toml:3:11: error: '10.0.0.1' is not an ipv6 address"});
  }
  SUBCASE("set without family") {
    CHECK(headlines(parse("[set.s]\nelements=['10.0.0.1']\n")) ==
          std::vector<std::string>{
              "r.toml:1:1: error: set 's' needs 'family': \"ipv4\", \"ipv6\" or \"port\""});
  }
  SUBCASE("bad duration") {
    CHECK(headlines(parse("[set.s]\nfamily='ipv4'\ntimeout='1 hour'\n")) ==
          std::vector<std::string>{"r.toml:3:9: error: 'timeout' must be a duration such as \"30s\", "
                                   "\"15m\", \"1h\" or \"1d12h\""});
  }
  SUBCASE("a duration past what the kernel and the bus carry") {
    // Found by fuzz_policy: the hours overflowed std::chrono::seconds (UBSan).
    CHECK(headlines(parse("[set.s]\nfamily='ipv4'\ntimeout='7686143364045646502h'\n")) ==
          std::vector<std::string>{"r.toml:3:9: error: 'timeout' is too long: at most 49710d "
                                   "(4294967295 seconds)"});
    CHECK(headlines(parse("[set.s]\nfamily='ipv4'\ntimeout='49710d6h28m16s'\n")) ==
          std::vector<std::string>{"r.toml:3:9: error: 'timeout' is too long: at most 49710d "
                                   "(4294967295 seconds)"});
    CHECK(headlines(parse("[set.s]\nfamily='ipv4'\ntimeout='49710d6h28m15s'\n")).empty());
  }
  SUBCASE("bad rate") {
    CHECK(headlines(parse("[[rule]]\nname='a'\nlimit='10/fortnight'\naction='accept'\n")) ==
          std::vector<std::string>{"r.toml:3:7: error: 'limit' must be a rate such as \"10/minute\" "
                                   "(per second, minute, hour or day)"});
  }
  SUBCASE("user on an in rule") {
    CHECK(headlines(parse("[[rule]]\nname='a'\nuser='root'\naction='accept'\n")) ==
          std::vector<std::string>{"r.toml:3:6: error: 'user' matches the owner of a local socket "
                                   "sending out: only direction = \"out\" rules can use it"});
  }
  SUBCASE("unknown user") {
    CHECK(headlines(parse("[[rule]]\nname='a'\ndirection='out'\nuser='www-dat'\naction='accept'\n")) ==
          std::vector<std::string>{"r.toml:4:6: error: unknown user 'www-dat' (did you mean 'www-data'?)"});
  }
  SUBCASE("bind with two owners") {
    CHECK(headlines(parse("[[bind]]\nname='b'\nprotocols='tcp'\nports=[22]\nunit='ssh.service'\nuser='root'\n")) ==
          std::vector<std::string>{"r.toml:1:1: error: a bind needs exactly one owner: unit, cgroup or user"});
  }
  SUBCASE("forward to a network") {
    CHECK(headlines(parse("[zone.wan]\ninterfaces=['e']\n[[forward]]\nname='f'\nfrom='wan'\nprotocols='tcp'\n"
                          "ports=[80]\nto='10.0.0.0/8'\n")) ==
          std::vector<std::string>{"r.toml:8:4: error: 'to' must be one address, not a network"});
  }
  SUBCASE("masquerade of an unknown zone") {
    CHECK(headlines(parse("[nat]\nmasquerade=['wan']\n")) ==
          std::vector<std::string>{
              "r.toml: error: unknown zone 'wan' in [nat] masquerade: the policy defines no zones ([zone.NAME])"});
  }
  SUBCASE("zone on the local side of an in rule") {
    CHECK(headlines(parse("[zone.lan]\ninterfaces=['x']\n[[rule]]\nname='a'\nto='lan'\naction='drop'\n")) ==
          std::vector<std::string>{"r.toml:5:4: error: 'to' of an 'in' rule is this host: give "
                                   "addresses or a set, not zone 'lan'"});
  }
  SUBCASE("interface name too long") {
    CHECK(headlines(parse("[zone.z]\ninterfaces=['a-very-long-interface']\n")).front() ==
          "r.toml:2:13: error: 'a-very-long-interface' is not an interface name (at most 15 "
          "characters, no spaces or '/', a '*' only at the end)");
  }
  SUBCASE("a bare '*' as interface (fuzz_policy: it passed validation, then could not be rendered)") {
    CHECK(headlines(parse("[zone.z]\ninterfaces=['*']\n")).front() ==
          "r.toml:2:13: error: '*' alone is not an interface name: a wildcard needs a prefix "
          "('eth*'); traffic of interfaces in no zone follows [policy]");
  }
  SUBCASE("an interface name with a control character or a backslash (fuzz_policy: as the bare '*')") {
    for (const char* name : {"eth0\\nat", "eth\\\\0", "eth\\u007f"})
      CHECK(headlines(parse("[zone.z]\ninterfaces=[\"" + std::string(name) + "\"]\n")).front() ==
            "r.toml:2:13: error: an interface name has a control character or a backslash");
  }
  SUBCASE("ports with icmp") {
    CHECK(headlines(parse("[[rule]]\nname='a'\nprotocols='icmp'\nports=[1]\naction='drop'\n")) ==
          std::vector<std::string>{
              "r.toml:4:7: error: 'ports' needs protocols that have ports: tcp, udp or sctp only"});
  }
}

TEST_CASE("warnings: shadowed rules, accept after a covering drop, zones without interfaces") {
  ParsedPolicy parsed = parse(
      "[zone.only-nets]\nnetworks=['10.0.0.0/8']\n"
      "[[rule]]\nname='all-tcp'\nprotocols='tcp'\naction='drop'\n"
      "[[rule]]\nname='ssh'\nprotocols='tcp'\nports=[22]\naction='accept'\n"
      "[[rule]]\nname='web'\nprotocols=['tcp','udp']\nports=[80]\naction='accept'\n"
      "[[rule]]\nname='wide'\nprotocols='udp'\nports=['1-100']\naction='drop'\n"
      "[[rule]]\nname='narrow'\nprotocols='udp'\nports=[53]\naction='reject'\n"
      "[[rule]]\nname='out'\ndirection='out'\nprotocols='tcp'\nports=[22]\naction='accept'\n");
  CHECK(parsed.ok());
  CHECK(headlines(parsed) ==
        std::vector<std::string>{
            "r.toml:1:7: warning: zone 'only-nets' has no interfaces: it matches by 'networks' "
            "only, and forward_to and masquerade need interfaces",
            "r.toml:7:1: warning: accept rule 'ssh' comes after drop rule 'all-tcp' at r.toml:3:1, "
            "which covers it: it can never accept anything",
            "r.toml:22:1: warning: rule 'narrow' can never match: rule 'wide' at r.toml:17:1 "
            "matches everything it does"});
}

TEST_CASE("shadowing over overlapping ranges: each port's earliest covering rule decides") {
  // 'mid' covers 10-20 first; 'wide' then covers what is left of 5-30 (5-9, 21-30).
  // 'at-25' is shadowed by 'wide', 'at-15' by 'mid' (and not by 'wide', added after
  // 'mid' had 15), 'at-40' by the all-ports rule that comes after the others, and
  // 'at-3' by nothing before it but that same rule.
  ParsedPolicy parsed = parse(
      "[[rule]]\nname='mid'\nprotocols='tcp'\nports=['10-20']\naction='drop'\n"       // 1
      "[[rule]]\nname='wide'\nprotocols='tcp'\nports=['5-30']\naction='reject'\n"     // 6
      "[[rule]]\nname='at-25'\nprotocols='tcp'\nports=[25]\naction='drop'\n"          // 11
      "[[rule]]\nname='at-15'\nprotocols='tcp'\nports=[15]\naction='drop'\n"          // 16
      "[[rule]]\nname='at-3'\nprotocols='tcp'\nports=[3]\naction='drop'\n"            // 21
      "[[rule]]\nname='all'\nprotocols='tcp'\naction='drop'\n"                        // 26
      "[[rule]]\nname='at-40'\nprotocols='tcp'\nports=[40]\naction='accept'\n"        // 30
      "[[rule]]\nname='udp-15'\nprotocols='udp'\nports=[15]\naction='drop'\n");       // 35
  CHECK(parsed.ok());
  CHECK(headlines(parsed) ==
        std::vector<std::string>{
            "r.toml:11:1: warning: rule 'at-25' can never match: rule 'wide' at r.toml:6:1 "
            "matches everything it does",
            "r.toml:16:1: warning: rule 'at-15' can never match: rule 'mid' at r.toml:1:1 "
            "matches everything it does",
            "r.toml:30:1: warning: accept rule 'at-40' comes after drop rule 'all' at r.toml:26:1, "
            "which covers it: it can never accept anything"});
}

TEST_CASE("drop-ins merge in name order: a name defined twice names both places") {
  PolicyDir dir;
  dir.write("policy.toml", "[zone.lan]\ninterfaces=['br0']\n[[rule]]\nname='main'\naction='drop'\nprotocols='udp'\n");
  dir.write("policy.d/20-b.toml", "[[rule]]\nname='b'\nfrom='lan'\nprotocols='tcp'\naction='accept'\n");
  dir.write("policy.d/10-a.toml", "[set.s]\nfamily='ipv4'\nelements=['10.1.2.3']\n[[rule]]\nname='a'\nfrom='@s'\naction='accept'\n");
  dir.write("policy.d/ignored.txt", "not toml");
  {
    ParsedPolicy parsed = parse_policy_file(dir.main(), tables());
    REQUIRE_MESSAGE(parsed.ok(), parsed.report());
    REQUIRE(parsed.policy.rules.size() == 3);
    CHECK(parsed.policy.rules[0].name == "main");
    CHECK(parsed.policy.rules[1].name == "a");
    CHECK(parsed.policy.rules[2].name == "b");
    CHECK(parsed.policy.files.size() == 3);
  }
  dir.write("policy.d/30-dup.toml", "\n[[rule]]\nname='a'\naction='drop'\n[policy]\ninput='accept'\n");
  ParsedPolicy parsed = parse_policy_file(dir.main(), tables());
  std::string d = (dir.dir / "policy.d").string();
  CHECK(headlines(parsed) ==
        std::vector<std::string>{
            d + "/30-dup.toml:5:2: error: unknown key 'policy' in a drop-in file"});
  dir.write("policy.d/30-dup.toml", "\n[[rule]]\nname='a'\naction='drop'\n");
  parsed = parse_policy_file(dir.main(), tables());
  CHECK(headlines(parsed) ==
        std::vector<std::string>{d + "/30-dup.toml:2:1: error: name 'a' is already used by the rule at " +
                                 d + "/10-a.toml:4:1"});
}

TEST_CASE("set files: one element per line, comments, errors name the file's own line") {
  PolicyDir dir;
  dir.write("list.txt", "# bad hosts\n203.0.113.0/24\n\n  198.51.100.7  # one\n");
  dir.write("policy.toml", "[set.s]\nfamily='ipv4'\nfile='list.txt'\nelements=['10.0.0.1']\n");
  ParsedPolicy parsed = parse_policy_file(dir.main(), tables());
  REQUIRE_MESSAGE(parsed.ok(), parsed.report());
  REQUIRE(parsed.policy.sets[0].addresses.size() == 3);
  CHECK(to_string(parsed.policy.sets[0].addresses[2]) == "198.51.100.7");

  dir.write("list.txt", "203.0.113.0/24\n  nonsense\n::1\n");
  parsed = parse_policy_file(dir.main(), tables());
  std::string list = (dir.dir / "list.txt").string();
  CHECK(headlines(parsed) ==
        std::vector<std::string>{list + ":2:3: error: 'nonsense' is not a valid element of an ipv4 set",
                                 list + ":3:1: error: '::1' is not a valid element of an ipv4 set"});
}

TEST_CASE("an interface belongs to one zone only") {
  CHECK(headlines(parse("[zone.a]\ninterfaces=['eth0']\n[zone.b]\ninterfaces=['eth1','eth0']\n")) ==
        std::vector<std::string>{
            "r.toml:3:7: error: interface 'eth0' of zone 'b' is already in zone 'a' at r.toml:1:7"});
}
