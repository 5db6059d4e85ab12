#include "encode_batch.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <new>
#include <stdexcept>
#include <utility>
#include <variant>

namespace portier {
namespace {

struct NftnlDeleter {
  void operator()(nftnl_table* p) const { nftnl_table_free(p); }
  void operator()(nftnl_chain* p) const { nftnl_chain_free(p); }
  void operator()(nftnl_set* p) const { nftnl_set_free(p); }
  void operator()(nftnl_set_elem* p) const { nftnl_set_elem_free(p); }
  void operator()(nftnl_set_elems_iter* p) const { nftnl_set_elems_iter_destroy(p); }
  void operator()(nftnl_rule* p) const { nftnl_rule_free(p); }
  void operator()(nftnl_expr* p) const { nftnl_expr_free(p); }
  void operator()(nftnl_udata_buf* p) const { nftnl_udata_buf_free(p); }
};
template <typename T>
using Owned = std::unique_ptr<T, NftnlDeleter>;

template <typename T>
Owned<T> owned(T* allocated) {
  if (allocated == nullptr) throw std::bad_alloc();
  return Owned<T>(allocated);
}

// Messages are built in a page of this size, as nft 1.0.6 sizes its batch pages; a page
// may overrun by one maximal message (a set element list attribute holds at most
// UINT16_MAX bytes).
std::size_t batch_page_size() { return static_cast<std::size_t>(getpagesize()) * 32; }
std::size_t batch_page_overrun() { return UINT16_MAX + static_cast<std::size_t>(getpagesize()); }

// nft's own numbers for the set key datatypes, from its datatype table; the kernel only
// stores them, nft reads them back to print the elements.
constexpr std::uint32_t kTypeInetProto = 12;
constexpr std::uint32_t kTypeInetService = 13;

// Values nft writes into set userdata (NFTNL_UDATA_SET_*) so that `nft list` can
// reconstruct the key expression of the set; see nft's src/rule.c set udata builder.
constexpr std::uint32_t kByteorderHostEndian = 1;
constexpr std::uint32_t kByteorderBigEndian = 2;
constexpr std::uint32_t kExprPayload = 7;  // nft's enum expr_types
constexpr std::uint32_t kExprMeta = 9;
constexpr std::uint32_t kProtoDescUdp = 6;  // nft's enum proto_desc_id
constexpr std::uint32_t kProtoDescTcp = 8;
constexpr std::uint32_t kProtoDescTh = 11;
constexpr std::uint32_t kDportField = 2;  // TCPHDR_DPORT == UDPHDR_DPORT == THDR_DPORT
constexpr std::uint8_t kUdataPayloadDesc = 0;
constexpr std::uint8_t kUdataPayloadField = 1;
constexpr std::uint8_t kUdataMetaKey = 0;

constexpr const char* kAnonymousSetName = "__set%d";  // the kernel fills in %d

struct MnlBatchStopper {
  void operator()(mnl_nlmsg_batch* batch) const { mnl_nlmsg_batch_stop(batch); }
};

// Collects the messages of one transaction. libmnl's batch tells when a page is full; the
// page is zeroed before use because libmnl 1.0.4 leaves attribute padding unwritten, and
// the bytes must not depend on what the heap held before.
class BatchWriter {
 public:
  explicit BatchWriter(std::uint32_t first_seq)
      : page_(batch_page_size() + batch_page_overrun(), 0),
        batch_(mnl_nlmsg_batch_start(page_.data(), batch_page_size())),
        seq_(first_seq) {
    if (!batch_) throw std::bad_alloc();
    nftnl_batch_begin(current(), seq_);
    record(NFNL_MSG_BATCH_BEGIN, false, "batch begin");
    advance();
  }

  /// Header of the next NFT_MSG_* request; fill its payload, then call advance().
  /// A continuation shares the sequence number of the message before it, as nft does
  /// for the parts of one long element list.
  nlmsghdr* start(std::uint16_t nft_msg, std::uint16_t flags, std::string what,
                  bool continuation = false) {
    if (continuation) --seq_;
    nlmsghdr* nlh =
        nftnl_nlmsg_build_hdr(current(), nft_msg, NFPROTO_INET, flags | NLM_F_ACK, seq_);
    record(static_cast<std::uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | nft_msg), true,
           std::move(what));
    return nlh;
  }

