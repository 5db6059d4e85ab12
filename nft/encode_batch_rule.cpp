// One rule of the IR as the expressions nft 1.0.6 sends for its rendering, including the
// dependencies nft adds on its own (`meta nfproto` before an `ip saddr` in an inet table,
// `meta l4proto` before `tcp flags`), and the anonymous sets and verdict maps it looks up.
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tuple_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <variant>

#include "address_range.h"
#include "encode_batch_internal.h"
#include "overloaded.h"

namespace portier::encode {
namespace {

constexpr std::uint32_t kCtDirOriginal = IP_CT_DIR_ORIGINAL;

constexpr const char* kAnonymousSetName = "__set%d";
constexpr const char* kAnonymousMapName = "__map%d";

constexpr std::uint32_t kIfnameLength = 16;           // IFNAMSIZ
constexpr std::uint32_t kCtStatusDnat = IPS_DST_NAT;  // an lvalue: compared by address
constexpr std::uint8_t kTcpFlagSyn = 0x02;
constexpr std::uint32_t kTcpFlagsOffset = 13;
constexpr std::uint32_t kTcpOptionMaxseg = 2;

// The typeof part of set userdata: {expr type, {expr-specific fields}}.
void put_key_typeof(nftnl_udata_buf* buf, std::uint32_t expr_type,
                    const std::vector<std::pair<std::uint8_t, std::uint32_t>>& fields) {
  nftnl_udata* outer = nftnl_udata_nest_start(buf, NFTNL_UDATA_SET_KEY_TYPEOF);
  put_udata(buf, NFTNL_UDATA_SET_TYPEOF_EXPR, expr_type);
  nftnl_udata* inner = nftnl_udata_nest_start(buf, NFTNL_UDATA_SET_TYPEOF_DATA);
  for (const auto& [type, value] : fields) put_udata(buf, type, value);
  nftnl_udata_nest_end(buf, inner);
  nftnl_udata_nest_end(buf, outer);
}

Udata meta_key_udata(std::uint32_t byteorder, std::uint32_t meta_key) {
  auto buf = udata_buffer();
  put_udata(buf.get(), NFTNL_UDATA_SET_KEYBYTEORDER, byteorder);
  put_key_typeof(buf.get(), kExprMeta, {{kUdataMetaKey, meta_key}});
  return udata_bytes(*buf);
}

Udata ct_key_udata(bool merge, std::uint32_t ct_key) {
  auto buf = udata_buffer();
  put_udata(buf.get(), NFTNL_UDATA_SET_KEYBYTEORDER, kByteorderBigEndian);
  if (merge) put_udata(buf.get(), NFTNL_UDATA_SET_MERGE_ELEMENTS, 1);
  put_key_typeof(buf.get(), kExprCt, {{kUdataCtKey, ct_key}, {kUdataCtDir, kCtDirOriginal}});
  return udata_bytes(*buf);
}

Udata payload_key_udata(bool merge, std::uint32_t desc, std::uint32_t field) {
  auto buf = udata_buffer();
  put_udata(buf.get(), NFTNL_UDATA_SET_KEYBYTEORDER, kByteorderBigEndian);
  if (merge) put_udata(buf.get(), NFTNL_UDATA_SET_MERGE_ELEMENTS, 1);
  put_key_typeof(buf.get(), kExprPayload, {{kUdataPayloadDesc, desc}, {kUdataPayloadField, field}});
  return udata_bytes(*buf);
}

SetElement plain_element(const void* key, std::uint32_t len) {
  SetElement element;
  element.key_len = static_cast<std::uint8_t>(len);
  std::memcpy(element.key.data(), key, len);
  return element;
}

std::array<std::uint8_t, 2> port_bytes(std::uint16_t port) {
  return {static_cast<std::uint8_t>(port >> 8), static_cast<std::uint8_t>(port & 0xff)};
}

std::uint32_t port_protocol_desc(const ir::L4ProtoIn& protocols) {
  if (protocols.protocols.size() != 1) return kProtoDescTh;
  switch (protocols.protocols.front()) {
    case ir::L4Proto::tcp:
      return kProtoDescTcp;
    case ir::L4Proto::udp:
      return kProtoDescUdp;
    case ir::L4Proto::sctp:
      return kProtoDescSctp;
    default:
      throw std::invalid_argument("a port match needs tcp, udp or sctp");
  }
}

std::uint32_t rate_unit_seconds(ir::RateUnit unit) {
  switch (unit) {
    case ir::RateUnit::second:
      return 1;
    case ir::RateUnit::minute:
      return 60;
    case ir::RateUnit::hour:
      return 3600;
    case ir::RateUnit::day:
      return 86400;
  }
  throw std::invalid_argument("unknown rate unit");
}

std::int32_t verdict_code(ir::VerdictKind kind) {
  switch (kind) {
    case ir::VerdictKind::accept:
      return NF_ACCEPT;
    case ir::VerdictKind::drop:
      return NF_DROP;
    case ir::VerdictKind::jump:
      return NFT_JUMP;
    case ir::VerdictKind::go_to:
      return NFT_GOTO;
    case ir::VerdictKind::return_:
      return NFT_RETURN;
    default:
      throw std::invalid_argument("a verdict map entry must accept, drop, jump or goto");
  }
}

// IFNAMSIZ bytes, NUL-padded, as the kernel's meta iifname stores the name.
std::array<std::uint8_t, kIfnameLength> ifname_key(const std::string& name) {
  if (name.empty() || name.size() >= kIfnameLength || name.find('\0') != std::string::npos) {
    throw std::invalid_argument("invalid interface name '" + name + "'");
  }
  std::array<std::uint8_t, kIfnameLength> key{};
  std::memcpy(key.data(), name.data(), name.size());
  return key;
}

}  // namespace

class RuleEncoder::Builder {
 public:
  Builder(const std::string& table, const std::string& chain) : rule_(owned(nftnl_rule_alloc())) {
    nftnl_rule_set_str(rule_.get(), NFTNL_RULE_TABLE, table.c_str());
    nftnl_rule_set_str(rule_.get(), NFTNL_RULE_CHAIN, chain.c_str());
    nftnl_rule_set_u32(rule_.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
  }

  nftnl_expr* add(const char* name) {
    auto expr = owned(nftnl_expr_alloc(name));
    nftnl_expr* raw = expr.get();
    nftnl_rule_add_expr(rule_.get(), expr.release());  // the rule owns it from here
    return raw;
  }

  void meta_load(std::uint32_t key) {
    nftnl_expr* e = add("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
  }

  void payload_load(std::uint32_t base, std::uint32_t offset, std::uint32_t len,
                    std::uint32_t dreg = NFT_REG_1) {
    nftnl_expr* e = add("payload");
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
  }

  void compare(std::uint32_t op, const void* data, std::uint32_t len) {
    nftnl_expr* e = add("cmp");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
    nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
  }

  // A flag test, as nft matches "any of these bits": (reg & mask) != 0.
  void any_bit(const void* mask, std::uint32_t len) {
    const std::array<std::uint8_t, 16> zero{};
    nftnl_expr* bitwise = add("bitwise");
    nftnl_expr_set_u32(bitwise, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
    nftnl_expr_set_u32(bitwise, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
    nftnl_expr_set_u32(bitwise, NFTNL_EXPR_BITWISE_LEN, len);
    nftnl_expr_set(bitwise, NFTNL_EXPR_BITWISE_MASK, mask, len);
    nftnl_expr_set(bitwise, NFTNL_EXPR_BITWISE_XOR, zero.data(), len);
    compare(NFT_CMP_NEQ, zero.data(), len);
  }

  void lookup(const SetDefinition& set, bool verdict_map, bool invert = false) {
    nftnl_expr* e = add("lookup");
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
    if (verdict_map) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set.name.c_str());
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set.id);
    if (invert) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
  }

  // `ct original KEY`: the conntrack entry's original-direction tuple.
  void ct_original_load(std::uint32_t key, std::uint32_t dreg = NFT_REG_1) {
    nftnl_expr* e = add("ct");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, dreg);
    nftnl_expr_set_u8(e, NFTNL_EXPR_CT_DIR, static_cast<std::uint8_t>(kCtDirOriginal));
  }

  void immediate_data(std::uint32_t reg, const void* data, std::uint32_t len) {
    nftnl_expr* e = add("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, reg);
    nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, data, len);
  }

  void limit(const ir::Limit& limit, nftnl_expr* e) {
    // nft refuses a burst of 0 packets (the kernel would turn it into "never").
    if (limit.burst == 0) throw std::invalid_argument("limit burst must be at least 1 packet");
    nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, limit.rate);
    nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, rate_unit_seconds(limit.unit));
    nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, limit.burst);
    nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
    nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_FLAGS, limit.over ? NFT_LIMIT_F_INV : 0);
  }

  void set_comment(const std::string& comment) {
    // nft stores the comment NUL-terminated in a TLV, and refuses more than 128 bytes.
    if (comment.size() > NFTNL_UDATA_COMMENT_MAXLEN || comment.find('\0') != std::string::npos) {
      throw std::invalid_argument("invalid rule comment '" + comment + "'");
    }
    userdata_ = udata_buffer();
    if (!nftnl_udata_put_strz(userdata_.get(), NFTNL_UDATA_RULE_COMMENT, comment.c_str())) {
      throw std::length_error("rule userdata overflow");
    }
  }

  void build_payload(nlmsghdr* nlh) const {
    nftnl_rule_nlmsg_build_payload(nlh, rule_.get());
    // nft puts the userdata after the expressions (libnftnl would put it before).
    if (userdata_) {
      mnl_attr_put(nlh, NFTA_RULE_USERDATA, nftnl_udata_buf_len(userdata_.get()),
                   nftnl_udata_buf_data(userdata_.get()));
    }
  }

 private:
  Owned<nftnl_rule> rule_;
  Owned<nftnl_udata_buf> userdata_;
};

