// The nfnetlink_log codec from hand-built bytes, as the kernel sends them, and the
// relay's rate limit.
#include <doctest/doctest.h>

#include <arpa/inet.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "netlink_fixtures.h"
#include "packet_log.h"

namespace {

using portier::LoggedPacket;
using Bytes = std::vector<std::uint8_t>;

// A TCP SYN 10.200.1.2:40000 -> 10.200.1.1:139 logged by rule netbios-in on ifindex 3:
// nlmsghdr (host order), nfgenmsg, NFULA_PACKET_HDR, NFULA_IFINDEX_INDEV, NFULA_PREFIX,
// NFULA_PAYLOAD (IPv4 header and TCP header).
// clang-format off
const Bytes kTcpSyn = {
    0x68, 0x00, 0x00, 0x00,  0x00, 0x04, 0x00, 0x00,  // len 104, NFNL_SUBSYS_ULOG << 8 | PACKET, flags
    0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,  // seq, portid
    0x02, 0x00, 0x00, 0x05,                           // AF_INET, v0, group 5
    0x08, 0x00, 0x01, 0x00,  0x08, 0x00, 0x01, 0x00,  // PACKET_HDR: ETH_P_IP, hook 1 (input)
    0x08, 0x00, 0x04, 0x00,  0x00, 0x00, 0x00, 0x03,  // IFINDEX_INDEV 3
    0x18, 0x00, 0x0a, 0x00,                           // PREFIX, 20 bytes with the NUL
    'p', 'o', 'r', 't', 'i', 'e', 'r', ' ', 'n', 'e', 't', 'b', 'i', 'o', 's', '-', 'i', 'n', ' ', 0x00,
    0x2c, 0x00, 0x09, 0x00,                           // PAYLOAD, 40 bytes
    0x45, 0x00, 0x00, 0x3c,  0x12, 0x34, 0x40, 0x00,  // IPv4, IHL 5, DF
    0x40, 0x06, 0x00, 0x00,  0x0a, 0xc8, 0x01, 0x02,  // TTL 64, TCP, source
    0x0a, 0xc8, 0x01, 0x01,                           // destination
    0x9c, 0x40, 0x00, 0x8b,  0x00, 0x00, 0x00, 0x01,  // ports 40000 -> 139, seq
    0x00, 0x00, 0x00, 0x00,  0xa0, 0x02, 0xfa, 0xf0,  // ack, SYN, window
    0x00, 0x00, 0x00, 0x00,
};
// clang-format on

void put16(Bytes& out, std::uint16_t value) {
  out.push_back(static_cast<std::uint8_t>(value & 0xff));  // host order: little-endian here
  out.push_back(static_cast<std::uint8_t>(value >> 8));
}

void attribute(Bytes& out, std::uint16_t type, const Bytes& payload) {
  put16(out, static_cast<std::uint16_t>(4 + payload.size()));
  put16(out, type);
  out.insert(out.end(), payload.begin(), payload.end());
  while (out.size() % 4) out.push_back(0);
}

Bytes prefix_attr(const std::string& text) {
  Bytes bytes(text.begin(), text.end());
  bytes.push_back(0);
  return bytes;
}

// One packet message: family, attributes already encoded.
Bytes message(std::uint8_t family, const Bytes& attributes, std::uint16_t type = 0x0400) {
  Bytes out;
  std::uint32_t length = 16 + 4 + static_cast<std::uint32_t>(attributes.size());
  put16(out, static_cast<std::uint16_t>(length));
  put16(out, 0);
  put16(out, type);
  put16(out, 0);
  out.insert(out.end(), 8, 0);  // seq, portid
  out.insert(out.end(), {family, 0, 0, 7});
  out.insert(out.end(), attributes.begin(), attributes.end());
  return out;
}

Bytes ipv6_header(std::uint8_t next, std::uint16_t payload_length) {
  Bytes header = {0x60,
                  0,
                  0,
                  0,
                  static_cast<std::uint8_t>(payload_length >> 8),
                  static_cast<std::uint8_t>(payload_length),
                  next,
                  64};
  Bytes source(16, 0), destination(16, 0);
  source[0] = 0xfd;
  source[15] = 2;  // fd00::2
  destination[0] = 0xfd;
  destination[15] = 1;  // fd00::1
  header.insert(header.end(), source.begin(), source.end());
  header.insert(header.end(), destination.begin(), destination.end());
  return header;
}

LoggedPacket only_packet(const Bytes& bytes) {
  std::vector<LoggedPacket> packets = portier::parse_nflog_messages(bytes);
  REQUIRE(packets.size() == 1);
  return packets[0];
}

}  // namespace

