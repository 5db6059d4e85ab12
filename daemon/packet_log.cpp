#include "packet_log.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "netlink_message.h"

namespace portier {
namespace {

constexpr std::uint16_t kPacketType = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
constexpr std::uint16_t kConfigType = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
// Kernel-side batching of log messages: at most 1/100 s, or this many packets.
constexpr std::uint32_t kFlushTimeout = 1;
constexpr std::uint32_t kQueueThreshold = 32;
// Enough for a burst of a few thousand small log messages between two polls.
constexpr int kReceiveBuffer = 4 * 1024 * 1024;

std::uint16_t be16(const std::uint8_t* bytes) {
  return static_cast<std::uint16_t>((bytes[0] << 8) | bytes[1]);
}

std::string address_text(int family, const std::uint8_t* bytes) {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family, bytes, text, sizeof text);
  return text;
}

std::string protocol_name(std::uint8_t number) {
  static constexpr std::pair<std::uint8_t, const char*> kNames[] = {
      {1, "icmp"}, {2, "igmp"}, {6, "tcp"},     {17, "udp"},   {33, "dccp"},     {47, "gre"},
      {50, "esp"}, {51, "ah"},  {58, "icmpv6"}, {132, "sctp"}, {136, "udplite"},
  };
  for (const auto& [known, name] : kNames)
    if (known == number) return name;
  return std::to_string(number);
}

// Transport protocols whose header starts with the source and destination port.
bool has_ports(std::uint8_t protocol) {
  return protocol == 6 || protocol == 17 || protocol == 33 || protocol == 132 || protocol == 136;
}

// The transport header at `l4` (whatever of it the copy range kept).
void parse_transport(std::span<const std::uint8_t> l4, LoggedPacket& packet) {
  if (has_ports(packet.protocol_number) && l4.size() >= 4) {
    packet.sport = be16(&l4[0]);
    packet.dport = be16(&l4[2]);
  } else if ((packet.protocol_number == 1 || packet.protocol_number == 58) && l4.size() >= 2) {
    packet.icmp_type = l4[0];
    packet.icmp_code = l4[1];
  }
}

void parse_ipv4(std::span<const std::uint8_t> bytes, LoggedPacket& packet) {
  packet.family = "ipv4";
  if (bytes.size() < 20) return;
  std::size_t header = (bytes[0] & 0x0f) * 4u;
  packet.protocol_number = bytes[9];
  packet.protocol = protocol_name(bytes[9]);
  packet.source = address_text(AF_INET, &bytes[12]);
  packet.destination = address_text(AF_INET, &bytes[16]);
  // Only the first fragment carries the transport header.
  bool later_fragment = (be16(&bytes[6]) & 0x1fff) != 0;
  if (header < 20 || header > bytes.size() || later_fragment) return;
  parse_transport(bytes.subspan(header), packet);
}

void parse_ipv6(std::span<const std::uint8_t> bytes, LoggedPacket& packet) {
  packet.family = "ipv6";
  if (bytes.size() < 40) return;
  packet.source = address_text(AF_INET6, &bytes[8]);
  packet.destination = address_text(AF_INET6, &bytes[24]);
  std::uint8_t next = bytes[6];
  std::size_t offset = 40;
  // Walk the extension headers to the transport header (RFC 8200 section 4).
  for (int hops = 0; hops < 8; ++hops) {
    if (next != 0 && next != 43 && next != 60 && next != 44 && next != 51) break;
    if (offset + 8 > bytes.size()) {
      packet.protocol_number = next;
      packet.protocol = protocol_name(next);
      return;
    }
    std::uint8_t following = bytes[offset];
    if (next == 44) {
      if ((be16(&bytes[offset + 2]) & 0xfff8) != 0) {  // not the first fragment
        packet.protocol_number = following;
        packet.protocol = protocol_name(following);
        return;
      }
      offset += 8;
    } else if (next == 51) {
      offset += (bytes[offset + 1] + 2u) * 4u;
    } else {
      offset += (bytes[offset + 1] + 1u) * 8u;
    }
    next = following;
  }
  packet.protocol_number = next;
  packet.protocol = protocol_name(next);
  if (offset <= bytes.size()) parse_transport(bytes.subspan(offset), packet);
}

// mnl_attr_parse() stops quietly at a bad attribute; a message cut short should not
// pass for one without the rest.
std::array<const nlattr*, NFULA_MAX + 1> attributes_of(const nlmsghdr* message) {
  std::array<const nlattr*, NFULA_MAX + 1> table{};
  const auto* attribute =
      static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(message, sizeof(nfgenmsg)));
  int remaining =
      static_cast<int>(message->nlmsg_len - MNL_NLMSG_HDRLEN - MNL_ALIGN(sizeof(nfgenmsg)));
  while (mnl_attr_ok(attribute, remaining)) {
    std::uint16_t type = mnl_attr_get_type(attribute);
    if (type <= NFULA_MAX) table[type] = attribute;
    remaining -= static_cast<int>(MNL_ALIGN(attribute->nla_len));
    attribute = mnl_attr_next(attribute);
  }
  if (remaining >= static_cast<int>(sizeof(nlattr)))
    throw std::runtime_error("nflog: malformed attributes in a packet message");
  return table;
}

