// Pieces shared by the parts of the batch encoder (encode_batch.cpp writes the messages,
// encode_batch_rule.cpp turns one rule into expressions and anonymous sets). Not a
// public interface.
#pragma once

#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>

#include <array>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "nft_constants.h"
#include "ruleset.h"

struct nlmsghdr;

namespace portier::encode {

// The parts of the encoder write nft's numbers (nft_constants.h) by their short names.
using namespace portier::nft;

struct NftnlDeleter {
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

/// Throws std::invalid_argument unless the kernel takes `name` as an object name.
void check_name(const std::string& name, const char* what);

Owned<nftnl_udata_buf> udata_buffer();
void put_udata(nftnl_udata_buf* buf, std::uint8_t type, std::uint32_t value);

/// The userdata bytes nft attaches to a set so `nft list` can print its elements.
using Udata = std::vector<std::uint8_t>;
Udata udata_bytes(const nftnl_udata_buf& buf);

/// One element as it goes on the wire. Kept small (no heap) because a named set may hold
/// millions of them.
struct SetElement {
  std::array<std::uint8_t, 16> key{};
  std::uint8_t key_len = 0;
  bool interval_end = false;  // NFT_SET_ELEM_INTERVAL_END
  bool open_end = false;      // starts a range that runs to the top of the key space
  std::uint32_t verdict = 0;  // 1 + index into SetDefinition::verdicts; 0: no data
};

/// The data of a verdict map element.
struct ElementVerdict {
  std::int32_t code = 0;  // NF_ACCEPT, NF_DROP, NFT_JUMP, NFT_GOTO
  std::string chain;
  std::string comment;  // NFTNL_UDATA_SET_ELEM_COMMENT of the element; empty: none
};

/// An element of a concatenated interval map (the kernel's pipapo sets): the key's first
/// and last values (NFTA_SET_ELEM_KEY and NFTA_SET_ELEM_KEY_END), each field padded to
/// 4 bytes. Element lists of such maps are short (one policy rule each).
struct ConcatElement {
  std::vector<std::uint8_t> first;
  std::vector<std::uint8_t> last;
  std::uint32_t verdict = 0;  // 1 + index into SetDefinition::verdicts
};

/// A set to create in the batch: an anonymous one a rule looks up, or a named one.
struct SetDefinition {
  std::string name;  // "__set%d" / "__map%d" for anonymous sets: the kernel fills in %d
  std::uint32_t id = 0;
  std::string what;  // for error text
  std::uint32_t flags = 0;
  std::uint32_t key_type = 0;
  std::uint32_t key_len = 0;
  std::uint32_t data_type = 0;  // maps only
  std::uint32_t data_len = 0;
  std::uint64_t timeout_ms = 0;       // 0: none
  std::optional<std::uint32_t> size;  // NFTA_SET_DESC_SIZE
  Udata udata;
  std::vector<std::uint32_t> field_lengths;  // NFTA_SET_DESC_CONCAT of a concatenated key
  bool counter = false;                      // NFTA_SET_EXPR: a counter on every element
  std::vector<SetElement> elements;
  std::vector<ConcatElement> concat_elements;  // instead of `elements` for a concatenation
  std::vector<ElementVerdict> verdicts;
};

/// Appends the boundaries of an interval set the way the kernel's rbtree sets want them:
/// a start element opens a range, an INTERVAL_END element one past its end closes it,
/// and nft closes the gap below the first range with an end element at zero. `first` and
/// `last` are big-endian keys of `len` bytes. Returns how many elements nft counts for
/// the size hint (2 per range, plus the leading one).
std::uint32_t add_interval(std::vector<SetElement>& elements, const std::uint8_t* first,
                           const std::uint8_t* last, std::uint32_t len, bool is_first);

/// Named sets and RuleMaps of the ruleset with the ids nft gives them (1, 2, ... in table
/// order: the sets, then the maps).
struct NamedSetIds {
  std::span<const ir::NamedSet> sets;
  std::span<const ir::RuleMap> maps;
  /// The id of `name`, or throws std::invalid_argument if the table has no such set.
  std::uint32_t id_of(const std::string& name) const;
  const ir::NamedSet& set_of(const std::string& name) const;
  /// The id of RuleMap `name`, or throws std::invalid_argument if the table has no such map.
  std::uint32_t map_id_of(const std::string& name) const;
  const ir::RuleMap& map_of(const std::string& name) const;
};

/// The key of one RuleMap field in a packet: `len` bytes at `offset` of `base`
/// (NFT_PAYLOAD_*), and the datatype nft gives it.
struct KeyFieldLayout {
  std::uint32_t base = 0;
  std::uint32_t offset = 0;
  std::uint32_t len = 0;
  std::uint32_t type = 0;
  std::optional<ir::Family> family;  // the `meta nfproto` it depends on; none for ports
  // Loaded from the conntrack entry's original tuple (`ct original proto-dst`, NFT_CT_*
  // key `ct_key`) instead of the packet's payload (base and offset then unused).
  std::optional<std::uint32_t> ct_key;
};
KeyFieldLayout key_field_layout(ir::KeyField field);

/// A RuleMap as nft declares `map NAME { type A . B : verdict; flags interval; counter;
/// elements = { ... } }`: one field is an rbtree interval map, several a concatenation
/// (pipapo). Throws std::invalid_argument for a key or element the map cannot hold.
SetDefinition rule_map(const ir::RuleMap& map, std::uint32_t id);

/// The elements of a RuleMap with key `key` for `elements`, in `set` (whose verdicts they
/// use). For a whole map (`whole`) an interval map starts like nft's, with the end
/// element at zero; without it the elements are those an edit adds or removes.
void add_map_elements(SetDefinition& set, const std::vector<ir::KeyField>& key,
                      std::span<const ir::MapElement> elements, bool whole);

/// One rule: its expressions in the order nft's linearizer emits them for the rendered
/// rule text, and the anonymous sets it needs, which must be created before it.
class RuleEncoder {
 public:
  RuleEncoder(const std::string& table, const std::string& chain, const NamedSetIds& named,
              std::uint32_t& next_set_id, std::string what);
  ~RuleEncoder();
  RuleEncoder(const RuleEncoder&) = delete;
  RuleEncoder& operator=(const RuleEncoder&) = delete;