TEST_CASE("nflog: an IPv4 TCP packet logged by a rule") {
  LoggedPacket packet = only_packet(kTcpSyn);
  CHECK(packet.prefix == "portier netbios-in ");
  CHECK(packet.in_index == 3);
  CHECK(packet.out_index == 0);
  CHECK(packet.in.empty());  // names are PacketLog's business, not the parser's
  CHECK(packet.family == "ipv4");
  CHECK(packet.protocol == "tcp");
  CHECK(packet.protocol_number == 6);
  CHECK(packet.source == "10.200.1.2");
  CHECK(packet.destination == "10.200.1.1");
  CHECK(packet.sport == 40000);
  CHECK(packet.dport == 139);
  CHECK_FALSE(packet.icmp_type.has_value());
}

TEST_CASE("nflog: IPv4 options, ICMP, later fragments, truncated copies") {
  SUBCASE("an IHL of 6 moves the UDP header by the option word") {
    Bytes ip = {0x46, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 9, 192, 0, 2, 1, 0x01, 0x01,
                0x00, 0x00,  // an option word (NOP
                             // NOP EOL EOL)
                0x14, 0xe9, 0x00, 0x35, 0, 12, 0, 0};
    Bytes attributes;
    attribute(attributes, 10, prefix_attr("portier denied input "));
    attribute(attributes, 9, ip);
    LoggedPacket packet = only_packet(message(AF_INET, attributes));
    CHECK(packet.protocol == "udp");
    CHECK(packet.source == "192.0.2.9");
    CHECK(packet.sport == 5353);
    CHECK(packet.dport == 53);
  }
  SUBCASE("ICMP echo request: type and code, no ports") {
    Bytes ip = {0x45, 0, 0,  28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0,
                0,    2, 10, 0,  0, 1, 8, 0, 0,  0, 0, 1, 0,  1};
    Bytes attributes;
    attribute(attributes, 9, ip);
    LoggedPacket packet = only_packet(message(AF_INET, attributes));
    CHECK(packet.prefix.empty());
    CHECK(packet.protocol == "icmp");
    REQUIRE(packet.icmp_type.has_value());
    CHECK(*packet.icmp_type == 8);
    CHECK(*packet.icmp_code == 0);
    CHECK(packet.sport == 0);
    CHECK(packet.dport == 0);
  }
  SUBCASE("a fragment other than the first has no transport header") {
    Bytes ip = {0x45, 0, 0, 28, 0,  0, 0x00, 0xb9, 64,   17,   0, 0,
                10,   0, 0, 2,  10, 0, 0,    1,    0x14, 0xe9, 0, 0x35};
    Bytes attributes;
    attribute(attributes, 9, ip);
    LoggedPacket packet = only_packet(message(AF_INET, attributes));
    CHECK(packet.protocol == "udp");
    CHECK(packet.dport == 0);
  }
  SUBCASE("a copy shorter than the IPv4 header leaves the addresses empty") {
    Bytes attributes;
    attribute(attributes, 9, {0x45, 0, 0, 60, 0, 0, 0, 0, 64, 6});
    LoggedPacket packet = only_packet(message(AF_INET, attributes));
    CHECK(packet.family == "ipv4");
    CHECK(packet.protocol.empty());
    CHECK(packet.source.empty());
  }
  SUBCASE("a TCP header cut after the source port gives no ports") {
    Bytes ip = {0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1, 0x9c, 0x40};
    Bytes attributes;
    attribute(attributes, 9, ip);
    LoggedPacket packet = only_packet(message(AF_INET, attributes));
    CHECK(packet.protocol == "tcp");
    CHECK(packet.sport == 0);
  }
}

