#include "netlink_kernel.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <endian.h>
#include <linux/netfilter/nfnetlink.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <optional>
#include <string_view>

#include "encode_batch.h"

namespace portier {
namespace {

// Large enough for any datagram the kernel sends us: dump parts are at most 32 KiB, and
// error replies are capped to the request header (NETLINK_CAP_ACK).
constexpr std::size_t kReceiveBufferSize = 64 * 1024;
// The kernel queues every ack of a batch before delivering the first, each as its own
// skb (~1 KiB of socket memory accounting); the socket's receive buffer must hold them
// all or the overflow is dropped.
constexpr int kReceiveBudgetPerAck = 2048;
constexpr int kAckTimeoutMs = 5000;
// Room for the notifications of others' transactions between two reads; more than that
// counts as a change (see changed_by_others()).
constexpr std::size_t kEventBufferSize = 4 * 1024 * 1024;

std::string errno_text(int error) { return std::strerror(error); }

[[noreturn]] void throw_system(const std::string& what, int error) {
  throw KernelError(what + ": " + errno_text(error));
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

struct Refusal {
  std::uint32_t seq = 0;
  int error = 0;
  std::string extack;  // the kernel's extended ack message, if it gave one
};

std::string extack_message(const nlmsghdr* nlh, const nlmsgerr* err) {
  if ((nlh->nlmsg_flags & NLM_F_ACK_TLVS) == 0) return {};
  // The TLVs follow the echoed request: just its header when capped, else all of it.
  std::size_t offset = sizeof(nlmsgerr);
  if ((nlh->nlmsg_flags & NLM_F_CAPPED) == 0) offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
  if (offset >= mnl_nlmsg_get_payload_len(nlh)) return {};
  std::string message;
  mnl_attr_parse(
      nlh, static_cast<unsigned int>(offset),
      [](const nlattr* attr, void* data) {
        if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
            mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0) {
          *static_cast<std::string*>(data) = mnl_attr_get_str(attr);
        }
        return MNL_CB_OK;
      },
      &message);
  return message;
}

// Whether a notification of the event group is about `table inet NAME`: every nf_tables
// object message names its table in attribute 1 (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE,
// NFTA_RULE_TABLE, NFTA_SET_TABLE, NFTA_SET_ELEM_LIST_TABLE, NFTA_OBJ_TABLE,
// NFTA_FLOWTABLE_TABLE). NEWGEN, which closes every transaction, names none.
bool concerns_table(const nlmsghdr* nlh, const std::string& table) {
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES) return false;
  if ((nlh->nlmsg_type & 0xff) == NFT_MSG_NEWGEN) return false;
  if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nfgenmsg)) return false;
  const auto* header = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  if (header->nfgen_family != NFPROTO_INET) return false;
  struct Match {
    const std::string* table;
    bool found = false;
  } match{&table};
  mnl_attr_parse(
      nlh, sizeof(nfgenmsg),
      [](const nlattr* attr, void* data) {
        auto* m = static_cast<Match*>(data);
        if (mnl_attr_get_type(attr) == 1 && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0) {
          m->found = *m->table == mnl_attr_get_str(attr);
          return MNL_CB_STOP;
        }
        return MNL_CB_OK;
      },
      &match);
  return match.found;
}

// Userdata is a list of {u8 type, u8 length, value} records; nft's comment of a rule
// (NFTNL_UDATA_RULE_COMMENT) or of a set element (NFTNL_UDATA_SET_ELEM_COMMENT) is a
// NUL-terminated value.
std::string udata_comment(const void* udata, std::uint32_t len, std::uint8_t comment_type) {
  const auto* data = static_cast<const std::uint8_t*>(udata);
  std::uint32_t pos = 0;
  while (data != nullptr && pos + 2 <= len) {
    const std::uint8_t type = data[pos];
    const std::uint8_t value_len = data[pos + 1];
    if (pos + 2 + value_len > len) break;
    if (type == comment_type) {
      std::string_view value(reinterpret_cast<const char*>(data + pos + 2), value_len);
      return std::string(value.substr(0, value.find('\0')));
    }
    pos += 2u + value_len;
  }
  return {};
}

