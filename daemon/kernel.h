// The port between the daemon core and the kernel's nf_tables: NetlinkKernel talks to
// the real kernel, unit tests of the core use a fake.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ruleset.h"

namespace portier {

/// The kernel refused a transaction (or could not be talked to). what() names the object
/// and the errno text: `kernel refused rule "x" in chain input: Operation not supported`.
class KernelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The counter of one rule as the kernel reports it.
struct RuleCounter {
  std::string chain;
  std::string comment;        // the policy rule name from the rule's userdata; empty: none
  std::uint64_t packets = 0;  // 0 when the rule has no counter
  std::uint64_t bytes = 0;
};

class Kernel {
 public:
  /// Replaces `table inet <ruleset.table>` atomically: on KernelError the previous table
  /// (or its absence) is left as it was.
  virtual void apply(const ir::Ruleset& ruleset) = 0;
  /// Every rule of `table inet <table>` in kernel order; empty if the table does not exist.
  virtual std::vector<RuleCounter> read_counters(const std::string& table) = 0;
  virtual ~Kernel() = default;
};

}  // namespace portier
