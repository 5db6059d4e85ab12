// Compilation: a validated policy becomes the ruleset IR.
#pragma once

#include <cstddef>

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "policy.h"
#include "ruleset.h"

namespace portier {

/// Names of the chains compile_policy() creates; rules are found back by them.
inline constexpr const char* kInputChain = "input";
inline constexpr const char* kForwardChain = "forward";
inline constexpr const char* kOutputChain = "output";
inline constexpr const char* kPreroutingChain = "prerouting";
inline constexpr const char* kPostroutingChain = "postrouting";
inline constexpr const char* kRejectChain = "reject_packet";
/// Hash sets of more single addresses than this are declared with a size (compile_policy.cpp).
inline constexpr std::size_t kSizedHashSetAbove = 10000;

/// Priorities, 10 after the standard ones (as firewalld does): other tables at the
/// standard priorities (iptables-nft, container runtimes) have made their NAT decisions
/// when portier filters, and a drop in any table drops whatever the order.
inline constexpr int kFilterPriority = 10;
inline constexpr int kDstnatPriority = -100 + 10;
inline constexpr int kSrcnatPriority = 100 + 10;

/// ICMPv6 that IPv6 needs whatever the input default (as OpenWrt's firewall4 allows):
/// errors, neighbour discovery, router advertisements and MLD.
inline constexpr std::uint8_t kIcmpv6Essentials[] = {1,   2,   3,   4,   130, 131,
                                                     132, 133, 134, 135, 136, 143};

/// Comments of the extra kernel rules a policy rule may bring: its per-source limit and
/// its log line. With the rule's own name they tie kernel rules to the policy rule.
inline constexpr const char* kOverLimitSuffix = " over limit";
inline constexpr const char* kLogSuffix = " log";

struct CompileOptions {
  /// Create the table with the owner and persist flags (portierd does; `nft -f` of the
  /// rendering cannot, since the table would vanish with nft's socket).
  bool owner = false;
  /// Rate of the log statements (`log = true`, `[policy].log`), per minute.
  std::uint32_t log_rate_per_minute = 10;
  /// Merge runs of adjacent rules of one shape into map lookups (merge_rules.h); off
  /// only to compare with the unmerged ruleset (tests, benchmarks).
  bool merge_rules = true;
  /// Leave out the disabled rules and forwards (without_owners). portierd compiles with
  /// false: everything as if enabled, which its toggles then edit.
  bool leave_out_disabled = true;
};

/// The ruleset for `policy`, leaving out disabled rules and forwards. Every policy rule
/// becomes kernel rules with a counter and the rule's name as comment (several when
/// the rule spans address families or zones; their counters add up).
ir::Ruleset compile_policy(const Policy& policy, const CompileOptions& options = {});

/// The policy rule (or forward) a kernel rule belongs to: its comment without the
/// suffixes above. Empty for the fixed rules.
std::string_view rule_owner(const ir::Rule& rule);

/// The names of the policy's disabled rules and forwards.
std::set<std::string, std::less<>> disabled_names(const Policy& policy);

/// `full` without the kernel rules (and RuleMap elements) of the disabled rules and forwards. For a policy P,
/// compile_policy(P) == without_owners(compile_policy(P with all enabled), disabled of P):
/// which chains and sets exist never depends on what is enabled, so a toggle is only
/// the removal or insertion of that rule's own kernel rules.
ir::Ruleset without_owners(const ir::Ruleset& full,
                           const std::set<std::string, std::less<>>& disabled);

/// Panic mode: everything dropped but loopback (and, if asked, packets of connections
/// that already exist), in all three directions.
ir::Ruleset compile_panic(bool keep_established, const CompileOptions& options = {});

/// The kernel set that holds the single addresses of the policy's address set `name`
/// (the networks stay in the set named `name`).
inline std::string host_set_name(const std::string& name) { return name + "_hosts"; }

/// Sorts ports and merges overlapping and adjacent ranges, as a set needs them.
std::vector<ir::PortRange> merge_port_ranges(const std::vector<PortRange>& ports);

/// Sorts address ranges of one family and merges overlapping and adjacent ones.
std::vector<ir::AddressRange> merge_address_ranges(std::vector<ir::AddressRange> ranges);

/// The address range a CIDR covers.
ir::AddressRange to_range(const Cidr& cidr);

}  // namespace portier