// nftnl_expr_foreach() callback: the packets and bytes of a counter expression, into the
// RuleCounter `out`.
int take_counter(nftnl_expr* expr, void* out) {
  const char* name = nftnl_expr_get_str(expr, NFTNL_EXPR_NAME);
  if (name != nullptr && std::string_view(name) == "counter") {
    auto* counter = static_cast<RuleCounter*>(out);
    counter->packets = nftnl_expr_get_u64(expr, NFTNL_EXPR_CTR_PACKETS);
    counter->bytes = nftnl_expr_get_u64(expr, NFTNL_EXPR_CTR_BYTES);
  }
  return 0;
}

struct RuleParser {
  struct RuleDeleter {
    void operator()(nftnl_rule* rule) const { nftnl_rule_free(rule); }
  };

  static std::string comment_of(const nftnl_rule* rule) {
    if (!nftnl_rule_is_set(rule, NFTNL_RULE_USERDATA)) return {};
    std::uint32_t len = 0;
    const void* data = nftnl_rule_get_data(rule, NFTNL_RULE_USERDATA, &len);
    return udata_comment(data, len, NFTNL_UDATA_RULE_COMMENT);
  }

  static int on_message(const nlmsghdr* nlh, void* data) {
    auto* counters = static_cast<std::vector<RuleCounter>*>(data);
    std::unique_ptr<nftnl_rule, RuleDeleter> rule(nftnl_rule_alloc());
    if (!rule || nftnl_rule_nlmsg_parse(nlh, rule.get()) < 0) return MNL_CB_ERROR;
    RuleCounter counter;
    if (const char* chain = nftnl_rule_get_str(rule.get(), NFTNL_RULE_CHAIN)) counter.chain = chain;
    counter.comment = comment_of(rule.get());
    nftnl_expr_foreach(
        rule.get(),
        take_counter,
        &counter);
    counters->push_back(std::move(counter));
    return MNL_CB_OK;
  }
};

// The elements of one RuleMap: one counter per element, named by the map and the
// element's comment (the policy rule). An rbtree map also holds the end boundaries of
// its ranges, which are no elements of their own.
struct ElementParser {
  struct SetDeleter {
    void operator()(nftnl_set* set) const { nftnl_set_free(set); }
  };

  std::string map;
  std::vector<RuleCounter>* counters = nullptr;

  static std::string comment_of(nftnl_set_elem* element) {
    if (!nftnl_set_elem_is_set(element, NFTNL_SET_ELEM_USERDATA)) return {};
    std::uint32_t len = 0;
    const void* data = nftnl_set_elem_get(element, NFTNL_SET_ELEM_USERDATA, &len);
    return udata_comment(data, len, NFTNL_UDATA_SET_ELEM_COMMENT);
  }

  static int on_element(nftnl_set_elem* element, void* data) {
    auto* parser = static_cast<ElementParser*>(data);
    if (nftnl_set_elem_is_set(element, NFTNL_SET_ELEM_FLAGS) &&
        (nftnl_set_elem_get_u32(element, NFTNL_SET_ELEM_FLAGS) & NFT_SET_ELEM_INTERVAL_END) != 0) {
      return 0;
    }
    RuleCounter counter;
    counter.chain = parser->map;
    counter.comment = comment_of(element);
    nftnl_set_elem_expr_foreach(
        element,
        take_counter,
        &counter);
    parser->counters->push_back(std::move(counter));
    return 0;
  }

  static int on_message(const nlmsghdr* nlh, void* data) {
    std::unique_ptr<nftnl_set, SetDeleter> set(nftnl_set_alloc());
    if (!set || nftnl_set_elems_nlmsg_parse(nlh, set.get()) < 0) return MNL_CB_ERROR;
    nftnl_set_elem_foreach(set.get(), &ElementParser::on_element, data);
    return MNL_CB_OK;
  }
};

}  // namespace

