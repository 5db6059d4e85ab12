// Walking the netlink messages of a received datagram safely, for every decoder of the
// daemon (nf_tables, sock_diag, nflog).
#pragma once

#include <linux/netlink.h>

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <span>

namespace portier {

/// Whether `nlh` is a whole message within the `remaining` bytes of a datagram. Use it
/// instead of mnl_nlmsg_ok(): libmnl 1.0.4 compares the length as an int, so a length of
/// 2^31 or more passes as negative, and mnl_nlmsg_next() then jumps outside the buffer.
inline bool netlink_message_ok(const nlmsghdr* nlh, int remaining) {
  // Aligned: libmnl walks a message's attributes up to its aligned end (the kernel pads
  // every message), so an unpadded last message let an attribute reach past the datagram
  // (fuzz_netlink: strlen past the buffer in an extended ack).
  return remaining >= static_cast<int>(sizeof(nlmsghdr)) && nlh->nlmsg_len >= sizeof(nlmsghdr) &&
         nlh->nlmsg_len <= 0x7ffffff8u &&
         NLMSG_ALIGN(nlh->nlmsg_len) <= static_cast<std::uint32_t>(remaining);
}

/// The errno of an NLMSG_ERROR (the kernel sends it negated; 0: an ack). INT_MIN, which
/// has no negation (found by fuzz_sock_diag: UBSan, signed overflow), is EPROTO.
inline int netlink_errno(const nlmsgerr& error) {
  return error.error == INT_MIN ? EPROTO : -error.error;
}

/// Whether libmnl's own walk over `datagram` (mnl_cb_run()) stays inside it: no message
/// there claims 2^31 bytes or more (see netlink_message_ok()).
inline bool mnl_walk_safe(std::span<const std::uint8_t> datagram) {
  int remaining = static_cast<int>(datagram.size());
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(datagram.data());
  while (netlink_message_ok(nlh, remaining)) {
    const auto step = static_cast<int>(NLMSG_ALIGN(nlh->nlmsg_len));
    if (step >= remaining) return true;
    remaining -= step;
    nlh = reinterpret_cast<const nlmsghdr*>(reinterpret_cast<const std::uint8_t*>(nlh) + step);
  }
  return remaining < static_cast<int>(sizeof(nlmsghdr)) || nlh->nlmsg_len < 0x80000000u;
}

}  // namespace portier
