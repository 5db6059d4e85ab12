#include "sock_diag.h"

#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include "netlink_message.h"

namespace portier {
namespace {

// The state a socket must be in to be dumped: a listening TCP socket is TCP_LISTEN; a
// UDP socket that is bound but not connected stays in TCP_CLOSE (a connected one is
// TCP_ESTABLISHED: a client, which takes datagrams only from its peer).
std::uint32_t wanted_states(ir::L4Proto protocol) {
  return protocol == ir::L4Proto::tcp ? 1u << TCP_LISTEN : 1u << TCP_CLOSE;
}

struct Attributes {
  bool v6_only = false;
  std::uint64_t cgroup_id = 0;
};

int read_attribute(const nlattr* attr, void* data) {
  auto* attributes = static_cast<Attributes*>(data);
  switch (mnl_attr_get_type(attr)) {
    case INET_DIAG_SKV6ONLY:
      if (mnl_attr_validate(attr, MNL_TYPE_U8) >= 0)
        attributes->v6_only = mnl_attr_get_u8(attr) != 0;
      break;
    case INET_DIAG_CGROUP_ID:
      if (mnl_attr_validate(attr, MNL_TYPE_U64) >= 0)
        attributes->cgroup_id = mnl_attr_get_u64(attr);
      break;
    default:
      break;
  }
  return MNL_CB_OK;
}

std::optional<DiagSocket> parse_socket(const nlmsghdr* nlh, ir::L4Proto protocol) {
  if (mnl_nlmsg_get_payload_len(nlh) < sizeof(inet_diag_msg))
    throw std::runtime_error("sock_diag: reply message shorter than inet_diag_msg");
  inet_diag_msg message;
  std::memcpy(&message, mnl_nlmsg_get_payload(nlh), sizeof message);
  if (message.idiag_family != AF_INET && message.idiag_family != AF_INET6) return std::nullopt;

  DiagSocket result;
  ListeningSocket& socket = result.socket;
  socket.protocol = protocol;
  socket.family = message.idiag_family == AF_INET ? ir::Family::ipv4 : ir::Family::ipv6;
  socket.address.family = socket.family;
  // idiag_src is __be32[4]: the address bytes as on the wire; IPv4 uses the first word.
  std::memcpy(socket.address.bytes.data(), message.id.idiag_src,
              socket.family == ir::Family::ipv4 ? 4 : 16);
  socket.port = ntohs(message.id.idiag_sport);
  socket.uid = message.idiag_uid;
  socket.inode = message.idiag_inode;
  if (protocol == ir::L4Proto::udp && socket.port == 0) return std::nullopt;

  Attributes attributes;
  mnl_attr_parse(nlh, sizeof(inet_diag_msg), read_attribute, &attributes);
  socket.v6_only = attributes.v6_only;
  result.cgroup_id = attributes.cgroup_id;
  return result;
}

}  // namespace

std::vector<std::uint8_t> sock_diag_request(ir::L4Proto protocol, ir::Family family,
                                            std::uint32_t seq) {
  std::vector<std::uint8_t> bytes(MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(inet_diag_req_v2)), 0);
  nlmsghdr* nlh = mnl_nlmsg_put_header(bytes.data());
  nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = seq;
  auto* request =
      static_cast<inet_diag_req_v2*>(mnl_nlmsg_put_extra_header(nlh, sizeof(inet_diag_req_v2)));
  request->sdiag_family = family == ir::Family::ipv4 ? AF_INET : AF_INET6;
  request->sdiag_protocol = static_cast<std::uint8_t>(protocol);
  request->idiag_states = wanted_states(protocol);
  // No extensions: INET_DIAG_SKV6ONLY and INET_DIAG_CGROUP_ID come without asking.
  request->idiag_ext = 0;
  bytes.resize(nlh->nlmsg_len);
  return bytes;
}

SockDiagReply parse_sock_diag_reply(std::span<const std::uint8_t> bytes, ir::L4Proto protocol) {
  SockDiagReply reply;
  // netlink_message_ok reads the header in place: copy to aligned storage first, a span from a
  // test fixture need not be aligned for nlmsghdr.
  std::vector<std::uint32_t> aligned((bytes.size() + 3) / 4, 0);
  // Not for an empty span: memcpy from a null pointer is undefined even for 0 bytes.
  if (!bytes.empty()) std::memcpy(aligned.data(), bytes.data(), bytes.size());
  int remaining = static_cast<int>(bytes.size());
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(aligned.data());
       netlink_message_ok(nlh, remaining); nlh = mnl_nlmsg_next(nlh, &remaining)) {
    switch (nlh->nlmsg_type) {
      case NLMSG_DONE:
        reply.done = true;
        return reply;
      case NLMSG_ERROR: {
        if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nlmsgerr))
          throw std::runtime_error("sock_diag: truncated error message");
        const auto* error = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (error->error == 0) break;  // an ack, not expected in a dump but harmless
        throw std::system_error(netlink_errno(*error), std::generic_category(),
                                protocol == ir::L4Proto::tcp ? "sock_diag dump of TCP sockets"
                                                             : "sock_diag dump of UDP sockets");
      }
      case SOCK_DIAG_BY_FAMILY:
        if (auto socket = parse_socket(nlh, protocol)) reply.sockets.push_back(std::move(*socket));
        break;
      default:
        break;
    }
  }
  if (remaining > 0) throw std::runtime_error("sock_diag: truncated message in reply");
  return reply;
}

}  // namespace portier
