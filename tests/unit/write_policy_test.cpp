#include <doctest/doctest.h>

#include <toml++/toml.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "compile_policy.h"
#include "parse_policy.h"
#include "render_nft.h"
#include "write_policy.h"

using namespace portier;
namespace fs = std::filesystem;

namespace {

// The services and users of tests/golden, as the golden policies were written against.
const SystemTables& golden_tables() {
  static const SystemTables tables{
      ServiceTable::load((fs::path(PORTIER_GOLDEN_DIR) / "services").string()),
      UserTable::load((fs::path(PORTIER_GOLDEN_DIR) / "passwd").string())};
  return tables;
}

// The names of a policy's zones or sets, in the policy's order.
template <class Item>
std::vector<std::string> names(const std::vector<Item>& items) {
  std::vector<std::string> list;
  for (const Item& item : items) list.push_back(item.name);
  return list;
}

}  // namespace

// Written back and read again, every golden and shipped policy compiles to the same
// ruleset: the saved last-good policy means what the original meant.
TEST_CASE("write_policy round-trips every golden and shipped policy") {
  const SystemTables& tables = golden_tables();
  int policies = 0;
  for (const fs::path& dir :
       {fs::path(PORTIER_GOLDEN_DIR), fs::path(PORTIER_SOURCE_DIR) / "rules" / "policies"}) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.path().extension() != ".toml") continue;
      CAPTURE(entry.path().string());
      ParsedPolicy original = parse_policy_file(entry.path().string(), tables);
      REQUIRE_MESSAGE(original.ok(), original.report());
      std::string written = write_policy(original.policy);
      ParsedPolicy again = parse_policy(written, "written.toml", tables);
      REQUIRE_MESSAGE(again.ok(), again.report() << written);
      CHECK(compile_policy(again.policy) == compile_policy(original.policy));
      ++policies;
    }
  }
  CHECK(policies >= 10);
}

// The fuzzer's policy corpus (what it kept as new coverage, and its findings): every one
// that parses writes back to a policy that parses, writes back to the same text and
// compiles to the same ruleset, as fuzz_policy asserts.
TEST_CASE("write_policy round-trips the fuzz corpus of policies") {
  const SystemTables& tables = golden_tables();
  int valid = 0;
  for (const auto& entry :
       fs::directory_iterator(fs::path(PORTIER_SOURCE_DIR) / "tests/fuzz/corpus/fuzz_policy")) {
    CAPTURE(entry.path().string());
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string text{std::istreambuf_iterator<char>(in), {}};
    ParsedPolicy original = parse_policy(text, "/nonexistent/portier-fuzz/policy.toml", tables);
    if (!original.ok()) continue;
    const std::string written = write_policy(original.policy);
    ParsedPolicy again = parse_policy(written, "/nonexistent/portier-fuzz/policy.toml", tables);
    REQUIRE_MESSAGE(again.ok(), again.report() << written);
    CHECK(write_policy(again.policy) == written);
    CHECK(compile_policy(again.policy) == compile_policy(original.policy));
    ++valid;
  }
  CHECK(valid >= 15);  // 17 of the corpus parse (2026-12-02)
}

// fuzz_policy's finding adf6159d: a policy whose written-back copy compiled to another
// ruleset.
TEST_CASE("write_policy: the fuzzer's neighbour-zone policy round-trips") {
  const SystemTables& tables = golden_tables();
  const std::string text =
      R"toml(# Neighbour stacks: Docker's zone renamed and extended, Kubernetes switched off, podman and
# li from 10.42.0.0/16, servi.ces from 10.43.0.0/16.
#
# What Kubernetes doesof this cluster, on Kubernetes' own interfaces.
[zone.kubernetes]
networks = ["10.42.0.0/16", "10.43.0.0/16"]

# Thorward = "drop"

[neighbours]
kubernetes = false

[zone.lan]
interfaces = ["br-lan"]
input = "accept"

[zone.containers]
stack = "docker"
interfaces = ["docker0", "br-*", "dockerlan"]

[[rule]]
name = "web"
action = "accept"
protocols = "tcp"
ports = [80, "8000-8010"]

[[rule]]
name = "admin"
action = "accept"
protocols = "tcp"
ports = 8443
from = "192.0.2.7"
to = "198.51.100.1"
limit = "10/minute"

[[rule]]
name = "owned"
action = "accept"
direction = "in"
protocols = "tcp"
ports = 9000
unit = "web.service"

[[rule]]
name = "containers-not-lan"
direction = "forward"
from = "containers"
to = "lan"
action = "reject"
)toml";
  ParsedPolicy original = parse_policy(text, "fuzzed.toml", tables);
  REQUIRE_MESSAGE(original.ok(), original.report());
  const std::string written = write_policy(original.policy);
  ParsedPolicy again = parse_policy(written, "written.toml", tables);
  REQUIRE_MESSAGE(again.ok(), again.report() << written);
  CAPTURE(written);
  CHECK(render_nft_replace(compile_policy(again.policy)) ==
        render_nft_replace(compile_policy(original.policy)));
  CHECK(compile_policy(again.policy) == compile_policy(original.policy));
}

