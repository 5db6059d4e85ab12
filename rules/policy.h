// The policy model: what the TOML policy files say, validated, before compilation.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "diagnostic.h"

namespace portier {

enum class Action { accept, drop, reject };
enum class Direction { in, out, forward };
enum class Protocol { tcp, udp, icmp, icmpv6, sctp };
enum class LogMode { off, denied, all };
enum class Family { ipv4, ipv6 };

struct PortRange {
  std::uint16_t first = 0;
  std::uint16_t last = 0;
  friend bool operator==(const PortRange&, const PortRange&) = default;
};

/// An address with a prefix length: 192.168.1.0/24, fd00::/8; a plain address is a /32 or /128.
struct Cidr {
  Family family = Family::ipv4;
  std::array<std::uint8_t, 16> bytes{};  // network byte order; IPv4 uses the first 4
  std::uint8_t prefix = 32;
  friend bool operator==(const Cidr&, const Cidr&) = default;
  std::size_t size() const { return family == Family::ipv4 ? 4 : 16; }
};

/// One item of a rule's `from` or `to`: a zone, an address or network, or a named set.
struct Endpoint {
  enum class Kind { zone, network, set } kind = Kind::zone;
  std::string name;  // zone or set name
  Cidr network;      // for Kind::network
  SourceLocation where;
};

/// A per-source rate, as `limit = "10/minute"` says it.
struct Rate {
  std::uint32_t count = 0;
  enum class Unit { second, minute, hour, day } unit = Unit::second;
  friend bool operator==(const Rate&, const Rate&) = default;
};

struct Zone {
  std::string name;
  std::vector<std::string> interfaces;  // nft names; a trailing '*' is a wildcard
  std::vector<Cidr> networks;
  std::optional<Action> input;          // overrides [policy].input for this zone
  std::vector<std::string> forward_to;  // zones new connections may be routed to
  /// The neighbour stack (neighbours.h) whose interfaces these are: "docker", "podman",
  /// "libvirt", "kubernetes"; empty for the policy's own zones.
  std::string stack;
  bool builtin = false;  // made from the stack's defaults, not written in the policy
  SourceLocation where;
};

/// [neighbours]: the other network stacks on the host (container runtimes, libvirt,
/// Kubernetes) whose bridges portier leaves to them, and what their published ports mean.
struct Neighbours {
  std::vector<std::string> off;  // stacks switched off (`docker = false`)
  /// published = "open": ports they DNAT to their containers are open to everyone, as
  /// Docker documents it. Default ("policy"): the input rules decide, as for a listener.
  bool published_open = false;
  SourceLocation where;
};

enum class SetFamily { ipv4, ipv6, port };

struct NamedSet {
  std::string name;
  SetFamily family = SetFamily::ipv4;
  std::vector<Cidr> addresses;  // ipv4/ipv6 sets, `elements` then `file`
  std::vector<PortRange> ports;  // port sets
  std::string file;              // as written, resolved against the policy file's folder
  std::optional<std::chrono::seconds> timeout;
  SourceLocation where;
};

struct Rule {
  std::string name;
  Direction direction = Direction::in;
  std::vector<Protocol> protocols;  // empty: any protocol
  std::vector<PortRange> ports;     // destination ports; empty: any; as written
  std::vector<Endpoint> from;       // empty: anywhere
  std::vector<Endpoint> to;
  Action action = Action::accept;
  bool enabled = true;
  bool log = false;
  std::optional<Rate> limit;
  std::optional<std::uint32_t> user;  // uid of the local socket (out rules)
  std::string user_name;
  std::string unit;  // systemd unit of the local socket, wherever its cgroup is
  std::string comment;
  SourceLocation where;  // the [[rule]] header
};

/// Who may serve some ports: packets for them reach only sockets of that owner.
struct Bind {
  std::string name;
  std::vector<Protocol> protocols;
  std::vector<PortRange> ports;
  std::string unit;                   // systemd unit, if unit = was given
  std::string cgroup;                 // cgroup v2 path below the root, if cgroup = was given
  std::optional<std::uint32_t> user;  // uid, if user = was given
  std::string user_name;
  SourceLocation where;
};

/// Port forwarding on a router: DNAT of new connections arriving from a zone.
struct Forward {
  std::string name;
  std::string from;  // zone
  std::vector<Protocol> protocols;
  std::vector<PortRange> ports;
  Cidr to_address;  // a single address
  std::optional<std::uint16_t> to_port;
  bool enabled = true;
  SourceLocation where;
};

struct Policy {
  std::string source;              // the main file's name
  std::vector<std::string> files;  // the main file and its drop-ins, in merge order
  Action input = Action::drop;     // new inbound connections no rule decides
  Action output = Action::accept;  // new outbound connections no rule decides
  Action forward = Action::drop;   // new routed connections no rule decides
  LogMode log = LogMode::off;
  /// nflog group for the log statements; none: the kernel log. With a group, portierd
  /// relays the logged packets (journal, `portierctl monitor`).
  std::optional<std::uint16_t> log_group;
  std::vector<Zone> zones;
  std::vector<NamedSet> sets;
  std::vector<Rule> rules;
  std::vector<Bind> binds;
  std::vector<Forward> forwards;
  std::vector<std::string> masquerade;  // zones from [nat]
  Neighbours neighbours;

  const Rule* find_rule(std::string_view name) const;
  Rule* find_rule(std::string_view name);
  const Zone* find_zone(std::string_view name) const;
  const NamedSet* find_set(std::string_view name) const;
  Forward* find_forward(std::string_view name);
};

/// The kernel set of cgroup ids of a bind's owner, or of a rule's `unit` (by the bind's or
/// rule's name, which are unique together).
inline std::string cgroup_set_name(const std::string& owner_name) { return "cgroups_" + owner_name; }
/// The bind or rule a cgroup_set_name() belongs to.
inline std::string owner_of_cgroup_set(const std::string& set) {
  return set.starts_with("cgroups_") ? set.substr(8) : set;
}

/// Parses `192.168.1.0/24`, `10.0.0.1`, `fd00::/8` (host bits must be clear).
std::optional<Cidr> parse_cidr(std::string_view text);

std::string_view to_string(Action action);
std::string_view to_string(Direction direction);
std::string_view to_string(Protocol protocol);
std::string to_string(const Cidr& cidr);

/// What a rule matches, in a few words: `tcp,udp 137-139 from wan`.
std::string describe_match(const Rule& rule);

/// A port forward in a few words: `tcp 8080 from wan to 192.168.1.10:80`.
std::string describe_forward(const Forward& forward);

}  // namespace portier
