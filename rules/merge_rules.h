// Merging runs of adjacent policy rules of one shape into one verdict-map lookup, as
// `nft -o` does for sets: `ip saddr . tcp dport vmap @input/m1` with one map element per
// rule (and per address/port combination of the rule). The kernel then loads one rule
// and a map instead of a rule per policy rule, and a packet costs one lookup instead of
// a walk over the run.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ruleset.h"

namespace portier {

/// Runs shorter than this stay rules: a map costs more to set up than a few rules.
inline constexpr std::size_t kMergeRunsFrom = 4;
/// A map holds at most this many elements. The kernel's concatenated interval maps
/// (pipapo) rebuild their lookup tables when an element goes out, in time that grows
/// with the map: measured here with strace around nft's batch, 1.0 ms at 256 elements and
/// 35 ms at 10,000 (an insertion: 0.1 ms). Small maps keep a toggle's cost independent of
/// the policy's size (docs/benchmarks.md, section 6).
inline constexpr std::size_t kMapElementsAtMost = 64;
/// A rule whose addresses times ports give more elements than this stays a rule.
inline constexpr std::size_t kElementsPerRuleAtMost = 32;
/// Comments of the rules that look maps up start with this ("rules ssh to web"), which
/// no policy rule name can (names have no spaces).
inline constexpr const char* kMergedRulesPrefix = "rules ";

/// merge_rule_runs() for one chain, fed its rules one at a time as they are made: a
/// compiler that hands each rule over at once never holds the chain's rules unmerged (a
/// 10,000-rule input chain and its published copies were most of a reload's memory).
/// It holds back only what may still change place or join a map: the rules of an open
/// run (at most kMapElementsAtMost) and those group_families may still move.
class ChainMerger {
 public:
  /// `chain`: the chain's name, which its maps' names start with.
  explicit ChainMerger(std::string chain);
  ChainMerger(ChainMerger&&) noexcept;
  ChainMerger& operator=(ChainMerger&&) noexcept;
  ~ChainMerger();

  /// The chain's next rule.
  void add(ir::Rule rule);
  /// After the last rule: the chain's merged rules, in order, into `rules` (replacing what
  /// it held), and its maps, named <chain>/m1, /m2, ... in order, appended to `maps`.
  /// The merger is empty afterwards.
  void finish(std::vector<ir::Rule>& rules, std::vector<ir::RuleMap>& maps);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// Replaces, in every chain, each run of at least kMergeRunsFrom adjacent policy rules
/// that (1) accept or drop with a counter and nothing else (no log, no limit), (2) match
/// the same things apart from their addresses (AddressIn) and ports (DestPortIn,
/// SourcePortIn), which they all match on the same fields, and (3) whose address/port
/// boxes do not overlap, by one rule `<same matches> <fields> vmap @<chain>/m<N>` and a
/// RuleMap holding each rule's boxes with its verdict and name. Because the boxes of a
/// run are disjoint, at most one rule of the run can match a packet, so the map decides
/// exactly as the rules did in order (explain_packet checks this in merge_rules_test).
void merge_rule_runs(ir::Ruleset& ruleset);

/// After merge_rule_runs(): each map looked up in chain `copy` that holds the same elements
/// (boxes, verdicts and names, in order) as a map looked up in chain `original`, under a key
/// whose every field the copy's lookup may load for the original's (ir::loads_key_field),
/// goes, and the copy's lookups use the original's map. The `published` chains are the
/// input chains again on the destination before NAT, so most of their maps are the input
/// maps a second time: a 10,000-rule policy loaded 20,000 map elements, each with its own
/// counter, for 10,000 rules. The shared element counts both paths; a rule's counter is
/// the sum over its kernel rules and elements either way (Firewall::rules()).
void share_maps(ir::Ruleset& ruleset, std::string_view copy, std::string_view original);

}  // namespace portier
