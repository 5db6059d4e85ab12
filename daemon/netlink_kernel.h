// The daemon's one NETLINK_NETFILTER socket: loads rulesets as single nf_tables
// transactions and reads rule counters back. The only place that does nf_tables I/O.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernel.h"

struct mnl_socket;

namespace portier {

/// Not thread-safe: the sequence numbers and replies of one socket serve one caller at a time.
class NetlinkKernel final : public Kernel {
 public:
  /// Opens and binds the socket; throws KernelError if that fails.
  NetlinkKernel();
  ~NetlinkKernel() override;
  NetlinkKernel(const NetlinkKernel&) = delete;
  NetlinkKernel& operator=(const NetlinkKernel&) = delete;

  /// Sends encode_replace_batch(ruleset) and waits for every acknowledgement. Throws
  /// KernelError naming the first refused object; the kernel then aborts the whole batch.
  void apply(const ir::Ruleset& ruleset) override;
  std::vector<RuleCounter> read_counters(const std::string& table) override;
  bool table_exists(const std::string& table);

 private:
  struct SocketCloser {
    void operator()(mnl_socket* socket) const;
  };
  std::uint32_t take_seq(std::uint32_t count);

  std::unique_ptr<mnl_socket, SocketCloser> socket_;
  std::uint32_t port_id_ = 0;
  std::uint32_t next_seq_ = 0;
};

}  // namespace portier
