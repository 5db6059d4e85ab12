// The NETLINK_SOCK_DIAG codec for listening sockets: the dump request and the parsing of
// its replies, as bytes in and out, so both are testable without a socket or root.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "listening_sockets.h"

namespace portier {

/// A socket as sock_diag describes it: the ListeningSocket fields the kernel knows
/// (protocol, family, address, port, v6_only, uid, inode) and the socket's cgroup.
struct DiagSocket {
  ListeningSocket socket;
  /// Id (inode number) of the cgroup v2 directory the socket was created in
  /// (INET_DIAG_CGROUP_ID); 0 if the kernel did not say.
  std::uint64_t cgroup_id = 0;
};

/// One SOCK_DIAG_BY_FAMILY dump request (inet_diag_req_v2): TCP sockets in LISTEN, or
/// UDP sockets in CLOSE (the state of a bound, unconnected UDP socket), of one family.
std::vector<std::uint8_t> sock_diag_request(ir::L4Proto protocol, ir::Family family,
                                            std::uint32_t seq);

/// What one recv() of a dump brought.
struct SockDiagReply {
  std::vector<DiagSocket> sockets;
  bool done = false;  // NLMSG_DONE arrived: the dump is complete
};

/// Parses the messages in `bytes` (one datagram of the dump) as replies for `protocol`.
/// UDP sockets on port 0 (not bound) are left out. Throws std::runtime_error on an
/// NLMSG_ERROR (with the kernel's errno) or a truncated message.
SockDiagReply parse_sock_diag_reply(std::span<const std::uint8_t> bytes, ir::L4Proto protocol);

}  // namespace portier
