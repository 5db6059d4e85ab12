#include "netlink_kernel.h"

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/rule.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>

#include <linux/netfilter/nfnetlink.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

#include "encode_batch.h"
#include "netlink_decode.h"

namespace portier {
namespace {

// The kernel queues every ack of a batch before delivering the first, each as its own
// skb (~1 KiB of socket memory accounting); the socket's receive buffer must hold them
// all or the overflow is dropped.
constexpr std::size_t kReceiveBudgetPerAck = 2048;
// Room for the notifications of others' transactions between two reads; more than that
// counts as a change (see changed_by_others()).
constexpr std::size_t kEventBufferSize = 4 * 1024 * 1024;

// What a batch message is about, from its type, for KernelError::object().
KernelObject object_of(std::uint16_t type) {
  if ((type >> 8) != NFNL_SUBSYS_NFTABLES) return KernelObject::request;
  switch (type & 0xff) {
    case NFT_MSG_NEWTABLE:
    case NFT_MSG_DELTABLE:
      return KernelObject::table;
    case NFT_MSG_NEWCHAIN:
    case NFT_MSG_DELCHAIN:
      return KernelObject::chain;
    case NFT_MSG_NEWSET:
    case NFT_MSG_DELSET:
      return KernelObject::set;
    case NFT_MSG_NEWSETELEM:
    case NFT_MSG_DELSETELEM:
      return KernelObject::elements;
    case NFT_MSG_NEWRULE:
    case NFT_MSG_DELRULE:
      return KernelObject::rule;
    default:
      return KernelObject::request;
  }
}

std::span<const std::uint8_t> bytes_of(const nlmsghdr* nlh) {
  return {reinterpret_cast<const std::uint8_t*>(nlh), nlh->nlmsg_len};
}

[[noreturn]] void throw_system(const std::string& text, int error, const std::string& subject) {
  throw KernelError(text + ": " + std::strerror(error), error, KernelObject::request, subject);
}

}  // namespace

NetlinkKernel::NetlinkKernel() : socket_("netfilter netlink socket") {
  // Extended acks carry the kernel's reason text; capped acks keep an error reply from
  // echoing a whole (possibly 64 KiB) request back.
  socket_.enable(NETLINK_EXT_ACK);
  socket_.enable(NETLINK_CAP_ACK);
}

NetlinkKernel::~NetlinkKernel() = default;

namespace {

// The handles of a replacement's rules, chain by chain, from the echoes in batch order.
RuleHandles handles_by_chain(const ir::Ruleset& ruleset, const std::vector<std::uint64_t>& flat) {
  RuleHandles handles;
  handles.reserve(ruleset.chains.size());
  std::size_t next = 0;
  for (const ir::Chain& chain : ruleset.chains) {
    handles.emplace_back(flat.begin() + static_cast<std::ptrdiff_t>(next),
                         flat.begin() + static_cast<std::ptrdiff_t>(next + chain.rules.size()));
    next += chain.rules.size();
  }
  return handles;
}

}  // namespace

RuleHandles NetlinkKernel::apply(const ir::Ruleset& ruleset) {
  const EncodedBatch batch = encode_replace_batch(ruleset, socket_.next_seq());
  socket_.used_seqs_before(batch.next_seq);
  return handles_by_chain(ruleset, transact(batch, "the ruleset"));
}

RuleHandles NetlinkKernel::refill(const ir::Ruleset& loaded, const ir::Ruleset& next) {
  const EncodedBatch batch = replaces_in_place(loaded, next)
                                 ? encode_refill_batch(loaded, next, socket_.next_seq())
                                 : encode_replace_batch(next, socket_.next_seq());
  socket_.used_seqs_before(batch.next_seq);
  return handles_by_chain(next, transact(batch, "the ruleset"));
}

std::vector<std::uint64_t> NetlinkKernel::edit(const ir::Ruleset& loaded, const TableEdit& edit) {
  if (edit.removes.empty() && edit.inserts.empty() && edit.maps.empty()) return {};
  std::vector<MapElementChange> map_changes;
  for (const MapEdit& map : edit.maps)
    map_changes.push_back({map.map, map.key, map.add, map.remove});
  std::vector<RuleRemoval> removals;
  removals.reserve(edit.removes.size());
  for (const TableEdit::Remove& remove : edit.removes)
    removals.push_back({remove.chain, remove.handle});
  std::vector<RuleInsertion> insertions;
  insertions.reserve(edit.inserts.size());
  for (const TableEdit::Insert& insert : edit.inserts) {
    insertions.push_back({insert.chain, insert.after_handle, &insert.rule});
  }
  const EncodedBatch batch = encode_edit_batch({.table = loaded.table,
                                                .sets = loaded.sets,
                                                .maps = loaded.maps,
                                                .removals = removals,
                                                .insertions = insertions,
                                                .map_changes = map_changes,
                                                .first_seq = socket_.next_seq()});
  socket_.used_seqs_before(batch.next_seq);
  return transact(batch, "the edit of table inet " + loaded.table);
}

void NetlinkKernel::edit_set(const std::string& table, const SetEdit& edit) {
  if (edit.add.empty() && edit.remove.empty()) return;
  const SetElementChange change{edit.set, edit.key,    edit.interval,
                                edit.add, edit.remove, edit.timeout_seconds};
  const EncodedBatch batch = encode_set_edit_batch(table, change, socket_.next_seq());
  socket_.used_seqs_before(batch.next_seq);
  transact(batch, "the elements of set " + edit.set);
}

std::vector<std::uint64_t> NetlinkKernel::transact(const EncodedBatch& batch,
                                                   const std::string& subject) {
  if (changes_ == nullptr) return send_batch(batch, subject);
  return changes_->own_transaction([&] { return send_batch(batch, subject); });
}

std::vector<std::uint64_t> NetlinkKernel::send_batch(const EncodedBatch& batch,
                                                     const std::string& subject) {
  const std::uint32_t first_seq = batch.messages.front().seq;
  const std::uint32_t seq_span = batch.next_seq - first_seq;

  std::size_t expected_acks = 0;
  for (const BatchMessage& message : batch.messages) expected_acks += message.wants_ack ? 1 : 0;

  // The echoed rules share page-sized buffers; a rule's echo is about as long as the
  // NEWRULE that made it (its anonymous sets are separate messages).
  socket_.ensure_buffers(batch.bytes.size() + 4096,
                         (expected_acks + batch.rule_seqs.size() + 16) * kReceiveBudgetPerAck);
  BatchReplies replies(socket_.port_id(), first_seq, seq_span, batch.rule_seqs, expected_acks);
  socket_.talk(batch.bytes, replies, {subject, true});

  if (replies.first_refusal) {
    const BatchMessage* message = batch.find(replies.first_refusal->seq);
    const std::string refused = message ? message->what : subject;
    std::string text =
        "kernel refused " + refused + ": " + std::strerror(replies.first_refusal->error);
    if (!replies.first_refusal->extack.empty()) text += " (" + replies.first_refusal->extack + ")";
    if (replies.refusals > 1)
      text += " [and " + std::to_string(replies.refusals - 1) + " more refusals]";
    throw KernelError(text, replies.first_refusal->error,
                      message ? object_of(message->type) : KernelObject::request, refused);
  }
  if (replies.answered < expected_acks) {
    throw KernelError("kernel answered " + std::to_string(replies.answered) + " of " +
                          std::to_string(expected_acks) + " messages; " + subject +
                          " may or may not have been applied",
                      0, KernelObject::request, subject);
  }
  if (replies.echoed < replies.handles.size()) {
    throw KernelError("kernel echoed " + std::to_string(replies.echoed) + " of " +
                          std::to_string(replies.handles.size()) + " new rules; " + subject +
                          " was applied, but the rule handles are unknown",
                      0, KernelObject::request, subject);
  }
  return std::move(replies.handles);
}

int NetlinkKernel::request(const std::function<nlmsghdr*(char*, std::uint32_t)>& build,
                           const RequestReplies::Each& each, const std::function<void()>& restart,
                           const std::string& what, std::initializer_list<int> answers) {
  // A dump that races with a ruleset change is flagged NLM_F_DUMP_INTR; it is simply
  // asked again.
  constexpr int kAttempts = 5;
  std::vector<char> buffer(MNL_SOCKET_BUFFER_SIZE);
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    const std::uint32_t seq = socket_.take_seq(1);
    const nlmsghdr* nlh = build(buffer.data(), seq);
    restart();
    RequestReplies replies(socket_.port_id(), seq, each);
    socket_.talk(bytes_of(nlh), replies, {what, false});
    if (replies.malformed) {
      throw KernelError("malformed reply to the request for " + what, EBADMSG,
                        KernelObject::request, what);
    }
    if (!replies.done()) {
      throw KernelError("the kernel did not answer the request for " + what, ETIMEDOUT,
                        KernelObject::request, what);
    }
    if (replies.interrupted) continue;
    if (replies.error == 0) return 0;
    if (std::find(answers.begin(), answers.end(), replies.error) != answers.end()) {
      return replies.error;
    }
    throw_system("cannot read " + what, replies.error, what);
  }
  throw KernelError(what + " kept changing while being read", EINTR, KernelObject::request, what);
}

