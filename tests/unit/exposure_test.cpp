// The exposure report with hand-made sockets: which packets it asks about (through a
// stand-in explainer that records them), how it reads the answers, and its warnings; then
// the same questions against compiled policies with the real explain_packet.
#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <functional>
#include <stdexcept>
#include <string>

#include "compile_policy.h"
#include "exposure.h"
#include "parse_policy.h"

using namespace portier;

namespace {

Policy policy_from(std::string_view text) {
  ParsedPolicy parsed = parse_policy(
      text, "e.toml",
      SystemTables{
          ServiceTable::parse("ssh 22/tcp\nhttp 80/tcp\n"),
          UserTable::parse("root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")});
  REQUIRE_MESSAGE(parsed.ok(), parsed.report());
  return parsed.policy;
}

ir::Address ip(const char* text) {
  ir::Address address;
  if (inet_pton(AF_INET, text, address.bytes.data()) == 1) return address;
  address.family = ir::Family::ipv6;
  // No REQUIRE: this also runs while statics are initialised, outside any test.
  if (inet_pton(AF_INET6, text, address.bytes.data()) != 1) throw std::invalid_argument(text);
  return address;
}

std::string text_of(const std::optional<ir::Address>& address) {
  if (!address) return "?";
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(address->family == ir::Family::ipv4 ? AF_INET : AF_INET6, address->bytes.data(), text,
            sizeof text);
  return text;
}

ListeningSocket tcp(const char* address, std::uint16_t port) {
  ListeningSocket socket;
  socket.address = ip(address);
  socket.family = socket.address.family;
  socket.port = port;
  socket.pid = 321;
  socket.process = "nc";
  socket.uid = 0;
  socket.user = "root";
  socket.cgroup = "user.slice/user-0.slice/session-1.scope";
  socket.unit = "session-1.scope";
  return socket;
}

ListeningSocket udp(const char* address, std::uint16_t port) {
  ListeningSocket socket = tcp(address, port);
  socket.protocol = ir::L4Proto::udp;
  return socket;
}

// Records every packet asked about and answers with `decide`.
struct RecordingExplainer {
  std::vector<PacketShape> asked;
  std::function<ExplainResult(const PacketShape&)> decide;

  Explainer explainer() {
    return [this](const ir::Ruleset&, const PacketShape& packet) {
      asked.push_back(packet);
      return decide(packet);
    };
  }
};

ExplainResult accept(std::string by) { return {"accept", std::move(by), "input", {}}; }
ExplainResult drop(std::string by) { return {"drop", std::move(by), "input", {}}; }

// For a socket's PortExposure and a published port's PublishedExposure alike.
template <typename Exposure>
const ZoneVerdict& zone(const Exposure& exposure, std::string_view name) {
  for (const ZoneVerdict& verdict : exposure.zones)
    if (verdict.zone == name) return verdict;
  FAIL("no zone " << name);
  throw;
}

const char* kZones = R"(
[policy]
input = "drop"

[zone.lan]
interfaces = ["ppp*", "br-lan"]

[zone.office]
networks = ["10.9.0.0/16", "fd09::/48"]

[zone.v4only]
networks = ["172.20.0.0/16"]

[[rule]]
name = "ssh-from-lan"
from = "lan"
protocols = "tcp"
ports = [22]
action = "accept"
)";

const std::vector<ir::Address> kHost = {ip("192.168.1.1"), ip("10.9.0.1"), ip("fd00::1")};

}  // namespace

