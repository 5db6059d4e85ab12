// The neighbours' zones (Docker, podman, libvirt, Kubernetes): built in, renamed, switched
// off; what they add to the compiled ruleset; published ports decided by the input rules.
#include <doctest/doctest.h>

#include <algorithm>

#include "compile_neighbours.h"
#include "compile_policy.h"
#include "neighbours.h"
#include "parse_policy.h"
#include "write_policy.h"

using namespace portier;

namespace {

ParsedPolicy parse(std::string_view text) {
  return parse_policy(text, "n.toml",
                      SystemTables{ServiceTable::parse("http 80/tcp\n"), UserTable::parse("")});
}

Policy policy_from(std::string_view text) {
  ParsedPolicy parsed = parse(text);
  REQUIRE_MESSAGE(parsed.ok(), parsed.report());
  return parsed.policy;
}

std::vector<std::string> zone_summary(const Policy& policy) {
  std::vector<std::string> zones;
  for (const Zone& zone : policy.zones) {
    std::string line = zone.name + (zone.stack.empty() ? "" : "/" + zone.stack) +
                       (zone.builtin ? " builtin:" : ":");
    for (const std::string& name : zone.interfaces) line += " " + name;
    zones.push_back(line);
  }
  return zones;
}

const ir::Chain* find_chain(const ir::Ruleset& ruleset, std::string_view name) {
  for (const ir::Chain& chain : ruleset.chains)
    if (chain.name == name) return &chain;
  return nullptr;
}

std::vector<std::string> comments(const ir::Chain& chain) {
  std::vector<std::string> found;
  for (const ir::Rule& rule : chain.rules) found.push_back(rule.comment);
  return found;
}

}  // namespace

TEST_CASE("neighbours: four built-in zones, out of the box") {
  Policy policy = policy_from("[policy]\ninput = \"drop\"\n");
  CHECK(zone_summary(policy) ==
        std::vector<std::string>{
            "docker/docker builtin: docker0 br-*",
            "podman/podman builtin: podman* cni-podman*",
            "libvirt/libvirt builtin: virbr*",
            "kubernetes/kubernetes builtin: cni0 flannel* cali* cilium* kube-*",
        });
}

TEST_CASE("neighbours: switched off, renamed and extended, given an input default") {
  Policy policy = policy_from(R"(
[neighbours]
podman = false
kubernetes = true

[zone.lan]
interfaces = ["br-lan", "virbr0"]

[zone.containers]
stack = "docker"
interfaces = ["docker0", "br-*", "mybridge"]

[zone.libvirt]
input = "reject"
)");
  // libvirt's zone takes its interfaces; a name the lan zone has is the lan's.
  CHECK(zone_summary(policy) ==
        std::vector<std::string>{
            "lan: br-lan virbr0",
            "containers/docker: docker0 br-* mybridge",
            "libvirt/libvirt: virbr*",
            "kubernetes/kubernetes builtin: cni0 flannel* cali* cilium* kube-*",
        });
  // Written back and read again: the same zones.
  Policy again = policy_from(write_policy(policy));
  std::vector<std::string> before = zone_summary(policy), after = zone_summary(again);
  std::sort(before.begin(), before.end());
  std::sort(after.begin(), after.end());
  CHECK(after == before);
  CHECK(again.neighbours.off == std::vector<std::string>{"podman"});
}

TEST_CASE("neighbours: mistakes are reported where they are") {
  ParsedPolicy bad = parse(R"(
[neighbours]
dokcer = false
published = "yes"

[zone.a]
stack = "libvrit"

[zone.b]
stack = "docker"

[zone.c]
stack = "docker"
)");
  CHECK_FALSE(bad.ok());
  const std::string report = bad.report();
  CHECK(report.find(
            "n.toml:3:1: error: unknown key 'dokcer' in [neighbours] (did you mean 'docker'?)") !=
        std::string::npos);
  CHECK(report.find("n.toml:4:13: error: 'published' must be \"policy\"") != std::string::npos);
  CHECK(report.find("n.toml:7:9: error: unknown stack 'libvrit' (did you mean 'libvirt'?)") !=
        std::string::npos);
  INFO(report);
}

TEST_CASE("neighbours: a second zone for one stack is an error") {
  ParsedPolicy bad = parse("[zone.b]\nstack = \"docker\"\n[zone.c]\nstack = \"docker\"\n");
  CHECK_FALSE(bad.ok());
  CHECK(bad.report().find("zone 'c' is for stack 'docker', as zone 'b' at n.toml:1:7 already is") !=
        std::string::npos);
}

