// The ruleset IR: what portier loads into the kernel, independent of how it is sent.
// compile_policy() produces it; render_nft() prints it as nft text and encode_batch() (nft/)
// turns it into a libnftnl netlink batch. Both back ends must build the same kernel
// objects from it: `nft list table inet portier` after either is the same text.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace portier::ir {

/// Transport protocols as IP protocol numbers (meta l4proto).
enum class L4Proto : std::uint8_t { icmp = 1, tcp = 6, udp = 17, icmpv6 = 58, sctp = 132 };

/// A protocol as nft prints it: its name in /etc/protocols (58 is "ipv6-icmp" there).
inline const char* protocol_name(L4Proto protocol) {
  switch (protocol) {
    case L4Proto::icmp: return "icmp";
    case L4Proto::tcp: return "tcp";
    case L4Proto::udp: return "udp";
    case L4Proto::icmpv6: return "ipv6-icmp";
    case L4Proto::sctp: return "sctp";
  }
  return "unknown protocol";
}

enum class Family { ipv4, ipv6 };

/// An inclusive port range; a single port has first == last.
struct PortRange {
  std::uint16_t first = 0;
  std::uint16_t last = 0;
  friend bool operator==(const PortRange&, const PortRange&) = default;
};

/// An IPv4 or IPv6 address in network byte order (IPv4 uses the first 4 bytes).
struct Address {
  Family family = Family::ipv4;
  std::array<std::uint8_t, 16> bytes{};
  friend bool operator==(const Address&, const Address&) = default;
  friend auto operator<=>(const Address&, const Address&) = default;
};

/// An inclusive address range. A CIDR prefix is the range from its network address to
/// its last address; nft prints such ranges back as prefixes.
struct AddressRange {
  Address first;
  Address last;
  friend bool operator==(const AddressRange&, const AddressRange&) = default;
};

/// `iif "lo"` on input, `oif "lo"` on output. Loopback is ifindex 1 in every namespace.
struct LoopbackInterface {
  bool outgoing = false;  // oif instead of iif
  friend bool operator==(const LoopbackInterface&, const LoopbackInterface&) = default;
};