  void advance() {
    if (mnl_nlmsg_batch_next(batch_.get())) return;
    // The message just built crossed the page limit: ship the page without it, and let
    // reset() move it to the front of the page.
    flush();
    mnl_nlmsg_batch_reset(batch_.get());
    const std::size_t kept = mnl_nlmsg_batch_size(batch_.get());
    std::fill(page_.begin() + static_cast<std::ptrdiff_t>(kept), page_.end(), 0);
  }

  EncodedBatch finish() && {
    nftnl_batch_end(current(), seq_);
    record(NFNL_MSG_BATCH_END, false, "batch end");
    advance();
    flush();
    result_.next_seq = seq_;
    return std::move(result_);
  }

 private:
  char* current() { return static_cast<char*>(mnl_nlmsg_batch_current(batch_.get())); }

  void flush() {
    const auto* head = static_cast<const std::uint8_t*>(mnl_nlmsg_batch_head(batch_.get()));
    result_.bytes.insert(result_.bytes.end(), head, head + mnl_nlmsg_batch_size(batch_.get()));
  }

  void record(std::uint16_t type, bool wants_ack, std::string what) {
    result_.messages.push_back({seq_, type, wants_ack, std::move(what)});
    ++seq_;
  }

  std::vector<char> page_;
  std::unique_ptr<mnl_nlmsg_batch, MnlBatchStopper> batch_;
  std::uint32_t seq_;
  EncodedBatch result_;
};

void check_name(const std::string& name, const char* what) {
  // NFT_NAME_MAXLEN counts the terminating NUL.
  if (name.empty() || name.size() >= NFT_NAME_MAXLEN || name.find('\0') != std::string::npos) {
    throw std::invalid_argument(std::string("invalid ") + what + " name '" + name + "'");
  }
}

Owned<nftnl_udata_buf> udata_buffer() { return owned(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN)); }

void put_udata(nftnl_udata_buf* buf, std::uint8_t type, std::uint32_t value) {
  if (!nftnl_udata_put_u32(buf, type, value)) throw std::length_error("set userdata overflow");
}

// An anonymous set with the elements one rule looks up, and what nft records about it.
struct AnonymousSet {
  std::uint32_t id = 0;
  std::string what;
  Owned<nftnl_set> definition;
  std::vector<Owned<nftnl_set_elem>> elements;
  std::string table;
};

class SetBuilder {
 public:
  SetBuilder(const std::string& table, std::uint32_t id, std::string what) {
    set_.id = id;
    set_.what = std::move(what);
    set_.definition = owned(nftnl_set_alloc());
    set_.table = table;
    nftnl_set* s = set_.definition.get();
    nftnl_set_set_str(s, NFTNL_SET_TABLE, table.c_str());
    nftnl_set_set_str(s, NFTNL_SET_NAME, kAnonymousSetName);
    nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
    nftnl_set_set_u32(s, NFTNL_SET_ID, id);
  }

  void add_element(const void* key, std::uint32_t key_len, bool interval_end, bool open_end) {
    auto element = owned(nftnl_set_elem_alloc());
    nftnl_set_elem_set(element.get(), NFTNL_SET_ELEM_KEY, key, key_len);
    if (interval_end)
      nftnl_set_elem_set_u32(element.get(), NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
    if (open_end) {
      // A range reaching the top of the key space has no end element; nft marks its
      // start so that it can print `60000-65535` back instead of a lone `60000`.
      auto udata = udata_buffer();
      put_udata(udata.get(), NFTNL_UDATA_SET_ELEM_FLAGS, NFTNL_SET_ELEM_F_INTERVAL_OPEN);
      nftnl_set_elem_set(element.get(), NFTNL_SET_ELEM_USERDATA, nftnl_udata_buf_data(udata.get()),
                         nftnl_udata_buf_len(udata.get()));
    }
    set_.elements.push_back(std::move(element));
  }

  AnonymousSet finish(std::uint32_t flags, std::uint32_t key_type, std::uint32_t key_len,
                      std::uint32_t size, const nftnl_udata_buf& udata) && {
    nftnl_set* s = set_.definition.get();
    nftnl_set_set_u32(s, NFTNL_SET_FLAGS, flags);
    nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, key_type);
    nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, key_len);
    nftnl_set_set_u32(s, NFTNL_SET_DESC_SIZE, size);
    nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(&udata),
                       nftnl_udata_buf_len(&udata));
    return std::move(set_);
  }

 private:
  AnonymousSet set_;
};

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