TEST_CASE("write_policy keeps the order of zones and sets") {
  const SystemTables& tables = golden_tables();
  const std::string text = R"toml(
[zone.wan]
interfaces = ["eth0"]
[zone.dmz]
interfaces = ["eth2"]
[set.zeta]
family = "ipv4"
elements = ["192.0.2.1"]
[set.alpha]
family = "port"
elements = [22]
)toml";
  ParsedPolicy original = parse_policy(text, "ordered.toml", tables);
  REQUIRE_MESSAGE(original.ok(), original.report());
  ParsedPolicy again = parse_policy(write_policy(original.policy), "written.toml", tables);
  REQUIRE_MESSAGE(again.ok(), again.report());
  CHECK(names(original.policy.zones).front() == "wan");
  CHECK(names(again.policy.zones) == names(original.policy.zones));
  CHECK(names(original.policy.sets) == std::vector<std::string>{"zeta", "alpha"});
  CHECK(names(again.policy.sets) == names(original.policy.sets));
}

// Strings with quotes and control characters, a key that is not bare, a bind, a set with
// a timeout, a forward: each comes back as it was.
TEST_CASE("write_policy quotes what needs quoting") {
  const SystemTables& tables = golden_tables();
  const std::string text = R"toml(
[policy]
input = "drop"
[zone."lan.2"]
interfaces = ["eth1"]
[zone.wan]
interfaces = ["eth0"]
[set.bl]
family = "ipv4"
elements = ["192.0.2.0/24"]
timeout = "1h"
[[rule]]
name = "ssh.2"
action = "accept"
protocols = "tcp"
ports = [22]
from = ["lan.2", "@bl"]
comment = "a \"q\"\tb\u0001 \\ c"
[[bind]]
name = "b"
protocols = "tcp"
ports = [80]
unit = "web.service"
[[forward]]
name = "f"
from = "wan"
protocols = "tcp"
ports = [8080]
to = "192.168.1.10:80"
)toml";
  ParsedPolicy original = parse_policy(text, "quoted.toml", tables);
  REQUIRE_MESSAGE(original.ok(), original.report());
  const std::string written = write_policy(original.policy);
  CAPTURE(written);
  ParsedPolicy again = parse_policy(written, "written.toml", tables);
  REQUIRE_MESSAGE(again.ok(), again.report());
  CHECK(written.find("[zone.'lan.2']") != std::string::npos);
  CHECK(written.find(R"(comment = "a \"q\"\tb\u0001 \\ c")") != std::string::npos);
  REQUIRE(again.policy.rules.size() == 1);
  CHECK(again.policy.rules[0].comment == "a \"q\"\tb\x01 \\ c");
  CHECK(again.policy.binds.size() == 1);
  CHECK(again.policy.forwards.size() == 1);
  CHECK(write_policy(again.policy) == written);
  CHECK(compile_policy(again.policy) == compile_policy(original.policy));
}