std::uint32_t NetlinkKernel::generation() {
  std::optional<std::uint32_t> id;
  bool replied = false;
  const std::string what = "the ruleset generation";
  request(
      [](char* buffer, std::uint32_t seq) {
        // With an ack after the NEWGEN reply: every request ends the same way.
        return nftnl_nlmsg_build_hdr(buffer, NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK, seq);
      },
      [&](const nlmsghdr* reply) {
        replied = true;
        id = decode_generation(reply);
        return true;
      },
      [] {}, what, {});
  if (!id) {
    throw KernelError(replied ? "the kernel's generation reply has no generation id"
                              : "the kernel sent no generation reply",
                      0, KernelObject::request, what);
  }
  return *id;
}

std::vector<RuleCounter> NetlinkKernel::read_counters(const std::string& table,
                                                      const std::vector<std::string>& maps) {
  std::vector<RuleCounter> counters;
  const int rules = request(
      [&table](char* buffer, std::uint32_t seq) {
        nlmsghdr* nlh =
            nftnl_nlmsg_build_hdr(buffer, NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP, seq);
        std::unique_ptr<nftnl_rule, decltype(&nftnl_rule_free)> filter(nftnl_rule_alloc(),
                                                                       &nftnl_rule_free);
        if (!filter) throw std::bad_alloc();
        // The kernel only dumps the rules of this table.
        nftnl_rule_set_str(filter.get(), NFTNL_RULE_TABLE, table.c_str());
        nftnl_rule_nlmsg_build_payload(nlh, filter.get());
        return nlh;
      },
      append_rule_counters(counters), [&counters] { counters.clear(); },
      "the rules of table inet " + table);
  if (rules == ENOENT) return {};
  for (const std::string& map : maps) {
    const std::size_t start = counters.size();
    const int elements = request(
        [&table, &map](char* buffer, std::uint32_t seq) {
          nlmsghdr* nlh =
              nftnl_nlmsg_build_hdr(buffer, NFT_MSG_GETSETELEM, NFPROTO_INET, NLM_F_DUMP, seq);
          mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table.c_str());
          mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, map.c_str());
          return nlh;
        },
        append_map_counters(map, counters), [&counters, start] { counters.resize(start); },
        "the elements of map " + map);
    if (elements == ENOENT) {
      throw KernelError("table inet " + table + " has no map " + map, ENOENT, KernelObject::set,
                        "map " + map);
    }
  }
  return counters;
}