AnonymousSet protocol_set(const std::string& table, std::uint32_t id, const ir::L4ProtoIn& match,
                          std::string what) {
  SetBuilder builder(table, id, std::move(what));
  for (ir::L4Proto protocol : match.protocols) {
    const auto key = static_cast<std::uint8_t>(protocol);
    builder.add_element(&key, sizeof key, false, false);
  }
  auto udata = udata_buffer();
  put_udata(udata.get(), NFTNL_UDATA_SET_KEYBYTEORDER, kByteorderHostEndian);
  put_key_typeof(udata.get(), kExprMeta, {{kUdataMetaKey, NFT_META_L4PROTO}});
  return std::move(builder).finish(NFT_SET_ANONYMOUS | NFT_SET_CONSTANT, kTypeInetProto, 1,
                                   static_cast<std::uint32_t>(match.protocols.size()), *udata);
}

AnonymousSet port_set(const std::string& table, std::uint32_t id, const ir::DestPortIn& match,
                      std::uint32_t proto_desc, std::string what) {
  SetBuilder builder(table, id, std::move(what));
  auto put_port = [&builder](std::uint32_t port, bool interval_end, bool open_end) {
    const std::uint16_t key = htons(static_cast<std::uint16_t>(port));
    builder.add_element(&key, sizeof key, interval_end, open_end);
  };
  bool has_range = false;
  for (const ir::PortRange& range : match.ports) has_range |= range.first != range.last;

  std::uint32_t size = 0;
  std::uint32_t flags = NFT_SET_ANONYMOUS | NFT_SET_CONSTANT;
  if (!has_range) {
    for (const ir::PortRange& range : match.ports) put_port(range.first, false, false);
    size = static_cast<std::uint32_t>(match.ports.size());
  } else {
    // The kernel's interval sets (rbtree) store boundaries: a start element opens a
    // range, an INTERVAL_END element one past its end closes it. nft also closes the
    // gap below the first range with an end element at 0, and counts 2 per range (plus
    // that one) as the size hint even when the last range runs to 65535 and so has no
    // end element.
    flags |= NFT_SET_INTERVAL;
    if (match.ports.front().first != 0) {
      put_port(0, true, false);
      ++size;
    }
    for (const ir::PortRange& range : match.ports) {
      const bool open_end = range.last == UINT16_MAX;
      put_port(range.first, false, open_end);
      if (!open_end) put_port(range.last + 1u, true, false);
      size += 2;
    }
  }

  auto udata = udata_buffer();
  put_udata(udata.get(), NFTNL_UDATA_SET_KEYBYTEORDER, kByteorderBigEndian);
  if (has_range) put_udata(udata.get(), NFTNL_UDATA_SET_MERGE_ELEMENTS, 1);
  put_key_typeof(udata.get(), kExprPayload,
                 {{kUdataPayloadDesc, proto_desc}, {kUdataPayloadField, kDportField}});
  return std::move(builder).finish(flags, kTypeInetService, 2, size, *udata);
}

class RuleBuilder {
 public:
  RuleBuilder(const std::string& table, const std::string& chain)
      : rule_(owned(nftnl_rule_alloc())) {
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

  void compare(std::uint32_t op, const void* data, std::uint32_t len) {
    nftnl_expr* e = add("cmp");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
    nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
  }

  void lookup(const AnonymousSet& set) {
    nftnl_expr* e = add("lookup");
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
    nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, kAnonymousSetName);
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set.id);
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

std::uint32_t port_set_protocol_desc(const ir::L4ProtoIn& protocols) {
  if (protocols.protocols.size() != 1) return kProtoDescTh;
  return protocols.protocols.front() == ir::L4Proto::tcp ? kProtoDescTcp : kProtoDescUdp;
}

// Expressions in the order nft's linearizer emits them for the rendered rule text.
class RuleEncoder {
 public:
  RuleEncoder(const ir::Ruleset& ruleset, const ir::Chain& chain, std::uint32_t& next_set_id,
              std::string what)
      : table_(ruleset.table),
        builder_(ruleset.table, chain.name),
        next_set_id_(next_set_id),
        what_(std::move(what)) {}