RuleEncoder::RuleEncoder(const std::string& table, const std::string& chain,
                         const NamedSetIds& named, std::uint32_t& next_set_id, std::string what)
    : named_(named),
      builder_(std::make_unique<Builder>(table, chain)),
      next_set_id_(next_set_id),
      what_(std::move(what)) {}

RuleEncoder::~RuleEncoder() = default;

void RuleEncoder::build_payload(nlmsghdr* nlh) const { builder_->build_payload(nlh); }

SetDefinition& RuleEncoder::new_set(const char* name, std::string what) {
  SetDefinition& set = sets_.emplace_back();
  set.name = name;
  set.id = next_set_id_++;
  set.what = std::move(what) + " of " + what_;
  set.flags = NFT_SET_ANONYMOUS | NFT_SET_CONSTANT;
  return set;
}

void RuleEncoder::encode(const ir::Rule& rule) {
  const ir::L4ProtoIn* protocols = nullptr;
  for (std::size_t i = 0; i < rule.matches.size(); ++i) {
    if (const auto* l4 = std::get_if<ir::L4ProtoIn>(&rule.matches[i])) protocols = l4;
    encode_match(rule.matches, i);
  }
  if (rule.counter) builder_->add("counter");
  if (rule.log) {
    if (rule.log->prefix.size() > 127 || rule.log->prefix.find('\0') != std::string::npos) {
      throw std::invalid_argument("invalid log prefix '" + rule.log->prefix + "'");
    }
    nftnl_expr* log = builder_->add("log");
    nftnl_expr_set_str(log, NFTNL_EXPR_LOG_PREFIX, rule.log->prefix.c_str());
    if (rule.log->group) nftnl_expr_set_u16(log, NFTNL_EXPR_LOG_GROUP, *rule.log->group);
  }
  encode_verdict(rule, protocols);
  if (!rule.comment.empty()) builder_->set_comment(rule.comment);
}

