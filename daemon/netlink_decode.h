// Decoding what the kernel sends portierd on its NETLINK_NETFILTER sockets: batch acks and
// rule echoes, the generation reply, rule and set-element dumps, and notifications. Bytes
// in, structs out, no socket: NetlinkSocket::talk() feeds them what it receives, the
// fuzzer and the unit tests datagrams they built.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kernel.h"

struct nlmsghdr;

namespace portier {

/// The first refusal among a batch's replies.
struct Refusal {
  std::uint32_t seq = 0;
  int error = 0;
  std::string extack;  // the kernel's extended ack message, if it gave one
};

/// The replies to one request or batch, fed datagram by datagram as recv() returns them
/// (NetlinkSocket::talk() reads until done()).
class ReplyReader {
 public:
  /// Takes the messages of one datagram (as recv() returned it).
  virtual void read(std::span<const std::uint8_t> datagram) = 0;
  /// Every reply the request asked for is in.
  virtual bool done() const = 0;
  /// Not every reply is in, but once nothing more is queued no more will come (a refused
  /// batch may leave its later messages unanswered): stop reading then instead of waiting.
  virtual bool done_when_idle() const { return false; }

 protected:
  ~ReplyReader() = default;
};

/// The kernel's answers to one batch, read datagram by datagram: the acks (NLMSG_ERROR,
/// error 0 or a refusal) and the echo of each NEWRULE with the new rule's handle. Replies
/// to other ports or outside the batch's sequence numbers are ignored.
class BatchReplies final : public ReplyReader {
 public:
  /// `rule_seqs`: the batch's NEWRULE sequence numbers in wire order (EncodedBatch::rule_seqs),
  /// alive as long as this object; `seq_span`: how many numbers from `first_seq` the batch uses;
  /// `expected_acks`: how many of its messages ask for an ack (done() when all are answered).
  BatchReplies(std::uint32_t port_id, std::uint32_t first_seq, std::uint32_t seq_span,
               std::span<const std::uint32_t> rule_seqs, std::size_t expected_acks);

  void read(std::span<const std::uint8_t> datagram) override;
  bool done() const override { return answered >= expected_acks_; }
  bool done_when_idle() const override { return first_refusal.has_value(); }

  std::vector<std::uint64_t> handles;  // per rule_seqs entry; 0 until echoed
  std::size_t echoed = 0;              // distinct rules echoed
  std::size_t answered = 0;            // acks and refusals
  std::size_t refusals = 0;
  std::optional<Refusal> first_refusal;  // the refusal of the earliest message

 private:
  std::uint32_t port_id_;
  std::uint32_t first_seq_;
  std::uint32_t seq_span_;
  std::span<const std::uint32_t> rule_seqs_;
  std::size_t expected_acks_;
};

/// The answer to one request that is not a batch: a dump (its parts, then NLMSG_DONE) or a
/// get sent with NLM_F_ACK (its reply, then the ack), or the error instead. Messages from
/// other ports or with another sequence number (stale replies) are skipped.
class RequestReplies final : public ReplyReader {
 public:
  /// Takes one reply message of the request (not NLMSG_DONE or an error); false: it is
  /// malformed.
  using Each = std::function<bool(const nlmsghdr*)>;

  RequestReplies(std::uint32_t port_id, std::uint32_t seq, Each each);

  void read(std::span<const std::uint8_t> datagram) override;
  /// NLMSG_DONE, the ack or the error came.
  bool done() const override { return done_; }

  /// The errno the kernel answered with (NLMSG_ERROR, or a dump that ended in an error);
  /// 0: none.
  int error = 0;
  std::string extack;  // the kernel's extended ack message with `error`, if it gave one
  /// A part was flagged NLM_F_DUMP_INTR: the ruleset changed while it was dumped, so the
  /// parts do not add up to one state. Ask again. `each` is not called after the flag.
  bool interrupted = false;
  /// `each` refused a reply, or a message did not fit its datagram or was a truncated
  /// error. `each` is not called after that either; the replies are still read to the end
  /// (a dump left half read would keep the socket from starting another).
  bool malformed = false;

 private:
  std::uint32_t port_id_;
  std::uint32_t seq_;
  Each each_;
  bool done_ = false;
};

/// The ruleset generation (NFTA_GEN_ID) in a NEWGEN reply; nullopt if it has none.
std::optional<std::uint32_t> decode_generation(const nlmsghdr* nlh);

/// One rule of a GETRULE dump: its chain, its comment (the policy rule) and its counter's
/// packets and bytes. nullopt if libnftnl cannot parse the message.
std::optional<RuleCounter> decode_rule_counter(const nlmsghdr* nlh);

/// The elements of one GETSETELEM dump message of RuleMap `map`, appended to `counters`
/// (chain: the map; comment: the element's; its counter expression's figures); interval end
/// elements are left out. False if libnftnl cannot parse the message.
bool decode_map_counters(const nlmsghdr* nlh, const std::string& map,
                         std::vector<RuleCounter>& counters);

/// RequestReplies::Each for a GETRULE dump: decode_rule_counter() of each message,
/// appended to `counters` (alive as long as the returned function).
RequestReplies::Each append_rule_counters(std::vector<RuleCounter>& counters);

/// RequestReplies::Each for the GETSETELEM dump of RuleMap `map`: decode_map_counters() of
/// each message, appended to `counters`.
RequestReplies::Each append_map_counters(std::string map, std::vector<RuleCounter>& counters);

/// The notifications of the NFNLGRP_NFTABLES event socket, read datagram by datagram.
/// NetlinkChanges feeds it.
class NotificationReader {
 public:
  explicit NotificationReader(std::uint32_t own_port_id = 0) : own_port_id_(own_port_id) {}

  /// True if `datagram` closes (NEWGEN) a transaction of another port that touched
  /// `table inet TABLE`, in this datagram or an earlier one (a transaction's
  /// notifications may come in several datagrams; NEWGEN ends them).
  bool read(std::span<const std::uint8_t> datagram, const std::string& table);

 private:
  std::uint32_t own_port_id_;
  bool others_touched_table_ = false;  // read others' notifications about it, not yet NEWGEN
};

}  // namespace portier