std::vector<PublishedPort> NetlinkKernel::published_ports(const std::string& own_table) {
  std::vector<PublishedPort> ports;
  request(
      [](char* buffer, std::uint32_t seq) {
        return nftnl_nlmsg_build_hdr(buffer, NFT_MSG_GETRULE, NFPROTO_UNSPEC, NLM_F_DUMP, seq);
      },
      append_published_ports(own_table, ports), [&ports] { ports.clear(); },
      "the rules of all tables");
  return ports;
}

bool NetlinkKernel::table_exists(const std::string& table) {
  const int found = request(
      [&table](char* buffer, std::uint32_t seq) {
        nlmsghdr* nlh =
            nftnl_nlmsg_build_hdr(buffer, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, seq);
        mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, table.c_str());
        return nlh;
      },
      [](const nlmsghdr*) { return true; }, [] {}, "table inet " + table);
  return found == 0;
}

NetlinkChanges::NetlinkChanges(NetlinkKernel& kernel)
    : kernel_(kernel),
      socket_("netfilter event socket", SOCK_NONBLOCK),
      notifications_(kernel.socket_.port_id()) {
  socket_.ensure_buffers(0, kEventBufferSize);
  socket_.listen_to_group(NFNLGRP_NFTABLES, true);
  kernel_.changes_ = this;
}

NetlinkChanges::~NetlinkChanges() { kernel_.changes_ = nullptr; }

std::vector<std::uint64_t> NetlinkChanges::own_transaction(
    const std::function<std::vector<std::uint64_t>()>& commit) {
  const std::uint32_t before = kernel_.generation();
  socket_.listen_to_group(NFNLGRP_NFTABLES, false);
  bool committed = false;
  try {
    std::vector<std::uint64_t> handles = commit();
    committed = true;
    socket_.listen_to_group(NFNLGRP_NFTABLES, true);
    if (kernel_.generation() != before + 1) others_committed_ = true;
    return handles;
  } catch (...) {
    if (!committed) {
      socket_.listen_to_group(NFNLGRP_NFTABLES, true);
      // An aborted batch leaves the generation as it was.
      if (kernel_.generation() != before) others_committed_ = true;
    }
    throw;
  }
}

bool NetlinkChanges::changed_by_others(const std::string& table) {
  bool changed = others_committed_;
  others_committed_ = false;
  for (;;) {
    const NetlinkSocket::Received received = socket_.receive_queued("nf_tables events");
    switch (received.status) {
      case NetlinkSocket::Received::Status::empty:
        return changed;
      case NetlinkSocket::Received::Status::overflow:
        // Notifications were dropped: they may have concerned our table.
        changed = true;
        break;
      case NetlinkSocket::Received::Status::datagram:
        if (notifications_.read(received.bytes, table)) changed = true;
        break;
    }
  }
}

}  // namespace portier
