// One datagram from portierd's NETLINK_NETFILTER sockets, through every decoder of
// netlink_decode.h as netlink_kernel.cpp uses them: the replies to a batch (acks,
// refusals with their extended ack, rule echoes), the generation reply, a GETRULE and a
// GETSETELEM dump part (through RequestReplies, as NetlinkSocket::talk() feeds them), and
// notifications.
#include <libmnl/libmnl.h>
#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "netlink_decode.h"
#include "netlink_message.h"

using namespace portier;

namespace {

// A batch as portierd sends one: its port id, sequence numbers and NEWRULE numbers
// (ascending, one wrapping past 2^32, as rule_seqs may).
constexpr std::uint32_t kPortId = 0x1234;
constexpr std::uint32_t kFirstSeq = 0xfffffff0u;
constexpr std::uint32_t kSeqSpan = 40;
constexpr std::uint32_t kRuleSeqs[] = {0xfffffff3u, 0xfffffff4u, 0xfffffffeu, 2, 7};
// A request's sequence number: one the batch also uses, so that one input can reach both.
constexpr std::uint32_t kRequestSeq = 2;
// The batch's messages that ask for an ack.
constexpr std::size_t kExpectedAcks = 10;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> datagram(data, size);

  BatchReplies replies(kPortId, kFirstSeq, kSeqSpan, kRuleSeqs, kExpectedAcks);
  replies.read(datagram);
  if (replies.echoed > replies.handles.size()) fuzz::fail("more rules echoed than sent");
  if (replies.refusals > replies.answered) fuzz::fail("more refusals than answers");
  if (replies.refusals > 0 && !replies.first_refusal) fuzz::fail("a refusal without its record");

  NotificationReader notifications(kPortId);
  (void)notifications.read(datagram, "portier");

  // As NetlinkKernel's requests read them: a GETRULE dump, a map's GETSETELEM dump. The
  // replies that count carry the request's port id and sequence number (kRequestSeq).
  std::vector<RuleCounter> counters;
  RequestReplies rules(kPortId, kRequestSeq, append_rule_counters(counters));
  rules.read(datagram);
  RequestReplies map(kPortId, kRequestSeq, append_map_counters("input/m1", counters));
  map.read(datagram);
  // When a request is answered depends on the control messages alone, not on the decoder.
  // (Not append_published_ports(): parse_published_port() is libnftnl's parser, which
  // exit()s on a malformed attribute, see decode_rule_counter().)
  if (map.done() != rules.done()) fuzz::fail("two decoders of one reply differ on its end");

  int remaining = static_cast<int>(size);
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(data); netlink_message_ok(nlh, remaining);
       nlh = mnl_nlmsg_next(nlh, &remaining)) {
    (void)decode_generation(nlh);
  }
  return 0;
}