void NetlinkKernel::SocketCloser::operator()(mnl_socket* socket) const { mnl_socket_close(socket); }

NetlinkKernel::NetlinkKernel() : socket_(mnl_socket_open(NETLINK_NETFILTER)) {
  if (!socket_) throw_system("cannot open netfilter netlink socket", errno);
  if (mnl_socket_bind(socket_.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    throw_system("cannot bind netfilter netlink socket", errno);
  }
  port_id_ = mnl_socket_get_portid(socket_.get());
  // Extended acks carry the kernel's reason text; capped acks keep an error reply from
  // echoing a whole (possibly 64 KiB) request back.
  int on = 1;  // libmnl takes a non-const pointer
  mnl_socket_setsockopt(socket_.get(), NETLINK_EXT_ACK, &on, sizeof on);
  mnl_socket_setsockopt(socket_.get(), NETLINK_CAP_ACK, &on, sizeof on);
  // Like nft, start from the clock so that replies to an earlier process using the
  // same port id cannot be mistaken for ours.
  next_seq_ = static_cast<std::uint32_t>(std::time(nullptr));
}

NetlinkKernel::~NetlinkKernel() = default;

std::uint32_t NetlinkKernel::take_seq(std::uint32_t count) {
  const std::uint32_t first = next_seq_;
  next_seq_ += count;
  return first;
}

RuleHandles NetlinkKernel::apply(const ir::Ruleset& ruleset) {
  const EncodedBatch batch = encode_replace_batch(ruleset, next_seq_);
  next_seq_ = batch.next_seq;
  const std::vector<std::uint64_t> flat = transact(batch, "the ruleset");
  RuleHandles handles;
  handles.reserve(ruleset.chains.size());
  std::size_t next = 0;
  for (const ir::Chain& chain : ruleset.chains) {
    handles.emplace_back(flat.begin() + static_cast<std::ptrdiff_t>(next),
                         flat.begin() + static_cast<std::ptrdiff_t>(next + chain.rules.size()));
    next += chain.rules.size();
  }
  std::vector<ir::RuleMap>& maps = declared_maps_[ruleset.table];
  maps.clear();
  for (const ir::RuleMap& map : ruleset.maps) maps.push_back(ir::RuleMap{map.name, map.key, {}});
  std::vector<ir::NamedSet>& declared = declared_sets_[ruleset.table];
  declared.clear();
  for (const ir::NamedSet& set : ruleset.sets) {
    declared.push_back(ir::NamedSet{set.name,
                                    set.key,
                                    set.interval,
                                    set.timeout,
                                    set.dynamic,
                                    set.default_timeout_seconds,
                                    set.size,
                                    {},
                                    set.owner,
                                    {}});
  }
  return handles;
}

std::vector<std::uint64_t> NetlinkKernel::edit(const std::string& table, const TableEdit& edit) {
  if (edit.removes.empty() && edit.inserts.empty() && edit.maps.empty()) return {};
  std::vector<MapElementChange> map_changes;
  for (const MapEdit& map : edit.maps) map_changes.push_back({map.map, map.key, map.add, map.remove});
  std::vector<RuleRemoval> removals;
  removals.reserve(edit.removes.size());
  for (const TableEdit::Remove& remove : edit.removes)
    removals.push_back({remove.chain, remove.handle});
  std::vector<RuleInsertion> insertions;
  insertions.reserve(edit.inserts.size());
  for (const TableEdit::Insert& insert : edit.inserts) {
    insertions.push_back({insert.chain, insert.after_handle, &insert.rule});
  }
  static const std::vector<ir::NamedSet> no_sets;
  static const std::vector<ir::RuleMap> no_maps;
  const auto declared = declared_sets_.find(table);
  const auto maps = declared_maps_.find(table);
  const EncodedBatch batch = encode_edit_batch(
      table, declared == declared_sets_.end() ? no_sets : declared->second,
      maps == declared_maps_.end() ? no_maps : maps->second, removals, insertions, map_changes,
      next_seq_);
  next_seq_ = batch.next_seq;
  return transact(batch, "the edit of table inet " + table);
}

void NetlinkKernel::edit_set(const std::string& table, const SetEdit& edit) {
  if (edit.add.empty() && edit.remove.empty()) return;
  const SetElementChange change{edit.set, edit.key,    edit.interval,
                                edit.add, edit.remove, edit.timeout_seconds};
  const EncodedBatch batch = encode_set_edit_batch(table, change, next_seq_);
  next_seq_ = batch.next_seq;
  transact(batch, "the elements of set " + edit.set);
}

// Our own transactions are kept off the event socket: with it subscribed, the kernel
// would build a notification for every rule and element we load (a million-element set
// overflows any receive buffer, and costs the kernel time even when nobody listens but
// us). So the socket leaves the group while a batch of ours runs, and the generation
// counter (bumped by every commit) shows whether anyone else committed meanwhile.
std::vector<std::uint64_t> NetlinkKernel::transact(const EncodedBatch& batch,
                                                   const std::string& subject) {
  if (!events_) return send_batch(batch, subject);
  const std::uint32_t before = generation();
  listen_to_events(false);
  bool committed = false;
  try {
    std::vector<std::uint64_t> handles = send_batch(batch, subject);
    committed = true;
    listen_to_events(true);
    if (generation() != before + 1) others_committed_ = true;
    return handles;
  } catch (...) {
    if (!committed) {
      listen_to_events(true);
      // An aborted batch leaves the generation as it was.
      if (generation() != before) others_committed_ = true;
    }
    throw;
  }
}

std::vector<std::uint64_t> NetlinkKernel::send_batch(const EncodedBatch& batch,
                                                     const std::string& subject) {
  const std::uint32_t first_seq = batch.messages.front().seq;
  const std::uint32_t seq_span = batch.next_seq - first_seq;

  std::size_t expected_acks = 0;
  for (const BatchMessage& message : batch.messages) expected_acks += message.wants_ack ? 1 : 0;

  const int fd = mnl_socket_get_fd(socket_.get());
  ensure_socket_buffer(fd, SO_SNDBUF, SO_SNDBUFFORCE, batch.bytes.size() + 4096);
  // The echoed rules share page-sized buffers; a rule's echo is about as long as the
  // NEWRULE that made it (its anonymous sets are separate messages).
  ensure_socket_buffer(fd, SO_RCVBUF, SO_RCVBUFFORCE,
                       (expected_acks + batch.rule_seqs.size() + 16) *
                           static_cast<std::size_t>(kReceiveBudgetPerAck));

  const ssize_t sent = mnl_socket_sendto(socket_.get(), batch.bytes.data(), batch.bytes.size());
  if (sent < 0) throw_system("cannot send " + subject + " to the kernel", errno);
  if (static_cast<std::size_t>(sent) != batch.bytes.size()) {
    throw KernelError("kernel took only part of the batch for " + subject);
  }

  // nfnetlink runs the whole batch inside our sendmsg() and queues every reply before
  // returning (the echoes at commit, then the acks), so the replies are normally all
  // there; the poll only guards against that changing.
  std::vector<std::uint64_t> handles(batch.rule_seqs.size(), 0);
  std::size_t echoed = 0;
  std::vector<char> buffer(kReceiveBufferSize);
  std::size_t answered = 0;
  std::optional<Refusal> first_refusal;
  std::size_t refusals = 0;
  while (answered < expected_acks) {
    const ssize_t received = recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (received < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        throw KernelError("kernel replies were lost (receive buffer overflow); " + subject +
                          " may or may not have been applied");
      }
      if (errno != EAGAIN) throw_system("cannot read kernel replies", errno);
      if (first_refusal) break;  // a failed batch may leave later messages unanswered
      pollfd waiting{fd, POLLIN, 0};
      const int ready = poll(&waiting, 1, kAckTimeoutMs);
      if (ready < 0 && errno != EINTR) throw_system("cannot wait for kernel replies", errno);
      if (ready == 0) break;
      continue;
    }
    int remaining = static_cast<int>(received);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buffer.data()); mnl_nlmsg_ok(nlh, remaining);
         nlh = mnl_nlmsg_next(nlh, &remaining)) {
      if (nlh->nlmsg_pid != port_id_) continue;
      if (nlh->nlmsg_seq - first_seq >= seq_span) continue;  // a stale reply
      if (nlh->nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE)) {
        // An echo. Rule sequence numbers rise through the batch (and may wrap around).
        const auto found = std::lower_bound(batch.rule_seqs.begin(), batch.rule_seqs.end(),
                                            nlh->nlmsg_seq - first_seq,
                                            [first_seq](std::uint32_t seq, std::uint32_t offset) {
                                              return seq - first_seq < offset;
                                            });
        if (found == batch.rule_seqs.end() || *found != nlh->nlmsg_seq) continue;
        std::uint64_t& handle = handles[static_cast<std::size_t>(found - batch.rule_seqs.begin())];
        if (handle == 0) ++echoed;
        mnl_attr_parse(
            nlh, sizeof(nfgenmsg),
            [](const nlattr* attr, void* data) {
              if (mnl_attr_get_type(attr) == NFTA_RULE_HANDLE &&
                  mnl_attr_validate(attr, MNL_TYPE_U64) >= 0) {
                *static_cast<std::uint64_t*>(data) = be64toh(mnl_attr_get_u64(attr));
              }
              return MNL_CB_OK;
            },
            &handle);
        continue;
      }
      if (nlh->nlmsg_type != NLMSG_ERROR) continue;
      const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      ++answered;
      if (err->error == 0) continue;
      ++refusals;
      if (!first_refusal || nlh->nlmsg_seq - first_seq < first_refusal->seq - first_seq) {
        first_refusal = Refusal{nlh->nlmsg_seq, -err->error, extack_message(nlh, err)};
      }
    }
  }

  if (first_refusal) {
    const BatchMessage* message = batch.find(first_refusal->seq);
    std::string text = "kernel refused " + (message ? message->what : subject) + ": " +
                       errno_text(first_refusal->error);
    if (!first_refusal->extack.empty()) text += " (" + first_refusal->extack + ")";
    if (refusals > 1) text += " [and " + std::to_string(refusals - 1) + " more refusals]";
    throw KernelError(text);
  }
  if (answered < expected_acks) {
    throw KernelError("kernel answered " + std::to_string(answered) + " of " +
                      std::to_string(expected_acks) + " messages; " + subject +
                      " may or may not have been applied");
  }
  if (echoed < handles.size()) {
    throw KernelError("kernel echoed " + std::to_string(echoed) + " of " +
                      std::to_string(handles.size()) + " new rules; " + subject +
                      " was applied, but the rule handles are unknown");
  }
  return handles;
}