TEST_CASE("neighbours: forward leaves their traffic to them after the policy's forward rules") {
  Policy policy = policy_from(R"(
[zone.lan]
interfaces = ["br-lan"]

[[rule]]
name = "no-smb"
direction = "forward"
protocols = "tcp"
ports = 445
action = "drop"
)");
  ir::Ruleset ruleset = compile_policy(policy);
  const ir::Chain* forward = find_chain(ruleset, kForwardChain);
  REQUIRE(forward);
  std::vector<std::string> names = comments(*forward);
  auto first_left = std::find(names.begin(), names.end(), "left to docker");
  REQUIRE(first_left != names.end());
  CHECK(std::find(names.begin(), first_left, "no-smb") != first_left);
  // The wildcard "br-*" of Docker does not take the lan's bridge.
  bool excluded = false;
  for (const ir::Rule& rule : forward->rules)
    if (rule.comment == "left to docker" && rule.matches.size() == 2)
      excluded = rule.matches[1] == ir::Match{ir::InterfaceNameIn{false, {"br-lan"}, true}};
  CHECK(excluded);
}

TEST_CASE("neighbours: DNATed connections to them meet the input rules on their original port") {
  Policy policy = policy_from(R"(
[[rule]]
name = "web"
protocols = "tcp"
ports = [80, "8000-8010"]
action = "accept"

[[rule]]
name = "owned"
protocols = "tcp"
ports = 9000
unit = "web.service"
action = "accept"
)");
  ir::Ruleset ruleset = compile_policy(policy);
  const ir::Chain* published = find_chain(ruleset, kPublishedChain);
  REQUIRE(published);
  std::vector<std::vector<ir::Match>> web;
  for (const ir::Rule& rule : published->rules)
    if (rule.comment == "web") web.push_back(rule.matches);
  const ir::L4ProtoIn tcp{{ir::L4Proto::tcp}};
  CHECK(web == std::vector<std::vector<ir::Match>>{{tcp, ir::CtOriginalDestPort{{80, 80}}},
                                                   {tcp, ir::CtOriginalDestPort{{8000, 8010}}}});
  // A rule about a local socket has nothing to say about a container's port.
  CHECK(std::none_of(published->rules.begin(), published->rules.end(),
                     [](const ir::Rule& rule) { return rule.comment == "owned"; }));
  CHECK(published->rules.back().comment == "default input");
  CHECK(published->rules.back().verdict.kind == ir::VerdictKind::drop);
  // Toggling "web" takes its copies out too.
  ir::Ruleset off = without_owners(ruleset, {"web"});
  std::size_t left = 0;
  for (const ir::Rule& rule : find_chain(off, kPublishedChain)->rules)
    left += rule.comment == "web";
  CHECK(left == 0);
  // The forward chain sends them there, before anything else decides.
  const ir::Chain* forward = find_chain(ruleset, kForwardChain);
  REQUIRE(forward);
  REQUIRE(forward->rules.size() > 2);
  CHECK(forward->rules[2].matches.front() == ir::Match{ir::CtStatusDnat{}});
  CHECK(forward->rules[2].verdict.kind == ir::VerdictKind::jump);
  CHECK(forward->rules[2].verdict.chain == kPublishedChain);
}

TEST_CASE("neighbours: published = \"open\" accepts what they DNAT: off, nothing of them is left") {
  ir::Ruleset open = compile_policy(policy_from("[neighbours]\npublished = \"open\"\n"));
  CHECK_FALSE(find_chain(open, kPublishedChain));
  const ir::Chain* forward = find_chain(open, kForwardChain);
  REQUIRE(forward);
  const std::vector<std::string> names = comments(*forward);
  CHECK(std::count(names.begin(), names.end(), "published ports open") > 0);

  ir::Ruleset none = compile_policy(policy_from(
      "[neighbours]\ndocker = false\npodman = false\nlibvirt = false\nkubernetes = false\n"));
  ir::Ruleset plain = compile_policy(policy_from("[policy]\ninput = \"drop\"\n"));
  CHECK_FALSE(find_chain(none, kPublishedChain));
  CHECK(none.chains.size() + 1 == plain.chains.size());
}

TEST_CASE("neighbours: libvirt's guests get DHCP and DNS on input, before the default") {
  ir::Ruleset ruleset = compile_policy(policy_from("[policy]\ninput = \"drop\"\n"));
  const ir::Chain* input = find_chain(ruleset, kInputChain);
  REQUIRE(input);
  std::vector<std::vector<ir::Match>> guests;
  for (const ir::Rule& rule : input->rules)
    if (rule.comment == "libvirt guests: dhcp, dns") guests.push_back(rule.matches);
  const ir::InterfaceNameIn virbr{false, {"virbr*"}, false};
  CHECK(guests == std::vector<std::vector<ir::Match>>{
                      {virbr, ir::L4ProtoIn{{ir::L4Proto::udp}},
                       ir::DestPortIn{{{53, 53}, {67, 67}, {547, 547}}}},
                      {virbr, ir::L4ProtoIn{{ir::L4Proto::tcp}}, ir::DestPortIn{{{53, 53}}}}});
}

