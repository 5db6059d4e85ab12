#include "netlink_decode.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <endian.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <memory>
#include <string_view>

#include "netlink_message.h"

namespace portier {
namespace {

std::string extack_message(const nlmsghdr* nlh, const nlmsgerr* err) {
  if ((nlh->nlmsg_flags & NLM_F_ACK_TLVS) == 0) return {};
  // The TLVs follow the echoed request: just its header when capped, else all of it.
  std::size_t offset = sizeof(nlmsgerr);
  if ((nlh->nlmsg_flags & NLM_F_CAPPED) == 0) offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
  if (offset >= mnl_nlmsg_get_payload_len(nlh)) return {};
  std::string message;
  mnl_attr_parse(
      nlh, static_cast<unsigned int>(offset),
      [](const nlattr* attr, void* data) {
        if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
            mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0) {
          *static_cast<std::string*>(data) = mnl_attr_get_str(attr);
        }
        return MNL_CB_OK;
      },
      &message);
  return message;
}

// Whether a notification of the event group is about `table inet NAME`: every nf_tables
// object message names its table in attribute 1 (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE,
// NFTA_RULE_TABLE, NFTA_SET_TABLE, NFTA_SET_ELEM_LIST_TABLE, NFTA_OBJ_TABLE,
// NFTA_FLOWTABLE_TABLE). NEWGEN, which closes every transaction, names none.
bool concerns_table(const nlmsghdr* nlh, const std::string& table) {
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES) return false;
  if ((nlh->nlmsg_type & 0xff) == NFT_MSG_NEWGEN) return false;
  if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nfgenmsg)) return false;
  const auto* header = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  if (header->nfgen_family != NFPROTO_INET) return false;
  struct Match {
    const std::string* table;
    bool found = false;
  } match{&table};
  mnl_attr_parse(
      nlh, sizeof(nfgenmsg),
      [](const nlattr* attr, void* data) {
        auto* m = static_cast<Match*>(data);
        if (mnl_attr_get_type(attr) == 1 && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0) {
          m->found = *m->table == mnl_attr_get_str(attr);
          return MNL_CB_STOP;
        }
        return MNL_CB_OK;
      },
      &match);
  return match.found;
}

// Userdata is a list of {u8 type, u8 length, value} records; nft's comment of a rule
// (NFTNL_UDATA_RULE_COMMENT) or of a set element (NFTNL_UDATA_SET_ELEM_COMMENT) is a
// NUL-terminated value.
std::string udata_comment(const void* udata, std::uint32_t len, std::uint8_t comment_type) {
  const auto* data = static_cast<const std::uint8_t*>(udata);
  std::uint32_t pos = 0;
  while (data != nullptr && pos + 2 <= len) {
    const std::uint8_t type = data[pos];
    const std::uint8_t value_len = data[pos + 1];
    if (pos + 2 + value_len > len) break;
    if (type == comment_type) {
      std::string_view value(reinterpret_cast<const char*>(data + pos + 2), value_len);
      return std::string(value.substr(0, value.find('\0')));
    }
    pos += 2u + value_len;
  }
  return {};
}

// The attributes of a message (after `offset`) or of a nest by type, each checked for the
// shape the kernel gives it (kinds[type]; MNL_TYPE_UNSPEC: not checked). False if one has
// another: the message is malformed. These are decoded here rather than by libnftnl's
// nftnl_*_nlmsg_parse(), which exit() the process on such an attribute ("nf_tables kernel
// ABI is broken"), found by fuzzing; only the chain, the comment and the counter are
// needed of a rule or element.
template <std::size_t N>
struct AttributeTable {
  const std::array<mnl_attr_data_type, N>* kinds;
  std::array<const nlattr*, N> found{};
  bool ok = true;

  static int take(const nlattr* attr, void* data) {
    auto* table = static_cast<AttributeTable*>(data);
    const std::uint16_t type = mnl_attr_get_type(attr);
    if (type >= N) return MNL_CB_OK;
    if ((*table->kinds)[type] != MNL_TYPE_UNSPEC &&
        mnl_attr_validate(attr, (*table->kinds)[type]) < 0) {
      table->ok = false;
      return MNL_CB_ERROR;
    }
    table->found[type] = attr;
    return MNL_CB_OK;
  }
};

template <std::size_t N>
std::optional<std::array<const nlattr*, N>> attributes_of(
    const nlattr* nest, const std::array<mnl_attr_data_type, N>& kinds) {
  AttributeTable<N> table{&kinds};
  mnl_attr_parse_nested(nest, &AttributeTable<N>::take, &table);
  if (!table.ok) return std::nullopt;
  return table.found;
}

