#include "encode_batch.h"

#include <arpa/inet.h>
#include <endian.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <utility>

#include "address_range.h"
#include "encode_batch_internal.h"

namespace portier {
namespace encode {

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

Udata udata_bytes(const nftnl_udata_buf& buf) {
  const auto* data = static_cast<const std::uint8_t*>(nftnl_udata_buf_data(&buf));
  return Udata(data, data + nftnl_udata_buf_len(&buf));
}

std::uint32_t add_interval(std::vector<SetElement>& elements, const std::uint8_t* first,
                           const std::uint8_t* last, std::uint32_t len, bool is_first) {
  auto all = [len](const std::uint8_t* key, std::uint8_t value) {
    return std::all_of(key, key + len, [value](std::uint8_t b) { return b == value; });
  };
  SetElement element;
  element.key_len = static_cast<std::uint8_t>(len);
  std::uint32_t counted = 2;
  if (is_first && !all(first, 0)) {
    element.interval_end = true;  // key all zero
    elements.push_back(element);
    ++counted;
  }
  // A range reaching the top of the key space has no end element; nft marks its start
  // so that it can print `60000-65535` back instead of a lone `60000`. It still counts 2
  // towards the size hint.
  const bool open_end = all(last, 0xff);
  std::memcpy(element.key.data(), first, len);
  element.interval_end = false;
  element.open_end = open_end;
  elements.push_back(element);
  if (!open_end) {
    std::memcpy(element.key.data(), last, len);
    for (std::uint32_t i = len; i-- > 0;) {  // big-endian increment
      if (++element.key[i] != 0) break;
    }
    element.interval_end = true;
    element.open_end = false;
    elements.push_back(element);
  }
  return counted;
}

const ir::NamedSet& NamedSetIds::set_of(const std::string& name) const {
  for (const ir::NamedSet& set : sets) {
    if (set.name == name) return set;
  }
  throw std::invalid_argument("no set named '" + name + "' in the table");
}

std::uint32_t NamedSetIds::id_of(const std::string& name) const {
  const ir::NamedSet& set = set_of(name);
  return static_cast<std::uint32_t>(&set - sets.data()) + 1;
}

const ir::RuleMap& NamedSetIds::map_of(const std::string& name) const {
  for (const ir::RuleMap& map : maps) {
    if (map.name == name) return map;
  }
  throw std::invalid_argument("no map named '" + name + "' in the table");
}

std::uint32_t NamedSetIds::map_id_of(const std::string& name) const {
  const ir::RuleMap& map = map_of(name);
  return static_cast<std::uint32_t>(sets.size() + static_cast<std::size_t>(&map - maps.data())) + 1;
}

}  // namespace encode

namespace {

using encode::check_name;
using encode::Owned;
using encode::owned;
using encode::SetDefinition;
using encode::SetElement;

struct NftnlObjectDeleter {
  void operator()(nftnl_table* p) const { nftnl_table_free(p); }
  void operator()(nftnl_chain* p) const { nftnl_chain_free(p); }
  void operator()(nftnl_set* p) const { nftnl_set_free(p); }
};
template <typename T>
std::unique_ptr<T, NftnlObjectDeleter> object(T* allocated) {
  if (allocated == nullptr) throw std::bad_alloc();
  return std::unique_ptr<T, NftnlObjectDeleter>(allocated);
}

// Messages are built in a page of this size, as nft 1.0.6 sizes its batch pages; a page
// may overrun by one maximal message (a set element list attribute holds at most
// UINT16_MAX bytes).
std::size_t batch_page_size() { return static_cast<std::size_t>(getpagesize()) * 32; }
std::size_t batch_page_overrun() { return UINT16_MAX + static_cast<std::size_t>(getpagesize()); }

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

