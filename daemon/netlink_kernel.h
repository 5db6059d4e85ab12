// The daemon's one NETLINK_NETFILTER socket: loads rulesets as single nf_tables
// transactions and reads rule counters back. The only place that does nf_tables I/O.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernel.h"

struct mnl_socket;
struct nlmsghdr;

namespace portier {

struct EncodedBatch;

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
  /// encode_edit_batch(): insertions go after their handle (0: at the start of the chain),
  /// several after the same handle in the order given, then the removals. Rules that look
  /// up a named set need the table to have been loaded by apply() on this object (the
  /// set declarations are remembered; std::invalid_argument otherwise).
  std::vector<std::uint64_t> edit(const std::string& table, const TableEdit& edit) override;
  /// encode_set_edit_batch(): removals, then additions, in one transaction.
  void edit_set(const std::string& table, const SetEdit& edit) override;
  /// The rules (GETRULE dump), then each map's elements (GETSETELEM dump) in kernel order
  /// with the counters of the map's counter expression; interval end elements are not
  /// elements of their own. A map the table lacks is a KernelError naming it.
  std::vector<RuleCounter> read_counters(const std::string& table,
                                         const std::vector<std::string>& maps) override;
  /// Opens (on first call) a second socket in the NFNLGRP_NFTABLES group.
  int event_fd() override;
  /// Drains the event socket. Our own transactions do not reach it (see the .cpp); a
  /// lost notification (receive buffer overflow) or another process committing while
  /// ours ran counts as a change by others, whatever table it touched.
  bool changed_by_others(const std::string& table) override;
  bool table_exists(const std::string& table);
  /// One GETRULE dump of all families and tables.
  std::vector<PublishedPort> published_ports(const std::string& own_table) override;

 private:
  struct SocketCloser {
    void operator()(mnl_socket* socket) const;
  };
  std::uint32_t take_seq(std::uint32_t count);
  /// Sends the batch, waits for its acks; returns the echoed handles of batch.rule_seqs.
  std::vector<std::uint64_t> transact(const EncodedBatch& batch, const std::string& subject);
  std::vector<std::uint64_t> send_batch(const EncodedBatch& batch, const std::string& subject);
  std::uint32_t generation();
  /// Runs one dump request built by `build` (given the buffer and its sequence number),
  /// passing each reply to `parse` (a libmnl callback); when the dump raced with a change
  /// it calls `restart` and asks again. Returns false if the kernel answered ENOENT.
  bool dump(const std::function<nlmsghdr*(char*, std::uint32_t)>& build,
            int (*parse)(const nlmsghdr*, void*), void* data, const std::function<void()>& restart,
            const std::string& what);
  void listen_to_events(bool on);

  std::unique_ptr<mnl_socket, SocketCloser> socket_;
  std::uint32_t port_id_ = 0;
  std::uint32_t next_seq_ = 0;
  std::unique_ptr<mnl_socket, SocketCloser> events_;
  bool others_committed_ = false;      // seen around one of our transactions, not yet reported
  bool others_touched_table_ = false;  // read others' notifications about it, not yet NEWGEN
  std::vector<char> event_buffer_;
  // The named sets and RuleMaps of each table apply() loaded (without elements), for
  // edit()'s lookups.
  std::map<std::string, std::vector<ir::NamedSet>> declared_sets_;
  std::map<std::string, std::vector<ir::RuleMap>> declared_maps_;
};

}  // namespace portier
