// RuleMaps as nft 1.0.6 declares `map NAME { type ipv4_addr . inet_service : verdict;
// flags interval; counter; elements = { ... } }`: the set attributes, its userdata and
// its elements. A key of one field is an rbtree interval map whose ranges are boundary
// elements, as for named interval sets; a concatenation is a pipapo map whose elements
// carry their first and last key (each field padded to 4 bytes).
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "encode_batch_internal.h"

namespace portier::encode {
namespace {

std::uint32_t padded(std::uint32_t len) { return (len + 3) / 4 * 4; }

std::string field_name(ir::KeyField field) { return ir::key_field_name(field); }

void check_key(const std::string& map, const std::vector<ir::KeyField>& key) {
  if (key.empty()) throw std::invalid_argument("map " + map + " has no key");
  std::optional<ir::Family> family;
  std::uint32_t words = 0;
  for (ir::KeyField field : key) {
    const KeyFieldLayout layout = key_field_layout(field);
    if (layout.family && family && *layout.family != *family) {
      throw std::invalid_argument("map " + map + " has a key of both IPv4 and IPv6 addresses");
    }
    if (layout.family) family = layout.family;
    words += padded(layout.len) / 4;
  }
  // The key is loaded into consecutive 32-bit registers: NFT_REG32_00 .. NFT_REG32_15.
  if (words > 16) throw std::invalid_argument("map " + map + " has a key longer than 64 bytes");
}

std::int32_t element_verdict(const std::string& map, ir::VerdictKind kind) {
  if (kind == ir::VerdictKind::accept) return NF_ACCEPT;
  if (kind == ir::VerdictKind::drop) return NF_DROP;
  throw std::invalid_argument("an element of map " + map + " must accept or drop");
}

// One field's range as key bytes: addresses of the field's family, ports as
// port_element() bytes; first <= last.
void check_range(const std::string& map, ir::KeyField field, const ir::AddressRange& range) {
  const KeyFieldLayout layout = key_field_layout(field);
  if (layout.family &&
      (range.first.family != *layout.family || range.last.family != *layout.family)) {
    throw std::invalid_argument("map " + map + ": " + field_name(field) +
                                " holds an address of the other family");
  }
  if (std::memcmp(range.first.bytes.data(), range.last.bytes.data(), layout.len) > 0) {
    throw std::invalid_argument("map " + map + ": " + field_name(field) +
                                " holds a reversed range");
  }
}

}  // namespace

KeyFieldLayout key_field_layout(ir::KeyField field) {
  switch (field) {
    case ir::KeyField::ip_saddr:
      return {NFT_PAYLOAD_NETWORK_HEADER, 12, 4, kTypeIpAddr, ir::Family::ipv4, std::nullopt};
    case ir::KeyField::ip_daddr:
      return {NFT_PAYLOAD_NETWORK_HEADER, 16, 4, kTypeIpAddr, ir::Family::ipv4, std::nullopt};
    case ir::KeyField::ip6_saddr:
      return {NFT_PAYLOAD_NETWORK_HEADER, 8, 16, kTypeIp6Addr, ir::Family::ipv6, std::nullopt};
    case ir::KeyField::ip6_daddr:
      return {NFT_PAYLOAD_NETWORK_HEADER, 24, 16, kTypeIp6Addr, ir::Family::ipv6, std::nullopt};
    case ir::KeyField::sport:
      return {NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2, kTypeInetService, std::nullopt, std::nullopt};
    case ir::KeyField::dport:
      return {NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, kTypeInetService, std::nullopt, std::nullopt};
    case ir::KeyField::ct_original_dport:
      return {0, 0, 2, kTypeInetService, std::nullopt, NFT_CT_PROTO_DST};
  }
  throw std::invalid_argument("unknown map key field");
}

void add_map_elements(SetDefinition& set, const std::vector<ir::KeyField>& key,
                      std::span<const ir::MapElement> elements, bool whole) {
  const std::string& name = set.name;
  check_key(name, key);
  for (const ir::MapElement& element : elements) {
    if (element.key.size() != key.size()) {
      throw std::invalid_argument("an element of map " + name + " does not have " +
                                  std::to_string(key.size()) + " key fields");
    }
    for (std::size_t f = 0; f < key.size(); ++f) check_range(name, key[f], element.key[f]);
    if (element.comment.size() > NFTNL_UDATA_COMMENT_MAXLEN ||
        element.comment.find('\0') != std::string::npos) {
      throw std::invalid_argument("invalid comment '" + element.comment +
                                  "' of an element of map " + name);
    }
  }
  auto verdict_of = [&set](const ir::MapElement& element) {
    set.verdicts.push_back({element_verdict(set.name, element.verdict), {}, element.comment});
    return static_cast<std::uint32_t>(set.verdicts.size());
  };

  if (key.size() > 1) {
    // pipapo keeps the elements as given; nft sends them in the map's order.
    for (const ir::MapElement& element : elements) {
      ConcatElement concat;
      for (std::size_t f = 0; f < key.size(); ++f) {
        const std::uint32_t len = key_field_layout(key[f]).len;
        const ir::AddressRange& range = element.key[f];
        concat.first.insert(concat.first.end(), range.first.bytes.begin(),
                            range.first.bytes.begin() + len);
        concat.last.insert(concat.last.end(), range.last.bytes.begin(),
                           range.last.bytes.begin() + len);
        concat.first.resize(concat.first.size() + padded(len) - len, 0);
        concat.last.resize(concat.last.size() + padded(len) - len, 0);
      }
      concat.verdict = verdict_of(element);
      set.concat_elements.push_back(std::move(concat));
    }
    return;
  }

  // An rbtree map: nft sorts the ranges before it turns them into boundaries.
  const std::uint32_t len = key_field_layout(key.front()).len;
  std::vector<const ir::MapElement*> sorted;
  sorted.reserve(elements.size());
  for (const ir::MapElement& element : elements) sorted.push_back(&element);
  std::stable_sort(sorted.begin(), sorted.end(), [len](const auto* a, const auto* b) {
    return std::memcmp(a->key.front().first.bytes.data(), b->key.front().first.bytes.data(), len) <
           0;
  });
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const ir::AddressRange& range = sorted[i]->key.front();
    const std::size_t before = set.elements.size();
    add_interval(set.elements, range.first.bytes.data(), range.last.bytes.data(), len,
                 whole && i == 0);
    const std::uint32_t verdict = verdict_of(*sorted[i]);
    for (std::size_t e = before; e < set.elements.size(); ++e) {
      if (!set.elements[e].interval_end) set.elements[e].verdict = verdict;
    }
  }
}

