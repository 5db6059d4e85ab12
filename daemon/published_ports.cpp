// Reading a DNAT rule back from its expressions, the way nft's netlink_delinearize does it
// in small: a register remembers what was loaded into it (a meta key, a header field, an
// immediate value), and a cmp or range on that register becomes a condition on that field.
#include "published_ports.h"

#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <string_view>

namespace portier {
namespace {

// What a register holds.
enum class Loaded { l4proto, nfproto, iifname, daddr4, daddr6, dport, immediate, other };

struct Register {
  Loaded what = Loaded::other;
  std::vector<std::uint8_t> data;  // an immediate's value
  std::vector<std::uint8_t> mask;  // a bitwise AND applied to the loaded field
};

// Register contents are in host order for meta keys and in network order for header fields
// and immediates, as the kernel stores them.
std::span<const std::uint8_t> data_of(const nftnl_expr* expr, std::uint16_t attribute) {
  std::uint32_t len = 0;
  const void* data = nftnl_expr_get(expr, attribute, &len);
  if (data == nullptr) return {};
  return {static_cast<const std::uint8_t*>(data), len};
}

std::uint16_t port_at(std::span<const std::uint8_t> bytes, std::size_t offset = 0) {
  if (bytes.size() < offset + 2) return 0;
  return static_cast<std::uint16_t>(bytes[offset] << 8 | bytes[offset + 1]);
}

ir::Address address_from(ir::Family family, std::span<const std::uint8_t> bytes) {
  ir::Address address;
  address.family = family;
  std::copy_n(bytes.begin(), std::min(bytes.size(), family == ir::Family::ipv4 ? 4ul : 16ul),
              address.bytes.begin());
  return address;
}

// A name register compares as a NUL-padded string (`iifname "eth0"`: 16 bytes).
std::string name_from(std::span<const std::uint8_t> bytes) {
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return std::string(text.substr(0, text.find('\0')));
}

std::optional<ir::L4Proto> l4proto_from(std::uint8_t number) {
  switch (number) {
    case 6:
      return ir::L4Proto::tcp;
    case 17:
      return ir::L4Proto::udp;
    case 132:
      return ir::L4Proto::sctp;
    default:
      return std::nullopt;
  }
}

// struct nf_nat_range2 (rev 2) / nf_nat_range (rev 1): flags, min_addr, max_addr (union
// nf_inet_addr, 16 bytes each), min_proto, max_proto (big-endian ports); rev 0 is
// nf_nat_ipv4_multi_range_compat: rangesize, then flags, min_ip, max_ip, min, max. The
// flags are NF_NAT_RANGE_*.
std::uint32_t u32_at(std::span<const std::uint8_t> bytes, std::size_t offset) {
  std::uint32_t value = 0;
  if (bytes.size() >= offset + 4) std::memcpy(&value, bytes.data() + offset, 4);
  return value;
}

class RuleReader {
 public:
  explicit RuleReader(ir::Family family) { port_.family = family; }

  void read(const nftnl_expr* expr) {
    const std::string_view name = nftnl_expr_get_str(expr, NFTNL_EXPR_NAME);
    if (name == "meta") return meta(expr);
    if (name == "payload") return payload(expr);
    if (name == "bitwise") return bitwise(expr);
    if (name == "cmp") return cmp(expr);
    if (name == "range") return range(expr);
    if (name == "immediate") return immediate(expr);
    if (name == "nat") return nat(expr);
    if (name == "target") return target(expr);
    if (name == "match") return match(expr);
    if (name == "counter") return;
    port_.unread.emplace_back(name);
  }

  std::optional<PublishedPort> result() && {
    if (!dnat_ || !protocol_ || !has_port_) return std::nullopt;
    port_.protocol = *protocol_;
    return std::move(port_);
  }

  void set_comment(std::string comment) { port_.comment = std::move(comment); }

