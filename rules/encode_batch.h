// Turns the ruleset IR into the bytes of one nf_tables netlink transaction, the same
// messages `nft -f` sends for render_nft_replace() of the same IR. Pure: no socket.
#pragma once

#include <cstdint>
#include <string>
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

  /// The message with this sequence number, or nullptr. The parts of a long element list
  /// share one number (as in nft); they also share their description.
  const BatchMessage* find(std::uint32_t seq) const;
};

/// One transaction replacing `table inet NAME`: NEWTABLE (create if missing; for an owned
/// table without flags, see docs/nftables-owner.md), DELTABLE, NEWTABLE (with the owner and
/// persist flags), the chains, the named sets with their elements, then each rule preceded
/// by its anonymous sets and verdict maps. Element lists longer than one netlink attribute
/// holds are split over several messages, so a million-element set still goes in this one
/// transaction. Sequence numbers start at first_seq (the batch begin message). Throws
/// std::invalid_argument for an IR the kernel could not express (see render_nft()), an
/// unresolved cgroup id (SocketCgroup::id == 0), or a lookup of a set the table lacks.
EncodedBatch encode_replace_batch(const ir::Ruleset& ruleset, std::uint32_t first_seq);

}  // namespace portier