  /// Marks the message just started as a NEWRULE whose echo carries the rule's handle.
  void mark_rule() { result_.rule_seqs.push_back(result_.messages.back().seq); }

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

std::uint32_t table_flags(const ir::Ruleset& ruleset) {
  std::uint32_t flags = 0;
  if (ruleset.owner) flags |= NFT_TABLE_F_OWNER;
  // Persist only means something for an owned table; the kernel refuses it alone.
  if (ruleset.persist) flags |= NFT_TABLE_F_PERSIST;
  return flags;
}

void add_table(BatchWriter& writer, std::uint16_t nft_msg, const std::string& table,
               std::optional<std::uint32_t> flags, std::string what) {
  auto t = object(nftnl_table_alloc());
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
  if (flags) nftnl_table_set_u32(t.get(), NFTNL_TABLE_FLAGS, *flags);
  const std::uint16_t msg_flags = nft_msg == NFT_MSG_NEWTABLE ? NLM_F_CREATE : 0;
  nftnl_table_nlmsg_build_payload(writer.start(nft_msg, msg_flags, std::move(what)), t.get());
  writer.advance();
}

std::uint32_t hook_number(ir::Hook hook) {
  switch (hook) {
    case ir::Hook::prerouting:
      return NF_INET_PRE_ROUTING;
    case ir::Hook::input:
      return NF_INET_LOCAL_IN;
    case ir::Hook::forward:
      return NF_INET_FORWARD;
    case ir::Hook::output:
      return NF_INET_LOCAL_OUT;
    case ir::Hook::postrouting:
      return NF_INET_POST_ROUTING;
  }
  throw std::invalid_argument("unknown hook");
}

void add_chain(BatchWriter& writer, const std::string& table, const ir::Chain& chain) {
  check_name(chain.name, "chain");
  auto c = object(nftnl_chain_alloc());
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, chain.name.c_str());
  nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
  nlmsghdr* nlh = writer.start(NFT_MSG_NEWCHAIN, NLM_F_CREATE, "chain " + chain.name);
  nftnl_chain_nlmsg_build_payload(nlh, c.get());
  if (chain.base) {
    const bool nat = chain.base->type == ir::ChainType::nat;
    if (nat && chain.base->hook == ir::Hook::forward) {
      throw std::invalid_argument("a nat chain cannot hook forward");
    }
    // nft appends the base chain attributes itself, in this order, after libnftnl's.
    mnl_attr_put_strz(nlh, NFTA_CHAIN_TYPE, nat ? "nat" : "filter");
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

// How the elements of one NEWSETELEM/DELSETELEM list are sent.
struct ElementList {
  std::uint16_t nft_msg = NFT_MSG_NEWSETELEM;
  std::uint16_t flags = NLM_F_CREATE;
  bool with_set_id = true;       // the set is created in the same transaction
  std::uint64_t timeout_ms = 0;  // 0: none; otherwise on each element but interval ends
  bool with_userdata = true;     // deletion matches by key and flags only
};

void put_key(nlmsghdr* nlh, std::uint16_t type, const void* key, std::size_t len) {
  nlattr* nest = mnl_attr_nest_start(nlh, type);
  mnl_attr_put(nlh, NFTA_DATA_VALUE, len, key);
  mnl_attr_nest_end(nlh, nest);
}

// The data and userdata of an element: its verdict (deletions match by key alone), then
// the userdata nft writes, the comment before the open-end flag.
void put_element_data(nlmsghdr* nlh, const SetDefinition& set, std::uint32_t verdict_index,
                      bool open_end, const ElementList& list) {
  if (!list.with_userdata) return;
  const encode::ElementVerdict* verdict =
      verdict_index != 0 ? &set.verdicts[verdict_index - 1] : nullptr;
  if (verdict != nullptr) {
    nlattr* data = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_DATA);
    nlattr* code = mnl_attr_nest_start(nlh, NFTA_DATA_VERDICT);
    mnl_attr_put_u32(nlh, NFTA_VERDICT_CODE, htonl(static_cast<std::uint32_t>(verdict->code)));
    if (!verdict->chain.empty()) mnl_attr_put_strz(nlh, NFTA_VERDICT_CHAIN, verdict->chain.c_str());
    mnl_attr_nest_end(nlh, code);
    mnl_attr_nest_end(nlh, data);
  }
  const bool comment = verdict != nullptr && !verdict->comment.empty();
  if (!comment && !open_end) return;
  // Records of {u8 type, u8 length, value}: NFTNL_UDATA_SET_ELEM_COMMENT with the
  // NUL-terminated comment (at most 128 bytes: add_map_elements checks), then
  // NFTNL_UDATA_SET_ELEM_FLAGS with NFTNL_SET_ELEM_F_INTERVAL_OPEN in host order.
  std::array<std::uint8_t, 2 * 2 + NFTNL_UDATA_COMMENT_MAXLEN + 1 + 4> udata{};
  std::size_t len = 0;
  if (comment) {
    udata[len++] = NFTNL_UDATA_SET_ELEM_COMMENT;
    udata[len++] = static_cast<std::uint8_t>(verdict->comment.size() + 1);
    std::memcpy(udata.data() + len, verdict->comment.data(), verdict->comment.size());
    len += verdict->comment.size() + 1;
  }
  if (open_end) {
    udata[len++] = NFTNL_UDATA_SET_ELEM_FLAGS;
    udata[len++] = 4;
    const std::uint32_t open = NFTNL_SET_ELEM_F_INTERVAL_OPEN;
    std::memcpy(udata.data() + len, &open, sizeof open);
    len += sizeof open;
  }
  mnl_attr_put(nlh, NFTA_SET_ELEM_USERDATA, len, udata.data());
}

// One element in libnftnl's attribute order: flags, timeout, key, data, userdata.
void put_element(nlmsghdr* nlh, const SetDefinition& set, const SetElement& element,
                 const ElementList& list) {
  if (element.interval_end)
    mnl_attr_put_u32(nlh, NFTA_SET_ELEM_FLAGS, htonl(NFT_SET_ELEM_INTERVAL_END));
  // An interval end only closes the range: the kernel keeps the timeout of its start.
  if (list.timeout_ms != 0 && !element.interval_end)
    mnl_attr_put_u64(nlh, NFTA_SET_ELEM_TIMEOUT, htobe64(list.timeout_ms));
  put_key(nlh, NFTA_SET_ELEM_KEY, element.key.data(), element.key_len);
  put_element_data(nlh, set, element.verdict, element.open_end, list);
}

// A pipapo element: its range is the key and NFTA_SET_ELEM_KEY_END, with no flags (a
// single value has both equal).
void put_element(nlmsghdr* nlh, const SetDefinition& set, const encode::ConcatElement& element,
                 const ElementList& list) {
  put_key(nlh, NFTA_SET_ELEM_KEY, element.first.data(), element.first.size());
  put_key(nlh, NFTA_SET_ELEM_KEY_END, element.last.data(), element.last.size());
  put_element_data(nlh, set, element.verdict, false, list);
}

void add_elements(BatchWriter& writer, const std::string& table, const SetDefinition& set,
                  const ElementList& how, const std::string& what);

void add_set(BatchWriter& writer, const std::string& table, const SetDefinition& set) {
  auto s = object(nftnl_set_alloc());
  nftnl_set* raw = s.get();
  nftnl_set_set_str(raw, NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(raw, NFTNL_SET_NAME, set.name.c_str());
  nftnl_set_set_u32(raw, NFTNL_SET_FAMILY, NFPROTO_INET);
  nftnl_set_set_u32(raw, NFTNL_SET_ID, set.id);
  nftnl_set_set_u32(raw, NFTNL_SET_FLAGS, set.flags);
  nftnl_set_set_u32(raw, NFTNL_SET_KEY_TYPE, set.key_type);
  nftnl_set_set_u32(raw, NFTNL_SET_KEY_LEN, set.key_len);
  if (set.flags & NFT_SET_MAP) {
    nftnl_set_set_u32(raw, NFTNL_SET_DATA_TYPE, set.data_type);
    nftnl_set_set_u32(raw, NFTNL_SET_DATA_LEN, set.data_len);
  }
  if (set.timeout_ms != 0) nftnl_set_set_u64(raw, NFTNL_SET_TIMEOUT, set.timeout_ms);
  if (set.size) nftnl_set_set_u32(raw, NFTNL_SET_DESC_SIZE, *set.size);
  if (!set.field_lengths.empty()) {
    // libnftnl keeps the field lengths of a concatenation as bytes.
    std::vector<std::uint8_t> lengths(set.field_lengths.begin(), set.field_lengths.end());
    nftnl_set_set_data(raw, NFTNL_SET_DESC_CONCAT, lengths.data(),
                       static_cast<std::uint32_t>(lengths.size()));
  }
  nftnl_set_set_data(raw, NFTNL_SET_USERDATA, set.udata.data(),
                     static_cast<std::uint32_t>(set.udata.size()));
  if (set.counter) {
    // `counter` in a set declaration: the kernel gives every element its own counter,
    // also elements added later.
    auto counter = encode::owned(nftnl_expr_alloc("counter"));
    nftnl_set_add_expr(raw, counter.release());  // the set owns it from here
  }
  nftnl_set_nlmsg_build_payload(writer.start(NFT_MSG_NEWSET, NLM_F_CREATE, set.what), raw);
  writer.advance();
  add_elements(writer, table, set, ElementList{}, "elements of " + set.what);
}

void add_elements(BatchWriter& writer, const std::string& table, const SetDefinition& set,
                  const ElementList& how, const std::string& what) {
  const bool concat = !set.concat_elements.empty();
  const std::size_t count = concat ? set.concat_elements.size() : set.elements.size();
  if (count == 0) return;
  // The element list is one attribute, and attribute lengths are 16 bits: a long list is
  // split over several messages. Like nft, the parts share one sequence number and keep
  // counting the element nests, skipping the number of the element that did not fit.
  std::uint32_t nest_number = 0;
  std::size_t next = 0;
  bool continuation = false;
  do {
    nlmsghdr* nlh = writer.start(how.nft_msg, how.flags, what, continuation);
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table.c_str());
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set.name.c_str());
    if (how.with_set_id) mnl_attr_put_u32(nlh, NFTA_SET_ELEM_LIST_SET_ID, htonl(set.id));
    nlattr* list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
    for (; next < count; ++next) {
      nlattr* element = mnl_attr_nest_start(nlh, static_cast<std::uint16_t>(++nest_number));
      if (concat) {
        put_element(nlh, set, set.concat_elements[next], how);
      } else {
        put_element(nlh, set, set.elements[next], how);
      }
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
  } while (next < count);
}

std::uint32_t key_length(ir::SetKey key) {
  switch (key) {
    case ir::SetKey::ipv4_addr:
      return 4;
    case ir::SetKey::ipv6_addr:
      return 16;
    case ir::SetKey::inet_service:
      return 2;
    case ir::SetKey::cgroupv2:
      return 8;
    case ir::SetKey::inet_proto:
      return 1;
  }
  throw std::invalid_argument("unknown set key");
}

std::uint32_t key_type(ir::SetKey key) {
  switch (key) {
    case ir::SetKey::ipv4_addr:
      return encode::kTypeIpAddr;
    case ir::SetKey::ipv6_addr:
      return encode::kTypeIp6Addr;
    case ir::SetKey::inet_service:
      return encode::kTypeInetService;
    case ir::SetKey::cgroupv2:
      return encode::kTypeCgroupV2;
    case ir::SetKey::inet_proto:
      return encode::kTypeInetProto;
  }
  throw std::invalid_argument("unknown set key");
}

// The elements of a named set for `ranges`. A whole set (`whole`) starts like nft's, with
// the end element at zero before the first range of an interval set.
std::vector<SetElement> set_elements(const std::string& name, ir::SetKey key, bool interval,
                                     std::span<const ir::AddressRange> ranges, bool whole) {
  const std::uint32_t len = key_length(key);
  const auto family = key == ir::SetKey::ipv6_addr ? ir::Family::ipv6 : ir::Family::ipv4;
  std::vector<SetElement> elements;
  elements.reserve(interval ? ranges.size() * 2 + 1 : ranges.size());
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    const ir::AddressRange& range = ranges[i];
    if (key != ir::SetKey::inet_service && key != ir::SetKey::cgroupv2 &&
        key != ir::SetKey::inet_proto &&
        (range.first.family != family || range.last.family != family)) {
      throw std::invalid_argument("set " + name + " holds an address of the other family");
    }
    if (std::memcmp(range.first.bytes.data(), range.last.bytes.data(), len) > 0) {
      throw std::invalid_argument("set " + name + " holds a reversed range");
    }
    if (interval) {
      encode::add_interval(elements, range.first.bytes.data(), range.last.bytes.data(), len,
                           whole && i == 0);
    } else if (std::memcmp(range.first.bytes.data(), range.last.bytes.data(), len) != 0) {
      throw std::invalid_argument("set " + name + " holds ranges but is not an interval set");
    } else {
      SetElement element;
      element.key_len = static_cast<std::uint8_t>(len);
      std::memcpy(element.key.data(), range.first.bytes.data(), len);
      elements.push_back(element);
    }
  }
  return elements;
}

// Named sets as nft declares them: datatype keys (no typeof), the byte order in userdata,
// interval elements as boundaries.
SetDefinition named_set(const ir::NamedSet& named, std::uint32_t id) {
  check_name(named.name, "set");
  SetDefinition set;
  set.name = named.name;
  set.id = id;
  set.what = "set " + named.name;
  if (named.interval) set.flags |= NFT_SET_INTERVAL;
  // nft turns the timeout flag on by itself for a set with a default timeout.
  if (named.timeout || named.default_timeout_seconds) set.flags |= NFT_SET_TIMEOUT;
  if (named.dynamic) set.flags |= NFT_SET_EVAL;
  if (named.default_timeout_seconds) {
    if (*named.default_timeout_seconds == 0) {
      throw std::invalid_argument("set " + named.name + ": timeout must be at least 1 second");
    }
    set.timeout_ms = std::uint64_t{*named.default_timeout_seconds} * 1000;
  }
  set.size = named.size;
  set.key_type = key_type(named.key);
  set.key_len = key_length(named.key);
  auto udata = encode::udata_buffer();
  const bool cgroups = named.key == ir::SetKey::cgroupv2;
  // nft's inet_proto datatype has no byte order of its own (one byte): it writes 0.
  encode::put_udata(udata.get(), NFTNL_UDATA_SET_KEYBYTEORDER,
                    cgroups                               ? encode::kByteorderHostEndian
                    : named.key == ir::SetKey::inet_proto ? encode::kByteorderInvalid
                                                          : encode::kByteorderBigEndian);
  set.udata = encode::udata_bytes(*udata);
  if (cgroups) {
    if (!named.elements.empty() || named.interval)
      throw std::invalid_argument("set " + named.name + " of cgroups holds addresses");
    std::vector<ir::AddressRange> ids;
    for (const ir::CgroupMember& member : named.cgroups)
      ids.push_back(ir::cgroup_element(member.id));
    set.elements = set_elements(named.name, named.key, false, ids, true);
  } else {
    set.elements = set_elements(named.name, named.key, named.interval, named.elements, true);
  }
  return set;
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

namespace {

// A rule deletion with the table alone: the kernel takes out every rule of every chain
// of the table (what `flush table` sends). The chains stay, base chains on their hooks.
void add_rule_flush(BatchWriter& writer, const std::string& table, std::string what) {
  nlmsghdr* nlh = writer.start(NFT_MSG_DELRULE, 0, std::move(what));
  mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, table.c_str());
  writer.advance();
}

void add_set_deletion(BatchWriter& writer, const std::string& table, const std::string& set,
                      std::string what) {
  auto s = object(nftnl_set_alloc());
  nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set.c_str());
  nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
  nftnl_set_nlmsg_build_payload(writer.start(NFT_MSG_DELSET, 0, std::move(what)), s.get());
  writer.advance();
}

// The replacement of the table (`loaded` null) or of its contents (`loaded`: what the
// table holds, replaces_in_place() of it and `ruleset`).
EncodedBatch encode_replacement(const ir::Ruleset& ruleset, const ir::Ruleset* loaded,
                                std::uint32_t first_seq) {
  check_name(ruleset.table, "table");
  if (ruleset.persist && !ruleset.owner) {
    throw std::invalid_argument("a persistent table must also be owned");
  }
  const std::string table_text = "table inet " + ruleset.table;
  const std::uint32_t flags = table_flags(ruleset);
  BatchWriter writer(first_seq);
  // Creating before deleting makes the delete succeed when the table does not exist yet,
  // so the same batch serves the first load and every replacement. On an existing table
  // the first NEWTABLE is an update of its flags: nft sends flags 0, which the kernel
  // refuses for an owned table, so for an owned ruleset it carries no flags at all (a
  // no-op on any table this socket may change; see docs/nftables-owner.md).
  add_table(writer, NFT_MSG_NEWTABLE, ruleset.table,
            ruleset.owner ? std::nullopt : std::optional<std::uint32_t>(0), table_text);
  if (loaded == nullptr) {
    add_table(writer, NFT_MSG_DELTABLE, ruleset.table, std::nullopt, "deletion of " + table_text);
    add_table(writer, NFT_MSG_NEWTABLE, ruleset.table, flags, table_text);
    // nft declares every chain of a table block first, then the named sets, then the
    // rules: rules may jump to chains listed after them.
    for (const ir::Chain& chain : ruleset.chains) add_chain(writer, ruleset.table, chain);
  } else {
    // The table and its chains stay. Deleting a base chain unhooks it only after the
    // commit, so a packet can meet the old chain empty, with its drop policy: replacing
    // the whole table dropped allowed packets now and then (docs/soak.md). The sets and
    // maps go and come back new, in the new ruleset's order, so that `nft list` shows
    // what a first load of the same ruleset shows; the rules that used them are flushed
    // first, which is what lets the kernel delete them.
    add_rule_flush(writer, ruleset.table, "the rules of " + table_text);
    for (const ir::NamedSet& set : loaded->sets)
      add_set_deletion(writer, ruleset.table, set.name, "deletion of set " + set.name);
    for (const ir::RuleMap& map : loaded->maps)
      add_set_deletion(writer, ruleset.table, map.name, "deletion of map " + map.name);
  }

  const encode::NamedSetIds named{ruleset.sets, ruleset.maps};
  for (std::size_t i = 0; i < ruleset.sets.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (ruleset.sets[j].name == ruleset.sets[i].name) {
        throw std::invalid_argument("two sets named '" + ruleset.sets[i].name + "'");
      }
    }
    add_set(writer, ruleset.table, named_set(ruleset.sets[i], static_cast<std::uint32_t>(i + 1)));
  }
  // The RuleMaps follow the sets, as render_nft declares them; sets and maps share one
  // namespace in the kernel, and their ids count on from the sets'.
  for (std::size_t i = 0; i < ruleset.maps.size(); ++i) {
    const std::string& name = ruleset.maps[i].name;
    const bool taken =
        std::any_of(ruleset.sets.begin(), ruleset.sets.end(),
                    [&name](const ir::NamedSet& set) { return set.name == name; }) ||
        std::any_of(ruleset.maps.begin(), ruleset.maps.begin() + static_cast<std::ptrdiff_t>(i),
                    [&name](const ir::RuleMap& map) { return map.name == name; });
    if (taken) throw std::invalid_argument("two sets or maps named '" + name + "'");
    add_set(
        writer, ruleset.table,
        encode::rule_map(ruleset.maps[i], static_cast<std::uint32_t>(ruleset.sets.size() + i + 1)));
  }