 private:
  void meta(const nftnl_expr* expr) {
    if (!nftnl_expr_is_set(expr, NFTNL_EXPR_META_DREG)) {
      port_.unread.emplace_back("meta set");
      return;
    }
    Register& reg = registers_[nftnl_expr_get_u32(expr, NFTNL_EXPR_META_DREG)];
    reg = {};
    switch (nftnl_expr_get_u32(expr, NFTNL_EXPR_META_KEY)) {
      case NFT_META_L4PROTO:
        reg.what = Loaded::l4proto;
        break;
      case NFT_META_NFPROTO:
        reg.what = Loaded::nfproto;
        break;
      case NFT_META_IIFNAME:
        reg.what = Loaded::iifname;
        break;
      default:
        reg.what = Loaded::other;
    }
  }

  void payload(const nftnl_expr* expr) {
    if (!nftnl_expr_is_set(expr, NFTNL_EXPR_PAYLOAD_DREG)) {
      port_.unread.emplace_back("payload set");
      return;
    }
    Register& reg = registers_[nftnl_expr_get_u32(expr, NFTNL_EXPR_PAYLOAD_DREG)];
    reg = {};
    const std::uint32_t base = nftnl_expr_get_u32(expr, NFTNL_EXPR_PAYLOAD_BASE);
    const std::uint32_t offset = nftnl_expr_get_u32(expr, NFTNL_EXPR_PAYLOAD_OFFSET);
    const std::uint32_t len = nftnl_expr_get_u32(expr, NFTNL_EXPR_PAYLOAD_LEN);
    // The destination address of IPv4 (offset 16) and IPv6 (24); the destination port of
    // TCP, UDP and SCTP (offset 2 of each).
    if (base == NFT_PAYLOAD_NETWORK_HEADER && offset == 16 && len == 4 &&
        port_.family == ir::Family::ipv4)
      reg.what = Loaded::daddr4;
    else if (base == NFT_PAYLOAD_NETWORK_HEADER && offset == 24 && len == 16 &&
             port_.family == ir::Family::ipv6)
      reg.what = Loaded::daddr6;
    else if (base == NFT_PAYLOAD_TRANSPORT_HEADER && offset == 2 && len == 2)
      reg.what = Loaded::dport;
  }

  void bitwise(const nftnl_expr* expr) {
    Register source = registers_[nftnl_expr_get_u32(expr, NFTNL_EXPR_BITWISE_SREG)];
    std::span<const std::uint8_t> mask = data_of(expr, NFTNL_EXPR_BITWISE_MASK);
    source.mask.assign(mask.begin(), mask.end());
    registers_[nftnl_expr_get_u32(expr, NFTNL_EXPR_BITWISE_DREG)] = std::move(source);
  }

  void cmp(const nftnl_expr* expr) {
    const Register& reg = registers_[nftnl_expr_get_u32(expr, NFTNL_EXPR_CMP_SREG)];
    const std::uint32_t op = nftnl_expr_get_u32(expr, NFTNL_EXPR_CMP_OP);
    std::span<const std::uint8_t> data = data_of(expr, NFTNL_EXPR_CMP_DATA);
    if (reg.what == Loaded::l4proto && op == NFT_CMP_EQ && data.size() == 1) {
      protocol_ = l4proto_from(data[0]);
      if (!protocol_) port_.unread.emplace_back("l4proto");
    } else if (reg.what == Loaded::nfproto && op == NFT_CMP_EQ && data.size() == 1) {
      port_.family = data[0] == NFPROTO_IPV6 ? ir::Family::ipv6 : ir::Family::ipv4;
    } else if (reg.what == Loaded::iifname && op == NFT_CMP_NEQ) {
      port_.not_from.push_back(name_from(data));
    } else if (reg.what == Loaded::dport && op == NFT_CMP_EQ) {
      port_.ports = {port_at(data), port_at(data)};
      has_port_ = true;
    } else if (reg.what == Loaded::dport && op == NFT_CMP_GTE) {
      port_.ports.first = port_at(data);
      if (!has_port_) port_.ports.last = 65535;
      has_port_ = true;
    } else if (reg.what == Loaded::dport && op == NFT_CMP_LTE) {
      port_.ports.last = port_at(data);
      has_port_ = true;
    } else if ((reg.what == Loaded::daddr4 || reg.what == Loaded::daddr6) && op == NFT_CMP_EQ) {
      // `ip daddr 10.0.0.0/8`: the field masked, then compared with the network address.
      ir::Address first = address_from(port_.family, data);
      ir::Address last = first;
      for (std::size_t i = 0; i < reg.mask.size() && i < last.bytes.size(); ++i)
        last.bytes[i] = static_cast<std::uint8_t>(first.bytes[i] | ~reg.mask[i]);
      port_.destination = ir::AddressRange{first, last};
    } else {
      port_.unread.emplace_back("cmp");
    }
  }