std::uint32_t attribute_be32(const nlattr* attribute) {
  if (attribute == nullptr || mnl_attr_get_payload_len(attribute) < 4) return 0;
  return ntohl(mnl_attr_get_u32(attribute));
}

// One NFULNL_MSG_PACKET message; the caller checked the type.
LoggedPacket parse_packet(const nlmsghdr* message) {
  if (message->nlmsg_len < MNL_NLMSG_HDRLEN + sizeof(nfgenmsg))
    throw std::runtime_error("nflog: truncated packet message");
  const auto* header = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(message));
  std::array<const nlattr*, NFULA_MAX + 1> attributes = attributes_of(message);
  LoggedPacket packet;
  if (const nlattr* prefix = attributes[NFULA_PREFIX]) {
    const char* text = static_cast<const char*>(mnl_attr_get_payload(prefix));
    packet.prefix.assign(text, ::strnlen(text, mnl_attr_get_payload_len(prefix)));
  }
  packet.in_index = attribute_be32(attributes[NFULA_IFINDEX_INDEV]);
  packet.out_index = attribute_be32(attributes[NFULA_IFINDEX_OUTDEV]);
  if (const nlattr* payload = attributes[NFULA_PAYLOAD]) {
    std::span<const std::uint8_t> bytes(
        static_cast<const std::uint8_t*>(mnl_attr_get_payload(payload)),
        mnl_attr_get_payload_len(payload));
    parse_payload(bytes, header->nfgen_family, packet);
  }
  return packet;
}

// The errno of an NLMSG_ERROR message (0 for an ack).
int error_of(const nlmsghdr* message) {
  if (message->nlmsg_len < MNL_NLMSG_HDRLEN + sizeof(nlmsgerr))
    throw std::runtime_error("nflog: truncated error message");
  return netlink_errno(*static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(message)));
}

// Calls on_packet for each packet message and on_error(seq, errno) for each error or ack.
template <typename OnPacket, typename OnError>
void walk_messages(std::span<const std::uint8_t> bytes, OnPacket&& on_packet, OnError&& on_error) {
  const auto* message = reinterpret_cast<const nlmsghdr*>(bytes.data());
  int remaining = static_cast<int>(bytes.size());
  while (netlink_message_ok(message, remaining)) {
    if (message->nlmsg_type == NLMSG_ERROR)
      on_error(message->nlmsg_seq, error_of(message));
    else if (message->nlmsg_type == kPacketType)
      on_packet(parse_packet(message));
    message = mnl_nlmsg_next(message, &remaining);
  }
  if (remaining != 0) throw std::runtime_error("nflog: truncated message");
}

}  // namespace

LogPrefix parse_log_prefix(std::string_view prefix) {
  LogPrefix result;
  constexpr std::string_view kStart = "portier ";
  if (!prefix.starts_with(kStart)) return result;
  std::string_view rest = prefix.substr(kStart.size());
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  if (rest.empty()) return result;
  result.portier = true;
  // Rule names have no spaces, so two words are a default verdict and its chain.
  auto space = rest.find(' ');
  if (space == std::string_view::npos) {
    result.rule = rest;
    return result;
  }
  std::string_view verdict = rest.substr(0, space), chain = rest.substr(space + 1);
  if ((verdict == "denied" || verdict == "accepted") && chain.find(' ') == std::string_view::npos) {
    result.verdict = verdict;
    result.chain = chain;
  } else {
    result.portier = false;
  }
  return result;
}