  std::uint32_t next_set_id =
      static_cast<std::uint32_t>(ruleset.sets.size() + ruleset.maps.size()) + 1;
  for (const ir::Chain& chain : ruleset.chains) {
    for (std::size_t r = 0; r < chain.rules.size(); ++r) {
      const ir::Rule& rule = chain.rules[r];
      std::string what = rule_description(rule, r, chain);
      encode::RuleEncoder encoder(ruleset.table, chain.name, named, next_set_id, what);
      encoder.encode(rule);
      for (const SetDefinition& set : encoder.sets()) add_set(writer, ruleset.table, set);
      encoder.build_payload(
          writer.start(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND | NLM_F_ECHO, std::move(what)));
      writer.mark_rule();
      writer.advance();
    }
  }
  return std::move(writer).finish();
}

}  // namespace

EncodedBatch encode_replace_batch(const ir::Ruleset& ruleset, std::uint32_t first_seq) {
  return encode_replacement(ruleset, nullptr, first_seq);
}

bool replaces_in_place(const ir::Ruleset& loaded, const ir::Ruleset& next) {
  if (loaded.table != next.table || loaded.owner != next.owner || loaded.persist != next.persist)
    return false;
  // The kernel lists chains in the order they were made: only the same chains, in the same
  // order, list as a first load of `next` does.
  return std::equal(
      loaded.chains.begin(), loaded.chains.end(), next.chains.begin(), next.chains.end(),
      [](const ir::Chain& a, const ir::Chain& b) { return a.name == b.name && a.base == b.base; });
}