TEST_CASE("nflog: IPv6 with and without extension headers") {
  SUBCASE("UDP behind a hop-by-hop header, sent out of ifindex 4") {
    Bytes ip = ipv6_header(0, 16);
    Bytes hop_by_hop = {17, 0, 1, 4, 0, 0, 0, 0};  // next UDP, 8 bytes, PadN
    ip.insert(ip.end(), hop_by_hop.begin(), hop_by_hop.end());
    Bytes udp = {0xc3, 0x50, 0x02, 0x02, 0, 8, 0, 0};  // 50000 -> 514
    ip.insert(ip.end(), udp.begin(), udp.end());
    Bytes attributes;
    attribute(attributes, 5, {0, 0, 0, 4});
    attribute(attributes, 10, prefix_attr("portier syslog-out "));
    attribute(attributes, 9, ip);
    LoggedPacket packet = only_packet(message(AF_INET6, attributes));
    CHECK(packet.family == "ipv6");
    CHECK(packet.out_index == 4);
    CHECK(packet.protocol == "udp");
    CHECK(packet.source == "fd00::2");
    CHECK(packet.destination == "fd00::1");
    CHECK(packet.sport == 50000);
    CHECK(packet.dport == 514);
  }
  SUBCASE("ICMPv6 echo request") {
    Bytes ip = ipv6_header(58, 8);
    Bytes icmp = {128, 0, 0, 0, 0, 1, 0, 1};
    ip.insert(ip.end(), icmp.begin(), icmp.end());
    Bytes attributes;
    attribute(attributes, 9, ip);
    LoggedPacket packet = only_packet(message(AF_INET6, attributes));
    CHECK(packet.protocol == "icmpv6");
    CHECK(*packet.icmp_type == 128);
  }
  SUBCASE("a non-first fragment names the fragment's protocol, without ports") {
    Bytes ip = ipv6_header(44, 16);
    Bytes fragment = {6, 0, 0x05, 0x01, 0, 0, 0, 9};  // next TCP, offset 160, M
    ip.insert(ip.end(), fragment.begin(), fragment.end());
    Bytes attributes;
    attribute(attributes, 9, ip);
    LoggedPacket packet = only_packet(message(AF_INET6, attributes));
    CHECK(packet.protocol == "tcp");
    CHECK(packet.dport == 0);
  }
  SUBCASE("family 0 (a netdev or bridge table): the version nibble decides") {
    Bytes ip = ipv6_header(6, 0);
    Bytes attributes;
    attribute(attributes, 9, ip);
    LoggedPacket packet = only_packet(message(0, attributes));
    CHECK(packet.family == "ipv6");
    CHECK(packet.protocol == "tcp");
  }
}

TEST_CASE("nflog: several messages in one datagram, others skipped, errors thrown") {
  Bytes datagram = kTcpSyn;
  Bytes config = message(AF_UNSPEC, {}, 0x0401);  // a CONFIG message is not a packet
  datagram.insert(datagram.end(), config.begin(), config.end());
  datagram.insert(datagram.end(), kTcpSyn.begin(), kTcpSyn.end());
  CHECK(portier::parse_nflog_messages(datagram).size() == 2);

  SUBCASE("an NLMSG_ERROR with an errno") {
    Bytes error;
    put16(error, 36);
    put16(error, 0);
    put16(error, 2);  // NLMSG_ERROR
    put16(error, 0);
    error.insert(error.end(), 8, 0);
    std::int32_t code = -EBUSY;
    const auto* raw = reinterpret_cast<const std::uint8_t*>(&code);
    error.insert(error.end(), raw, raw + 4);
    error.insert(error.end(), 16, 0);  // the request's header
    CHECK_THROWS_WITH_AS(portier::parse_nflog_messages(error), "nflog: Device or resource busy",
                         std::runtime_error);
  }
  SUBCASE("a message longer than the datagram") {
    Bytes cut(kTcpSyn.begin(), kTcpSyn.end() - 8);
    CHECK_THROWS_WITH_AS(portier::parse_nflog_messages(cut), "nflog: truncated message",
                         std::runtime_error);
  }
  SUBCASE("an attribute longer than its message") {
    Bytes bad = kTcpSyn;
    bad[20] = 0xff;  // PACKET_HDR claims 255 bytes
    CHECK_THROWS_WITH_AS(portier::parse_nflog_messages(bad),
                         "nflog: malformed attributes in a packet message", std::runtime_error);
  }
}

