// The I/O half of the socket listing: the NETLINK_SOCK_DIAG dumps and the walk over
// /proc; what the bytes mean is in sock_diag.cpp and socket_owners.cpp.
#include "listening_sockets.h"

#include <libmnl/libmnl.h>
#include <linux/netlink.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <memory>
#include <system_error>
#include <tuple>

#include "cgroups.h"
#include "sock_diag.h"
#include "socket_owners.h"

namespace portier {
namespace {

struct SocketCloser {
  void operator()(mnl_socket* socket) const { mnl_socket_close(socket); }
};
using DiagSocketHandle = std::unique_ptr<mnl_socket, SocketCloser>;

DiagSocketHandle open_sock_diag() {
  DiagSocketHandle socket(mnl_socket_open(NETLINK_SOCK_DIAG));
  if (!socket)
    throw std::system_error(errno, std::generic_category(),
                            "cannot open a sock_diag netlink socket");
  if (mnl_socket_bind(socket.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    throw std::system_error(errno, std::generic_category(),
                            "cannot bind the sock_diag netlink socket");
  return socket;
}

void dump(mnl_socket* socket, ir::L4Proto protocol, ir::Family family, std::uint32_t seq,
          std::vector<DiagSocket>& out) {
  const std::vector<std::uint8_t> request = sock_diag_request(protocol, family, seq);
  if (mnl_socket_sendto(socket, request.data(), request.size()) < 0)
    throw std::system_error(errno, std::generic_category(), "cannot send a sock_diag request");
  const unsigned port_id = mnl_socket_get_portid(socket);
  // The kernel fills a dump datagram up to the reader's buffer size, at most 32 KiB (what
  // newer libmnl calls MNL_SOCKET_DUMP_SIZE); a smaller buffer would truncate messages.
  std::vector<std::uint8_t> buffer(32768);
  for (;;) {
    const ssize_t received = mnl_socket_recvfrom(socket, buffer.data(), buffer.size());
    if (received < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "cannot read the sock_diag reply");
    }
    const auto* header = reinterpret_cast<const nlmsghdr*>(buffer.data());
    // Only our own request's replies (a stale datagram for another seq is skipped).
    if (received >= static_cast<ssize_t>(sizeof(nlmsghdr)) &&
        (header->nlmsg_seq != seq || header->nlmsg_pid != port_id))
      continue;
    SockDiagReply reply = parse_sock_diag_reply(
        std::span(buffer.data(), static_cast<std::size_t>(received)), protocol);
    std::move(reply.sockets.begin(), reply.sockets.end(), std::back_inserter(out));
    if (reply.done) return;
  }
}

}  // namespace

std::vector<ListeningSocket> list_listening_sockets() {
  std::vector<DiagSocket> found;
  {
    DiagSocketHandle socket = open_sock_diag();
    auto seq = static_cast<std::uint32_t>(std::time(nullptr));
    for (ir::L4Proto protocol : {ir::L4Proto::tcp, ir::L4Proto::udp})
      for (ir::Family family : {ir::Family::ipv4, ir::Family::ipv6})
        dump(socket.get(), protocol, family, seq++, found);
  }

  // The socket's own cgroup is what `socket cgroupv2` (and so a bind) checks; it is known
  // even when the owning process cannot be found. /proc/PID/cgroup is the fallback.
  std::vector<std::uint64_t> ids;
  for (const DiagSocket& socket : found)
    if (socket.cgroup_id != 0) ids.push_back(socket.cgroup_id);
  const std::map<std::uint64_t, std::string> paths = cgroup_paths(find_cgroup2_root(), ids);

  std::vector<ListeningSocket> sockets;
  sockets.reserve(found.size());
  for (DiagSocket& socket : found) {
    if (auto it = paths.find(socket.cgroup_id); it != paths.end())
      socket.socket.cgroup = it->second;
    sockets.push_back(std::move(socket.socket));
  }
  fill_socket_owners(sockets, "/proc");
  std::sort(sockets.begin(), sockets.end(), [](const ListeningSocket& a, const ListeningSocket& b) {
    return std::tie(a.protocol, a.port, a.family, a.address, a.inode) <
           std::tie(b.protocol, b.port, b.family, b.address, b.inode);
  });
  return sockets;
}

}  // namespace portier