EncodedBatch encode_refill_batch(const ir::Ruleset& loaded, const ir::Ruleset& next,
                                 std::uint32_t first_seq) {
  if (!replaces_in_place(loaded, next))
    throw std::invalid_argument("table inet " + next.table +
                                " cannot be refilled in place: its chains or flags differ");
  return encode_replacement(next, &loaded, first_seq);
}

namespace {

void write_map_edit(BatchWriter& writer, const std::string& table, const MapElementChange& change) {
  SetDefinition map;
  map.name = std::string(change.map);
  check_name(map.name, "map");
  map.what = "map " + map.name;
  // Removals first, as in encode_set_edit_batch(). An element is found by its key (and
  // for an rbtree map by its boundaries' flags); its verdict and comment do not matter.
  encode::add_map_elements(map, change.key, change.remove, false);
  add_elements(writer, table, map, ElementList{NFT_MSG_DELSETELEM, 0, false, 0, false},
               "deletion of elements of " + map.what);
  map.elements.clear();
  map.concat_elements.clear();
  map.verdicts.clear();
  encode::add_map_elements(map, change.key, change.add, false);
  add_elements(writer, table, map, ElementList{NFT_MSG_NEWSETELEM, NLM_F_CREATE, false, 0, true},
               "elements of " + map.what);
}

}  // namespace