std::uint32_t NetlinkKernel::generation() {
  std::vector<char> buffer(kReceiveBufferSize);
  const std::uint32_t seq = take_seq(1);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buffer.data(), NFT_MSG_GETGEN, AF_UNSPEC, 0, seq);
  if (mnl_socket_sendto(socket_.get(), nlh, nlh->nlmsg_len) < 0) {
    throw_system("cannot ask the kernel for the ruleset generation", errno);
  }
  for (;;) {
    const ssize_t received = mnl_socket_recvfrom(socket_.get(), buffer.data(), buffer.size());
    if (received < 0) {
      if (errno == EINTR) continue;
      throw_system("cannot read the ruleset generation", errno);
    }
    int remaining = static_cast<int>(received);
    for (auto* reply = reinterpret_cast<const nlmsghdr*>(buffer.data());
         mnl_nlmsg_ok(reply, remaining); reply = mnl_nlmsg_next(reply, &remaining)) {
      if (reply->nlmsg_seq != seq || reply->nlmsg_pid != port_id_) continue;  // stale
      if (reply->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(reply));
        throw_system("cannot read the ruleset generation", -err->error);
      }
      std::optional<std::uint32_t> id;
      mnl_attr_parse(
          reply, sizeof(nfgenmsg),
          [](const nlattr* attr, void* data) {
            if (mnl_attr_get_type(attr) == NFTA_GEN_ID &&
                mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) {
              *static_cast<std::optional<std::uint32_t>*>(data) = ntohl(mnl_attr_get_u32(attr));
            }
            return MNL_CB_OK;
          },
          &id);
      if (!id) throw KernelError("the kernel's generation reply has no generation id");
      return *id;
    }
  }
}