// aardvark-dns answers a podman network's containers on its bridge's address, on the host:
// under input = "drop" they could not look up a name (each other's, or the internet's).
TEST_CASE("neighbours: podman's containers get DNS on input, before the default: Docker's none") {
  ir::Ruleset ruleset = compile_policy(policy_from("[policy]\ninput = \"drop\"\n"));
  const ir::Chain* input = find_chain(ruleset, kInputChain);
  REQUIRE(input);
  std::vector<std::vector<ir::Match>> podman;
  std::vector<std::string> names = comments(*input);
  for (const ir::Rule& rule : input->rules)
    if (rule.comment == "podman guests: dns") podman.push_back(rule.matches);
  const ir::InterfaceNameIn podman_if{false, {"podman*"}, false};
  const ir::InterfaceNameIn cni{false, {"cni-podman*"}, false};
  const ir::L4ProtoIn udp{{ir::L4Proto::udp}};
  const ir::L4ProtoIn tcp{{ir::L4Proto::tcp}};
  const ir::DestPortIn dns{{{53, 53}}};
  CHECK(podman ==
        std::vector<std::vector<ir::Match>>{
            {podman_if, udp, dns}, {podman_if, tcp, dns}, {cni, udp, dns}, {cni, tcp, dns}});
  CHECK(std::none_of(names.begin(), names.end(),
                     [](const std::string& name) { return name.starts_with("docker guests"); }));
  CHECK(std::none_of(names.begin(), names.end(), [](const std::string& name) {
    return name.starts_with("kubernetes guests");
  }));
  // The accepts come before the input default. Here that default is the chain's policy
  // (drop) with no rule of its own; with denied packets logged, it begins with the log rule.
  ir::Ruleset logged =
      compile_policy(policy_from("[policy]\ninput = \"drop\"\nlog = \"denied\"\n"));
  const ir::Chain* logged_input = find_chain(logged, kInputChain);
  REQUIRE(logged_input);
  const auto& rules = logged_input->rules;
  const auto last_dns = std::find_if(rules.rbegin(), rules.rend(), [](const ir::Rule& rule) {
    return rule.comment == "podman guests: dns";
  });
  const auto denied_log = std::find_if(rules.begin(), rules.end(), [](const ir::Rule& rule) {
    return rule.log && rule.log->prefix.starts_with("portier denied input");
  });
  REQUIRE(last_dns != rules.rend());
  REQUIRE(denied_log != rules.end());
  CHECK(last_dns.base() <= denied_log);
  CHECK(denied_log + 1 == rules.end());
}

TEST_CASE("neighbours: guest_service_matches and their comment follow the stack") {
  const NeighbourStack dns_only{"x", {}, false, true};
  const NeighbourStack dhcp_only{"y", {}, true, false};
  const NeighbourStack nothing{"z", {}, false, false};
  CHECK(guest_service_matches(dns_only) ==
        std::vector<std::vector<ir::Match>>{
            {ir::L4ProtoIn{{ir::L4Proto::udp}}, ir::DestPortIn{{{53, 53}}}},
            {ir::L4ProtoIn{{ir::L4Proto::tcp}}, ir::DestPortIn{{{53, 53}}}}});
  CHECK(guest_service_matches(dhcp_only) ==
        std::vector<std::vector<ir::Match>>{
            {ir::L4ProtoIn{{ir::L4Proto::udp}}, ir::DestPortIn{{{67, 67}, {547, 547}}}}});
  CHECK(guest_service_matches(nothing).empty());
  CHECK(guest_service_comment("x", dns_only) == "x guests: dns");
  CHECK(guest_service_comment("y", dhcp_only) == "y guests: dhcp");
  CHECK(guest_service_comment("libvirt", *find_stack("libvirt")) == "libvirt guests: dhcp, dns");
}

TEST_CASE("neighbours: published_alternatives") {
  const ir::L4ProtoIn tcp{{ir::L4Proto::tcp}};
  ir::AddressRange host{};
  host.first.bytes = host.last.bytes = {198, 51, 100, 1};
  ir::AddressIn to{ir::Family::ipv4, true, {host}};
  ir::AddressIn from{ir::Family::ipv4, false, {host}};
  CHECK(
      published_alternatives({from, to, tcp, ir::DestPortIn{{{22, 22}}}}) ==
      std::vector<std::vector<ir::Match>>{{from, ir::CtOriginalAddressIn{ir::Family::ipv4, {host}},
                                           tcp, ir::CtOriginalDestPort{{22, 22}}}});
  CHECK(published_alternatives({ir::AddressInSet{ir::Family::ipv4, true, "s"}}).empty());
  CHECK(published_alternatives({ir::SocketUid{0, false}}).empty());
  CHECK(published_alternatives({}) == std::vector<std::vector<ir::Match>>{{}});
}

TEST_CASE("neighbours: which stacks have interfaces on the host (status)") {
  Policy policy =
      policy_from("[zone.lan]\ninterfaces = [\"br-lan\"]\n[neighbours]\npodman = false\n");
  CHECK(neighbours_seen(policy, {"lo", "eth0", "br-lan", "docker0", "br-5f3a", "virbr0", "podman0",
                                 "flannel.1", "cni0"}) ==
        std::map<std::string, std::vector<std::string>>{
            {"docker", {"br-5f3a", "docker0"}},
            {"kubernetes", {"cni0", "flannel.1"}},
            {"libvirt", {"virbr0"}},
        });
  CHECK(neighbours_seen(policy, {"lo", "eth0", "br-lan"}).empty());
}
