#include "netlink_socket.h"

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>

#include "kernel.h"
#include "netlink_decode.h"

namespace portier {
namespace {

// Large enough for any datagram the kernel sends us: dump parts are at most 32 KiB, and
// error replies are capped to the request header (NETLINK_CAP_ACK).
constexpr std::size_t kReceiveBufferSize = 64 * 1024;
// How long a reply may keep us waiting. nfnetlink runs a whole batch inside our
// sendmsg() and queues every reply before returning, and a dump's next part is made
// when we read the one before, so the replies are normally there at once: the wait only
// guards against that changing.
constexpr int kReplyTimeoutMs = 5000;

[[noreturn]] void throw_system(const std::string& text, int error, const std::string& subject) {
  throw KernelError(text + ": " + std::strerror(error), error, KernelObject::request, subject);
}

int socket_buffer_size(int fd, int option) {
  int size = 0;
  socklen_t len = sizeof size;
  if (getsockopt(fd, SOL_SOCKET, option, &size, &len) < 0) return 0;
  return size;
}

// The *FORCE variants pass net.core.[rw]mem_max; we hold CAP_NET_ADMIN anyway, which
// nf_tables needs. Without it, fall back to what the limit allows.
void ensure_socket_buffer(int fd, int option, int force_option, std::size_t wanted) {
  const int size = wanted > INT32_MAX / 2 ? INT32_MAX / 2 : static_cast<int>(wanted);
  // getsockopt reports twice the value set (the kernel's bookkeeping overhead).
  if (socket_buffer_size(fd, option) >= 2 * size) return;
  if (setsockopt(fd, SOL_SOCKET, force_option, &size, sizeof size) < 0) {
    setsockopt(fd, SOL_SOCKET, option, &size, sizeof size);
  }
}

}  // namespace

void NetlinkSocket::Closer::operator()(mnl_socket* socket) const { mnl_socket_close(socket); }

NetlinkSocket::NetlinkSocket(const std::string& name, int flags)
    : socket_(mnl_socket_open2(NETLINK_NETFILTER, flags)), buffer_(kReceiveBufferSize) {
  if (!socket_) throw_system("cannot open " + name, errno, name);
  if (mnl_socket_bind(socket_.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    throw_system("cannot bind " + name, errno, name);
  }
  port_id_ = mnl_socket_get_portid(socket_.get());
  // Like nft, start from the clock so that replies to an earlier process using the
  // same port id cannot be mistaken for ours.
  next_seq_ = static_cast<std::uint32_t>(std::time(nullptr));
}

NetlinkSocket::~NetlinkSocket() = default;

int NetlinkSocket::fd() const { return mnl_socket_get_fd(socket_.get()); }

std::uint32_t NetlinkSocket::take_seq(std::uint32_t count) {
  const std::uint32_t first = next_seq_;
  next_seq_ += count;
  return first;
}

void NetlinkSocket::enable(int option) {
  int on = 1;  // libmnl takes a non-const pointer
  mnl_socket_setsockopt(socket_.get(), option, &on, sizeof on);
}

void NetlinkSocket::listen_to_group(unsigned int group, bool on) {
  int number = static_cast<int>(group);
  if (mnl_socket_setsockopt(socket_.get(), on ? NETLINK_ADD_MEMBERSHIP : NETLINK_DROP_MEMBERSHIP,
                            &number, sizeof number) < 0) {
    throw_system(
        on ? "cannot listen to nf_tables events" : "cannot stop listening to nf_tables events",
        errno, "nf_tables events");
  }
}

void NetlinkSocket::ensure_buffers(std::size_t send, std::size_t receive) {
  if (send > 0) ensure_socket_buffer(fd(), SO_SNDBUF, SO_SNDBUFFORCE, send);
  if (receive > 0) ensure_socket_buffer(fd(), SO_RCVBUF, SO_RCVBUFFORCE, receive);
}

void NetlinkSocket::talk(std::span<const std::uint8_t> request, ReplyReader& reader,
                         const Subject& subject) {
  const ssize_t sent = mnl_socket_sendto(socket_.get(), request.data(), request.size());
  if (sent < 0) {
    throw_system(subject.transaction ? "cannot send " + subject.what + " to the kernel"
                                     : "cannot ask the kernel for " + subject.what,
                 errno, subject.what);
  }
  if (static_cast<std::size_t>(sent) != request.size()) {
    throw KernelError("kernel took only part of the batch for " + subject.what, 0,
                      KernelObject::request, subject.what);
  }
  const std::string read_failure = subject.transaction ? std::string("cannot read kernel replies")
                                                       : "cannot read " + subject.what;
  while (!reader.done()) {
    const ssize_t received = recv(fd(), buffer_.data(), buffer_.size(), MSG_DONTWAIT);
    if (received < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS && subject.transaction) {
        throw KernelError("kernel replies were lost (receive buffer overflow); " + subject.what +
                              " may or may not have been applied",
                          ENOBUFS, KernelObject::request, subject.what);
      }
      if (errno != EAGAIN) throw_system(read_failure, errno, subject.what);
      if (reader.done_when_idle()) return;
      pollfd waiting{fd(), POLLIN, 0};
      const int ready = poll(&waiting, 1, kReplyTimeoutMs);
      if (ready < 0 && errno != EINTR) {
        throw_system("cannot wait for kernel replies", errno, subject.what);
      }
      if (ready == 0) return;
      continue;
    }
    reader.read({buffer_.data(), static_cast<std::size_t>(received)});
  }
}

NetlinkSocket::Received NetlinkSocket::receive_queued(const std::string& what) {
  for (;;) {
    const ssize_t received = recv(fd(), buffer_.data(), buffer_.size(), MSG_DONTWAIT);
    if (received >= 0) {
      return {Received::Status::datagram, {buffer_.data(), static_cast<std::size_t>(received)}};
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return {};
    if (errno == ENOBUFS) return {Received::Status::overflow, {}};
    throw_system("cannot read " + what, errno, what);
  }
}

}  // namespace portier