  void range(const nftnl_expr* expr) {
    const Register& reg = registers_[nftnl_expr_get_u32(expr, NFTNL_EXPR_RANGE_SREG)];
    if (reg.what == Loaded::dport &&
        nftnl_expr_get_u32(expr, NFTNL_EXPR_RANGE_OP) == NFT_RANGE_EQ) {
      port_.ports = {port_at(data_of(expr, NFTNL_EXPR_RANGE_FROM_DATA)),
                     port_at(data_of(expr, NFTNL_EXPR_RANGE_TO_DATA))};
      has_port_ = true;
      return;
    }
    port_.unread.emplace_back("range");
  }

  void immediate(const nftnl_expr* expr) {
    if (!nftnl_expr_is_set(expr, NFTNL_EXPR_IMM_DATA)) {
      // A verdict other than DNAT (accept, jump): this rule publishes nothing itself.
      verdict_ = true;
      return;
    }
    Register& reg = registers_[nftnl_expr_get_u32(expr, NFTNL_EXPR_IMM_DREG)];
    reg = {};
    reg.what = Loaded::immediate;
    std::span<const std::uint8_t> data = data_of(expr, NFTNL_EXPR_IMM_DATA);
    reg.data.assign(data.begin(), data.end());
  }

  // nft's `dnat to ADDR:PORT`: the address and port come from registers an immediate filled.
  void nat(const nftnl_expr* expr) {
    if (nftnl_expr_get_u32(expr, NFTNL_EXPR_NAT_TYPE) != NFT_NAT_DNAT ||
        !nftnl_expr_is_set(expr, NFTNL_EXPR_NAT_REG_ADDR_MIN))
      return;
    const ir::Family family = nftnl_expr_get_u32(expr, NFTNL_EXPR_NAT_FAMILY) == NFPROTO_IPV6
                                  ? ir::Family::ipv6
                                  : ir::Family::ipv4;
    const Register& address = registers_[nftnl_expr_get_u32(expr, NFTNL_EXPR_NAT_REG_ADDR_MIN)];
    if (address.what != Loaded::immediate) return;
    port_.family = family;
    port_.target = address_from(family, address.data);
    if (nftnl_expr_is_set(expr, NFTNL_EXPR_NAT_REG_PROTO_MIN)) {
      const Register& min = registers_[nftnl_expr_get_u32(expr, NFTNL_EXPR_NAT_REG_PROTO_MIN)];
      const Register& max = nftnl_expr_is_set(expr, NFTNL_EXPR_NAT_REG_PROTO_MAX)
                                ? registers_[nftnl_expr_get_u32(expr, NFTNL_EXPR_NAT_REG_PROTO_MAX)]
                                : min;
      port_.target_ports = ir::PortRange{port_at(min.data), port_at(max.data)};
    }
    dnat_ = !verdict_;
  }

  // iptables-nft's `-j DNAT --to-destination ADDR[:PORT]`: the xt target with its range.
  void target(const nftnl_expr* expr) {
    if (std::string_view(nftnl_expr_get_str(expr, NFTNL_EXPR_TG_NAME)) != "DNAT") return;
    const std::uint32_t revision = nftnl_expr_get_u32(expr, NFTNL_EXPR_TG_REV);
    std::span<const std::uint8_t> info = data_of(expr, NFTNL_EXPR_TG_INFO);
    std::uint32_t flags = 0;
    if (revision == 0) {
      if (info.size() < 20 || port_.family != ir::Family::ipv4) return;
      flags = u32_at(info, 4);
      port_.target = address_from(ir::Family::ipv4, info.subspan(8, 4));
      if (flags & NF_NAT_RANGE_PROTO_SPECIFIED)
        port_.target_ports = ir::PortRange{port_at(info, 16), port_at(info, 18)};
    } else {
      if (info.size() < 40) return;
      flags = u32_at(info, 0);
      port_.target = address_from(port_.family, info.subspan(4, 16));
      if (flags & NF_NAT_RANGE_PROTO_SPECIFIED)
        port_.target_ports = ir::PortRange{port_at(info, 36), port_at(info, 38)};
    }
    dnat_ = (flags & NF_NAT_RANGE_MAP_IPS) != 0 && !verdict_;
  }

