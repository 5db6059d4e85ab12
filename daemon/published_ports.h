// Ports that other tables publish: the DNAT rules Docker, podman and the like keep in their
// own nf_tables tables (iptables-nft writes `-j DNAT` as an xt target, nft as a nat
// expression), decoded from one message of the kernel's GETRULE dump. Bytes in, ports out;
// NetlinkKernel::published_ports() does the dump.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ruleset.h"

struct nlmsghdr;

namespace portier {

/// One DNAT rule of another table that publishes a port of the host, in nft's terms:
/// `iifname != "docker0" tcp dport 8080 dnat to 172.17.0.2:80` in `ip nat DOCKER`.
struct PublishedPort {
  std::string table;    // family and name: "ip nat"
  std::string chain;    // "DOCKER"
  std::string comment;  // the rule's comment (nft comment or iptables -m comment); often none
  ir::Family family = ir::Family::ipv4;
  ir::L4Proto protocol = ir::L4Proto::tcp;
  ir::PortRange ports;  // the published port(s), before NAT
  /// `ip daddr 127.0.0.1` (docker run -p 127.0.0.1:5353:53): only connections to these
  /// addresses; none: any (Docker's chain is reached for local addresses only).
  std::optional<ir::AddressRange> destination;
  std::vector<std::string> not_from;          // `iifname != "docker0"`: not for packets in on these
  ir::Address target;                         // where the connection goes: the container's address
  std::optional<ir::PortRange> target_ports;  // none: the port stays as it was
  /// Conditions of the rule this decoder does not read (expression names): the port may be
  /// published to fewer connections than the fields above say.
  std::vector<std::string> unread;
  friend bool operator==(const PublishedPort&, const PublishedPort&) = default;
};

/// The published port one NFT_MSG_NEWRULE message describes: a rule that ends in DNAT to
/// one address (xt target DNAT revision 0, 1 or 2, or a nat expression) and matches a TCP,
/// UDP or SCTP destination port (one, or a range). nullopt for every other rule, including
/// DNAT rules with no destination port (Kubernetes' per-endpoint chains: which port of the
/// host leads there is decided by a jump elsewhere).
std::optional<PublishedPort> parse_published_port(const nlmsghdr* message);

/// The reader of each rule of a GETRULE dump of every table (RequestReplies::Each,
/// netlink_decode.h): the parse_published_port() of each rule that publishes a port,
/// except the rules of `table inet <own_table>`, appended to `ports` (alive as long as the
/// returned function). A rule that publishes nothing, or that it cannot read, is skipped:
/// other tables hold all kinds of rules.
std::function<bool(const nlmsghdr*)> append_published_ports(std::string own_table,
                                                            std::vector<PublishedPort>& ports);

}  // namespace portier