template <std::size_t N>
std::optional<std::array<const nlattr*, N>> attributes_of(
    const nlmsghdr* nlh, const std::array<mnl_attr_data_type, N>& kinds) {
  if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nfgenmsg)) return std::nullopt;
  AttributeTable<N> table{&kinds};
  mnl_attr_parse(nlh, sizeof(nfgenmsg), &AttributeTable<N>::take, &table);
  if (!table.ok) return std::nullopt;
  return table.found;
}

constexpr std::array<mnl_attr_data_type, NFTA_EXPR_MAX + 1> kExpressionKinds = {
    MNL_TYPE_UNSPEC, MNL_TYPE_NUL_STRING, MNL_TYPE_NESTED};
constexpr std::array<mnl_attr_data_type, NFTA_COUNTER_MAX + 1> kCounterKinds = {
    MNL_TYPE_UNSPEC, MNL_TYPE_U64, MNL_TYPE_U64, MNL_TYPE_UNSPEC};

// One expression (NFTA_EXPR_NAME, NFTA_EXPR_DATA): a counter's packets and bytes go into
// `counter` (the last counter wins, as with libnftnl's foreach); others are skipped.
bool read_expression(const nlattr* expression, RuleCounter& counter) {
  const auto attrs = attributes_of(expression, kExpressionKinds);
  if (!attrs || (*attrs)[NFTA_EXPR_NAME] == nullptr) return false;
  if (std::string_view(mnl_attr_get_str((*attrs)[NFTA_EXPR_NAME])) != "counter") return true;
  counter.packets = 0;
  counter.bytes = 0;
  if ((*attrs)[NFTA_EXPR_DATA] == nullptr) return true;
  const auto data = attributes_of((*attrs)[NFTA_EXPR_DATA], kCounterKinds);
  if (!data) return false;
  if (const nlattr* packets = (*data)[NFTA_COUNTER_PACKETS])
    counter.packets = be64toh(mnl_attr_get_u64(packets));
  if (const nlattr* bytes = (*data)[NFTA_COUNTER_BYTES])
    counter.bytes = be64toh(mnl_attr_get_u64(bytes));
  return true;
}

// Calls `each` for every NFTA_LIST_ELEM nest in the list `list`; false if the list holds
// anything else or `each` returns false.
template <typename Each>
bool each_list_element(const nlattr* list, Each&& each) {
  struct Walk {
    Each* each;
    bool ok = true;
  } walk{&each};
  mnl_attr_parse_nested(
      list,
      [](const nlattr* attr, void* data) {
        auto* w = static_cast<Walk*>(data);
        if (mnl_attr_get_type(attr) != NFTA_LIST_ELEM ||
            mnl_attr_validate(attr, MNL_TYPE_NESTED) < 0 || !(*w->each)(attr)) {
          w->ok = false;
          return MNL_CB_ERROR;
        }
        return MNL_CB_OK;
      },
      &walk);
  return walk.ok;
}

// A list of expressions (NFTA_RULE_EXPRESSIONS, NFTA_SET_ELEM_EXPRESSIONS).
bool read_expressions(const nlattr* list, RuleCounter& counter) {
  return each_list_element(
      list, [&counter](const nlattr* expression) { return read_expression(expression, counter); });
}

std::string comment_of(const nlattr* userdata, std::uint8_t comment_type) {
  if (userdata == nullptr) return {};
  return udata_comment(mnl_attr_get_payload(userdata), mnl_attr_get_payload_len(userdata),
                       comment_type);
}

constexpr std::array<mnl_attr_data_type, NFTA_RULE_ID + 1> kRuleKinds = {
    MNL_TYPE_UNSPEC, MNL_TYPE_NUL_STRING, MNL_TYPE_NUL_STRING, MNL_TYPE_U64,    MNL_TYPE_NESTED,
    MNL_TYPE_NESTED, MNL_TYPE_U64,        MNL_TYPE_BINARY,     MNL_TYPE_UNSPEC, MNL_TYPE_U32};
constexpr std::array<mnl_attr_data_type, NFTA_SET_ELEM_LIST_SET_ID + 1> kElementListKinds = {
    MNL_TYPE_UNSPEC, MNL_TYPE_NUL_STRING, MNL_TYPE_NUL_STRING, MNL_TYPE_NESTED, MNL_TYPE_U32};
constexpr std::array<mnl_attr_data_type, NFTA_SET_ELEM_EXPRESSIONS + 1> kElementKinds = {
    MNL_TYPE_UNSPEC, MNL_TYPE_NESTED,     MNL_TYPE_NESTED, MNL_TYPE_U32,
    MNL_TYPE_U64,    MNL_TYPE_U64,        MNL_TYPE_BINARY, MNL_TYPE_NESTED,
    MNL_TYPE_UNSPEC, MNL_TYPE_NUL_STRING, MNL_TYPE_NESTED, MNL_TYPE_NESTED};

}  // namespace