EncodedBatch encode_edit_batch(const EditBatchRequest& request) {
  const std::string table(request.table);
  const std::span<const RuleInsertion> insertions = request.insertions;
  check_name(table, "table");
  BatchWriter writer(request.first_seq);
  const encode::NamedSetIds named{request.sets, request.maps};
  // Anonymous sets are numbered after the named ones, as in a replacement: lookups of a
  // named set carry its name (which the kernel resolves first) and a set id that must not
  // be mistaken for one of this transaction's anonymous sets.
  std::uint32_t next_set_id =
      static_cast<std::uint32_t>(request.sets.size() + request.maps.size()) + 1;
  for (std::size_t i = 0; i < insertions.size(); ++i) {
    const RuleInsertion& insertion = insertions[i];
    if (insertion.rule == nullptr) throw std::invalid_argument("rule insertion without a rule");
    const std::string chain(insertion.chain);
    check_name(chain, "chain");
    std::string what = insertion.rule->comment.empty()
                           ? "inserted rule " + std::to_string(i + 1) + " in chain " + chain
                           : "rule \"" + insertion.rule->comment + "\" in chain " + chain;
    encode::RuleEncoder encoder(table, chain, named, next_set_id, what);
    encoder.encode(*insertion.rule);
    for (const SetDefinition& set : encoder.sets()) add_set(writer, table, set);

    // The latest earlier insertion at the same place: this one goes right after it, so
    // that insertions sharing an anchor keep their order (each would otherwise land
    // directly after the anchor, in reverse).
    std::optional<std::size_t> previous;
    for (std::size_t j = i; j-- > 0;) {
      if (insertions[j].chain == insertion.chain &&
          insertions[j].after_handle == insertion.after_handle) {
        previous = j;
        break;
      }
    }
    // The kernel (nf_tables_newrule): with NLM_F_APPEND a rule goes after the one its
    // position names, or at the end without a position; without APPEND it goes before
    // the named rule, or at the start of the chain.
    const bool positioned = previous || insertion.after_handle != 0;
    nlmsghdr* nlh = writer.start(
        NFT_MSG_NEWRULE,
        static_cast<std::uint16_t>(NLM_F_CREATE | NLM_F_ECHO | (positioned ? NLM_F_APPEND : 0)),
        std::move(what));
    writer.mark_rule();
    encoder.build_payload(nlh);
    // Rule ids are per transaction; 1 + the insertion's index.
    mnl_attr_put_u32(nlh, NFTA_RULE_ID, htonl(static_cast<std::uint32_t>(i + 1)));
    if (previous) {
      mnl_attr_put_u32(nlh, NFTA_RULE_POSITION_ID,
                       htonl(static_cast<std::uint32_t>(*previous + 1)));
    } else if (insertion.after_handle != 0) {
      mnl_attr_put_u64(nlh, NFTA_RULE_POSITION, htobe64(insertion.after_handle));
    }
    writer.advance();
  }
  for (const RuleRemoval& removal : request.removals) {
    const std::string chain(removal.chain);
    check_name(chain, "chain");
    if (removal.handle == 0) throw std::invalid_argument("rule removal without a handle");
    nlmsghdr* nlh = writer.start(
        NFT_MSG_DELRULE, 0,
        "deletion of rule handle " + std::to_string(removal.handle) + " in chain " + chain);
    mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, table.c_str());
    mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, chain.c_str());
    mnl_attr_put_u64(nlh, NFTA_RULE_HANDLE, htobe64(removal.handle));
    writer.advance();
  }
  for (const MapElementChange& change : request.map_changes) write_map_edit(writer, table, change);
  return std::move(writer).finish();
}

EncodedBatch encode_set_edit_batch(const std::string& table, const SetElementChange& change,
                                   std::uint32_t first_seq) {
  check_name(table, "table");
  SetDefinition set;
  set.name = std::string(change.set);
  check_name(set.name, "set");
  set.what = "set " + set.name;
  if (change.timeout_seconds && *change.timeout_seconds == 0) {
    throw std::invalid_argument("set " + set.name + ": timeout must be at least 1 second");
  }
  BatchWriter writer(first_seq);
  // Removals first: a range may be replaced by an overlapping one in the same edit.
  set.elements = set_elements(set.name, change.key, change.interval, change.remove, false);
  add_elements(writer, table, set, ElementList{NFT_MSG_DELSETELEM, 0, false, 0, false},
               "deletion of elements of " + set.what);
  set.elements = set_elements(set.name, change.key, change.interval, change.add, false);
  const std::uint64_t timeout_ms =
      change.timeout_seconds ? std::uint64_t{*change.timeout_seconds} * 1000 : 0;
  add_elements(writer, table, set,
               ElementList{NFT_MSG_NEWSETELEM, NLM_F_CREATE, false, timeout_ms, true},
               "elements of " + set.what);
  return std::move(writer).finish();
}

}  // namespace portier