SetDefinition rule_map(const ir::RuleMap& map, std::uint32_t id) {
  check_name(map.name, "map");
  check_key(map.name, map.key);
  SetDefinition set;
  set.name = map.name;
  set.id = id;
  set.what = "map " + map.name;
  set.flags = NFT_SET_INTERVAL | NFT_SET_MAP;
  set.data_type = NFT_DATA_VERDICT;
  set.counter = true;
  const bool concat = map.key.size() > 1;
  for (ir::KeyField field : map.key) {
    const KeyFieldLayout layout = key_field_layout(field);
    set.key_type = (set.key_type << kTypeBits) | layout.type;
    set.key_len += concat ? padded(layout.len) : layout.len;
    if (concat) set.field_lengths.push_back(layout.len);
  }
  // What nft 1.0.6 records: the key's byte order (none for a concatenation, whose fields
  // have their own) and, for a concatenation, a typeof of an empty concat expression;
  // the verdict data's byte order; and that the data are not intervals.
  auto udata = udata_buffer();
  put_udata(udata.get(), NFTNL_UDATA_SET_KEYBYTEORDER,
            concat ? kByteorderInvalid : kByteorderBigEndian);
  put_udata(udata.get(), NFTNL_UDATA_SET_DATABYTEORDER, 0);
  if (concat) {
    set.flags |= NFT_SET_CONCAT;
    nftnl_udata* outer = nftnl_udata_nest_start(udata.get(), NFTNL_UDATA_SET_KEY_TYPEOF);
    put_udata(udata.get(), NFTNL_UDATA_SET_TYPEOF_EXPR, kExprConcat);
    nftnl_udata_nest_end(udata.get(),
                         nftnl_udata_nest_start(udata.get(), NFTNL_UDATA_SET_TYPEOF_DATA));
    nftnl_udata_nest_end(udata.get(), outer);
  }
  put_udata(udata.get(), NFTNL_UDATA_SET_DATA_INTERVAL, 0);
  set.udata = udata_bytes(*udata);
  add_map_elements(set, map.key, map.elements, true);
  return set;
}

}  // namespace portier::encode
