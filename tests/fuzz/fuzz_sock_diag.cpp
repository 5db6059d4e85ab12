// One datagram of a sock_diag dump (listening TCP or bound UDP sockets), as portierd
// reads it for `portierctl ports` and the binds.
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>

#include "fuzz_support.h"
#include "sock_diag.h"

using namespace portier;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  for (const ir::L4Proto protocol : {ir::L4Proto::tcp, ir::L4Proto::udp}) {
    try {
      const SockDiagReply reply = parse_sock_diag_reply(bytes, protocol);
      for (const DiagSocket& socket : reply.sockets) {
        if (protocol == ir::L4Proto::udp && socket.socket.port == 0) {
          fuzz::fail("an unbound UDP socket was reported");
        }
      }
    } catch (const std::runtime_error&) {
      // Documented: an NLMSG_ERROR or a truncated message.
    }
  }
  return 0;
}