  // iptables' matches that nft does not translate; `-m comment` is the only one read.
  void match(const nftnl_expr* expr) {
    const std::string_view name = nftnl_expr_get_str(expr, NFTNL_EXPR_MT_NAME);
    if (name == "comment") {
      std::span<const std::uint8_t> info = data_of(expr, NFTNL_EXPR_MT_INFO);
      port_.comment = name_from(info);
      return;
    }
    port_.unread.push_back("xt match " + std::string(name));
  }

  PublishedPort port_;
  std::map<std::uint32_t, Register> registers_;
  std::optional<ir::L4Proto> protocol_;
  bool has_port_ = false;
  bool dnat_ = false;
  bool verdict_ = false;
};

int read_expression(nftnl_expr* expr, void* reader) {
  static_cast<RuleReader*>(reader)->read(expr);
  return 0;
}

std::string family_name(std::uint32_t family) {
  switch (family) {
    case NFPROTO_IPV4:
      return "ip";
    case NFPROTO_IPV6:
      return "ip6";
    case NFPROTO_INET:
      return "inet";
    case NFPROTO_BRIDGE:
      return "bridge";
    case NFPROTO_NETDEV:
      return "netdev";
    case NFPROTO_ARP:
      return "arp";
    default:
      return std::to_string(family);
  }
}

// nft keeps a rule's comment in its userdata as record NFTNL_UDATA_RULE_COMMENT.
std::string udata_comment(const nftnl_rule* rule) {
  if (!nftnl_rule_is_set(rule, NFTNL_RULE_USERDATA)) return {};
  std::uint32_t len = 0;
  const auto* data =
      static_cast<const std::uint8_t*>(nftnl_rule_get_data(rule, NFTNL_RULE_USERDATA, &len));
  for (std::uint32_t pos = 0; data != nullptr && pos + 2 <= len;) {
    const std::uint8_t type = data[pos], value_len = data[pos + 1];
    if (pos + 2u + value_len > len) break;
    if (type == NFTNL_UDATA_RULE_COMMENT) return name_from({data + pos + 2, value_len});
    pos += 2u + value_len;
  }
  return {};
}

struct RuleDeleter {
  void operator()(nftnl_rule* rule) const { nftnl_rule_free(rule); }
};

}  // namespace

std::optional<PublishedPort> parse_published_port(const nlmsghdr* message) {
  std::unique_ptr<nftnl_rule, RuleDeleter> rule(nftnl_rule_alloc());
  if (!rule || nftnl_rule_nlmsg_parse(message, rule.get()) < 0) return std::nullopt;
  const std::uint32_t family = nftnl_rule_get_u32(rule.get(), NFTNL_RULE_FAMILY);
  if (family != NFPROTO_IPV4 && family != NFPROTO_IPV6 && family != NFPROTO_INET)
    return std::nullopt;
  RuleReader reader(family == NFPROTO_IPV6 ? ir::Family::ipv6 : ir::Family::ipv4);
  nftnl_expr_foreach(rule.get(), read_expression, &reader);
  std::string comment = udata_comment(rule.get());
  if (!comment.empty()) reader.set_comment(std::move(comment));
  std::optional<PublishedPort> port = std::move(reader).result();
  if (!port) return std::nullopt;
  const char* table = nftnl_rule_get_str(rule.get(), NFTNL_RULE_TABLE);
  const char* chain = nftnl_rule_get_str(rule.get(), NFTNL_RULE_CHAIN);
  port->table = family_name(family) + " " + (table ? table : "");
  port->chain = chain ? chain : "";
  return port;
}

std::function<bool(const nlmsghdr*)> append_published_ports(std::string own_table,
                                                            std::vector<PublishedPort>& ports) {
  return [own = "inet " + std::move(own_table), &ports](const nlmsghdr* nlh) {
    if (std::optional<PublishedPort> port = parse_published_port(nlh); port && port->table != own)
      ports.push_back(std::move(*port));
    return true;
  };
}

}  // namespace portier
