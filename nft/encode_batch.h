// Turns the ruleset IR into the bytes of one nf_tables netlink transaction, the same
// messages `nft -f` sends for render_nft_replace() of the same IR. Pure: no socket.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ruleset.h"

namespace portier {

/// One netlink message of an encoded batch.
struct BatchMessage {
  std::uint32_t seq = 0;
  /// nlmsg_type: (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_*, or NFNL_MSG_BATCH_BEGIN/END.
  std::uint16_t type = 0;
  bool wants_ack = false;  // NLM_F_ACK: the kernel answers it with an ack or an error
  std::string what;        // what it creates, for error text: `rule "ssh" in chain input`
};

struct EncodedBatch {
  std::vector<std::uint8_t> bytes;     // BATCH_BEGIN ... BATCH_END, ready for one sendmsg()
  std::vector<BatchMessage> messages;  // in wire order, begin and end included
  std::uint32_t next_seq = 0;          // first sequence number after this batch
  /// The NEWRULE messages, in the order of the rules they carry: chain by chain for a
  /// replacement, the order of the insertions for an edit. Each asks for NLM_F_ECHO: at
  /// commit the kernel sends the new rule back (with its handle) under the same number.
  std::vector<std::uint32_t> rule_seqs;

  /// The message with this sequence number, or nullptr. The parts of a long element list
  /// share one number (as in nft); they also share their description.
  const BatchMessage* find(std::uint32_t seq) const;
};

/// One transaction replacing `table inet NAME`: NEWTABLE (create if missing; for an owned
/// table without flags, see docs/nftables-owner.md), DELTABLE, NEWTABLE (with the owner and
/// persist flags), the chains, the named sets with their elements, the RuleMaps with their
/// elements (ids after the named sets'), then each rule preceded by its anonymous sets and
/// verdict maps. Element lists longer than one netlink attribute
/// holds are split over several messages, so a million-element set still goes in this one
/// transaction. Sequence numbers start at first_seq (the batch begin message). Throws
/// std::invalid_argument for an IR the kernel could not express (see render_nft()), a
/// socket cgroup match on a set that does not hold cgroups, or a lookup of a set the table
/// lacks.
/// Differs from nft's batch only in the flags: every request asks for an ack, and every
/// NEWRULE for an echo (see EncodedBatch::rule_seqs).
EncodedBatch encode_replace_batch(const ir::Ruleset& ruleset, std::uint32_t first_seq);

/// Whether encode_refill_batch() can replace `loaded` (what the table holds: its
/// declarations count, not its rules or elements) by `next`: the same table and flags, and
/// the same chains (names, and hooks, types, priorities and policies of the base chains)
/// in the same order.
bool replaces_in_place(const ir::Ruleset& loaded, const ir::Ruleset& next);

/// One transaction replacing the contents of `table inet NAME`, which holds `loaded`, by
/// `next`, keeping the table and its chains: NEWTABLE (as encode_replace_batch()), DELRULE
/// of the table (every rule of every chain; anonymous sets go with their rules), DELSET of
/// each named set and RuleMap of `loaded`, then `next`'s named sets, RuleMaps and rules as
/// encode_replace_batch() sends them. The base chains stay hooked: a packet meets the old
/// rules or the new ones, never a chain being taken down. Afterwards `nft list` shows what
/// a first load of `next` shows. Throws std::invalid_argument unless
/// replaces_in_place(loaded, next), and as encode_replace_batch().
EncodedBatch encode_refill_batch(const ir::Ruleset& loaded, const ir::Ruleset& next,
                                 std::uint32_t first_seq);

/// A rule of the loaded table to take out, by its kernel handle.
struct RuleRemoval {
  std::string_view chain;
  std::uint64_t handle = 0;
};

/// A rule to put into the loaded table right after the rule with handle `after_handle`
/// (0: at the start of the chain). `rule` must not be null.
struct RuleInsertion {
  std::string_view chain;
  std::uint64_t after_handle = 0;
  const ir::Rule* rule = nullptr;
};

/// Elements to put into and take out of a RuleMap of the loaded table.
struct MapElementChange {
  std::string_view map;
  std::vector<ir::KeyField> key;  // the map's key fields
  std::span<const ir::MapElement> add;
  std::span<const ir::MapElement> remove;
};

/// What encode_edit_batch() is to change in the loaded `table inet TABLE`, and the
/// sequence number its batch begin message gets.
struct EditBatchRequest {
  // Each member has an initializer: GCC (-Wmissing-field-initializers) warns of any left out
  // of a designated initializer otherwise, and callers name only what they change.
  std::string_view table{};
  std::span<const ir::NamedSet> sets{};  // the table's named sets (their elements are not needed)
  std::span<const ir::RuleMap> maps{};   // the table's RuleMaps (their elements are not needed)
  std::span<const RuleRemoval> removals{};
  std::span<const RuleInsertion> insertions{};
  std::span<const MapElementChange> map_changes{};
  std::uint32_t first_seq = 0;
};

/// One transaction changing `table inet NAME` in place: the insertions (each preceded by
/// its anonymous sets), then the removals, so an insertion may follow a rule the same
/// edit removes. Insertions with the same chain and after_handle end up in the order
/// given: the first goes after the handle (NLM_F_APPEND + NFTA_RULE_POSITION; at the
/// start of the chain without either), each later one after the one before it
/// (NFTA_RULE_POSITION_ID naming its NFTA_RULE_ID). `sets` are the named sets of the
/// loaded table (their elements are not needed), for rules that look them up, and `maps`
/// its RuleMaps (elements not needed either), for map_lookup rules. Then the element
/// changes of RuleMaps (a toggle of a rule that is kernel rules and map elements is one
/// transaction): per map, DELSETELEM of the removed elements (by key: no verdict, no
/// comment), then NEWSETELEM of the added ones with their verdicts and comments; the
/// map's counter expression gives each added element a fresh counter. Elements are
/// encoded as in encode_replace_batch(): a one-field key as interval boundaries (sorted,
/// without the leading end element at zero, as encode_set_edit_batch()), a concatenation
/// as key and key end. Throws std::invalid_argument as encode_replace_batch(), or for an
/// element a map cannot hold.
EncodedBatch encode_edit_batch(const EditBatchRequest& request);

/// Elements to add to and remove from a named set of the loaded table.
struct SetElementChange {
  std::string_view set;
  ir::SetKey key = ir::SetKey::ipv4_addr;
  bool interval = false;  // the set has flags interval
  std::span<const ir::AddressRange> add;
  std::span<const ir::AddressRange> remove;
  std::optional<std::uint32_t> timeout_seconds;  // NFTA_SET_ELEM_TIMEOUT of each added element
};

/// One transaction: DELSETELEM of the removed elements, then NEWSETELEM of the added
/// ones, element lists split over messages as in encode_replace_batch(). An interval set
/// gets each range as a start element and an INTERVAL_END element one past its last
/// address (none for a range that runs to the top of the key space), without the leading
/// end element at zero that nft puts before the first range of a whole set; a hash set
/// gets plain keys. Removing takes exactly the elements that adding the same ranges
/// created. Throws std::invalid_argument for a range the set cannot hold.
EncodedBatch encode_set_edit_batch(const std::string& table, const SetElementChange& change,
                                   std::uint32_t first_seq);

}  // namespace portier