BatchReplies::BatchReplies(std::uint32_t port_id, std::uint32_t first_seq, std::uint32_t seq_span,
                           std::span<const std::uint32_t> rule_seqs, std::size_t expected_acks)
    : handles(rule_seqs.size(), 0),
      port_id_(port_id),
      first_seq_(first_seq),
      seq_span_(seq_span),
      rule_seqs_(rule_seqs),
      expected_acks_(expected_acks) {}

void BatchReplies::read(std::span<const std::uint8_t> datagram) {
  int remaining = static_cast<int>(datagram.size());
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(datagram.data());
       netlink_message_ok(nlh, remaining); nlh = mnl_nlmsg_next(nlh, &remaining)) {
    if (nlh->nlmsg_pid != port_id_) continue;
    if (nlh->nlmsg_seq - first_seq_ >= seq_span_) continue;  // a stale reply
    if (nlh->nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE)) {
      // An echo. Rule sequence numbers rise through the batch (and may wrap around).
      const std::uint32_t first_seq = first_seq_;
      const auto found =
          std::lower_bound(rule_seqs_.begin(), rule_seqs_.end(), nlh->nlmsg_seq - first_seq,
                           [first_seq](std::uint32_t seq, std::uint32_t offset) {
                             return seq - first_seq < offset;
                           });
      if (found == rule_seqs_.end() || *found != nlh->nlmsg_seq) continue;
      // A rule counts as echoed once, by its first echo that carries a handle: an echo
      // without one gives nothing to edit the rule by, and a repeated echo is not another
      // rule (a crafted reply stream repeated both).
      std::uint64_t echoed_handle = 0;
      mnl_attr_parse(
          nlh, sizeof(nfgenmsg),
          [](const nlattr* attr, void* data) {
            if (mnl_attr_get_type(attr) == NFTA_RULE_HANDLE &&
                mnl_attr_validate(attr, MNL_TYPE_U64) >= 0) {
              *static_cast<std::uint64_t*>(data) = be64toh(mnl_attr_get_u64(attr));
            }
            return MNL_CB_OK;
          },
          &echoed_handle);
      std::uint64_t& handle = handles[static_cast<std::size_t>(found - rule_seqs_.begin())];
      if (handle == 0 && echoed_handle != 0) {
        handle = echoed_handle;
        ++echoed;
      }
      continue;
    }
    if (nlh->nlmsg_type != NLMSG_ERROR) continue;
    // A truncated error is no answer (it cannot say which): the batch then counts as
    // maybe applied, as when an answer is missing.
    if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nlmsgerr)) continue;
    const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
    ++answered;
    if (err->error == 0) continue;
    ++refusals;
    if (!first_refusal || nlh->nlmsg_seq - first_seq_ < first_refusal->seq - first_seq_) {
      first_refusal = Refusal{nlh->nlmsg_seq, netlink_errno(*err), extack_message(nlh, err)};
    }
  }
}

RequestReplies::RequestReplies(std::uint32_t port_id, std::uint32_t seq, Each each)
    : port_id_(port_id), seq_(seq), each_(std::move(each)) {}

void RequestReplies::read(std::span<const std::uint8_t> datagram) {
  int remaining = static_cast<int>(datagram.size());
  auto* nlh = reinterpret_cast<const nlmsghdr*>(datagram.data());
  for (; netlink_message_ok(nlh, remaining); nlh = mnl_nlmsg_next(nlh, &remaining)) {
    if (done_) return;  // what follows belongs to no request of ours
    if (nlh->nlmsg_pid != port_id_ || nlh->nlmsg_seq != seq_) continue;  // a stale reply
    if ((nlh->nlmsg_flags & NLM_F_DUMP_INTR) != 0) interrupted = true;
    switch (nlh->nlmsg_type) {
      case NLMSG_NOOP:
      case NLMSG_OVERRUN:
        continue;
      case NLMSG_DONE: {
        // The dump's own result (netlink_dump_done()): 0, or the error that ended it early.
        done_ = true;
        if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(std::int32_t)) {
          std::int32_t result = 0;
          std::memcpy(&result, mnl_nlmsg_get_payload(nlh), sizeof result);
          if (result < 0) error = result == INT32_MIN ? EPROTO : -result;
        }
        continue;
      }
      case NLMSG_ERROR: {
        done_ = true;
        if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nlmsgerr)) {
          malformed = true;
          continue;
        }
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        error = netlink_errno(*err);
        if (error != 0) extack = extack_message(nlh, err);
        continue;
      }
      default:
        if (nlh->nlmsg_type < NLMSG_MIN_TYPE) continue;  // a control message of no meaning here
        if (!interrupted && !malformed && !each_(nlh)) malformed = true;
    }
  }
  // Bytes left that are no whole message: a length field lies (netlink_message_ok()).
  if (!done_ && remaining >= static_cast<int>(sizeof(nlmsghdr))) malformed = true;
}

