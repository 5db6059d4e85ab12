// Generated inputs: policies of N rules, set files of N elements, and the plain nft file a
// person would write for the same rules. Deterministic, so every run measures the same text.
#pragma once

#include <cstddef>
#include <string>

namespace portier::bench {

/// A policy of `rules` inbound TCP rules, each one source (an address, every 4th a /24)
/// and one destination port (every 5th a range of 10); every 10th drops, the rest accept.
std::string generated_policy(std::size_t rules);

/// The same rules as one plain nft rule per policy rule (`ip saddr X tcp dport N accept`),
/// no sets, no counters, no comments, in one `table inet filter` after `flush ruleset`.
std::string plain_nft(std::size_t rules);

/// `elements` lines for an ipv4 set file: host addresses, every 8th a /30, none adjacent
/// (so none merge), all inside 11.0.0.0/8.
std::string set_file(std::size_t elements);

/// A policy with `[set.blocklist]` read from `file` (relative to the policy) and one rule
/// dropping what comes from it.
std::string set_policy(const std::string& file);

}  // namespace portier::bench