void RuleEncoder::encode_match(const std::vector<ir::Match>& matches, std::size_t& index) {
  const ir::Match& match = matches[index];
  Builder& b = *builder_;
  // The port field belongs to the latest protocol match before it.
  auto latest_protocol = [&]() {
    const ir::L4ProtoIn* latest = nullptr;
    for (std::size_t j = index; j-- > 0 && latest == nullptr;) {
      latest = std::get_if<ir::L4ProtoIn>(&matches[j]);
    }
    if (latest == nullptr) throw std::invalid_argument("a port match must follow a protocol match");
    return latest;
  };
  // One overload per kind of match: a new kind does not compile until it is encoded here.
  std::visit(
      overloaded{
          [&](const ir::NfProto& family) { require_family(family.family == ir::Family::ipv6); },
          [&](const ir::LoopbackInterface& loopback) {
            // Loopback is ifindex 1 in every namespace, so nft resolves "lo" to a constant.
            b.meta_load(loopback.outgoing ? NFT_META_OIF : NFT_META_IIF);
            const std::uint32_t loopback_index = 1;
            b.compare(NFT_CMP_EQ, &loopback_index, sizeof loopback_index);
          },
          [&](const ir::InterfaceNameIn& names) {
            if (names.names.empty()) throw std::invalid_argument("empty interface match");
            const std::uint32_t key = names.outgoing ? NFT_META_OIFNAME : NFT_META_IIFNAME;
            b.meta_load(key);
            const std::string& first = names.names.front();
            if (names.names.size() == 1 && !first.empty() && first.back() == '*') {
              // A wildcard compares only the bytes before the '*', without the NUL.
              const std::string prefix = first.substr(0, first.size() - 1);
              ifname_key(prefix.empty() ? first : prefix);  // validates
              if (prefix.empty() || prefix.find('*') != std::string::npos) {
                throw std::invalid_argument("invalid interface wildcard '" + first + "'");
              }
              b.compare(names.negate ? NFT_CMP_NEQ : NFT_CMP_EQ, prefix.data(),
                        static_cast<std::uint32_t>(prefix.size()));
            } else if (names.names.size() == 1) {
              const auto name = ifname_key(first);
              b.compare(names.negate ? NFT_CMP_NEQ : NFT_CMP_EQ, name.data(), kIfnameLength);
            } else {
              SetDefinition& set = new_set(kAnonymousSetName, "interface set");
              for (const std::string& name : names.names) {
                if (name.find('*') != std::string::npos) {
                  throw std::invalid_argument("a wildcard interface name must stand alone");
                }
                set.elements.push_back(plain_element(ifname_key(name).data(), kIfnameLength));
              }
              set.key_type = kTypeIfname;
              set.key_len = kIfnameLength;
              set.size = static_cast<std::uint32_t>(names.names.size());
              set.udata = meta_key_udata(kByteorderHostEndian, key);
              b.lookup(set, false, names.negate);
            }
          },
          [&](const ir::CtState& state) {
            if (state.mask == 0) throw std::invalid_argument("empty ct state match");
            nftnl_expr* ct = b.add("ct");
            nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
            nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_DREG, NFT_REG_1);
            b.any_bit(&state.mask, sizeof state.mask);
          },
          [&](const ir::CtStatusDnat&) {
            nftnl_expr* ct = b.add("ct");
            nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_KEY, NFT_CT_STATUS);
            nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_DREG, NFT_REG_1);
            b.any_bit(&kCtStatusDnat, sizeof kCtStatusDnat);
          },
          [&](const ir::L4ProtoIn& protocols) {
            if (protocols.protocols.empty()) throw std::invalid_argument("empty protocol match");
            b.meta_load(NFT_META_L4PROTO);
            if (!protocols.set.empty()) {
              protocol_context_.reset();
              const ir::NamedSet& named = named_.set_of(protocols.set);
              if (named.key != ir::SetKey::inet_proto || protocols.protocols.size() < 2)
                throw std::invalid_argument("set " + protocols.set + " does not hold protocols");
              SetDefinition target;
              target.name = protocols.set;
              target.id = named_.id_of(protocols.set);
              b.lookup(target, false);
            } else if (protocols.protocols.size() == 1) {
              const auto protocol = static_cast<std::uint8_t>(protocols.protocols.front());
              b.compare(NFT_CMP_EQ, &protocol, sizeof protocol);
              protocol_context_ = protocol;
            } else {
              protocol_context_.reset();
              SetDefinition& set = new_set(kAnonymousSetName, "protocol set");
              for (ir::L4Proto protocol : protocols.protocols) {
                const auto key = static_cast<std::uint8_t>(protocol);
                set.elements.push_back(plain_element(&key, 1));
              }
              set.key_type = kTypeInetProto;
              set.key_len = 1;
              set.size = static_cast<std::uint32_t>(protocols.protocols.size());
              set.udata = meta_key_udata(kByteorderHostEndian, NFT_META_L4PROTO);
              b.lookup(set, false);
            }
          },
          [&](const ir::DestPortIn& dports) {
            encode_ports(dports.ports, false, latest_protocol());
          },
          [&](const ir::SourcePortIn& sports) {
            encode_ports(sports.ports, true, latest_protocol());
          },
          [&](const ir::CtOriginalDestPort& original) {
            bool after_protocol = false;
            for (std::size_t j = 0; j < index && !after_protocol; ++j)
              after_protocol = std::holds_alternative<ir::L4ProtoIn>(matches[j]);
            if (!after_protocol)
              throw std::invalid_argument("a port match must follow a protocol match");
            const ir::PortRange& range = original.ports;
            if (range.last < range.first)
              throw std::invalid_argument("port range ends before it starts");
            b.ct_original_load(NFT_CT_PROTO_DST);
            const auto first = port_bytes(range.first);
            const auto last = port_bytes(range.last);
            if (range.first == range.last) {
              b.compare(NFT_CMP_EQ, first.data(), 2);
            } else {
              b.compare(NFT_CMP_GTE, first.data(), 2);
              b.compare(NFT_CMP_LTE, last.data(), 2);
            }
          },
          [&](const ir::CtOriginalAddressIn& original_address) {
            encode_original_address(original_address);
          },
          [&](const ir::AddressIn& addresses) { encode_address(addresses); },
          [&](const ir::AddressInSet& lookup) {
            const ir::NamedSet& named = named_.set_of(lookup.set);
            const bool v4 = lookup.family == ir::Family::ipv4;
            if (named.key != (v4 ? ir::SetKey::ipv4_addr : ir::SetKey::ipv6_addr)) {
              throw std::invalid_argument("set " + lookup.set +
                                          " does not hold addresses of that family");
            }
            require_family(!v4);
            b.payload_load(NFT_PAYLOAD_NETWORK_HEADER,
                           v4 ? (lookup.destination ? 16 : 12) : (lookup.destination ? 24 : 8),
                           v4 ? 4 : 16);
            SetDefinition target;
            target.name = lookup.set;
            target.id = named_.id_of(lookup.set);
            b.lookup(target, false);
          },
          [&](const ir::IcmpTypeIn& icmp) { encode_icmp(icmp); },
          [&](const ir::SocketCgroup& cgroup) {
            if (named_.set_of(cgroup.set).key != ir::SetKey::cgroupv2) {
              throw std::invalid_argument("set " + cgroup.set + " does not hold cgroups");
            }
            nftnl_expr* socket = b.add("socket");
            nftnl_expr_set_u32(socket, NFTNL_EXPR_SOCKET_KEY, NFT_SOCKET_CGROUPV2);
            nftnl_expr_set_u32(socket, NFTNL_EXPR_SOCKET_DREG, NFT_REG_1);
            nftnl_expr_set_u32(socket, NFTNL_EXPR_SOCKET_LEVEL, cgroup.level);
            SetDefinition target;
            target.name = cgroup.set;
            target.id = named_.id_of(cgroup.set);
            b.lookup(target, false);
          },
          [&](const ir::SocketTransparent& transparent) {
            nftnl_expr* socket = b.add("socket");
            nftnl_expr_set_u32(socket, NFTNL_EXPR_SOCKET_KEY, NFT_SOCKET_TRANSPARENT);
            nftnl_expr_set_u32(socket, NFTNL_EXPR_SOCKET_DREG, NFT_REG_1);
            const std::uint32_t value = transparent.value ? 1 : 0;
            b.compare(NFT_CMP_EQ, &value, sizeof value);
          },
          [&](const ir::SocketUid& uid) {
            b.meta_load(NFT_META_SKUID);
            b.compare(uid.negate ? NFT_CMP_NEQ : NFT_CMP_EQ, &uid.uid, sizeof uid.uid);
          },
          [&](const ir::TcpSyn&) {
            require_protocol(ir::L4Proto::tcp);
            b.payload_load(NFT_PAYLOAD_TRANSPORT_HEADER, kTcpFlagsOffset, 1);
            b.any_bit(&kTcpFlagSyn, sizeof kTcpFlagSyn);
          },
          [&](const ir::Limit& limit) { b.limit(limit, b.add("limit")); },
          [&](const ir::MeterOver& meter) {
            if (!meter.limit.over)
              throw std::invalid_argument("a meter matches only over its rate");
            const ir::NamedSet& named = named_.set_of(meter.set);
            const bool v4 = meter.family == ir::Family::ipv4;
            if (named.key != (v4 ? ir::SetKey::ipv4_addr : ir::SetKey::ipv6_addr)) {
              throw std::invalid_argument("meter set " + meter.set + " does not hold that family");
            }
            require_family(!v4);
            b.payload_load(NFT_PAYLOAD_NETWORK_HEADER, v4 ? 12 : 8, v4 ? 4 : 16);
            nftnl_expr* dynset = b.add("dynset");
            nftnl_expr_set_u32(dynset, NFTNL_EXPR_DYNSET_SREG_KEY, NFT_REG_1);
            nftnl_expr_set_str(dynset, NFTNL_EXPR_DYNSET_SET_NAME, meter.set.c_str());
            nftnl_expr_set_u32(dynset, NFTNL_EXPR_DYNSET_SET_ID, named_.id_of(meter.set));
            nftnl_expr_set_u32(dynset, NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
            auto limit_expr = owned(nftnl_expr_alloc("limit"));
            b.limit(meter.limit, limit_expr.get());
            // The dynset takes ownership of its embedded expression.
            nftnl_expr_set(dynset, NFTNL_EXPR_DYNSET_EXPR, limit_expr.release(), 0);
          }},
      match);
}