std::optional<std::uint32_t> decode_generation(const nlmsghdr* nlh) {
  std::optional<std::uint32_t> id;
  mnl_attr_parse(
      nlh, sizeof(nfgenmsg),
      [](const nlattr* attr, void* data) {
        if (mnl_attr_get_type(attr) == NFTA_GEN_ID && mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) {
          *static_cast<std::optional<std::uint32_t>*>(data) = ntohl(mnl_attr_get_u32(attr));
        }
        return MNL_CB_OK;
      },
      &id);
  return id;
}

std::optional<RuleCounter> decode_rule_counter(const nlmsghdr* nlh) {
  if (nlh->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE)) return std::nullopt;
  const auto rule = attributes_of(nlh, kRuleKinds);
  if (!rule) return std::nullopt;
  RuleCounter counter;
  if (const nlattr* chain = (*rule)[NFTA_RULE_CHAIN]) counter.chain = mnl_attr_get_str(chain);
  counter.comment = comment_of((*rule)[NFTA_RULE_USERDATA], NFTNL_UDATA_RULE_COMMENT);
  if (const nlattr* list = (*rule)[NFTA_RULE_EXPRESSIONS];
      list && !read_expressions(list, counter)) {
    return std::nullopt;
  }
  return counter;
}

// The elements of one RuleMap: one counter per element, named by the map and the
// element's comment (the policy rule). An rbtree map also holds the end boundaries of
// its ranges, which are no elements of their own.
bool decode_map_counters(const nlmsghdr* nlh, const std::string& map,
                         std::vector<RuleCounter>& counters) {
  if (nlh->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM)) return false;
  const auto list = attributes_of(nlh, kElementListKinds);
  if (!list) return false;
  if ((*list)[NFTA_SET_ELEM_LIST_ELEMENTS] == nullptr) return true;
  std::vector<RuleCounter> found;
  const bool ok =
      each_list_element((*list)[NFTA_SET_ELEM_LIST_ELEMENTS], [&](const nlattr* element) {
        const auto attrs = attributes_of(element, kElementKinds);
        if (!attrs) return false;
        if (const nlattr* flags = (*attrs)[NFTA_SET_ELEM_FLAGS];
            flags && (ntohl(mnl_attr_get_u32(flags)) & NFT_SET_ELEM_INTERVAL_END) != 0) {
          return true;
        }
        RuleCounter counter;
        counter.chain = map;
        counter.comment =
            comment_of((*attrs)[NFTA_SET_ELEM_USERDATA], NFTNL_UDATA_SET_ELEM_COMMENT);
        if (const nlattr* expression = (*attrs)[NFTA_SET_ELEM_EXPR];
            expression && !read_expression(expression, counter)) {
          return false;
        }
        if (const nlattr* expressions = (*attrs)[NFTA_SET_ELEM_EXPRESSIONS];
            expressions && !read_expressions(expressions, counter)) {
          return false;
        }
        found.push_back(std::move(counter));
        return true;
      });
  if (!ok) return false;
  counters.insert(counters.end(), std::make_move_iterator(found.begin()),
                  std::make_move_iterator(found.end()));
  return true;
}

RequestReplies::Each append_rule_counters(std::vector<RuleCounter>& counters) {
  return [&counters](const nlmsghdr* nlh) {
    std::optional<RuleCounter> counter = decode_rule_counter(nlh);
    if (!counter) return false;
    counters.push_back(std::move(*counter));
    return true;
  };
}

RequestReplies::Each append_map_counters(std::string map, std::vector<RuleCounter>& counters) {
  return [map = std::move(map), &counters](const nlmsghdr* nlh) {
    return decode_map_counters(nlh, map, counters);
  };
}

bool NotificationReader::read(std::span<const std::uint8_t> datagram, const std::string& table) {
  bool changed = false;
  int remaining = static_cast<int>(datagram.size());
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(datagram.data());
       netlink_message_ok(nlh, remaining); nlh = mnl_nlmsg_next(nlh, &remaining)) {
    if (concerns_table(nlh, table) && nlh->nlmsg_pid != own_port_id_) others_touched_table_ = true;
    // A transaction's notifications are queued one by one and NEWGEN closes them; we
    // may wake up halfway. Reporting only at NEWGEN makes one outside transaction one
    // change, not two (and two repairs).
    if (nlh->nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN) &&
        others_touched_table_) {
      changed = true;
      others_touched_table_ = false;
    }
  }
  return changed;
}

}  // namespace portier
