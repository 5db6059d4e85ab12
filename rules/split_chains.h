// Long chains cut into parts reached by jumps. The kernel rebuilds the whole rule blob of
// a chain on every change to it (nf_tables_commit), so one toggled rule in a chain of
// 10,000 copies 10,000 rules; in parts of a few hundred it copies a few hundred.
#pragma once

#include <cstddef>

#include "ruleset.h"

namespace portier {

/// A chain with more rules than this is split; smaller ones stay as they are.
inline constexpr std::size_t kSplitChainsAbove = 512;
/// Rules per part.
inline constexpr std::size_t kRulesPerPart = 256;

/// Moves runs of policy rules (those with a comment naming one) whose verdict means the same in a jumped-to chain (accept, drop,
/// reject, jump, or none) out of every chain longer than kSplitChainsAbove into parts
/// `CHAIN/1`, `CHAIN/2`, ... (a '/' no policy name may contain), each reached by a
/// `jump` where its rules were. Rules with goto, return or a map stay in their chain:
/// from inside a part they would mean something else. Parts come before their chain,
/// as the kernel wants jump targets first. Packets meet the same verdicts.
void split_long_chains(ir::Ruleset& ruleset, std::size_t above = kSplitChainsAbove,
                       std::size_t per_part = kRulesPerPart);

}  // namespace portier
