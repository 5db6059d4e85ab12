// The daemon's NETLINK_NETFILTER sockets: NetlinkKernel loads rulesets as single
// nf_tables transactions and reads rule counters back; NetlinkChanges listens to the
// kernel's change notifications. The only place that does nf_tables I/O; every request
// goes through NetlinkSocket::talk().
#pragma once

#include <cerrno>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "kernel.h"
#include "kernel_changes.h"
#include "netlink_decode.h"
#include "netlink_socket.h"

struct nlmsghdr;

namespace portier {

struct EncodedBatch;
class NetlinkChanges;

/// Not thread-safe: the sequence numbers and replies of one socket serve one caller at a time.
class NetlinkKernel final : public Kernel {
 public:
  /// Opens and binds the socket; throws KernelError if that fails.
  NetlinkKernel();
  ~NetlinkKernel() override;
  NetlinkKernel(const NetlinkKernel&) = delete;
  NetlinkKernel& operator=(const NetlinkKernel&) = delete;

  /// Sends encode_replace_batch(ruleset) and waits for every acknowledgement; the handles
  /// come from the kernel's echo of each NEWRULE, in the same round trip. Throws
  /// KernelError naming the first refused object; the kernel then aborts the whole batch.
  RuleHandles apply(const ir::Ruleset& ruleset) override;
  RuleHandles refill(const ir::Ruleset& loaded, const ir::Ruleset& next) override;
  /// encode_edit_batch(): insertions go after their handle (0: at the start of the chain),
  /// several after the same handle in the order given, then the removals. Rules that look
  /// up a named set find it among loaded.sets (std::invalid_argument if it is not there).
  std::vector<std::uint64_t> edit(const ir::Ruleset& loaded, const TableEdit& edit) override;
  /// encode_set_edit_batch(): removals, then additions, in one transaction.
  void edit_set(const std::string& table, const SetEdit& edit) override;
  /// The rules (GETRULE dump), then each map's elements (GETSETELEM dump) in kernel order
  /// with the counters of the map's counter expression; interval end elements are not
  /// elements of their own. A map the table lacks is a KernelError naming it.
  std::vector<RuleCounter> read_counters(const std::string& table,
                                         const std::vector<std::string>& maps) override;
  bool table_exists(const std::string& table);
  /// One GETRULE dump of all families and tables.
  std::vector<PublishedPort> published_ports(const std::string& own_table) override;

 private:
  friend class NetlinkChanges;  // watches our transactions (see NetlinkChanges)

  /// Sends the batch, waits for its acks; returns the echoed handles of batch.rule_seqs.
  std::vector<std::uint64_t> transact(const EncodedBatch& batch, const std::string& subject);
  std::vector<std::uint64_t> send_batch(const EncodedBatch& batch, const std::string& subject);
  std::uint32_t generation();
  /// Sends one request built by `build` (given a buffer of MNL_SOCKET_BUFFER_SIZE bytes
  /// and its sequence number), passing each reply to `each`; when a dump raced with a
  /// change it calls `restart` and asks again. Returns the kernel's errno when it is one
  /// of `answers` (ENOENT: no such object), 0 when it answered; throws KernelError on
  /// another error or a malformed reply.
  int request(const std::function<nlmsghdr*(char*, std::uint32_t)>& build,
              const RequestReplies::Each& each, const std::function<void()>& restart,
              const std::string& what, std::initializer_list<int> answers = {ENOENT});

  NetlinkSocket socket_;
  NetlinkChanges* changes_ = nullptr;  // while one watches this kernel's transactions
};

/// The change notifications of this network namespace's nf_tables (NFNLGRP_NFTABLES), on a
/// socket of their own. Our own transactions (through `kernel`) are kept off it: with it
/// subscribed, the kernel would build a notification for every rule and element we load
/// (a million-element set overflows any receive buffer, and costs the kernel time even
/// when nobody listens but us). So the socket leaves the group while a batch of ours
/// runs, and the generation counter (bumped by every commit) shows whether anyone else
/// committed meanwhile.
class NetlinkChanges final : public KernelChanges {
 public:
  /// Opens the socket, joins the group and watches `kernel`'s transactions; `kernel`
  /// must outlive this object. Throws KernelError.
  explicit NetlinkChanges(NetlinkKernel& kernel);
  ~NetlinkChanges() override;
  NetlinkChanges(const NetlinkChanges&) = delete;
  NetlinkChanges& operator=(const NetlinkChanges&) = delete;

  int fd() override { return socket_.fd(); }
  /// Drains the socket. A lost notification (receive buffer overflow) or another process
  /// committing while ours ran counts as a change by others, whatever table it touched.
  bool changed_by_others(const std::string& table) override;

 private:
  friend class NetlinkKernel;
  /// Runs `commit` (one transaction of ours) off the group, noting whether others
  /// committed around it.
  std::vector<std::uint64_t> own_transaction(
      const std::function<std::vector<std::uint64_t>()>& commit);

  NetlinkKernel& kernel_;
  NetlinkSocket socket_;
  NotificationReader notifications_;
  bool others_committed_ = false;  // seen around one of our transactions, not yet reported
};

}  // namespace portier