  void encode(const ir::Rule& rule) {
    for (std::size_t i = 0; i < rule.matches.size(); ++i) {
      const ir::Match& match = rule.matches[i];
      if (const auto* loopback = std::get_if<ir::LoopbackInterface>(&match)) {
        // Loopback is ifindex 1 in every namespace, so nft resolves "lo" to a constant.
        builder_.meta_load(loopback->outgoing ? NFT_META_OIF : NFT_META_IIF);
        const std::uint32_t loopback_index = 1;
        builder_.compare(NFT_CMP_EQ, &loopback_index, sizeof loopback_index);
      } else if (const auto* state = std::get_if<ir::CtState>(&match)) {
        encode_ct_state(*state);
      } else if (const auto* protocols = std::get_if<ir::L4ProtoIn>(&match)) {
        encode_protocols(*protocols);
        if (i + 1 < rule.matches.size()) {
          if (const auto* ports = std::get_if<ir::DestPortIn>(&rule.matches[i + 1])) {
            encode_ports(*ports, port_set_protocol_desc(*protocols));
            ++i;
          }
        }
      } else {
        throw std::invalid_argument("a port match must directly follow a protocol match");
      }
    }
    if (rule.counter) builder_.add("counter");
    encode_verdict(rule.verdict);
    if (!rule.comment.empty()) builder_.set_comment(rule.comment);
  }

  std::vector<AnonymousSet>& sets() { return sets_; }
  void build_payload(nlmsghdr* nlh) const { builder_.build_payload(nlh); }