void NetlinkKernel::listen_to_events(bool on) {
  int group = NFNLGRP_NFTABLES;
  if (mnl_socket_setsockopt(events_.get(), on ? NETLINK_ADD_MEMBERSHIP : NETLINK_DROP_MEMBERSHIP,
                            &group, sizeof group) < 0) {
    throw_system(
        on ? "cannot listen to nf_tables events" : "cannot stop listening to nf_tables events",
        errno);
  }
}

int NetlinkKernel::event_fd() {
  if (!events_) {
    std::unique_ptr<mnl_socket, SocketCloser> events(
        mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK));
    if (!events) throw_system("cannot open netfilter event socket", errno);
    if (mnl_socket_bind(events.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
      throw_system("cannot bind netfilter event socket", errno);
    }
    ensure_socket_buffer(mnl_socket_get_fd(events.get()), SO_RCVBUF, SO_RCVBUFFORCE,
                         kEventBufferSize);
    events_ = std::move(events);
    listen_to_events(true);
  }
  return mnl_socket_get_fd(events_.get());
}

bool NetlinkKernel::changed_by_others(const std::string& table) {
  const int fd = event_fd();
  bool changed = others_committed_;
  others_committed_ = false;
  // Kept: the event loop asks on every turn, mostly to find nothing.
  std::vector<char>& buffer = event_buffer_;
  buffer.resize(kReceiveBufferSize);
  for (;;) {
    const ssize_t received = recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (received < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      // Notifications were dropped: they may have concerned our table.
      if (errno == ENOBUFS) {
        changed = true;
        continue;
      }
      throw_system("cannot read nf_tables events", errno);
    }
    int remaining = static_cast<int>(received);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buffer.data()); mnl_nlmsg_ok(nlh, remaining);
         nlh = mnl_nlmsg_next(nlh, &remaining)) {
      if (concerns_table(nlh, table) && nlh->nlmsg_pid != port_id_) others_touched_table_ = true;
      // A transaction's notifications are queued one by one and NEWGEN closes them; we
      // may wake up halfway. Reporting only at NEWGEN makes one outside transaction one
      // change, not two (and two repairs).
      if (nlh->nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN) &&
          others_touched_table_) {
        changed = true;
        others_touched_table_ = false;
      }
    }
  }
  return changed;
}

