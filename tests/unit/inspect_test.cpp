// What portierd's Explain and ListPorts answer, without the bus: the packet explained with
// the place of its rule and the DNAT of a published port, and the exposures as the entries
// the adaptor sends (the fields each kind of entry carries, and how they are written).
#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <stdexcept>

#include "compile_policy.h"
#include "inspect.h"
#include "parse_policy.h"

using namespace portier;

namespace {

ir::Address address(const char* text) {
  ir::Address parsed;
  if (inet_pton(AF_INET, text, parsed.bytes.data()) == 1) return parsed;
  parsed.family = ir::Family::ipv6;
  if (inet_pton(AF_INET6, text, parsed.bytes.data()) != 1) throw std::invalid_argument(text);
  return parsed;
}

const char* kPolicy = R"([policy]
input = "drop"

[zone.lan]
interfaces = ["eth0"]

[[rule]]
name = "web-from-lan"
from = "lan"
protocols = "tcp"
ports = [8080]
action = "accept"
)";

Policy policy() {
  ParsedPolicy parsed =
      parse_policy(kPolicy, "i.toml", SystemTables{ServiceTable::parse("ssh 22/tcp\n"), {}});
  REQUIRE_MESSAGE(parsed.ok(), parsed.report());
  return parsed.policy;
}

PublishedPort docker_port() {
  PublishedPort port;
  port.table = "ip nat";
  port.chain = "DOCKER";
  port.ports = {8080, 8080};
  port.target = address("172.17.0.2");
  port.target_ports = ir::PortRange{80, 80};
  return port;
}

const std::vector<HostNetwork> kHost = {{"eth0", address("10.1.0.1"), 24},
                                        {"docker0", address("172.17.0.1"), 16}};

PacketShape shape(const std::vector<std::string>& words, const Policy& policy) {
  std::string error;
  auto parsed = parse_packet_shape(words, policy, error);
  REQUIRE_MESSAGE(parsed, error);
  return *parsed;
}

}  // namespace

TEST_CASE("inspect: a packet to a published port is explained as the DNATed connection") {
  const Policy in_force = policy();
  const ir::Ruleset ruleset = compile_policy(in_force);
  auto explained =
      explain_shape(shape({"tcp", "10.1.0.9:40000", "->", "10.1.0.1:8080", "in", "lan"}, in_force),
                    ruleset, in_force, {docker_port()}, kHost);
  CHECK(explained.published == "DNAT to 172.17.0.2:80 by ip nat DOCKER");
  CHECK(explained.verdict == "accept");
  CHECK(explained.decided_by == "web-from-lan");
  // The rule's place in its file: the [[rule]] header, line 7.
  CHECK(explained.where == "i.toml:7:1");
  CHECK_FALSE(explained.trace.empty());

  // No table publishes 8081: the packet stays on input, where the default decides, and a
  // default has no place in the file.
  auto unpublished =
      explain_shape(shape({"tcp", "10.1.0.9:40000", "->", "10.1.0.1:8081", "in", "lan"}, in_force),
                    ruleset, in_force, {docker_port()}, kHost);
  CHECK(unpublished.published.empty());
  CHECK(unpublished.verdict == "drop");
  CHECK(unpublished.where.empty());
  CHECK(decided_where(in_force, ExplainResult{"drop", "default input", "input", {}}).empty());
}

TEST_CASE("inspect: listeners and published ports become ListPorts entries") {
  PortExposure listener;
  listener.socket.protocol = ir::L4Proto::udp;
  listener.socket.family = ir::Family::ipv6;
  listener.socket.address = address("::");
  listener.socket.port = 53;
  listener.socket.pid = 42;
  listener.socket.process = "dnsmasq";
  listener.socket.uid = 65534;
  listener.socket.user = "nobody";
  listener.socket.unit = "dnsmasq.service";
  listener.socket.cgroup = "system.slice/dnsmasq.service";
  listener.scope = "wildcard";
  listener.zones = {{"lan", true, "dns-in"}, {"anywhere", false, "default input"}};
  listener.warnings = {"a warning"};

  PublishedExposure docker;
  docker.port = docker_port();
  docker.port.ports = {8080, 8090};
  docker.port.comment = "web";
  docker.via = "docker0";
  docker.scope = "wildcard";
  // A port published on one address, to an IPv6 target, keeping its port (no target port).
  PublishedExposure pinned;
  pinned.port.table = "ip6 nat";
  pinned.port.chain = "DOCKER";
  pinned.port.family = ir::Family::ipv6;
  pinned.port.protocol = ir::L4Proto::sctp;
  pinned.port.ports = {443, 443};
  pinned.port.destination = ir::AddressRange{address("fd00::1"), address("fd00::1")};
  pinned.port.target = address("fd00::2");
  pinned.scope = "address";

  auto entries = port_entries({listener}, {docker, pinned});
  REQUIRE(entries.size() == 3);
  const PortEntry& socket = entries[0];
  CHECK_FALSE(socket.published);
  CHECK(socket.protocol == "udp");
  CHECK(socket.family == "ipv6");
  CHECK(socket.address == "::");
  CHECK(socket.port == 53);
  CHECK(socket.scope == "wildcard");
  CHECK(socket.pid == 42);
  CHECK(socket.process == "dnsmasq");
  CHECK(socket.uid == 65534);
  CHECK(socket.user == "nobody");
  CHECK(socket.unit == "dnsmasq.service");
  CHECK(socket.cgroup == "system.slice/dnsmasq.service");
  REQUIRE(socket.zones.size() == 2);
  CHECK(socket.zones[0].decided_by == "dns-in");
  CHECK(socket.warnings == std::vector<std::string>{"a warning"});

  const PortEntry& range = entries[1];
  CHECK(range.published);
  CHECK(range.protocol == "tcp");
  CHECK(range.family == "ipv4");
  CHECK(range.address == "0.0.0.0");  // no destination in the rule: any
  CHECK(range.port == 8080);
  CHECK(range.port_last == 8090);
  CHECK(range.target == "172.17.0.2:80");
  CHECK(range.via == "docker0");
  CHECK(range.published_by == "ip nat DOCKER");
  CHECK(range.comment == "web");

  const PortEntry& one = entries[2];
  CHECK(one.protocol == "sctp");
  CHECK(one.family == "ipv6");
  CHECK(one.address == "fd00::1");
  CHECK(one.port_last == 443);
  CHECK(one.target == "[fd00::2]:443");
  CHECK(one.via.empty());
  CHECK(one.published_by == "ip6 nat DOCKER");
}