 private:
  void encode_ct_state(const ir::CtState& state) {
    if (state.mask == 0) throw std::invalid_argument("empty ct state match");
    nftnl_expr* ct = builder_.add("ct");
    nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
    nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_DREG, NFT_REG_1);
    // A flag type: nft matches "any of these bits" as (state & mask) != 0.
    nftnl_expr* bitwise = builder_.add("bitwise");
    const std::uint32_t zero = 0;
    nftnl_expr_set_u32(bitwise, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
    nftnl_expr_set_u32(bitwise, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
    nftnl_expr_set_u32(bitwise, NFTNL_EXPR_BITWISE_LEN, sizeof state.mask);
    nftnl_expr_set(bitwise, NFTNL_EXPR_BITWISE_MASK, &state.mask, sizeof state.mask);
    nftnl_expr_set(bitwise, NFTNL_EXPR_BITWISE_XOR, &zero, sizeof zero);
    builder_.compare(NFT_CMP_NEQ, &zero, sizeof zero);
  }

  void encode_protocols(const ir::L4ProtoIn& protocols) {
    if (protocols.protocols.empty()) throw std::invalid_argument("empty protocol match");
    builder_.meta_load(NFT_META_L4PROTO);
    if (protocols.protocols.size() == 1) {
      const auto protocol = static_cast<std::uint8_t>(protocols.protocols.front());
      builder_.compare(NFT_CMP_EQ, &protocol, sizeof protocol);
      return;
    }
    sets_.push_back(protocol_set(table_, next_set_id_++, protocols, "protocol set of " + what_));
    builder_.lookup(sets_.back());
  }

  void encode_ports(const ir::DestPortIn& ports, std::uint32_t proto_desc) {
    if (ports.ports.empty()) throw std::invalid_argument("empty port match");
    nftnl_expr* payload = builder_.add("payload");
    nftnl_expr_set_u32(payload, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
    nftnl_expr_set_u32(payload, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_TRANSPORT_HEADER);
    nftnl_expr_set_u32(payload, NFTNL_EXPR_PAYLOAD_OFFSET, 2);  // dport in TCP, UDP, ...
    nftnl_expr_set_u32(payload, NFTNL_EXPR_PAYLOAD_LEN, 2);
    if (ports.ports.size() == 1) {
      const ir::PortRange& range = ports.ports.front();
      const std::uint16_t first = htons(range.first);
      const std::uint16_t last = htons(range.last);
      if (range.first == range.last) {
        builder_.compare(NFT_CMP_EQ, &first, sizeof first);
      } else {
        // Network byte order compares correctly as big-endian bytes (the kernel's cmp
        // uses memcmp for gte/lte).
        builder_.compare(NFT_CMP_GTE, &first, sizeof first);
        builder_.compare(NFT_CMP_LTE, &last, sizeof last);
      }
      return;
    }
    sets_.push_back(port_set(table_, next_set_id_++, ports, proto_desc, "port set of " + what_));
    builder_.lookup(sets_.back());
  }

  void encode_verdict(const ir::Verdict& verdict) {
    if (verdict.kind == ir::VerdictKind::reject_tcp_reset ||
        verdict.kind == ir::VerdictKind::reject_icmpx_port_unreachable) {
      const bool tcp = verdict.kind == ir::VerdictKind::reject_tcp_reset;
      nftnl_expr* reject = builder_.add("reject");
      nftnl_expr_set_u32(reject, NFTNL_EXPR_REJECT_TYPE,
                         tcp ? NFT_REJECT_TCP_RST : NFT_REJECT_ICMPX_UNREACH);
      nftnl_expr_set_u8(reject, NFTNL_EXPR_REJECT_CODE, tcp ? 0 : NFT_REJECT_ICMPX_PORT_UNREACH);
      return;
    }
    nftnl_expr* immediate = builder_.add("immediate");
    nftnl_expr_set_u32(immediate, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    switch (verdict.kind) {
      case ir::VerdictKind::accept:
        nftnl_expr_set_u32(immediate, NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT);
        break;
      case ir::VerdictKind::drop:
        nftnl_expr_set_u32(immediate, NFTNL_EXPR_IMM_VERDICT, NF_DROP);
        break;
      case ir::VerdictKind::jump:
        check_name(verdict.chain, "jump target chain");
        nftnl_expr_set_u32(immediate, NFTNL_EXPR_IMM_VERDICT, static_cast<std::uint32_t>(NFT_JUMP));
        nftnl_expr_set_str(immediate, NFTNL_EXPR_IMM_CHAIN, verdict.chain.c_str());
        break;
      default:
        throw std::invalid_argument("unknown verdict");
    }
  }

  const std::string& table_;
  RuleBuilder builder_;
  std::uint32_t& next_set_id_;
  std::string what_;
  std::vector<AnonymousSet> sets_;
};

std::uint32_t hook_number(ir::Hook hook) {
  switch (hook) {
    case ir::Hook::input:
      return NF_INET_LOCAL_IN;
    case ir::Hook::output:
      return NF_INET_LOCAL_OUT;
    case ir::Hook::forward:
      return NF_INET_FORWARD;
  }
  throw std::invalid_argument("unknown hook");
}

void add_table(BatchWriter& writer, std::uint16_t nft_msg, std::uint16_t flags,
               const std::string& table, std::string what) {
  auto t = owned(nftnl_table_alloc());
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
  if (nft_msg == NFT_MSG_NEWTABLE) nftnl_table_set_u32(t.get(), NFTNL_TABLE_FLAGS, 0);
  nftnl_table_nlmsg_build_payload(writer.start(nft_msg, flags, std::move(what)), t.get());
  writer.advance();
}

void add_chain(BatchWriter& writer, const std::string& table, const ir::Chain& chain) {
  check_name(chain.name, "chain");
  auto c = owned(nftnl_chain_alloc());
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, chain.name.c_str());
  nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
  nlmsghdr* nlh = writer.start(NFT_MSG_NEWCHAIN, NLM_F_CREATE, "chain " + chain.name);
  nftnl_chain_nlmsg_build_payload(nlh, c.get());
  if (chain.base) {
    // nft appends the base chain attributes itself, in this order, after libnftnl's.
    mnl_attr_put_strz(nlh, NFTA_CHAIN_TYPE, "filter");
    mnl_attr_put_u32(nlh, NFTA_CHAIN_POLICY,
                     htonl(chain.base->policy_accept ? NF_ACCEPT : NF_DROP));
    nlattr* hook = mnl_attr_nest_start(nlh, NFTA_CHAIN_HOOK);
    mnl_attr_put_u32(nlh, NFTA_HOOK_HOOKNUM, htonl(hook_number(chain.base->hook)));
    mnl_attr_put_u32(nlh, NFTA_HOOK_PRIORITY,
                     htonl(static_cast<std::uint32_t>(chain.base->priority)));
    mnl_attr_nest_end(nlh, hook);
  }
  writer.advance();
}

void add_set(BatchWriter& writer, const AnonymousSet& set) {
  nftnl_set_nlmsg_build_payload(writer.start(NFT_MSG_NEWSET, NLM_F_CREATE, set.what),
                                set.definition.get());
  writer.advance();
  // The element list is one attribute, and attribute lengths are 16 bits: a long list is
  // split over several messages. Like nft, the parts share one sequence number and keep
  // counting the element nests, skipping the number of the element that did not fit.
  std::uint32_t nest_number = 0;
  std::size_t next = 0;
  bool continuation = false;
  do {
    nlmsghdr* nlh =
        writer.start(NFT_MSG_NEWSETELEM, NLM_F_CREATE, "elements of " + set.what, continuation);
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, set.table.c_str());
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, kAnonymousSetName);
    mnl_attr_put_u32(nlh, NFTA_SET_ELEM_LIST_SET_ID, htonl(set.id));
    nlattr* list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
    for (; next < set.elements.size(); ++next) {
      nlattr* element = mnl_attr_nest_start(nlh, static_cast<std::uint16_t>(++nest_number));
      nftnl_set_elem_nlmsg_build_payload(nlh, set.elements[next].get());
      mnl_attr_nest_end(nlh, element);
      const auto list_len = reinterpret_cast<const char*>(element) + element->nla_len -
                            reinterpret_cast<const char*>(list);
      if (list_len > UINT16_MAX) {
        nlh->nlmsg_len -= element->nla_len;
        break;
      }
    }
    mnl_attr_nest_end(nlh, list);
    writer.advance();
    continuation = true;
  } while (next < set.elements.size());
}

std::string rule_description(const ir::Rule& rule, std::size_t index, const ir::Chain& chain) {
  if (!rule.comment.empty()) return "rule \"" + rule.comment + "\" in chain " + chain.name;
  return "rule " + std::to_string(index + 1) + " in chain " + chain.name;
}

}  // namespace