// nft adds a dependency only when the rule does not already establish it: after
// `ip saddr ...`, `ip daddr ...` needs no second `meta nfproto ipv4`, after `meta l4proto
// tcp`, `tcp flags` needs no second `meta l4proto tcp`.
void RuleEncoder::require_family(bool v6) {
  const std::uint8_t nfproto = v6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
  if (family_context_ == nfproto) return;
  builder_->meta_load(NFT_META_NFPROTO);
  builder_->compare(NFT_CMP_EQ, &nfproto, sizeof nfproto);
  family_context_ = nfproto;
}

void RuleEncoder::require_protocol(ir::L4Proto protocol) {
  const auto number = static_cast<std::uint8_t>(protocol);
  if (protocol_context_ == number) return;
  builder_->meta_load(NFT_META_L4PROTO);
  builder_->compare(NFT_CMP_EQ, &number, sizeof number);
  protocol_context_ = number;
}

void RuleEncoder::encode_ports(const std::vector<ir::PortRange>& ports, bool source,
                               const ir::L4ProtoIn* protocols) {
  if (ports.empty()) throw std::invalid_argument("empty port match");
  const std::uint32_t desc = port_protocol_desc(*protocols);
  builder_->payload_load(NFT_PAYLOAD_TRANSPORT_HEADER, source ? 0 : 2, 2);
  for (const ir::PortRange& range : ports) {
    if (range.last < range.first) throw std::invalid_argument("port range ends before it starts");
  }
  if (ports.size() == 1) {
    const auto first = port_bytes(ports.front().first);
    const auto last = port_bytes(ports.front().last);
    if (ports.front().first == ports.front().last) {
      builder_->compare(NFT_CMP_EQ, first.data(), 2);
    } else {
      // Network byte order compares correctly as big-endian bytes (the kernel's cmp
      // uses memcmp for gte/lte).
      builder_->compare(NFT_CMP_GTE, first.data(), 2);
      builder_->compare(NFT_CMP_LTE, last.data(), 2);
    }
    return;
  }
  bool has_range = false;
  for (const ir::PortRange& range : ports) has_range |= range.first != range.last;
  SetDefinition& set = new_set(kAnonymousSetName, "port set");
  std::uint32_t size = 0;
  for (std::size_t i = 0; i < ports.size(); ++i) {
    const auto first = port_bytes(ports[i].first);
    const auto last = port_bytes(ports[i].last);
    if (has_range) {
      size += add_interval(set.elements, first.data(), last.data(), 2, i == 0);
    } else {
      set.elements.push_back(plain_element(first.data(), 2));
      ++size;
    }
  }
  if (has_range) set.flags |= NFT_SET_INTERVAL;
  set.key_type = kTypeInetService;
  set.key_len = 2;
  set.size = size;
  set.udata = payload_key_udata(has_range, desc, source ? kSportField : kDportField);
  builder_->lookup(set, false);
}

