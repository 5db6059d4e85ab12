// One datagram of the nflog socket (NFULNL_MSG_PACKET messages of the packets the
// ruleset logged), the packet bytes on their own, and the log prefixes.
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string_view>

#include "fuzz_support.h"
#include "packet_log.h"

using namespace portier;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  try {
    for (const LoggedPacket& packet : parse_nflog_messages(bytes))
      (void)parse_log_prefix(packet.prefix);
  } catch (const std::runtime_error&) {
    // Documented: an NLMSG_ERROR with an errno, or a malformed message.
  }
  if (size > 0) {
    // The payload alone, as the first byte's family hint says (0, AF_INET, AF_INET6).
    static const std::uint8_t kHints[] = {0, 2, 10};
    LoggedPacket packet;
    parse_payload(bytes.subspan(1), kHints[data[0] % 3], packet);
  }
  (void)parse_log_prefix(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