TEST_CASE("exposure: one packet per zone and one from anywhere, in policy order") {
  Policy policy = policy_from(kZones);
  RecordingExplainer explain{{}, [](const PacketShape& p) {
                               if (p.direction == Direction::out)
                                 return accept("established,related");
                               return p.in_interface == "br-lan" ? accept("ssh-from-lan")
                                                                 : drop("default input");
                             }};
  ListeningSocket socket = tcp("192.168.1.1", 22);
  auto report = port_exposure({}, policy, {socket}, kHost, explain.explainer());
  REQUIRE(report.size() == 1);
  const PortExposure& exposure = report[0];
  CHECK(exposure.scope == "address");
  REQUIRE(exposure.zones.size() == 4);
  CHECK(exposure.zones[0].zone == "lan");
  CHECK(exposure.zones[1].zone == "office");
  CHECK(exposure.zones[2].zone == "v4only");
  CHECK(exposure.zones[3].zone == "anywhere");
  CHECK(exposure.zones[0].accepted);
  CHECK(exposure.zones[0].decided_by == "ssh-from-lan");
  CHECK_FALSE(exposure.zones[3].accepted);
  CHECK(exposure.zones[3].decided_by == "default input");
  CHECK(exposure.warnings.empty());

  // lan: the SYN in and, because it was accepted, the SYN-ACK out; the others one each.
  REQUIRE(explain.asked.size() == 5);
  const PacketShape& syn = explain.asked[0];
  CHECK(syn.direction == Direction::in);
  CHECK(syn.family == ir::Family::ipv4);
  CHECK(syn.protocol == ir::L4Proto::tcp);
  CHECK(syn.ct_state == ir::ct_new);
  CHECK(syn.in_interface == "br-lan");  // the first exact name, not the wildcard
  CHECK(text_of(syn.destination) == "192.168.1.1");
  CHECK(syn.destination_port == 22);
  CHECK(syn.socket_uid == 0u);
  CHECK(syn.socket_cgroup == std::optional<std::string>("user.slice/user-0.slice/session-1.scope"));
  const PacketShape& answer = explain.asked[1];
  CHECK(answer.direction == Direction::out);
  CHECK(answer.ct_state == ir::ct_established);
  CHECK(answer.out_interface == "br-lan");
  CHECK(answer.source_port == 22);
  CHECK(answer.source == syn.destination);
  CHECK(answer.destination == syn.source);

  // office: from one of its own addresses, on an interface of no zone.
  const PacketShape& office = explain.asked[2];
  CHECK(text_of(office.source) == "10.9.0.1");
  CHECK(office.in_interface == "ext0");
  // anywhere: an interface of no zone and an address no zone or set claims.
  const PacketShape& anywhere = explain.asked[4];
  CHECK(anywhere.in_interface == "ext0");
  CHECK(text_of(anywhere.source) == "203.0.113.9");
}

TEST_CASE(
    "exposure: a zone of wildcard interfaces only, and an unzoned name that avoids wildcards") {
  Policy policy = policy_from(R"(
[zone.wan]
interfaces = ["ppp*", "e*"]
)");
  RecordingExplainer explain{{}, [](const PacketShape&) { return drop("default input"); }};
  port_exposure({}, policy, {tcp("0.0.0.0", 80)}, {ip("192.168.1.1")}, explain.explainer());
  REQUIRE(explain.asked.size() == 2);
  CHECK(explain.asked[0].in_interface == "ppp0");
  CHECK(explain.asked[1].in_interface == "uplink0");  // ext0 would be wan's (e*)
}

TEST_CASE("exposure: loopback sockets are reachable from nowhere outside") {
  Policy policy = policy_from(kZones);
  RecordingExplainer explain{{}, [](const PacketShape&) { return accept("everything"); }};
  auto report = port_exposure(
      {}, policy, {tcp("127.0.0.1", 631), tcp("::1", 631), tcp("::ffff:127.0.0.53", 53)}, kHost,
      explain.explainer());
  CHECK(explain.asked.empty());
  for (const PortExposure& exposure : report) {
    CHECK(exposure.scope == "loopback");
    REQUIRE(exposure.zones.size() == 4);
    for (const ZoneVerdict& verdict : exposure.zones) {
      CHECK_FALSE(verdict.accepted);
      CHECK(verdict.decided_by == "bound to loopback");
    }
    CHECK(exposure.warnings.empty());
  }
}