/// `iifname "eth0"` / `oifname ...`. One name compiles to a compare; a trailing '*' is a
/// prefix compare (`iifname "ppp*"`) and stands alone; several exact names become an
/// anonymous set (`iifname { "br-lan", "eth1" }`). With `negate`: `oifname != "br-lan"`,
/// `oifname != { ... }` (a lookup with the inverted flag).
struct InterfaceNameIn {
  bool outgoing = false;
  std::vector<std::string> names;  // sorted, unique, not empty; a wildcard only alone
  bool negate = false;
  friend bool operator==(const InterfaceNameIn&, const InterfaceNameIn&) = default;
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

/// `ct status dnat`: the connection was destination-NATed (a port forward).
struct CtStatusDnat {
  friend bool operator==(const CtStatusDnat&, const CtStatusDnat&) = default;
};

/// `ct original proto-dst 8080` / `ct original proto-dst 8000-8010`: the destination port
/// the connection had before NAT (a published container port, say). One range per rule:
/// nft 1.0.6 lists an anonymous set of these back as "[invalid type]". Must follow an
/// L4ProtoIn, as DestPortIn.
struct CtOriginalDestPort {
  PortRange ports;
  friend bool operator==(const CtOriginalDestPort&, const CtOriginalDestPort&) = default;
};

/// `ct original ip daddr 192.0.2.1` / `ct original ip6 daddr { ... }`: the destination
/// address the connection had before NAT. nft adds no family dependency for it (conntrack
/// of the other family makes the expression break, so the rule does not match).
struct CtOriginalAddressIn {
  Family family = Family::ipv4;
  std::vector<AddressRange> ranges;  // as AddressIn
  friend bool operator==(const CtOriginalAddressIn&, const CtOriginalAddressIn&) = default;
};

/// `meta l4proto X` (one protocol), `meta l4proto { X, Y }` (an anonymous set) or, with
/// `set`, `meta l4proto @l4/tcp_udp`: a lookup in a named set that holds `protocols`.
/// compile_policy() shares one named set among all rules of the same protocols
/// (protocol_sets.h): the kernel names every anonymous set by scanning the table's sets,
/// so thousands of them made a big policy load in quadratic time.
struct L4ProtoIn {
  std::vector<L4Proto> protocols;  // sorted, unique, not empty
  std::string set{};               // a named set (SetKey::inet_proto) holding `protocols`
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

/// Source port, as DestPortIn (`tcp sport 80`, `th sport { ... }`). Must follow an L4ProtoIn.
struct SourcePortIn {
  std::vector<PortRange> ports;
  friend bool operator==(const SourcePortIn&, const SourcePortIn&) = default;
};

/// `ip saddr 10.0.0.0/8`, `ip6 daddr fd00::1`, or an anonymous interval set of ranges
/// (`ip saddr { 10.0.0.0/8, 192.168.1.7 }`). All ranges are of `family`.
struct AddressIn {
  Family family = Family::ipv4;
  bool destination = false;          // daddr instead of saddr
  std::vector<AddressRange> ranges;  // sorted, non-overlapping, not adjacent, not empty
  friend bool operator==(const AddressIn&, const AddressIn&) = default;
};

/// `ip saddr @blocklist` / `ip6 daddr @name`: lookup in a named set of the table.
struct AddressInSet {
  Family family = Family::ipv4;
  bool destination = false;
  std::string set;
  friend bool operator==(const AddressInSet&, const AddressInSet&) = default;
};

/// `icmp type { echo-request, ... }` / `icmpv6 type { nd-neighbor-solicit, ... }` by type
/// number. Stands without an L4ProtoIn before it (nft adds the dependency itself).
struct IcmpTypeIn {
  bool v6 = false;
  std::vector<std::uint8_t> types;  // sorted, unique, not empty
  friend bool operator==(const IcmpTypeIn&, const IcmpTypeIn&) = default;
};

/// `socket cgroupv2 level N @SET`: the ancestor at level N of the cgroup of the local socket
/// the packet belongs to is in SET, a named set of cgroup ids (SetKey::cgroupv2). A socket
/// in a cgroup less than N levels deep has no such ancestor: the expression breaks and the
/// rule does not match. Sets of cgroup ids rather than one id per rule: a unit's cgroup is
/// made anew at every start, and the daemon follows it by changing the set's elements.
struct SocketCgroup {
  std::uint32_t level = 0;  // counted from the root of the whole hierarchy
  std::string set;
  friend bool operator==(const SocketCgroup&, const SocketCgroup&) = default;
};

/// A socket owner's cgroup is matched at each of the levels 1..kCgroupLevels: the level of
/// a cgroup counts from the root of the whole hierarchy, which a daemon inside a cgroup
/// namespace (a container) cannot see, and a unit's cgroup may sit in any slice.
inline constexpr std::uint32_t kCgroupLevels = 8;

/// `meta skuid 33` (or `!=`): owner uid of the local socket that sends the packet.
struct SocketUid {
  std::uint32_t uid = 0;
  bool negate = false;
  friend bool operator==(const SocketUid&, const SocketUid&) = default;
};

/// `socket transparent 0|1`: the packet has a local socket (whose IP_TRANSPARENT flag is
/// `value`); like every socket expression it does not match when there is no socket.
/// portier uses both values to ask "is there a socket at all".
struct SocketTransparent {
  bool value = false;
  friend bool operator==(const SocketTransparent&, const SocketTransparent&) = default;
};

/// `meta nfproto ipv4` / `ipv6`: the packet's family, in an inet table.
struct NfProto {
  Family family = Family::ipv4;
  friend bool operator==(const NfProto&, const NfProto&) = default;
};

/// `tcp flags syn`: TCP with the SYN bit set. Stands alone, like IcmpTypeIn.
struct TcpSyn {
  friend bool operator==(const TcpSyn&, const TcpSyn&) = default;
};

enum class RateUnit { second, minute, hour, day };

/// `limit rate [over] N/unit burst B packets`: without `over` it matches while under the
/// rate, with `over` once the rate is exceeded.
struct Limit {
  std::uint32_t rate = 0;
  RateUnit unit = RateUnit::second;
  std::uint32_t burst = 5;
  bool over = false;
  friend bool operator==(const Limit&, const Limit&) = default;
};

/// `update @SET { ip saddr limit rate over N/unit }`: a per-source meter in a dynamic
/// named set; matches when this source went over the rate.
struct MeterOver {
  std::string set;
  Family family = Family::ipv4;  // the key is ip saddr or ip6 saddr
  Limit limit;                   // with over = true
  friend bool operator==(const MeterOver&, const MeterOver&) = default;
};

using Match = std::variant<LoopbackInterface, InterfaceNameIn, CtState, CtStatusDnat, L4ProtoIn,
                           DestPortIn, SourcePortIn, AddressIn, AddressInSet, IcmpTypeIn,
                           SocketCgroup, SocketUid, TcpSyn, Limit, MeterOver, NfProto,
                           SocketTransparent, CtOriginalDestPort, CtOriginalAddressIn>;

enum class VerdictKind {
  accept,
  drop,
  jump,
  go_to,  // `goto CHAIN`
  return_,  // `return`: back to the rule after the jump
  reject_tcp_reset,
  reject_icmpx_port_unreachable,
  none,        // no verdict: the rule only counts or logs; evaluation goes on
  masquerade,  // `masquerade` (nat postrouting)
  dnat,        // `dnat ip to 192.168.1.10:80` / `dnat ip6 to [fd00::2]:80` (nat prerouting)
  clamp_mss,   // `tcp option maxseg size set rt mtu` (no verdict)
  vmap,        // `iifname vmap { "eth0" : goto input_wan, ... }`
  map_lookup,  // `ip saddr . tcp dport vmap @input/m1`: a RuleMap decides (merged rules)
};

/// One field of a RuleMap's key, in key order. Ports are the transport header's
/// (`tcp dport` after a single-protocol match, `th dport` otherwise); ct_original_dport
/// is the destination port before NAT (`ct original proto-dst`, CtOriginalDestPort), which
/// nft types only after a single-protocol match.
enum class KeyField { ip_saddr, ip_daddr, ip6_saddr, ip6_daddr, sport, dport, ct_original_dport };

/// Whether the field is a port (an inet_service key, port_element() bytes).
inline bool is_port_field(KeyField field) {
  return field == KeyField::sport || field == KeyField::dport ||
         field == KeyField::ct_original_dport;
}

/// Whether a lookup may load `loaded` for a map's key field `declared`: the same field, or
/// the destination port before NAT for a map of destination ports (the `published` chain
/// looks DNATed connections up in the input chain's maps, share_maps()). Both are
/// inet_service, and a connection's original destination port is the one its input rule
/// was written for.
inline bool loads_key_field(KeyField loaded, KeyField declared) {
  return loaded == declared ||
         (loaded == KeyField::ct_original_dport && declared == KeyField::dport);
}

/// "ip saddr", ..., "sport", "dport": the field as nft names it (ports without their
/// header, which depends on the rule's protocols).
inline const char* key_field_name(KeyField field) {
  switch (field) {
    case KeyField::ip_saddr: return "ip saddr";
    case KeyField::ip_daddr: return "ip daddr";
    case KeyField::ip6_saddr: return "ip6 saddr";
    case KeyField::ip6_daddr: return "ip6 daddr";
    case KeyField::sport: return "sport";
    case KeyField::dport: return "dport";
    case KeyField::ct_original_dport: return "ct original proto-dst";
  }
  return "unknown field";
}

/// One entry of an interface-name verdict map: exact names only.
struct VmapEntry {
  std::string interface;
  VerdictKind kind = VerdictKind::accept;  // accept, drop, jump or go_to
  std::string chain;
  friend bool operator==(const VmapEntry&, const VmapEntry&) = default;
};

struct Verdict {
  VerdictKind kind = VerdictKind::accept;
  std::string chain;                     // target of jump / go_to
  std::optional<Address> nat_address;    // dnat
  std::optional<std::uint16_t> nat_port;  // dnat
  bool vmap_outgoing = false;            // vmap: oifname instead of iifname
  std::vector<VmapEntry> vmap;           // vmap: sorted by interface
  std::string map;                       // map_lookup: the RuleMap's name
  std::vector<KeyField> map_key;         // map_lookup: the fields looked up (loads_key_field)
  friend bool operator==(const Verdict&, const Verdict&) = default;
};

/// `log prefix "..." [group N]`.
struct Log {
  std::string prefix;
  std::optional<std::uint16_t> group;  // nflog group; none: the kernel log
  friend bool operator==(const Log&, const Log&) = default;
};

struct Rule {
  std::vector<Match> matches;  // all must match, in this order
  bool counter = false;
  std::optional<Log> log;  // after the counter, before the verdict
  Verdict verdict;
  std::string comment;  // the policy rule name, stored as rule userdata; empty: none
  friend bool operator==(const Rule&, const Rule&) = default;
};

enum class Hook { prerouting, input, forward, output, postrouting };
enum class ChainType { filter, nat };

/// The part of a chain that attaches it to a netfilter hook.
struct BaseChain {
  Hook hook = Hook::input;
  ChainType type = ChainType::filter;
  std::int32_t priority = 0;  // absolute: filter is 0, dstnat -100, srcnat 100
  bool policy_accept = true;  // chain policy: accept or drop
  friend bool operator==(const BaseChain&, const BaseChain&) = default;
};

struct Chain {
  std::string name;
  std::optional<BaseChain> base;  // nullopt: a regular chain reached by jump or goto
  std::vector<Rule> rules;
  friend bool operator==(const Chain&, const Chain&) = default;
};

enum class SetKey { ipv4_addr, ipv6_addr, inet_service, cgroupv2, inet_proto };

/// What a set of cgroup ids stands for: a systemd unit, wherever its cgroup is (a unit's
/// cgroup is named like the unit, in the slice it runs in), or a cgroup path.
struct CgroupOwner {
  std::string unit;  // "ssh.service"; empty for a path
  std::string path;  // relative to the cgroup2 root, no leading '/'; empty for a unit
  friend bool operator==(const CgroupOwner&, const CgroupOwner&) = default;
  friend auto operator<=>(const CgroupOwner&, const CgroupOwner&) = default;
};

/// A cgroup in a cgroupv2 set: its path (for nft text: nft resolves it under
/// /sys/fs/cgroup) and its id, the kernfs inode number the kernel compares.
struct CgroupMember {
  std::string path;
  std::uint64_t id = 0;
  friend bool operator==(const CgroupMember&, const CgroupMember&) = default;
};

/// A named set of the table (`set NAME { type ...; flags ...; elements = { ... } }`).
struct NamedSet {
  std::string name;
  SetKey key = SetKey::ipv4_addr;
  bool interval = false;  // flags interval: elements may be ranges/prefixes
  bool timeout = false;   // flags timeout: elements may carry their own timeout
  bool dynamic = false;   // flags dynamic: filled from the packet path (meters)
  std::optional<std::uint32_t> default_timeout_seconds;  // `timeout 1m` of the set
  std::optional<std::uint32_t> size;                     // `size N`
  /// Elements as ranges; for inet_service sets only bytes[0..1] of each address are used
  /// (the port in network byte order) and `family` is ignored, for inet_proto sets only
  /// bytes[0] (protocol_element()). Sorted, non-overlapping.
  /// Empty for cgroupv2 sets, which hold `cgroups`.
  std::vector<AddressRange> elements;
  /// cgroupv2 sets (`type cgroupsv2`): whose cgroup they hold, and the cgroups in them now
  /// (none while the unit is not running). The compiler leaves `cgroups` empty; the daemon
  /// fills it from the live system and keeps it current.
  CgroupOwner owner{};
  std::vector<CgroupMember> cgroups{};
  friend bool operator==(const NamedSet&, const NamedSet&) = default;
};

/// One policy rule's share of a RuleMap: a box in the key space (one range per key field;
/// ports as port_element() bytes) and the rule's verdict.
struct MapElement {
  std::vector<AddressRange> key;
  VerdictKind verdict = VerdictKind::accept;  // accept or drop
  std::string comment;                        // the policy rule's name, as element userdata
  friend bool operator==(const MapElement&, const MapElement&) = default;
};

/// A named verdict map that stands for a run of adjacent policy rules of one shape
/// (merge_rules.h): `map input/m1 { type ipv4_addr . inet_service : verdict; flags
/// interval; counter; elements = { 10.0.0.1 . 22 comment "ssh" : accept, ... } }`.
/// Always an interval map with a counter on every element (the set's `counter`
/// expression), so each policy rule keeps its own counter and is toggled as elements.
/// Elements are pairwise disjoint, so the order of rules within the run does not matter.
/// The `published` chains' copies of a run look up the input chain's map where it holds
/// the same elements (share_maps()), so one map may serve two lookups.
struct RuleMap {
  std::string name;
  std::vector<KeyField> key;          // not empty
  std::vector<MapElement> elements;   // in rule order
  friend bool operator==(const RuleMap&, const RuleMap&) = default;
};

/// A `table inet NAME`. Sets come before chains, and chains that are jumped to are
/// listed before their callers: the kernel resolves both when a rule is added.
struct Ruleset {
  std::string table = "portier";
  bool owner = false;    // NFT_TABLE_F_OWNER: only the creating netlink socket may change it
  bool persist = false;  // NFT_TABLE_F_PERSIST: with owner, the table outlives the socket
  std::vector<NamedSet> sets;
  std::vector<RuleMap> maps;  // declared after the sets, before the chains
  std::vector<Chain> chains;
  friend bool operator==(const Ruleset&, const Ruleset&) = default;
};

/// A cgroup id as an element of a cgroupv2 set in a SetEdit: the id's 8 bytes in host
/// order (as the kernel compares it) in bytes[0..7].
inline AddressRange cgroup_element(std::uint64_t id) {
  Address address;
  std::memcpy(address.bytes.data(), &id, sizeof id);
  return {address, address};
}

/// A transport protocol as an element of an inet_proto set: its number in bytes[0].
inline AddressRange protocol_element(L4Proto protocol) {
  Address address;
  address.bytes[0] = static_cast<std::uint8_t>(protocol);
  return {address, address};
}

/// A port as an element of an inet_service set: the port in bytes[0..1], big-endian.
inline Address port_element(std::uint16_t port) {
  Address address;
  address.bytes[0] = static_cast<std::uint8_t>(port >> 8);
  address.bytes[1] = static_cast<std::uint8_t>(port & 0xff);
  return address;
}

}  // namespace portier::ir
