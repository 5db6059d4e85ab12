// One NETLINK_NETFILTER socket (RAII over libmnl's mnl_socket) and the one conversation
// portierd holds on it: send a request or a batch, then read the replies until the
// request is answered. What the replies mean is netlink_decode.h's (a ReplyReader);
// NetlinkKernel builds the requests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

struct mnl_socket;

namespace portier {

class ReplyReader;

/// Not thread-safe: the sequence numbers and replies of one socket serve one caller at a time.
class NetlinkSocket {
 public:
  /// What is sent, for error text: a transaction (a batch that changes the ruleset) or a
  /// request that only asks (a dump, a lookup); `what` names it ("the ruleset", "the
  /// rules of table inet portier").
  struct Subject {
    std::string what;
    bool transaction = false;
  };

  /// Opens and binds a socket; `flags` go to socket(2) with its type (SOCK_NONBLOCK);
  /// `name` is what errors call it ("netfilter netlink socket"). Throws KernelError.
  explicit NetlinkSocket(const std::string& name, int flags = 0);
  ~NetlinkSocket();
  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;

  int fd() const;
  std::uint32_t port_id() const { return port_id_; }

  /// The first of `count` fresh sequence numbers, for one request.
  std::uint32_t take_seq(std::uint32_t count = 1);
  /// The next fresh sequence number, for an encoder that numbers a batch itself; then
  /// used_seqs_before() with the first number after the batch.
  std::uint32_t next_seq() const { return next_seq_; }
  void used_seqs_before(std::uint32_t next) { next_seq_ = next; }

  /// Sets a boolean SOL_NETLINK option (NETLINK_EXT_ACK, NETLINK_CAP_ACK); a kernel that
  /// lacks it is no error (the options only add detail).
  void enable(int option);
  /// Joins or leaves a multicast group (NFNLGRP_NFTABLES); throws KernelError.
  void listen_to_group(unsigned int group, bool on);
  /// Grows the socket's send and receive buffers to hold `send` and `receive` bytes (a
  /// bigger one is kept).
  void ensure_buffers(std::size_t send, std::size_t receive);

  /// Sends `request` (one message, or a whole batch from BATCH_BEGIN to BATCH_END), then
  /// feeds `reader` every datagram that comes until it is done(); stops early when it is
  /// done_when_idle() and nothing more is queued, or when no reply came for 5 s (the
  /// reader then is not done(): the caller says what is missing). Replies to earlier
  /// requests are the reader's to skip (by sequence number). Throws KernelError when the
  /// socket fails, naming `subject`.
  void talk(std::span<const std::uint8_t> request, ReplyReader& reader, const Subject& subject);

  /// One datagram already queued, without waiting (for the notification socket).
  struct Received {
    enum class Status { datagram, empty, overflow } status = Status::empty;
    std::span<const std::uint8_t> bytes;  // with datagram: valid until the next receive
  };
  /// Reads one queued datagram. overflow: the kernel dropped messages for want of room
  /// in the receive buffer (ENOBUFS), which says nothing of their content. Throws
  /// KernelError naming `what` on another failure.
  Received receive_queued(const std::string& what);

 private:
  struct Closer {
    void operator()(mnl_socket* socket) const;
  };
  std::unique_ptr<mnl_socket, Closer> socket_;
  std::uint32_t port_id_ = 0;
  std::uint32_t next_seq_ = 0;
  std::vector<std::uint8_t> buffer_;  // one datagram; kept, the event socket reads often
};

}  // namespace portier
