// One datagram from portierd's NETLINK_NETFILTER sockets, through every decoder of
// netlink_decode.h as netlink_kernel.cpp uses them: the replies to a batch (acks,
// refusals with their extended ack, rule echoes), the generation reply, a GETRULE and a
// GETSETELEM dump part (as libmnl's mnl_cb_run() hands them over), and notifications.
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> datagram(data, size);

  BatchReplies replies(kPortId, kFirstSeq, kSeqSpan, kRuleSeqs);
  replies.read(datagram);
  if (replies.echoed > replies.handles.size()) fuzz::fail("more rules echoed than sent");
  if (replies.refusals > replies.answered) fuzz::fail("more refusals than answers");
  if (replies.refusals > 0 && !replies.first_refusal) fuzz::fail("a refusal without its record");

  NotificationReader notifications(kPortId);
  (void)notifications.read(datagram, "portier");

  // As dump() runs them: on a datagram libmnl can walk, no sequence number or port id to
  // check.
  if (!mnl_walk_safe(datagram)) return 0;
  std::vector<RuleCounter> counters;
  (void)mnl_cb_run(data, size, 0, 0, append_rule_counter, &counters);
  MapCounters map{"input/m1", &counters};
  (void)mnl_cb_run(data, size, 0, 0, append_map_counters, &map);

  int remaining = static_cast<int>(size);
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(data); netlink_message_ok(nlh, remaining);
       nlh = mnl_nlmsg_next(nlh, &remaining)) {
    (void)decode_generation(nlh);
  }
  return 0;
}