TEST_CASE("exposure: wildcard sockets try the host's addresses of each family they take") {
  Policy policy = policy_from("[policy]\ninput = \"drop\"\n");
  // Open only on the IPv6 address: one of the host's addresses is enough.
  RecordingExplainer explain{{}, [](const PacketShape& p) {
                               if (p.direction == Direction::out)
                                 return accept("established,related");
                               return p.destination && *p.destination == ip("fd00::1")
                                          ? accept("v6-only-rule")
                                          : drop("default input");
                             }};
  ListeningSocket dual = tcp("::", 8080);
  dual.v6_only = false;
  auto report = port_exposure({}, policy, {dual}, kHost, explain.explainer());
  REQUIRE(report[0].zones.size() == 1);
  CHECK(report[0].scope == "wildcard");
  CHECK(report[0].zones[0].accepted);
  CHECK(report[0].zones[0].decided_by == "v6-only-rule (IPv6 only)");
  REQUIRE(report[0].warnings.size() == 1);
  CHECK(report[0].warnings[0] ==
        "port 8080/tcp listens on all addresses and is open from anywhere (v6-only-rule (IPv6 "
        "only))");
  // fd00::1 (SYN and answer), then 192.168.1.1 and 10.9.0.1 over IPv4.
  REQUIRE(explain.asked.size() == 4);
  CHECK(text_of(explain.asked[2].destination) == "192.168.1.1");
  CHECK(text_of(explain.asked[3].destination) == "10.9.0.1");
  CHECK(explain.asked[3].family == ir::Family::ipv4);
  CHECK(text_of(explain.asked[3].source) == "203.0.113.9");

  // With IPV6_V6ONLY, IPv4 is not asked about.
  explain.asked.clear();
  explain.decide = [](const PacketShape&) { return drop("default input"); };
  ListeningSocket v6only = udp("::", 5353);
  v6only.v6_only = true;
  report = port_exposure({}, policy, {v6only}, kHost, explain.explainer());
  REQUIRE(explain.asked.size() == 1);
  CHECK(explain.asked[0].family == ir::Family::ipv6);
  CHECK_FALSE(report[0].zones[0].accepted);
  CHECK(report[0].zones[0].decided_by == "default input");
  CHECK(report[0].warnings.empty());

  // An IPv4-mapped address is an IPv4 destination.
  explain.asked.clear();
  report = port_exposure({}, policy, {tcp("::ffff:192.168.1.1", 25)}, kHost, explain.explainer());
  REQUIRE(explain.asked.size() == 1);
  CHECK(explain.asked[0].family == ir::Family::ipv4);
  CHECK(text_of(explain.asked[0].destination) == "192.168.1.1");
  CHECK(report[0].scope == "address");
}

TEST_CASE("exposure: a zone of IPv4 networks sends no IPv6") {
  Policy policy = policy_from(kZones);
  RecordingExplainer explain{{}, [](const PacketShape&) { return accept("all"); }};
  ListeningSocket socket = udp("fd00::1", 53);
  auto report = port_exposure({}, policy, {socket}, kHost, explain.explainer());
  CHECK(zone(report[0], "v4only").decided_by == "v4only has no IPv6 network");
  CHECK_FALSE(zone(report[0], "v4only").accepted);
  CHECK(zone(report[0], "office").accepted);
  CHECK(explain.asked.size() == 3);  // UDP: no answer is asked about
}

TEST_CASE("exposure: a TCP answer the ruleset drops closes the port") {
  Policy policy = policy_from("[policy]\ninput = \"accept\"\n");
  RecordingExplainer explain{{}, [](const PacketShape& p) {
                               return p.direction == Direction::in ? accept("default input")
                                                                   : drop("web-owner");
                             }};
  auto report = port_exposure({}, policy, {tcp("192.168.1.1", 80)}, kHost, explain.explainer());
  CHECK_FALSE(report[0].zones[0].accepted);
  CHECK(report[0].zones[0].decided_by == "web-owner (on the answer)");
}

TEST_CASE("exposure: a bind's port served by someone else") {
  Policy policy = policy_from(R"(
[policy]
input = "accept"

[[bind]]
name = "ssh-owner"
protocols = "tcp"
ports = [22]
unit = "ssh.service"

[[bind]]
name = "lab-owner"
protocols = ["tcp", "udp"]
ports = ["8000-8060"]
cgroup = "/lab/allowed"

[[bind]]
name = "nobody-owner"
protocols = "udp"
ports = [8082]
user = "nobody"
)");
  RecordingExplainer explain{{}, [](const PacketShape&) { return drop("default input"); }};

  ListeningSocket intruder = tcp("0.0.0.0", 22);
  ListeningSocket sshd = tcp("0.0.0.0", 22);
  sshd.process = "sshd";
  sshd.cgroup = "system.slice/ssh.service";
  ListeningSocket lab_child = udp("0.0.0.0", 8050);
  lab_child.cgroup = "lab/allowed/worker";  // below the bind's cgroup: fine
  ListeningSocket lab_sibling = udp("0.0.0.0", 8050);
  lab_sibling.cgroup = "lab/allowed-not";
  lab_sibling.pid = 0;
  lab_sibling.process = "";
  ListeningSocket as_root = udp("0.0.0.0", 8082);
  ListeningSocket as_nobody = udp("0.0.0.0", 8082);
  as_nobody.uid = 65534;
  ListeningSocket tcp_8082 = tcp("0.0.0.0", 8082);  // the bind is UDP only

  auto report = port_exposure(
      {}, policy, {intruder, sshd, lab_child, lab_sibling, as_root, as_nobody, tcp_8082}, kHost,
      explain.explainer());
  REQUIRE(report.size() == 7);
  REQUIRE(report[0].warnings.size() == 1);
  CHECK(report[0].warnings[0] ==
        "port 22/tcp is tied to ssh.service by bind 'ssh-owner' but served by nc (pid 321, "
        "user.slice/user-0.slice/session-1.scope)");
  CHECK(report[1].warnings.empty());
  CHECK(report[2].warnings.empty());
  REQUIRE(report[3].warnings.size() == 1);
  CHECK(report[3].warnings[0] ==
        "port 8050/udp is tied to cgroup lab/allowed by bind 'lab-owner' but served by an unknown "
        "process "
        "(lab/allowed-not)");
  REQUIRE(report[4].warnings.size() == 1);
  CHECK(report[4].warnings[0] ==
        "port 8082/udp is tied to user nobody by bind 'nobody-owner' but served by nc (pid 321, "
        "user root)");
  CHECK(report[5].warnings.empty());
  CHECK(report[6].warnings.empty());
}