TEST_CASE("nflog: the config request binds a group: copy 128 bytes, flush within 10 ms") {
  // clang-format off
  const Bytes expected = {
      0x38, 0x00, 0x00, 0x00,  0x01, 0x04, 0x05, 0x00,  // len 56, ULOG CONFIG, REQUEST|ACK
      0x2a, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,  // seq 42, portid
      0x00, 0x00, 0x00, 0x07,                           // AF_UNSPEC, v0, group 7
      0x05, 0x00, 0x01, 0x00,  0x01, 0x00, 0x00, 0x00,  // CFG_CMD: BIND (padded)
      0x0a, 0x00, 0x02, 0x00,  0x00, 0x00, 0x00, 0x80,  // CFG_MODE: range 128,
      0x02, 0x00, 0x00, 0x00,                           //   COPY_PACKET, pad
      0x08, 0x00, 0x04, 0x00,  0x00, 0x00, 0x00, 0x01,  // CFG_TIMEOUT: 1/100 s
      0x08, 0x00, 0x05, 0x00,  0x00, 0x00, 0x00, 0x20,  // CFG_QTHRESH: 32
  };
  // clang-format on
  CHECK(portier::nflog_config_request(7, 1, 42) == expected);
  Bytes unbind = portier::nflog_config_request(7, 2, 43);
  CHECK(unbind.size() == 28);  // the command only
  CHECK(unbind[24] == 2);
}

TEST_CASE("nflog: what portier's prefixes say") {
  auto rule = portier::parse_log_prefix("portier netbios-in ");
  CHECK(rule.portier);
  CHECK(rule.rule == "netbios-in");
  CHECK(rule.verdict.empty());
  auto denied = portier::parse_log_prefix("portier denied input ");
  CHECK(denied.portier);
  CHECK(denied.rule.empty());
  CHECK(denied.verdict == "denied");
  CHECK(denied.chain == "input");
  auto accepted = portier::parse_log_prefix("portier accepted output ");
  CHECK(accepted.verdict == "accepted");
  CHECK(accepted.chain == "output");
  CHECK_FALSE(portier::parse_log_prefix("IN=eth0 ").portier);
  CHECK_FALSE(portier::parse_log_prefix("portier ").portier);
  CHECK_FALSE(portier::parse_log_prefix("portier some other words ").portier);
}

