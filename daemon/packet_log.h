// Packets the ruleset logged to the policy's nflog group (`[policy] log_group`): the
// nfnetlink_log codec (config requests out, NFULNL_MSG_PACKET in, as bytes, testable
// without a socket), the reader that owns the socket, and the rate limit of the relay.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct mnl_socket;

namespace portier {

/// One logged packet, as far as the first kCopyRange bytes tell.
struct LoggedPacket {
  std::string prefix;           // NFULA_PREFIX as the rule set it: "portier ssh "
  std::uint32_t in_index = 0;   // NFULA_IFINDEX_INDEV; 0: none (locally sent)
  std::uint32_t out_index = 0;  // NFULA_IFINDEX_OUTDEV; 0: none (locally received)
  std::string in, out;          // their names, filled in by PacketLog (not the parser)
  std::string family;           // "ipv4", "ipv6", or empty when the payload is not IP
  std::uint8_t protocol_number = 0;
  std::string protocol;                // "tcp", "udp", "icmp", "icmpv6", ... or the number
  std::string source, destination;     // addresses as text
  std::uint16_t sport = 0, dport = 0;  // TCP, UDP, UDP-Lite, SCTP, DCCP; else 0
  std::optional<std::uint8_t> icmp_type, icmp_code;
};

/// What portier's log prefixes say: "portier RULE " for a rule's log line,
/// "portier denied|accepted CHAIN " for a chain's default verdict.
struct LogPrefix {
  std::string rule;      // the policy rule; empty for a default verdict
  std::string verdict;   // "denied" or "accepted" for a default verdict; empty for a rule
  std::string chain;     // input, output, forward for a default verdict
  bool portier = false;  // the prefix is one of portier's
};
LogPrefix parse_log_prefix(std::string_view prefix);

/// The line portierd logs for a relayed packet, `verdict` being what the rule (or the
/// chain's default) did:
/// "accepted tcp 10.0.0.2:40000 -> 10.0.0.1:22 in eth0 by ssh": the protocol ("packet"
/// when unknown), the endpoints (an IPv6 address in brackets when a port follows it),
/// the ICMP type, the interfaces, and who logged it: the rule, "CHAIN default", or the
/// quoted prefix of a log statement that is not portier's.
std::string packet_log_line(const LoggedPacket& packet, const LogPrefix& prefix,
                            std::string_view verdict);

/// Bytes of each packet the kernel copies: IPv4/IPv6 with options or extension headers
/// and the start of the transport header.
inline constexpr std::uint32_t kCopyRange = 128;

/// An NFULNL_MSG_CONFIG request for `group` with NLM_F_ACK: the command (BIND, UNBIND)
/// and, with a bind, copy mode "packet" with kCopyRange, a flush timeout of 10 ms and a
/// queue threshold of 32 packets.
std::vector<std::uint8_t> nflog_config_request(std::uint16_t group, std::uint8_t command,
                                               std::uint32_t seq);

/// Fills family, protocol, addresses, ports and ICMP type from a packet's bytes starting
/// at the network header (NFULA_PAYLOAD). `family_hint` is the message's AF_INET/AF_INET6
/// (0: tell by the IP version nibble). Truncated headers leave the fields they would fill.
void parse_payload(std::span<const std::uint8_t> payload, std::uint8_t family_hint,
                   LoggedPacket& packet);

/// The NFULNL_MSG_PACKET messages in one datagram from the nflog socket, in order.
/// Other messages are skipped. Throws std::runtime_error on an NLMSG_ERROR with an errno
/// or a malformed message.
std::vector<LoggedPacket> parse_nflog_messages(std::span<const std::uint8_t> bytes);

/// The socket bound to one nflog group. Not thread-safe.
class PacketLog {
 public:
  /// Opens a non-blocking NETLINK_NETFILTER socket; throws std::system_error.
  PacketLog();
  ~PacketLog();
  PacketLog(const PacketLog&) = delete;
  PacketLog& operator=(const PacketLog&) = delete;

  /// Binds to `group` (unbinding the previous one); nullopt: no group. Does nothing when
  /// it is already the bound one. Throws std::system_error when the kernel refuses
  /// (EBUSY: another process reads that group); then no group is bound.
  void bind(std::optional<std::uint16_t> group);
  std::optional<std::uint16_t> group() const { return group_; }
  int fd() const;
  /// What the socket holds now (at most 256 datagrams, so a flood cannot starve the
  /// caller's other work; poll again for the rest), with interface names; never blocks.
  std::vector<LoggedPacket> read_pending();
  /// How often since the last call the kernel dropped log messages because the receive
  /// buffer was full (ENOBUFS: how many it dropped is not told); resets the count.
  std::uint64_t take_overflows();

 private:
  struct SocketCloser {
    void operator()(mnl_socket* socket) const;
  };
  /// Sends a config request and waits for its ack; packets read meanwhile are kept.
  void configure(std::uint16_t group, std::uint8_t command);

  std::unique_ptr<mnl_socket, SocketCloser> socket_;
  std::optional<std::uint16_t> group_;
  std::uint32_t seq_ = 0;
  std::uint64_t overflows_ = 0;
  std::vector<LoggedPacket> early_;  // read while waiting for an ack
};

/// How many logged packets a second portierd relays.
inline constexpr std::uint32_t kRelayedPacketsPerSecond = 50;

/// At most `limit` relayed packets per window; the rest are counted and reported once
/// the window is over. A window starts with the first packet after the last one ended,
/// so a burst gets `limit` packets and one summary.
class PacketLogLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit PacketLogLimiter(std::uint32_t limit = kRelayedPacketsPerSecond,
                            Clock::duration window = std::chrono::seconds(1))
      : limit_(limit), window_(window) {}

  /// True if a packet seen at `now` may be relayed; otherwise it is counted as suppressed.
  bool admit(Clock::time_point now);
  /// The packets suppressed in a window that has ended by `now` (then forgotten), or 0.
  std::uint64_t take_suppressed(Clock::time_point now);
  /// When take_suppressed() will have something to report; nullopt: nothing suppressed.
  std::optional<Clock::time_point> summary_due() const;

 private:
  std::uint32_t limit_;
  Clock::duration window_;
  std::optional<Clock::time_point> window_start_;
  std::uint32_t admitted_ = 0;
  std::uint64_t suppressed_ = 0;  // in the current window
  std::uint64_t pending_ = 0;     // from windows that ended, not yet taken
};

}  // namespace portier