TEST_CASE("edit_enabled replaces the one enabled value, or adds a line under the name") {
  const std::string text =
      "# my rules\n"
      "[[rule]]\nname='ssh'\nprotocols='tcp'\nports=[22]\naction='accept'\n"
      "[[rule]]\nname='web'   # the "
      "web\nprotocols='tcp'\nports=[80]\naction='accept'\nenabled=false "
      " # not yet\n";
  CHECK(edit_enabled(text, "p.toml", "web", true) ==
        "# my rules\n"
        "[[rule]]\nname='ssh'\nprotocols='tcp'\nports=[22]\naction='accept'\n"
        "[[rule]]\nname='web'   # the web\nprotocols='tcp'\nports=[80]\naction='accept'\n"
        "enabled=true  # not yet\n");
  CHECK(edit_enabled(text, "p.toml", "ssh", false) ==
        "# my rules\n"
        "[[rule]]\nname='ssh'\nenabled = false\nprotocols='tcp'\nports=[22]\naction='accept'\n"
        "[[rule]]\nname='web'   # the web\nprotocols='tcp'\nports=[80]\naction='accept'\n"
        "enabled=false  # not yet\n");
  // The same value again is the same text.
  CHECK(edit_enabled(text, "p.toml", "web", false) == text);
  CHECK_FALSE(edit_enabled(text, "p.toml", "nope", true));
  CHECK_THROWS_AS(edit_enabled("[[rule]\n", "p.toml", "x", true), toml::parse_error);
}

TEST_CASE(
    "edit_enabled finds forwards and inline tables, keeps the indent and a missing last newline") {
  CHECK(edit_enabled("[[forward]]\n  name = 'cam'\n  enabled = true", "p.toml", "cam", false) ==
        "[[forward]]\n  name = 'cam'\n  enabled = false");
  CHECK(edit_enabled("[[forward]]\n\tname = 'cam'\n\tto = '10.0.0.2'\n", "p.toml", "cam", false) ==
        "[[forward]]\n\tname = 'cam'\n\tenabled = false\n\tto = '10.0.0.2'\n");
  // A zone's table named like the rule is not the rule.
  CHECK_FALSE(edit_enabled("[zone.ssh]\nname = 'ssh'\n", "p.toml", "ssh", true));
}

TEST_CASE("write_rule gives a rule given at run time as policy text that parses back to it") {
  const std::string text =
      write_rule({"timed-3", "in", "accept", {"tcp"}, {"8080", "9000-9001"}, {"10.0.0.0/8"}, {}});
  CHECK(text ==
        "[[rule]]\naction = 'accept'\ndirection = 'in'\nfrom = [ '10.0.0.0/8' ]\n"
        "name = 'timed-3'\nports = [ '8080', '9000-9001' ]\nprotocols = [ 'tcp' ]\n");
  ParsedPolicy parsed = parse_policy_fragment(text, "timed rule", SystemTables{});
  REQUIRE_MESSAGE(parsed.ok(), parsed.report());
  REQUIRE(parsed.policy.rules.size() == 1);
  const Rule& rule = parsed.policy.rules[0];
  CHECK(rule.name == "timed-3");
  CHECK(rule.ports == std::vector<PortRange>{{8080, 8080}, {9000, 9001}});
  CHECK(rule.protocols == std::vector<Protocol>{Protocol::tcp});
  // Lists that are empty are left out; a value the parser refuses is its diagnostic.
  CHECK(write_rule({"timed-4", "out", "drop", {}, {}, {}, {}}) ==
        "[[rule]]\naction = 'drop'\ndirection = 'out'\nname = 'timed-4'\n");
  CHECK_FALSE(
      parse_policy_fragment(write_rule({"t", "in", "alow", {}, {}, {}, {}}), "timed rule", {})
          .ok());
}

// fuzz_policy's finding 6fc2d89a: a set with no elements was written with `elements = []`,
// which the parser refuses.
TEST_CASE("write_policy: a set with no elements is written without the key") {
  for (const char* family : {"port", "ipv4", "ipv6"}) {
    CAPTURE(family);
    const std::string text = std::string("[set.empty]\nfamily = \"") + family + "\"\n";
    ParsedPolicy original = parse_policy(text, "empty.toml", golden_tables());
    REQUIRE_MESSAGE(original.ok(), original.report());
    const std::string written = write_policy(original.policy);
    ParsedPolicy again = parse_policy(written, "written.toml", golden_tables());
    REQUIRE_MESSAGE(again.ok(), again.report() << written);
    CHECK(compile_policy(again.policy) == compile_policy(original.policy));
  }
}