void RuleEncoder::encode_address(const ir::AddressIn& match) {
  const bool v4 = match.family == ir::Family::ipv4;
  // In an inet table nft first checks the packet's family (`meta nfproto ipv4`).
  if (!match.ranges.empty()) require_family(!v4);
  const std::uint32_t offset = v4 ? (match.destination ? 16 : 12) : (match.destination ? 24 : 8);
  encode_address_ranges(
      match.family, match.ranges,
      // A byte-aligned prefix: nft loads and compares only the network bytes.
      [&](std::uint32_t len) { builder_->payload_load(NFT_PAYLOAD_NETWORK_HEADER, offset, len); },
      [&](bool has_range) {
        const std::uint32_t field = v4 ? (match.destination ? kIpDaddrField : kIpSaddrField)
                                       : (match.destination ? kIp6DaddrField : kIp6SaddrField);
        return payload_key_udata(has_range, v4 ? kProtoDescIp : kProtoDescIp6, field);
      });
}

// nft adds no `meta nfproto` before `ct original ip daddr`, and a ct load is always of the
// whole address (the compares of a byte-aligned prefix still look at its bytes alone).
void RuleEncoder::encode_original_address(const ir::CtOriginalAddressIn& match) {
  const std::uint32_t key = match.family == ir::Family::ipv4 ? NFT_CT_DST_IP : NFT_CT_DST_IP6;
  encode_address_ranges(
      match.family, match.ranges, [&](std::uint32_t) { builder_->ct_original_load(key); },
      [&](bool has_range) { return ct_key_udata(has_range, key); });
}