TEST_CASE("nflog: the log line of a relayed packet") {
  LoggedPacket tcp;
  tcp.prefix = "portier netbios-in ";
  tcp.in = "eth0";
  tcp.family = "ipv4";
  tcp.protocol = "tcp";
  tcp.source = "10.200.1.2";
  tcp.destination = "10.200.1.1";
  tcp.sport = 40000;
  tcp.dport = 139;
  CHECK(portier::packet_log_line(tcp, portier::parse_log_prefix(tcp.prefix), "dropped") ==
        "dropped tcp 10.200.1.2:40000 -> 10.200.1.1:139 in eth0 by netbios-in");

  // A port after an IPv6 address needs brackets; a chain's default verdict names the chain.
  LoggedPacket udp6;
  udp6.prefix = "portier denied input ";
  udp6.in = "eth1";
  udp6.family = "ipv6";
  udp6.protocol = "udp";
  udp6.source = "fd00::2";
  udp6.destination = "fd00::1";
  udp6.sport = 5353;
  udp6.dport = 53;
  CHECK(portier::packet_log_line(udp6, portier::parse_log_prefix(udp6.prefix), "denied") ==
        "denied udp [fd00::2]:5353 -> [fd00::1]:53 in eth1 by input default");

  // ICMP has no ports, but a type; a packet sent out has an out interface only.
  LoggedPacket ping;
  ping.prefix = "portier accepted output ";
  ping.out = "eth0";
  ping.family = "ipv6";
  ping.protocol = "icmpv6";
  ping.source = "fd00::1";
  ping.destination = "fd00::2";
  ping.icmp_type = 128;
  ping.icmp_code = 0;
  CHECK(portier::packet_log_line(ping, portier::parse_log_prefix(ping.prefix), "accepted") ==
        "accepted icmpv6 fd00::1 -> fd00::2 type 128 out eth0 by output default");

  // Another log statement in our group: its prefix, quoted; an unknown protocol is a packet.
  LoggedPacket other;
  other.prefix = "IN=eth0 ";
  other.in = "eth0";
  other.out = "eth1";
  other.family = "ipv4";
  other.source = "192.0.2.1";
  other.destination = "198.51.100.1";
  CHECK(portier::packet_log_line(other, portier::parse_log_prefix(other.prefix), "logged") ==
        "logged packet 192.0.2.1 -> 198.51.100.1 in eth0 out eth1 by \"IN=eth0 \"");
}

TEST_CASE("nflog relay limit: a burst gets the limit and one summary after the window") {
  using Clock = portier::PacketLogLimiter::Clock;
  using std::chrono::milliseconds;
  portier::PacketLogLimiter limiter(50, std::chrono::seconds(1));
  Clock::time_point start{std::chrono::hours(1)};
  int admitted = 0;
  for (int i = 0; i < 1000; ++i) admitted += limiter.admit(start + milliseconds(i / 10)) ? 1 : 0;
  CHECK(admitted == 50);
  REQUIRE(limiter.summary_due().has_value());
  CHECK(*limiter.summary_due() == start + std::chrono::seconds(1));
  CHECK(limiter.take_suppressed(start + milliseconds(999)) == 0);  // the window is still open
  CHECK(limiter.take_suppressed(start + milliseconds(1000)) == 950);
  CHECK_FALSE(limiter.summary_due().has_value());
  CHECK(limiter.take_suppressed(start + milliseconds(5000)) == 0);

  SUBCASE("a packet after the window starts a new one; the old count is still reported") {
    portier::PacketLogLimiter small(2, std::chrono::seconds(1));
    CHECK(small.admit(start));
    CHECK(small.admit(start));
    CHECK_FALSE(small.admit(start));
    CHECK(small.admit(start + milliseconds(1500)));
    CHECK(*small.summary_due() <= start + milliseconds(1500));
    CHECK(small.take_suppressed(start + milliseconds(1500)) == 1);
  }
  SUBCASE("under the limit nothing is suppressed") {
    portier::PacketLogLimiter quiet(50, std::chrono::seconds(1));
    for (int i = 0; i < 100; ++i) CHECK(quiet.admit(start + milliseconds(i * 100)));
    CHECK_FALSE(quiet.summary_due().has_value());
  }
}

// Found by fuzz_nflog: a message length of 2^31 or more passed libmnl's mnl_nlmsg_ok() as a
// negative int, and the walk jumped 4 GiB past the datagram (SEGV).
TEST_CASE("nflog: a message claiming 4 GiB is a truncated datagram") {
  const std::vector<std::uint8_t> huge = portier::fixtures::message_claiming_4_gib();
  CHECK_THROWS_WITH_AS(portier::parse_nflog_messages(huge), "nflog: truncated message",
                       std::runtime_error);
}

// The same negation as sock_diag's (found there by fuzz_sock_diag): INT_MIN is EPROTO.
TEST_CASE("nflog: an error of INT_MIN is EPROTO") {
  CHECK_THROWS_AS(portier::parse_nflog_messages(portier::fixtures::error_message(INT_MIN)),
                  std::runtime_error);
}