  void encode(const ir::Rule& rule);
  const std::vector<SetDefinition>& sets() const { return sets_; }
  void build_payload(nlmsghdr* nlh) const;

 private:
  class Builder;
  void encode_match(const std::vector<ir::Match>& matches, std::size_t& index);
  void encode_ports(const std::vector<ir::PortRange>& ports, bool source,
                    const ir::L4ProtoIn* protocols);
  void encode_address(const ir::AddressIn& match);
  void encode_original_address(const ir::CtOriginalAddressIn& match);
  // The compares of an address match after `load(len)` put the address (or its first len
  // bytes) into register 1; `udata` describes the key of the anonymous set, if one is needed.
  template <typename Load, typename Udata>
  void encode_address_ranges(ir::Family family, const std::vector<ir::AddressRange>& ranges,
                             Load load, Udata udata);
  void encode_icmp(const ir::IcmpTypeIn& match);
  void encode_verdict(const ir::Rule& rule, const ir::L4ProtoIn* protocols);
  void encode_vmap(const ir::Verdict& verdict);
  void encode_map_lookup(const ir::Verdict& verdict);
  SetDefinition& new_set(const char* name, std::string what);
  void require_family(bool v6);
  void require_protocol(ir::L4Proto protocol);

  const NamedSetIds& named_;
  std::unique_ptr<Builder> builder_;
  std::uint32_t& next_set_id_;
  std::string what_;
  std::vector<SetDefinition> sets_;
  // What the rule has established so far (NFPROTO_*, IPPROTO_*), as nft's protocol context.
  std::optional<std::uint8_t> family_context_;
  std::optional<std::uint8_t> protocol_context_;
};

}  // namespace portier::encode
