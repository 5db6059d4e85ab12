// Decoding what the kernel sends portierd on its NETLINK_NETFILTER sockets: batch acks and
// rule echoes, the generation reply, rule and set-element dumps, and notifications. Bytes
// in, structs out, no socket: netlink_kernel.cpp does the I/O, the fuzzer and the unit
// tests feed these datagrams they built.
#pragma once

#include <cstdint>
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

/// The kernel's answers to one batch, read datagram by datagram: the acks (NLMSG_ERROR,
/// error 0 or a refusal) and the echo of each NEWRULE with the new rule's handle. Replies
/// to other ports or outside the batch's sequence numbers are ignored.
class BatchReplies {
 public:
  /// `rule_seqs`: the batch's NEWRULE sequence numbers in wire order (EncodedBatch::rule_seqs),
  /// alive as long as this object; `seq_span`: how many numbers from `first_seq` the batch uses.
  BatchReplies(std::uint32_t port_id, std::uint32_t first_seq, std::uint32_t seq_span,
               std::span<const std::uint32_t> rule_seqs);

  /// Takes the messages of one datagram (as recv() returned it).
  void read(std::span<const std::uint8_t> datagram);

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

/// mnl_cb_run() callback for a GETRULE dump: decode_rule_counter() of each message, appended
/// to the std::vector<RuleCounter> `data`; MNL_CB_ERROR for one that does not parse.
int append_rule_counter(const nlmsghdr* nlh, void* data);

/// The counters of one map's GETSETELEM dump are appended to.
struct MapCounters {
  std::string map;
  std::vector<RuleCounter>* counters = nullptr;
};
/// mnl_cb_run() callback for a GETSETELEM dump: decode_map_counters() of each message, into
/// the MapCounters `data`; MNL_CB_ERROR for one that does not parse.
int append_map_counters(const nlmsghdr* nlh, void* data);

/// The notifications of the NFNLGRP_NFTABLES event socket, read datagram by datagram.
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
