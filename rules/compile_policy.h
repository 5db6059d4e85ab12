// Compilation: a validated policy becomes the ruleset IR.
#pragma once

#include <vector>

#include "policy.h"
#include "ruleset.h"

namespace portier {

/// Names of the chains compile_policy() creates; rules are found back by them.
inline constexpr const char* kInputChain = "input";
inline constexpr const char* kOutputChain = "output";
inline constexpr const char* kRejectChain = "reject_packet";

/// The ruleset for `policy`, leaving out disabled rules. Every policy rule becomes
/// one kernel rule with a counter and the rule's name as comment.
ir::Ruleset compile_policy(const Policy& policy);

/// Sorts ports and merges overlapping and adjacent ranges, as a set needs them.
std::vector<ir::PortRange> merge_port_ranges(const std::vector<PortRange>& ports);

}  // namespace portier