bool NetlinkKernel::dump(const std::function<nlmsghdr*(char*, std::uint32_t)>& build,
                         int (*parse)(const nlmsghdr*, void*), void* data,
                         const std::function<void()>& restart, const std::string& what) {
  // A dump that races with a ruleset change is flagged NLM_F_DUMP_INTR (libmnl turns
  // that into EINTR); it is simply asked again.
  constexpr int kAttempts = 5;
  std::vector<char> buffer(kReceiveBufferSize);
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    const std::uint32_t seq = take_seq(1);
    nlmsghdr* nlh = build(buffer.data(), seq);
    if (mnl_socket_sendto(socket_.get(), nlh, nlh->nlmsg_len) < 0) {
      throw_system("cannot ask the kernel for " + what, errno);
    }
    restart();
    int result = MNL_CB_OK;
    while (result > MNL_CB_STOP) {
      const ssize_t received = mnl_socket_recvfrom(socket_.get(), buffer.data(), buffer.size());
      if (received < 0) {
        if (errno == EINTR) continue;
        throw_system("cannot read " + what, errno);
      }
      result =
          mnl_cb_run(buffer.data(), static_cast<std::size_t>(received), seq, port_id_, parse, data);
    }
    if (result == MNL_CB_STOP) return true;
    if (errno == ENOENT) return false;
    if (errno != EINTR) throw_system("cannot read " + what, errno);
    // An interrupted dump may leave more parts queued: drain them before asking again.
    while (recv(mnl_socket_get_fd(socket_.get()), buffer.data(), buffer.size(), MSG_DONTWAIT) > 0) {
    }
  }
  throw KernelError(what + " kept changing while being read");
}