template <typename Load, typename Udata>
void RuleEncoder::encode_address_ranges(ir::Family family,
                                        const std::vector<ir::AddressRange>& ranges, Load load,
                                        Udata udata) {
  if (ranges.empty()) throw std::invalid_argument("empty address match");
  const bool v4 = family == ir::Family::ipv4;
  const std::uint32_t len = ir::address_length(family);
  for (const ir::AddressRange& range : ranges) {
    if (range.first.family != family || range.last.family != family || range.last < range.first) {
      throw std::invalid_argument("address range of the wrong family or reversed");
    }
  }
  Builder& b = *builder_;
  if (ranges.size() == 1) {
    const ir::AddressRange& range = ranges.front();
    const auto prefix = ir::prefix_length(range);
    if (prefix && *prefix == len * 8) {
      load(len);
      b.compare(NFT_CMP_EQ, range.first.bytes.data(), len);
    } else if (prefix && *prefix % 8 == 0 && *prefix > 0) {
      load(*prefix / 8);
      b.compare(NFT_CMP_EQ, range.first.bytes.data(), *prefix / 8);
    } else if (prefix) {
      load(len);
      std::array<std::uint8_t, 16> mask{};
      for (std::uint32_t bit = 0; bit < *prefix; ++bit) {
        mask[bit / 8] = static_cast<std::uint8_t>(mask[bit / 8] | (0x80u >> (bit % 8)));
      }
      const std::array<std::uint8_t, 16> zero{};
      nftnl_expr* bitwise = b.add("bitwise");
      nftnl_expr_set_u32(bitwise, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
      nftnl_expr_set_u32(bitwise, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
      nftnl_expr_set_u32(bitwise, NFTNL_EXPR_BITWISE_LEN, len);
      nftnl_expr_set(bitwise, NFTNL_EXPR_BITWISE_MASK, mask.data(), len);
      nftnl_expr_set(bitwise, NFTNL_EXPR_BITWISE_XOR, zero.data(), len);
      b.compare(NFT_CMP_EQ, range.first.bytes.data(), len);
    } else {
      load(len);
      b.compare(NFT_CMP_GTE, range.first.bytes.data(), len);
      b.compare(NFT_CMP_LTE, range.last.bytes.data(), len);
    }
    return;
  }

  load(len);
  bool has_range = false;
  for (const ir::AddressRange& range : ranges) has_range |= range.first != range.last;
  SetDefinition& set = new_set(kAnonymousSetName, "address set");
  std::uint32_t size = 0;
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    const ir::AddressRange& range = ranges[i];
    if (has_range) {
      size += add_interval(set.elements, range.first.bytes.data(), range.last.bytes.data(), len,
                           i == 0);
    } else {
      set.elements.push_back(plain_element(range.first.bytes.data(), len));
      ++size;
    }
  }
  if (has_range) set.flags |= NFT_SET_INTERVAL;
  set.key_type = v4 ? kTypeIpAddr : kTypeIp6Addr;
  set.key_len = len;
  set.size = size;
  set.udata = udata(has_range);
  b.lookup(set, false);
}

void RuleEncoder::encode_icmp(const ir::IcmpTypeIn& match) {
  if (match.types.empty()) throw std::invalid_argument("empty ICMP type match");
  Builder& b = *builder_;
  // nft's dependencies for `icmp type` in an inet table: the family, then the protocol;
  // after `meta l4proto icmp` neither (the protocol implies the family).
  const ir::L4Proto protocol = match.v6 ? ir::L4Proto::icmpv6 : ir::L4Proto::icmp;
  if (protocol_context_ != static_cast<std::uint8_t>(protocol)) require_family(match.v6);
  require_protocol(protocol);
  b.payload_load(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
  if (match.types.size() == 1) {
    b.compare(NFT_CMP_EQ, &match.types.front(), 1);
    return;
  }
  SetDefinition& set = new_set(kAnonymousSetName, "ICMP type set");
  for (std::uint8_t type : match.types) set.elements.push_back(plain_element(&type, 1));
  set.key_type = match.v6 ? kTypeIcmp6Type : kTypeIcmpType;
  set.key_len = 1;
  set.size = static_cast<std::uint32_t>(match.types.size());
  set.udata = payload_key_udata(false, match.v6 ? kProtoDescIcmp6 : kProtoDescIcmp, kIcmpTypeField);
  b.lookup(set, false);
}

void RuleEncoder::encode_vmap(const ir::Verdict& verdict) {
  if (verdict.vmap.empty()) throw std::invalid_argument("empty verdict map");
  const std::uint32_t key = verdict.vmap_outgoing ? NFT_META_OIFNAME : NFT_META_IIFNAME;
  builder_->meta_load(key);
  SetDefinition& map = new_set(kAnonymousMapName, "verdict map");
  map.flags |= NFT_SET_MAP;
  for (const ir::VmapEntry& entry : verdict.vmap) {
    SetElement element = plain_element(ifname_key(entry.interface).data(), kIfnameLength);
    ElementVerdict data{verdict_code(entry.kind), {}, {}};
    if (entry.kind == ir::VerdictKind::jump || entry.kind == ir::VerdictKind::go_to) {
      check_name(entry.chain, "verdict map target chain");
      data.chain = entry.chain;
    }
    map.verdicts.push_back(std::move(data));
    element.verdict = static_cast<std::uint32_t>(map.verdicts.size());
    map.elements.push_back(element);
  }
  map.key_type = kTypeIfname;
  map.key_len = kIfnameLength;
  map.data_type = NFT_DATA_VERDICT;
  map.size = static_cast<std::uint32_t>(verdict.vmap.size());
  // What nft 1.0.6 records for an implicit verdict map: the byte orders and a verdict
  // data expression, but no typeof of the key (the key prints by its datatype).
  auto udata = udata_buffer();
  put_udata(udata.get(), NFTNL_UDATA_SET_KEYBYTEORDER, kByteorderHostEndian);
  put_udata(udata.get(), NFTNL_UDATA_SET_DATABYTEORDER, 0);
  nftnl_udata* outer = nftnl_udata_nest_start(udata.get(), NFTNL_UDATA_SET_DATA_TYPEOF);
  put_udata(udata.get(), NFTNL_UDATA_SET_TYPEOF_EXPR, kExprVerdict);
  nftnl_udata_nest_end(udata.get(),
                       nftnl_udata_nest_start(udata.get(), NFTNL_UDATA_SET_TYPEOF_DATA));
  nftnl_udata_nest_end(udata.get(), outer);
  put_udata(udata.get(), NFTNL_UDATA_SET_DATA_INTERVAL, 0);
  map.udata = udata_bytes(*udata);
  builder_->lookup(map, true);
}

// `ip saddr . tcp dport vmap @input/m1`: nft first adds the dependencies of all key
// fields, then loads each field into the registers after the previous one (a 2-byte
// port takes a whole 32-bit register), and looks the concatenation up.
void RuleEncoder::encode_map_lookup(const ir::Verdict& verdict) {
  check_name(verdict.map, "map");
  const ir::RuleMap& map = named_.map_of(verdict.map);
  const bool loads_key = verdict.map_key.size() == map.key.size() &&
                         std::equal(verdict.map_key.begin(), verdict.map_key.end(), map.key.begin(),
                                    ir::loads_key_field);
  if (verdict.map_key.empty() || !loads_key) {
    throw std::invalid_argument("the lookup of map " + verdict.map +
                                " does not load the map's key fields");
  }
  std::optional<ir::Family> family;
  for (ir::KeyField field : verdict.map_key) {
    const KeyFieldLayout layout = key_field_layout(field);
    if (layout.family && family && *layout.family != *family) {
      throw std::invalid_argument("map " + verdict.map +
                                  " has a key of both IPv4 and IPv6 addresses");
    }
    if (layout.family) {
      family = layout.family;
    } else if (protocol_context_ && *protocol_context_ != IPPROTO_TCP &&
               *protocol_context_ != IPPROTO_UDP && *protocol_context_ != IPPROTO_SCTP) {
      throw std::invalid_argument("a port key of map " + verdict.map + " needs tcp, udp or sctp");
    }
  }
  if (family) require_family(*family == ir::Family::ipv6);
  std::uint32_t word = 0;  // 32-bit registers used so far
  for (ir::KeyField field : verdict.map_key) {
    const KeyFieldLayout layout = key_field_layout(field);
    // nft names a register by its 128-bit number where one starts there (netlink_put_register).
    const std::uint32_t reg = word % 4 == 0 ? NFT_REG_1 + word / 4 : NFT_REG32_00 + word;
    if (layout.ct_key)
      builder_->ct_original_load(*layout.ct_key, reg);
    else
      builder_->payload_load(layout.base, layout.offset, layout.len, reg);
    word += (layout.len + 3) / 4;
  }
  if (word > 16)
    throw std::invalid_argument("map " + verdict.map + " has a key longer than 64 bytes");
  SetDefinition target;
  target.name = verdict.map;
  target.id = named_.map_id_of(verdict.map);
  builder_->lookup(target, true);
}

void RuleEncoder::encode_verdict(const ir::Rule& rule, const ir::L4ProtoIn* protocols) {
  const ir::Verdict& verdict = rule.verdict;
  Builder& b = *builder_;
  switch (verdict.kind) {
    case ir::VerdictKind::none:
      if (rule.matches.empty() && !rule.counter && !rule.log) {
        throw std::invalid_argument("a rule that neither matches nor acts");
      }
      return;
    case ir::VerdictKind::reject_tcp_reset:
    case ir::VerdictKind::reject_icmpx_port_unreachable: {
      const bool tcp = verdict.kind == ir::VerdictKind::reject_tcp_reset;
      nftnl_expr* reject = b.add("reject");
      nftnl_expr_set_u32(reject, NFTNL_EXPR_REJECT_TYPE,
                         tcp ? NFT_REJECT_TCP_RST : NFT_REJECT_ICMPX_UNREACH);
      nftnl_expr_set_u8(reject, NFTNL_EXPR_REJECT_CODE, tcp ? 0 : NFT_REJECT_ICMPX_PORT_UNREACH);
      return;
    }
    case ir::VerdictKind::masquerade:
      b.add("masq");
      return;
    case ir::VerdictKind::dnat: {
      if (!verdict.nat_address) throw std::invalid_argument("dnat without an address");
      const ir::Address& address = *verdict.nat_address;
      const bool v4 = address.family == ir::Family::ipv4;
      b.immediate_data(NFT_REG_1, address.bytes.data(), ir::address_length(address.family));
      if (verdict.nat_port) {
        // nft only maps a port after a match that names the transport protocol.
        if (protocols == nullptr || protocols->protocols.empty()) {
          throw std::invalid_argument("dnat to a port needs a protocol match");
        }
        const auto port = port_bytes(*verdict.nat_port);
        b.immediate_data(NFT_REG_2, port.data(), 2);
      }
      nftnl_expr* nat = b.add("nat");
      nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
      nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_FAMILY, v4 ? NFPROTO_IPV4 : NFPROTO_IPV6);
      nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
      if (verdict.nat_port) {
        nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_REG_PROTO_MIN, NFT_REG_2);
        nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
      }
      return;
    }
    case ir::VerdictKind::clamp_mss: {
      // rt mtu (host order) -> network order -> the MSS option's 2-byte value.
      nftnl_expr* rt = b.add("rt");
      nftnl_expr_set_u32(rt, NFTNL_EXPR_RT_KEY, NFT_RT_TCPMSS);
      nftnl_expr_set_u32(rt, NFTNL_EXPR_RT_DREG, NFT_REG_1);
      nftnl_expr* byteorder = b.add("byteorder");
      nftnl_expr_set_u32(byteorder, NFTNL_EXPR_BYTEORDER_SREG, NFT_REG_1);
      nftnl_expr_set_u32(byteorder, NFTNL_EXPR_BYTEORDER_DREG, NFT_REG_1);
      nftnl_expr_set_u32(byteorder, NFTNL_EXPR_BYTEORDER_OP, NFT_BYTEORDER_HTON);
      nftnl_expr_set_u32(byteorder, NFTNL_EXPR_BYTEORDER_LEN, 2);
      nftnl_expr_set_u32(byteorder, NFTNL_EXPR_BYTEORDER_SIZE, 2);
      nftnl_expr* exthdr = b.add("exthdr");
      nftnl_expr_set_u32(exthdr, NFTNL_EXPR_EXTHDR_SREG, NFT_REG_1);
      nftnl_expr_set_u8(exthdr, NFTNL_EXPR_EXTHDR_TYPE, kTcpOptionMaxseg);
      nftnl_expr_set_u32(exthdr, NFTNL_EXPR_EXTHDR_OFFSET, 2);
      nftnl_expr_set_u32(exthdr, NFTNL_EXPR_EXTHDR_LEN, 2);
      nftnl_expr_set_u32(exthdr, NFTNL_EXPR_EXTHDR_OP, NFT_EXTHDR_OP_TCPOPT);
      return;
    }
    case ir::VerdictKind::vmap:
      encode_vmap(verdict);
      return;
    case ir::VerdictKind::map_lookup:
      encode_map_lookup(verdict);
      return;
    case ir::VerdictKind::accept:
    case ir::VerdictKind::drop:
    case ir::VerdictKind::return_:
    case ir::VerdictKind::jump:
    case ir::VerdictKind::go_to: {
      nftnl_expr* immediate = b.add("immediate");
      nftnl_expr_set_u32(immediate, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
      nftnl_expr_set_u32(immediate, NFTNL_EXPR_IMM_VERDICT,
                         static_cast<std::uint32_t>(verdict_code(verdict.kind)));
      if (verdict.kind == ir::VerdictKind::jump || verdict.kind == ir::VerdictKind::go_to) {
        check_name(verdict.chain, "jump target chain");
        nftnl_expr_set_str(immediate, NFTNL_EXPR_IMM_CHAIN, verdict.chain.c_str());
      }
      return;
    }
  }
  throw std::invalid_argument("unknown verdict");
}

}  // namespace portier::encode
