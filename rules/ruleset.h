// The ruleset IR: what portier loads into the kernel, independent of how it is sent.
// compile_policy() produces it; render_nft() prints it as nft text and encode_batch()
// turns it into a libnftnl netlink batch. Both back ends must build the same kernel
// objects from it: `nft list table inet portier` after either is the same text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace portier::ir {

/// Transport protocols as IP protocol numbers (meta l4proto).
enum class L4Proto : std::uint8_t { tcp = 6, udp = 17 };

/// An inclusive port range; a single port has first == last.
struct PortRange {
  std::uint16_t first = 0;
  std::uint16_t last = 0;
  friend bool operator==(const PortRange&, const PortRange&) = default;
};

/// `iif "lo"` on input, `oif "lo"` on output. Loopback is ifindex 1 in every namespace.
struct LoopbackInterface {
  bool outgoing = false;  // oif instead of iif
  friend bool operator==(const LoopbackInterface&, const LoopbackInterface&) = default;
};

/// Conntrack state bits as the kernel defines them (NF_CT_STATE_*_BIT).
enum CtStateBit : std::uint32_t {
  ct_invalid = 1u << 0,
  ct_established = 1u << 1,
  ct_related = 1u << 2,
  ct_new = 1u << 3,
  ct_untracked = 1u << 6,
};

/// `ct state { ... }`: matches when any of the bits in `mask` is set.
struct CtState {
  std::uint32_t mask = 0;
  friend bool operator==(const CtState&, const CtState&) = default;
};

/// `meta l4proto X` (one protocol) or `meta l4proto { X, Y }` (an anonymous set).
struct L4ProtoIn {
  std::vector<L4Proto> protocols;  // sorted, unique, not empty
  friend bool operator==(const L4ProtoIn&, const L4ProtoIn&) = default;
};

/// Destination port of the transport header (`th dport`; `tcp dport` when the rule
/// matches a single protocol). One port compiles to a compare, one range to a pair of
/// compares, anything else to an anonymous set (with `flags interval` if it holds a range).
/// Must follow an L4ProtoIn in the same rule.
struct DestPortIn {
  std::vector<PortRange> ports;  // sorted, non-overlapping, not adjacent, not empty
  friend bool operator==(const DestPortIn&, const DestPortIn&) = default;
};

using Match = std::variant<LoopbackInterface, CtState, L4ProtoIn, DestPortIn>;

enum class VerdictKind { accept, drop, jump, reject_tcp_reset, reject_icmpx_port_unreachable };

struct Verdict {
  VerdictKind kind = VerdictKind::accept;
  std::string chain;  // target of a jump
  friend bool operator==(const Verdict&, const Verdict&) = default;
};

struct Rule {
  std::vector<Match> matches;  // all must match, in this order
  bool counter = false;
  Verdict verdict;
  std::string comment;  // the policy rule name, stored as rule userdata; empty: none
  friend bool operator==(const Rule&, const Rule&) = default;
};

enum class Hook { input, output, forward };

/// The part of a chain that attaches it to a netfilter hook.
struct BaseChain {
  Hook hook = Hook::input;
  std::int32_t priority = 0;  // 0 is nft's "filter"
  bool policy_accept = true;  // chain policy: accept or drop
  friend bool operator==(const BaseChain&, const BaseChain&) = default;
};

struct Chain {
  std::string name;
  std::optional<BaseChain> base;  // nullopt: a regular chain reached by jump
  std::vector<Rule> rules;
  friend bool operator==(const Chain&, const Chain&) = default;
};

/// A `table inet NAME`. Chains that are jumped to are listed before their callers,
/// since the kernel resolves jump targets when the rule is added.
struct Ruleset {
  std::string table = "portier";
  std::vector<Chain> chains;
  friend bool operator==(const Ruleset&, const Ruleset&) = default;
};

}  // namespace portier::ir