std::vector<RuleCounter> NetlinkKernel::read_counters(const std::string& table,
                                                      const std::vector<std::string>& maps) {
  std::vector<RuleCounter> counters;
  const bool found = dump(
      [&table](char* buffer, std::uint32_t seq) {
        nlmsghdr* nlh =
            nftnl_nlmsg_build_hdr(buffer, NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP, seq);
        std::unique_ptr<nftnl_rule, RuleParser::RuleDeleter> filter(nftnl_rule_alloc());
        if (!filter) throw std::bad_alloc();
        // The kernel only dumps the rules of this table.
        nftnl_rule_set_str(filter.get(), NFTNL_RULE_TABLE, table.c_str());
        nftnl_rule_nlmsg_build_payload(nlh, filter.get());
        return nlh;
      },
      &RuleParser::on_message, &counters, [&counters] { counters.clear(); },
      "the rules of table inet " + table);
  if (!found) return {};
  for (const std::string& map : maps) {
    ElementParser parser{map, &counters};
    const bool exists = dump(
        [&table, &map](char* buffer, std::uint32_t seq) {
          nlmsghdr* nlh =
              nftnl_nlmsg_build_hdr(buffer, NFT_MSG_GETSETELEM, NFPROTO_INET, NLM_F_DUMP, seq);
          mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table.c_str());
          mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, map.c_str());
          return nlh;
        },
        &ElementParser::on_message, &parser,
        [&counters, start = counters.size()] { counters.resize(start); },
        "the elements of map " + map);
    if (!exists) throw KernelError("table inet " + table + " has no map " + map);
  }
  return counters;
}

std::vector<PublishedPort> NetlinkKernel::published_ports(const std::string& own_table) {
  struct Found {
    const std::string* own_table;
    std::vector<PublishedPort> ports;
  } found{&own_table, {}};
  dump(
      [](char* buffer, std::uint32_t seq) {
        return nftnl_nlmsg_build_hdr(buffer, NFT_MSG_GETRULE, NFPROTO_UNSPEC, NLM_F_DUMP, seq);
      },
      [](const nlmsghdr* nlh, void* data) {
        auto* out = static_cast<Found*>(data);
        if (std::optional<PublishedPort> port = parse_published_port(nlh);
            port && port->table != "inet " + *out->own_table)
          out->ports.push_back(std::move(*port));
        return MNL_CB_OK;
      },
      &found, [&found] { found.ports.clear(); }, "the rules of all tables");
  return std::move(found.ports);
}

bool NetlinkKernel::table_exists(const std::string& table) {
  std::vector<char> buffer(kReceiveBufferSize);
  const std::uint32_t seq = take_seq(1);
  nlmsghdr* nlh =
      nftnl_nlmsg_build_hdr(buffer.data(), NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, seq);
  mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, table.c_str());
  if (mnl_socket_sendto(socket_.get(), nlh, nlh->nlmsg_len) < 0) {
    throw_system("cannot ask the kernel for table inet " + table, errno);
  }
  int result = MNL_CB_OK;
  while (result > MNL_CB_STOP) {
    const ssize_t received = mnl_socket_recvfrom(socket_.get(), buffer.data(), buffer.size());
    if (received < 0) {
      if (errno == EINTR) continue;
      throw_system("cannot read the kernel's answer about table inet " + table, errno);
    }
    result = mnl_cb_run(buffer.data(), static_cast<std::size_t>(received), seq, port_id_, nullptr,
                        nullptr);
  }
  if (result == MNL_CB_STOP) return true;
  if (errno == ENOENT) return false;
  throw_system("cannot look up table inet " + table, errno);
}

}  // namespace portier