// ---------------------------------------------------------------------------------------
// The real evaluator on compiled policies.

namespace {

bool explain_available() {
  try {
    explain_packet(compile_policy(policy_from("")), PacketShape{});
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

TEST_CASE("exposure with explain_packet: zones, defaults and a bind") {
  if (!explain_available()) {
    MESSAGE("explain_packet is not in this build yet: skipped");
    return;
  }
  Policy policy = policy_from(R"(
[policy]
input = "drop"

[zone.lan]
interfaces = ["veth-lan"]

[zone.dmz]
interfaces = ["veth-dmz"]

[[rule]]
name = "web-in"
protocols = "tcp"
ports = [80]
action = "accept"

[[rule]]
name = "ssh-from-lan"
from = "lan"
protocols = "tcp"
ports = [22]
action = "accept"

[[rule]]
name = "dns-in"
protocols = "udp"
ports = [53]
action = "accept"

[[bind]]
name = "lab-owner"
protocols = "tcp"
ports = [8081]
cgroup = "lab/allowed"

[[rule]]
name = "lab-in"
protocols = "tcp"
ports = [8081]
action = "accept"
)");
  ir::Ruleset ruleset = compile_policy(policy);
  std::vector<ir::Address> host = {ip("10.1.0.1"), ip("10.2.0.1")};

  ListeningSocket lab_owner = tcp("0.0.0.0", 8081);
  lab_owner.cgroup = "lab/allowed";
  auto report =
      port_exposure(ruleset, policy,
                    {tcp("0.0.0.0", 80), tcp("0.0.0.0", 22), udp("0.0.0.0", 53), tcp("0.0.0.0", 25),
                     tcp("127.0.0.1", 80), lab_owner, tcp("0.0.0.0", 8081)},
                    host, explain_packet);
  REQUIRE(report.size() == 7);
  auto row = [&](std::size_t i) {
    std::string text;
    for (const ZoneVerdict& verdict : report[i].zones)
      text +=
          verdict.zone + "=" + (verdict.accepted ? "open(" + verdict.decided_by + ") " : "closed ");
    return text;
  };
  CHECK(row(0) == "lan=open(web-in) dmz=open(web-in) anywhere=open(web-in) ");
  CHECK(row(1) == "lan=open(ssh-from-lan) dmz=closed anywhere=closed ");
  CHECK(row(2) == "lan=open(dns-in) dmz=open(dns-in) anywhere=open(dns-in) ");
  CHECK(row(3) == "lan=closed dmz=closed anywhere=closed ");
  CHECK(row(4) == "lan=closed dmz=closed anywhere=closed ");
  CHECK(row(5) == "lan=open(lab-in) dmz=open(lab-in) anywhere=open(lab-in) ");
  CHECK(row(6) == "lan=closed dmz=closed anywhere=closed ");
  CHECK(zone(report[6], "anywhere").decided_by == "lab-owner");
  CHECK(zone(report[1], "anywhere").decided_by == "chain policy");
  CHECK(zone(report[1], "dmz").decided_by == "default input from dmz");
  REQUIRE(report[6].warnings.size() == 1);
  CHECK(report[6].warnings[0].starts_with(
      "port 8081/tcp is tied to cgroup lab/allowed by bind 'lab-owner'"));
  CHECK(report[0].warnings ==
        std::vector<std::string>{
            "port 80/tcp listens on all addresses and is open from anywhere (web-in)"});
}

namespace {

PublishedPort docker_port(std::uint16_t port, std::uint16_t container_port) {
  PublishedPort published;
  published.table = "ip nat";
  published.chain = "DOCKER";
  published.ports = {port, port};
  published.target = ip("172.17.0.2");
  published.target_ports = ir::PortRange{container_port, container_port};
  return published;
}

const std::vector<HostNetwork> kDockerHost = {{"eth0", ip("10.1.0.1"), 24},
                                              {"docker0", ip("172.17.0.1"), 16}};

const char* kDockerPolicy = R"(
[policy]
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

}  // namespace

TEST_CASE("published exposure: the DNATed connection, followed on forward") {
  Policy policy = policy_from(kDockerPolicy);
  RecordingExplainer recorder{{}, [](const PacketShape&) { return drop("default input"); }};
  auto report = published_exposure(compile_policy(policy), policy, {docker_port(8080, 80)},
                                   kDockerHost, recorder.explainer());
  REQUIRE(report.size() == 1);
  CHECK(report[0].via == "docker0");
  CHECK(report[0].scope == "wildcard");
  REQUIRE(!recorder.asked.empty());
  const PacketShape& packet = recorder.asked.front();
  CHECK(packet.direction == Direction::forward);
  CHECK(packet.in_interface == "eth0");
  CHECK(packet.out_interface == "docker0");
  CHECK(text_of(packet.destination) == "172.17.0.2");
  CHECK(packet.destination_port == 80);
  REQUIRE(packet.dnat_original);
  CHECK(packet.dnat_original->destination_port == 8080);
  CHECK(text_of(packet.dnat_original->destination) == "10.1.0.1");
}

TEST_CASE("published exposure with explain_packet: the input rules decide, on the original port") {
  Policy policy = policy_from(kDockerPolicy);
  ir::Ruleset ruleset = compile_policy(policy);
  PublishedPort on_loopback = docker_port(5353, 53);
  on_loopback.protocol = ir::L4Proto::udp;
  on_loopback.destination = ir::AddressRange{ip("127.0.0.1"), ip("127.0.0.1")};
  PublishedPort unknown_target = docker_port(9000, 9000);
  unknown_target.target = ip("192.0.2.77");
  auto report = published_exposure(ruleset, policy,
                                   {docker_port(8080, 80), docker_port(8081, 80), on_loopback},
                                   kDockerHost, explain_packet);
  REQUIRE(report.size() == 3);
  CHECK(zone(report[0], "lan").accepted);
  CHECK(zone(report[0], "lan").decided_by == "web-from-lan");
  CHECK_FALSE(zone(report[0], "anywhere").accepted);
  CHECK(zone(report[0], "anywhere").decided_by == "default input");
  // The rule opens 8080, the port before NAT; 8081 also goes to the container's port 80.
  CHECK_FALSE(zone(report[1], "lan").accepted);
  CHECK(zone(report[1], "lan").decided_by == "default input from lan");
  CHECK(report[2].scope == "loopback");
  CHECK(zone(report[2], "lan").decided_by == "bound to loopback");

  auto unknown = published_exposure(ruleset, policy, {unknown_target}, kDockerHost, explain_packet);
  REQUIRE(unknown.size() == 1);
  CHECK(unknown[0].via.empty());
  REQUIRE(unknown[0].warnings.size() == 1);
  CHECK(unknown[0].warnings[0].find("to an address on no interface of this host") != std::string::npos);
}

TEST_CASE("published exposure: explain's packet to a published port becomes the DNATed one") {
  PacketShape in;
  in.protocol = ir::L4Proto::tcp;
  in.source = ip("10.1.0.9");
  in.destination = ip("10.1.0.1");
  in.source_port = 40000;
  in.destination_port = 8080;
  in.in_interface = "eth0";
  PublishedPort port = docker_port(8080, 80);
  auto dnat = as_published(in, {port}, kDockerHost);
  REQUIRE(dnat);
  CHECK(dnat->second == port);
  CHECK(dnat->first.direction == Direction::forward);
  CHECK(dnat->first.out_interface == "docker0");
  CHECK(dnat->first.destination_port == 80);
  CHECK(dnat->first.dnat_original->destination_port == 8080);

  Policy policy = policy_from(kDockerPolicy);
  ExplainResult result = explain_packet(compile_policy(policy), dnat->first);
  CHECK(result.verdict == "accept");
  CHECK(result.decided_by == "web-from-lan");

  in.destination_port = 8081;
  CHECK_FALSE(as_published(in, {port}, kDockerHost));
  in.destination_port = 8080;
  in.in_interface = "docker0";
  port.not_from = {"docker0"};
  CHECK_FALSE(as_published(in, {port}, kDockerHost));
  in.in_interface = "lo";
  port.not_from.clear();
  CHECK_FALSE(as_published(in, {port}, kDockerHost));
}