const BatchMessage* EncodedBatch::find(std::uint32_t seq) const {
  if (messages.empty()) return nullptr;
  // Sequence numbers rise by one per message (by less across split element lists) and
  // may wrap around, so compare offsets from the first.
  const std::uint32_t first = messages.front().seq;
  auto found = std::lower_bound(messages.begin(), messages.end(), seq - first,
                                [first](const BatchMessage& message, std::uint32_t offset) {
                                  return message.seq - first < offset;
                                });
  if (found == messages.end() || found->seq != seq) return nullptr;
  return &*found;
}

EncodedBatch encode_replace_batch(const ir::Ruleset& ruleset, std::uint32_t first_seq) {
  check_name(ruleset.table, "table");
  const std::string table_text = "table inet " + ruleset.table;
  BatchWriter writer(first_seq);
  // Creating before deleting makes the delete succeed when the table does not exist yet,
  // so the same batch serves the first load and every replacement.
  add_table(writer, NFT_MSG_NEWTABLE, NLM_F_CREATE, ruleset.table, table_text);
  add_table(writer, NFT_MSG_DELTABLE, 0, ruleset.table, "deletion of " + table_text);
  add_table(writer, NFT_MSG_NEWTABLE, NLM_F_CREATE, ruleset.table, table_text);
  // nft declares every chain of a table block before any rule, so rules may jump to
  // chains listed after them.
  for (const ir::Chain& chain : ruleset.chains) add_chain(writer, ruleset.table, chain);

  std::uint32_t next_set_id = 1;
  for (const ir::Chain& chain : ruleset.chains) {
    for (std::size_t r = 0; r < chain.rules.size(); ++r) {
      const ir::Rule& rule = chain.rules[r];
      std::string what = rule_description(rule, r, chain);
      RuleEncoder encoder(ruleset, chain, next_set_id, what);
      encoder.encode(rule);
      for (const AnonymousSet& set : encoder.sets()) add_set(writer, set);
      encoder.build_payload(
          writer.start(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, std::move(what)));
      writer.advance();
    }
  }
  return std::move(writer).finish();
}

}  // namespace portier