namespace {

std::string endpoint_text(const std::string& address, std::uint16_t port, bool ipv6) {
  if (port == 0) return address;
  return (ipv6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

}  // namespace

std::string packet_log_line(const LoggedPacket& packet, const LogPrefix& prefix,
                            std::string_view verdict) {
  bool ipv6 = packet.family == "ipv6";
  std::string line = std::string(verdict) + " " +
                     (packet.protocol.empty() ? "packet" : packet.protocol) + " " +
                     endpoint_text(packet.source, packet.sport, ipv6) + " -> " +
                     endpoint_text(packet.destination, packet.dport, ipv6);
  if (packet.icmp_type) line += " type " + std::to_string(*packet.icmp_type);
  if (!packet.in.empty()) line += " in " + packet.in;
  if (!packet.out.empty()) line += " out " + packet.out;
  line += " by " + (prefix.portier ? (prefix.rule.empty() ? prefix.chain + " default" : prefix.rule)
                                   : "\"" + packet.prefix + "\"");
  return line;
}

std::vector<std::uint8_t> nflog_config_request(std::uint16_t group, std::uint8_t command,
                                               std::uint32_t seq) {
  std::vector<std::uint8_t> buffer(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* message = mnl_nlmsg_put_header(buffer.data());
  message->nlmsg_type = kConfigType;
  message->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  message->nlmsg_seq = seq;
  auto* header = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(message, sizeof(nfgenmsg)));
  header->nfgen_family = AF_UNSPEC;
  header->version = NFNETLINK_V0;
  header->res_id = htons(group);
  nfulnl_msg_config_cmd cmd{command};
  mnl_attr_put(message, NFULA_CFG_CMD, sizeof cmd, &cmd);
  if (command == NFULNL_CFG_CMD_BIND) {
    // The kernel applies the mode to the instance the command just created.
    nfulnl_msg_config_mode mode{};
    mode.copy_range = htonl(kCopyRange);
    mode.copy_mode = NFULNL_COPY_PACKET;
    mnl_attr_put(message, NFULA_CFG_MODE, sizeof mode, &mode);
    // By default the kernel holds messages back until 100 are queued or a second has
    // passed; a monitor wants them within 10 ms, batched only under a flood.
    mnl_attr_put_u32(message, NFULA_CFG_TIMEOUT, htonl(kFlushTimeout));
    mnl_attr_put_u32(message, NFULA_CFG_QTHRESH, htonl(kQueueThreshold));
  }
  buffer.resize(message->nlmsg_len);
  return buffer;
}

void parse_payload(std::span<const std::uint8_t> payload, std::uint8_t family_hint,
                   LoggedPacket& packet) {
  int version = family_hint == AF_INET ? 4 : family_hint == AF_INET6 ? 6 : 0;
  if (version == 0 && !payload.empty()) version = payload[0] >> 4;
  if (version == 4)
    parse_ipv4(payload, packet);
  else if (version == 6)
    parse_ipv6(payload, packet);
}

std::vector<LoggedPacket> parse_nflog_messages(std::span<const std::uint8_t> bytes) {
  std::vector<LoggedPacket> packets;
  walk_messages(
      bytes, [&](LoggedPacket packet) { packets.push_back(std::move(packet)); },
      [](std::uint32_t, int error) {
        if (error != 0) throw std::runtime_error(std::string("nflog: ") + std::strerror(error));
      });
  return packets;
}

void PacketLog::SocketCloser::operator()(mnl_socket* socket) const { mnl_socket_close(socket); }

PacketLog::PacketLog()
    : socket_(mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC)) {
  if (!socket_) throw std::system_error(errno, std::generic_category(), "nflog socket");
  if (mnl_socket_bind(socket_.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    throw std::system_error(errno, std::generic_category(), "nflog socket bind");
  // Beyond rmem_max needs CAP_NET_ADMIN, which portierd has; otherwise take what we get.
  if (::setsockopt(fd(), SOL_SOCKET, SO_RCVBUFFORCE, &kReceiveBuffer, sizeof kReceiveBuffer) < 0)
    ::setsockopt(fd(), SOL_SOCKET, SO_RCVBUF, &kReceiveBuffer, sizeof kReceiveBuffer);
}

PacketLog::~PacketLog() = default;

int PacketLog::fd() const { return mnl_socket_get_fd(socket_.get()); }

void PacketLog::configure(std::uint16_t group, std::uint8_t command) {
  std::uint32_t seq = ++seq_;
  std::vector<std::uint8_t> request = nflog_config_request(group, command, seq);
  if (mnl_socket_sendto(socket_.get(), request.data(), request.size()) < 0)
    throw std::system_error(errno, std::generic_category(), "nflog config");
  std::vector<std::uint8_t> buffer(MNL_SOCKET_BUFFER_SIZE);
  for (;;) {
    pollfd ready{fd(), POLLIN, 0};
    int polled = ::poll(&ready, 1, 2000);
    if (polled < 0 && errno == EINTR) continue;
    if (polled <= 0)
      throw std::system_error(ETIMEDOUT, std::generic_category(), "nflog config: no answer");
    ssize_t received = mnl_socket_recvfrom(socket_.get(), buffer.data(), buffer.size());
    if (received < 0) {
      if (errno == ENOBUFS) {
        ++overflows_;
        continue;
      }
      if (errno == EAGAIN || errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "nflog config");
    }
    bool answered = false;
    int error = 0;
    walk_messages(
        std::span<const std::uint8_t>(buffer.data(), static_cast<std::size_t>(received)),
        [&](LoggedPacket packet) { early_.push_back(std::move(packet)); },
        [&](std::uint32_t message_seq, int message_error) {
          if (message_seq != seq) return;
          answered = true;
          error = message_error;
        });
    if (!answered) continue;
    if (error != 0)
      throw std::system_error(error, std::generic_category(),
                              "nflog group " + std::to_string(group) +
                                  (command == NFULNL_CFG_CMD_BIND ? ": bind" : ": unbind"));
    return;
  }
}

void PacketLog::bind(std::optional<std::uint16_t> group) {
  if (group == group_) return;
  if (group_) {
    std::uint16_t old = *group_;
    group_.reset();
    // ENODEV: the instance is already gone; nothing to undo.
    try {
      configure(old, NFULNL_CFG_CMD_UNBIND);
    } catch (const std::system_error& failure) {
      if (failure.code().value() != ENODEV) throw;
    }
  }
  if (!group) return;
  configure(*group, NFULNL_CFG_CMD_BIND);
  group_ = group;
}

std::vector<LoggedPacket> PacketLog::read_pending() {
  std::vector<LoggedPacket> packets = std::move(early_);
  early_.clear();
  std::vector<std::uint8_t> buffer(MNL_SOCKET_BUFFER_SIZE);
  for (int reads = 0; reads < 256; ++reads) {
    ssize_t received = mnl_socket_recvfrom(socket_.get(), buffer.data(), buffer.size());
    if (received < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {  // the kernel dropped messages; the socket still works
        ++overflows_;
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      throw std::system_error(errno, std::generic_category(), "nflog read");
    }
    for (LoggedPacket& packet : parse_nflog_messages(
             std::span<const std::uint8_t>(buffer.data(), static_cast<std::size_t>(received))))
      packets.push_back(std::move(packet));
  }
  // Names at read time: an interface may be gone or renamed since, the index stays right.
  std::map<std::uint32_t, std::string> names;
  auto name_of = [&](std::uint32_t index) -> std::string {
    if (index == 0) return {};
    auto [it, fresh] = names.try_emplace(index);
    if (fresh) {
      char name[IF_NAMESIZE] = {};
      it->second = ::if_indextoname(index, name) ? name : "if" + std::to_string(index);
    }
    return it->second;
  };
  for (LoggedPacket& packet : packets) {
    packet.in = name_of(packet.in_index);
    packet.out = name_of(packet.out_index);
  }
  return packets;
}

std::uint64_t PacketLog::take_overflows() {
  std::uint64_t overflows = overflows_;
  overflows_ = 0;
  return overflows;
}

bool PacketLogLimiter::admit(Clock::time_point now) {
  if (window_start_ && now - *window_start_ >= window_) {
    pending_ += suppressed_;
    suppressed_ = 0;
    window_start_.reset();
  }
  if (!window_start_) {
    window_start_ = now;
    admitted_ = 0;
  }
  if (admitted_ < limit_) {
    ++admitted_;
    return true;
  }
  ++suppressed_;
  return false;
}

std::uint64_t PacketLogLimiter::take_suppressed(Clock::time_point now) {
  if (window_start_ && now - *window_start_ >= window_) {
    pending_ += suppressed_;
    suppressed_ = 0;
    window_start_.reset();
  }
  std::uint64_t count = pending_;
  pending_ = 0;
  return count;
}

std::optional<PacketLogLimiter::Clock::time_point> PacketLogLimiter::summary_due() const {
  if (pending_ > 0) return Clock::time_point{};  // due already
  if (suppressed_ > 0 && window_start_) return *window_start_ + window_;
  return std::nullopt;
}

}  // namespace portier
